"""Browser tests of the prediction page: upload, broken upload, drawing and the camera input."""

import io
import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from fashion_core.data import CLASS_NAMES
from fashion_core.metadata import ModelMetadata
from fashion_core.preprocess import ImageError, photo_steps
from tests.conftest import SHIPPED_MODEL_DIR
from tests.e2e.helpers import (
    alerts,
    answer_value,
    exceptions,
    keyed,
    main_area,
    open_page,
    selector,
    upload_files,
    wait_for_app_run,
)
from tests.e2e.photos import dev_photo

pytestmark = pytest.mark.e2e

# A class, or "Unsure" for a photo under the model's confidence threshold.
ANY_CLASS = re.compile("^(" + "|".join(re.escape(name) for name in [*CLASS_NAMES, "Unsure"]) + ")$")


def truncated_png() -> bytes:
    """The first 200 bytes of a real PNG: what an interrupted download leaves."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()[:200]


def shown_probabilities(bars) -> tuple[list[str], list[float], list[str]]:
    """Classes, probabilities and bold names read off the answer's probability bars (a `meter` per class,
    its name, bar and percentage; the percentage must be the meter's `aria-valuenow`)."""
    classes, probabilities = [], []
    for meter in bars.get_by_role("meter").all():
        shown = meter.locator("span").last.inner_text().strip()
        assert shown == f"{meter.get_attribute('aria-valuenow')}%"
        classes.append(meter.get_attribute("aria-label"))
        probabilities.append(float(shown.rstrip("%")) / 100)
    return classes, probabilities, bars.get_by_role("meter").locator("strong").all_inner_texts()


def expect_prediction(page) -> str:
    """Checks a result's class and its ten probability bars agree; returns the class."""
    main = main_area(page)
    predicted = answer_value(main, "Predicted class")
    expect(predicted).to_have_text(ANY_CLASS, timeout=60_000)
    bars = main.locator(selector("stHtml")).filter(has=page.get_by_role("meter"))
    expect(bars.get_by_role("meter")).to_have_count(len(CLASS_NAMES))
    classes, probabilities, bold = shown_probabilities(bars)
    assert classes == list(CLASS_NAMES)
    assert sum(probabilities) == pytest.approx(1.0, abs=0.01)  # each shown to 0.1%
    top_class = classes[int(np.argmax(probabilities))]
    assert bold == [top_class]
    threshold = ModelMetadata.read(SHIPPED_MODEL_DIR).selective.threshold
    expect(predicted).to_have_text(top_class if max(probabilities) >= threshold else "Unsure")
    expect(answer_value(main, "Confidence")).to_have_text(f"{max(probabilities):.1%}")
    return top_class


def test_an_uploaded_photo_gets_a_class_and_probability_bars(page, app_url):
    """Test that uploading a real photo shows the predicted class, its confidence and all ten probabilities,
    and that opening the steps' expander draws each preprocessing step."""
    open_page(page, app_url, "predict")
    upload_files(page, main_area(page).locator(selector("stFileUploader")), dev_photo("trouser"))
    expect_prediction(page)
    expect(main_area(page).get_by_text("What the model sees (28x28)")).to_be_visible()
    steps = keyed(main_area(page), "upload_steps")
    expect(steps.get_by_text("Photo (oriented)")).to_have_count(0)
    steps.get_by_text("How the photo became a 28x28 image").click()
    expect(steps.get_by_text("Photo (oriented)")).to_be_visible()
    expect(steps.locator(selector("stImage"))).to_have_count(5)
    expect(exceptions(page)).to_have_count(0)


def delta_paths(frames: list) -> list[tuple[int, ...]]:
    """Where each element or block the server sent in these WebSocket frames goes (`delta_path`:
    0 is the main area, 1 the sidebar, then the index of each container down to the element)."""
    messages = [ForwardMsg.FromString(frame) for frame in frames if isinstance(frame, bytes)]
    return [tuple(message.metadata.delta_path) for message in messages if message.WhichOneof("type") == "delta"]


def test_an_upload_redraws_only_the_upload_tab(page, app_url):
    """Test that adding a photo reruns only the Upload tab's fragment: the server sends the answer, and
    nothing for the sidebar, the title, the tips or the tabs themselves."""
    frames = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda frame: frames.append(frame)))
    open_page(page, app_url, "predict")
    uploader = main_area(page).locator(selector("stFileUploader"))
    upload_paths = [path for path in delta_paths(frames) if len(path) > 3]
    tab_path = upload_paths[0][:3]  # main area, the tabs, the Upload tab
    frames.clear()

    upload_files(page, uploader, dev_photo("trouser"))
    expect_prediction(page)
    paths = delta_paths(frames)
    assert len(paths) > 5  # the uploader, the answer, the explanation, "Right?"
    assert all(path[:3] == tab_path and len(path) > 3 for path in paths), paths


def test_an_example_photo_gets_an_answer_until_a_photo_is_uploaded(page, app_url):
    """Test that a click on an example photo's pill shows its answer and map, and an upload replaces it."""
    open_page(page, app_url, "predict")
    examples = main_area(page).locator(selector("stButtonGroup"))
    examples.get_by_text("Coat", exact=True).click()
    wait_for_app_run(page)
    expect_prediction(page)
    expect(main_area(page).get_by_text("On the photo (the model saw only the boxed crop)")).to_be_visible()
    upload_files(page, main_area(page).locator(selector("stFileUploader")), dev_photo("dress"))
    expect_prediction(page)
    expect(examples).to_have_count(0)
    expect(exceptions(page)).to_have_count(0)


def test_a_broken_upload_gives_its_message_and_the_page_keeps_working(page, app_url):
    """Test that a truncated PNG shows why it cannot be read, and a good photo uploaded next is classified."""
    broken = truncated_png()
    with pytest.raises(ImageError) as raised:
        photo_steps(broken)
    explanation = str(raised.value).split(" Received:")[0]

    open_page(page, app_url, "predict")
    uploader = main_area(page).locator(selector("stFileUploader"))
    upload_files(page, uploader, {"name": "broken.png", "mimeType": "image/png", "buffer": broken})
    message = alerts(page, "error")
    expect(message).to_have_count(1)
    expect(message).to_contain_text(f"broken.png: {explanation}")
    expect(exceptions(page)).to_have_count(0)

    coat = dev_photo("coat")
    upload_files(page, uploader, coat)
    expect_prediction(page)
    expect(alerts(page, "error")).to_contain_text("broken.png")  # still listed, next to the good photo's result
    rows = main_area(page).locator(f"{selector('stHtml')} table tbody tr")  # the table of both files
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(coat.name)
    expect(rows.nth(1)).to_contain_text("broken.png")
    thumbnail = rows.nth(0).locator("img")
    expect(thumbnail).to_have_attribute("src", re.compile("^data:image/png;base64,"))
    assert thumbnail.evaluate("(image) => image.complete && image.naturalWidth > 0")
    expect(exceptions(page)).to_have_count(0)


def draw_a_shirt(page, canvas) -> None:
    """Fills a T-shirt silhouette in one brush stroke that zigzags row by row (one stroke: one rerun)."""
    box = canvas.bounding_box()
    left, top, size = box["x"], box["y"], box["width"]
    # (height, left end, right end) of each row, as fractions of the canvas: sleeves, then the body.
    rows = [(0.15, 0.1, 0.9), (0.25, 0.1, 0.9)] + [(height / 20, 0.25, 0.75) for height in range(7, 19, 2)]
    page.mouse.move(left + rows[0][1] * size, top + rows[0][0] * size)
    page.mouse.down()
    for number, (height, start, end) in enumerate(rows):
        first, last = (start, end) if number % 2 == 0 else (end, start)
        page.mouse.move(left + first * size, top + height * size, steps=4)
        page.mouse.move(left + last * size, top + height * size, steps=12)
    page.mouse.up()


def test_a_drawing_gets_a_prediction(page, app_url):
    """Test that brush strokes on the canvas give a class and a probability chart."""
    open_page(page, app_url, "predict")
    main_area(page).get_by_role("tab", name="Draw").click()
    canvas = main_area(page).locator("canvas.upper-canvas")
    expect(canvas).to_be_visible()
    expect(main_area(page).get_by_text("Draw on the black canvas", exact=False)).to_be_visible()
    draw_a_shirt(page, canvas)
    wait_for_app_run(page)
    expect_prediction(page)
    expect(exceptions(page)).to_have_count(0)


def test_the_camera_input_is_there(page, app_url):
    """Test that the Camera tab offers Streamlit's camera input (no camera is used)."""
    open_page(page, app_url, "predict")
    main_area(page).get_by_role("tab", name="Camera").click()
    camera = main_area(page).locator(selector("stCameraInput"))
    expect(camera).to_be_visible()
    expect(camera).to_contain_text("Take a photo of one clothing item")
    expect(exceptions(page)).to_have_count(0)
