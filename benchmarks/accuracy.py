"""Accuracy: the shipped model on the test set, and what the Quick preset reaches in its minute.

Run: `python -m benchmarks.accuracy`.
"""

from __future__ import annotations

import json

from fashion_core.data import load_fashion_mnist
from fashion_core.evaluation import evaluate_model
from fashion_core.metadata import ModelMetadata
from fashion_core.registry import SHIPPED_MODELS_DIR, load_model
from fashion_core.training import PRESETS, train


def measure_accuracy(model_dir=SHIPPED_MODELS_DIR / "default", with_quick_preset: bool = True) -> dict:
    """Test accuracy of the shipped model (plain and flip-averaged) and of a fresh Quick-preset run."""
    data = load_fashion_mnist(download=False)
    model = load_model(model_dir)
    plain = evaluate_model(model, data.test_images, data.test_labels)
    flipped = evaluate_model(model, data.test_images, data.test_labels, flip_average=True)
    metadata = ModelMetadata.read(model_dir)
    results = {
        "test_accuracy": round(plain.accuracy, 4),
        "test_accuracy_flip_average": round(flipped.accuracy, 4),
        "flip_average_in_app": metadata.trained_with_flips,
        "test_loss": round(plain.loss, 4),
        "shipped_training_seconds": metadata.training_seconds,
        "shipped_command": metadata.command,
    }
    if with_quick_preset:
        quick = train(PRESETS["Quick"], data=data)
        results["quick_preset"] = {
            "test_accuracy": round(quick.evaluation.accuracy, 4),
            "training_seconds": round(quick.training_seconds, 1),
            "config": PRESETS["Quick"].to_dict(),
        }
    return results


if __name__ == "__main__":
    print(json.dumps(measure_accuracy(), indent=2))
