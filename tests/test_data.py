"""Tests of `fashion_core.data` on the real dataset and on broken copies of it."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from fashion_core import data
from fashion_core.browse import stratified_sample
from fashion_core.data import (
    CLASS_NAMES,
    DatasetError,
    load_fashion_mnist,
    load_from_dir,
    stratified_subset,
    validation_split,
)


def test_loader_returns_uint8_arrays_with_the_published_counts(fashion_data):
    assert fashion_data.train_images.shape == (60000, 28, 28)
    assert fashion_data.test_images.shape == (10000, 28, 28)
    assert fashion_data.train_images.dtype == np.uint8
    assert fashion_data.train_labels.dtype == np.uint8
    assert fashion_data.test_labels.shape == (10000,)


def test_every_class_has_6000_training_and_1000_test_images(fashion_data):
    assert np.bincount(fashion_data.train_labels).tolist() == [6000] * 10
    assert np.bincount(fashion_data.test_labels).tolist() == [1000] * 10


def test_class_names_are_in_dataset_order():
    assert len(CLASS_NAMES) == 10
    assert CLASS_NAMES[0] == "T-shirt/top"
    assert CLASS_NAMES[9] == "Ankle boot"


@pytest.fixture
def dataset_copy(tmp_path, fashion_data):
    """A copy of the four IDX files that a test may break."""
    source = fashion_data.source
    for name in data.FILE_NAMES.values():
        shutil.copy(f"{source}/{name}", tmp_path / name)
    return tmp_path


def test_a_folder_passed_in_is_used_first(dataset_copy):
    assert load_fashion_mnist(dataset_copy).source == str(dataset_copy)


def test_fashion_mnist_dir_is_searched_before_the_debian_folder(dataset_copy, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(dataset_copy))
    assert load_fashion_mnist(download=False).source == str(dataset_copy)


def test_truncated_file_raises_dataset_error(dataset_copy):
    path = dataset_copy / data.FILE_NAMES["test_images"]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        load_from_dir(dataset_copy)


def test_wrong_magic_number_raises_dataset_error(dataset_copy):
    # Labels where images belong: the header's magic number gives it away.
    shutil.copy(dataset_copy / data.FILE_NAMES["test_labels"], dataset_copy / data.FILE_NAMES["test_images"])
    with pytest.raises(DatasetError, match="magic number 2049, expected 2051"):
        load_from_dir(dataset_copy)


def test_file_that_is_not_gzip_raises_dataset_error(dataset_copy):
    (dataset_copy / data.FILE_NAMES["train_labels"]).write_text("<html>not found</html>")
    with pytest.raises(DatasetError, match="not a readable gzip file"):
        load_from_dir(dataset_copy)


def test_missing_dataset_lists_where_it_looked_and_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DATASET_DIR", tmp_path / "debian")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetError) as caught:
        load_fashion_mnist(download=False)
    message = str(caught.value)
    for folder in ("debian", "keras/datasets/fashion-mnist", "env"):
        assert str(tmp_path / folder) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_the_loader_finds_the_dataset_in_keras_cache_under_keras_home(dataset_copy, tmp_path, monkeypatch):
    """Test that Keras' cache is looked for where Keras keeps it: under `$KERAS_HOME`, not `~/.keras`."""
    keras_home = tmp_path / "keras-home"
    cache = keras_home / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for name in data.FILE_NAMES.values():
        shutil.copy(dataset_copy / name, cache / name)
    monkeypatch.setattr(data, "DEBIAN_DATASET_DIR", tmp_path / "no-debian-package")
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    loaded = load_fashion_mnist(download=False)
    assert loaded.source == str(keras_home / "datasets" / "fashion-mnist")
    assert loaded.test_labels.shape == (10000,)
    monkeypatch.delenv("KERAS_HOME")
    assert data.keras_cache_dir() == Path.home() / ".keras" / "datasets" / "fashion-mnist"


def test_a_folder_with_only_some_files_names_the_missing_ones(dataset_copy):
    (dataset_copy / data.FILE_NAMES["train_labels"]).unlink()
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz"):
        load_fashion_mnist(dataset_copy)


def test_validation_split_is_deterministic_and_stratified(fashion_data):
    images, labels = fashion_data.train_images[:5000], fashion_data.train_labels[:5000]
    first = validation_split(images, labels, 0.2, seed=3)
    second = validation_split(images, labels, 0.2, seed=3)
    other = validation_split(images, labels, 0.2, seed=4)
    (train_x, train_y), (val_x, val_y) = first
    assert np.array_equal(val_y, second[1][1]) and np.array_equal(train_x, second[0][0])
    assert not np.array_equal(other[1][0], val_x)
    assert len(train_y) + len(val_y) == 5000 and len(val_y) == 1000
    shares = np.bincount(labels) * 0.2
    assert np.all((np.bincount(val_y) == np.floor(shares)) | (np.bincount(val_y) == np.ceil(shares)))
    assert val_x.dtype == np.uint8


def test_a_stratified_subset_has_exactly_the_size_asked_and_matches_the_browse_sample():
    """Test that three classes of five give a subset of 10, not 3 x round(5 x 2/3) = 9, drawn as `stratified_sample`."""
    labels = np.repeat(np.arange(3, dtype=np.uint8), 5)
    images = np.arange(15 * 28 * 28, dtype=np.uint32).reshape(15, 28, 28)
    subset_images, subset_labels = stratified_subset(images, labels, 10, seed=7)
    assert len(subset_labels) == 10
    assert sorted(np.bincount(subset_labels).tolist()) == [3, 3, 4]
    indices = stratified_sample(labels, 10, seed=7)
    np.testing.assert_array_equal(subset_images, images[indices])
    np.testing.assert_array_equal(subset_labels, labels[indices])
    (_, _), (_, val_labels) = validation_split(images, labels, 0.5, seed=7)
    assert len(val_labels) == round(15 * 0.5)  # 8, where 3 x round(2.5) would give 6
