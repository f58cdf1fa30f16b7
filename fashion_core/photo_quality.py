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


# ---------------------------------------------------------------------------------------------------
# A garment worn by a person

# YCrCb ranges of skin of every tone under indoor and daylight (Chai and Ngan 1999, widened a little).
SKIN_MIN_LUMA, SKIN_CR_RANGE, SKIN_CB_RANGE = 50, (135, 175), (80, 130)
HEAD_AREA_RANGE = (0.003, 0.12)  # of the photo: a head is a small part of a catalog shot
HEAD_ASPECT_RANGE = (0.7, 2.2)  # height / width of its bounding box: a face, with neck or hair
HEAD_MIN_FILL = 0.4  # of its bounding box; an ellipse fills 0.79, a thin or ragged region much less
HEAD_WIDTH_RANGE = (0.15, 0.6)  # of the clothing's width: shoulders are two to six heads wide
HEAD_MIN_IN_MASK = 0.6  # share of the head inside the garment mask: a head stands out from the background
MIN_CLOTHING_SHARE = 0.03  # of the photo: the part of the garment mask that is not skin
COLOUR_CHANGE = 25.0  # Lab distance between a row and the garment's top: another garment starts (trousers)


@dataclass(frozen=True)
class PersonWearing:
    """What `find_person_wearing` saw: a head above the clothing, and a box for the garment alone.

    Boxes are `(x0, y0, x1, y1)` in the pixels of the photo passed in (right and bottom exclusive).

    Attributes:
        head_box: the skin-coloured, head-shaped region above the clothing.
        suggested_box: from under the head to where the clothing's colour changes (the trousers of
            someone wearing a top) or ends, across the clothing's width: a box to start from.
        arms: whether skin was also found beside the clothing (bare arms or hands).
    """

    head_box: tuple[int, int, int, int]
    suggested_box: tuple[int, int, int, int]
    arms: bool


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """bool `(H, W)`: pixels in the YCrCb range of skin, small specks removed."""
    import cv2

    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    luma, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
    skin = (luma >= SKIN_MIN_LUMA) & (cr >= SKIN_CR_RANGE[0]) & (cr <= SKIN_CR_RANGE[1])
    skin &= (cb >= SKIN_CB_RANGE[0]) & (cb <= SKIN_CB_RANGE[1])
    return cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)


def _head_above(
    skin: np.ndarray, mask: np.ndarray, clothing_box: tuple[int, int, int, int]
) -> tuple[int, int, int, int] | None:
    """The largest head-shaped skin region of the garment mask, centred over the clothing, ending near its top.

    A head is part of what the segmentation takes for the garment (it differs from the background);
    a skin-coloured floor or table is background, and at the photo's side edge.
    """
    import cv2

    left, top, right, bottom = clothing_box
    clothing_width = right - left
    count, components, stats, centroids = cv2.connectedComponentsWithStats(skin.astype(np.uint8), connectivity=8)
    image_width = skin.shape[1]
    best = None
    for index in range(1, count):
        x, y, width, height, area = stats[index]
        centre_x, centre_y = centroids[index]
        fits = HEAD_AREA_RANGE[0] <= area / skin.size <= HEAD_AREA_RANGE[1]
        fits &= HEAD_ASPECT_RANGE[0] <= height / width <= HEAD_ASPECT_RANGE[1]
        fits &= area / (width * height) >= HEAD_MIN_FILL
        fits &= HEAD_WIDTH_RANGE[0] * clothing_width <= width <= HEAD_WIDTH_RANGE[1] * clothing_width
        fits &= abs(centre_x - (left + right) / 2) <= 0.2 * clothing_width and centre_y < top + 0.1 * (bottom - top)
        fits &= y + height <= top + 0.3 * (bottom - top)  # a chin at most a little inside the clothing's box
        fits &= x > 0 and x + width < image_width  # not cut by a side of the photo
        fits &= mask[components == index].mean() >= HEAD_MIN_IN_MASK
        if fits and (best is None or area > best[4]):
            best = (x, y, width, height, area)
    return None if best is None else (best[0], best[1], best[0] + best[2], best[1] + best[3])


def _garment_bottom(lab: np.ndarray, clothing: np.ndarray, first_row: int, last_row: int) -> int:
    """The row where the clothing's colour changes for good below `first_row` (or `last_row`)."""
    rows = [row for row in range(first_row, last_row) if clothing[row].sum() >= 3]
    if len(rows) < 10:
        return last_row
    means = np.array([lab[row][clothing[row]].mean(axis=0) for row in rows])  # (R, 3) Lab
    reference = means[: max(3, len(rows) // 5)].mean(axis=0)
    changed = np.linalg.norm(means - reference, axis=1) > COLOUR_CHANGE
    run = 5  # rows in a row: a belt or a shadow is not another garment
    for start in range(len(rows) // 3, len(rows) - run):
        if changed[start : start + run].all():
            return rows[start]
    return last_row


def find_person_wearing(rgb: np.ndarray) -> PersonWearing | None:
    """Finds a person wearing the garment: a skin-coloured head above the clothing, maybe bare arms beside it.

    The garment mask of a photo of someone wearing a shirt holds the person too (head, arms,
    trousers), and the model then sees a coat-like shape. The mask's pixels that are not skin are
    the clothing; a compact skin region, about as tall as wide, centred over the clothing and
    ending near its top is a head.

    Args:
        rgb: uint8 `(H, W, 3)` RGB photo (`PhotoConversion.original`).

    Returns:
        A `PersonWearing` (boxes in `rgb`'s pixels), or `None` when no head sits above the clothing.
    """
    import cv2

    from fashion_core.preprocess import SEGMENTATION_SIDE, garment_mask

    height, width = rgb.shape[:2]
    scale = min(SEGMENTATION_SIDE / max(height, width), 1.0)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    mask, whole_photo = garment_mask(small)
    skin = skin_mask(small)
    clothing = mask & ~cv2.dilate(skin.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if whole_photo or clothing.mean() < MIN_CLOTHING_SHARE:
        return None
    rows, columns = np.flatnonzero(clothing.any(axis=1)), np.flatnonzero(clothing.any(axis=0))
    clothing_box = (int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)
    head = _head_above(skin, mask, clothing_box)
    if head is None:
        return None
    top = max(head[3], clothing_box[1])
    below_head = clothing.copy()
    below_head[:top] = False
    rows, columns = np.flatnonzero(below_head.any(axis=1)), np.flatnonzero(below_head.any(axis=0))
    if not len(rows):
        return None
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    bottom = _garment_bottom(lab, below_head, top, int(rows[-1]) + 1)
    below_head[bottom:] = False
    columns = np.flatnonzero(below_head.any(axis=0))
    garment_box = (int(columns[0]), top, int(columns[-1]) + 1, bottom)
    beside = skin.copy()
    beside[:top] = False
    beside[bottom:] = False
    arms = beside.mean() >= 0.002
    to_photo = 1 / scale
    return PersonWearing(
        head_box=tuple(min(round(v * to_photo), limit) for v, limit in zip(head, (width, height) * 2, strict=True)),
        suggested_box=tuple(
            min(round(v * to_photo), limit) for v, limit in zip(garment_box, (width, height) * 2, strict=True)
        ),
        arms=bool(arms),
    )


def looks_like_person_wearing(photo) -> bool:
    """Whether the photo looks like a person wearing the garment (see `find_person_wearing`).

    Args:
        photo: a `fashion_core.preprocess.PhotoConversion`, or uint8 `(H, W, 3)` RGB.
    """
    rgb = getattr(photo, "original", photo)
    return find_person_wearing(np.asarray(rgb)) is not None
