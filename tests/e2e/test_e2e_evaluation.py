"""Browser test of the Evaluation page: its sections are tabs, and only the open one is drawn."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import exceptions, main_area, open_page, selector, wait_for_app_run

pytestmark = pytest.mark.e2e


def test_the_sections_open_as_tabs_and_the_mistakes_open_in_the_viewer(page, app_url):
    """Test that the page opens on the confusion matrix alone, that the Mistakes tab draws the gallery
    (and no chart), and that a mistake's Grad-CAM button opens the viewer."""
    open_page(page, app_url, "evaluation")
    main = main_area(page)
    expect(main.locator(selector("stPlotlyChart"))).to_have_count(1)  # the confusion matrix
    expect(main.locator(selector("stImage"))).to_have_count(0)

    main.get_by_role("tab", name="Mistakes").click()
    wait_for_app_run(page)
    expect(main.get_by_text(re.compile(r"^\d+ test images of class "))).to_be_visible()
    expect(main.locator(selector("stImage")).first).to_be_visible()
    expect(main.locator(selector("stPlotlyChart"))).to_have_count(0)

    main.get_by_role("button", name="Grad-CAM").first.click()
    expect(main.locator("h1").first).to_have_text("Grad-CAM viewer", timeout=60_000)
    expect(exceptions(page)).to_have_count(0)
