"""Browser test of the dataset browser."""

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from fashion_core.data import CLASS_NAMES
from tests.e2e.helpers import exceptions, main_area, open_page, selector, wait_for_app_run

pytestmark = pytest.mark.e2e

PER_PAGE = 48


def grid_alt(page_number: int, indices, labels) -> str:
    """The alt text of the grid's contact sheet: its page and each tile's index and label."""
    return f"Page {page_number}: " + ", ".join(f"#{index} {CLASS_NAMES[labels[index]]}" for index in indices)


def test_the_class_filter_and_the_page_change_the_grid(new_page, app_url, fashion_data):
    """Test that filtering on Sandal and turning to page 2 shows the right test images, and that the link does too."""
    labels = fashion_data.test_labels
    sandals = np.flatnonzero(labels == CLASS_NAMES.index("Sandal"))
    page = new_page()
    open_page(page, app_url, "dataset")
    grid = main_area(page).locator(selector("stImage")).locator('img[alt^="Page "]')
    expect(grid).to_have_attribute("alt", grid_alt(1, range(PER_PAGE), labels))

    main_area(page).get_by_role("combobox", name="Classes").click()
    page.get_by_role("option", name="Sandal", exact=True).click()
    page.keyboard.press("Escape")
    wait_for_app_run(page)
    expect(grid).to_have_attribute("alt", grid_alt(1, sandals[:PER_PAGE], labels))
    expect(main_area(page).get_by_text("Images 1–48 of 1,000 (test split)", exact=False)).to_be_visible()

    main_area(page).locator(selector("stPagination")).get_by_role("button", name="Page 2", exact=True).click()
    wait_for_app_run(page)
    expect(grid).to_have_attribute("alt", grid_alt(2, sandals[PER_PAGE : 2 * PER_PAGE], labels))
    expect(main_area(page).get_by_text("Images 49–96 of 1,000 (test split)", exact=False)).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]page=2\b"))
    expect(exceptions(page)).to_have_count(0)

    # The URL is the view: someone else opening it sees the same grid.
    shared = new_page()
    shared.goto(page.url)
    wait_for_app_run(shared)
    shared_grid = main_area(shared).locator(selector("stImage")).locator('img[alt^="Page "]')
    expect(shared_grid).to_have_attribute("alt", grid_alt(2, sandals[PER_PAGE : 2 * PER_PAGE], labels))
    expect(exceptions(shared)).to_have_count(0)
