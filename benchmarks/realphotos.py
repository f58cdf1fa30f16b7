"""Accuracy on real clothing photos: the tutorials' squash-and-invert against `fashion_core.preprocess`.

`python -m benchmarks.realphotos [--model-dir DIR]` classifies every photo of `../shared/realphotos-dev`
(MANIFEST.tsv gives each photo's Fashion-MNIST class) with the shipped model, after each of the two
conversions, and prints overall and per-class accuracy. It also makes catalog shots (dark garment on
white, 224x224 with a white margin, as product photos are) from test-set images and checks that the
pipeline turns them back into what the model recognises. The dev photos are for checking only:
nothing is trained on them, and no rule in the pipeline is made for any one of them.

`measure_cc0_val_accuracy` scores a model on the `val` split of `../shared/realphotos-cc0` (369 home
photos of five classes, never trained on; the shipped model may have trained on its `train` split),
per class and overall, as the app predicts (flip-averaged for a model trained with flips).
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_PHOTOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "realphotos-dev"
CC0_PHOTOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "realphotos-cc0"
DEFAULT_MODEL_DIR = REPO_ROOT / "model_artifacts" / "default"
NUM_CATALOG_SHOTS = 500
# Product photos have a white margin around the garment (the paper trimmed it off); the dataset's
# images themselves touch the frame, which real photos rarely do.
CATALOG_MARGIN = 16


def read_manifest(photos_dir: Path) -> tuple[list[str], np.ndarray]:
    """The photos' paths relative to `photos_dir`, and their Fashion-MNIST class indices `(N,)`."""
    with open(photos_dir / "MANIFEST.tsv", newline="") as manifest:
        rows = list(csv.DictReader(manifest, delimiter="\t"))
    return [row["relative_path"] for row in rows], np.array([int(row["class_index"]) for row in rows])


def accuracy_report(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """Overall accuracy and accuracy per class present, with the number of photos of each class."""
    from fashion_core.data import CLASS_NAMES

    per_class = {CLASS_NAMES[c]: float((predictions[labels == c] == c).mean()) for c in np.unique(labels)}
    counts = {CLASS_NAMES[c]: int((labels == c).sum()) for c in np.unique(labels)}
    return {"accuracy": float((predictions == labels).mean()), "per_class": per_class, "counts": counts}


def convert_all(convert: Callable[[bytes], np.ndarray], files: list[bytes]) -> tuple[np.ndarray, float]:
    """`(images (N, 28, 28), mean seconds per file)`."""
    started = time.perf_counter()
    images = np.stack([convert(data) for data in files])
    return images, (time.perf_counter() - started) / len(files)


def catalog_shot(image: np.ndarray, margin: int = CATALOG_MARGIN) -> bytes:
    """A dataset image as a product photo: negated (dark garment on white), 224x224 plus a white margin, PNG."""
    import cv2
    from PIL import Image

    garment = 255 - cv2.resize(image, (224, 224), interpolation=cv2.INTER_CUBIC)
    photo = cv2.copyMakeBorder(garment, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    return buffer.getvalue()


def measure_catalog_shots(predictor, count: int = NUM_CATALOG_SHOTS) -> dict:
    """Accuracy on test images, and on catalog shots made from them through each conversion."""
    from fashion_core.data import load_fashion_mnist
    from fashion_core.preprocess import naive_photo_to_fashion_mnist, photo_to_fashion_mnist

    data = load_fashion_mnist(download=False)
    images, labels = data.test_images[:count], data.test_labels[:count]
    shots = [catalog_shot(image) for image in images]
    result = {
        "num_images": count,
        "margin_pixels": CATALOG_MARGIN,
        "dataset_images": float((predictor.predict(images).argmax(1) == labels).mean()),
    }
    for name, convert in (("naive", naive_photo_to_fashion_mnist), ("pipeline", photo_to_fashion_mnist)):
        converted, _ = convert_all(convert, shots)
        result[name] = float((predictor.predict(converted).argmax(1) == labels).mean())
    return result


def measure_realphoto_accuracy(
    model_dir: str | Path = DEFAULT_MODEL_DIR, photos_dir: str | Path = REAL_PHOTOS_DIR
) -> dict:
    """The model's accuracy on the real dev photos with the naive and with our conversion.

    Args:
        model_dir: a model folder. Defaults to the shipped `model_artifacts/default`.
        photos_dir: a folder with `MANIFEST.tsv`. Defaults to `../shared/realphotos-dev`.

    Returns:
        A JSON-ready dict: `model`, `num_photos`, `naive`, `pipeline` and `pipeline_flip_average`
        (each `{accuracy, per_class, counts}`), `seconds_per_photo` of each conversion, and
        `catalog_shots` (accuracy on test images made into catalog photos); or `{"error": ...}`
        when the photos are not there.
    """
    from fashion_core.inference import Predictor
    from fashion_core.metadata import ModelMetadata
    from fashion_core.preprocess import naive_photo_to_fashion_mnist, photo_to_fashion_mnist
    from fashion_core.registry import load_model

    photos_dir, model_dir = Path(photos_dir), Path(model_dir)
    if not (photos_dir / "MANIFEST.tsv").is_file():
        return {"error": f"No real photos: {photos_dir / 'MANIFEST.tsv'} is missing."}
    paths, labels = read_manifest(photos_dir)
    files = [(photos_dir / path).read_bytes() for path in paths]
    model = load_model(model_dir)
    metadata = ModelMetadata.read(model_dir)
    predictor, mirrored = Predictor(model), Predictor(model, flip_average=True)
    naive_images, naive_seconds = convert_all(naive_photo_to_fashion_mnist, files)
    images, seconds = convert_all(photo_to_fashion_mnist, files)
    return {
        "model": {
            "path": str(model_dir),
            "architecture": metadata.architecture,
            "test_accuracy": metadata.test_accuracy,
        },
        "num_photos": len(files),
        "flip_average_in_app": metadata.trained_with_flips,
        "naive": accuracy_report(predictor.predict(naive_images).argmax(1), labels),
        "pipeline": accuracy_report(predictor.predict(images).argmax(1), labels),
        "pipeline_flip_average": accuracy_report(mirrored.predict(images).argmax(1), labels),
        "seconds_per_photo": {"naive": naive_seconds, "pipeline": seconds},
        "catalog_shots": measure_catalog_shots(predictor),
    }


def measure_cc0_val_accuracy(
    model_dir: str | Path = DEFAULT_MODEL_DIR, photos_dir: str | Path = CC0_PHOTOS_DIR
) -> dict:
    """The model's accuracy on realphotos-cc0's `val` photos, per class and overall, as the app predicts.

    Args:
        model_dir: a model folder. Defaults to the shipped `model_artifacts/default`.
        photos_dir: a photo folder with a `split` column. Defaults to `../shared/realphotos-cc0`.

    Returns:
        A JSON-ready dict: `model` (path, and the fingerprint of the photos it was trained on, if
        any), `num_photos`, `flip_average_in_app`, `accuracy`, `per_class`, `counts` and
        `predicted_counts` (how often each class was answered); or `{"error": ...}` without the photos.
    """
    from fashion_core.data import CLASS_NAMES
    from fashion_core.inference import Predictor
    from fashion_core.metadata import ModelMetadata
    from fashion_core.photo_data import load_photo_folder
    from fashion_core.registry import load_model

    photos_dir, model_dir = Path(photos_dir), Path(model_dir)
    if not (photos_dir / "MANIFEST.tsv").is_file():
        return {"error": f"No realphotos-cc0: {photos_dir / 'MANIFEST.tsv'} is missing."}
    photos = load_photo_folder(photos_dir, "val")
    metadata = ModelMetadata.read(model_dir)
    predictor = Predictor(load_model(model_dir), flip_average=metadata.trained_with_flips)
    predictions = predictor.predict(photos.images).argmax(1)
    fingerprint = metadata.photos.fingerprint if metadata.photos else None
    return {
        "model": {"path": str(model_dir), "photos_fingerprint": fingerprint},
        "num_photos": len(photos),
        "flip_average_in_app": metadata.trained_with_flips,
        **accuracy_report(predictions, photos.labels),
        "predicted_counts": {CLASS_NAMES[c]: int((predictions == c).sum()) for c in np.unique(predictions)},
    }


def print_cc0_table(results: dict) -> None:
    if "error" in results:
        print(results["error"])
        return
    how = "flip-averaged, as the app predicts" if results["flip_average_in_app"] else "as the app predicts"
    print(f"realphotos-cc0 val, {results['num_photos']} photos ({how}): {results['accuracy']:.1%}")
    for class_name, count in results["counts"].items():
        print(f"  {class_name:<12}{count:>5} {results['per_class'][class_name]:>8.1%}")


def print_table(results: dict) -> None:
    if "error" in results:
        print(results["error"])
        return
    model = results["model"]
    print(f"Model {model['path']} ({model['architecture']}, test accuracy {model['test_accuracy']})")
    print(f"{results['num_photos']} real photos")
    columns = ("naive", "pipeline", "pipeline_flip_average")
    print(f"{'class':<14}{'photos':>7}" + "".join(f"{name:>23}" for name in columns))
    for class_name, count in results["pipeline"]["counts"].items():
        values = "".join(f"{results[name]['per_class'][class_name]:>23.1%}" for name in columns)
        print(f"{class_name:<14}{count:>7}{values}")
    print(f"{'all':<14}{results['num_photos']:>7}" + "".join(f"{results[name]['accuracy']:>23.1%}" for name in columns))
    seconds = results["seconds_per_photo"]
    naive_ms, pipeline_ms = seconds["naive"] * 1000, seconds["pipeline"] * 1000
    print(f"Conversion time per photo: naive {naive_ms:.1f} ms, pipeline {pipeline_ms:.1f} ms")
    catalog = results["catalog_shots"]
    print(
        f"{catalog['num_images']} test images as catalog shots (white margin {catalog['margin_pixels']} px): "
        f"dataset images {catalog['dataset_images']:.1%}, naive {catalog['naive']:.1%}, "
        f"pipeline {catalog['pipeline']:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR), help="a model folder (default: the shipped one)")
    parser.add_argument("--photos-dir", default=str(REAL_PHOTOS_DIR), help="a folder with MANIFEST.tsv")
    parser.add_argument("--cc0-dir", default=str(CC0_PHOTOS_DIR), help="realphotos-cc0 (its val split is scored)")
    arguments = parser.parse_args()
    print_table(measure_realphoto_accuracy(arguments.model_dir, arguments.photos_dir))
    print_cc0_table(measure_cc0_val_accuracy(arguments.model_dir, arguments.cc0_dir))


if __name__ == "__main__":
    main()
