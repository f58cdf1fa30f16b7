"""The labelled-photo store, against SQLite and a real PostgreSQL server that the tests start themselves."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import shutil
import subprocess
import sys
import threading
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_core.data import CLASS_NAMES
from fashion_core.photo_import import EXPORT_COLUMNS, PhotoImportError, class_folder_name
from fashion_core.photostore import (
    DEFAULT_DB_PATH,
    MAX_PHOTO_SIDE,
    PHOTO_DB_ENV,
    DuplicatePhotoError,
    PhotoRecord,
    PhotoStore,
    PhotoStoreError,
    Source,
    Split,
    database_url,
    evaluate_on_photos,
    new_record,
    split_for_digest,
)
from fashion_core.preprocess import ImageError, photo_to_fashion_mnist
from fashion_core.serving import LiteRTPredictor
from tests.bad_images import encode, garment_photo, upload_cases
from tests.conftest import REPO_ROOT, SHIPPED_MODEL_DIR

DEV_PHOTOS = REPO_ROOT.parent / "shared" / "realphotos-dev"
PROBABILITIES = (0.05, 0.02, 0.03, 0.6, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03)  # answers class 3, Dress


def make_photo(variant: int, image_format: str = "PNG") -> bytes:
    """A small synthetic garment photo; each `variant` gives different bytes."""
    return encode(garment_photo(garment_level=20 + variant % 60, background_level=200 + variant // 60), image_format)


def dev_rows(count_per_class: int = 2) -> list[dict[str, str]]:
    """The first photos of each class in ../shared/realphotos-dev's manifest (skips where it is missing)."""
    manifest = DEV_PHOTOS / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"The real dev photos are not there: {manifest} is missing.")
    with manifest.open(newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    chosen: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        chosen.setdefault(row["class_name"], [])
        if len(chosen[row["class_name"]]) < count_per_class:
            chosen[row["class_name"]].append(row)
    return [row for group in chosen.values() for row in group]


def write_manifest(
    folder: Path, rows: list[list[str]], header=("relative_path", "class_index", "class_name", "split", "source")
):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header), *("\t".join(row) for row in rows)]
    (folder / "MANIFEST.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def photo_folder(folder: Path, rows: list[dict[str, str]], splits: list[str] | None = None) -> Path:
    """A folder with copies of some dev photos and a MANIFEST.tsv like realphotos-cc0's."""
    manifest_rows = []
    for position, row in enumerate(rows):
        target = folder / row["relative_path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEV_PHOTOS / row["relative_path"], target)
        split = splits[position] if splits else ""
        manifest_rows.append([row["relative_path"], row["class_index"], row["class_name"], split, row["source"]])
    write_manifest(folder, manifest_rows)
    return folder


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty database of each kind: a SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "photos.sqlite3")
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture
def store(store_url):
    photo_store = PhotoStore(store_url)
    yield photo_store
    photo_store.close()


# --- records -----------------------------------------------------------------------------------------


def test_add_stores_every_field_and_get_reads_them_back(store):
    photo = make_photo(1, "JPEG")
    before = datetime.now(UTC)
    added = store.add(photo, 3, source="camera", probabilities=PROBABILITIES, model_name="default", origin="a.jpg")
    stored = store.get(added.id)

    assert stored == added
    assert stored.sha256 == hashlib.sha256(photo).hexdigest()
    assert stored.photo == photo
    np.testing.assert_array_equal(stored.image, photo_to_fashion_mnist(photo))
    assert (stored.label, stored.label_name, stored.source, stored.origin) == (3, "Dress", Source.CAMERA, "a.jpg")
    assert stored.probabilities == pytest.approx(PROBABILITIES) and stored.predicted == 3
    assert stored.model_name == "default"
    assert stored.split == split_for_digest(stored.sha256)
    assert before - timedelta(seconds=1) <= stored.created_at <= datetime.now(UTC)
    assert stored.created_at.tzinfo is not None
    assert store.find(stored.sha256).id == added.id
    assert store.get(added.id + 1000) is None


def test_the_image_the_model_saw_is_kept_as_given(store):
    seen = np.arange(784, dtype=np.uint8).reshape(28, 28)
    record = store.add(make_photo(2), 0, image=seen)
    np.testing.assert_array_equal(store.get(record.id).image, seen)
    assert store.get(record.id).predicted is None


def test_the_same_bytes_are_never_stored_twice(store):
    photo = make_photo(3)
    first = store.add(photo, 0)
    with pytest.raises(
        DuplicatePhotoError, match=rf"already in the store as photo #{first.id} \(T-shirt/top"
    ) as caught:
        store.add(photo, 6, source="camera")
    assert caught.value.existing.id == first.id and caught.value.existing.label == 0
    assert store.counts().total == 1


def test_a_large_photo_is_stored_as_a_jpeg_at_most_1024_pixels_and_named_by_the_upload(store):
    large = encode(garment_photo(width=1600, height=2000), "PNG")
    record = store.get(store.add(large, 0).id)
    with Image.open(io.BytesIO(record.photo)) as stored:
        assert stored.format == "JPEG" and max(stored.size) == MAX_PHOTO_SIDE and stored.size[0] == 819
    assert record.sha256 == hashlib.sha256(large).hexdigest()
    np.testing.assert_array_equal(record.image, photo_to_fashion_mnist(large))


@pytest.mark.parametrize("case", ["CMYK JPEG", "16-bit PNG", "palette PNG with transparency", "animated GIF", "WebP"])
def test_every_kind_of_photo_an_upload_accepts_is_stored_unchanged(case, tmp_path):
    data = upload_cases()[case].data
    store = PhotoStore(tmp_path / "photos.sqlite3")
    assert store.get(store.add(data, 1).id).photo == data


def test_a_bad_photo_gets_the_upload_message_and_nothing_is_stored(store):
    truncated = upload_cases()["truncated JPEG"].data
    with pytest.raises(ImageError) as upload_error:
        photo_to_fashion_mnist(truncated)
    with pytest.raises(ImageError) as store_error:
        store.add(truncated, 0)
    assert str(store_error.value) == str(upload_error.value)
    assert "truncated or corrupt" in str(store_error.value)
    assert store.counts().total == 0


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"label": 10}, "Received: label=10"),
        ({"label": True}, "Received: label=True"),
        ({"source": "scanner"}, "Received: source='scanner'"),
        ({"split": "test"}, "Received: split='test'"),
        ({"probabilities": [0.5, 0.5]}, "Received: probabilities=[0.5, 0.5]"),
        ({"image": np.zeros((32, 32))}, "Received: shape=(32, 32)"),
    ],
)
def test_bad_details_are_refused_with_what_was_received(details, message, tmp_path):
    store = PhotoStore(tmp_path / "photos.sqlite3")
    arguments = {"label": 0, **details}
    with pytest.raises(PhotoStoreError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        store.add(make_photo(4), arguments.pop("label"), **arguments)
    assert store.counts().total == 0


def test_a_record_survives_to_dict_and_from_dict():
    record = dataclasses.replace(
        new_record(make_photo(5), 4, source="upload", probabilities=PROBABILITIES, model_name="m", origin="x.png"),
        id=7,
    )
    copy = PhotoRecord.from_dict(record.to_dict())
    assert copy == record
    np.testing.assert_array_equal(copy.image, record.image)
    minimal = {key: value for key, value in record.to_dict().items() if key not in ("photo", "probabilities", "id")}
    assert PhotoRecord.from_dict(minimal).photo is None and PhotoRecord.from_dict(minimal).predicted is None


# --- splits, listing, counts ---------------------------------------------------------------------------


def test_the_split_comes_from_the_digest_so_it_is_stable_and_a_fifth_is_val(tmp_path):
    digests = [hashlib.sha256(str(index).encode()).hexdigest() for index in range(5000)]
    val_share = np.mean([split_for_digest(digest) is Split.VAL for digest in digests])
    assert 0.18 < val_share < 0.22
    photo = make_photo(6)
    first, second = PhotoStore(tmp_path / "a.sqlite3"), PhotoStore(tmp_path / "b.sqlite3")
    assert (
        first.add(photo, 0).split == second.add(photo, 0).split == split_for_digest(hashlib.sha256(photo).hexdigest())
    )


def test_list_filter_count_relabel_and_delete(store):
    records = [
        store.add(make_photo(10 + index), index % 3, split="val" if index < 2 else "train") for index in range(6)
    ]
    assert [record.id for record in store.list_photos()] == [record.id for record in records]
    assert all(record.photo is None for record in store.list_photos())
    assert [record.photo for record in store.list_photos(with_photos=True, limit=1)] == [make_photo(10)]
    assert [record.id for record in store.list_photos(label=1)] == [records[1].id, records[4].id]
    assert [record.id for record in store.list_photos(label=0, split="train")] == [records[3].id]
    assert [record.id for record in store.list_photos(limit=2, offset=3)] == [records[3].id, records[4].id]

    counts = store.counts()
    assert counts.val == (1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    assert counts.train == (1, 1, 2, 0, 0, 0, 0, 0, 0, 0)
    assert counts.total == len(store) == 6
    assert counts.by_class_name("train") == {"T-shirt/top": 1, "Trouser": 1, "Pullover": 2}

    assert store.relabel(records[5].id, 9) is True
    assert store.get(records[5].id).label == 9
    assert store.delete(records[0].id) is True
    assert store.delete(records[0].id) is False
    assert store.get(records[0].id) is None
    assert store.counts().val == (0, 1, 0, 0, 0, 0, 0, 0, 0, 0)


def test_arrays_and_fingerprint_follow_the_photos(store, tmp_path):
    records = [store.add(make_photo(20 + index), index, split="train") for index in range(4)]
    store.add(make_photo(30), 7, split="val")
    train = store.arrays("train")
    assert train.images.shape == (4, 28, 28) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.labels, [0, 1, 2, 3])
    np.testing.assert_array_equal(train.images[2], records[2].image)
    assert train.digests == tuple(record.sha256 for record in records)
    assert train.fingerprint == store.fingerprint("train")
    assert len(store.arrays()) == 5 and store.arrays("val").labels.tolist() == [7]
    assert len(store.arrays("val").images) == 1

    other = PhotoStore(tmp_path / "other.sqlite3")  # the same photos added in another order
    for index in reversed(range(4)):
        other.add(make_photo(20 + index), index, split="train")
    assert other.fingerprint("train") == store.fingerprint("train")
    assert store.fingerprint("train") != store.fingerprint("val")

    before = store.fingerprint("train")
    store.relabel(records[0].id, 5)
    relabelled = store.fingerprint("train")
    store.delete(records[1].id)
    assert len({before, relabelled, store.fingerprint("train")}) == 3


def test_an_empty_store_has_empty_arrays(store):
    empty = store.arrays("val")
    assert empty.images.shape == (0, 28, 28) and empty.labels.shape == (0,)
    assert store.counts().total == 0


# --- where the database is ------------------------------------------------------------------------------


def test_the_default_database_is_a_sqlite_file_in_data_and_the_variable_moves_it(monkeypatch, tmp_path):
    monkeypatch.delenv(PHOTO_DB_ENV)
    assert DEFAULT_DB_PATH == REPO_ROOT / "data" / "photos.sqlite3"
    assert database_url().render_as_string() == f"sqlite:///{DEFAULT_DB_PATH}"
    monkeypatch.setenv(PHOTO_DB_ENV, str(tmp_path / "elsewhere" / "p.sqlite3"))
    store = PhotoStore()
    assert store.url == f"sqlite:///{tmp_path / 'elsewhere' / 'p.sqlite3'}"
    assert (tmp_path / "elsewhere" / "p.sqlite3").is_file()
    assert "data/" in (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_postgresql_urls_use_psycopg_3():
    assert database_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert database_url("postgres://u@h/db").drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("url", "phrases"),
    [
        ("postgresql://bob:hunter2@127.0.0.1:{port}/photos", ["Connection refused", "Received: url=", "bob:***@"]),
        ("notadb://x", ["Install the database's driver", "Received: url=notadb://x"]),
        ("postgresql://u@h:notaport/db", ["SQLite file's path or a SQLAlchemy URL", "Received: url="]),
        ("/proc/no-such-folder/photos.sqlite3", ["folder can be created and written to", "Received: url=sqlite:"]),
    ],
)
def test_a_database_that_cannot_be_opened_gets_a_clear_error(url, phrases):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PhotoStoreError) as caught:
        PhotoStore(url.format(port=port))
    for phrase in phrases:
        assert phrase in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    store = PhotoStore(tmp_path / "photos.sqlite3")
    with store._engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


# --- concurrent writers --------------------------------------------------------------------------------

WRITER_SCRIPT = """
import sys, time
from pathlib import Path
import numpy as np
from fashion_core.photostore import DuplicatePhotoError, PhotoStore
from tests.bad_images import encode
url, first, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
store = PhotoStore(url)
colours = [(value % 256, value // 256 % 256, 7) for value in range(first, first + count)]
photos = [encode(np.full((40, 40, 3), colour, np.uint8), "PNG") for colour in colours]
shared = encode(np.full((40, 40, 3), 99, np.uint8), "PNG")
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
for photo in photos:
    store.add(photo, 1, image=np.zeros((28, 28), np.uint8), source="camera")
try:
    store.add(shared, 2, image=np.zeros((28, 28), np.uint8))
    print("shared added")
except DuplicatePhotoError:
    print("shared duplicate")
"""


def test_threads_and_processes_adding_at_once_lose_nothing(store_url, tmp_path):
    num_threads, num_processes, per_writer = 4, 2, 8
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT, store_url, str(1000 + 100 * index), str(per_writer), str(go)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(num_processes)
    ]
    for process in processes:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()

    store = PhotoStore(store_url)
    shared = encode(np.full((40, 40, 3), 99, np.uint8), "PNG")
    outcomes = []

    def write(thread_index):
        for offset in range(per_writer):
            value = 5000 + 100 * thread_index + offset
            photo = encode(np.full((40, 40, 3), (value % 256, value // 256, 9), np.uint8), "PNG")
            store.add(photo, 0, image=np.zeros((28, 28), np.uint8))
        try:
            store.add(shared, 2, image=np.zeros((28, 28), np.uint8))
            outcomes.append("shared added")
        except DuplicatePhotoError:
            outcomes.append("shared duplicate")

    threads = [threading.Thread(target=write, args=(index,)) for index in range(num_threads)]
    go.touch()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for process in processes:
        output, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors[-3000:]
        outcomes.append(output.strip())

    assert sorted(outcomes).count("shared added") == 1
    assert len(outcomes) == num_threads + num_processes
    counts = store.counts()
    assert counts.train[0] + counts.val[0] == num_threads * per_writer
    assert counts.train[1] + counts.val[1] == num_processes * per_writer
    assert counts.train[2] + counts.val[2] == 1
    assert counts.total == (num_threads + num_processes) * per_writer + 1


# --- import and export ---------------------------------------------------------------------------------


def test_a_folder_with_a_manifest_imports_keeping_its_split(store, tmp_path):
    rows = dev_rows(count_per_class=1)
    splits = ["val", "train", "train", "val", "train"][: len(rows)]
    folder = photo_folder(tmp_path / "photos", rows, splits)

    result = store.import_folder(folder)

    assert (result.added, result.duplicates) == (len(rows), 0)
    stored = store.list_photos()
    assert [record.label for record in stored] == [int(row["class_index"]) for row in rows]
    assert [str(record.split) for record in stored] == splits
    assert {record.source for record in stored} == {Source.IMPORT}
    assert [record.origin for record in stored] == [row["source"] for row in rows]
    first = store.get(stored[0].id)
    assert first.photo == (DEV_PHOTOS / rows[0]["relative_path"]).read_bytes()
    np.testing.assert_array_equal(first.image, photo_to_fashion_mnist(first.photo))

    other = PhotoStore(tmp_path / "digest-split.sqlite3")
    other.import_folder(folder, keep_split=False)
    assert [record.split for record in other.list_photos()] == [split_for_digest(r.sha256) for r in stored]


def test_importing_twice_skips_the_duplicates_and_counts_them(store, tmp_path):
    rows = dev_rows(count_per_class=1)[:3]
    folder = photo_folder(tmp_path / "photos", rows)
    assert store.import_folder(folder).added == 3
    again = store.import_folder(folder)
    assert (again.added, again.duplicates, again.duplicate_lines) == (0, 3, (2, 3, 4))

    repeated = tmp_path / "repeated"  # the same photo twice in one manifest, under two names
    photo_folder(repeated, rows[:1])
    shutil.copyfile(repeated / rows[0]["relative_path"], repeated / "copy.jpg")
    new_photo = repeated / "new.png"
    new_photo.write_bytes(make_photo(40))
    write_manifest(
        repeated,
        [[rows[0]["relative_path"], rows[0]["class_index"]], ["copy.jpg", rows[0]["class_index"]], ["new.png", "8"]],
        header=("relative_path", "class_index"),
    )
    result = store.import_folder(repeated)
    assert (result.added, result.duplicates, result.duplicate_lines) == (1, 2, (2, 3))
    assert store.counts().total == 4


def test_bad_rows_store_nothing_and_are_listed_by_line(store, tmp_path):
    rows = dev_rows(count_per_class=1)[:2]
    folder = photo_folder(tmp_path / "photos", rows)
    truncated = upload_cases()["truncated JPEG"].data
    (folder / "cut.jpg").write_bytes(truncated)
    (folder / "good.png").write_bytes(make_photo(41))
    write_manifest(
        folder,
        [
            [rows[0]["relative_path"], rows[0]["class_index"], rows[0]["class_name"], "train", ""],  # line 2: fine
            ["missing.jpg", "0", "", "", ""],  # line 3
            ["good.png", "12", "", "", ""],  # line 4
            ["cut.jpg", "0", "", "", ""],  # line 5
            [rows[1]["relative_path"], "0", "coat", "", ""],  # line 6: index and name disagree
            ["good.png", "1", "", "test", ""],  # line 7
            ["", "1", "", "", ""],  # line 8
            ["../outside.jpg", "1", "", "", ""],  # line 9
            ["good.png", "", "jumper", "", ""],  # line 10
        ],
    )
    with pytest.raises(PhotoImportError) as caught:
        store.import_folder(folder)

    problems = {problem.line: problem.reason for problem in caught.value.problems}
    assert sorted(problems) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert problems[3] == "the file is not there"
    assert problems[4] == "class_index must be a whole number from 0 to 9, not '12'"
    with pytest.raises(ImageError) as upload_error:
        photo_to_fashion_mnist(truncated)
    assert problems[5] == str(upload_error.value)
    assert problems[6] == "class_index 0 is T-shirt/top but class_name 'coat' is Coat"
    assert problems[7] == "split must be 'train' or 'val' (or empty), not 'test'"
    assert problems[8] == "the relative_path column is empty"
    assert problems[9].startswith("the path leads outside the folder")
    assert problems[10].startswith("class_name is not a Fashion-MNIST class")
    message = str(caught.value)
    assert message.startswith("Nothing was imported: 8 of the 9 rows of MANIFEST.tsv have problems.")
    assert "- line 3 (missing.jpg): the file is not there" in message
    assert message.endswith("Received: 8 bad rows")
    assert store.counts().total == 0


def test_one_photo_under_two_classes_is_a_bad_row(store, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(make_photo(42))
    (folder / "b.png").write_bytes(make_photo(42))
    write_manifest(folder, [["a.png", "0"], ["b.png", "6"]], header=("relative_path", "class_index"))
    with pytest.raises(PhotoImportError, match=r"line 3 \(b.png\): the same photo as line 2, but labelled Shirt"):
        store.import_folder(folder)
    assert store.counts().total == 0


def test_a_folder_without_a_manifest_or_columns_is_refused(tmp_path, store):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PhotoStoreError, match="The folder has no manifest"):
        store.import_folder(tmp_path / "empty")
    with pytest.raises(PhotoStoreError, match="There is no folder at this path on the machine that runs the app"):
        store.import_folder(tmp_path / "nowhere")
    write_manifest(tmp_path / "columns", [["a.png"]], header=("file_name",))
    with pytest.raises(PhotoStoreError, match=r"Received: columns=\['file_name'\]"):
        store.import_folder(tmp_path / "columns")


def test_class_names_in_any_spelling_are_read(tmp_path, store):
    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["T-shirt/top", "tshirt_top", "ANKLE BOOT", "ankle_boot", "Pullover"]
    for index, _ in enumerate(names):
        (folder / f"{index}.png").write_bytes(make_photo(50 + index))
    write_manifest(folder, [[f"{index}.png", name] for index, name in enumerate(names)], ("file", "class_name"))
    store.import_folder(folder)
    assert [record.label for record in store.list_photos()] == [0, 0, 9, 9, 2]
    assert [class_folder_name(label) for label in range(10)][:3] == ["tshirt_top", "trouser", "pullover"]
    assert class_folder_name(9) == "ankle_boot"


def test_export_then_import_gives_the_same_records(store, tmp_path):
    rows = dev_rows(count_per_class=1)[:3]
    store.import_folder(photo_folder(tmp_path / "photos", rows, ["val", "train", "train"]))
    store.add(make_photo(60), 3, source="camera", probabilities=PROBABILITIES, model_name="default", origin="c.png")
    store.add(encode(garment_photo(width=1600, height=2000), "PNG"), 4)  # stored as a re-encoded JPEG
    archive = io.BytesIO()

    assert store.export_zip(archive) == 5

    with zipfile.ZipFile(io.BytesIO(archive.getvalue())) as opened:
        names = set(opened.namelist())
        table = list(csv.DictReader(io.StringIO(opened.read("photos.csv").decode())))
    assert tuple(table[0]) == EXPORT_COLUMNS
    assert {row["relative_path"] for row in table} | {row["input_path"] for row in table} | {"photos.csv"} == names
    assert table[3]["predicted_index"] == "3" and table[3]["class_name"] == "Dress"
    assert table[3]["relative_path"].startswith("photos/dress/") and table[3]["relative_path"].endswith(".png")
    assert table[4]["relative_path"].endswith(".jpg")

    copy = PhotoStore(tmp_path / "copy.sqlite3")
    result = copy.import_zip(archive.getvalue())
    assert (result.added, result.duplicates) == (5, 0)
    originals, copies = store.list_photos(with_photos=True), copy.list_photos(with_photos=True)
    assert [dataclasses.replace(r, id=None) for r in copies] == [dataclasses.replace(r, id=None) for r in originals]
    for original, copied in zip(originals, copies):
        np.testing.assert_array_equal(copied.image, original.image)
    assert copy.fingerprint("val") == store.fingerprint("val") and copy.counts() == store.counts()
    assert copy.import_zip(archive.getvalue()).duplicates == 5

    only_val = io.BytesIO()
    assert store.export_zip(only_val, split="val") == sum(store.counts().val)


def test_a_zip_with_bad_rows_stores_nothing(store, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("set/labels.csv", "file,class_name\nok.png,Bag\ncut.png,Bag\nmissing.png,Bag\n")
        opened.writestr("set/ok.png", make_photo(70))
        opened.writestr("set/cut.png", upload_cases()["truncated PNG"].data)
    with pytest.raises(PhotoImportError) as caught:
        store.import_zip(archive.getvalue())
    assert [(problem.line, problem.path) for problem in caught.value.problems] == [(3, "cut.png"), (4, "missing.png")]
    assert "truncated or corrupt" in caught.value.problems[0].reason
    assert caught.value.problems[1].reason == "the file is not in the zip"
    assert store.counts().total == 0


def test_a_file_that_is_not_a_zip_or_has_no_manifest_is_refused(store):
    with pytest.raises(PhotoStoreError, match="not a readable zip"):
        store.import_zip(b"not a zip at all")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("a.png", make_photo(71))
    with pytest.raises(PhotoStoreError, match=r"exactly one manifest .* Received: manifests=\[\]"):
        store.import_zip(archive.getvalue())


# --- evaluation ----------------------------------------------------------------------------------------


def test_a_model_is_evaluated_on_the_val_photos(tmp_path):
    predictor = LiteRTPredictor.from_model_dir(SHIPPED_MODEL_DIR)  # the predictor the app answers with
    store = PhotoStore(tmp_path / "photos.sqlite3")
    with pytest.raises(PhotoStoreError, match="The photo store has no val photos"):
        evaluate_on_photos(predictor, store)
    rows = dev_rows(count_per_class=2)
    store.import_folder(photo_folder(tmp_path / "photos", rows, ["val", "train"] * (len(rows) // 2)))

    report = evaluate_on_photos(predictor, store)

    val = store.arrays("val")
    expected = predictor.predict(val.images).argmax(axis=1)
    np.testing.assert_array_equal(report.labels, val.labels)
    assert report.accuracy == pytest.approx(np.mean(expected == val.labels))
    assert report.confusion_matrix.sum() == len(rows) // 2
    assert report.confusion_matrix[val.labels[0], expected[0]] >= 1
    assert len(report.per_class_accuracy) == len(CLASS_NAMES)
    assert len(evaluate_on_photos(predictor, store, split="train").labels) == len(rows) // 2


def test_the_store_modules_import_neither_tensorflow_nor_streamlit():
    script = (
        "import sys, fashion_core.photostore, fashion_core.photo_import, fashion_core.photo_data\n"
        "print(sorted(name for name in ('tensorflow', 'keras', 'streamlit') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr[-2000:]


def test_the_store_times_are_utc_on_every_backend(store):
    paris = timezone(timedelta(hours=2))
    record = store.add(make_photo(80), 0, created_at=datetime(2026, 1, 2, 5, 4, 5, tzinfo=paris))
    stored = store.get(record.id).created_at
    assert stored == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and stored.utcoffset() == timedelta(0)


def test_the_command_line_imports_counts_evaluates_and_exports(tmp_path, capsys):
    """Test that `python -m fashion_core photos ...` does what the store does, and says what went wrong."""
    from fashion_core.cli import main

    rows = dev_rows(count_per_class=1)
    folder = photo_folder(tmp_path / "photos", rows, ["val", "train", "val", "train", "train"][: len(rows)])
    database = str(tmp_path / "cli.sqlite3")
    assert main(["photos", "--db", database, "import", str(folder)]) == 0
    assert f"Imported {len(rows)} photos into sqlite:///{database}; 0 already there" in capsys.readouterr().out

    store = PhotoStore(database)
    assert main(["photos", "--db", database, "counts"]) == 0
    counts = capsys.readouterr().out
    assert f"  {'Dress':<12} {store.counts().train[3]:>6} {store.counts().val[3]:>6}" in counts
    assert f"fingerprints: train {store.fingerprint('train')}, val {store.fingerprint('val')}" in counts

    assert main(["photos", "--db", database, "evaluate", str(SHIPPED_MODEL_DIR)]) == 0
    report = evaluate_on_photos(LiteRTPredictor.from_model_dir(SHIPPED_MODEL_DIR), store)
    assert f"accuracy {report.accuracy:.4f}" in capsys.readouterr().out

    assert main(["photos", "--db", database, "export", str(tmp_path / "out.zip"), "--split", "val"]) == 0
    assert capsys.readouterr().out.startswith(f"Wrote {sum(store.counts().val)} photos")
    assert PhotoStore(tmp_path / "copy.sqlite3").import_zip(tmp_path / "out.zip").added == sum(store.counts().val)

    assert main(["photos", "--db", database, "import", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: There is no folder at this path")
