"""The app's two predictors side by side: LiteRT (`serving.LiteRTPredictor`) and TensorFlow (`inference.Predictor`).

Each is measured in a fresh Python process, as a server would meet it: the seconds from nothing
imported to a loaded predictor, the process's resident memory then and after answering, the
median and p95 of one image's answer with flip averaging (the shipped model is trained with flips,
so the app averages each image with its mirror), and answers per second with 8 threads asking at
once. Run: `python -m benchmarks.serving`.

On a machine shared with other work, wall times grow with the load; `predict_one_p50_cpu_ms` is the
calling thread's CPU time per answer, which for LiteRT with one interpreter thread (all its work on
the caller's thread) is what the answer takes on an idle core.

`litert` is the predictor as the app makes it (`default_interpreter_threads()`: one thread per usable
CPU, at most two); `litert_1_thread` is the same with one thread, what a single core gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter; prints one JSON line. {kind} is "litert..." or "tensorflow".
MEASURE_SCRIPT = """
import json, statistics, threading, time
started = time.perf_counter()
from fashion_core.registry import SHIPPED_MODELS_DIR
model_dir = SHIPPED_MODELS_DIR / "default"
if "{kind}".startswith("litert"):
    from fashion_core.serving import LiteRTPredictor
    predictor = LiteRTPredictor.from_model_dir(model_dir, num_threads={num_threads})
else:
    from fashion_core.inference import Predictor
    from fashion_core.metadata import ModelMetadata
    from fashion_core.registry import load_model
    predictor = Predictor(load_model(model_dir), flip_average=ModelMetadata.read(model_dir).trained_with_flips)
loaded_s = time.perf_counter() - started

def rss_mb():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

rss_loaded = rss_mb()
import numpy as np
# Random images: a CNN's time does not depend on the pixels, and the dataset would add its own memory.
images = np.random.default_rng(0).integers(0, 256, size=({repeats}, 28, 28), dtype=np.uint8)
first = time.perf_counter(); predictor.predict_one(images[0]); first_answer_s = time.perf_counter() - first
for image in images[:50]:
    predictor.predict_one(image)
durations, cpu_durations = [], []
for image in images:
    begin, begin_cpu = time.perf_counter(), time.thread_time()
    predictor.predict_one(image)
    durations.append((time.perf_counter() - begin) * 1000)
    cpu_durations.append((time.thread_time() - begin_cpu) * 1000)
durations.sort()

def ask(worker):
    for image in images[worker::8]:
        predictor.predict_one(image)

threads = [threading.Thread(target=ask, args=(worker,)) for worker in range(8)]
begin = time.perf_counter()
for thread in threads: thread.start()
for thread in threads: thread.join()
threaded_s = time.perf_counter() - begin
import sys
print("RESULT" + json.dumps({{
    "flip_average": predictor.flip_average,
    "interpreter_threads": getattr(predictor, "num_threads", None),
    "import_and_load_s": round(loaded_s, 3),
    "first_answer_ms": round(first_answer_s * 1000, 2),
    "rss_mb_loaded": round(rss_loaded, 1),
    "rss_mb_after_answers": round(rss_mb(), 1),
    "predict_one_p50_ms": round(statistics.median(durations), 3),
    "predict_one_p95_ms": round(durations[int(0.95 * (len(durations) - 1))], 3),
    "predict_one_p50_cpu_ms": round(statistics.median(cpu_durations), 3),
    "answers_per_s_1_thread": round(len(durations) / (sum(durations) / 1000), 1),
    "answers_per_s_8_threads": round(len(images) / threaded_s, 1),
    "tensorflow_imported": "tensorflow" in sys.modules,
}}))
"""


def measure_predictor(kind: str, repeats: int = 1000, num_threads: int | None = None) -> dict:
    """One predictor's figures, from a fresh process (see `MEASURE_SCRIPT`); `num_threads=None` is the app's choice."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO_ROOT)}
    script = MEASURE_SCRIPT.format(kind=kind, repeats=repeats, num_threads=num_threads)
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT") :])
    return {"error": (completed.stderr or completed.stdout)[-1500:]}


def measure_serving(repeats: int = 1000) -> dict:
    """LiteRT's (the app's thread count, and one thread) and TensorFlow's figures; goal: median <= 0.8 ms."""
    return {
        "litert": measure_predictor("litert", repeats),
        "litert_1_thread": measure_predictor("litert", repeats, num_threads=1),
        "tensorflow": measure_predictor("tensorflow", repeats),
    }


if __name__ == "__main__":
    print(json.dumps(measure_serving(), indent=2))
