"""When not to trust a prediction: the model is unsure, or the image looks unlike the dataset.

A model trained on Fashion-MNIST gives ten probabilities for any 28x28 image, a photo of a cat
included. Two checks tell the page when to say so instead of showing a confident wrong class:

- the model is unsure: its top probability is low, or the runner-up is close;
- the image is out of distribution: six simple statistics of the 28x28 image (how much of the frame
  the garment covers, its brightness and contrast, the brightness at the frame's edge, its left-right
  asymmetry, its texture) lie far from where Fashion-MNIST's training images have them. "Far" is a
  Mahalanobis distance beyond the one exceeded by only 1% of the training images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fashion_core.data import CLASS_NAMES, IMAGE_SIZE

UNSURE_PROBABILITY = 0.6  # a top probability below this is a guess
UNSURE_MARGIN = 0.2  # and so is one this close to the runner-up
INK_LEVEL = 0.1  # pixels brighter than this (of 1.0) are the garment
EDGE_WIDTH = 2  # pixels; the frame's outer ring, black around dataset garments

STATISTIC_NAMES = ("coverage", "brightness", "contrast", "edge brightness", "asymmetry", "texture")
# What a statistic far above (first) or below (second) the dataset's says, in words.
STATISTIC_WORDS = {
    "coverage": (
        "the garment covers more of the frame than dataset garments do",
        "the garment is thinner than dataset garments",
    ),
    "brightness": ("the garment is brighter than dataset garments", "the garment is darker than dataset garments"),
    "contrast": (
        "the garment has more contrast than dataset garments",
        "the garment is flatter grey than dataset garments",
    ),
    "edge brightness": (
        "the frame's edges are not black around the garment",
        "the garment does not reach the frame's edges",
    ),
    "asymmetry": (
        "the garment is less left-right symmetric than dataset garments",
        "the garment is more symmetric than usual",
    ),
    "texture": (
        "the image is busier (more texture or noise) than dataset images",
        "the garment is smoother than dataset garments",
    ),
}


@dataclass(frozen=True)
class DatasetReference:
    """Where a dataset's images lie in `image_statistics` space.

    Args:
        mean: `(6,)` mean of the statistics.
        covariance: `(6, 6)` covariance of the statistics.
        threshold: the Mahalanobis distance beyond which an image counts as unlike the dataset.
    """

    mean: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    threshold: float

    def distances(self, statistics: np.ndarray) -> np.ndarray:
        """Mahalanobis distances `(N,)` of `(N, 6)` statistics from the dataset's mean."""
        centred = np.asarray(statistics, dtype=np.float64) - np.asarray(self.mean)
        inverse = np.linalg.inv(np.asarray(self.covariance))
        return np.sqrt(np.einsum("ij,jk,ik->i", centred, inverse, centred))

    def z_scores(self, statistics: np.ndarray) -> np.ndarray:
        """Each statistic's distance from the dataset's mean in its own standard deviations, `(N, 6)`."""
        deviations = np.sqrt(np.diag(np.asarray(self.covariance)))
        return (np.asarray(statistics, dtype=np.float64) - np.asarray(self.mean)) / deviations


# `reference_from_images(load_fashion_mnist().train_images)`, rounded to 5 significant digits.
FASHION_MNIST_REFERENCE = DatasetReference(
    mean=(0.45172, 0.62208, 0.18717, 0.089428, 0.29961, 0.3748),
    covariance=(
        (0.022196, 0.0035626, -0.0031896, 0.0041562, -0.017013, -0.013882),
        (0.0035626, 0.025313, 0.0010393, 0.0032269, 0.0017144, -0.0010426),
        (-0.0031896, 0.0010393, 0.0015837, -0.00053953, 0.004506, 0.0037197),
        (0.0041562, 0.0032269, -0.00053953, 0.0021837, -0.0034431, -0.0027273),
        (-0.017013, 0.0017144, 0.004506, -0.0034431, 0.059528, 0.017459),
        (-0.013882, -0.0010426, 0.0037197, -0.0027273, 0.017459, 0.017926),
    ),
    threshold=5.02,
)


def image_statistics(images: np.ndarray) -> np.ndarray:
    """Six statistics of each 28x28 image, in the order of `STATISTIC_NAMES`.

    Args:
        images: uint8 `(28, 28)` or `(N, 28, 28)`, 0..255.

    Returns:
        float64 `(N, 6)`: coverage (share of garment pixels), brightness and contrast (mean and
        standard deviation of garment pixels, of 1.0), edge brightness (mean of the outer ring),
        asymmetry and texture (mean absolute difference to the mirror image and between
        neighbours, per unit of coverage).
    """
    pixels = np.asarray(images, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE) / np.float32(255.0)
    ink = pixels > INK_LEVEL
    count = np.maximum(ink.sum(axis=(1, 2)), 1)
    coverage = ink.mean(axis=(1, 2))
    brightness = (pixels * ink).sum(axis=(1, 2)) / count
    contrast = np.sqrt((((pixels - brightness[:, None, None]) ** 2) * ink).sum(axis=(1, 2)) / count)
    edge = np.ones((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    edge[EDGE_WIDTH:-EDGE_WIDTH, EDGE_WIDTH:-EDGE_WIDTH] = False
    edge_brightness = pixels[:, edge].mean(axis=1)
    per_coverage = np.maximum(coverage, 0.05)
    asymmetry = np.abs(pixels - pixels[:, :, ::-1]).mean(axis=(1, 2)) / per_coverage
    texture = np.abs(np.diff(pixels, axis=2)).mean(axis=(1, 2)) + np.abs(np.diff(pixels, axis=1)).mean(axis=(1, 2))
    statistics = [coverage, brightness, contrast, edge_brightness, asymmetry, texture / per_coverage]
    return np.stack(statistics, axis=1).astype(np.float64)


def reference_from_images(images: np.ndarray, quantile: float = 0.99) -> DatasetReference:
    """The `DatasetReference` of a set of images; `threshold` is their distances' `quantile`.

    Args:
        images: uint8 `(N, 28, 28)`, N well above 6.
        quantile: the share of these images that must fall within the threshold. Defaults to 0.99.
    """
    statistics = image_statistics(images)
    mean = statistics.mean(axis=0)
    covariance = np.cov(statistics.T)
    provisional = DatasetReference(tuple(mean), tuple(map(tuple, covariance)), threshold=np.inf)
    threshold = float(np.quantile(provisional.distances(statistics), quantile))
    return DatasetReference(tuple(mean), tuple(map(tuple, covariance)), threshold)


def dataset_distance(image: np.ndarray, reference: DatasetReference = FASHION_MNIST_REFERENCE) -> float:
    """How unlike the dataset a `(28, 28)` image is: its Mahalanobis distance in statistics space."""
    return float(reference.distances(image_statistics(image))[0])


def unlike_dataset_reason(image: np.ndarray, reference: DatasetReference = FASHION_MNIST_REFERENCE) -> str | None:
    """A sentence saying how a `(28, 28)` image differs from the dataset, or `None` if it does not.

    Args:
        image: uint8 `(28, 28)`.
        reference: the dataset's statistics. Defaults to Fashion-MNIST's training images.
    """
    statistics = image_statistics(image)
    if reference.distances(statistics)[0] <= reference.threshold:
        return None
    z_scores = reference.z_scores(statistics)[0]
    most_unusual = int(np.argmax(np.abs(z_scores)))
    above, below = STATISTIC_WORDS[STATISTIC_NAMES[most_unusual]]
    return above if z_scores[most_unusual] > 0 else below


def prediction_warnings(probabilities: np.ndarray, image: np.ndarray, whole_photo: bool = False) -> list[str]:
    """What to tell the user before they trust a prediction; empty when nothing is amiss.

    Args:
        probabilities: `(10,)` class probabilities of `image`.
        image: the uint8 `(28, 28)` image the model saw.
        whole_photo: whether no garment could be told from the photo's background. Defaults to `False`.

    Returns:
        Sentences, most important first.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    first, second = np.argsort(probabilities)[::-1][:2]
    warnings = []
    if probabilities[first] < UNSURE_PROBABILITY or probabilities[first] - probabilities[second] < UNSURE_MARGIN:
        warnings.append(
            f"The model is unsure: {CLASS_NAMES[first]} {probabilities[first]:.0%}, "
            f"{CLASS_NAMES[second]} {probabilities[second]:.0%}."
        )
    if whole_photo:
        warnings.append("No garment could be told apart from the background, so the whole photo was used.")
    reason = unlike_dataset_reason(image)
    if reason is not None:
        warnings.append(f"The image looks unlike the dataset's ({reason}), so the answer may be wrong.")
    return warnings
