"""AppTest of the Evaluation page: metrics, confusion matrix, per-class scores, mistakes gallery."""

import numpy as np
import pytest

from fashion_core.data import CLASS_NAMES, load_fashion_mnist
from tests.support import image_urls, metrics, open_app, plotly_array, plotly_spec

PAGE = "pages/evaluation.py"


@pytest.fixture
def app():
    return open_app(PAGE)


def open_section(app, section: str):
    """Opens one of the page's tabs ("Mistakes", "Confidence", "Real photos"); only the open one is drawn."""
    app.session_state["evaluation_section"] = section
    app.run()
    assert not app.exception
    return app


def confusion_matrix_shown(app) -> np.ndarray:
    return plotly_array(plotly_spec(app, "evaluation_confusion")["data"][0]["z"])


def gallery_captions(app) -> list[str]:
    return [caption for caption in image_urls(app) if caption.startswith("#")]


def test_confusion_matrix_counts_every_test_image_and_matches_the_metrics(app):
    """Test that the matrix sums to 10000 (1000 a class) and its diagonal gives the accuracy shown."""
    assert not app.exception
    matrix = confusion_matrix_shown(app)
    assert matrix.shape == (10, 10) and matrix.sum() == 10000
    np.testing.assert_array_equal(matrix.sum(axis=1), np.full(10, 1000))
    shown = metrics(app)
    assert shown["Test accuracy"] == f"{np.trace(matrix) / 10000:.2%}"
    assert shown["Mistakes (of 10,000)"] == f"{10000 - int(np.trace(matrix)):,}"

    per_class = app.dataframe[0].value
    assert list(per_class["Class"]) == list(CLASS_NAMES)
    np.testing.assert_allclose(per_class["Recall"], np.diag(matrix) / 10)  # percent
    np.testing.assert_allclose(per_class["Precision"], 100 * np.diag(matrix) / matrix.sum(axis=0))
    off_diagonal = matrix - np.diag(np.diag(matrix))
    pairs = app.dataframe[1].value
    true, predicted = np.unravel_index(off_diagonal.argmax(), matrix.shape)
    assert pairs.iloc[0].tolist()[:3] == [CLASS_NAMES[true], CLASS_NAMES[predicted], off_diagonal.max()]


def test_normalised_matrix_has_rows_summing_to_one(app):
    """Test that the toggle shows each true class's row as shares."""
    counts = confusion_matrix_shown(app)
    app.toggle(key="evaluation_normalize").set_value(True).run()
    assert not app.exception
    shares = confusion_matrix_shown(app)
    np.testing.assert_allclose(shares.sum(axis=1), np.ones(10))
    np.testing.assert_allclose(shares, counts / 1000)
    assert plotly_spec(app, "evaluation_confusion")["data"][0]["text"][0][0].endswith("%")


def test_choosing_a_pair_shows_its_mistakes_with_and_without_gradcam(app):
    """Test that a chosen pair's gallery holds its mistakes, and the Grad-CAM toggle redraws the thumbnails."""
    matrix = confusion_matrix_shown(app)
    off_diagonal = matrix - np.diag(np.diag(matrix))
    second_pair = divmod(int(np.argsort(-off_diagonal, axis=None, kind="stable")[1]), 10)
    open_section(app, "Mistakes")
    assert not app.get("plotly_chart")  # the confusion matrix's tab is closed, and not drawn
    app.selectbox(key="evaluation_pair").set_value(second_pair).run()
    assert not app.exception
    true, predicted = second_pair
    count = int(matrix[true, predicted])
    assert app.selectbox(key="evaluation_pair").options[1] == (
        f"{CLASS_NAMES[true]} predicted as {CLASS_NAMES[predicted]} ({count})"
    )
    caption = next(c.value for c in app.caption if "test images of class" in c.value)
    assert caption.startswith(f"{count} test images of class {CLASS_NAMES[true]} predicted as {CLASS_NAMES[predicted]}")
    plain = image_urls(app)
    assert len(gallery_captions(app)) == min(count, 12)

    app.toggle(key="evaluation_maps").set_value(True).run()
    assert not app.exception
    with_maps = image_urls(app)
    assert gallery_captions(app) == [caption for caption in plain if caption.startswith("#")]
    assert all(with_maps[caption] != plain[caption] for caption in gallery_captions(app))


def test_open_in_gradcam_switches_to_the_viewer_with_that_image(app):
    """Test that a thumbnail's button opens that test image in the Grad-CAM viewer."""
    first = gallery_captions(open_section(app, "Mistakes"))[0]
    index = int(first.split()[0].lstrip("#"))
    app.button(key=f"evaluation_open_{index}").click().run()
    assert not app.exception
    assert app.title[0].value == "Grad-CAM viewer"
    assert app.number_input(key="gradcam_index").value == index
    headline = next(m.value for m in app.markdown if "predicted:" in m.value)
    assert headline.startswith(f"**Test image {index}** · ") and headline.endswith("✗")


def test_missing_dataset_gives_the_message_and_no_exception(no_dataset):
    """Test that without Fashion-MNIST the page says how to get it instead of failing."""
    app = open_app(PAGE)
    assert not app.exception
    assert app.error[0].value.startswith("**The Fashion-MNIST dataset is not available.** Fashion-MNIST was not")
    assert not app.get("plotly_chart")


def test_confidence_shows_reliability_on_test_and_photos_and_marks_the_unsure_point(private_user_models):
    """Test that the reliability diagram, its ECEs and the coverage curve with the model's threshold are drawn."""
    from fashion_core import calibration
    from fashion_core.evaluation import evaluate_model
    from fashion_core.models import ModelOptions, build_model
    from fashion_core.registry import ModelRegistry

    model = build_model("dense", ModelOptions(augment=False, seed=5))
    selective = {"threshold": 0.15, "target_accuracy": 0.9, "accuracy": 0.2, "coverage": 0.5, "fitted_on": "photos"}
    ModelRegistry(user_dir=private_user_models).save("picky", model, {"architecture": "dense", "selective": selective})
    app = open_app(PAGE)
    app.sidebar.selectbox(key="model_name").set_value("picky").run()
    open_section(app, "Confidence")

    data = load_fashion_mnist(download=False)
    test_probabilities = evaluate_model(model, data.test_images, data.test_labels).probabilities
    test_ece = calibration.expected_calibration_error(test_probabilities, data.test_labels)
    assert metrics(app)["Calibration error, test"] == f"{test_ece:.1%}"
    assert metrics(app)['"Unsure" below'] == "15%"
    reliability = plotly_spec(app, "evaluation_reliability")["data"]
    assert [trace["name"] for trace in reliability][:2] == ["Perfect calibration", f"Test images (ECE {test_ece:.1%})"]
    assert reliability[2]["name"].startswith("Real photos (ECE ")

    coverage = plotly_spec(app, "evaluation_coverage")["data"]
    thresholds = plotly_array(coverage[0]["customdata"])
    answered = int((thresholds >= 0.15).sum())
    marker = coverage[-1]
    assert marker["name"] == '"Unsure" below 15%'
    assert marker["x"][0] == pytest.approx(answered / len(thresholds))
    assert marker["y"][0] == pytest.approx(plotly_array(coverage[0]["y"])[answered - 1])


def test_real_photos_without_store_photos_show_the_reference_photos(app):
    """Test that with an empty photo store the Real photos tab says how to add photos, and meanwhile scores the
    model on the reference photos' val split."""
    from fashion_core import calibration
    from fashion_core.evaluation import evaluate_model
    from pages.common import load_model

    try:
        images, labels = calibration.labelled_photos(calibration.REAL_PHOTOS_DIR, "val")
    except calibration.CalibrationError as error:
        pytest.skip(f"The reference photos are not there: {error}")
    open_section(app, "Real photos")
    assert app.info[0].value.startswith("The photo store has no val photos yet.")
    expected = evaluate_model(load_model("default").predictor, images, labels)
    assert any(f"the {len(labels)} val photos of realphotos-cc0" in caption.value for caption in app.caption)
    assert metrics(app)[f"Photo val accuracy ({len(labels)} photos)"] == f"{expected.accuracy:.2%}"
    table = app.dataframe[0].value.set_index("Class")
    assert table["Val photos"].sum() == len(labels)
