"""Browser test of the Grad-CAM viewer."""

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from fashion_core.data import CLASS_NAMES
from tests.e2e.helpers import (
    FIRST_RUN_TIMEOUT_MS,
    exceptions,
    image_pixels,
    image_with_caption,
    main_area,
    open_page,
    selector,
    streamlit_server,
    wait_for_app_run,
)

pytestmark = pytest.mark.e2e

TEST_INDEX = 42


def test_an_overlay_appears_for_a_test_image(page, app_url, fashion_data):
    """Test that choosing a test image by index shows its prediction and a coloured Grad-CAM overlay."""
    open_page(page, app_url, "gradcam")
    index_input = main_area(page).get_by_label("Index (0 to 9999)")
    index_input.fill(str(TEST_INDEX))
    index_input.press("Enter")
    wait_for_app_run(page)

    true_class = CLASS_NAMES[int(fashion_data.test_labels[TEST_INDEX])]
    verdict = main_area(page).locator("p", has_text=re.compile(rf"image {TEST_INDEX} · true class: "))
    expect(verdict).to_contain_text(f"true class: {true_class} · predicted: ")
    expect(main_area(page).get_by_text("Explaining", exact=False)).to_contain_text("with Grad-CAM")
    seen = image_with_caption(main_area(page), "What the model sees (28x28)")
    overlay = image_with_caption(main_area(page), "Overlay")
    expect(overlay).to_be_visible()
    seen_pixels, overlay_pixels = image_pixels(page, seen), image_pixels(page, overlay)
    assert seen_pixels.shape == overlay_pixels.shape
    # The 28x28 is grey (R = G = B); the overlay has the colour map's colours over it.
    assert np.abs(np.diff(seen_pixels.astype(int), axis=2)).max() <= 2
    assert np.abs(np.diff(overlay_pixels.astype(int), axis=2)).mean() > 10
    expect(exceptions(page)).to_have_count(0)


@pytest.fixture
def warming_url(tmp_path):
    """A fresh server with background loads on, as the app runs for its visitors (the tests turn them off)."""
    env = {"FASHION_STUDIO_BACKGROUND_LOADS": "1"}
    with streamlit_server(tmp_path / "user_models", tmp_path / "server.log", env=env) as base_url:
        yield base_url


def test_the_page_is_usable_while_tensorflow_loads_for_grad_cam(warming_url, page):
    """Test that a first visit to the viewer on a fresh server shows the image and its prediction at once, with a
    note while TensorFlow loads for Grad-CAM; that Occlusion draws its overlay meanwhile; and that Grad-CAM's
    overlay comes by itself once TensorFlow is there."""
    open_page(page, warming_url, "gradcam", timeout=FIRST_RUN_TIMEOUT_MS)
    main = main_area(page)
    expect(main.get_by_text("Loading TensorFlow for Grad-CAM", exact=False)).to_be_visible(timeout=60_000)
    expect(image_with_caption(main, "What the model sees (28x28)")).to_be_visible()
    expect(main.locator("p", has_text="predicted:")).to_be_visible()
    expect(image_with_caption(main, "Overlay")).to_have_count(0)

    occlusion = main.locator(selector("stRadio"), has_text="Method").get_by_text("Occlusion", exact=True)
    occlusion.click()
    explaining = main.get_by_text("Explaining", exact=False)
    try:
        expect(explaining).to_contain_text("with Occlusion", timeout=10_000)
    except AssertionError:
        # A click that lands on the page's own rerun as TensorFlow arrives (the loading note's `st.rerun()`)
        # was lost once in CI; the page then shows Grad-CAM. Only then is the click made again.
        expect(main.get_by_text("Loading TensorFlow", exact=False)).to_have_count(0)
        occlusion.click()
        expect(explaining).to_contain_text("with Occlusion")
    expect(image_with_caption(main, "Overlay")).to_be_visible()

    main.locator(selector("stRadio"), has_text="Method").get_by_text("Grad-CAM", exact=True).click()
    expect(main.get_by_text("Explaining", exact=False)).to_contain_text("with Grad-CAM", timeout=FIRST_RUN_TIMEOUT_MS)
    expect(image_with_caption(main, "Overlay")).to_be_visible()
    expect(main.get_by_text("Loading TensorFlow", exact=False)).to_have_count(0)
    expect(exceptions(page)).to_have_count(0)
