"""What Streamlit's after-run cleanup costs the app, with Streamlit's own and with the app's.

After every script run Streamlit calls `_clean_problem_modules()` (which clears the Keras session)
and, with `runner.postScriptGC` on, `gc.collect(2)`. The app replaces the first with
`pages.common.clean_after_script_run` (see the comment above it). This times, in one process with
the shipped model loaded:

- one after-run cleanup (the cleanup function plus `gc.collect(2)`), each way;
- the next prediction plus Grad-CAM of one image after it (the page's work on its next run);
- a `TrainingJob` of the Quick preset's recipe while a thread runs the cleanup once a second, as
  the Train page's live panel (a fragment rerun every second) makes the server do.

Streamlit's own cleanup is measured first, before the app's freezes the heap.
Run: `python -m benchmarks.rerun_cost`.
"""

from __future__ import annotations

import gc
import json
import statistics
import threading
import time

import numpy as np
from streamlit.runtime.scriptrunner import script_runner

from benchmarks.training_throughput import BatchClock, benchmark_config, small_test_set
from fashion_core import explain
from fashion_core.data import load_fashion_mnist
from fashion_core.inference import Predictor
from fashion_core.registry import ModelRegistry
from fashion_core.training.job import TrainingJob
from pages.common import clean_after_script_run

STREAMLITS_CLEANUP = script_runner._clean_problem_modules
REPEATS = 5


def after_run(cleanup) -> None:
    """What the script runner does after a run: the cleanup, then `runner.postScriptGC`'s collection."""
    cleanup()
    gc.collect(2)


def milliseconds(function) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000


def time_reruns(cleanup, model, predictor, image) -> dict:
    """Median ms of the after-run cleanup, and of the next predict plus Grad-CAM."""
    cleanups, next_work = [], []
    for _ in range(REPEATS):
        cleanups.append(milliseconds(lambda: after_run(cleanup)))
        next_work.append(milliseconds(lambda: (predictor.predict_one(image), explain.default_gradcam(model, image))))
    return {"cleanup_ms": round(statistics.median(cleanups), 1), "next_predict_and_gradcam_ms":
            round(statistics.median(next_work), 1)}  # fmt: skip


def training_rate_with_reruns(cleanup, data, steps: int = 150) -> float:
    """Images/s of a Quick-recipe `TrainingJob` while a thread runs the after-run cleanup every second."""
    config = benchmark_config("small_cnn", 128, steps)
    clock, stop = BatchClock(), threading.Event()

    def live_panel():
        while not stop.wait(1.0):
            after_run(cleanup)

    refresher = threading.Thread(target=live_panel, daemon=True)
    refresher.start()
    try:
        job = TrainingJob(config, data=small_test_set(data), callbacks=[clock]).start()
        job.wait()
    finally:
        stop.set()
        refresher.join()
    return round(clock.throughput(config.batch_size).wall, 1)


def measure_rerun_cost() -> dict:
    model = ModelRegistry().load("default")
    predictor = Predictor(model, flip_average=True)
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    for _ in range(3):
        predictor.predict_one(image), explain.default_gradcam(model, image)
    data = load_fashion_mnist(download=False)
    results = {"streamlits_cleanup": time_reruns(STREAMLITS_CLEANUP, model, predictor, image)}
    results["streamlits_cleanup"]["training_images_per_second"] = training_rate_with_reruns(STREAMLITS_CLEANUP, data)
    results["apps_cleanup"] = time_reruns(clean_after_script_run, model, predictor, image)
    results["apps_cleanup"]["training_images_per_second"] = training_rate_with_reruns(clean_after_script_run, data)
    return results


if __name__ == "__main__":
    print(json.dumps(measure_rerun_cost(), indent=2))
