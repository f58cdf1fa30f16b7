"""What the Grad-CAM and Evaluation page tests share: an AppTest that reruns the entry script like the server does.

`AppTest` resets `PagesManager.uses_pages_directory` before every run, and since this repository has a
`pages/` folder the flag then turns on: every run after the first executes the current page file alone,
as in the old `pages/`-folder mode, skipping `streamlit_app.py` (no sidebar model picker, so the chosen
model is forgotten on the third run). `streamlit run` sets the flag once, and `st.navigation` turns it
off for good; `navigation_app` restores that.
"""

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


def navigation_app(monkeypatch, page: str) -> AppTest:
    """An AppTest of the entry script that always runs it (as `st.navigation` apps do), switched to `page`."""
    original_init = PagesManager.__init__

    def init_in_navigation_mode(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_in_navigation_mode)
    app = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    return app.switch_page(page).run()


def image_urls(app: AppTest) -> dict[str, str]:
    """Caption -> media URL of every image shown (the URL is a hash of the image's bytes)."""
    return {caption: url for element in app.image for caption, url in zip(element.captions, element.value, strict=True)}


def plotly_spec(app: AppTest, key: str) -> dict:
    """The Plotly figure of the chart with `key`, as the browser receives it."""
    charts = [element for element in app.get("plotly_chart") if element.proto.id.endswith(key)]
    assert len(charts) == 1, f"expected one Plotly chart with key {key!r}, found {len(charts)}"
    return json.loads(charts[0].proto.spec)


def plotly_array(value) -> np.ndarray:
    """A Plotly spec's array: a plain (nested) list, or Plotly's typed array `{dtype, bdata, shape}`."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        if shape is not None:
            array = array.reshape([int(size) for size in str(shape).split(",")])
        # Plotly packs small integers as int16; widen them so arithmetic on counts cannot overflow.
        return array.astype(np.int64) if array.dtype.kind in "iu" else array
    return np.asarray(value)
