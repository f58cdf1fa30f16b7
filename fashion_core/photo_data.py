"""`PhotoArrays`: labelled photos as the arrays a model trains or is evaluated on; photo folders read into them.

The photo store (`fashion_core.photostore`) hands these out per split; training mixes them into
batches and evaluation scores a model on them. `photo_set_fingerprint` names one set of photos, so
a model's metadata can say exactly which photos it was trained and chosen on.

A photo folder holds the photos and a `MANIFEST.tsv` with the columns `relative_path`,
`class_index` (Fashion-MNIST order), `class_name`, `split` (`train` or `val`) and `source`, like
`../shared/realphotos-cc0`. `load_photo_folder` converts each photo with
`fashion_core.preprocess.photo_to_fashion_mnist`, exactly as the app converts an upload, and caches
the conversions on disk by the photo's SHA-256 and the preprocessing's version, so a second load of
the same photos takes well under a second.

This module needs neither TensorFlow nor Streamlit.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_core.data import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES

MANIFEST_FILE = "MANIFEST.tsv"
MANIFEST_COLUMNS = ("relative_path", "class_index", "split")
SPLITS = ("train", "val")
CACHE_DIR_ENV = "FASHION_STUDIO_CACHE_DIR"
APP_PHOTO_STORE = "store"  # `load_photos`' name for the app's own photo store
PHOTO_DB_ENV = "FASHION_STUDIO_PHOTO_DB"  # the app's photo store: a SQLAlchemy URL or a SQLite file's path
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "fashion-studio"


class PhotoDataError(ValueError):
    """Raised for a photo folder that cannot be read: no manifest, a bad row, a missing or bad photo."""


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
        source: where the photos came from (a folder, or a database URL without its password).
    """

    images: np.ndarray
    labels: np.ndarray
    digests: tuple[str, ...] = ()
    source: str = ""

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

    @classmethod
    def empty(cls, source: str = "") -> PhotoArrays:
        """No photos (for a split with none)."""
        return cls(np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8), np.zeros(0, np.int64), (), source)


@dataclass(frozen=True)
class ManifestRow:
    """One photo of a manifest: its path inside the folder, its class index and its split."""

    relative_path: str
    class_index: int
    split: str


def read_manifest(folder: str | os.PathLike) -> list[ManifestRow]:
    """Reads `folder/MANIFEST.tsv`, checking every row.

    Raises:
        PhotoDataError: when the manifest is missing, lacks a column, or a row has a bad class or split.
    """
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise PhotoDataError(
            f"{path} is missing. A photo folder needs a tab-separated {MANIFEST_FILE} with the columns "
            f"{', '.join(MANIFEST_COLUMNS)}. Received: folder={folder}"
        )
    with open(path, newline="", encoding="utf-8") as manifest:
        reader = csv.DictReader(manifest, delimiter="\t")
        missing = [column for column in MANIFEST_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise PhotoDataError(f"{path} lacks the column(s) {', '.join(missing)}. Received: {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            class_text, split = (row["class_index"] or "").strip(), (row["split"] or "").strip()
            if not class_text.isdigit() or int(class_text) >= NUM_CLASSES:
                raise PhotoDataError(f"{path}, line {line}: class_index must be 0..9. Received: {class_text!r}")
            if split not in SPLITS:
                raise PhotoDataError(f"{path}, line {line}: split must be one of {list(SPLITS)}. Received: {split!r}")
            rows.append(ManifestRow(row["relative_path"], int(class_text), split))
    return rows


def preprocessing_version() -> str:
    """A short hash of `fashion_core/preprocess.py`: a cached conversion is only reused by the same code."""
    from fashion_core import preprocess

    return hashlib.sha256(Path(preprocess.__file__).read_bytes()).hexdigest()[:16]


def cache_dir() -> Path:
    """Where conversions are cached: `$FASHION_STUDIO_CACHE_DIR`, else `~/.cache/fashion-studio`."""
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


class ConversionCache:
    """28x28 conversions of photos, keyed by the photo's SHA-256, in one `.npz` per preprocessing version."""

    def __init__(self, directory: str | os.PathLike | None = None, version: str | None = None) -> None:
        self.path = Path(directory or cache_dir()) / f"photo-conversions-{version or preprocessing_version()}.npz"
        self.images: dict[str, np.ndarray] = {}
        try:
            with np.load(self.path) as stored:
                self.images = dict(zip(stored["digests"].tolist(), stored["images"], strict=True))
        except (OSError, ValueError, KeyError):  # no cache yet, or a damaged one: convert again
            self.images = {}
        self.changed = False

    def get(self, digest: str) -> np.ndarray | None:
        return self.images.get(digest)

    def put(self, digest: str, image: np.ndarray) -> None:
        self.images[digest] = image
        self.changed = True

    def save(self) -> None:
        """Writes the cache atomically (another process reading it sees the old or the new file)."""
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        digests = sorted(self.images)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, digests=np.array(digests), images=np.stack([self.images[d] for d in digests]))
            os.replace(temporary, self.path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        self.changed = False


def load_photo_folder(
    folder: str | os.PathLike, split: str | None = None, cache: ConversionCache | None = None
) -> PhotoArrays:
    """Reads a photo folder's manifest and converts its photos (or one split's) to 28x28.

    Args:
        folder: a folder with `MANIFEST.tsv` and the photos it names.
        split: `"train"`, `"val"`, or `None` for every photo. Defaults to `None`.
        cache: the conversion cache to use. Defaults to one in `cache_dir()`.

    Returns:
        `PhotoArrays` in the manifest's order, `source` set to the folder.

    Raises:
        PhotoDataError: for a bad manifest, an unknown split, a missing photo, or a photo that cannot
            be converted (the message names the file and says why).

    Example:
        >>> photos = load_photo_folder("../shared/realphotos-cc0", "val")
        >>> photos.counts_by_class_name()
        {'T-shirt/top': 131, 'Trouser': 88, 'Dress': 51, 'Coat': 35, 'Shirt': 64}
    """
    from fashion_core.preprocess import ImageError, photo_to_fashion_mnist

    if split is not None and split not in SPLITS:
        raise PhotoDataError(f"split must be one of {list(SPLITS)} or None. Received: split={split!r}")
    folder = Path(folder)
    rows = [row for row in read_manifest(folder) if split is None or row.split == split]
    cache = cache or ConversionCache()
    images, digests = [], []
    try:
        for row in rows:
            path = folder / row.relative_path
            try:
                data = path.read_bytes()
            except OSError as error:
                raise PhotoDataError(f"{path} is listed in {MANIFEST_FILE} but cannot be read ({error}).") from error
            digest = hashlib.sha256(data).hexdigest()
            image = cache.get(digest)
            if image is None:
                try:
                    image = photo_to_fashion_mnist(data)
                except ImageError as error:
                    raise PhotoDataError(f"{path}: {error}") from error
                cache.put(digest, image)
            images.append(image)
            digests.append(digest)
    finally:
        cache.save()  # keep what was converted, even when a later photo fails
    if not rows:
        return PhotoArrays.empty(str(folder))
    labels = np.array([row.class_index for row in rows], dtype=np.int64)
    return PhotoArrays(np.stack(images).astype(np.uint8), labels, tuple(digests), str(folder))


def load_photos(source: str | os.PathLike, split: str | None = None, app_store=None) -> PhotoArrays:
    """One split of labelled photos from a photo folder or a photo store.

    Args:
        source: a folder with `MANIFEST.tsv`; `"store"` for the app's photo store (`app_store`, else
            the one `$FASHION_STUDIO_PHOTO_DB` names, else the default SQLite file), which keeps a
            database password out of the model's metadata; or a photo store's SQLAlchemy URL (or
            SQLite file), read with `fashion_core.photostore.PhotoStore(source).arrays(split)`.
        split: `"train"`, `"val"`, or `None` for every photo. Defaults to `None`.
        app_store: the `PhotoStore` that `"store"` means, where the app opened its own (from
            Streamlit's secrets, say). Defaults to none: the variable or the default file.

    Raises:
        PhotoDataError: when the source is neither a photo folder nor a readable photo store.
    """
    if Path(source).is_dir():
        return load_photo_folder(source, split)
    if str(source) == APP_PHOTO_STORE and app_store is not None:
        return _arrays_from_store(app_store, split)
    if str(source) == APP_PHOTO_STORE:
        source = None
    elif "://" not in str(source) and not Path(source).is_file():  # a typo must not create an empty store
        raise PhotoDataError(
            f"There is no photo folder or photo store at {source}. Pass a folder with {MANIFEST_FILE}, "
            f"'{APP_PHOTO_STORE}' for the app's photo store, or a database URL. Received: photos={source}"
        )
    try:
        from fashion_core.photostore import PhotoStore
    except ImportError as error:
        raise PhotoDataError(
            f"{source} is not a folder with {MANIFEST_FILE}, and this version has no photo store to open it as a "
            f"database. Pass a photo folder. Received: photos={source}"
        ) from error
    return _arrays_from_store(PhotoStore(source), split)


def _arrays_from_store(store, split: str | None) -> PhotoArrays:
    """The store's photos of `split`, their source its URL (without a password)."""
    photos = store.arrays(split)
    return photos if photos.source else dataclasses.replace(photos, source=store.url)
