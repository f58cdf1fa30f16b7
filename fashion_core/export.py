"""Exports a Keras model to LiteRT, a TensorFlow SavedModel or ONNX, and checks each in its own runtime.

An export is only as good as its agreement with the model it came from, so each one is run where
it will be used: LiteRT's interpreter for `.tflite`, TensorFlow for a SavedModel, ONNX Runtime for
`.onnx`, and its probabilities are compared with Keras' on the same images (`verify_export`).

This module needs TensorFlow (the converters are part of it).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
import uuid
import zipfile
from pathlib import Path

import numpy as np

from fashion_core.artifacts import EXPORT_FORMATS, onnx_unavailable_reason
from fashion_core.data import IMAGE_SIZE, NUM_CLASSES, as_model_input
from fashion_core.metadata import ExportCheck

# The name of each format's export inside a model folder or a download.
EXPORT_NAMES = {"litert": "model.tflite", "saved_model": "saved_model", "onnx": "model.onnx"}

# Keras traces the model to export it; two exports of one model object at once would share that state.
_EXPORT_LOCK = threading.Lock()


class ExportError(ValueError):
    """Raised for an unknown format, a format whose converter is missing, or an export that failed."""


def validate_format(export_format: str) -> str:
    """Returns `export_format` if it is one of `EXPORT_FORMATS`; raises `ExportError` otherwise."""
    if export_format not in EXPORT_FORMATS:
        raise ExportError(
            f"The export format is one of {', '.join(EXPORT_FORMATS)}. Received: export_format={export_format!r}"
        )
    if export_format == "onnx" and (reason := onnx_unavailable_reason()):
        raise ExportError(f"{reason} Received: export_format='onnx'")
    return export_format


def export_model(model, export_format: str, out_path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Exports `model` (0..255 images in, probabilities out) to `out_path` in one format.

    The export is written beside `out_path` under a temporary name and renamed into place, so a
    reader never sees half a file.

    Args:
        model: a Keras model under the project's contract.
        export_format: `"litert"` (a `.tflite` file), `"saved_model"` (a folder) or `"onnx"` (a file).
        out_path: the file or folder to write.
        overwrite: whether to replace an existing `out_path`. Defaults to `False`.

    Returns:
        `out_path` as a `Path`.

    Raises:
        ExportError: for an unknown format, a missing converter, an existing `out_path` without
            `overwrite`, or a converter that failed.
    """
    import tensorflow as tf

    validate_format(export_format)
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise ExportError(
            f"{out_path} already exists; pass overwrite=True (CLI: --overwrite). Received: out_path={out_path}"
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tflite" if export_format == "litert" else out_path.suffix  # Keras checks LiteRT's suffix
    temporary = out_path.parent / f".{out_path.name}.partial-{uuid.uuid4().hex}{suffix}"
    keras_format = {"litert": "litert", "saved_model": "tf_saved_model", "onnx": "onnx"}[export_format]
    signature = [tf.TensorSpec((None, IMAGE_SIZE, IMAGE_SIZE, 1), tf.float32, name="image")]
    try:
        with _EXPORT_LOCK:
            model.export(str(temporary), format=keras_format, verbose=False, input_signature=signature)
        _replace(temporary, out_path)
    except Exception as error:  # converters raise many kinds
        raise ExportError(
            f"Exporting the model to {export_format} failed ({type(error).__name__}: {error}). "
            f"Received: out_path={out_path}"
        ) from error
    finally:
        _remove(temporary)
    return out_path


def export_probabilities(
    path: str | os.PathLike, export_format: str, images: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """`(N, 10)` probabilities of 0..255 images from an export, run in the export's own runtime."""
    validate_format(export_format)
    path = Path(path)
    images = np.asarray(images)
    if export_format == "litert":
        from fashion_core.serving import LiteRTPredictor, usable_cpus

        return LiteRTPredictor(path, num_threads=usable_cpus()).predict(images, batch_size=batch_size)
    run_batch = _saved_model_runner(path) if export_format == "saved_model" else _onnx_runner(path)
    outputs = [
        run_batch(as_model_input(images[start : start + batch_size])) for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, NUM_CLASSES), dtype=np.float32)


def _saved_model_runner(path: Path):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda batch: next(iter(serve(image=tf.constant(batch)).values())).numpy()


def _onnx_runner(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {input_name: batch})[0]


def verify_export(
    path: str | os.PathLike, export_format: str, images: np.ndarray, reference_probabilities: np.ndarray
) -> ExportCheck:
    """Runs an export on `images` in its own runtime and compares it with Keras' probabilities.

    Args:
        path: the exported file or folder.
        export_format: its format (see `EXPORT_FORMATS`).
        images: 0..255 images, `(N, 28, 28)` or `(N, 28, 28, 1)`.
        reference_probabilities: `(N, 10)` probabilities of the Keras model on the same images
            (plain, without flip averaging).

    Returns:
        An `ExportCheck` with the top-1 agreement, the largest probability difference and the
        number of images (`model_sha256` is left for the caller, who knows the model file).
    """
    reference = np.asarray(reference_probabilities, dtype=np.float32)
    if reference.shape != (len(images), NUM_CLASSES):
        raise ExportError(
            f"reference_probabilities must be (N, 10) for N={len(images)} images. Received: shape={reference.shape}"
        )
    probabilities = export_probabilities(path, export_format, images)
    return ExportCheck(
        format=export_format,
        file=Path(path).name,
        agreement=float((probabilities.argmax(axis=1) == reference.argmax(axis=1)).mean()) if len(reference) else None,
        max_abs_difference=float(np.abs(probabilities - reference).max()) if len(reference) else None,
        num_images=len(reference),
    )


def export_download(model, export_format: str) -> tuple[str, bytes]:
    """`(file name, bytes)` of an export to download: the `.tflite` or `.onnx` file, or a SavedModel as a zip."""
    validate_format(export_format)
    with tempfile.TemporaryDirectory(prefix="fashion-export-") as folder:
        path = export_model(model, export_format, Path(folder) / EXPORT_NAMES[export_format])
        if path.is_file():
            return path.name, path.read_bytes()
        return f"{path.name}.zip", zip_folder(path)


def zip_folder(folder: Path) -> bytes:
    """The bytes of a zip of `folder`, its files under `folder.name/`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, Path(folder.name) / file.relative_to(folder))
    return buffer.getvalue()


def _replace(source: Path, target: Path) -> None:
    """Moves `source` onto `target`; a folder target is swapped out and then removed."""
    if target.is_dir():
        aside = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex}"
        target.rename(aside)
        os.rename(source, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(source, target)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
