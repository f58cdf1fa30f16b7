"""Helpers for the browser tests: waiting for Streamlit, finding its elements, console and screenshots.

Streamlit marks its root element `[data-testid="stApp"]` with `data-test-connection-state`
(`CONNECTED` once the websocket is up) and `data-test-script-state` (`running`, `notRunning`, ...),
and marks the elements of the previous run `data-stale="true"` until the new run has redrawn them.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 90
RUN_TIMEOUT_MS = 120_000  # the test machine is loaded (two cores shared with trainings)
FIRST_RUN_TIMEOUT_MS = 300_000  # a server's first run imports TensorFlow and loads the model
RUN_START_GRACE_MS = 1_500  # how long an action may take to start a rerun
CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
RUNNING = '[data-testid="stApp"]:not([data-test-script-state="notRunning"])'
NOT_RUNNING = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# Every element of the run is drawn: none left from the previous run, none still loading its code.
DRAWN = """() => !document.querySelector('[data-stale="true"], [data-testid="stSkeleton"]')"""
IMAGES_LOADED = "() => [...document.images].every((image) => image.complete)"
SCREENSHOT_SETTLE_MS = 10_000
MAX_SCREENSHOT_HEIGHT = 8_000
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Streamlit's own noise on a deep link (streamlit/streamlit#7074): the frontend first tries the page path
# as a base path (`/gradcam/_stcore/health`, 404) and then the root. The app is not involved.
DEEP_LINK_PROBE = re.compile(r"^/[^/]+/_stcore/(health|host-config)$")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_is_healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=5) as response:
            return response.read().decode().strip() == "ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_healthy(server: subprocess.Popen, base_url: str, log_path: Path) -> None:
    """Waits for the health endpoint to say "ok"; raises with the server's output if it never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        if server_is_healthy(base_url):
            return
        time.sleep(0.5)
    output = log_path.read_text(errors="replace")[-5000:]
    state = f"exited with code {server.returncode}" if server.poll() is not None else "never answered"
    raise RuntimeError(
        f"`streamlit run streamlit_app.py` {state} within {STARTUP_TIMEOUT_S} s "
        f"({base_url}/_stcore/health). Its output:\n{output}"
    )


def stop(server: subprocess.Popen) -> None:
    """Terminates the server, and kills it if it has not stopped after 15 s."""
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=15)


@contextlib.contextmanager
def streamlit_server(user_models_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Runs `streamlit run streamlit_app.py` on a free local port; yields its base URL, then stops it.

    Saved models go to `user_models_dir` (`FASHION_STUDIO_MODELS_DIR`), never to `user_models/`, and
    saved photos to a store beside the log (`FASHION_STUDIO_PHOTO_DB`), never to `data/photos.sqlite3`.
    File watching is off: files edited while the tests run must not rerun the app under test. `env`
    adds environment variables (`FASHION_STUDIO_BACKGROUND_LOADS=1`, say: the tests turn them off).
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FASHION_STUDIO_MODELS_DIR": str(user_models_dir), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    env["FASHION_STUDIO_PHOTO_DB"] = str(log_path.parent / "photos.sqlite3")
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py"]
    command += ["--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1"]
    command += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with log_path.open("w") as log:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(server, base_url, log_path)
        yield base_url
    finally:
        stop(server)


def selector(name: str) -> str:
    """The CSS selector of Streamlit's elements with `data-testid=name`."""
    return f'[data-testid="{name}"]'


def wait_for_app_run(page: Page, timeout: int = RUN_TIMEOUT_MS) -> None:
    """Waits until the app has connected and its script run (if one is starting) has finished.

    An action (a click, an upload) starts its rerun a moment later, so this first gives a run up to
    `RUN_START_GRACE_MS` to start, then waits for it to end, for stale elements to be redrawn and
    for lazily loaded widgets (sliders, charts) to replace their skeletons.
    """
    page.wait_for_selector(CONNECTED, timeout=timeout)
    # Timing out here means the run was already over, or the action started none.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_selector(RUNNING, timeout=RUN_START_GRACE_MS)
    page.wait_for_selector(NOT_RUNNING, timeout=timeout)
    page.wait_for_function(DRAWN, timeout=timeout)


def open_page(page: Page, base_url: str, path: str = "", timeout: int = RUN_TIMEOUT_MS) -> None:
    """Opens the app at `path` (a page's url path, `""` for Home) and waits for its first run to end."""
    page.goto(f"{base_url}/{path.lstrip('/')}")
    wait_for_app_run(page, timeout=timeout)


def main_area(page: Page) -> Locator:
    return page.locator(selector("stMain"))


def sidebar(page: Page) -> Locator:
    return page.locator(selector("stSidebar"))


def exceptions(page: Page) -> Locator:
    return page.locator(selector("stException"))


def alerts(page: Page, kind: str | None = None) -> Locator:
    """Streamlit's `st.error`/`st.warning`/`st.info`/`st.success` boxes (`kind` filters, e.g. "error")."""
    if kind is None:
        return page.locator(selector("stAlert"))
    return page.locator(f"{selector('stAlert')}:has({selector(f'stAlertContent{kind.capitalize()}')})")


def sidebar_model_picker(page: Page) -> Locator:
    return sidebar(page).get_by_role("combobox", name="Model", exact=True)


def sidebar_model_options(page: Page) -> list[str]:
    """The names the sidebar's model picker offers (its list is opened, read and closed)."""
    sidebar_model_picker(page).click()
    options = page.get_by_role("option")
    options.first.wait_for()
    names = [text.strip() for text in options.all_inner_texts()]
    page.keyboard.press("Escape")
    return names


@dataclass
class ConsoleErrors:
    """Records the console errors and uncaught exceptions of the pages it watches."""

    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def watch(self, page: Page, label: str = "page") -> None:
        page.on("console", lambda message: self._on_console(message, label))
        page.on("pageerror", lambda error: self.errors.append(f"{label}: uncaught exception: {error}"))

    def _on_console(self, message, label: str) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        text = f"{label}: {message.text} (at {url or 'unknown'})"
        (self.ignored if is_external_noise(message.text, url) else self.errors).append(text)

    def unexpected(self) -> list[str]:
        return list(self.errors)


def is_external_noise(text: str, url: str) -> bool:
    """Whether a console error is about the outside world, not the app.

    Two kinds are: a resource on another host that did not load (the test machine has no internet;
    Streamlit fetches a `:material/...:` page icon for the favicon from fonts.gstatic.com), and the
    404s of Streamlit's deep-link base-path probe.
    """
    parsed = urlparse(url)
    if text.startswith("Failed to load resource") and parsed.hostname and parsed.hostname not in LOCAL_HOSTS:
        return True
    return "status of 404" in text and bool(DEEP_LINK_PROBE.match(parsed.path))


def main_content_height(page: Page) -> int:
    """The height the page needs to show everything: Streamlit scrolls inside `stMain`, not the window."""
    return page.evaluate(
        """() => {
            const heights = [document.documentElement.scrollHeight];
            for (const id of ['stMain', 'stSidebarContent']) {
                const element = document.querySelector(`[data-testid="${id}"]`);
                if (element) heights.push(element.scrollHeight);
            }
            return Math.max(...heights);
        }"""
    )


def full_screenshot(page: Page) -> Image.Image:
    """A picture of the whole page: the viewport is stretched to the content's height for the shot.

    Streamlit scrolls inside `stMain`, so Playwright's `full_page` alone would stop at the window's
    height. Stretching can reflow the page (charts resize), so the height is measured until it settles.
    """
    with contextlib.suppress(PlaywrightError):  # take the picture anyway: it may show why a test failed
        page.wait_for_function(f"() => ({DRAWN})() && ({IMAGES_LOADED})()", timeout=SCREENSHOT_SETTLE_MS)
    viewport = page.viewport_size
    height = viewport["height"]
    try:
        for _ in range(3):
            needed = min(max(main_content_height(page), viewport["height"]), MAX_SCREENSHOT_HEIGHT)
            if needed == height:
                break
            height = needed
            page.set_viewport_size({"width": viewport["width"], "height": height})
            page.wait_for_timeout(250)  # a picture, not a check: let the reflow and Plotly's resize finish
        png = page.screenshot(full_page=True, animations="disabled")
    finally:
        page.set_viewport_size(viewport)
    return Image.open(io.BytesIO(png)).convert("RGB")


def save_screenshot(pages: list[Page], path: Path) -> None:
    """Saves the final state of `pages` (side by side if several) as one PNG; never raises on a dead page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shots = []
    for page in pages:
        try:
            shots.append(full_screenshot(page))
        except PlaywrightError:
            continue
    if not shots:
        return
    gap = 16
    sheet = Image.new(
        "RGB", (sum(shot.width for shot in shots) + gap * (len(shots) - 1), max(shot.height for shot in shots)), "gray"
    )
    left = 0
    for shot in shots:
        sheet.paste(shot, (left, 0))
        left += shot.width + gap
    sheet.save(path)


def image_pixels(page: Page, image: Locator) -> np.ndarray:
    """The pixels of a shown `<img>` as an RGB array, from its `src`: a data URI's own bytes, or fetched
    through the page's context."""
    source = image.get_attribute("src")
    if source.startswith("data:"):
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB"))
    response = page.request.get(source)
    assert response.ok, f"{source} answered {response.status}"
    return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))


def image_with_caption(scope: Locator, caption: str) -> Locator:
    """The `<img>` of the `st.image` whose caption is exactly `caption`."""
    container = scope.locator(selector("stImageContainer")).filter(
        has=scope.page.locator(selector("stImageCaption"), has_text=re.compile(f"^{re.escape(caption)}$"))
    )
    return container.locator("img")


def figure_image(scope: Locator, caption: str) -> Locator:
    """The `<img>` of the HTML `<figure>` whose `<figcaption>` is exactly `caption`."""
    figure = scope.locator("figure").filter(
        has=scope.page.locator("figcaption", has_text=re.compile(f"^{re.escape(caption)}$"))
    )
    return figure.locator("img")


def choose_files(page: Page, uploader: Locator, files) -> None:
    """Gives files to an `st.file_uploader` through its own file chooser (the rerun is not awaited).

    Args:
        files: paths, or `{"name", "mimeType", "buffer"}` dicts of bytes in memory.
    """
    # "Upload" while empty, then "Add files"; the others remove an uploaded file.
    add_button = uploader.locator(selector("stFileUploaderDropzone")).locator('button:not([aria-label^="Remove"])')
    with page.expect_file_chooser() as chooser:
        add_button.click()
    chooser.value.set_files(files)


def upload_files(page: Page, uploader: Locator, files) -> None:
    """Uploads files through an `st.file_uploader`'s file chooser and waits for the rerun."""
    choose_files(page, uploader, files)
    wait_for_app_run(page)


def uploaded_file_names(uploader: Locator) -> Locator:
    """The chips of an `st.file_uploader`'s files; each one's `title` is the full file name."""
    return uploader.locator(selector("stFileChipName"))


def metric_value(scope: Locator, label: str) -> Locator:
    """The value of the `st.metric` labelled `label`."""
    metric = scope.locator(selector("stMetric")).filter(
        has=scope.page.locator(selector("stMetricLabel"), has_text=re.compile(f"^{re.escape(label)}$"))
    )
    return metric.locator(selector("stMetricValue"))


def answer_value(scope: Locator, label: str) -> Locator:
    """The value (`<dd>`) labelled `label` (`<dt>`) in an HTML element: the Predict page's answer."""
    pair = scope.locator("dl > div").filter(has=scope.page.locator("dt", has_text=re.compile(f"^{re.escape(label)}$")))
    return pair.locator("dd")


def keyed(scope: Locator | Page, key: str) -> Locator:
    """The element drawn with `key=key` (Streamlit gives its container the class `st-key-<key>`)."""
    return scope.locator(f".st-key-{key}")


def slider_input(page: Page, label: str) -> Locator:
    """The `<input type="range">` of the main area's slider labelled `label`."""
    label_element = page.locator(selector("stWidgetLabel"), has_text=re.compile(f"^{re.escape(label)}$"))
    return main_area(page).locator(selector("stSlider")).filter(has=label_element).locator('input[type="range"]')


def press_on_slider(page: Page, label: str, key: str) -> None:
    """Presses a key (`Home`: minimum, `End`: maximum, arrows: one step) on the slider labelled `label`."""
    slider = slider_input(page, label)
    slider.focus()
    slider.press(key)
    wait_for_app_run(page)
