"""AppTest of the Predict page's garment box: the person hint, the suggested box, and a drawn box."""

import numpy as np
import pytest
from test_garment_box import person_photo, png

from fashion_core.photo_quality import find_person_wearing
from fashion_core.preprocess import box_drawing, drawn_box, photo_steps
from pages.common import LAST_INPUT_KEY
from tests.support import html_values, open_app, shown_class

PAGE = "pages/predict.py"
PERSON_HINT = "This looks like a person wearing the garment"


@pytest.fixture
def app():
    return open_app(PAGE)


def answer(predictor, image: np.ndarray) -> dict[str, str]:
    probabilities = predictor.predict_one(image)
    return {"Predicted class": shown_class(probabilities), "Confidence": f"{probabilities.max():.1%}"}


def test_a_person_wearing_a_shirt_is_pointed_out_and_the_box_starts_around_the_shirt(app, shipped_predictor):
    """Test that the page says a person wears the garment, and the box toggle classifies the shirt alone."""
    data = png(person_photo())
    app.file_uploader(key="predict_upload").set_value(("person.png", data, "image/png")).run()
    assert not app.exception
    hints = [info.value for info in app.info if PERSON_HINT in info.value]
    assert hints == [
        "This looks like a person wearing the garment: their head, arms and legs can be taken for part of it. "
        "Turn on **Adjust the garment box**: it starts from a box around the garment alone."
    ]
    app.toggle(key="upload_box_toggle").set_value(True).run()
    assert not app.exception
    box = find_person_wearing(photo_steps(data).original).suggested_box
    boxed = photo_steps(data, box)
    assert html_values(app) == answer(shipped_predictor, boxed.image)
    assert app.session_state[LAST_INPUT_KEY]["crop_box"] == boxed.crop_box
    np.testing.assert_array_equal(app.session_state[LAST_INPUT_KEY]["image"], boxed.image)


def test_a_garment_laid_flat_gets_no_person_hint(app):
    """Test that a photo with nobody in it shows no hint, and the box stays off until asked for."""
    flat = np.full((300, 200, 3), 200, np.uint8)
    flat[60:200, 40:160] = (40, 60, 160)
    app.file_uploader(key="predict_upload").set_value(("flat.png", png(flat), "image/png")).run()
    assert not app.exception
    assert not [info.value for info in app.info if PERSON_HINT in info.value]
    assert app.toggle(key="upload_box_toggle").value is False


def test_the_drawn_rectangle_becomes_a_box_in_photo_pixels():
    assert drawn_box(None) is None and drawn_box({"objects": [{"type": "path"}]}) is None
    assert drawn_box(box_drawing((10, 20, 110, 220))) == (10, 20, 110, 220)
    resized = {"type": "rect", "left": 5, "top": 6, "width": 50, "height": 40, "scaleX": 2, "scaleY": 1.5}
    assert drawn_box({"objects": [{"type": "rect", "left": 0, "top": 0, "width": 9, "height": 9}, resized]}) == (
        5,
        6,
        105,
        66,
    )
