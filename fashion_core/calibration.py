"""Confidence that means what it says: calibration error, temperature scaling, and when to say "unsure".

**Calibration.** A model is calibrated when, of the answers it gives with 80% confidence, 80% are
right. The expected calibration error (ECE) measures the gap: answers are put into 15 equal-width
bins of confidence, and the gaps between each bin's accuracy and mean confidence are averaged,
weighted by the bin's share of answers. Temperature scaling (Guo et al. 2017) divides the logits by
one number T fitted on held-out images by minimising the negative log-likelihood; T > 1 softens
an over-confident model, T < 1 sharpens an under-confident one (label smoothing and flip averaging
both make ours under-confident). Dividing the logits by T is dividing the last Dense layer's kernel
and bias by T, so the temperature is folded into the weights (`fold_temperature`) and the model
stays a plain Keras model under the project's contract, with the same top class for every image.

The models output softmax probabilities, and `log p` is the logits less a constant per image, so
`softmax(log p / T)` is the tempered model: T is fitted from predicted probabilities alone. The app
averages the probabilities of an image and its mirror image for models trained with flips, after
the (tempered) softmax: T is fitted on exactly that average (`fit_temperature` with two views).

**Selective answers.** `choose_confidence_threshold` picks, on labelled photos, the lowest confidence
at which the answers given are right at a target rate; below it the app says "unsure".

This module needs neither TensorFlow nor Streamlit at import; the functions that touch a Keras model
import Keras when called.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_core.metadata import CalibrationInfo, ModelMetadata, SelectiveAnswer

NUM_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)  # the search interval of `fit_temperature`
TARGET_ACCURACY = 0.9
REAL_PHOTOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "realphotos-cc0"
_SMALLEST_PROBABILITY = 1e-30  # float32 softmax outputs can be exactly 0; log needs a floor


class CalibrationError(ValueError):
    """Raised for inputs calibration cannot use: mismatched shapes, a model without a softmax Dense layer, ..."""


# ---------------------------------------------------------------------------------------------------
# Measuring calibration


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: answers with a confidence in `(lower, upper]`."""

    lower: float
    upper: float
    count: int
    confidence: float  # mean confidence of its answers
    accuracy: float  # share of its answers that are right


def _checked(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probabilities.ndim != 2 or labels.shape != (len(probabilities),) or len(labels) == 0:
        raise CalibrationError(
            "Expected (N, C) probabilities and (N,) labels with N > 0. "
            f"Received: probabilities.shape={probabilities.shape}, labels.shape={labels.shape}"
        )
    return probabilities, labels


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> list[ReliabilityBin]:
    """The non-empty bins of a reliability diagram: equal-width bins of the top probability.

    Args:
        probabilities: `(N, C)` predicted probabilities.
        labels: `(N,)` true class indices.
        num_bins: bins over [0, 1]. Defaults to 15.

    Returns:
        `ReliabilityBin`s in order of confidence; a bin holds confidences in `(lower, upper]` (the
        first also 0).
    """
    probabilities, labels = _checked(probabilities, labels)
    confidences = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    indices = np.clip(np.ceil(confidences * num_bins).astype(int) - 1, 0, num_bins - 1)
    bins = []
    for index in np.unique(indices):
        members = indices == index
        bins.append(
            ReliabilityBin(
                lower=index / num_bins,
                upper=(index + 1) / num_bins,
                count=int(members.sum()),
                confidence=float(confidences[members].mean()),
                accuracy=float(correct[members].mean()),
            )
        )
    return bins


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> float:
    """ECE: the gap between accuracy and mean confidence per bin, averaged with the bins' shares of answers.

    Example:
        >>> expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1])  # bins (0.8, 0.867], (0.533, 0.6]
        0.35
    """
    bins = reliability_bins(probabilities, labels, num_bins)
    total = sum(item.count for item in bins)
    return float(sum(item.count / total * abs(item.accuracy - item.confidence) for item in bins))


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean `-log p(true class)` (probabilities floored at 1e-30)."""
    probabilities, labels = _checked(probabilities, labels)
    true_class = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(true_class, _SMALLEST_PROBABILITY)).mean())


# ---------------------------------------------------------------------------------------------------
# Temperature scaling


def as_log_probabilities(logits_or_probabilities: np.ndarray) -> np.ndarray:
    """float64 log-probabilities (up to a constant per row) of logits or probabilities, of any leading shape.

    Rows that are non-negative and sum to 1 are taken for probabilities and logged; anything else is
    taken for logits, which are log-probabilities up to a constant.
    """
    values = np.asarray(logits_or_probabilities, dtype=np.float64)
    if values.ndim < 2 or values.shape[-1] < 2:
        raise CalibrationError(f"Expected (..., C) logits or probabilities with C >= 2. Received: shape={values.shape}")
    looks_like_probabilities = values.min() >= 0 and np.allclose(values.sum(axis=-1), 1.0, atol=1e-3)
    return np.log(np.maximum(values, _SMALLEST_PROBABILITY)) if looks_like_probabilities else values


def tempered_probabilities(log_probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """`softmax(log p / T)`, averaged over the views when `log_probabilities` is `(V, N, C)`; `(N, C)` float64."""
    scaled = np.asarray(log_probabilities, dtype=np.float64) / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exponentials = np.exp(scaled)
    probabilities = exponentials / exponentials.sum(axis=-1, keepdims=True)
    return probabilities.mean(axis=0) if probabilities.ndim == 3 else probabilities


def fit_temperature(logits_or_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T that minimises the negative log-likelihood of `softmax(logits / T)`.

    Args:
        logits_or_probabilities: `(N, C)` logits or probabilities of one view of each image, or
            `(V, N, C)` for `V` views (an image and its mirror image) whose tempered probabilities
            are averaged, as the app does for a model trained with flips.
        labels: `(N,)` true class indices.

    Returns:
        T, found by golden-section search on log T over `TEMPERATURE_RANGE` (the likelihood of one
        temperature parameter is unimodal in practice; to 1e-4 relative).

    Example:
        >>> fit_temperature(logits, labels)  # logits of a model trained with label smoothing
        0.71
    """
    log_probabilities = as_log_probabilities(logits_or_probabilities)
    views = log_probabilities if log_probabilities.ndim == 3 else log_probabilities[None]
    _checked(views[0], labels)

    def loss(log_temperature: float) -> float:
        return negative_log_likelihood(tempered_probabilities(views, math.exp(log_temperature)), labels)

    return math.exp(_golden_section_minimum(loss, *np.log(TEMPERATURE_RANGE), tolerance=1e-4))


def _golden_section_minimum(function, low: float, high: float, tolerance: float) -> float:
    """The minimiser of a unimodal `function` on `[low, high]`, to `tolerance`."""
    ratio = (math.sqrt(5) - 1) / 2
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    left_value, right_value = function(left), function(right)
    while high - low > tolerance:
        if left_value <= right_value:
            high, right, right_value = right, left, left_value
            left = high - ratio * (high - low)
            left_value = function(left)
        else:
            low, left, left_value = left, right, right_value
            right = low + ratio * (high - low)
            right_value = function(right)
    return (low + high) / 2


def _softmax_dense(model: Any):
    """The Dense layer whose kernel and bias make the logits: the last layer with a softmax, or the Dense
    layer before a final softmax `Activation`/`Softmax` layer."""
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    is_softmax = activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"
    if isinstance(last, keras.layers.Dense) and is_softmax:
        return last
    if (is_softmax and isinstance(last, keras.layers.Activation)) or isinstance(last, keras.layers.Softmax):
        before = model.layers[-2] if len(model.layers) > 1 else None
        linear = getattr(before, "activation", None) in (None, keras.activations.linear)
        if isinstance(before, keras.layers.Dense) and linear:
            return before
    raise CalibrationError(
        "Temperature scaling folds T into a last Dense layer with a softmax (or a linear Dense layer followed by "
        f"a softmax Activation); this model ends otherwise. Received: last layer={type(last).__name__} {last.name!r}"
    )


def fold_temperature(model: Any, temperature: float) -> Any:
    """A copy of `model` whose logits are divided by `temperature`: its last Dense kernel and bias are.

    The copy has the same layers (plain Keras, loads with `keras.saving.load_model` and no custom
    objects), the same top class for every image, and probabilities `softmax(logits / T)`.

    Raises:
        CalibrationError: for a temperature that is not positive and finite, or a model that does not
            end in a softmax Dense layer.
    """
    import keras

    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise CalibrationError(f"A temperature is a positive finite number. Received: temperature={temperature!r}")
    _softmax_dense(model)  # fails before copying for a model that cannot be tempered
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    dense = _softmax_dense(copy)
    dense.kernel.assign(dense.kernel.numpy() / temperature)
    if dense.bias is not None:
        dense.bias.assign(dense.bias.numpy() / temperature)
    return copy


def view_log_probabilities(model: Any, images: np.ndarray, flip_average: bool) -> np.ndarray:
    """float64 `(V, N, 10)` log-probabilities of the images (and of their mirror images when `flip_average`).

    `model` is a Keras model or a predictor (whose own flip averaging is not used: each view is kept).
    """
    from fashion_core.explain import as_predictor

    predictor = as_predictor(model)
    if getattr(predictor, "flip_average", False) and hasattr(predictor, "model"):
        predictor = as_predictor(predictor.model)  # one view at a time
    images = np.asarray(images)
    views = [images, images[:, :, ::-1]] if flip_average else [images]
    return np.stack([as_log_probabilities(predictor.predict(view)) for view in views])


def calibrate_model(
    model: Any, images: np.ndarray, labels: np.ndarray, flip_average: bool, fitted_on: str = ""
) -> tuple[Any, CalibrationInfo]:
    """Fits a temperature on held-out images, as the app predicts, and folds it into a copy of the model.

    Args:
        model: a Keras model under the project's contract, ending in a softmax Dense layer.
        images: `(N, 28, 28)` held-out images, 0..255 (the validation split, never the test set).
        labels: `(N,)` their classes.
        flip_average: whether the app averages each image with its mirror image for this model.
        fitted_on: what the images are, for the record. Defaults to `"N images"`.

    Returns:
        `(calibrated_model, CalibrationInfo)` with the ECE and NLL on those images before and after.

    Raises:
        CalibrationError: for mismatched images and labels or a model without a softmax Dense layer.
    """
    labels = np.asarray(labels)
    _softmax_dense(model)
    views = view_log_probabilities(model, images, flip_average)
    temperature = fit_temperature(views, labels)
    before, after = tempered_probabilities(views, 1.0), tempered_probabilities(views, temperature)
    info = CalibrationInfo(
        temperature=round(temperature, 6),
        fitted_on=fitted_on or f"{len(labels)} images" + (", flip-averaged" if flip_average else ""),
        ece_before=round(expected_calibration_error(before, labels), 6),
        ece_after=round(expected_calibration_error(after, labels), 6),
        nll_before=round(negative_log_likelihood(before, labels), 6),
        nll_after=round(negative_log_likelihood(after, labels), 6),
    )
    return fold_temperature(model, temperature), info


# ---------------------------------------------------------------------------------------------------
# Selective answers


@dataclass(frozen=True)
class CoverageCurve:
    """Accuracy against coverage: answering only the `k` most confident, for every `k`.

    All arrays are `(N,)`, most confident first: `thresholds[k - 1]` is the k-th highest confidence,
    `coverage[k - 1] = k / N`, `accuracy[k - 1]` the accuracy of those k answers.
    """

    thresholds: np.ndarray
    coverage: np.ndarray
    accuracy: np.ndarray


def coverage_curve(probabilities: np.ndarray, labels: np.ndarray) -> CoverageCurve:
    """Accuracy against coverage when only answers at or above a confidence are given."""
    probabilities, labels = _checked(probabilities, labels)
    confidences = probabilities.max(axis=1)
    order = np.argsort(-confidences, kind="stable")
    correct = (probabilities.argmax(axis=1) == labels)[order]
    answered = np.arange(1, len(labels) + 1)
    return CoverageCurve(
        thresholds=confidences[order],
        coverage=answered / len(labels),
        accuracy=np.cumsum(correct) / answered,
    )


def choose_confidence_threshold(
    probabilities: np.ndarray, labels: np.ndarray, target_accuracy: float = TARGET_ACCURACY, fitted_on: str = ""
) -> SelectiveAnswer:
    """The lowest confidence threshold at which the answers given are right at `target_accuracy` or more.

    An answer is given when its top probability is at or above the threshold. Every distinct
    confidence is a candidate; the lowest whose answers reach the target wins (so the most photos
    are answered). When none does, the threshold is 1.0 and the app says "unsure" to nearly all.

    Args:
        probabilities: `(N, C)` probabilities of labelled photos, as the app predicts them.
        labels: `(N,)` their true classes.
        target_accuracy: the accuracy the answers given should reach. Defaults to 0.9.
        fitted_on: what the photos are, for the record. Defaults to `"N labelled photos"`.

    Returns:
        A `SelectiveAnswer` with the threshold, and the accuracy and coverage it gives on these photos.
    """
    probabilities, labels = _checked(probabilities, labels)
    if not 0.0 < target_accuracy <= 1.0:
        raise CalibrationError(f"target_accuracy is a share in (0, 1]. Received: target_accuracy={target_accuracy}")
    curve = coverage_curve(probabilities, labels)
    # With ties, only the last of a run of equal confidences is a real cut: `>= t` answers all of them.
    last_of_tie = np.append(curve.thresholds[1:] < curve.thresholds[:-1], True)
    reaching = np.flatnonzero(last_of_tie & (curve.accuracy >= target_accuracy - 1e-12))
    fitted_on = fitted_on or f"{len(labels)} labelled photos"
    if len(reaching) == 0:
        answered = curve.thresholds >= 1.0
        accuracy = float(curve.accuracy[answered.sum() - 1]) if answered.any() else None
        return SelectiveAnswer(1.0, target_accuracy, accuracy, float(answered.mean()), fitted_on)
    cut = reaching[-1]  # the lowest confidence whose answers reach the target
    return SelectiveAnswer(
        threshold=round(float(curve.thresholds[cut]), 6),
        target_accuracy=target_accuracy,
        accuracy=round(float(curve.accuracy[cut]), 6),
        coverage=round(float(curve.coverage[cut]), 6),
        fitted_on=fitted_on,
    )


def is_unsure(probabilities: np.ndarray, metadata: ModelMetadata, default_threshold: float = 0.0) -> bool:
    """Whether the app should say "unsure" for these `(10,)` probabilities under the model's threshold."""
    threshold = metadata.selective.threshold if metadata.selective else default_threshold
    return float(np.max(probabilities)) < threshold


# ---------------------------------------------------------------------------------------------------
# Labelled photos


def labelled_photos(
    photos_dir: str | os.PathLike = REAL_PHOTOS_DIR, split: str = "val", cache_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The photos of one split of a labelled photo folder, converted to 28x28 as the app converts uploads.

    The folder holds `MANIFEST.tsv` (`relative_path`, `class_index`, `split` columns). Conversions
    take about 50 ms a photo, so they are cached in `cache_dir` (default: a folder in the system's
    temporary directory), keyed by the manifest, the split and the conversion code. Photos the
    pipeline cannot convert are left out.

    Returns:
        `(images (N, 28, 28) uint8, labels (N,) int64)`.

    Raises:
        CalibrationError: when the folder has no manifest or the split has no photos.
    """
    import csv

    from fashion_core import preprocess

    photos_dir = Path(photos_dir)
    manifest = photos_dir / "MANIFEST.tsv"
    if not manifest.is_file():
        raise CalibrationError(
            f"A labelled photo folder has a MANIFEST.tsv listing its photos; {photos_dir} has none. "
            f"Received: photos_dir={str(photos_dir)!r}"
        )
    key = hashlib.sha256(manifest.read_bytes() + split.encode() + Path(preprocess.__file__).read_bytes()).hexdigest()
    cache = Path(cache_dir or Path(tempfile.gettempdir()) / "fashion_core_photo_cache") / f"{key[:24]}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            return stored["images"], stored["labels"]
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if row.get("split") == split]
    images, labels = [], []
    for row in rows:
        try:
            images.append(preprocess.photo_to_fashion_mnist((photos_dir / row["relative_path"]).read_bytes()))
        except (OSError, ValueError):  # unreadable or unconvertible photo: left out
            continue
        labels.append(int(row["class_index"]))
    if not images:
        raise CalibrationError(f"{manifest} lists no convertible photos in split {split!r}. Received: split={split!r}")
    images_array, labels_array = np.stack(images).astype(np.uint8), np.array(labels, dtype=np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez_compressed(temporary, images=images_array, labels=labels_array)
    os.replace(temporary, cache)
    return images_array, labels_array


# ---------------------------------------------------------------------------------------------------
# A model folder


def calibrate_model_dir(
    model_dir: str | os.PathLike,
    photos_dir: str | os.PathLike | None = REAL_PHOTOS_DIR,
    data: Any = None,
    target_accuracy: float = TARGET_ACCURACY,
) -> ModelMetadata:
    """Calibrates a saved model folder in place: temperature on its validation split, "unsure" on photos.

    1. The validation split the model was trained with (its config's seed, data size and fraction)
       gives the temperature, fitted as the app predicts and folded into `model.keras`.
    2. The `val` photos of `photos_dir` (skipped when `None`) give the confidence threshold under
       which the app says "unsure" (`choose_confidence_threshold`), measured on the calibrated model.
    3. The test metrics in the metadata are measured again (the top class never changes without
       flip averaging; with it, a few may); the test ECE before and after goes in `calibration_check`.

    `model.keras` and `metadata.json` are each written to a temporary file beside them and renamed
    over the old ones; other files of the folder are kept. A model already calibrated is tempered
    again, and its recorded temperature is the product.

    Returns:
        The new `ModelMetadata`, as written.

    Raises:
        MetadataError, RegistryError: for a folder without readable metadata or model.
        CalibrationError: for a model without a validation split or a softmax Dense layer.
        DatasetError: when Fashion-MNIST is missing.
    """
    from fashion_core.data import load_fashion_mnist
    from fashion_core.evaluation import evaluate_model
    from fashion_core.registry import load_model
    from fashion_core.training.config import TrainingConfig
    from fashion_core.training.loop import split_training_data

    folder = Path(model_dir)
    metadata = ModelMetadata.read(folder)
    model = load_model(folder)
    data = data or load_fashion_mnist()
    config = TrainingConfig.from_dict(metadata.config)
    _, (val_images, val_labels) = split_training_data(config, data)
    if len(val_labels) == 0:
        raise CalibrationError(
            "Calibration fits its temperature on the validation split, and this model was trained without one; "
            "train it again with a validation share above 0. "
            f"Received: validation_fraction={config.validation_fraction}"
        )
    flip_average = metadata.trained_with_flips
    fitted_on = f"validation split ({len(val_labels)} images{', flip-averaged' if flip_average else ''})"
    calibrated, info = calibrate_model(model, val_images, val_labels, flip_average, fitted_on)
    info = CalibrationInfo(**{**info.__dict__, "temperature": round(info.temperature * metadata.temperature, 6)})

    before = evaluate_model(model, data.test_images, data.test_labels, flip_average=flip_average)
    after_app = evaluate_model(calibrated, data.test_images, data.test_labels, flip_average=flip_average)
    after_plain = after_app if not flip_average else evaluate_model(calibrated, data.test_images, data.test_labels)
    changes: dict[str, Any] = {
        "calibration": info,
        **{key: value for key, value in after_plain.summary().items() if key != "per_class_accuracy"},
        "per_class_accuracy": after_plain.summary()["per_class_accuracy"],
    }
    if flip_average:
        changes["test_accuracy_flip_average"] = round(after_app.accuracy, 6)
    check = {
        "as_the_app_predicts": "flip-averaged" if flip_average else "plain",
        "test_ece_before": round(expected_calibration_error(before.probabilities, before.labels), 6),
        "test_ece_after": round(expected_calibration_error(after_app.probabilities, after_app.labels), 6),
        "test_accuracy_before": round(before.accuracy, 6),
        "test_accuracy_after": round(after_app.accuracy, 6),
    }
    if photos_dir is not None:
        images, labels = labelled_photos(photos_dir, "val")
        probabilities = evaluate_model(calibrated, images, labels, flip_average=flip_average).probabilities
        name = f"{Path(photos_dir).name} val ({len(labels)} photos)"
        changes["selective"] = choose_confidence_threshold(probabilities, labels, target_accuracy, fitted_on=name)
        check["photos_ece_after"] = round(expected_calibration_error(probabilities, labels), 6)
    new_metadata = metadata.replace(**changes, extra={**metadata.extra, "calibration_check": check})
    _replace_model_file(folder, calibrated)
    new_metadata = new_metadata.replace(size_bytes=(folder / "model.keras").stat().st_size)
    _replace_metadata_file(folder, new_metadata)
    return new_metadata


def _replace_model_file(folder: Path, model: Any) -> None:
    """Saves `model` to a temporary `.keras` file in `folder` and renames it over `model.keras`."""
    temporary = folder / f".calibrating-{os.getpid()}.keras"
    try:
        model.save(temporary)
        os.replace(temporary, folder / "model.keras")
    finally:
        temporary.unlink(missing_ok=True)


def _replace_metadata_file(folder: Path, metadata: ModelMetadata) -> None:
    """Writes `metadata.json` through a temporary file renamed over it."""
    staging = Path(tempfile.mkdtemp(prefix=".calibrating-", dir=folder))
    try:
        os.replace(metadata.write(staging), folder / "metadata.json")
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
