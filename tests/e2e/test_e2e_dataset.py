"""Browser test of the dataset browser."""

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from fashion_core.data import CLASS_NAMES
from tests.e2e.helpers import exceptions, main_area, open_page, selector, wait_for_app_run

pytestmark = pytest.mark.e2e

PER_PAGE = 48
GRID_ALT = re.compile(r"^Page (\d+): (.*)$")


def shown_tiles(page) -> tuple[int, list[tuple[int, str]]]:
    """The grid's page number and its tiles as (index, label), read from the contact sheet's alt text."""
    alt = main_area(page).locator(selector("stImage")).locator('img[alt^="Page "]').get_attribute("alt")
    number, tiles = GRID_ALT.match(alt).groups()
    pairs = [re.match(r"#(\d+) (.+)", tile).groups() for tile in tiles.split(", #")]
    return int(number), [(int(index.lstrip("#")), label) for index, label in pairs]


def test_the_class_filter_and_the_page_change_the_grid(page, app_url, fashion_data):
    """Test that filtering on Sandal and turning to page 2 shows the right test images with their labels."""
    sandals = np.flatnonzero(fashion_data.test_labels == CLASS_NAMES.index("Sandal"))
    open_page(page, app_url, "dataset")
    number, tiles = shown_tiles(page)
    assert number == 1
    assert tiles[:3] == [(index, CLASS_NAMES[fashion_data.test_labels[index]]) for index in range(3)]

    main_area(page).get_by_role("combobox", name="Classes").click()
    page.get_by_role("option", name="Sandal", exact=True).click()
    page.keyboard.press("Escape")
    wait_for_app_run(page)
    expect(main_area(page).get_by_text("Images 1–48 of 1,000 (test split)", exact=False)).to_be_visible()
    number, tiles = shown_tiles(page)
    assert (number, tiles) == (1, [(int(index), "Sandal") for index in sandals[:PER_PAGE]])

    main_area(page).locator(selector("stPagination")).get_by_role("button", name="Page 2", exact=True).click()
    wait_for_app_run(page)
    expect(main_area(page).get_by_text("Images 49–96 of 1,000 (test split)", exact=False)).to_be_visible()
    number, tiles = shown_tiles(page)
    assert (number, tiles) == (2, [(int(index), "Sandal") for index in sandals[PER_PAGE : 2 * PER_PAGE]])
    assert "page=2" in page.url
    expect(exceptions(page)).to_have_count(0)
