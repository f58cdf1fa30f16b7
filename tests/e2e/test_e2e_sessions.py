"""Browser test: two people classifying at the same time each see only their own result."""

import numpy as np
import pytest
from playwright.sync_api import expect

from fashion_core.preprocess import photo_to_fashion_mnist
from tests.e2e.helpers import (
    answer_value,
    choose_files,
    exceptions,
    figure_image,
    image_pixels,
    main_area,
    open_page,
    selector,
    uploaded_file_names,
    wait_for_app_run,
)
from tests.e2e.photos import dev_photo

pytestmark = pytest.mark.e2e


def shown_model_image(page) -> np.ndarray:
    """The 28x28 the page says the model saw (grey, float), scaled back down if it is sent larger."""
    pixels = image_pixels(page, figure_image(main_area(page), "What the model sees (28x28)")).mean(axis=2)
    scale = pixels.shape[0] // 28
    return pixels[: 28 * scale, : 28 * scale].reshape(28, scale, 28, scale).mean(axis=(1, 3))


def test_two_sessions_at_once_each_get_their_own_prediction(new_page, app_url):
    """Test that two browser contexts uploading different photos at once each see only their own result."""
    photos = [dev_photo("trouser", 1), dev_photo("tshirt_top", 1)]
    expected = [photo_to_fashion_mnist(photo.read_bytes()).astype(float) for photo in photos]
    assert np.abs(expected[0] - expected[1]).mean() > 20, "the two photos must look different to the model"
    pages = [new_page(), new_page()]
    for page in pages:
        open_page(page, app_url, "predict")
    for page, photo in zip(pages, photos):
        # No wait between the two: the second upload is sent while the first one's run is going on.
        choose_files(page, main_area(page).locator(selector("stFileUploader")), photo)
    for page, photo, own, other in zip(pages, photos, expected, expected[::-1]):
        wait_for_app_run(page)
        expect(answer_value(main_area(page), "Predicted class")).to_be_visible(timeout=60_000)
        files = uploaded_file_names(main_area(page).locator(selector("stFileUploader")))
        expect(files).to_have_count(1)
        expect(files).to_have_attribute("title", photo.name)
        seen = shown_model_image(page)
        # Its own photo's 28x28 (up to JPEG noise), far from the other one's.
        assert np.abs(seen - own).mean() < 0.25 * np.abs(seen - other).mean(), "a page shows another upload"
        expect(exceptions(page)).to_have_count(0)
