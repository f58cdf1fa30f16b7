"""Fashion-MNIST loading from local IDX files, kept as uint8 in memory.

The loader looks in a few well-known places before it tries the network, checks every file's IDX
header, and never makes a float copy of the whole set: models scale pixels themselves.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 28

DEBIAN_DATASET_DIR = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE_SUBDIR = "datasets/fashion-mnist"
KERAS_DOWNLOAD_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"

FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
EXPECTED_COUNTS = {"train": 60000, "test": 10000}
IMAGES_MAGIC = 2051  # IDX: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # IDX: unsigned byte, 1 dimension

HOW_TO_GET_THE_DATA = (
    "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; on Streamlit "
    "Community Cloud list it in packages.txt), or put the four .gz IDX files in a folder and set "
    "FASHION_MNIST_DIR to it."
)


class DatasetError(ValueError):
    """Raised when Fashion-MNIST cannot be found, or a file of it is missing or corrupt."""


@dataclass(frozen=True)
class FashionMNIST:
    """The dataset as uint8 arrays: images `(N, 28, 28)`, labels `(N,)`."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(images, labels)` of the split `"train"` or `"test"`."""
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"Unknown split; expected 'train' or 'test'. Received: name={name!r}")


def keras_cache_dir() -> Path:
    """Where Keras keeps the downloaded dataset: under `$KERAS_HOME` when it is set, as Keras does, else `~/.keras`."""
    keras_home = os.environ["KERAS_HOME"] if "KERAS_HOME" in os.environ else Path.home() / ".keras"
    return Path(keras_home).expanduser() / KERAS_CACHE_SUBDIR


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Lists, in order, the folders searched for the IDX files."""
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get("FASHION_MNIST_DIR"):
        dirs.append(Path(os.environ["FASHION_MNIST_DIR"]))
    dirs += [DEBIAN_DATASET_DIR, keras_cache_dir()]
    return dirs


def _read_idx(path: Path, magic: int, expected_count: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """Reads one gzip IDX file and checks its magic number, dimensions and item count."""
    try:
        # One call into zlib, which lets go of the GIL while it inflates: `gzip.open(...).read()` reads
        # in small pieces, each taking the GIL back, and the Streamlit server's background load of the
        # dataset then crawled while a page's script ran (0.26 s alone, 58 s beside a busy thread).
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DatasetError(
            f"{path} is not a readable gzip file ({error}). Delete it and get the dataset again. {HOW_TO_GET_THE_DATA}"
        ) from error
    num_dims = len(item_shape) + 1
    header_size = 4 * (1 + num_dims)
    if len(raw) < header_size:
        raise DatasetError(f"{path} is too short to be an IDX file ({len(raw)} bytes). {HOW_TO_GET_THE_DATA}")
    found_magic, *dims = struct.unpack(f">{1 + num_dims}I", raw[:header_size])
    if found_magic != magic:
        raise DatasetError(
            f"{path} has IDX magic number {found_magic}, expected {magic}: it is not the file its "
            f"name says. {HOW_TO_GET_THE_DATA}"
        )
    if dims[0] != expected_count or tuple(dims[1:]) != item_shape:
        raise DatasetError(
            f"{path} holds {dims[0]} items of shape {tuple(dims[1:])}, expected {expected_count} of "
            f"shape {item_shape}. {HOW_TO_GET_THE_DATA}"
        )
    expected_bytes = header_size + expected_count * int(np.prod(item_shape, dtype=np.int64))
    if len(raw) != expected_bytes:
        raise DatasetError(
            f"{path} is {len(raw)} bytes once unpacked, expected {expected_bytes}: it is truncated "
            f"or corrupt. {HOW_TO_GET_THE_DATA}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape((expected_count, *item_shape))


def load_from_dir(directory: str | os.PathLike) -> FashionMNIST:
    """Loads the four IDX files from one folder; raises `DatasetError` if any is missing or bad."""
    directory = Path(directory)
    missing = [name for name in FILE_NAMES.values() if not (directory / name).is_file()]
    if missing:
        raise DatasetError(f"{directory} lacks {', '.join(missing)}. {HOW_TO_GET_THE_DATA}")
    arrays = {}
    for split, count in EXPECTED_COUNTS.items():
        arrays[f"{split}_images"] = _read_idx(
            directory / FILE_NAMES[f"{split}_images"], IMAGES_MAGIC, count, (IMAGE_SIZE, IMAGE_SIZE)
        )
        arrays[f"{split}_labels"] = _read_idx(directory / FILE_NAMES[f"{split}_labels"], LABELS_MAGIC, count, ())
    for split in EXPECTED_COUNTS:
        if arrays[f"{split}_labels"].max() >= NUM_CLASSES:
            raise DatasetError(f"{directory}: {split} labels go beyond class 9; the file is corrupt.")
    return FashionMNIST(**arrays, source=str(directory))


def _has_any_file(directory: Path) -> bool:
    return any((directory / name).exists() for name in FILE_NAMES.values())


def _download_with_keras() -> Path:
    """Downloads the files into Keras' cache through `keras.utils.get_file` (needs internet); returns the folder.

    Keras falls back to `/tmp/.keras` when its home is not writable, so the folder is the one it reports.
    """
    import keras

    paths = [
        Path(keras.utils.get_file(name, origin=KERAS_DOWNLOAD_URL + name, cache_subdir=KERAS_CACHE_SUBDIR))
        for name in FILE_NAMES.values()
    ]
    return paths[0].parent


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, download: bool = True) -> FashionMNIST:
    """Loads Fashion-MNIST train (60000) and test (10000) images and labels as uint8.

    Looks in `data_dir`, `$FASHION_MNIST_DIR`, Debian's `/usr/share/datasets/fashion-mnist`, then
    Keras' cache (`$KERAS_HOME/datasets/fashion-mnist`, by default under `~/.keras`), and finally
    downloads into Keras' cache. The first folder that holds any of the
    files is the one used, so a corrupt copy is reported rather than silently skipped.

    Args:
        data_dir: a folder with the four `.gz` IDX files. Defaults to searching the usual places.
        download: whether to try Keras' download when no folder has the files. Defaults to `True`.

    Returns:
        A `FashionMNIST` with uint8 arrays.

    Raises:
        DatasetError: when no folder has the files, or a file is missing, truncated or corrupt.
    """
    searched = candidate_dirs(data_dir)
    for directory in searched:
        if directory.is_dir() and _has_any_file(directory):
            return load_from_dir(directory)
    download_note = "download was not attempted"
    if download:
        try:
            return load_from_dir(_download_with_keras())
        except DatasetError:
            raise
        except Exception as error:  # network errors come in many types
            download_note = f"download failed: {type(error).__name__}: {error}"
    where = ", ".join(str(path) for path in searched)
    raise DatasetError(f"Fashion-MNIST was not found. Looked in: {where}; {download_note}. {HOW_TO_GET_THE_DATA}")


def class_quotas(labels: np.ndarray, size: int) -> np.ndarray:
    """How many of each class a stratified sample of `size` takes: classes in their proportions, `size` in all.

    Each class gets the floor of its share; the largest remainders get the places left over, so the
    quotas add up to exactly `min(size, len(labels))`.

    Returns:
        `(NUM_CLASSES,)` int64 counts, none above the class's own count.
    """
    labels = np.asarray(labels, dtype=np.int64)
    size = min(max(int(size), 0), len(labels))
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    shares = counts * size / max(len(labels), 1)
    quotas = np.floor(shares).astype(np.int64)
    leftover = size - int(quotas.sum())
    quotas[np.argsort(-(shares - quotas), kind="stable")[:leftover]] += 1
    return quotas


def _draw_per_class(labels: np.ndarray, quotas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws `quotas[c]` indices of each present class `c` without replacement, ascending."""
    chosen = [
        rng.choice(np.flatnonzero(labels == class_index), size=int(quotas[class_index]), replace=False)
        for class_index in np.unique(labels)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, dtype=np.int64)


def stratified_indices(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`min(size, len(labels))` indices drawn without replacement with classes in their proportions, ascending.

    The same seed always gives the same indices. `stratified_subset`, `validation_split` and the
    Dataset page's embedding sample all draw through it.

    Args:
        labels: `(N,)` integer class labels.
        size: how many indices to draw.
        seed: the random seed. Defaults to 0.

    Returns:
        `(min(size, N),)` int64 indices into `labels`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    return _draw_per_class(labels, class_quotas(labels, size), np.random.default_rng(seed))


def validation_split(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Splits off a stratified validation set of `round(len(labels) * fraction)` examples.

    The same seed always gives the same split; the validation set is `stratified_indices(labels, size, seed)`.

    Returns:
        `((train_images, train_labels), (val_images, val_labels))`, indexed copies of uint8 arrays;
        the training part is shuffled, the validation part in dataset order.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1). Received: fraction={fraction}")
    labels_int = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    val_order = _draw_per_class(labels_int, class_quotas(labels_int, round(len(labels) * fraction)), rng)
    val_mask = np.zeros(len(labels), dtype=bool)
    val_mask[val_order] = True
    train_order = rng.permutation(np.flatnonzero(~val_mask))
    return (images[train_order], labels[train_order]), (images[val_order], labels[val_order])


def stratified_subset(images: np.ndarray, labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Takes exactly `min(size, len(labels))` examples with the classes in their proportions, in dataset order.

    The examples are those of `stratified_indices(labels, size, seed)`; asking for all of them or more
    returns the arrays themselves.
    """
    if size >= len(labels):
        return images, labels
    indices = stratified_indices(labels, size, seed)
    return images[indices], labels[indices]


def as_model_input(images: np.ndarray) -> np.ndarray:
    """Turns `(28, 28)`, `(N, 28, 28)` or `(N, 28, 28, 1)` 0..255 images into float32 `(N, 28, 28, 1)`.

    Raises:
        ValueError: when the array is not 28x28 single-channel images.
    """
    array = np.asarray(images)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1):
        raise ValueError(
            f"Expected 28x28 grey images shaped (28, 28), (N, 28, 28) or (N, 28, 28, 1). "
            f"Received: shape={np.asarray(images).shape}"
        )
    return array.astype(np.float32, copy=False)
