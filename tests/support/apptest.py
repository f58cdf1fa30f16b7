"""The app under Streamlit's AppTest: one builder, and one reader per kind of element."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRY_SCRIPT = REPO_ROOT / "streamlit_app.py"
HOME_PAGE = "pages/home.py"
TIMEOUT = 120  # seconds a run may take: the first one loads TensorFlow and the model on a loaded machine


def open_app(page: str = HOME_PAGE, query_params: dict | None = None, timeout: float = TIMEOUT) -> AppTest:
    """The app as a visitor opens it: the entry script run once on `page`, as a link to it would.

    `tests/conftest.py` makes every AppTest run go through the entry script (its navigation and
    sidebar), as the server does.

    Args:
        page: the page file, such as `"pages/dataset.py"`. Defaults to Home.
        query_params: the link's query parameters. Defaults to none.
        timeout: seconds each run may take. Defaults to `TIMEOUT`.

    Returns:
        The `AppTest`, after its first run.
    """
    app = AppTest.from_file(str(ENTRY_SCRIPT), default_timeout=timeout)
    app.query_params.update(query_params or {})
    if page != HOME_PAGE:
        app.switch_page(page)
    return app.run()


def rerun_until(app: AppTest, condition: Callable[[AppTest], object], timeout: float = 60.0, pause: float = 0.2):
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


def plotly_specs(app: AppTest) -> dict[str, dict]:
    """Every Plotly figure on the page as the browser receives it, by element id (which ends with its key)."""
    return {element.proto.id: json.loads(element.proto.spec) for element in app.get("plotly_chart")}


def plotly_spec(app: AppTest, key: str) -> dict:
    """The Plotly figure of the one chart with `key`."""
    matches = [spec for element_id, spec in plotly_specs(app).items() if element_id.endswith(key)]
    assert len(matches) == 1, f"expected one Plotly chart with key {key!r}, found {len(matches)}"
    return matches[0]


def image_urls(app: AppTest) -> dict[str, str]:
    """Caption -> media URL of every image shown (the URL is a hash of the image's bytes)."""
    return {caption: url for element in app.image for caption, url in zip(element.captions, element.value, strict=True)}


def metrics(app: AppTest) -> dict[str, str]:
    """Label -> value of every `st.metric`."""
    return {metric.label: metric.value for metric in app.metric}


class _TableReader(HTMLParser):
    """Collects an HTML table's cells: `rows` of `(text, img src or None)` per cell, the header row first."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append(("", None))
        elif tag == "img" and self.rows and self.rows[-1]:
            self.rows[-1][-1] = (self.rows[-1][-1][0], dict(attrs).get("src"))

    def handle_data(self, data: str) -> None:
        if self.rows and self.rows[-1]:
            text, image = self.rows[-1][-1]
            self.rows[-1][-1] = (text + data, image)


def html_table(body: str) -> list[dict[str, tuple[str, str | None]]]:
    """The rows of the HTML table in `body` (an `st.html` element's value), as a reader sees them:
    `{column header: (cell text, image source or None)}`, entities unescaped."""
    reader = _TableReader()
    reader.feed(body)
    header, *rows = reader.rows
    names = [text for text, _ in header]
    return [dict(zip(names, row, strict=True)) for row in rows]


class _MeterReader(HTMLParser):
    """Collects each `role="meter"` element: `(aria-label, aria-valuenow, its text, its <strong> text)`."""

    def __init__(self) -> None:
        super().__init__()
        self.meters: list[list] = []
        self._depth = 0  # of open elements inside the current meter
        self._strong = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if attributes.get("role") == "meter":
            self.meters.append([attributes.get("aria-label"), float(attributes["aria-valuenow"]), "", ""])
            self._depth = 1
        elif self._depth:
            self._depth += 1
            self._strong = self._strong or tag == "strong"

    def handle_endtag(self, tag: str) -> None:
        if self._depth:
            self._depth -= 1
            self._strong = self._strong and tag != "strong"

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.meters[-1][2] += data
            self.meters[-1][3] += data if self._strong else ""


def html_meters(body: str) -> list[tuple[str, float, str, str]]:
    """The `role="meter"` elements in `body` (an `st.html` element's value), in order, as
    `(aria-label, aria-valuenow, visible text, bold part of that text)`."""
    reader = _MeterReader()
    reader.feed(body)
    return [tuple(meter) for meter in reader.meters]


class _AnswerReader(HTMLParser):
    """Collects `<dt>`/`<dd>` pairs with the `title` of the element around them, and each `<figure>`'s
    image source and caption."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.titles: dict[str, str] = {}
        self.figures: dict[str, str] = {}
        self._title = ""
        self._open: str | None = None  # "dt", "dd" or "figcaption" while inside one
        self._text = ""
        self._label = ""
        self._source = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "div":
            self._title = attributes.get("title") or ""
        elif tag == "img":
            self._source = attributes.get("src") or ""
        elif tag in ("dt", "dd", "figcaption"):
            self._open, self._text = tag, ""

    def handle_endtag(self, tag: str) -> None:
        if tag != self._open:
            return
        self._open = None
        if tag == "dt":
            self._label = self._text
            if self._title:
                self.titles[self._text] = self._title
        elif tag == "dd":
            self.values[self._label] = self._text
        else:
            self.figures[self._text] = self._source

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text += data


def _read_answers(app: AppTest) -> _AnswerReader:
    reader = _AnswerReader()
    for element in app.html:
        reader.feed(element.value)
    return reader


def html_values(app: AppTest) -> dict[str, str]:
    """Label -> value of every `<dt>`/`<dd>` pair in the page's `st.html` elements (the Predict page's
    "Predicted class" and "Confidence"), entities unescaped."""
    return _read_answers(app).values


def html_value_help(app: AppTest) -> dict[str, str]:
    """Label -> tooltip (`title`) of the `<dt>`/`<dd>` pairs that have one."""
    return _read_answers(app).titles


def html_figures(app: AppTest) -> dict[str, str]:
    """Caption -> image source (a data URI) of every `<figure>` in the page's `st.html` elements."""
    return _read_answers(app).figures


def caption_starting(app: AppTest, prefix: str) -> str:
    """The one caption that starts with `prefix`."""
    captions = [caption.value for caption in app.caption if caption.value.startswith(prefix)]
    assert len(captions) == 1, f"expected one caption starting {prefix!r}, found {captions}"
    return captions[0]


def as_shown(markdown: str) -> str:
    """Markdown as a reader sees its characters: backslash escapes removed (bold and other markup kept)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def shown_class(probabilities, model_dir: Path = REPO_ROOT / "model_artifacts" / "default") -> str:
    """What the Predict page's "Predicted class" shows for these probabilities: the top class, or
    "Unsure" below the model's selective-answer threshold (`metadata.json`'s `selective`)."""
    from fashion_core.data import CLASS_NAMES
    from fashion_core.metadata import ModelMetadata

    selective = ModelMetadata.read(model_dir).selective
    if selective is not None and probabilities.max() < selective.threshold:
        return "Unsure"
    return CLASS_NAMES[int(probabilities.argmax())]


def tensorflow_still_loading(monkeypatch) -> threading.Event:
    """Background loads on, with every Keras model's load held back until the returned event is set.

    What a page meets while the server imports TensorFlow: `keras_model_ready` shows its note until the
    event is set. Keras-model loads that an earlier test finished are forgotten, so they start again.
    """
    from pages import common

    monkeypatch.setenv(common.BACKGROUND_LOADS_ENV, "1")
    futures = common._loader()[1]
    for name in [name for name in futures if name.startswith("keras model ")]:
        monkeypatch.delitem(futures, name)
    gate = threading.Event()
    keras_model = common.LoadedModel.model.fget

    def model_after_the_gate(loaded):
        assert gate.wait(120), "the test never let the Keras model load"
        return keras_model(loaded)

    monkeypatch.setattr(common.LoadedModel, "model", property(model_after_the_gate))
    return gate


def wait_for_warmup() -> None:
    """Waits for the loads the entry script starts after a first run (the model, the dataset)."""
    from pages import common

    for name in ("model", "dataset"):
        future = common.background_load(name)
        if future is not None:
            future.result(timeout=120)
