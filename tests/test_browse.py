"""Unit tests of `fashion_core.browse`: paging, filtering, ordering, mean images, contact sheets and projections."""

import keras
import numpy as np
import pytest

from fashion_core import browse
from fashion_core.charts import class_count_chart, embedding_scatter
from fashion_core.data import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from fashion_core.models import FEATURES_LAYER_NAME, ModelOptions, build_model


@pytest.mark.parametrize(
    ("num_items", "per_page", "expected"), [(0, 48, 1), (1, 48, 1), (48, 48, 1), (49, 48, 2), (10000, 48, 209)]
)
def test_page_count(num_items, per_page, expected):
    assert browse.page_count(num_items, per_page) == expected


def test_page_count_rejects_a_non_positive_page_size():
    with pytest.raises(browse.BrowseError, match="per_page=0"):
        browse.page_count(10, 0)


def test_page_indices_slices_pages_numbered_from_one():
    indices = np.arange(100, 200)  # 100 items: pages of 48, 48 and 4
    np.testing.assert_array_equal(browse.page_indices(indices, 1, 48), np.arange(100, 148))
    np.testing.assert_array_equal(browse.page_indices(indices, 2, 48), np.arange(148, 196))
    np.testing.assert_array_equal(browse.page_indices(indices, 3, 48), np.arange(196, 200))
    assert len(browse.page_indices([], 1, 48)) == 0


@pytest.mark.parametrize("page", [0, 4, -1])
def test_page_indices_rejects_a_page_out_of_range_and_says_which_exist(page):
    with pytest.raises(browse.BrowseError, match=rf"pages 1 to 3\. Received: page={page}$"):
        browse.page_indices(np.arange(100), page, 48)


def test_page_containing_finds_the_page_of_an_index_in_display_order():
    ordering = np.array([7, 3, 9, 1, 5])
    assert browse.page_containing(ordering, 7, 2) == 1
    assert browse.page_containing(ordering, 1, 2) == 2
    assert browse.page_containing(ordering, 5, 2) == 3
    assert browse.page_containing(ordering, 4, 2) is None


def test_filter_indices_keeps_only_the_chosen_classes(fashion_data):
    labels = fashion_data.test_labels
    bags_and_boots = browse.filter_indices(labels, [8, 9])
    assert len(bags_and_boots) == 2000
    assert set(labels[bags_and_boots]) == {8, 9}
    assert np.all(np.diff(bags_and_boots) > 0)
    np.testing.assert_array_equal(browse.filter_indices(labels, []), np.arange(10000))
    np.testing.assert_array_equal(browse.filter_indices(labels, None), np.arange(10000))


def scripted_probabilities() -> tuple[np.ndarray, np.ndarray]:
    """Five images: 1 and 3 misclassified (3 more confidently), 4 the least confident overall."""
    labels = np.array([0, 1, 2, 3, 4])
    top = {0: (0, 0.9), 1: (5, 0.6), 2: (2, 0.8), 3: (7, 0.95), 4: (4, 0.3)}
    probabilities = np.full((5, NUM_CLASSES), 0.01, dtype=np.float32)
    for row, (predicted, confidence) in top.items():
        probabilities[row, predicted] = confidence
    return labels, probabilities


def test_misclassified_order_keeps_only_mistakes_most_confident_first():
    labels, probabilities = scripted_probabilities()
    ordering = browse.order_indices(np.arange(5), "misclassified", labels=labels, probabilities=probabilities)
    np.testing.assert_array_equal(ordering, [3, 1])
    within_filter = browse.order_indices(np.array([0, 1, 2]), "misclassified", labels, probabilities)
    np.testing.assert_array_equal(within_filter, [1])


def test_least_confident_order_puts_the_lowest_top_probability_first():
    labels, probabilities = scripted_probabilities()
    ordering = browse.order_indices(np.arange(5), "least_confident", labels=labels, probabilities=probabilities)
    np.testing.assert_array_equal(ordering, [4, 1, 2, 0, 3])


def test_random_order_is_a_permutation_fixed_by_its_seed():
    indices = np.arange(0, 1000, 3)
    first = browse.order_indices(indices, "random", seed=7)
    assert sorted(first.tolist()) == indices.tolist()
    np.testing.assert_array_equal(first, browse.order_indices(indices, "random", seed=7))
    assert not np.array_equal(first, browse.order_indices(indices, "random", seed=8))
    np.testing.assert_array_equal(browse.order_indices(indices, "index"), indices)


def test_orders_that_need_predictions_and_unknown_orders_are_refused():
    with pytest.raises(browse.BrowseError, match="needs the model's labels and probabilities"):
        browse.order_indices(np.arange(5), "least_confident")
    with pytest.raises(browse.BrowseError, match="Received: order='newest'"):
        browse.order_indices(np.arange(5), "newest")


def test_class_counts_of_the_real_splits(fashion_data):
    np.testing.assert_array_equal(browse.class_counts(fashion_data.test_labels), [1000] * NUM_CLASSES)
    np.testing.assert_array_equal(browse.class_counts(fashion_data.train_labels), [6000] * NUM_CLASSES)
    np.testing.assert_array_equal(browse.class_counts(np.array([2, 2, 9])), [0, 0, 2, 0, 0, 0, 0, 0, 0, 1])


def test_mean_images_are_each_class_average(fashion_data):
    images, labels = fashion_data.test_images, fashion_data.test_labels
    means = browse.mean_images(images, labels)
    assert means.shape == (NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE)
    assert means.dtype == np.float32
    for class_index in (1, 8):
        expected = images[labels == class_index].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(means[class_index], expected, atol=1e-3)
    # Trousers are narrow: their mean is dark at the sides where a bag's is bright.
    assert means[1][:, :4].mean() < 5 < means[8][:, :4].mean()


def test_mean_images_of_a_missing_class_are_zeros():
    images = np.full((3, IMAGE_SIZE, IMAGE_SIZE), 200, dtype=np.uint8)
    means = browse.mean_images(images, np.array([0, 0, 5]))
    assert means[0].min() == means[0].max() == 200
    assert not means[3].any()


def test_stratified_sample_has_the_exact_size_and_class_proportions(fashion_data):
    labels = fashion_data.test_labels
    sample = browse.stratified_sample(labels, 3000, seed=0)
    assert len(sample) == len(np.unique(sample)) == 3000
    assert np.all(np.diff(sample) > 0)
    np.testing.assert_array_equal(browse.class_counts(labels[sample]), [300] * NUM_CLASSES)
    np.testing.assert_array_equal(sample, browse.stratified_sample(labels, 3000, seed=0))
    assert not np.array_equal(sample, browse.stratified_sample(labels, 3000, seed=1))
    uneven = np.array([0] * 7 + [1] * 3)
    assert browse.class_counts(uneven[browse.stratified_sample(uneven, 5)]).tolist()[:2] in ([4, 1], [3, 2])


def test_upscale_turns_each_pixel_into_a_sharp_square():
    image = np.arange(4, dtype=np.uint8).reshape(2, 2)
    np.testing.assert_array_equal(browse.upscale(image, 2), [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


def test_contact_sheet_tiles_crisp_images_in_a_grid(fashion_data):
    images = fashion_data.test_images[:10]
    sheet = browse.contact_sheet(images, columns=4, scale=3, gap=4)
    tile = 28 * 3
    assert sheet.shape == (4 + 3 * (tile + 4), browse.contact_sheet_width(4, 3, gap=4), 3)
    assert sheet.shape[1] == 4 + 4 * (tile + 4)
    assert sheet.dtype == np.uint8
    # image 5 is row 1, column 1; every channel holds the nearest-neighbour upscaled pixels
    top = left = 4 + tile + 4
    expected = np.repeat(np.repeat(images[5], 3, axis=0), 3, axis=1)
    for channel in range(3):
        np.testing.assert_array_equal(sheet[top : top + tile, left : left + tile, channel], expected)
    # the two missing tiles of the last row are background
    assert (sheet[-tile - 4 : -4, -2 * (tile + 4) :] == browse.SHEET_BACKGROUND).all()


def test_contact_sheet_writes_captions_and_frames_marked_tiles(fashion_data):
    images = fashion_data.test_images[:4]
    plain = browse.contact_sheet(images, columns=4)
    captioned = browse.contact_sheet(
        images, columns=4, captions=["#0\nAnkle boot"] * 4, marked=[False, True, False, False]
    )
    line = browse.CAPTION_LINE_HEIGHT
    assert captioned.shape == (plain.shape[0] + 2 * line, plain.shape[1], 3)
    caption_strip = captioned[4 + 84 : 4 + 84 + 2 * line, 4 : 4 + 84]
    assert (caption_strip.min(axis=-1) > 150).sum() > 20  # light text pixels on the dark strip
    second_tile_frame = captioned[4 - 2 : 4, 4 + 88 : 4 + 88 + 84]
    assert (second_tile_frame == browse.MARK_COLOR).all()
    first_tile_frame = captioned[4 - 2 : 4, 4 : 4 + 84]
    assert (first_tile_frame == browse.SHEET_BACKGROUND).all()


def test_contact_sheet_refuses_no_images_and_mismatched_captions(fashion_data):
    with pytest.raises(browse.BrowseError, match="non-empty"):
        browse.contact_sheet(np.zeros((0, 28, 28), dtype=np.uint8))
    with pytest.raises(browse.BrowseError, match="Received: 1 for 2 images"):
        browse.contact_sheet(fashion_data.test_images[:2], captions=["only one"])


def test_penultimate_features_are_the_features_layer(fashion_data):
    model = build_model("dense", ModelOptions(augment=False))
    images = fashion_data.test_images[:20]
    features = browse.penultimate_features(model, images, batch_size=8)
    assert features.shape == (20, 128)
    assert features.dtype == np.float32
    hidden = model.get_layer(FEATURES_LAYER_NAME)
    expected = keras.ops.relu(images.reshape(20, -1).astype("float32") / 255.0 @ hidden.kernel + hidden.bias)
    np.testing.assert_allclose(features, np.asarray(expected), rtol=1e-4, atol=1e-4)


def test_penultimate_features_fall_back_to_the_input_of_the_last_dense_layer(fashion_data):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, activation="softmax")(hidden))
    images = fashion_data.test_images[:5]
    features = browse.penultimate_features(model, images)
    expected = keras.Model(inputs, hidden)(images[..., None].astype("float32"))
    np.testing.assert_allclose(features, np.asarray(expected), atol=1e-5)


def test_penultimate_features_explain_a_model_without_dense_layers():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(10, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    with pytest.raises(browse.BrowseError, match="no Dense layer"):
        browse.penultimate_features(model, np.zeros((2, 28, 28), dtype=np.uint8))


def correlated_features(num_rows: int = 400, seed: int = 0) -> np.ndarray:
    """Features varying mostly along one direction, then another, plus noise: (num_rows, 6)."""
    rng = np.random.default_rng(seed)
    main, second = rng.normal(size=(2, num_rows))
    directions = np.array([[3.0, 1.0, 0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 1.0, -1.0, 0.0, 0.0]])
    noise = rng.normal(size=(num_rows, 6)) * 0.1
    return 5 * main[:, None] * directions[0] + 2 * second[:, None] * directions[1] + noise


def test_pca_2d_projects_on_the_directions_of_largest_variance():
    features = correlated_features()
    projection = browse.pca_2d(features)
    assert projection.shape == (400, 2)
    assert projection.dtype == np.float32
    np.testing.assert_allclose(projection.mean(axis=0), 0, atol=1e-4)
    assert projection[:, 0].var() > 10 * projection[:, 1].var()
    assert abs(np.corrcoef(projection.T)[0, 1]) < 1e-3  # principal components are uncorrelated
    # the same projection as an SVD of the centred data, up to each column's sign
    centred = features - features.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(np.abs(projection), np.abs(u[:, :2] * s[:2]), rtol=1e-4, atol=1e-4)


def test_pca_2d_is_deterministic_whatever_the_row_order():
    features = correlated_features()
    order = np.random.default_rng(1).permutation(len(features))
    np.testing.assert_allclose(browse.pca_2d(features[order]), browse.pca_2d(features)[order], atol=1e-4)
    np.testing.assert_array_equal(browse.pca_2d(features), browse.pca_2d(features.copy()))


def test_pca_2d_handles_one_feature_and_refuses_one_row():
    projection = browse.pca_2d(np.array([[1.0], [3.0]]))
    np.testing.assert_allclose(projection, [[-1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(browse.BrowseError, match=r"Received: shape=\(1, 3\)"):
        browse.pca_2d(np.ones((1, 3)))


def test_indices_from_selection_reads_customdata_of_any_shape():
    points = [{"customdata": [17], "point_index": 0}, {"customdata": 4}, {"point_index": 2}, {"customdata": []}]
    assert browse.indices_from_selection(points) == [17, 4]


def test_embedding_scatter_has_a_trace_a_class_with_dataset_indices_and_a_ring_on_the_selection():
    labels = np.repeat(np.arange(NUM_CLASSES), 3)
    indices = np.arange(100, 130)
    figure = embedding_scatter(np.random.default_rng(0).normal(size=(30, 2)), labels, indices, selected_index=104)
    assert [trace.name for trace in figure.data] == [*CLASS_NAMES, "Selected"]
    assert list(figure.data[1].customdata) == [103, 104, 105]
    assert figure.data[1].hovertemplate == "#%{customdata} · Trouser<extra></extra>"
    assert len(embedding_scatter(np.zeros((30, 2)), labels, indices, selected_index=5).data) == NUM_CLASSES


def test_class_count_chart_highlights_the_chosen_classes():
    figure = class_count_chart([1000] * NUM_CLASSES, highlighted=[8])
    bar = figure.data[0]
    assert list(bar.x) == list(CLASS_NAMES)
    assert list(bar.text) == ["1,000"] * NUM_CLASSES
    assert [color == bar.marker.color[8] for color in bar.marker.color].count(True) == 1
