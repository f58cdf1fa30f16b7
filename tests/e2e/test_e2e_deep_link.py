"""Browser test: a shared link to a page works on a server nobody has visited yet."""

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    FIRST_RUN_TIMEOUT_MS,
    exceptions,
    main_area,
    open_page,
    selector,
    sidebar,
    sidebar_model_picker,
    streamlit_server,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def fresh_url(tmp_path):
    """A server of its own that no browser has visited (requested before `page`, so it outlives the screenshot)."""
    with streamlit_server(tmp_path / "user_models", tmp_path / "server.log") as base_url:
        yield base_url


def test_a_deep_link_on_a_fresh_server_opens_the_page_in_the_app(fresh_url, page):
    """Test that a fresh server's first visit, by a link to a page, shows that page inside the app's navigation.

    With page files in a folder named `pages/`, Streamlit can run such a first visit in its legacy
    multipage mode: the sidebar then lists the files (`streamlit app`, `common`, ...) and the entry
    script, with its model picker, does not run (streamlit/streamlit#10276 discusses it).
    """
    open_page(page, fresh_url, "models", timeout=FIRST_RUN_TIMEOUT_MS)
    expect(main_area(page).locator("h1").first).to_have_text("Models")
    links = sidebar(page).locator(selector("stSidebarNavLink"))
    expect(links.filter(has_text="Home")).to_have_count(1)
    expect(links.filter(has_text="common")).to_have_count(0)
    expect(sidebar_model_picker(page)).to_have_value("default")
    expect(exceptions(page)).to_have_count(0)


def test_several_first_visits_at_once_on_a_fresh_server_all_open_their_page(fresh_url, new_page):
    """Test that three links opened at the same moment on a fresh server each show their page, with no exception.

    This is a meeting where a shared link is opened by everyone, or a sleeping app woken by several
    visitors: every session's first run starts in Streamlit's legacy mode at once.
    """
    paths = {"": "Fashion-MNIST Studio", "predict": "Predict", "dataset": "Dataset"}
    pages = [new_page() for _ in paths]
    for page, path in zip(pages, paths):
        page.goto(f"{fresh_url}/{path}", wait_until="commit")  # no wait: the three first runs overlap
    for page, title in zip(pages, paths.values()):
        expect(main_area(page).locator("h1").first).to_have_text(title, timeout=FIRST_RUN_TIMEOUT_MS)
        expect(sidebar_model_picker(page)).to_have_value("default")
        expect(exceptions(page)).to_have_count(0)
