"""AppTest of the Dataset page: filters, paging, orders, deep links, the selected image and missing data."""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fashion_core import browse
from fashion_core import registry as registry_module
from fashion_core.data import CLASS_NAMES
from pages import common
from tests.support import open_app, plotly_array, plotly_specs, rerun_until, tensorflow_still_loading, wait_for_warmup

PAGE = "pages/dataset.py"


def open_dataset_page(query_params: dict | None = None) -> AppTest:
    """The Dataset page opened by a link with `query_params`; checks that the run raised nothing."""
    app = open_app(PAGE, query_params)
    assert not app.exception, app.exception
    return app


def run(app: AppTest) -> AppTest:
    """Runs the app again (after a widget changed) and checks that the run raised nothing."""
    app.run()
    assert not app.exception, app.exception
    return app


def shown_table(app: AppTest):
    """The table under the grid: one row a tile, in display order."""
    return app.dataframe[0].value


def grid_caption(app: AppTest) -> str:
    return next(caption.value for caption in app.caption if caption.value.startswith("Images "))


def test_the_first_page_shows_the_first_48_test_images_with_their_labels(fashion_data):
    app = open_dataset_page()
    table = shown_table(app)
    assert table["Index"].tolist() == list(range(48))
    assert table["Label"].tolist() == [CLASS_NAMES[label] for label in fashion_data.test_labels[:48]]
    assert grid_caption(app).startswith("Images 1–48 of 10,000 (test split).")
    assert len(app.image) == 1  # the whole page is one contact sheet
    assert app.image[0].proto.imgs[0].alt.startswith("Page 1: #0 Ankle boot, #1 Pullover, #2 Trouser")


def test_class_filter_and_paging_change_the_images_shown(fashion_data):
    app = open_dataset_page()
    app.multiselect(key="classes").set_value([8, 9])
    run(app)
    expected = browse.filter_indices(fashion_data.test_labels, [8, 9])
    table = shown_table(app)
    assert table["Index"].tolist() == expected[:48].tolist()
    assert set(table["Label"]) == {"Bag", "Ankle boot"}
    assert grid_caption(app).startswith("Images 1–48 of 2,000 (test split).")

    app.pagination(key="page").set_value(3)
    run(app)
    assert shown_table(app)["Index"].tolist() == expected[96:144].tolist()
    assert grid_caption(app).startswith("Images 97–144 of 2,000")

    app.segmented_control(key="split").set_value("train")  # a new filter starts at page 1
    run(app)
    table = shown_table(app)
    train_bags_and_boots = browse.filter_indices(fashion_data.train_labels, [8, 9])
    assert table["Index"].tolist() == train_bags_and_boots[:48].tolist()
    assert set(table["Label"]) == {"Bag", "Ankle boot"}
    assert grid_caption(app).startswith("Images 1–48 of 12,000 (train split).")


def test_query_parameters_restore_a_shared_view(fashion_data):
    app = open_dataset_page({"split": "Train", "classes": ["Coat", "Bag"], "page": "3", "image": "19"})
    assert app.segmented_control(key="split").value == "train"
    assert app.multiselect(key="classes").value == [4, 8]
    assert app.pagination(key="page").value == 3
    coats_and_bags = browse.filter_indices(fashion_data.train_labels, [4, 8])
    assert shown_table(app)["Index"].tolist() == coats_and_bags[96:144].tolist()
    label = CLASS_NAMES[fashion_data.train_labels[19]]
    assert app.subheader[0].value == f"#19 · {label}"


def test_a_selected_image_shows_its_label_and_the_models_prediction(fashion_data, shipped_predictor):
    app = open_dataset_page()
    app.number_input(key="image").set_value(23)
    run(app)
    probabilities = shipped_predictor.predict_one(fashion_data.test_images[23])
    predicted = int(probabilities.argmax())
    label = int(fashion_data.test_labels[23])
    assert app.subheader[0].value == f"#23 · {CLASS_NAMES[label]}"
    verdict = "right" if predicted == label else "wrong"
    expected = f"Model `default` predicts **{CLASS_NAMES[predicted]}** ({probabilities[predicted]:.1%}): {verdict}."
    assert expected in [markdown.value for markdown in app.markdown]
    charts = list(plotly_specs(app).values())
    bars = next(chart["data"][0] for chart in charts if chart["data"][0]["type"] == "bar")
    assert bars["text"] == [f"{p:.1%}" for p in probabilities[::-1]]  # all ten, last class on top
    pixels = next(chart["data"][0] for chart in charts if chart["data"][0]["type"] == "heatmap")
    assert "row %{y}, column %{x}: %{z}" in pixels["hovertemplate"]
    assert app.button(key="dataset_open_gradcam").label == "Open in Grad-CAM viewer"


def test_the_grad_cam_button_hands_the_image_to_the_grad_cam_page():
    app = open_dataset_page({"image": "7"})
    app.button(key="dataset_open_gradcam").click()
    run(app)
    assert app.title[0].value == "Grad-CAM viewer"
    assert common.GRADCAM_REQUEST_KEY not in app.session_state  # the Grad-CAM page took the request
    assert app.toast[0].value.endswith("image 7.")


@pytest.mark.slow  # predicts the 10000 test images itself, to check the page against
def test_misclassified_order_lists_only_the_models_mistakes_most_confident_first(fashion_data, shipped_predictor):
    app = open_dataset_page()
    app.selectbox(key="order").set_value("misclassified")
    run(app)
    probabilities = shipped_predictor.predict(fashion_data.test_images)
    expected = browse.misclassified_first(np.arange(10000), fashion_data.test_labels, probabilities)
    table = shown_table(app)
    assert table["Index"].tolist() == expected[:48].tolist()
    assert (table["Predicted"] != table["Label"]).all()
    assert table["Confidence"].is_monotonic_decreasing
    assert grid_caption(app).startswith(f"Images 1–48 of {len(expected):,} (test split).")

    app.selectbox(key="order").set_value("least_confident")
    run(app)
    assert shown_table(app)["Confidence"].is_monotonic_increasing


def test_orders_by_prediction_are_refused_on_the_training_split_with_a_reason():
    app = open_dataset_page({"split": "Train", "order": "Least confident first"})
    assert not app.exception
    assert "switch to the test split" in app.info[0].value
    assert shown_table(app)["Index"].tolist() == list(range(48))


def test_the_embedding_map_places_3000_stratified_test_images_and_rings_the_selection(fashion_data):
    sample = browse.stratified_sample(fashion_data.test_labels, 3000, seed=0)
    app = open_dataset_page({"view": "Embedding map", "image": str(sample[0])})
    charts = list(plotly_specs(app).values())
    scatter = next(chart for chart in charts if chart["data"][0]["type"] == "scatter")
    assert [trace["name"] for trace in scatter["data"]] == [*CLASS_NAMES, "Selected"]
    for class_index, trace in enumerate(scatter["data"][:10]):
        members = sample[fashion_data.test_labels[sample] == class_index]
        assert plotly_array(trace["customdata"]).tolist() == members.tolist()
        assert len(plotly_array(trace["x"])) == 300
    assert f"#{sample[0]} · {CLASS_NAMES[fashion_data.test_labels[sample[0]]]}" in app.image[-1].captions


def test_class_distribution_counts_the_split():
    app = open_dataset_page({"split": "Train", "classes": ["Bag"]})
    chart = list(plotly_specs(app).values())[-1]
    assert chart["data"][0]["text"] == ["6,000"] * 10
    assert chart["layout"]["title"]["text"] == "Images per class in the train split (60,000)"


def test_without_a_model_the_grid_still_shows_labels(fashion_data, tmp_path, monkeypatch):
    monkeypatch.setattr(registry_module, "SHIPPED_MODELS_DIR", tmp_path / "no-models")
    app = open_dataset_page()
    assert "No model is available" in app.error[0].value
    table = shown_table(app)
    assert list(table.columns) == ["Tile", "Index", "Label"]
    assert table["Label"].tolist() == [CLASS_NAMES[label] for label in fashion_data.test_labels[:48]]


def test_without_the_dataset_the_page_says_how_to_get_it(no_dataset):
    app = open_dataset_page()
    assert not app.exception
    assert app.error[0].value.startswith("**The Fashion-MNIST dataset is not available.** Fashion-MNIST was not found.")
    assert "sudo apt-get install dataset-fashion-mnist" in app.error[0].value
    assert app.title[0].value == "Dataset"
    assert not app.dataframe and not app.image


def test_the_embedding_map_waits_for_tensorflow_in_the_background_while_the_grid_works(fashion_data, monkeypatch):
    """Test that with TensorFlow still loading, the Embedding map tab says so and the grid is drawn, and that the
    map comes once the model is there."""
    gate = tensorflow_still_loading(monkeypatch)
    app = open_dataset_page({"view": "Embedding map"})
    [note] = [info.value for info in app.info if info.value.startswith("Loading TensorFlow")]
    assert note.startswith("Loading TensorFlow for the embedding map")
    assert app.image and not [chart for chart in plotly_specs(app).values() if chart["data"][0]["type"] == "scatter"]
    gate.set()
    wait_for_warmup()
    rerun_until(app, lambda app: any(chart["data"][0]["type"] == "scatter" for chart in plotly_specs(app).values()))
    assert not [info.value for info in app.info if info.value.startswith("Loading TensorFlow")]
