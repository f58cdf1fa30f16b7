"""How faithful an explanation is: the deletion and insertion scores of Petsiuk et al. 2018 (RISE).

A map ranks the pixels of an image. **Deletion** sets them to black in that order, most important
first, and averages the explained class's probability over `NUM_STEPS` evenly spaced points, from
the whole image (0 pixels deleted) to a black one (all 784): a faithful map makes the probability fall
fast, so lower is better. **Insertion** starts from a black image and reveals the pixels in the same
order: higher is better. All the steps of all the images go through one `predict` call.

Two orders that know nothing of the model give the scale: a random order, and the brightest pixels
first (on Fashion-MNIST's black background, the garment before the background).

This module needs neither TensorFlow nor Streamlit; a Keras model is wrapped in a `Predictor` when
given instead of a predictor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fashion_core.data import IMAGE_SIZE
from fashion_core.explain import ExplainError, _as_image_batch, _class_indices, as_predictor

NUM_STEPS = 21  # points of each curve: 0, 1/20, ..., 20/20 of the pixels
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
DELETION = "deletion"
INSERTION = "insertion"


def pixel_order(maps: np.ndarray) -> np.ndarray:
    """int `(N, 784)`: each map's pixels (row-major indices), most important first; ties keep reading order."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), NUM_PIXELS)
    return np.argsort(-flat, axis=1, kind="stable")


def perturbation_steps(
    images: np.ndarray, maps: np.ndarray, mode: str = DELETION, num_steps: int = NUM_STEPS
) -> np.ndarray:
    """float32 `(N, num_steps, 28, 28)`: each image with the map's top pixels deleted (or only they revealed).

    Step `k` deletes (or reveals) the `round(784 * k / (num_steps - 1))` most important pixels.

    Raises:
        ExplainError: for maps that are not one `(28, 28)` per image, an unknown mode or fewer than 2 steps.
    """
    batch = _as_image_batch(images, single=False)[..., 0]
    maps = np.asarray(maps)
    if maps.shape != batch.shape:
        raise ExplainError(f"Expected one (28, 28) map per image, shaped {batch.shape}. Received: shape={maps.shape}")
    if mode not in (DELETION, INSERTION) or num_steps < 2:
        raise ExplainError(
            f"mode is {DELETION!r} or {INSERTION!r}, with at least 2 steps. "
            f"Received: mode={mode!r}, num_steps={num_steps}"
        )
    counts = np.round(np.linspace(0, NUM_PIXELS, num_steps)).astype(int)  # (S,)
    ranks = np.empty((len(batch), NUM_PIXELS), dtype=np.int64)
    np.put_along_axis(ranks, pixel_order(maps), np.arange(NUM_PIXELS)[None], axis=1)  # rank of each pixel
    among_top = ranks[:, None, :] < counts[None, :, None]  # (N, S, 784): pixel is among the first k
    keep = ~among_top if mode == DELETION else among_top
    flat = batch.reshape(len(batch), 1, NUM_PIXELS) * keep
    return flat.reshape(len(batch), num_steps, IMAGE_SIZE, IMAGE_SIZE).astype(np.float32)


def perturbation_curves(
    model: Any,
    images: np.ndarray,
    maps: np.ndarray,
    class_indices: int | Sequence[int] | None = None,
    mode: str = DELETION,
    num_steps: int = NUM_STEPS,
) -> np.ndarray:
    """float `(N, num_steps)`: the explained class's probability at each step of deletion or insertion.

    Args:
        model: a Keras model under the project's contract, or a predictor (the app's, to score what it shows).
        images: `(N, 28, 28)` or `(N, 28, 28, 1)`, pixels 0..255.
        maps: `(N, 28, 28)`, one map per image, larger is more important.
        class_indices: the class each map explains. Defaults to each image's predicted class.
        mode: `"deletion"` or `"insertion"`. Defaults to deletion.
        num_steps: points of the curve. Defaults to `NUM_STEPS` (21).
    """
    steps = perturbation_steps(images, maps, mode, num_steps)
    count = len(steps)
    probabilities = as_predictor(model).predict(steps.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1))
    probabilities = np.asarray(probabilities).reshape(count, num_steps, -1)
    targets = _class_indices(class_indices, count)
    whole_image = probabilities[:, 0 if mode == DELETION else -1]  # the unperturbed image's probabilities
    classes = np.where(targets < 0, whole_image.argmax(axis=1), targets)
    return probabilities[np.arange(count), :, classes]


def deletion_score(
    model: Any, images: np.ndarray, maps: np.ndarray, class_indices: int | Sequence[int] | None = None
) -> np.ndarray:
    """`(N,)` deletion scores: the class probability averaged over the 21 deletion steps; lower is better.

    Example:
        >>> maps = occlusion_maps(predictor, images)
        >>> deletion_score(predictor, images, maps).mean()
    """
    return perturbation_curves(model, images, maps, class_indices, DELETION).mean(axis=1)


def insertion_score(
    model: Any, images: np.ndarray, maps: np.ndarray, class_indices: int | Sequence[int] | None = None
) -> np.ndarray:
    """`(N,)` insertion scores: the class probability averaged over the 21 insertion steps; higher is better."""
    return perturbation_curves(model, images, maps, class_indices, INSERTION).mean(axis=1)


def random_maps(count: int, seed: int = 0) -> np.ndarray:
    """float32 `(count, 28, 28)` maps that rank pixels at random (seeded): the floor any method must beat."""
    return np.random.default_rng(seed).random((count, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)


def brightness_maps(images: np.ndarray) -> np.ndarray:
    """float32 `(N, 28, 28)` maps ranking the brightest pixels first: knows the image, not the model."""
    return (_as_image_batch(images, single=False)[..., 0] / 255.0).astype(np.float32)
