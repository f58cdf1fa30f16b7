"""What the Grad-CAM and Evaluation page tests share: starting the app on a page, reading images and charts.

`tests/conftest.py` makes AppTest run the entry script on every run, as the server does.
"""

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


def navigation_app(page: str) -> AppTest:
    """An AppTest of the entry script, run once on `page` (a path such as `"pages/gradcam.py"`)."""
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
