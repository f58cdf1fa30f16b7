"""Browser test of the photo store: a photo corrected on the Predict page, saved, and found on the Photos page."""

import hashlib
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    alerts,
    answer_value,
    exceptions,
    image_with_caption,
    keyed,
    main_area,
    open_page,
    selector,
    upload_files,
    wait_for_app_run,
)
from tests.e2e.photos import dev_photo

pytestmark = pytest.mark.e2e


def test_a_corrected_photo_is_saved_and_shown_on_the_photos_page(page, app_url, screenshot):
    """Test that a photo whose class the user corrects is saved only on Save, and the Photos page shows it."""
    photo = dev_photo("coat")
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()[:16]
    open_page(page, app_url, "predict")
    main = main_area(page)
    upload_files(page, main.locator(selector("stFileUploader")), photo)
    predicted = answer_value(main, "Predicted class")
    expect(predicted).not_to_be_empty(timeout=60_000)
    true_class = "Dress" if predicted.inner_text() != "Dress" else "Shirt"
    save = keyed(main, "upload_save").locator("button")
    expect(save).to_be_disabled()
    expect(main.get_by_text("Nothing is kept unless you save.")).to_be_visible()

    keyed(main, f"upload_right_{digest}").get_by_text("No", exact=True).click()
    wait_for_app_run(page)
    keyed(main, f"upload_true_class_{digest}").locator(selector("stSelectbox")).click()
    page.get_by_role("option", name=true_class, exact=True).click()
    wait_for_app_run(page)
    expect(save).to_be_enabled()
    save.click()
    wait_for_app_run(page)
    saved = alerts(page, "success")
    expect(saved).to_have_text(re.compile(rf"Saved as photo #\d+: {true_class}, in the (train|val) split\."))
    photo_id, split = re.search(r"#(\d+): .* in the (\w+) split", saved.inner_text()).groups()
    screenshot(page, "saved")

    open_page(page, app_url, "photos")
    main = main_area(page)
    expect(image_with_caption(main, f"#{photo_id} · {true_class} · {split}")).to_be_visible()
    expect(main.get_by_text(re.compile(r"^\d+ photos?: \d+ train, \d+ val$"))).to_be_visible()
    expect(exceptions(page)).to_have_count(0)
