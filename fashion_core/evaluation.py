"""Test-set metrics computed from probabilities: accuracy, loss, confusion matrix and per-class scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fashion_core.data import CLASS_NAMES, NUM_CLASSES


@dataclass(frozen=True)
class EvaluationReport:
    """What a model does on a labelled set.

    `confusion_matrix[true, predicted]` counts images; `probabilities` is `(N, 10)` float32.
    """

    labels: np.ndarray
    probabilities: np.ndarray

    @classmethod
    def from_probabilities(cls, probabilities: np.ndarray, labels: np.ndarray) -> EvaluationReport:
        """The report of stored or computed `(N, 10)` probabilities against `(N,)` labels.

        Raises:
            ValueError: when the shapes do not match.
        """
        probabilities = np.asarray(probabilities, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if probabilities.ndim != 2 or probabilities.shape != (len(labels), NUM_CLASSES):
            raise ValueError(
                f"Expected (N, 10) probabilities for N={len(labels)} labels. Received: shape={probabilities.shape}"
            )
        return cls(labels=labels, probabilities=probabilities)

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidences(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean())

    @property
    def loss(self) -> float:
        """Mean cross-entropy of the true class."""
        true_class_probabilities = self.probabilities[np.arange(len(self.labels)), self.labels]
        return float(-np.log(np.clip(true_class_probabilities, 1e-7, 1.0)).mean())

    @property
    def confusion_matrix(self) -> np.ndarray:
        return confusion_matrix(self.labels, self.predictions)

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each class: the share of its images predicted correctly."""
        return self.recall

    @property
    def precision(self) -> np.ndarray:
        matrix = self.confusion_matrix
        return _safe_divide(np.diag(matrix), matrix.sum(axis=0))

    @property
    def recall(self) -> np.ndarray:
        matrix = self.confusion_matrix
        return _safe_divide(np.diag(matrix), matrix.sum(axis=1))

    @property
    def f1(self) -> np.ndarray:
        return _safe_divide(2 * self.precision * self.recall, self.precision + self.recall)

    def mistakes(self, true_class: int | None = None, predicted_class: int | None = None) -> np.ndarray:
        """Indices of the misclassified images, most confident mistakes first, optionally of one pair."""
        mask = self.predictions != self.labels
        if true_class is not None:
            mask &= self.labels == true_class
        if predicted_class is not None:
            mask &= self.predictions == predicted_class
        indices = np.flatnonzero(mask)
        return indices[np.argsort(-self.confidences[indices], kind="stable")]

    def most_confused_pairs(self, top: int = 10) -> list[tuple[int, int, int]]:
        """`(true, predicted, count)` of the most frequent off-diagonal cells, largest first."""
        matrix = self.confusion_matrix.copy()
        np.fill_diagonal(matrix, 0)
        order = np.argsort(-matrix, axis=None, kind="stable")[:top]
        pairs = [(int(i // NUM_CLASSES), int(i % NUM_CLASSES)) for i in order]
        return [(true, predicted, int(matrix[true, predicted])) for true, predicted in pairs if matrix[true, predicted]]

    def summary(self) -> dict:
        """JSON-ready metrics for metadata and the CLI."""
        return {
            "test_accuracy": round(self.accuracy, 6),
            "test_loss": round(self.loss, 6),
            "per_class_accuracy": {name: round(float(v), 6) for name, v in zip(CLASS_NAMES, self.per_class_accuracy)},
            "confusion_matrix": self.confusion_matrix.tolist(),
        }


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """A `(10, 10)` int64 matrix counting `[true, predicted]` pairs."""
    return np.bincount(
        np.asarray(labels, dtype=np.int64) * NUM_CLASSES + np.asarray(predictions, dtype=np.int64),
        minlength=NUM_CLASSES * NUM_CLASSES,
    ).reshape(NUM_CLASSES, NUM_CLASSES)


def is_predictor(model) -> bool:
    """Whether `model` is one of the app's predictors rather than a Keras model (which has no `flip_average`)."""
    return hasattr(model, "flip_average") and callable(getattr(model, "predict", None))


def evaluate_model(model, images: np.ndarray, labels: np.ndarray, flip_average: bool = False) -> EvaluationReport:
    """Predicts every image and returns its `EvaluationReport`.

    Args:
        model: a Keras model under the project's contract, or a predictor (`inference.Predictor`,
            `serving.LiteRTPredictor`: anything with `predict(images)` and `flip_average`), used as it is.
        images: uint8 or float `(N, 28, 28)` or `(N, 28, 28, 1)`, 0..255.
        labels: `(N,)` integer class indices.
        flip_average: average with mirrored images (for a Keras model). Defaults to `False`.
    """
    if is_predictor(model):
        predictor = model
    else:
        from fashion_core.inference import Predictor  # TensorFlow, only for a Keras model

        predictor = Predictor(model, flip_average=flip_average)
    return EvaluationReport.from_probabilities(predictor.predict(images), labels)
