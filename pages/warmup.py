"""Loading in the background: what the first visitors need is loading while they read the Home page.

Streamlit runs nothing until a first browser connects, and each session's script blocks while a
cached resource loads. So the entry script calls `start_warmup()` on every run; once per process
it starts one background thread that loads the default model and then the dataset, through the
same cached loaders the pages use (`pages.common`), so a page that asks for them later gets them
from the cache. A page that needs something still loading calls `loaded_or_waiting(name)`: while
the load runs the page shows a short "Loading ..." note and stops there (the sidebar and the rest
of the app stay usable), and it reruns itself when the load is done.

`load_in_background(name, load)` starts any other load the same way (TensorFlow for the gradient
pages, say), once per process. With `FASHION_STUDIO_BACKGROUND_LOADS=0` (the tests set it, so that
an AppTest's first run shows the page, not the note) nothing loads in the background: every page
loads what it needs itself, as it did before.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import streamlit as st

from pages.rerun_cleanup import freeze_long_lived_objects

BACKGROUND_LOADS_ENV = "FASHION_STUDIO_BACKGROUND_LOADS"
CHECK_EVERY_S = 0.5
MESSAGES = {
    "model": "Loading the model...",
    "dataset": "Loading Fashion-MNIST...",
}


@st.cache_resource(show_spinner=False)
def _loader() -> tuple[ThreadPoolExecutor, dict[str, Future]]:
    # One worker: loads run one after another, so they don't fight over the cores with each other.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fashion-studio-load"), {}


def load_in_background(name: str, load: Callable[[], object]) -> Future | None:
    """Starts `load()` in the background thread unless a load called `name` was started before.

    Returns:
        The load's future (its result, or the exception it raised); `None` when background loads
        are off (`FASHION_STUDIO_BACKGROUND_LOADS=0`): the page then loads what it needs itself.
    """
    if os.environ.get(BACKGROUND_LOADS_ENV, "1") == "0":
        return None
    executor, futures = _loader()
    if name not in futures:
        futures[name] = executor.submit(_then_freeze, load)
    return futures[name]


def _then_freeze(load: Callable[[], object]) -> object:
    result = load()
    freeze_long_lived_objects(force=True)  # what was loaded lives as long as the process
    return result


def background_load(name: str) -> Future | None:
    """The future of the load called `name`, or `None` if none was started in this process."""
    return _loader()[1].get(name)


def start_warmup() -> None:
    """Starts loading the default model, then the dataset, once per process (cheap on later runs)."""
    from pages.common import DEFAULT_MODEL_NAME, dataset, load_model

    load_in_background("model", lambda: load_model(DEFAULT_MODEL_NAME))
    load_in_background("dataset", dataset)


def loaded_or_waiting(name: str, message: str | None = None) -> bool:
    """Whether the background load `name` is over (or was never started); if not, shows that it is loading.

    A page calls it before what needs the load and stops when it returns `False`. The note reruns
    the page by itself once the load is over. A load that failed counts as over: the page then
    loads the usual way and shows the error it gets.
    """
    future = background_load(name)
    if future is None or future.done():
        return True
    _waiting_note(name, message or MESSAGES.get(name, f"Loading {name}..."))
    return False


@st.fragment(run_every=CHECK_EVERY_S)
def _waiting_note(name: str, message: str) -> None:
    if background_load(name).done():
        st.rerun()  # the whole page, now that what it needs is there
    st.info(message, icon=":material/hourglass_top:")
