"""Tests of the background loads: once per process, in their own thread, and the page's loading note."""

import threading

import pytest
from streamlit.testing.v1 import AppTest

from pages import common as warmup


@pytest.fixture
def background_loads(monkeypatch):
    """Background loads on, as in the app (the tests turn them off by default)."""
    monkeypatch.setenv(warmup.BACKGROUND_LOADS_ENV, "1")


def test_a_load_runs_once_in_its_own_thread_and_then_freezes_the_heap(background_loads, monkeypatch):
    """Test that two requests for one load run it once, in the loader thread, and freeze what it loaded."""
    freezes = []
    monkeypatch.setattr(warmup, "freeze_long_lived_objects", lambda force: freezes.append(force))
    threads = []

    def load():
        threads.append(threading.current_thread().name)
        return 42

    first = warmup.load_in_background("test-once", load)
    second = warmup.load_in_background("test-once", load)
    assert first is second and first.result(timeout=30) == 42
    assert len(threads) == 1 and threads[0].startswith("fashion-studio-load")
    assert freezes == [True]
    assert warmup.background_load("test-once") is first


def test_without_background_loads_nothing_starts_and_pages_never_wait(monkeypatch):
    """Test that FASHION_STUDIO_BACKGROUND_LOADS=0 starts nothing, so a page loads what it needs itself."""
    monkeypatch.setenv(warmup.BACKGROUND_LOADS_ENV, "0")
    assert warmup.load_in_background("test-off", lambda: pytest.fail("must not run")) is None
    assert warmup.loaded_or_waiting("test-off") is True


def gated_page():
    import streamlit as st

    from pages.common import loaded_or_waiting

    if loaded_or_waiting("test-gate", "Loading the test load..."):
        st.write("ready")


def test_a_page_shows_a_loading_note_until_its_load_is_over(background_loads):
    """Test that a page whose load still runs shows the note and stops, and shows itself once it is over."""
    gate = threading.Event()
    future = warmup.load_in_background("test-gate", gate.wait)
    app = AppTest.from_function(gated_page, default_timeout=30).run()
    assert not app.exception
    assert [info.value for info in app.info] == ["Loading the test load..."]
    assert [markdown.value for markdown in app.markdown] == []
    gate.set()
    future.result(timeout=30)
    app.run()
    assert [info.value for info in app.info] == []
    assert [markdown.value for markdown in app.markdown] == ["ready"]


def test_the_answer_path_warmup_runs_a_photo_through_the_served_model(monkeypatch):
    """Test that the warmup converts a photo and explains it with the default model's serving predictor, so a
    first visitor's answer pays for none of its first-call costs."""
    from fashion_core import explain
    from fashion_core.serving import LiteRTPredictor

    explained = []
    real_explanation = explain.default_explanation

    def spy(predictor, image, class_index=None):
        explained.append((predictor, image.shape, image.dtype))
        return real_explanation(predictor, image, class_index)

    monkeypatch.setattr(explain, "default_explanation", spy)
    warmup.warm_answer_path()
    [(predictor, shape, dtype)] = explained
    assert isinstance(predictor, LiteRTPredictor) and predictor is warmup.load_model("default").predictor
    assert shape == (28, 28) and dtype == "uint8"


def test_the_other_pages_warmup_imports_pandas_and_the_photo_store_in_a_fresh_process():
    """Test that the quiet-time warmup imports what the answer path leaves out: pandas and the photo store."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    script = (
        "import sys; from pages.common import warm_other_pages; warm_other_pages(); "
        "print(sorted({'pandas', 'sqlalchemy', 'fashion_core.photostore'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "['fashion_core.photostore', 'pandas', 'sqlalchemy']"


def waited(activity: warmup.ServerActivity, **limits) -> tuple[threading.Thread, list[float]]:
    """Starts `activity.wait_until_quiet(**limits)` in a thread; the list gets the monotonic time it returned."""
    import time

    returned = []

    def wait() -> None:
        activity.wait_until_quiet(**limits)
        returned.append(time.monotonic())

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, returned


def test_a_quiet_load_waits_until_no_page_has_run_for_a_while():
    """Test that the wait lasts through a page run and then `quiet_s` after its end, even if it raised."""
    import time

    activity = warmup.ServerActivity()
    with pytest.raises(RuntimeError), activity.page_run():
        thread, returned = waited(activity, quiet_s=0.2, cap_s=10)
        time.sleep(0.3)
        assert returned == [] and activity.quiet_for() == 0.0
        raise RuntimeError("a page that fails still ends its run")
    ended = time.monotonic()
    thread.join(timeout=10)
    assert returned and returned[0] - ended >= 0.2


def test_a_quiet_load_stops_waiting_when_a_page_waits_for_a_load_or_after_the_cap():
    import time

    activity = warmup.ServerActivity()
    with activity.page_run():
        started = time.monotonic()
        thread, returned = waited(activity, quiet_s=0.2, cap_s=0.5)
        thread.join(timeout=10)
        assert 0.5 <= returned[0] - started < 5  # the cap: a busy server still gets its dataset
        thread, returned = waited(activity, quiet_s=0.2, cap_s=60)
        activity.page_waiting.set()
        thread.join(timeout=10)
        assert returned and returned[0] - started < 5


def test_a_visitors_fragment_run_counts_as_activity(monkeypatch):
    """Test that what `activity_fragment` makes a fragment of counts its run, as the entry script counts a
    page's: a fragment's rerun (an upload) skips the entry script, and quiet loads must not start during it."""
    import time

    activity = warmup.ServerActivity()
    monkeypatch.setattr(warmup, "server_activity", lambda: activity)
    quiet_during_run = []

    @warmup.counted_as_activity
    def upload_tab(name: str) -> None:
        quiet_during_run.append((name, activity.quiet_for()))

    time.sleep(0.2)
    assert activity.quiet_for() >= 0.2
    upload_tab("photo.jpg")
    assert quiet_during_run == [("photo.jpg", 0.0)] and activity.quiet_for() < 0.2
