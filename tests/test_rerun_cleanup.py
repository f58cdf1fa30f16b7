"""Test that a rerun of the app never clears the Keras session, and that Streamlit's GC skips TensorFlow's heap."""

import gc

import keras
import pytest
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from pages import common as rerun_cleanup
from tests.conftest import REPO_ROOT

STREAMLITS_OWN_CLEANUP = script_runner._clean_problem_modules


@pytest.fixture
def clear_session_calls(monkeypatch):
    """Counts the calls of `keras.backend.clear_session` (still calling it), the one Streamlit makes."""
    calls = []
    original = keras.backend.clear_session

    def counting_clear_session(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(keras.backend, "clear_session", counting_clear_session)
    return calls


def test_streamlit_itself_clears_the_keras_session_after_a_run(clear_session_calls):
    """Test that the function the app replaces calls clear_session (so the next test means something)."""
    STREAMLITS_OWN_CLEANUP()
    assert len(clear_session_calls) == 1


def test_reruns_of_the_app_do_not_clear_the_keras_session(clear_session_calls):
    """Test that the app's runs and reruns, with Keras imported, never call keras.backend.clear_session."""
    app = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=120)
    app.run()
    app.run()
    app.sidebar.selectbox(key="model_name").set_value("default").run()
    assert not app.exception
    assert clear_session_calls == []
    assert script_runner._clean_problem_modules is rerun_cleanup.clean_after_script_run


def test_heavy_imports_are_frozen_out_of_the_post_run_collection(monkeypatch):
    """Test that the cleanup freezes the heap after many new imports, and only then."""
    monkeypatch.setattr(rerun_cleanup, "_modules_at_last_freeze", 0)  # as in a fresh server with Keras imported
    rerun_cleanup.clean_after_script_run()
    frozen = gc.get_freeze_count()
    # Keras and TensorFlow alone hold hundreds of thousands of objects; none of them is scanned any more.
    assert frozen > 200_000
    assert len(gc.get_objects()) < frozen / 2
    assert rerun_cleanup.freeze_long_lived_objects() is False  # no new import since
    assert rerun_cleanup.freeze_long_lived_objects(force=True) is True


def test_installing_on_a_streamlit_without_the_hook_says_what_to_check(monkeypatch):
    """Test that a Streamlit whose runner lost `_clean_problem_modules` is reported, not silently ignored."""
    monkeypatch.delattr(script_runner, "_clean_problem_modules")
    with pytest.raises(RuntimeError, match="no longer has `_clean_problem_modules`.*Received: streamlit 1"):
        rerun_cleanup.install_rerun_cleanup()
