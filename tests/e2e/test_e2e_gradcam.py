"""Browser test of the Grad-CAM viewer."""

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from fashion_core.data import CLASS_NAMES
from tests.e2e.helpers import exceptions, image_pixels, image_with_caption, main_area, open_page, wait_for_app_run

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
