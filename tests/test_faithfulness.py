"""Tests of `fashion_core.faithfulness` and the forward-only maps of `fashion_core.explain` on hand-built models."""

import keras
import numpy as np
import pytest

from fashion_core import explain, faithfulness
from fashion_core.explain import ExplainError
from fashion_core.inference import Predictor

STEPS = np.round(np.linspace(0, 784, 21)).astype(int)  # pixels deleted (or revealed) at each of the 21 points


def brightness_model(weights: np.ndarray, scale: float) -> keras.Model:
    """A plain Keras model whose class-0 logit is `scale * sum(weights * image / 255)`; the others are 0."""
    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(10, activation="softmax")(flat)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((784, 10), dtype=np.float32)
    kernel[:, 0] = scale * weights.reshape(-1)
    model.layers[-1].set_weights([kernel, np.zeros(10, dtype=np.float32)])
    return model


def class_zero_probability(logit):
    return np.exp(logit) / (np.exp(logit) + 9)


@pytest.fixture(scope="module")
def half_model():
    """Class 0's logit is 8 x the share of the 784 pixels that are lit (at 255)."""
    return brightness_model(np.full((28, 28), 1 / 784), scale=8.0)


@pytest.fixture(scope="module")
def top_half_image():
    image = np.zeros((28, 28), dtype=np.uint8)
    image[:14] = 255  # 392 lit pixels, then 392 black ones
    return image


def test_deletion_and_insertion_match_a_hand_computation(half_model, top_half_image):
    lit_first = np.where(top_half_image > 0, 1.0, 0.0) + np.linspace(0, 0.5, 784).reshape(28, 28)[::-1]
    black_first = 1.0 - lit_first
    # Lit first: deleting n pixels leaves max(392 - n, 0) lit; revealing n reveals min(n, 392).
    expected_deletion_lit_first = class_zero_probability(8 * np.maximum(392 - STEPS, 0) / 784).mean()
    expected_insertion_lit_first = class_zero_probability(8 * np.minimum(STEPS, 392) / 784).mean()
    # Black first: nothing changes until the 392 black pixels are gone.
    expected_deletion_black_first = class_zero_probability(8 * np.minimum(784 - STEPS, 392) / 784).mean()
    images, maps = np.stack([top_half_image] * 2), np.stack([lit_first, black_first])
    deletion = faithfulness.deletion_score(half_model, images, maps, class_indices=0)
    insertion = faithfulness.insertion_score(half_model, images, maps, class_indices=0)
    np.testing.assert_allclose(deletion, [expected_deletion_lit_first, expected_deletion_black_first], rtol=1e-5)
    assert insertion[0] == pytest.approx(expected_insertion_lit_first, rel=1e-5)
    assert deletion[0] < deletion[1] and insertion[0] > insertion[1]  # the faithful order wins on both


def test_perturbation_steps_delete_in_the_maps_order_with_ties_in_reading_order(top_half_image):
    ranking = np.zeros((28, 28))  # all tied: reading order
    steps = faithfulness.perturbation_steps(top_half_image[None], ranking[None], "deletion")
    assert steps.shape == (1, 21, 28, 28)
    assert (steps[0, 1].reshape(-1)[: STEPS[1]] == 0).all() and (steps[0, 1].reshape(-1)[STEPS[1] : 392] == 255).all()
    revealed = faithfulness.perturbation_steps(top_half_image[None], ranking[None], "insertion")
    assert revealed[0, 0].max() == 0 and np.array_equal(revealed[0, -1], top_half_image)
    with pytest.raises(ExplainError, match="Received: shape=\\(2, 28, 28\\)"):
        faithfulness.perturbation_steps(top_half_image[None], np.zeros((2, 28, 28)))


def test_model_blind_orders():
    images = np.arange(784, dtype=np.uint8).reshape(1, 28, 28) % 200
    np.testing.assert_allclose(faithfulness.brightness_maps(images)[0], images[0] / 255.0, rtol=1e-6)
    assert np.array_equal(faithfulness.random_maps(3, seed=4), faithfulness.random_maps(3, seed=4))
    assert not np.array_equal(faithfulness.random_maps(1, seed=4), faithfulness.random_maps(1, seed=5))


@pytest.fixture(scope="module")
def block_model():
    """Class 0 rises only with the brightness of the 4x4 block at rows 8-11, columns 8-11."""
    weights = np.zeros((28, 28))
    weights[8:12, 8:12] = 1.0
    return brightness_model(weights, scale=0.5)


def test_occlusion_lights_exactly_the_patch_the_model_reads(block_model):
    image = np.full((28, 28), 200, dtype=np.uint8)
    heatmap = explain.occlusion_maps(block_model, image[None], 0, patches=((4, 4),), by_brightness=False)[0]
    expected = np.zeros((28, 28), dtype=np.float32)
    expected[8:12, 8:12] = 1.0
    np.testing.assert_allclose(heatmap, expected, atol=1e-6)


def test_occlusion_by_brightness_shares_a_patch_among_its_lit_pixels(block_model):
    image = np.zeros((28, 28), dtype=np.uint8)
    image[8:12, 8:10] = 255
    image[8:12, 10:12] = 51  # a fifth as bright
    heatmap = explain.occlusion_maps(block_model, image[None], 0, patches=((4, 4),))[0]
    np.testing.assert_allclose(heatmap[8:12, 8:10], 1.0, atol=1e-6)
    np.testing.assert_allclose(heatmap[8:12, 10:12], 0.2, atol=1e-6)
    assert heatmap.sum() == pytest.approx(8 * 1.0 + 8 * 0.2, abs=1e-4)  # nothing outside the block


def reference_occlusion(model, image, class_index, patch_size, stride):
    """Occlusion written plainly: black out each patch, average the falls of the log-probability over each pixel."""
    x = image.astype("float32")
    starts = sorted(set(range(0, 28 - patch_size + 1, stride)) | {28 - patch_size})
    boxes = [(top, left) for top in starts for left in starts]
    occluded = np.repeat(x[None], len(boxes), axis=0)
    for index, (top, left) in enumerate(boxes):
        occluded[index, top : top + patch_size, left : left + patch_size] = 0
    log_probabilities = np.log(model.predict(np.concatenate([x[None], occluded])[..., None], verbose=0)[:, class_index])
    total, count = np.zeros((28, 28)), np.zeros((28, 28))
    for (top, left), fall in zip(boxes, log_probabilities[0] - log_probabilities[1:], strict=True):
        total[top : top + patch_size, left : left + patch_size] += fall
        count[top : top + patch_size, left : left + patch_size] += 1
    heatmap = np.maximum(total / count * x / 255, 0)
    return heatmap / heatmap.max()


def test_occlusion_equals_a_plain_reference_on_a_small_cnn(fashion_data):
    from fashion_core.models import ModelOptions, build_model

    keras.utils.set_random_seed(1)
    model = build_model("seed_cnn", ModelOptions(augment=False))
    image = fashion_data.test_images[0]
    heatmap = explain.occlusion_maps(model, image[None], 9, patches=((7, 5),))[0]
    np.testing.assert_allclose(heatmap, reference_occlusion(model, image, 9, 7, 5), atol=1e-4)


def test_rise_equals_a_plain_reference_and_finds_the_block(block_model):
    image = np.full((28, 28), 255, dtype=np.uint8)
    heatmap = explain.rise_maps(block_model, image[None], 0, num_masks=200, by_brightness=False)[0]
    masks = explain.rise_masks(200)
    scores = block_model.predict((image * masks)[..., None], verbose=0)[:, 0]
    reference = np.maximum(((scores - scores.mean())[:, None, None] * masks).mean(axis=0), 0)
    np.testing.assert_allclose(heatmap, reference / reference.max(), atol=1e-4)
    row, column = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert 7 <= row <= 12 and 7 <= column <= 12
    assert np.array_equal(explain.rise_masks(50, seed=3), explain.rise_masks(50, seed=3))


def test_default_explanation_takes_a_keras_model_or_a_predictor(shipped_model, fashion_data):
    image = fashion_data.test_images[0]
    from_model = explain.default_explanation(shipped_model, image)
    assert from_model.shape == (28, 28) and from_model.dtype == np.float32
    assert from_model.min() >= 0 and from_model.max() == pytest.approx(1.0)
    np.testing.assert_allclose(explain.default_explanation(Predictor(shipped_model), image), from_model, atol=1e-5)
    flip_averaged = explain.default_explanation(Predictor(shipped_model, flip_average=True), image, class_index=9)
    assert flip_averaged.shape == (28, 28) and flip_averaged.max() == pytest.approx(1.0)
    assert (flip_averaged[image == 0] == 0).all()  # a black pixel cannot matter to a map of blacking out
    with pytest.raises(ExplainError, match="Received: class_index=10"):
        explain.default_explanation(shipped_model, image, class_index=10)
