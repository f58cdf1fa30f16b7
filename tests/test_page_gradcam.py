"""AppTest of the Grad-CAM viewer: choosing images, methods, classes and layers, requests from other pages."""

import numpy as np
import pytest

from fashion_core import explain
from fashion_core.data import CLASS_NAMES
from fashion_core.models import ModelOptions, build_model, conv_layer_names
from fashion_core.registry import ModelRegistry
from pages.common import GRADCAM_REQUEST_KEY, LAST_INPUT_KEY
from tests.support import image_urls, open_app, rerun_until, tensorflow_still_loading, wait_for_warmup

PAGE = "pages/gradcam.py"


@pytest.fixture
def app():
    return open_app(PAGE)


def predicted_class(model, image) -> int:
    return int(model(image[None, :, :, None].astype("float32"), training=False).numpy().argmax())


def headline(app) -> str:
    """The line naming the image, its true class and the prediction."""
    return next(m.value for m in app.markdown if m.value.startswith("**") and "predicted:" in m.value)


def explaining(app) -> str:
    return next(m.value for m in app.markdown if m.value.startswith("Explaining"))


def test_a_test_image_chosen_by_index_shows_its_prediction_and_maps(app, shipped_model, fashion_data):
    """Test that choosing test image 2 shows its true and predicted class and the three big images."""
    app.number_input(key="gradcam_index").set_value(2).run()
    assert not app.exception
    predicted = CLASS_NAMES[predicted_class(shipped_model, fashion_data.test_images[2])]
    assert headline(app).startswith(f"**Test image 2** · true class: **Trouser** · predicted: **{predicted}** (")
    last_layer = conv_layer_names(shipped_model)[-1]
    assert explaining(app) == f"Explaining **{predicted}** with Grad-CAM on layer `{last_layer}`."
    urls = image_urls(app)
    assert {"What the model sees (28x28)", "Heat map", "Overlay"} <= set(urls)
    assert [caption[:2] for caption in urls if caption[:1].isdigit()] == ["1.", "2.", "3."]


def test_switching_method_class_and_layer_changes_the_maps(app, shipped_model):
    """Test that another method, target class or layer redraws the heat map but not the input image."""
    before = image_urls(app)
    app.radio(key="gradcam_method").set_value("Grad-CAM++").run()
    after_method = image_urls(app)
    assert not app.exception
    assert explaining(app).endswith("with Grad-CAM++ on layer `" + conv_layer_names(shipped_model)[-1] + "`.")
    assert after_method["What the model sees (28x28)"] == before["What the model sees (28x28)"]
    assert after_method["Heat map"] != before["Heat map"]

    app.selectbox(key="gradcam_target").set_value("Sandal").run()
    assert explaining(app).startswith("Explaining **Sandal** with Grad-CAM++")
    assert image_urls(app)["Heat map"] != after_method["Heat map"]

    first_layer = conv_layer_names(shipped_model)[0]
    app.selectbox(key="gradcam_layer").set_value(first_layer).run()
    assert explaining(app) == f"Explaining **Sandal** with Grad-CAM++ on layer `{first_layer}`."
    assert not [info for info in app.info if "The map is zero everywhere" in info.value]

    app.radio(key="gradcam_method").set_value("SmoothGrad").run()
    assert not app.exception
    assert explaining(app) == "Explaining **Sandal** with SmoothGrad."
    assert app.selectbox(key="gradcam_layer").disabled


def test_an_all_zero_map_is_explained(app, shipped_model, fashion_data):
    """Test that the page says why a map is empty exactly when Grad-CAM gives zero everywhere."""
    image = fashion_data.test_images[0]
    names = conv_layer_names(shipped_model)
    zero_layers = [name for name in names if explain.gradcam(shipped_model, image, layer_name=name).max() == 0]
    layer = (zero_layers or names)[0]  # the shipped cnn has zero maps in conv3a
    app.selectbox(key="gradcam_layer").set_value(layer).run()
    assert not app.exception
    messages = [info.value for info in app.info if info.value.startswith("The map is zero everywhere")]
    assert len(messages) == (1 if zero_layers else 0)


def test_true_class_target_and_class_source(app, fashion_data):
    """Test that 'By class' picks the n-th image of a class and 'True class' explains that class."""
    app.radio(key="gradcam_source").set_value("By class").run()
    app.selectbox(key="gradcam_class").set_value(CLASS_NAMES.index("Bag")).run()
    app.number_input(key="gradcam_class_position").set_value(3).run()
    app.selectbox(key="gradcam_target").set_value("True class").run()
    assert not app.exception
    index = int(np.flatnonzero(fashion_data.test_labels == CLASS_NAMES.index("Bag"))[3])
    assert headline(app).startswith(f"**Test image {index}** · true class: **Bag**")
    assert explaining(app).startswith("Explaining **Bag** with Grad-CAM")


def test_a_request_from_another_page_opens_that_image(app):
    """Test that a Grad-CAM request in session state opens that split and index, once."""
    app.session_state[GRADCAM_REQUEST_KEY] = {"split": "train", "index": 5}
    app.run()
    assert not app.exception
    assert app.selectbox(key="gradcam_split").value == "train"
    assert app.number_input(key="gradcam_index").value == 5
    assert headline(app).startswith("**Training image 5** · true class: ")
    assert GRADCAM_REQUEST_KEY not in app.session_state


def test_random_and_mistakes_sources(app, fashion_data):
    """Test that Random shows the image of the index it drew, and every mistake shown is wrong."""
    app.button(key="gradcam_random").click().run()
    index = app.number_input(key="gradcam_index").value
    true_class = CLASS_NAMES[fashion_data.test_labels[index]]
    assert headline(app).startswith(f"**Test image {index}** · true class: **{true_class}**")

    app.radio(key="gradcam_source").set_value("Model's mistakes").run()
    assert not app.exception
    mistakes = app.selectbox(key="gradcam_mistake")
    assert headline(app).endswith("✗")
    second = mistakes.options[1]
    mistakes.select(second).run()
    assert headline(app).endswith("✗")
    assert headline(app).startswith(f"**Test image {second.split(':')[0].split()[-1]}**")


def test_last_upload_with_its_photo(app, fashion_data):
    """Test that the prediction page's last input is explained, with the map drawn on its photo."""
    app.radio(key="gradcam_source").set_value("Last upload or drawing").run()
    assert "Classify a photo or a drawing on the Predict page first" in app.info[0].value
    photo = np.full((120, 90, 3), 200, dtype=np.uint8)
    app.session_state[LAST_INPUT_KEY] = {
        "name": "my *shirt*.jpg",
        "image": fashion_data.test_images[7],
        "photo": photo,
        "crop_box": (10, 20, 80, 110),
        "content_box": (4, 2, 24, 26),
    }
    app.run()
    assert not app.exception
    # The file name is shown literally: its asterisks are escaped, not turned into emphasis.
    assert headline(app).startswith("**Your image “my \\*shirt\\*\\.jpg”** · predicted: ")
    assert "On your photo (the crop the model saw)" in image_urls(app)
    assert "True class" not in app.selectbox(key="gradcam_target").options


def test_dense_model_offers_every_method_but_the_grad_cams(app, fashion_data):
    """Test that a model without conv layers explains that Grad-CAM needs them and shows occlusion first."""
    dense = build_model("dense", ModelOptions(augment=False))
    ModelRegistry().save("dense-test", dense, {"architecture": "dense"})
    app.run()
    app.sidebar.selectbox(key="model_name").set_value("dense-test").run()
    assert not app.exception
    assert app.radio(key="gradcam_method").options == [
        "Occlusion",
        "RISE",
        "Gradient x input",
        "Saliency",
        "SmoothGrad",
    ]
    assert "has no convolution layer, so Grad-CAM and Grad-CAM++ cannot be computed" in app.info[0].value
    assert explaining(app).endswith("with Occlusion.")
    assert "Heat map" in image_urls(app)


def test_each_methods_faithfulness_is_shown_when_measured(app, fashion_data):
    """Test that the figures of the model folder's faithfulness.json are the table under the maps."""
    from fashion_core.faithfulness import write_faithfulness

    dense = build_model("dense", ModelOptions(augment=False))
    entry = ModelRegistry().save("dense-measured", dense, {"architecture": "dense"})
    app.run()
    app.sidebar.selectbox(key="model_name").set_value("dense-measured").run()
    assert any("Not measured for this model yet" in markdown.value for markdown in app.markdown)
    methods = {"Occlusion": {"deletion": 0.2, "insertion": 0.7, "ms_per_image_in_a_batch": 30.0},
               "Saliency": {"deletion": 0.5, "insertion": 0.4, "ms_per_image_in_a_batch": 3.0}}  # fmt: skip
    write_faithfulness(entry.path, {"num_images": 200, "default_method": "Occlusion", "methods": methods})
    app.run()
    assert not app.exception
    table = app.dataframe[-1].value
    assert list(table["Method"]) == ["Occlusion", "Saliency"]
    assert list(table["Deletion (lower is better)"]) == [0.2, 0.5]
    assert list(table["Insertion (higher is better)"]) == [0.7, 0.4]


def test_missing_dataset_still_explains_the_last_upload(no_dataset, fashion_data):
    """Test that without Fashion-MNIST the viewer says how to get it and still explains the last upload."""
    app = open_app(PAGE)
    assert not app.exception
    assert app.error[0].value.startswith("**The Fashion-MNIST dataset is not available.**")
    assert "Classify a photo or a drawing on the Predict page first" in app.info[0].value
    app.session_state[LAST_INPUT_KEY] = {"name": "drawing", "image": fashion_data.test_images[1], "photo": None}
    app.run()
    assert not app.exception
    assert headline(app).startswith("**Your image “drawing”** · predicted: ")
    assert "On your photo (the crop the model saw)" not in image_urls(app)


def test_gradient_methods_wait_for_tensorflow_in_the_background_while_occlusion_works(monkeypatch, shipped_model):
    """Test that with TensorFlow still loading, the page shows the image, its prediction and a loading note for
    Grad-CAM, that Occlusion draws its maps meanwhile, and that Grad-CAM's maps come once the model is there."""

    gate = tensorflow_still_loading(monkeypatch)
    app = open_app(PAGE)
    assert not app.exception
    assert app.radio(key="gradcam_method").value == "Grad-CAM"
    assert app.selectbox(key="gradcam_layer").options == conv_layer_names(shipped_model)
    [note] = [info.value for info in app.info]
    assert note.startswith("Loading TensorFlow for Grad-CAM")
    assert "predicted:" in headline(app)
    assert list(image_urls(app)) == ["What the model sees (28x28)"]

    wait_for_warmup()  # the model and the dataset, loaded after the first run, do not queue behind TensorFlow
    app.radio(key="gradcam_method").set_value("Occlusion").run()
    assert not app.exception and not app.info, [info.value for info in app.info]
    assert explaining(app).endswith("with Occlusion.") and "Heat map" in image_urls(app)

    app.radio(key="gradcam_method").set_value("Grad-CAM").run()
    assert [info.value for info in app.info] == [note]
    gate.set()
    rerun_until(app, lambda app: "Heat map" in image_urls(app), timeout=120)
    assert not app.info
    assert explaining(app).endswith("with Grad-CAM on layer `conv3b`.")
