"""Browser-test fixtures: one `streamlit run` server and one Chromium for all of `tests/e2e/`, a page per test.

Every test's page records the browser console; a test fails when an error shows up there, and the
final state of its pages is saved as a full-page screenshot in `test-artifacts/e2e/<test name>.png`,
on failure too. The server and the browser are package-scoped: they stop when the browser tests are
done, before the rest of the suite runs.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.helpers import (
    FIRST_RUN_TIMEOUT_MS,
    REPO_ROOT,
    ConsoleErrors,
    open_page,
    save_screenshot,
    streamlit_server,
)

ARTIFACTS_DIR = REPO_ROOT / "test-artifacts" / "e2e"
# Debian's Chromium unless FASHION_STUDIO_CHROMIUM names another (`playwright install` needs the internet).
CHROMIUM = os.environ.get("FASHION_STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 1000}

# The machine is loaded (two cores, a training in the background): give the browser time.
expect.set_options(timeout=20_000)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Marks every test in this folder `e2e`, so that `-m "not e2e"` leaves the browser out."""
    folder = Path(__file__).resolve().parent
    for item in items:
        if folder in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="package")
def user_models_dir():
    """Where the app under test saves models: a temporary folder, never the real `user_models/`."""
    with tempfile.TemporaryDirectory(prefix="e2e-user-models-") as folder:
        yield Path(folder)


@pytest.fixture(scope="package")
def browser():
    """Debian's Chromium, driven by Playwright (never `playwright install`: there is no internet)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}: `apt-get install chromium`, or set "
            "FASHION_STUDIO_CHROMIUM to the path of a Chromium or Chrome executable."
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def app_url(browser, user_models_dir, tmp_path_factory):
    """The base URL of a `streamlit run streamlit_app.py` server shared by the browser tests.

    Its first session opens Home, so that importing TensorFlow and loading the model are paid once,
    before any test's timeouts run. (A first visit by a link to a page is tested on a server of its
    own, in `test_e2e_deep_link.py`.)
    """
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    with streamlit_server(user_models_dir, log_path) as base_url:
        context = browser.new_context()
        try:
            open_page(context.new_page(), base_url, timeout=FIRST_RUN_TIMEOUT_MS)
        finally:
            context.close()
        yield base_url


def screenshot_name(request) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")


@pytest.fixture
def console_errors():
    """Console errors and uncaught exceptions of every page a test watches."""
    return ConsoleErrors()


@pytest.fixture
def new_page(browser, console_errors, request):
    """Opens pages, each in its own browser context (its own Streamlit session), watched and screenshotted.

    When the test ends, the pages' final state goes to `test-artifacts/e2e/<test name>.png` (several pages
    side by side).
    """
    contexts, pages = [], []

    def open_new_page():
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(60_000)
        page = context.new_page()
        console_errors.watch(page, label=f"page {len(pages) + 1}")
        contexts.append(context)
        pages.append(page)
        return page

    yield open_new_page
    try:
        if pages:
            save_screenshot(pages, ARTIFACTS_DIR / f"{screenshot_name(request)}.png")
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def screenshot(request):
    """Saves a page's state in the middle of a test, as `test-artifacts/e2e/<test name>-<label>.png`."""

    def save(page, label: str) -> None:
        save_screenshot([page], ARTIFACTS_DIR / f"{screenshot_name(request)}-{label}.png")

    return save


@pytest.fixture
def page(new_page):
    """One browser page in a fresh context."""
    return new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fails a test whose pages logged a console error, after the test body itself passed."""
    result = yield
    errors = item.funcargs.get("console_errors")
    if errors is not None and errors.unexpected():
        pytest.fail("The browser console logged errors:\n" + "\n".join(errors.unexpected()), pytrace=False)
    return result
