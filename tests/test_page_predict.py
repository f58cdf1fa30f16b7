"""AppTest of the prediction page: uploads, bad files, several files, the camera, the drawing tab, the model picker."""

import base64
import csv
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from PIL import Image

from fashion_core import explain
from fashion_core.data import CLASS_NAMES, FashionMNIST
from fashion_core.inference import Predictor
from fashion_core.models import ModelOptions, build_model
from fashion_core.preprocess import photo_steps
from fashion_core.registry import ModelRegistry
from pages.common import LAST_INPUT_KEY, MODEL_NAME_KEY, load_model
from tests.bad_images import upload_cases
from tests.support import (
    REPO_ROOT,
    as_shown,
    html_figures,
    html_meters,
    html_table,
    html_value_help,
    html_values,
    image_urls,
    open_app,
    shown_class,
)

PAGE = "pages/predict.py"
INPUT_TAB_KEY = "predict_input_tab"
REAL_PHOTOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "realphotos-dev"
# class_name in MANIFEST.tsv, in dataset class order
MANIFEST_CLASS_NAMES = [
    "tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"
]  # fmt: skip


@pytest.fixture(scope="session")
def dev_photo(fashion_data):
    """`dev_photo(class_name, position=0)`: a real photo of the class from `../shared/realphotos-dev` as
    `(file name, bytes)`, or a made-up one where that folder is missing."""

    def photo(class_name: str, position: int = 0) -> tuple[str, bytes]:
        if not (REAL_PHOTOS_DIR / "MANIFEST.tsv").is_file():
            return stand_in_photo(fashion_data, class_name, position)
        with open(REAL_PHOTOS_DIR / "MANIFEST.tsv", newline="") as manifest:
            rows = csv.DictReader(manifest, delimiter="\t")
            paths = [row["relative_path"] for row in rows if row["class_name"] == class_name]
        return Path(paths[position]).name, (REAL_PHOTOS_DIR / paths[position]).read_bytes()

    return photo


def stand_in_photo(data: FashionMNIST, class_name: str, position: int) -> tuple[str, bytes]:
    """A test image of the class as a 560x560 JPEG photo: a blue garment on a light, slightly noisy floor."""
    index = np.flatnonzero(data.test_labels == MANIFEST_CLASS_NAMES.index(class_name))[position]
    garment = np.asarray(Image.fromarray(data.test_images[index]).resize((400, 400), Image.BICUBIC)) / 255.0
    floor = np.random.default_rng(position).normal(225, 4, (400, 400, 1))
    colour = np.array([40.0, 70.0, 150.0])
    photo = floor * (1 - garment[..., None]) + colour * garment[..., None]
    canvas = np.full((560, 560, 3), 225.0)
    canvas[80:480, 80:480] = photo
    buffer = io.BytesIO()
    Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return f"{class_name}-{position}.jpg", buffer.getvalue()


@pytest.fixture
def app():
    return open_app(PAGE)


def expected_answer(predictor: Predictor, data: bytes) -> tuple[str, str]:
    """The class and confidence the page must show for a photo."""
    probabilities = predictor.predict_one(photo_steps(data).image)
    return CLASS_NAMES[int(probabilities.argmax())], f"{probabilities.max():.1%}"


def shown_photo_class(predictor: Predictor, data: bytes) -> str:
    """What the page's "Predicted class" shows for a photo: the class, or "Unsure" below the shipped threshold."""
    return shown_class(predictor.predict_one(photo_steps(data).image))


def probability_bars(app) -> dict[str, str]:
    """`{class: percentage}` as the answer's probability bars show them (the top class's name in bold);
    each bar's `aria-valuenow` must say the same percentage."""
    bars = {}
    for element in app.html:
        for name, value, text, bold in html_meters(element.value):
            percentage = text.removeprefix(name)
            assert percentage == f"{value:.1f}%", (name, value, text)
            bars[f"**{name}**" if bold == name else name] = percentage
    return bars


def expected_bars(predictor: Predictor, data: bytes) -> dict[str, str]:
    """The bars the page must show for a photo: every class in the dataset's order, the top one in bold."""
    probabilities = predictor.predict_one(photo_steps(data).image)
    top = int(probabilities.argmax())
    return {(f"**{name}**" if index == top else name): f"{probability:.1%}"
            for index, (name, probability) in enumerate(zip(CLASS_NAMES, probabilities))}  # fmt: skip


def test_the_page_explains_each_input_before_anything_is_given(app):
    """Test that the empty page shows the tips, the three tabs and what to do in each."""
    assert not app.exception
    assert [tab.label for tab in app.tabs] == ["Upload", "Camera", "Draw"]
    assert "Upload one or more photos to classify them." in [info.value for info in app.info]
    app.session_state[INPUT_TAB_KEY] = "Draw"
    app.run()
    assert "Draw on the black canvas; the toolbar above it has undo and clear." in [info.value for info in app.info]
    assert app.expander[0].label == "What makes a photo work well"


def test_an_uploaded_photo_shows_its_class_confidence_bars_and_grad_cam(app, shipped_predictor, dev_photo):
    """Test that a real photo gets the shipped model's class and confidence, its bars and two overlays."""
    name, data = dev_photo("trouser")
    app.file_uploader(key="predict_upload").set_value((name, data, "image/jpeg")).run()
    assert not app.exception
    predicted, confidence = expected_answer(shipped_predictor, data)
    assert html_values(app) == {"Predicted class": predicted, "Confidence": confidence}
    assert "mirror image" in html_value_help(app)["Confidence"]  # the shipped model was trained with flips
    assert probability_bars(app) == expected_bars(shipped_predictor, data)
    figures = html_figures(app)
    assert set(figures) == {
        "What the model sees (28x28)",
        "On the model's image",
        "On the photo (the model saw only the boxed crop)",
    }
    assert figures["What the model sees (28x28)"].startswith("data:image/png;base64,")  # exact pixels
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(figures["What the model sees (28x28)"].split(",")[1]))))
    np.testing.assert_array_equal(seen, photo_steps(data).image)
    steps = {"Photo (oriented)", "Garment found", "Model input (28x28, sharpened)"}
    assert not steps & set(image_urls(app))  # drawn only once their expander is opened
    app.session_state["upload_steps"] = True  # what opening "How the photo became a 28x28 image" sends
    app.run()
    assert not app.exception and steps <= set(image_urls(app))
    last_input = app.session_state[LAST_INPUT_KEY]
    conversion = photo_steps(data)
    assert last_input["name"] == name
    np.testing.assert_array_equal(last_input["image"], conversion.image)
    assert last_input["crop_box"] == conversion.crop_box and last_input["content_box"] == conversion.content_box
    assert last_input["photo"].shape == conversion.original.shape


def test_a_bad_file_shows_its_message_and_the_good_one_is_still_classified(app, shipped_predictor, dev_photo):
    """Test that a text file renamed .png gets its error while the photo beside it is classified."""
    bad = upload_cases()["text renamed .png"]
    name, data = dev_photo("dress")
    app.file_uploader(key="predict_upload").set_value(
        [(bad.filename, bad.data, "image/png"), (name, data, "image/jpeg")]
    ).run()
    assert not app.exception
    assert [as_shown(error.value) for error in app.error] == [
        "**notes.png**: This file is text (or a web page), not an image; perhaps it was renamed to look like one. "
        "Upload a PNG, JPEG, WebP, GIF, BMP or TIFF photo. Received: first bytes=b'This is a plain '"
    ]
    assert html_values(app)["Predicted class"] == shown_photo_class(shipped_predictor, data)


@pytest.mark.parametrize(
    "case_name", ["zero bytes", "truncated JPEG", "decompression bomb PNG", "all-white image", "SVG"]
)
def test_each_bad_upload_alone_gives_an_error_and_no_result(app, case_name):
    """Test that a bad file on its own shows only its error message."""
    case = upload_cases()[case_name]
    app.file_uploader(key="predict_upload").set_value((case.filename, case.data, "application/octet-stream")).run()
    assert not app.exception
    assert len(app.error) == 1 and case.expected_error in as_shown(app.error[0].value)
    assert as_shown(app.error[0].value).startswith(f"**{case.filename}**: ")
    assert html_values(app) == {} and probability_bars(app) == {}


def test_several_files_give_a_table_and_details_of_the_chosen_one(app, shipped_predictor, monkeypatch, dev_photo):
    """Test that three uploads (one broken) give a three-row table, a CSV of it and details on request."""
    downloads = []
    download_button = st.download_button

    def recording_download_button(label, data, *args, **kwargs):
        downloads.append(data)
        return download_button(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", recording_download_button)
    photos = [dev_photo("coat"), dev_photo("shirt")]
    bad = upload_cases()["truncated PNG"]
    files = [(name, data, "image/jpeg") for name, data in photos] + [(bad.filename, bad.data, "image/png")]
    app.file_uploader(key="predict_upload").set_value(files).run()
    assert not app.exception
    assert not app.dataframe  # the table is one light HTML element
    rows = html_table(app.html[0].value)
    files = [row["File"][0] for row in rows]
    assert files == [photos[0][0], photos[1][0], "cut.png"]
    expected = [expected_answer(shipped_predictor, data) for _, data in photos]
    assert [row["Class"][0] for row in rows[:2]] == [predicted for predicted, _ in expected]
    assert [row["Confidence"][0] for row in rows] == [confidence for _, confidence in expected] + [""]
    assert rows[0]["Photo"][1].startswith("data:image/png;base64,") and rows[2]["Photo"] == ("", None)
    assert "truncated or corrupt" in rows[2]["Note"][0]
    assert app.get("download_button")[0].proto.label == "Download as CSV"
    csv_table = pd.read_csv(io.StringIO(downloads[-1]))
    assert list(csv_table["file"]) == files
    assert list(csv_table["predicted_class"][:2]) == [row["Class"][0] for row in rows[:2]]
    assert list(csv_table.columns[3:13]) == [f"p_{name}" for name in CLASS_NAMES]
    np.testing.assert_allclose(csv_table.iloc[:2, 3:13].sum(axis=1), 1.0, atol=1e-4)
    assert csv_table["error"][2].startswith("The PNG image is truncated or corrupt")
    assert html_values(app)["Predicted class"] == shown_photo_class(shipped_predictor, photos[1][1])  # the last added
    app.selectbox(key="predict_detail_file").set_value(0).run()
    assert html_values(app) == {
        "Predicted class": shown_photo_class(shipped_predictor, photos[0][1]),
        "Confidence": expected[0][1],
    }
    assert app.session_state[LAST_INPUT_KEY]["name"] == photos[0][0]


def test_file_names_are_shown_as_text_in_the_table(app, dev_photo):
    """Test that a file name holding HTML is shown as its characters, not run as markup."""
    name, data = dev_photo("coat")
    hostile = '<img src=x onerror="alert(1)">&amp;.jpg'
    app.file_uploader(key="predict_upload").set_value([(name, data, "image/jpeg"), (hostile, data, "image/jpeg")]).run()
    assert not app.exception
    body = app.html[0].value
    assert "<img src=x" not in body and 'onerror="' not in body
    assert [row["File"][0] for row in html_table(body)] == [name, hostile]


def test_the_csv_keeps_its_columns_and_quotes_file_names_when_every_file_failed():
    """Test that a CSV of failures alone has every column, and that a name with a comma and quotes survives."""
    from pages.predict import results_csv

    name = 'front, "best" side.png'
    table = pd.read_csv(io.StringIO(results_csv([], [(name, "The PNG image is truncated or corrupt.")])))
    assert list(table.columns) == ["file", "predicted_class", "confidence", *(f"p_{c}" for c in CLASS_NAMES), "error"]
    assert table["file"].tolist() == [name] and table["error"].tolist() == ["The PNG image is truncated or corrupt."]
    assert table.drop(columns=["file", "error"]).isna().all(axis=None)


def test_a_camera_photo_is_classified(app, shipped_predictor, dev_photo):
    """Test that a photo from the camera input gets a class and its own bars."""
    _, data = dev_photo("tshirt_top")
    app.session_state[INPUT_TAB_KEY] = "Camera"
    app.camera_input(key="predict_camera").set_value(("shot.jpg", data, "image/jpeg")).run()
    assert not app.exception
    predicted, confidence = expected_answer(shipped_predictor, data)
    assert html_values(app) == {"Predicted class": predicted, "Confidence": confidence}
    assert probability_bars(app) == expected_bars(shipped_predictor, data)
    assert app.session_state[LAST_INPUT_KEY]["name"] == "camera photo"


def test_the_model_picked_in_the_sidebar_makes_the_prediction(app, private_user_models, dev_photo):
    """Test that a user model chosen in the sidebar (a dense one, without conv layers) is the one used."""
    model = build_model("dense", ModelOptions(augment=False, seed=3))
    ModelRegistry(user_dir=private_user_models).save("tiny-dense", model, {"architecture": "dense"})
    app.run()
    app.sidebar.selectbox(key=MODEL_NAME_KEY).set_value("tiny-dense").run()
    name, data = dev_photo("coat", 2)
    app.file_uploader(key="predict_upload").set_value((name, data, "image/jpeg")).run()
    assert not app.exception
    predicted, confidence = expected_answer(Predictor(model), data)  # no flips in training, so no averaging
    assert html_values(app) == {"Predicted class": predicted, "Confidence": confidence}
    assert html_value_help(app)["Confidence"] == "The top probability."
    assert any(f"<strong>Why {predicted}?</strong> Occlusion" in element.value for element in app.html)


def test_below_the_models_threshold_the_page_says_unsure_with_the_top_two(app, private_user_models, dev_photo):
    """Test that an answer under the model's "unsure" threshold is replaced by "Unsure" and the top two classes."""
    model = build_model("dense", ModelOptions(augment=False, seed=3))
    selective = {"threshold": 0.999, "target_accuracy": 0.9, "accuracy": 0.91, "fitted_on": "12 photos"}
    ModelRegistry(user_dir=private_user_models).save("picky", model, {"architecture": "dense", "selective": selective})
    app.run()
    app.sidebar.selectbox(key=MODEL_NAME_KEY).set_value("picky").run()
    name, data = dev_photo("coat", 2)
    app.file_uploader(key="predict_upload").set_value((name, data, "image/jpeg")).run()
    assert not app.exception
    probabilities = Predictor(model).predict_one(photo_steps(data).image)
    first, second = np.argsort(probabilities)[::-1][:2]
    assert html_values(app)["Predicted class"] == "Unsure"
    assert app.warning[0].value == (
        f"Unsure: {CLASS_NAMES[first]} ({probabilities[first]:.0%}) or {CLASS_NAMES[second]} "
        f"({probabilities[second]:.0%}). Below 100% confidence this model does not answer: on 12 photos, the answers "
        "at or above it were right 91% of the time."
    )


# What a rerun computes: only the open tab's code, and only the new upload.


def counted(monkeypatch, owner, name: str) -> list:
    """Replaces `owner.name` with a wrapper that records each call and calls the original."""
    calls, original = [], getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_the_drawing_tab_runs_only_when_it_is_open(app, monkeypatch, dev_photo):
    """Test that uploads never run the canvas (its 280x280 pixels are decoded on each run), and Draw does."""
    # The component registers itself when imported inside a run: the page's first run has imported it.
    canvas_calls = counted(monkeypatch, sys.modules["streamlit_drawable_canvas"], "st_canvas")
    name, data = dev_photo("trouser")
    app.file_uploader(key="predict_upload").set_value((name, data, "image/jpeg")).run()
    app.run()
    assert not app.exception
    assert canvas_calls == []
    assert list(html_values(app)) == ["Predicted class", "Confidence"]
    app.session_state[INPUT_TAB_KEY] = "Draw"
    app.run()
    assert not app.exception
    assert len(canvas_calls) == 1
    assert html_values(app) == {}  # the upload's answer is not computed either
    app.session_state[INPUT_TAB_KEY] = "Upload"
    app.run()
    assert app.file_uploader(key="predict_upload").value[0].name == name  # the closed tab kept the file
    assert list(html_values(app)) == ["Predicted class", "Confidence"]


def test_a_new_upload_computes_only_itself(app, monkeypatch, dev_photo):
    """Test that adding a photo predicts and explains only that photo, and reruns reuse every result."""
    st.cache_data.clear()  # earlier tests may have cached these photos' results
    predictor = load_model("default").predictor
    predictions = counted(monkeypatch, type(predictor), "predict_one")
    explanations = counted(monkeypatch, explain, "default_explanation")
    first, second = dev_photo("dress"), dev_photo("coat")
    uploader = app.file_uploader(key="predict_upload")
    uploader.set_value((*first, "image/jpeg")).run()
    assert (len(predictions), len(explanations)) == (1, 1)
    app.file_uploader(key="predict_upload").set_value([(*first, "image/jpeg"), (*second, "image/jpeg")]).run()
    assert not app.exception
    assert len(html_table(app.html[0].value)) == 2
    assert (len(predictions), len(explanations)) == (2, 2)  # the second photo's, shown as the one just added
    assert app.selectbox(key="predict_detail_file").value == 1
    app.selectbox(key="predict_detail_file").set_value(0).run()
    app.selectbox(key="predict_detail_file").set_value(1).run()
    app.run()
    assert not app.exception
    assert (len(predictions), len(explanations)) == (2, 2)  # switching between them computes nothing again


def test_an_example_photo_is_classified_until_a_photo_is_uploaded(app, shipped_predictor, dev_photo):
    """Test that picking an example gives its answer and map (and no offer to save it), and that an upload
    replaces the examples."""
    examples = app.get("button_group")  # st.pills
    assert len(examples) == 1 and examples[0].proto.label == "No photo at hand? Try one of these"
    app.session_state["predict_example"] = "Coat"
    app.run()
    assert not app.exception
    coat = (REPO_ROOT / "assets" / "examples" / "coat.jpg").read_bytes()
    assert html_values(app)["Predicted class"] == shown_photo_class(shipped_predictor, coat)
    assert probability_bars(app) == expected_bars(shipped_predictor, coat)
    assert "On the photo (the model saw only the boxed crop)" in html_figures(app)
    assert not app.radio  # "Right?": an example is not offered to the photo store
    assert app.session_state[LAST_INPUT_KEY]["name"] == "example: Coat"

    name, data = dev_photo("dress")
    app.file_uploader(key="predict_upload").set_value((name, data, "image/jpeg")).run()
    assert not app.exception
    assert not app.get("button_group")
    assert html_values(app)["Predicted class"] == shown_photo_class(shipped_predictor, data)
    assert app.session_state[LAST_INPUT_KEY]["name"] == name
