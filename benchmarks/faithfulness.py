"""How faithful each explanation is: deletion and insertion (Petsiuk et al. 2018) for every method and layer.

On 200 test images (seeded), each method's map of the predicted class is scored through the app's
predictor (flip-averaged for a model trained with flips): deletion, lower is better, and insertion,
higher is better (see `fashion_core.faithfulness`), beside the two orders that ignore the model
(random, brightest first). Each method is timed per image; `default_explanation` is also timed one
image at a time, as the Predict page calls it.

The figures are written to the model folder's `faithfulness.json` (read by
`fashion_core.faithfulness.read_faithfulness` for the Grad-CAM page) and returned for `make bench`.
Run: `python -m benchmarks.faithfulness [--model-dir DIR] [--num-images 200]`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fashion_core import explain, faithfulness
from fashion_core.data import load_fashion_mnist
from fashion_core.metadata import ModelMetadata
from fashion_core.registry import SHIPPED_MODELS_DIR

DEFAULT_MODEL_DIR = SHIPPED_MODELS_DIR / "default"


def _app_predictor(model_dir: Path, model):
    """The predictor the app answers with: LiteRT when the folder has a fresh checked export, else TensorFlow."""
    from fashion_core.inference import Predictor

    flip_average = ModelMetadata.read(model_dir).trained_with_flips
    try:
        from fashion_core.serving import LiteRTPredictor

        return LiteRTPredictor.from_model_dir(model_dir)
    except (ImportError, ValueError):
        return Predictor(model, flip_average=flip_average)


def _methods(model, predictor) -> dict:
    """Method name -> function of a batch of images giving `(N, 28, 28)` maps of the predicted classes."""
    from fashion_core import gradients
    from fashion_core.models import conv_layer_names

    methods = {
        "Default explanation (occlusion 7x7, stride 5, by brightness)": lambda images: explain.occlusion_maps(
            predictor, images
        ),
        "Occlusion 4x4, stride 4 (no brightness weighting)": lambda images: explain.occlusion_maps(
            predictor, images, patches=((4, 4),), by_brightness=False
        ),
        "RISE (500 masks, by brightness)": lambda images: explain.rise_maps(predictor, images),
    }
    for layer_name in conv_layer_names(model):
        methods[f"Grad-CAM, {layer_name}"] = lambda images, name=layer_name: gradients.gradcam_maps(
            model, images, layer_name=name
        )
    if conv_layer_names(model):
        methods["Grad-CAM++, last conv layer"] = lambda images: gradients.gradcam_maps(model, images, plus_plus=True)
    methods["Saliency"] = lambda images: gradients.saliency_maps(model, images)
    smooth = explain.SMOOTHGRAD_SAMPLES
    methods["SmoothGrad"] = lambda images: gradients.saliency_maps(model, images, smooth_samples=smooth)
    methods["Gradient x input"] = lambda images: gradients.saliency_maps(model, images, times_input=True)
    methods["SmoothGrad x input"] = lambda images: gradients.saliency_maps(
        model, images, smooth_samples=smooth, times_input=True
    )
    methods["Random order (ignores the model)"] = lambda images: faithfulness.random_maps(len(images))
    methods["Brightest first (ignores the model)"] = faithfulness.brightness_maps
    return methods


def _single_image_ms(predictor, images: np.ndarray) -> dict[str, float]:
    """p50 and p95 of `default_explanation` one image at a time, as the Predict page calls it."""
    for image in images[:5]:
        explain.default_explanation(predictor, image)
    durations = []
    for image in images:
        started = time.perf_counter()
        explain.default_explanation(predictor, image)
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return {
        "p50_ms": round(float(np.median(durations)), 2),
        "p95_ms": round(durations[int(0.95 * (len(durations) - 1))], 2),
    }


def measure_faithfulness(
    model_dir: Path | str = DEFAULT_MODEL_DIR, num_images: int = 200, seed: int = 0, only: tuple[str, ...] = ()
) -> dict:
    """Deletion, insertion and time per image of every method (or those whose names start with one of
    `only`) on `num_images` seeded test images."""
    from fashion_core.registry import load_model

    model_dir = Path(model_dir)
    model = load_model(model_dir)
    predictor = _app_predictor(model_dir, model)
    data = load_fashion_mnist()
    indices = np.sort(np.random.default_rng(seed).choice(len(data.test_labels), num_images, replace=False))
    images = data.test_images[indices]
    results = {}
    for name, make_maps in _methods(model, predictor).items():
        if only and not name.startswith(tuple(only)):
            continue
        make_maps(images[:2])  # traces and caches
        started = time.perf_counter()
        maps = make_maps(images)
        seconds = time.perf_counter() - started
        results[name] = {
            "deletion": round(float(faithfulness.deletion_score(predictor, images, maps).mean()), 4),
            "insertion": round(float(faithfulness.insertion_score(predictor, images, maps).mean()), 4),
            "ms_per_image_in_a_batch": round(seconds / num_images * 1000, 2),
        }
        print(name, results[name], flush=True)
    report = {
        "num_images": num_images,
        "seed": seed,
        "predictor": f"{type(predictor).__name__}, flip_average={predictor.flip_average}",
        "default_method": explain.DEFAULT_METHOD,
        "default_explanation_one_image": _single_image_ms(predictor, images[:50]),
        "methods": results,
    }
    if not only:  # a partial run never replaces the folder's full report
        faithfulness.write_faithfulness(model_dir, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faithfulness", description=__doc__)
    parser.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--only", nargs="*", default=(), help="measure only the methods whose names start so")
    args = parser.parse_args(argv)
    print(json.dumps(measure_faithfulness(args.model_dir, args.num_images, only=tuple(args.only)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
