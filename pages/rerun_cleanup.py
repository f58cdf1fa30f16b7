"""What Streamlit does after every script run, made cheap for an app that keeps TensorFlow loaded.

After every run of every session (full runs and fragment runs alike), Streamlit 1.67's script
runner calls `_clean_problem_modules()` (`streamlit/runtime/scriptrunner/script_runner.py`). Once
`keras` is in `sys.modules` that calls `keras.backend.clear_session()`, which

- resets Keras' global state, also under a training job running in a background thread;
- empties TensorFlow's kernel cache, so the next prediction and Grad-CAM take about 160 ms instead
  of 7 ms (measured on the shipped model, 2-core machine);
- runs a full `gc.collect()`: about 200 ms with TensorFlow's 350,000 objects in the heap.

Streamlit does it for scripts that build a new Keras model on every rerun. This app never does: its
models are loaded once per process (`st.cache_resource`) and trained in a background job, so the
call only costs time, about 0.4 s of CPU per rerun, and with eight sessions at once or the Train
page's live refresh it is most of what the server does. Streamlit has no option to skip it (its
only related setting, `runner.postScriptGC`, is the separate `gc.collect(2)` below), so
`install_rerun_cleanup()` replaces that one module-level function with `clean_after_script_run`,
which keeps the rest of Streamlit's cleanup (closing Matplotlib figures) and leaves Keras alone.
The runner looks the function up by name after every run, so the replacement takes effect from the
first run on. `tests/test_rerun_cleanup.py` fails if a rerun calls `clear_session()` again (a new
Streamlit that renames the function, say).

Streamlit also runs `gc.collect(2)` after every run (`runner.postScriptGC`, on by default, so that
apps don't grow between runs). A full collection scans every tracked object, TensorFlow's included:
about 200 ms per run. `clean_after_script_run` therefore moves the objects of newly imported
libraries into the permanent generation (`gc.freeze()`, after a collection) once an import has
brought in many modules, so Streamlit's collection keeps freeing what the runs leave behind but no
longer walks TensorFlow's heap.
"""

from __future__ import annotations

import gc
import sys

from streamlit.runtime.scriptrunner import script_runner

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
    """Streamlit's post-run cleanup without `keras.backend.clear_session()` (see the module docstring)."""
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
            "the Keras session after every run before upgrading (see pages/rerun_cleanup.py). "
            f"Received: streamlit {sys.modules['streamlit'].__version__}"
        )
    script_runner._clean_problem_modules = clean_after_script_run
