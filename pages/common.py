"""What every page shares: cached resources, the model picker and error messages.

This module is the only Streamlit-aware glue besides the pages themselves; the work is done by
`fashion_core`. Session-state keys that pages pass to each other live here as constants.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import io
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from streamlit.connections import BaseConnection
from streamlit.errors import StreamlitAPIException
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from fashion_core import calibration
from fashion_core.artifacts import file_sha256, stored_test_evaluation, write_test_probabilities
from fashion_core.browse import upscale
from fashion_core.data import DatasetError, FashionMNIST, load_fashion_mnist
from fashion_core.evaluation import EvaluationReport, evaluate_model
from fashion_core.metadata import ModelMetadata
from fashion_core.photo_data import PHOTO_DB_ENV
from fashion_core.registry import DEFAULT_MODEL_NAME, ModelEntry, ModelRegistry, RegistryError
from fashion_core.serving import LiteRTPredictor, ServingError

if TYPE_CHECKING:
    from fashion_core.inference import Predictor
    from fashion_core.photostore import PhotoStore

SERVING_ENV = "FASHION_STUDIO_SERVING"
PREDICT_PAGE = "pages/predict.py"
MODEL_NAME_KEY = "model_name"  # the model chosen in the sidebar, shared by every page
GRADCAM_REQUEST_KEY = "gradcam_request"  # an image another page wants to open in the Grad-CAM viewer
LAST_INPUT_KEY = "last_prediction_input"  # the last upload or drawing of the prediction page
REQUESTED_MODEL_KEY = "requested_model_name"  # a model to select on the next run (see request_model)
PHOTO_CONNECTION = "photos"  # the photo store's section in secrets.toml: [connections.photos]


def legacy_pages_run() -> bool:
    """Whether Streamlit is running a page file on its own, as a legacy (v1) multipage app would.

    Streamlit treats an app with a `pages/` folder beside its entry as a v1 multipage app until
    `st.navigation` first runs, so on a fresh server the first run of each session (a deep link, or
    several visitors at once) may execute a page file directly, without the entry's navigation and
    model picker. Such a run registers every file of `pages/` as a page, this one included, which
    the entry's navigation never does: that tells this session's run apart from the others', whatever
    Streamlit's process-wide flag says at this moment.
    """
    context = get_script_run_ctx()
    if context is None:
        return False
    this_file = Path(__file__).resolve()
    return any(
        Path(page.get("script_path") or "").resolve() == this_file
        for page in context.pages_manager.get_pages().values()
    )


def app_page(page_function: Callable[[], None]) -> Callable[[], None]:
    """Decorates a page's one function: when Streamlit ran the page file alone (see
    `legacy_pages_run`), it turns the legacy mode off and runs the session again through the entry
    script, which keeps the URL, so the same page opens with the navigation and the sidebar.

    This is the only place that handles the legacy mode, and it acts when the page is called, never
    while a module is imported: a rerun raised during an import would leave a half-initialised
    module for the other sessions importing it at the same moment.
    """

    @functools.wraps(page_function)
    def run_page() -> None:
        if legacy_pages_run():
            PagesManager.uses_pages_directory = False  # from now on, every session runs the entry
            st.rerun()
        page_function()

    return run_page


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: object) -> str:
    """`text` with every character Markdown (and Streamlit's extensions) would interpret escaped.

    Use it for anything a user typed or uploaded (a file name, a model name, an error that quotes
    either) before it goes into `st.markdown`, `st.error` and the like.
    """
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def code_span(text: object) -> str:
    """`text` as an inline code span, which Markdown shows as it is (its backticks become quotes)."""
    return "`" + str(text).replace("`", "'") + "`"


@dataclass(frozen=True)
class LoadedModel:
    """A model of the registry ready to answer: its entry and the predictor the app uses.

    The predictor runs the folder's checked LiteRT file (no TensorFlow) when there is one made from
    today's `model.keras`, else the Keras model through TensorFlow. The Keras model itself, which
    gradients and training need, is loaded only when `model` is first read.
    """

    name: str
    entry: ModelEntry
    predictor: LiteRTPredictor | Predictor

    @property
    def metadata(self) -> ModelMetadata:
        return self.entry.metadata

    @property
    def serves_on_litert(self) -> bool:
        return isinstance(self.predictor, LiteRTPredictor)

    @property
    def model(self):
        """The Keras model (imports TensorFlow on first use; cached per process)."""
        return _cached_keras_model(self.name, str(self.entry.path), _modified_ns(self.entry))


def registry() -> ModelRegistry:
    """The registry (cheap to build: it reads folders when asked)."""
    return ModelRegistry()


@st.cache_resource(show_spinner="Loading Fashion-MNIST...")
def _cached_dataset() -> FashionMNIST:
    return load_fashion_mnist(download=False)


def dataset() -> FashionMNIST:
    """The dataset, loaded once per process and shared (read-only) by every session.

    Raises:
        DatasetError: when it is not installed; pages show `show_dataset_error`.
    """
    return _cached_dataset()


def dataset_or_message() -> FashionMNIST | None:
    """The dataset, or `None` after showing how to get it (the rest of the app keeps working)."""
    try:
        return dataset()
    except DatasetError as error:
        show_dataset_error(error)
        return None


def show_dataset_error(error: DatasetError) -> None:
    st.error(f"**The Fashion-MNIST dataset is not available.** {error}", icon=":material/database_off:")


def _modified_ns(entry: ModelEntry) -> int:
    # Part of every cache key below, so that a model deleted and saved again is reloaded.
    return entry.model_file.stat().st_mtime_ns


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def _cached_keras_model(name: str, path: str, modified_ns: int):
    return registry().load(name)


def serving_runtime() -> str:
    """`"litert"` (the default) or `"tensorflow"`, from `$FASHION_STUDIO_SERVING`: which runtime answers.

    TensorFlow serving is there to compare the two (the benchmarks do) and for a model folder
    without a LiteRT file; LiteRT answers the same to 1e-5 with a tenth of the memory.
    """
    return "tensorflow" if os.environ.get(SERVING_ENV, "").strip().lower() == "tensorflow" else "litert"


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def _cached_model(name: str, path: str, modified_ns: int) -> LoadedModel:
    entry = registry().entry(name)
    try:
        if serving_runtime() == "tensorflow":
            raise ServingError(f"${SERVING_ENV} asks for TensorFlow serving.")
        predictor = LiteRTPredictor.from_model_dir(entry.path)
    except ServingError:  # no checked LiteRT file (or TensorFlow asked for): serve the Keras model
        from fashion_core.inference import Predictor

        keras_model = _cached_keras_model(name, path, modified_ns)
        predictor = Predictor(keras_model, flip_average=entry.metadata.trained_with_flips)
    return LoadedModel(name=name, entry=entry, predictor=predictor)


def readable_entry(name: str) -> ModelEntry:
    """The registry entry of `name`, with its metadata, without loading the model; `RegistryError` if unreadable."""
    entry = registry().entry(name)
    if not entry.readable:
        raise RegistryError(f"Model {name!r} is unreadable: {entry.error}")
    return entry


def load_model(name: str) -> LoadedModel:
    """Loads a registry model once per process (safe mode); raises `RegistryError` if it cannot."""
    entry = readable_entry(name)
    return _cached_model(name, str(entry.path), _modified_ns(entry))


def readable_model_names(warn: bool = True) -> list[str]:
    """Names of the models that can be picked: the shipped default first.

    An unreadable user folder is said once per run (by the sidebar's picker); other lists pass `warn=False`.
    """
    try:
        return [entry.name for entry in registry().list_models() if entry.readable]
    except RegistryError as error:
        if warn:
            st.warning(str(error))
        return [DEFAULT_MODEL_NAME] if registry().default_entry().readable else []


def request_model(name: str) -> None:
    """Asks for `name` to become the model in use from the next run on (safe to call anywhere)."""
    st.session_state[REQUESTED_MODEL_KEY] = name


def use_for_predictions(name: str) -> None:
    """Makes `name` the app's model and opens the prediction page (or reruns where there is none)."""
    request_model(name)
    try:
        st.switch_page(PREDICT_PAGE)
    except StreamlitAPIException:  # the page is not in this app's navigation
        st.rerun()


def sidebar_model_picker() -> None:
    """The sidebar's model select box, drawn by the entry script on every run so its choice persists."""
    names = readable_model_names()
    if not names:
        st.session_state.pop(MODEL_NAME_KEY, None)
        return
    requested = st.session_state.pop(REQUESTED_MODEL_KEY, None)
    if requested in names:
        st.session_state[MODEL_NAME_KEY] = requested
    if st.session_state.get(MODEL_NAME_KEY) not in names:
        st.session_state[MODEL_NAME_KEY] = names[0]
    st.sidebar.selectbox("Model", names, key=MODEL_NAME_KEY, help="The model every page uses.")


def current_model() -> LoadedModel | None:
    """The model chosen in the sidebar, or `None` after saying in the page why there is none."""
    return _chosen_model(load_model)


def current_model_entry() -> ModelEntry | None:
    """The registry entry (metadata) of the model chosen in the sidebar, without loading the model, or
    `None` after saying in the page why there is none.

    For what shows only facts about the model (Home's card): the first page a fresh server draws then
    does not wait for the serving runtime's import and the model file's load (0.08 s on two cores),
    which the background warm-up does next (`start_warmup`).
    """
    return _chosen_model(readable_entry)


def _chosen_model(read: Callable[[str], LoadedModel | ModelEntry]):
    name = st.session_state.get(MODEL_NAME_KEY)
    if name is None:
        st.error(
            "No model is available: the shipped model `model_artifacts/default` is missing or unreadable. "
            "Train one on the Train page, or run `python -m fashion_core train --out model_artifacts/default`.",
            icon=":material/error:",
        )
        return None
    try:
        return read(name)
    except RegistryError as error:
        st.error(str(error), icon=":material/error:")
        return None


@st.cache_resource(show_spinner="Evaluating the model on the test set...", max_entries=4)
def _cached_test_evaluation(name: str, path: str, modified_ns: int) -> EvaluationReport:
    labels = dataset().test_labels
    stored = stored_test_evaluation(path, labels)
    if stored is not None:
        return stored
    loaded = _cached_model(name, path, modified_ns)
    report = evaluate_model(loaded.predictor, dataset().test_images, labels)
    with contextlib.suppress(OSError):  # best effort: the next process reads them instead of predicting
        write_test_probabilities(
            path, report.probabilities, file_sha256(loaded.entry.model_file), loaded.predictor.flip_average
        )
    return report


def test_evaluation(loaded: LoadedModel) -> EvaluationReport:
    """The model's predictions on the 10000 test images: stored beside the model, else computed once and stored.

    Raises:
        DatasetError: when the dataset is not installed.
    """
    return _cached_test_evaluation(loaded.name, str(loaded.entry.path), _modified_ns(loaded.entry))


def test_accuracy_metric(container, metadata: ModelMetadata) -> None:
    """The "Test accuracy" metric of a model as the app's predictions get it, saying so when it is flip-averaged."""
    accuracy, plain = metadata.reported_test_accuracy, metadata.test_accuracy
    flip_averaged = accuracy is not None and plain is not None and accuracy != plain
    container.metric(
        "Test accuracy",
        "unknown" if accuracy is None else f"{accuracy:.2%}",
        help=f"Averaged with mirror images, as the app predicts; a plain `model(x)` call gets {plain:.2%}."
        if flip_averaged
        else None,
    )


def image_bytes(pixels: np.ndarray, image_format: str = "PNG") -> bytes:
    """uint8 grey or RGB pixels encoded as PNG (lossless: upscaled pixels stay sharp) or JPEG (quality 90:
    small for photos and smooth maps)."""
    from PIL import Image  # here, not at the top: Home's first run needs no image encoding

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    return buffer.getvalue()


def as_display_image(image: np.ndarray, size: int = 140) -> np.ndarray:
    """A 28x28 uint8 image upscaled with nearest neighbours, so pixels stay crisp on screen."""
    return upscale(image, max(size // image.shape[0], 1))


# ---------------------------------------------------------------------------------------------------
# The photo store


# `fashion_core.photostore` (and SQLAlchemy, 0.2 s) is imported where it is used, not by the first page
# a visitor opens; the background loader imports it while they read that page (`start_warmup`).


class PhotoStoreConnection(BaseConnection["PhotoStore"]):
    """The labelled-photo store as a Streamlit connection, shared by every session of the process.

    `st.connection("photos", type=PhotoStoreConnection)` opens the database named by `url` under
    `[connections.photos]` in `.streamlit/secrets.toml` (a SQLAlchemy URL: a PostgreSQL server keeps
    the photos when a Community Cloud app restarts on a fresh disk); without it, the `url` passed in
    (the app passes `$FASHION_STUDIO_PHOTO_DB`), else the SQLite file `data/photos.sqlite3`.

    Example `.streamlit/secrets.toml`:

        [connections.photos]
        url = "postgresql+psycopg://user:password@db.example.com:5432/photos"
    """

    def _connect(self, url: str | None = None, **kwargs) -> PhotoStore:
        from fashion_core.photostore import PhotoStore

        return PhotoStore(self._secrets.get("url") or url)

    @property
    def store(self) -> PhotoStore:
        """The `PhotoStore` (reopened after `reset()`)."""
        return self._instance

    def close(self) -> None:
        if self._raw_instance is not None:
            self._raw_instance.close()


def photo_store() -> PhotoStore | None:
    """The app's photo store, or `None` after saying in the page why it cannot be opened."""
    from fashion_core.photostore import PhotoStoreError

    try:
        # The variable is part of the cache key, so a store moved by it is opened anew.
        connection = st.connection(PHOTO_CONNECTION, type=PhotoStoreConnection, url=os.environ.get(PHOTO_DB_ENV))
        return connection.store
    except PhotoStoreError as error:
        st.error(f"**The photo store cannot be opened.** {escape_markdown(error)}", icon=":material/database_off:")
        return None


@st.cache_resource
def _photo_accuracies() -> dict[tuple, float]:
    """`{(model name, model file time, store URL, val fingerprint): accuracy}` of every evaluation so far."""
    return {}


@st.cache_data(show_spinner="Evaluating the model on the stored photos...", max_entries=16)
def _cached_photo_evaluation(
    name: str, path: str, modified_ns: int, store_url: str, fingerprint: str, _store: PhotoStore
) -> EvaluationReport:
    # The val photos' fingerprint is part of the key: a photo added, removed or relabelled evaluates again.
    from fashion_core.photostore import Split, evaluate_on_photos

    return evaluate_on_photos(_cached_model(name, path, modified_ns).predictor, _store, Split.VAL)


def _photo_key(entry: ModelEntry, store: PhotoStore, fingerprint: str) -> tuple:
    return (entry.name, entry.model_file.stat().st_mtime_ns, store.url, fingerprint)


def photo_evaluation(loaded: LoadedModel, store: PhotoStore) -> EvaluationReport | None:
    """The model's `EvaluationReport` on the store's val photos (cached per model and photo set); `None` without any.

    Raises:
        PhotoStoreError: when the database fails.
    """
    from fashion_core.photostore import Split

    fingerprint = store.fingerprint(Split.VAL)
    if not sum(store.counts().val):
        return None
    key = _photo_key(loaded.entry, store, fingerprint)
    report = _cached_photo_evaluation(loaded.name, str(loaded.entry.path), key[1], store.url, fingerprint, store)
    _photo_accuracies()[key] = report.accuracy
    return report


@st.cache_data(show_spinner="Converting the labelled reference photos...")
def _reference_photos() -> tuple[np.ndarray, np.ndarray] | None:
    try:
        return calibration.labelled_photos(calibration.REAL_PHOTOS_DIR, "val")
    except calibration.CalibrationError:
        return None


@st.cache_resource(show_spinner="Scoring the reference photos...", max_entries=4)
def _cached_reference_evaluation(name: str, path: str, modified_ns: int) -> EvaluationReport | None:
    photos = _reference_photos()
    if photos is None:
        return None
    images, labels = photos
    return evaluate_model(_cached_model(name, path, modified_ns).predictor, images, labels)


def reference_photo_evaluation(loaded: LoadedModel) -> EvaluationReport | None:
    """The model on the `val` photos of `../shared/realphotos-cc0` (once per model file), or `None` without them."""
    return _cached_reference_evaluation(loaded.name, str(loaded.entry.path), _modified_ns(loaded.entry))


def known_photo_accuracy(entry: ModelEntry, store: PhotoStore, fingerprint: str) -> float | None:
    """A model's accuracy on the store's val photos if it was evaluated on this very set; else `None`."""
    return _photo_accuracies().get(_photo_key(entry, store, fingerprint))


# ---------------------------------------------------------------------------------------------------
# After every script run: what Streamlit does then, made cheap for an app that keeps TensorFlow loaded.
#
# After every run of every session (full runs and fragment runs alike), Streamlit 1.67's script
# runner calls `_clean_problem_modules()` (`streamlit/runtime/scriptrunner/script_runner.py`). Once
# `keras` is in `sys.modules` that calls `keras.backend.clear_session()`, which
#
# - resets Keras' global state, also under a training job running in a background thread;
# - empties TensorFlow's kernel cache, so the next prediction and Grad-CAM take about 160 ms instead
#   of 7 ms (measured on the shipped model, 2-core machine);
# - runs a full `gc.collect()`: about 200 ms with TensorFlow's 350,000 objects in the heap.
#
# Streamlit does it for scripts that build a new Keras model on every rerun. This app never does: its
# models are loaded once per process (`st.cache_resource`) and trained in a background job, so the
# call only costs time, about 0.4 s of CPU per rerun, and with eight sessions at once or the Train
# page's live refresh it is most of what the server does. Streamlit has no option to skip it (its
# only related setting, `runner.postScriptGC`, is the separate `gc.collect(2)` below), so
# `install_rerun_cleanup()` replaces that one module-level function with `clean_after_script_run`,
# which keeps the rest of Streamlit's cleanup (closing Matplotlib figures) and leaves Keras alone.
# The runner looks the function up by name after every run, so the replacement takes effect from the
# first run on. `tests/test_rerun_cleanup.py` fails if a rerun calls `clear_session()` again (a new
# Streamlit that renames the function, say).
#
# Streamlit also runs `gc.collect(2)` after every run (`runner.postScriptGC`, on by default, so that
# apps don't grow between runs). A full collection scans every tracked object, TensorFlow's included:
# about 200 ms per run. `clean_after_script_run` therefore moves the objects of newly imported
# libraries into the permanent generation (`gc.freeze()`, after a collection) once an import has
# brought in many modules, so Streamlit's collection keeps freeing what the runs leave behind but no
# longer walks TensorFlow's heap.

# `gc.freeze()` again once this many modules have been imported since the last freeze: TensorFlow
# and Keras bring about 3,000, a page's own imports a few dozen.
MODULES_BEFORE_FREEZE = 300

_modules_at_last_freeze = 0


def freeze_long_lived_objects(force: bool = False) -> bool:
    """Moves the heap into the permanent GC generation if many modules were imported since last time.

    Args:
        force: freeze even without new imports (after loading a model, say). Defaults to `False`.

    Returns:
        Whether it froze (after a full collection, so no garbage is frozen with the libraries).
    """
    global _modules_at_last_freeze
    if not force and len(sys.modules) - _modules_at_last_freeze < MODULES_BEFORE_FREEZE:
        return False
    gc.collect()
    gc.freeze()
    _modules_at_last_freeze = len(sys.modules)
    return True


def clean_after_script_run() -> None:
    """Streamlit's post-run cleanup without `keras.backend.clear_session()` (see the comment above)."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    freeze_long_lived_objects()


def install_rerun_cleanup() -> None:
    """Makes Streamlit's script runner call `clean_after_script_run` after each run (idempotent).

    Raises:
        RuntimeError: when this Streamlit's script runner has no `_clean_problem_modules` to replace
            (the pinned version has it; a new one must be checked by hand before the pin moves).
    """
    if not hasattr(script_runner, "_clean_problem_modules"):
        raise RuntimeError(
            "Streamlit's script runner no longer has `_clean_problem_modules`: check whether it still clears "
            "the Keras session after every run before upgrading (see install_rerun_cleanup in pages/common.py). "
            f"Received: streamlit {sys.modules['streamlit'].__version__}"
        )
    script_runner._clean_problem_modules = clean_after_script_run


# ---------------------------------------------------------------------------------------------------
# Loading in the background: what the first visitors need is loading while they read the Home page.
#
# Streamlit runs nothing until a first browser connects, and each session's script blocks while a
# cached resource loads. So the entry script calls `start_warmup()` on every run; once per process
# it starts one background thread that loads the default model and then the dataset, through the
# same cached loaders the pages use, so a page that asks for them later gets them
# from the cache. A page that needs something still loading calls `loaded_or_waiting(name)`: while
# the load runs the page shows a short "Loading ..." note and stops there (the sidebar and the rest
# of the app stay usable), and it reruns itself when the load is done.
#
# `load_in_background(name, load)` starts any other load the same way, once per process: the Grad-CAM
# viewer and the Dataset page's embedding map load the Keras model (and with it TensorFlow) so, in a
# thread of its own (`keras_model_ready`).
# With `FASHION_STUDIO_BACKGROUND_LOADS=0` (the tests set it, so that an AppTest's first run shows the
# page, not the note) nothing loads in the background: every page loads what it needs itself.

BACKGROUND_LOADS_ENV = "FASHION_STUDIO_BACKGROUND_LOADS"
LOAD_CHECK_EVERY_S = 0.5
KERAS_MODEL_GRACE_S = 0.3  # how long `keras_model_ready` waits before it shows its note
LOAD_MESSAGES = {
    "model": "Loading the model...",
    "dataset": "Loading Fashion-MNIST...",
}


# A load started `when_quiet` waits until no page has run for QUIET_S (visitors' clicks and uploads go
# first: on two cores, the dataset's 0.4 s of decompression made a first visitor's first answer 0.2 s
# slower), but never longer than QUIET_WAIT_CAP_S, and not at all once a page waits for a load.
QUIET_S = 1.0
QUIET_WAIT_CAP_S = 15.0


class ServerActivity:
    """How many page runs are going on, when the last one ended, and whether a page waits for a load."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._last_end = time.monotonic()
        self.page_waiting = threading.Event()

    @contextlib.contextmanager
    def page_run(self) -> Iterator[None]:
        """Counts the run of the `with` block (a page's script) as activity, however it ends."""
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._last_end = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last page run ended; 0 while one is going on."""
        with self._lock:
            return 0.0 if self._running else time.monotonic() - self._last_end

    def wait_until_quiet(self, quiet_s: float = QUIET_S, cap_s: float = QUIET_WAIT_CAP_S) -> None:
        """Returns once no page has run for `quiet_s`, a page waits for a load, or `cap_s` has passed."""
        deadline = time.monotonic() + cap_s
        while time.monotonic() < deadline and not self.page_waiting.is_set():
            quiet = self.quiet_for()
            if quiet >= quiet_s:
                return
            self.page_waiting.wait(min(quiet_s - quiet, deadline - time.monotonic(), 0.1))


@st.cache_resource(show_spinner=False)
def server_activity() -> ServerActivity:
    """The process's one `ServerActivity` (the entry script counts every page run in it)."""
    return ServerActivity()


def activity_fragment(function: Callable) -> Callable:
    """`st.fragment` whose runs count as activity (`counted_as_activity`), as the entry script counts
    every full page run.

    A fragment's rerun (an upload on the Predict page, say) skips the entry script; without this,
    a visitor adding photos one after another would look like a quiet server, and the loads that
    wait for a quiet moment would take the CPU from their answers. For a visitor's actions, not for
    fragments that refresh themselves (`run_every`).
    """
    return st.fragment(counted_as_activity(function))


def counted_as_activity(function: Callable) -> Callable:
    """`function`, counted as a page run in `server_activity()` while it runs (it returns nothing)."""

    @functools.wraps(function)
    def counted(*args, **kwargs) -> None:
        with server_activity().page_run():
            function(*args, **kwargs)

    return counted


@st.cache_resource(show_spinner=False)
def _loader() -> tuple[ThreadPoolExecutor, dict[str, Future]]:
    # One worker: loads run one after another, so they don't fight over the cores with each other.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fashion-studio-load"), {}


@st.cache_resource(show_spinner=False)
def _tensorflow_loader() -> ThreadPoolExecutor:
    # Loads that import TensorFlow (5 to 10 s) get their own thread, so the model and the dataset never
    # queue behind one.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fashion-studio-tensorflow")


def load_in_background(
    name: str, load: Callable[[], object], when_quiet: bool = False, imports_tensorflow: bool = False
) -> Future | None:
    """Starts `load()` in the background thread unless a load called `name` was started before.

    With `when_quiet`, the load first waits for a quiet moment (see `ServerActivity.wait_until_quiet`):
    for what no page is expected to need at once. With `imports_tensorflow`, it runs in a thread of its
    own, so the other loads do not wait for TensorFlow.

    Returns:
        The load's future (its result, or the exception it raised); `None` when background loads
        are off (`FASHION_STUDIO_BACKGROUND_LOADS=0`): the page then loads what it needs itself.
    """
    if os.environ.get(BACKGROUND_LOADS_ENV, "1") == "0":
        return None
    executor, futures = _loader()
    if imports_tensorflow:
        executor = _tensorflow_loader()
    if name not in futures:
        futures[name] = executor.submit(_run_load, load, server_activity() if when_quiet else None)
    return futures[name]


def _run_load(load: Callable[[], object], activity: ServerActivity | None = None) -> object:
    """Runs one background load (after a quiet moment, given `activity`), then freezes what it loaded."""
    if activity is not None:
        activity.wait_until_quiet()
    result = load()
    freeze_long_lived_objects(force=True)  # what was loaded lives as long as the process
    return result


def background_load(name: str) -> Future | None:
    """The future of the load called `name`, or `None` if none was started in this process."""
    return _loader()[1].get(name)


def start_warmup() -> None:
    """Starts loading, once per process (cheap later): the default model, then what a first answer needs, then
    the modules and data of the other pages.

    The order is the likeliest visit's: Home (metadata only), Predict (the model, then an answer),
    and only then the pages that need pandas, the photo store or Fashion-MNIST. Those wait for a
    quiet moment, so they do not compete with a first visitor's answer for the CPU.
    """
    load_in_background("model", lambda: load_model(DEFAULT_MODEL_NAME))
    load_in_background("answer path", warm_answer_path)
    load_in_background("other pages' modules", warm_other_pages, when_quiet=True)
    load_in_background("dataset", dataset, when_quiet=True)


def warm_answer_path() -> None:
    """Runs a made-up photo through everything the Predict page's first answer runs, outside any session.

    What it saves the first visitor (measured on the 2-core machine): the conversion's and the
    explanation's imports, OpenCV's first colour conversion (0.17 s, once per process: it builds its
    tables) and the interpreter's first explanation-sized batch.
    """
    from PIL import Image

    from fashion_core import explain
    from fashion_core.preprocess import photo_steps

    canvas = np.full((120, 90, 3), 225, dtype=np.uint8)
    canvas[20:100, 25:65] = (40, 60, 140)  # a dark garment on a light floor
    photo = io.BytesIO()
    Image.fromarray(canvas).save(photo, format="PNG")
    image = photo_steps(photo.getvalue()).image
    explain.default_explanation(load_model(DEFAULT_MODEL_NAME).predictor, image)


def warm_other_pages() -> None:
    """Imports what the other pages and a photo's saving need: pandas (0.6 s here) and the photo store's
    SQLAlchemy (0.45 s). Neither is on a first answer's path, so they load when the server is quiet."""
    importlib.import_module("pandas")
    importlib.import_module("fashion_core.photostore")


def loaded_or_waiting(name: str, message: str | None = None) -> bool:
    """Whether the background load `name` is over (or was never started); if not, shows that it is loading.

    A page calls it before what needs the load and stops when it returns `False`. The note reruns
    the page by itself once the load is over. A load that failed counts as over: the page then
    loads the usual way and shows the error it gets.
    """
    future = background_load(name)
    if future is None or future.done():
        return True
    server_activity().page_waiting.set()  # a visitor waits: background loads stop waiting for a quiet moment
    _waiting_note(name, message or LOAD_MESSAGES.get(name, f"Loading {name}..."))
    return False


def keras_model_ready(loaded: LoadedModel, purpose: str, meanwhile: str) -> bool:
    """Whether `loaded.model`, the Keras model that gradients need, can be read now without a long wait.

    Its first read imports TensorFlow: 5 to 10 s on two cores, more on a fraction of one. With background
    loads on, that read runs in the background thread and, until it is over, the page shows a note (and
    reruns itself when it is), so what needs no gradients stays usable meanwhile. A model already loaded
    is ready at once. With background loads off (the tests), it is read here.

    Args:
        loaded: the model in use.
        purpose: what waits and why, as in "Grad-CAM: the gradient methods need it".
        meanwhile: what works while it loads, a sentence.
    """
    name = f"keras model {loaded.name}@{_modified_ns(loaded.entry)}"
    future = load_in_background(name, lambda: loaded.model, imports_tensorflow=True)
    if future is not None:
        wait([future], timeout=KERAS_MODEL_GRACE_S)  # a model already loaded comes back at once: no note flashes
    message = (
        f"Loading TensorFlow for {purpose}, and the server loads it once (5 to 10 s on two cores, longer on a "
        f"fraction of one). {meanwhile}"
    )
    return loaded_or_waiting(name, message)


@st.fragment(run_every=LOAD_CHECK_EVERY_S)
def _waiting_note(name: str, message: str) -> None:
    if background_load(name).done():
        st.rerun()  # the whole page, now that what it needs is there
    st.info(message, icon=":material/hourglass_top:")
