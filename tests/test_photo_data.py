"""Labelled photo folders as arrays: the manifest, the conversion cache, the fingerprint and counts."""

import csv
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from fashion_core import photo_data
from fashion_core.photo_data import ConversionCache, PhotoArrays, PhotoDataError, load_photo_folder, load_photos
from fashion_core.preprocess import photo_to_fashion_mnist

DEV_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "realphotos-dev"


def dev_rows(count_per_class: int = 2) -> list[dict]:
    """The first few dev photos of each class in the dev manifest."""
    with open(DEV_PHOTOS / "MANIFEST.tsv", newline="") as manifest:
        rows = list(csv.DictReader(manifest, delimiter="\t"))
    chosen, seen = [], {}
    for row in rows:
        if seen.get(row["class_index"], 0) < count_per_class:
            seen[row["class_index"]] = seen.get(row["class_index"], 0) + 1
            chosen.append(row)
    return chosen


def write_photo_folder(folder: Path, rows: list[dict], splits: list[str]) -> Path:
    """Copies dev photos into `folder` with a MANIFEST.tsv giving each its split."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["relative_path\tclass_index\tclass_name\tsplit\tsource"]
    for row, split in zip(rows, splits, strict=True):
        target = folder / row["relative_path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEV_PHOTOS / row["relative_path"], target)
        lines.append(f"{row['relative_path']}\t{row['class_index']}\t{row['class_name']}\t{split}\tdev")
    (folder / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(photo_data.CACHE_DIR_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    rows = dev_rows(2)  # 10 photos, two of each of the five classes
    splits = ["train", "val"] * (len(rows) // 2)
    return write_photo_folder(tmp_path_factory.mktemp("photos"), rows, splits), rows, splits


def test_a_folder_loads_as_the_app_converts_each_photo(small_folder, cache_folder):
    folder, rows, _splits = small_folder
    photos = load_photo_folder(folder)
    assert photos.images.shape == (10, 28, 28) and photos.images.dtype == np.uint8
    assert photos.labels.dtype == np.int64
    assert photos.labels.tolist() == [int(row["class_index"]) for row in rows]
    first = (folder / rows[0]["relative_path"]).read_bytes()
    np.testing.assert_array_equal(photos.images[0], photo_to_fashion_mnist(first))
    assert photos.digests[0] == hashlib.sha256(first).hexdigest()
    assert photos.source == str(folder)
    assert photos.counts_by_class_name() == {"T-shirt/top": 2, "Trouser": 2, "Dress": 2, "Coat": 2, "Shirt": 2}


def test_one_split_holds_only_its_rows(small_folder, cache_folder):
    folder, rows, splits = small_folder
    val = load_photo_folder(folder, "val")
    assert len(val) == splits.count("val") == 5
    expected = [int(row["class_index"]) for row, split in zip(rows, splits, strict=True) if split == "val"]
    assert val.labels.tolist() == expected


def test_a_second_load_reads_the_cache_instead_of_converting(small_folder, cache_folder, monkeypatch):
    folder, _, _ = small_folder
    first = load_photo_folder(folder)
    cache_files = list(cache_folder.glob("photo-conversions-*.npz"))
    assert len(cache_files) == 1 and photo_data.preprocessing_version() in cache_files[0].name

    def no_conversion(data):
        raise AssertionError("converted again although the cache holds this photo")

    monkeypatch.setattr("fashion_core.preprocess.photo_to_fashion_mnist", no_conversion)
    started = time.perf_counter()
    second = load_photo_folder(folder)
    assert time.perf_counter() - started < 1.0
    np.testing.assert_array_equal(second.images, first.images)
    assert second.fingerprint == first.fingerprint


def test_a_cache_of_another_preprocessing_version_is_not_used(small_folder, cache_folder):
    folder, _, _ = small_folder
    photos = load_photo_folder(folder)
    stale = ConversionCache(cache_folder, version="older")
    for digest in photos.digests:
        stale.put(digest, np.zeros((28, 28), np.uint8))
    stale.save()
    assert load_photo_folder(folder).images.max() > 0  # the current version's conversions, not the zeros


def test_the_fingerprint_depends_on_photos_and_labels_not_on_order():
    images = np.zeros((3, 28, 28), np.uint8)
    photos = PhotoArrays(images, np.array([0, 1, 3]), ["a", "b", "c"])
    reordered = PhotoArrays(images, np.array([3, 0, 1]), ["c", "a", "b"])
    relabelled = PhotoArrays(images, np.array([0, 1, 4]), ["a", "b", "c"])
    assert photos.fingerprint == reordered.fingerprint
    assert photos.fingerprint != relabelled.fingerprint
    lines = "a:0\nb:1\nc:3"
    assert photos.fingerprint == hashlib.sha256(lines.encode()).hexdigest()[:16]
    assert photos.counts_by_class_name() == {"T-shirt/top": 1, "Trouser": 1, "Dress": 1}


def test_a_folder_without_manifest_says_what_it_needs(tmp_path):
    with pytest.raises(PhotoDataError, match=r"MANIFEST.tsv is missing.*relative_path, class_index, split"):
        load_photos(tmp_path)


def test_a_bad_row_is_reported_by_line(tmp_path):
    (tmp_path / "MANIFEST.tsv").write_text(
        "relative_path\tclass_index\tclass_name\tsplit\nshirt/a.jpg\t6\tshirt\ttrain\nshirt/b.jpg\t6\tshirt\ttest\n"
    )
    with pytest.raises(PhotoDataError, match=r"line 3: split must be one of \['train', 'val'\]. Received: 'test'"):
        load_photo_folder(tmp_path)


def test_a_photo_that_cannot_be_converted_is_named(tmp_path, cache_folder):
    (tmp_path / "MANIFEST.tsv").write_text("relative_path\tclass_index\tsplit\nnot-a-photo.jpg\t0\ttrain\n")
    (tmp_path / "not-a-photo.jpg").write_text("hello")
    with pytest.raises(PhotoDataError, match=r"not-a-photo.jpg: "):
        load_photo_folder(tmp_path)


def test_a_path_that_is_neither_folder_nor_store_is_refused_without_creating_a_database(tmp_path):
    missing = tmp_path / "typo"
    with pytest.raises(PhotoDataError, match=r"no photo folder or photo store at .*typo.*'store' for the app's"):
        load_photos(missing, "train")
    assert not missing.exists()


def test_the_app_store_is_read_by_name_and_records_its_url(tmp_path, monkeypatch, cache_folder):
    from fashion_core.photostore import PHOTO_DB_ENV, PhotoStore

    database = tmp_path / "photos.sqlite3"
    monkeypatch.setenv(PHOTO_DB_ENV, str(database))
    rows = dev_rows(1)[:2]
    store = PhotoStore(database)
    for row in rows:
        store.add((DEV_PHOTOS / row["relative_path"]).read_bytes(), label=int(row["class_index"]))
    photos = load_photos("store")
    assert len(photos) == 2 and sorted(photos.labels.tolist()) == sorted(int(row["class_index"]) for row in rows)
    assert "photos.sqlite3" in photos.source


def test_the_app_store_passed_in_wins_over_the_variable(tmp_path, monkeypatch, cache_folder):
    """Test that `"store"` reads the store the app opened (from its secrets) rather than the variable's."""
    from fashion_core.photostore import PHOTO_DB_ENV, PhotoStore

    monkeypatch.setenv(PHOTO_DB_ENV, str(tmp_path / "from-variable.sqlite3"))
    app_store = PhotoStore(tmp_path / "from-secrets.sqlite3")
    row = dev_rows(1)[0]
    app_store.add((DEV_PHOTOS / row["relative_path"]).read_bytes(), label=int(row["class_index"]))
    photos = load_photos("store", app_store=app_store)
    assert photos.labels.tolist() == [int(row["class_index"])]
    assert "from-secrets.sqlite3" in photos.source
    assert len(load_photos("store")) == 0
