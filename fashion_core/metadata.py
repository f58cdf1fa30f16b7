"""`ModelMetadata`: the typed record of a model folder's `metadata.json`, read and written in one place.

Every fact a page, the registry or a benchmark needs about a model comes from here: the reported
test accuracy, whether it was trained with flips (and so gets flip averaging), its architecture,
its training config, and the records that later steps add (calibration, exports, the photo set it
was trained on, the selective-answer threshold). `from_dict` accepts every metadata file the app
has ever written: a missing key gets its default, and keys this class does not know are kept in
`extra` and written back unchanged.

This module needs neither TensorFlow nor Streamlit.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METADATA_FILE = "metadata.json"
# One line per architecture of `fashion_core.models.ARCHITECTURES`, for the pages (kept here: no TensorFlow).
ARCHITECTURE_DESCRIPTIONS = {
    "dense": "Flatten, Dense 128, Dense 10: the tutorials' baseline (no conv layer, so no Grad-CAM).",
    "seed_cnn": "Two conv layers with pooling, Dense 128: the tutorials' small CNN.",
    "small_cnn": "Two conv layers with batch norm, Dense 128: learns in a few passes (the Quick preset).",
    "cnn": "VGG-style CNN with batch norm, dropout and augmentation: the default.",
}


class MetadataError(ValueError):
    """Raised for a `metadata.json` that is missing, unreadable or not a JSON object."""


@dataclass(frozen=True)
class CalibrationInfo:
    """Temperature scaling folded into the last layer (see `fashion_core.calibration`).

    Args:
        temperature: the fitted temperature T; the saved model's logits are already divided by it.
        fitted_on: what T was fitted on, e.g. `"validation split (6000 images)"`.
        ece_before / ece_after: expected calibration error (15 bins) on that set, before and after.
        nll_before / nll_after: mean negative log-likelihood on that set, before and after.
    """

    temperature: float
    fitted_on: str = ""
    ece_before: float | None = None
    ece_after: float | None = None
    nll_before: float | None = None
    nll_after: float | None = None


@dataclass(frozen=True)
class ExportCheck:
    """One exported format, checked against Keras in its own runtime.

    Args:
        format: `"litert"`, `"saved_model"` or `"onnx"`.
        file: the export's file or folder name inside the model folder (empty when not kept there).
        agreement: share of the checked images whose top-1 class matches Keras.
        max_abs_difference: the largest absolute difference of a probability.
        num_images: how many images were checked.
        model_sha256: the `.keras` file the export was made from, so a stale export is never served.
    """

    format: str
    file: str = ""
    agreement: float | None = None
    max_abs_difference: float | None = None
    num_images: int = 0
    model_sha256: str = ""


@dataclass(frozen=True)
class PhotoSetInfo:
    """The labelled photos a model was trained on (see `fashion_core.photostore`).

    Args:
        fingerprint: a hash of the photo set used (its photos' digests and labels).
        train_counts: photos per class name used for training.
        val_counts: photos per class name used to choose.
        source: where the photos came from (a database URL without password, or a folder).
    """

    fingerprint: str
    train_counts: dict[str, int] = field(default_factory=dict)
    val_counts: dict[str, int] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class SelectiveAnswer:
    """The confidence under which the app says "unsure" (see `fashion_core.calibration`).

    Args:
        threshold: answers with a top probability at or above it are given; below it, "unsure".
        target_accuracy: the accuracy the answers given were meant to reach, e.g. 0.9.
        accuracy: the accuracy of the answers given on the set it was chosen on.
        coverage: the share of that set that got an answer.
        fitted_on: what it was chosen on, e.g. `"realphotos-cc0 val (369 photos)"`.
    """

    threshold: float
    target_accuracy: float
    accuracy: float | None = None
    coverage: float | None = None
    fitted_on: str = ""


_RECORDS = {
    "calibration": CalibrationInfo,
    "photos": PhotoSetInfo,
    "selective": SelectiveAnswer,
}


@dataclass(frozen=True)
class ModelMetadata:
    """What `metadata.json` says about a model. Build with `from_dict`, write with `to_dict`.

    The fields are the facts the app reads; everything else the file holds (history, confusion
    matrix, notes, ...) is kept in `extra` and written back as it was.
    """

    architecture: str = "unknown"
    config: dict[str, Any] = field(default_factory=dict)
    test_accuracy: float | None = None
    test_accuracy_flip_average: float | None = None
    test_loss: float | None = None
    validation_accuracy: float | None = None
    per_class_accuracy: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int | None = None
    best_epoch: int | None = None
    training_seconds: float | None = None
    num_train_images: int | None = None
    created_at: str = ""
    command: str = ""
    seed: int | None = None
    parameter_count: int | None = None
    size_bytes: int | None = None
    tensorflow_version: str = ""
    keras_version: str = ""
    calibration: CalibrationInfo | None = None
    exports: tuple[ExportCheck, ...] = ()
    photos: PhotoSetInfo | None = None
    selective: SelectiveAnswer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # --- the rules the app applies to every model --------------------------------------------------

    @property
    def trained_with_flips(self) -> bool:
        """Whether the model was trained on randomly mirrored images, so flip averaging helps it.

        Averaging with the mirror image (test-time augmentation) helps a model that learnt both
        orientations. Fashion-MNIST's shoes all point left, so a model trained without flips has
        never seen one pointing right and would be hurt, not helped.
        """
        strength = self.config.get("augment_strength", 0)
        return self.config.get("augment") is True and isinstance(strength, int | float) and strength > 0

    @property
    def reported_test_accuracy(self) -> float | None:
        """The test accuracy of the app's predictions: flip-averaged for a model trained with flips."""
        if self.trained_with_flips and self.test_accuracy_flip_average is not None:
            return self.test_accuracy_flip_average
        return self.test_accuracy

    @property
    def temperature(self) -> float:
        """The temperature folded into the model (1.0 for an uncalibrated model)."""
        return self.calibration.temperature if self.calibration else 1.0

    def export(self, export_format: str) -> ExportCheck | None:
        """The check of one exported format, or `None` if the model has none."""
        return next((check for check in self.exports if check.format == export_format), None)

    def replace(self, **changes: Any) -> ModelMetadata:
        """A copy with some fields changed (the record itself is immutable)."""
        return dataclasses.replace(self, **changes)

    def with_export(self, check: ExportCheck) -> ModelMetadata:
        """A copy whose export of `check.format` is `check` (replacing an older one)."""
        others = tuple(existing for existing in self.exports if existing.format != check.format)
        return self.replace(exports=(*others, check))

    # --- reading and writing -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        """Builds the record from a metadata dict of any age; unknown keys land in `extra`."""
        if not isinstance(data, dict):
            raise MetadataError(f"Model metadata must be a JSON object. Received: {type(data).__name__}")
        names = {item.name for item in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        for name in names & data.keys():
            values[name] = _read_field(name, data[name])
        config = values.get("config") or {}
        values.setdefault("architecture", config.get("architecture", "unknown"))
        values.setdefault("seed", config.get("seed"))
        values["extra"] = {key: value for key, value in data.items() if key not in names and key != "extra"}
        values["extra"].update(data.get("extra") or {})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict `from_dict` reads back to an equal record."""
        data: dict[str, Any] = dict(self.extra)
        for item in dataclasses.fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if value is None or value == () or value == "" or value == {} or value == []:
                continue
            if item.name == "exports":
                value = [dataclasses.asdict(check) for check in value]
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            data[item.name] = value
        return data

    @classmethod
    def read(cls, folder: str | Path) -> ModelMetadata:
        """Reads `folder/metadata.json`; raises `MetadataError` if it is missing or not a JSON object."""
        path = Path(folder) / METADATA_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise MetadataError(f"{path} is missing; save the model again.") from error
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MetadataError(f"{path} is unreadable ({error}); delete the model and save it again.") from error
        if not isinstance(data, dict):
            raise MetadataError(f"{path} does not hold a JSON object; delete the model and save it again.")
        return cls.from_dict(data)

    def write(self, folder: str | Path) -> Path:
        """Writes `folder/metadata.json` (sorted keys, indented) and returns its path."""
        path = Path(folder) / METADATA_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        return path


def _read_field(name: str, value: Any) -> Any:
    """One field's value from JSON: nested records become their dataclasses, bad types their default."""
    if name in _RECORDS:
        return _record(_RECORDS[name], value)
    if name == "exports":
        checks = (_record(ExportCheck, item) for item in value or [])
        return tuple(check for check in checks if check is not None)
    if name in ("config", "per_class_accuracy", "extra"):
        return value if isinstance(value, dict) else {}
    if name in ("confusion_matrix", "history"):
        return value if isinstance(value, list) else []
    if name in ("epochs_run", "best_epoch", "num_train_images", "seed", "parameter_count", "size_bytes"):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if name in ("architecture", "created_at", "command", "tensorflow_version", "keras_version"):
        return value if isinstance(value, str) else str(value)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _record(record_type: type, value: Any) -> Any:
    """A nested record from its dict, keeping only the keys it knows; `None` if it cannot be built."""
    if not isinstance(value, dict):
        return None
    known = {item.name for item in dataclasses.fields(record_type)}
    try:
        return record_type(**{key: item for key, item in value.items() if key in known})
    except TypeError:  # a required field is missing
        return None
