"""Helpers for the AppTests of the Train and Models pages (no fixtures: tests/conftest.py is shared)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


def navigation_app(monkeypatch, page: str) -> AppTest:
    """An AppTest of the entry script, switched to `page`.

    With a `pages/` folder next to it, AppTest would run pages the old (folder) way, without the
    entry script and its sidebar; an `st.navigation` app always runs the entry script.
    """
    original_init = PagesManager.__init__

    def init_in_navigation_mode(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_in_navigation_mode)
    app = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    app.run()
    return app.switch_page(page).run()


def plotly_specs(app: AppTest) -> dict[str, dict]:
    """Every Plotly figure on the page as the browser receives it, by the end of its element id (the key)."""
    return {element.proto.id: json.loads(element.proto.spec) for element in app.get("plotly_chart")}


def plotly_spec(app: AppTest, key: str) -> dict:
    """The Plotly figure of the chart with `key`."""
    matches = [spec for element_id, spec in plotly_specs(app).items() if element_id.endswith(key)]
    assert len(matches) == 1, f"expected one Plotly chart with key {key!r}, found {len(matches)}"
    return matches[0]


def rerun_until(app: AppTest, condition, timeout: float = 90.0, pause: float = 0.3):
    """Reruns the app until `condition(app)` is truthy (what a user sees on refresh); returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        app.run()
        assert not app.exception, app.exception
        value = condition(app)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not reach the expected state within {timeout} s")
        time.sleep(pause)
