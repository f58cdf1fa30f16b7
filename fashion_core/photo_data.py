"""`PhotoArrays`: labelled photos as the arrays a model trains or is evaluated on.

The photo store (`fashion_core.photostore`) hands these out per split; training mixes them into
batches and evaluation scores a model on them. `photo_set_fingerprint` names one set of photos, so
a model's metadata can say exactly which photos it was trained and chosen on.

This module needs neither TensorFlow nor Streamlit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fashion_core.data import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES


def photo_set_fingerprint(digests: Iterable[str], labels: Iterable[int]) -> str:
    """A hash of a photo set: its photos' SHA-256 digests with their labels, in sorted order.

    The same photos with the same labels give the same fingerprint whatever their order; a photo
    added, removed or relabelled changes it.

    Returns:
        The first 16 hex digits of the SHA-256 of the sorted `"digest:label"` lines.
    """
    lines = sorted(f"{digest}:{int(label)}" for digest, label in zip(digests, labels, strict=True))
    return hashlib.sha256("\n".join(lines).encode("ascii")).hexdigest()[:16]


@dataclass(frozen=True)
class PhotoArrays:
    """Labelled photos as arrays, in one order.

    Attributes:
        images: uint8 `(N, 28, 28)`, light garment on black: what the model sees.
        labels: int64 `(N,)` true class indices.
        digests: the SHA-256 hex digest of each photo's bytes, `N` strings.
    """

    images: np.ndarray
    labels: np.ndarray
    digests: tuple[str, ...] = ()

    def __post_init__(self):
        images = np.asarray(self.images, dtype=np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(images) != len(labels) or (self.digests and len(self.digests) != len(labels)):
            raise ValueError(
                "PhotoArrays needs one label (and one digest, when given) per image. "
                f"Received: {len(images)} images, {len(labels)} labels, {len(self.digests)} digests"
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "digests", tuple(self.digests))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def fingerprint(self) -> str:
        """`photo_set_fingerprint` of these photos (needs `digests`)."""
        return photo_set_fingerprint(self.digests, self.labels)

    @property
    def class_counts(self) -> np.ndarray:
        """int64 `(10,)` photos per class."""
        return np.bincount(self.labels, minlength=NUM_CLASSES)

    def counts_by_class_name(self) -> dict[str, int]:
        """Photos per class name, classes without photos left out (as `PhotoSetInfo` records them)."""
        return {name: int(count) for name, count in zip(CLASS_NAMES, self.class_counts) if count}
