"""Robustness of a model beyond the test set: augmented validation images and empty Grad-CAM maps.

`python -m benchmarks.robustness [--model-dir DIR ...]` prints, for each model folder (default: the
shipped one), on the validation split its own metadata describes:

- validation accuracy, plain and flip-averaged;
- accuracy on the validation images passed through the training augmentation at strength 0.4
  (shifts, separate width and height zoom, small rotations, flips, erasing; three seeded draws),
  flip-averaged as the app predicts: a measure of how well the model copes with the differences
  between a real photo and a catalog shot, on 18000 predictions instead of the 120 dev photos;
- how many of the first 3000 training images get an empty Grad-CAM map on the last conv layer
  (the app then falls back to an earlier layer, see `fashion_core.explain.default_gradcam`).

These figures chose between shipped-model candidates (README, "The shipped model"); the test set
chose nothing.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from fashion_core.metadata import ModelMetadata
from fashion_core.registry import SHIPPED_MODELS_DIR

AUGMENTATION_STRENGTH = 0.4
AUGMENTATION_SEEDS = (11, 12, 13)
GRADCAM_IMAGES = 3000


def augmented_copies(images: np.ndarray, strength: float, seeds=AUGMENTATION_SEEDS) -> list[np.ndarray]:
    """`images` `(N, 28, 28)` through the training augmentation, once per seed: a list of `(N, 28, 28)` float32."""
    import keras

    from fashion_core.models import INPUT_SHAPE, augmentation_layers

    batch = images[..., None].astype("float32")
    copies = []
    for seed in seeds:
        augment = keras.Sequential([keras.Input(INPUT_SHAPE), *augmentation_layers(strength, seed)])
        parts = [augment(batch[start : start + 1000], training=True).numpy() for start in range(0, len(batch), 1000)]
        copies.append(np.concatenate(parts)[..., 0])
    return copies


def measure_robustness(model_dir=SHIPPED_MODELS_DIR / "default") -> dict:
    """The module docstring's figures for one model folder, as a JSON-ready dict."""
    from fashion_core import explain
    from fashion_core.data import load_fashion_mnist
    from fashion_core.evaluation import evaluate_model
    from fashion_core.inference import Predictor
    from fashion_core.registry import load_model
    from fashion_core.training import TrainingConfig
    from fashion_core.training.loop import split_training_data

    data = load_fashion_mnist(download=False)
    metadata = ModelMetadata.read(model_dir)
    _, (images, labels) = split_training_data(TrainingConfig.from_dict(metadata.config), data)
    model = load_model(model_dir)
    plain, flipped = Predictor(model), Predictor(model, flip_average=True)  # each traced once, reused

    def accuracy(predictor: Predictor, batch: np.ndarray) -> float:
        return evaluate_model(predictor, batch, labels).accuracy

    copies = augmented_copies(images, AUGMENTATION_STRENGTH)
    maxima = explain.gradcam_maps(model, data.train_images[:GRADCAM_IMAGES]).max(axis=(1, 2))
    return {
        "model_dir": str(model_dir),
        "validation_images": len(labels),
        "validation_accuracy": round(accuracy(plain, images), 4),
        "validation_accuracy_flip_average": round(accuracy(flipped, images), 4),
        "augmented_validation_accuracy_flip_average": round(float(np.mean([accuracy(flipped, c) for c in copies])), 4),
        "augmented_draws": len(copies),
        "flip_average_in_app": metadata.trained_with_flips,
        "empty_last_layer_gradcam_maps": int((maxima == 0).sum()),
        "gradcam_images": GRADCAM_IMAGES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", nargs="+", default=[str(SHIPPED_MODELS_DIR / "default")], help="model folders")
    for model_dir in parser.parse_args().model_dir:
        print(json.dumps(measure_robustness(model_dir)))


if __name__ == "__main__":
    main()
