"""Latency of what a user waits for: one prediction, one photo end to end, one Grad-CAM map.

The app's predictor is the one the Predict page answers with: LiteRT on the model's checked
`model.tflite` (`LiteRTPredictor.from_model_dir`). TensorFlow's `Predictor` (what the Grad-CAM
viewer and evaluation of a model without stored predictions use) and `model.predict` are timed beside it.
Each figure is the median (p50) and 95th percentile (p95) over repeated calls after a warm-up, on
the shipped model, in one process. Run: `python -m benchmarks.latency`.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_core.data import load_fashion_mnist
from fashion_core.inference import Predictor
from fashion_core.metadata import ModelMetadata
from fashion_core.registry import SHIPPED_MODELS_DIR, load_model
from fashion_core.serving import LiteRTPredictor

REAL_PHOTOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "realphotos-dev"


def time_calls(function: Callable[[], object], repeats: int, warmup: int = 10) -> dict[str, float]:
    """p50 and p95 wall time of `function()` in milliseconds."""
    for _ in range(warmup):
        function()
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return {
        "p50_ms": round(statistics.median(durations), 3),
        "p95_ms": round(durations[int(0.95 * (len(durations) - 1))], 3),
        "calls": repeats,
    }


def photo_jpeg_1000px() -> bytes:
    """A 1000x1000 JPEG: a real photo from the dev set when it is there, else a synthetic garment."""
    photos = sorted(REAL_PHOTOS_DIR.glob("*/*.jpg"))
    if photos:
        image = Image.open(photos[0]).convert("RGB").resize((1000, 1000))
    else:
        canvas = np.full((1000, 1000, 3), 235, dtype=np.uint8)
        canvas[200:850, 300:700] = (40, 60, 140)  # a dark garment on a light floor
        image = Image.fromarray(canvas)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def measure_latency(model_dir: Path = SHIPPED_MODELS_DIR / "default", repeats: int = 200) -> dict:
    """Single-image prediction (the app's LiteRT predictor, TensorFlow's, `model.predict`), photo to
    probabilities, and Grad-CAM latency."""
    from fashion_core.explain import gradcam
    from fashion_core.preprocess import photo_to_fashion_mnist

    model = load_model(model_dir)
    flip_average = ModelMetadata.read(model_dir).trained_with_flips
    predictor = LiteRTPredictor.from_model_dir(model_dir)  # as the app serves this model
    tensorflow_predictor = Predictor(model, flip_average=flip_average)
    image = load_fashion_mnist(download=False).test_images[0]
    batch = image[None, ..., None].astype("float32")
    app_prediction = time_calls(lambda: predictor.predict_one(image), repeats)
    tensorflow_prediction = time_calls(lambda: tensorflow_predictor.predict_one(image), repeats)
    plain_predictor = LiteRTPredictor(Path(model_dir) / "model.tflite")
    plain_prediction = time_calls(lambda: plain_predictor.predict_one(image), repeats) if flip_average else None
    keras_prediction = time_calls(lambda: model.predict(batch, verbose=0), max(repeats // 4, 20))
    photo = photo_jpeg_1000px()
    photo_to_probabilities = time_calls(lambda: predictor.predict_one(photo_to_fashion_mnist(photo)), repeats // 2)
    gradcam_latency = time_calls(lambda: gradcam(model, image), repeats // 2)
    return {
        "flip_average": flip_average,
        "predict_one_app": app_prediction,
        "predict_one_app_without_flip_average": plain_prediction or app_prediction,
        "predict_one_tensorflow": tensorflow_prediction,
        "predict_one_model_predict": keras_prediction,
        "predict_speedup_vs_model_predict": round(keras_prediction["p50_ms"] / app_prediction["p50_ms"], 1),
        "app_runtime": "litert",
        "photo_1000px_jpeg_to_probabilities": photo_to_probabilities,
        "gradcam": gradcam_latency,
    }


if __name__ == "__main__":
    print(json.dumps(measure_latency(), indent=2))
