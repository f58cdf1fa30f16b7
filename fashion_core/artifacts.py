"""What a model folder holds besides `model.keras`: its LiteRT file and its stored test-set predictions.

`prepare_model_dir` writes, beside `model.keras`:

- `model.tflite`, the LiteRT export the app serves from, checked against Keras on the test set; the
  check (`ExportCheck`) goes in `metadata.json` under `exports`, with the SHA-256 of `model.keras`;
- `test_predictions.npz`, the `(10000, 10)` float32 test-set probabilities as the app predicts them
  (flip-averaged for a model trained with flips), with the SHA-256 of `model.keras` they came from.

Both are keyed by the model file's content: after `model.keras` changes, `fresh_litert_file` and
`stored_test_probabilities` return `None` rather than stale answers. The registry calls
`prepare_model_dir` on every save (in its staging folder, before the folder is published), and
`python -m fashion_core prepare MODEL_DIR` runs it on an existing folder.

Reading (`fresh_litert_file`, `stored_test_probabilities`, `stored_test_evaluation`, and
`conv_layer_names_in_file` from `model.keras` itself) needs neither TensorFlow nor Keras; writing imports
them when it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_core.data import NUM_CLASSES, DatasetError, FashionMNIST
from fashion_core.evaluation import EvaluationReport
from fashion_core.metadata import METADATA_FILE, ExportCheck, MetadataError, ModelMetadata

MODEL_FILE = "model.keras"
LITERT_FILE = "model.tflite"
TEST_PREDICTIONS_FILE = "test_predictions.npz"
REQUIRED_AGREEMENT = 0.999
MAX_ALLOWED_DIFFERENCE = 1e-4
NUM_CHECK_IMAGES_WITHOUT_DATASET = 256
EXPORT_FORMATS = ("litert", "saved_model", "onnx")
EXPORT_LABELS = {"litert": "LiteRT (.tflite)", "saved_model": "TensorFlow SavedModel (.zip)", "onnx": "ONNX (.onnx)"}
ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")


@dataclass(frozen=True)
class PreparedArtifacts:
    """What `prepare_model_dir` wrote.

    Args:
        litert: the LiteRT export's check, or `None` when the export failed.
        test_predictions: the stored predictions' file, or `None` when the dataset was missing.
        problems: what could not be done, one sentence each (empty when all went well).
    """

    litert: ExportCheck | None
    test_predictions: Path | None
    problems: tuple[str, ...] = ()


def file_sha256(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_sha256(model_dir: Path) -> str | None:
    try:
        return file_sha256(model_dir / MODEL_FILE)
    except OSError:
        return None


class ModelFileError(ValueError):
    """Raised for a `.keras` file whose architecture cannot be read (not a zip, or no readable `config.json`)."""


def conv_layer_names_in_file(model_file: str | os.PathLike) -> list[str]:
    """Names of the 2-D convolution layers of a `.keras` file, first to last, read from its `config.json`.

    What `fashion_core.models.conv_layer_names` gives for the loaded model, without importing TensorFlow:
    the Grad-CAM page lists a model's layers while TensorFlow is still loading.

    Raises:
        ModelFileError: when the file is not a `.keras` archive with a model configuration.
    """
    try:
        with zipfile.ZipFile(model_file) as archive:
            config = json.loads(archive.read("config.json"))
        layers = config["config"]["layers"]
        return [layer["config"]["name"] for layer in layers if layer.get("class_name") == "Conv2D"]
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, AttributeError, ValueError) as error:
        raise ModelFileError(
            f"{model_file} has no readable model configuration ({type(error).__name__}: {error}). Save the model "
            f"again with `model.save(path)`. Received: model_file={model_file}"
        ) from error


def check_passes(check: ExportCheck) -> bool:
    """Whether an export's check meets the bar: top-1 agreement >= 99.9%, probabilities within 1e-4."""
    return (
        check.agreement is not None
        and check.max_abs_difference is not None
        and check.agreement >= REQUIRED_AGREEMENT
        and check.max_abs_difference <= MAX_ALLOWED_DIFFERENCE
    )


# --- reading: no TensorFlow ---------------------------------------------------------------------------


def fresh_litert_file(model_dir: str | os.PathLike) -> Path | None:
    """The folder's `model.tflite` if it was made from today's `model.keras` and passed its check, else `None`."""
    model_dir = Path(model_dir)
    try:
        check = ModelMetadata.read(model_dir).export("litert")
    except MetadataError:
        return None
    path = model_dir / LITERT_FILE
    if check is None or not path.is_file() or not check_passes(check):
        return None
    return path if check.model_sha256 == _model_sha256(model_dir) else None


def stored_test_probabilities(model_dir: str | os.PathLike) -> np.ndarray | None:
    """The stored `(10000, 10)` float32 test-set probabilities, or `None` when there are none or they are stale.

    They are returned only when they were computed from the folder's current `model.keras` (same
    SHA-256) with the flip averaging its metadata asks for today.
    """
    model_dir = Path(model_dir)
    try:
        with np.load(model_dir / TEST_PREDICTIONS_FILE, allow_pickle=False) as stored:
            probabilities = stored["probabilities"]
            sha256 = str(stored["model_sha256"])
            flip_average = bool(stored["flip_average"])
        metadata = ModelMetadata.read(model_dir)
    except (OSError, KeyError, ValueError):  # missing, truncated or not our file; MetadataError is a ValueError
        return None
    if probabilities.dtype != np.float32 or probabilities.ndim != 2 or probabilities.shape[1] != NUM_CLASSES:
        return None
    if flip_average != metadata.trained_with_flips or sha256 != _model_sha256(model_dir):
        return None
    return probabilities


def stored_test_evaluation(model_dir: str | os.PathLike, labels: np.ndarray) -> EvaluationReport | None:
    """The test-set `EvaluationReport` from stored probabilities, or `None` when none are fresh."""
    probabilities = stored_test_probabilities(model_dir)
    if probabilities is None or len(probabilities) != len(labels):
        return None
    return EvaluationReport.from_probabilities(probabilities, labels)


def write_test_probabilities(
    model_dir: str | os.PathLike, probabilities: np.ndarray, model_sha256: str, flip_average: bool
) -> Path:
    """Stores test-set probabilities beside the model, atomically (a reader sees the old file or the new)."""
    path = Path(model_dir) / TEST_PREDICTIONS_FILE
    temporary = path.parent / f".{path.name}.partial-{uuid.uuid4().hex}.npz"
    try:
        np.savez(
            temporary,
            probabilities=np.asarray(probabilities, dtype=np.float32),
            model_sha256=np.array(model_sha256),
            flip_average=np.array(flip_average),
        )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_metadata(model_dir: str | os.PathLike, metadata: ModelMetadata) -> Path:
    """Writes `metadata.json` atomically: to a temporary file, then renamed over the old one."""
    path = Path(model_dir) / METADATA_FILE
    temporary_dir = Path(model_dir) / f".metadata-{uuid.uuid4().hex}"
    temporary_dir.mkdir()
    try:
        os.replace(metadata.write(temporary_dir), path)
    finally:
        for leftover in temporary_dir.iterdir():
            leftover.unlink()
        temporary_dir.rmdir()
    return path


def onnx_unavailable_reason() -> str | None:
    """Why ONNX export cannot run here (a missing package), or `None` when it can."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"ONNX export needs {', '.join(missing)}, which is not installed. Install the versions pinned in "
        "requirements.txt (`pip install -r requirements.txt`)."
    )


def download_file_name(model_name: str, export_format: str) -> str:
    """The file name a download of one export gets, e.g. `default.tflite` or `default_saved_model.zip`."""
    return {"litert": f"{model_name}.tflite", "saved_model": f"{model_name}_saved_model.zip"}.get(
        export_format, f"{model_name}.onnx"
    )


def export_download_bytes(model_dir: str | os.PathLike, export_format: str) -> bytes:
    """The bytes to download of one export of a folder's model: a `.tflite`, a zipped SavedModel or a `.onnx`.

    The folder's checked `model.tflite` is read as it is; any other export is made now (TensorFlow,
    about a second for the shipped model).

    Raises:
        ExportError: for an unknown format, or ONNX without its converter.
    """
    model_dir = Path(model_dir)
    if export_format == "litert" and (path := fresh_litert_file(model_dir)) is not None:
        return path.read_bytes()
    from fashion_core.export import export_download, validate_format
    from fashion_core.registry import load_model

    validate_format(export_format)  # before the model loads
    return export_download(load_model(model_dir), export_format)[1]


# --- writing: imports TensorFlow ----------------------------------------------------------------------


def prepare_model_dir(
    model_dir: str | os.PathLike,
    model=None,
    data: FashionMNIST | None = None,
    data_dir: str | os.PathLike | None = None,
) -> PreparedArtifacts:
    """Writes the LiteRT export (checked) and the stored test-set predictions beside a folder's `model.keras`.

    Without the dataset, the model is still exported and checked, on random images instead of the
    test set, and no predictions are stored (they are computed on first use, see `probabilities_on_test_set`).
    A failed export is reported in `problems`, not raised: the model is usable without it.

    Args:
        model_dir: a folder with `model.keras` and `metadata.json`.
        model: the loaded model, if the caller has it (it must be the one in `model.keras`).
            Defaults to loading it.
        data: the dataset, if the caller has it. Defaults to loading it from `data_dir` or the usual places.
        data_dir: where to look for the dataset. Defaults to the usual places.

    Returns:
        A `PreparedArtifacts` saying what was written.
    """
    from fashion_core.export import export_model, verify_export
    from fashion_core.inference import Predictor
    from fashion_core.registry import load_model

    model_dir = Path(model_dir)
    metadata = ModelMetadata.read(model_dir)
    sha256 = file_sha256(model_dir / MODEL_FILE)
    model = model if model is not None else load_model(model_dir)
    data, problems = dataset_or_problem(data, data_dir)
    if data is None:
        problems.append("No test-set predictions were stored; they are computed on first use.")
    images = data.test_images if data is not None else random_check_images()
    predictor = Predictor(model)
    plain = predictor.predict(images)  # (N, 10) float32, the reference every export is checked against

    check = None
    try:
        litert_path = export_model(model, "litert", model_dir / LITERT_FILE, overwrite=True)
        check = dataclasses.replace(verify_export(litert_path, "litert", images, plain), model_sha256=sha256)
        write_metadata(model_dir, metadata.with_export(check))
        if not check_passes(check):
            problems.append(
                f"The LiteRT export agrees with Keras on {check.agreement:.2%} of {check.num_images} images "
                f"(max probability difference {check.max_abs_difference:.2g}); it is kept but not served."
            )
    except ValueError as error:  # ExportError, or ServingError for an export the interpreter refuses
        problems.append(str(error))

    predictions_path = None
    if data is not None:
        probabilities = (
            (plain + predictor.predict(images[:, :, ::-1])) / np.float32(2.0) if metadata.trained_with_flips else plain
        )
        predictions_path = write_test_probabilities(model_dir, probabilities, sha256, metadata.trained_with_flips)
    return PreparedArtifacts(litert=check, test_predictions=predictions_path, problems=tuple(problems))


def probabilities_on_test_set(model_dir: str | os.PathLike, data: FashionMNIST | None = None, model=None) -> np.ndarray:
    """The test-set probabilities as the app predicts them: stored when fresh, else computed and stored.

    Computing them imports TensorFlow and takes seconds; storing them is best effort (a read-only
    folder, such as a deployed app's, only costs the next caller the same seconds).

    Raises:
        DatasetError: when they must be computed and the dataset cannot be found.
    """
    from fashion_core.data import load_fashion_mnist
    from fashion_core.inference import Predictor
    from fashion_core.registry import load_model

    model_dir = Path(model_dir)
    stored = stored_test_probabilities(model_dir)
    if stored is not None:
        return stored
    sha256 = file_sha256(model_dir / MODEL_FILE)
    flip_average = ModelMetadata.read(model_dir).trained_with_flips
    data = data if data is not None else load_fashion_mnist(download=False)
    model = model if model is not None else load_model(model_dir)
    probabilities = Predictor(model, flip_average=flip_average).predict(data.test_images)
    with contextlib.suppress(OSError):
        write_test_probabilities(model_dir, probabilities, sha256, flip_average)
    return probabilities


def dataset_or_problem(data: FashionMNIST | None, data_dir) -> tuple[FashionMNIST | None, list[str]]:
    """The dataset, or `None` and the sentence that says it was missing."""
    from fashion_core.data import load_fashion_mnist

    if data is not None:
        return data, []
    try:
        return load_fashion_mnist(data_dir, download=False), []
    except DatasetError as error:
        return None, [
            f"Fashion-MNIST is missing ({error}), so the export is checked on {NUM_CHECK_IMAGES_WITHOUT_DATASET} "
            "random images instead of the test set."
        ]


def random_check_images() -> np.ndarray:
    """Reproducible uint8 `(256, 28, 28)` images to check an export on when the test set is missing."""
    return np.random.default_rng(0).integers(0, 256, size=(NUM_CHECK_IMAGES_WITHOUT_DATASET, 28, 28), dtype=np.uint8)
