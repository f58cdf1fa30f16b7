"""Importing labelled photos into a `PhotoStore`, and exporting them as a zip that imports back.

A set of photos comes with a manifest, one row per photo:

- a folder with a tab-separated `MANIFEST.tsv` (as `../shared/realphotos-cc0` has) or a comma-separated
  `photos.csv`;
- or a zip holding the photos and one such manifest (what `export_zip` writes).

Columns (a header row names them, in any order):

- `relative_path` (or `file` / `path`): the photo, relative to the manifest's folder;
- `class_index` (0..9) or `class_name` (a Fashion-MNIST class name in any spelling: `T-shirt/top`,
  `tshirt_top`); when both are given they must agree;
- optional: `split` (`train`/`val`; kept unless `keep_split=False`, else taken from the photo's
  digest), `source` (`upload`/`camera`/`import`; any other text is where the photo came from and is
  kept as its `origin`), `origin`, `sha256`, `input_path` (the 28x28 PNG the model saw; without it the
  photo is converted as an upload is), `model_name`, `probabilities` (a JSON list of ten), `created_at`.

An import is all or nothing: every row is read and checked first, and when any row has a problem
`PhotoImportError` lists them all by line number (the header is line 1) and nothing is stored.
Photos already stored, or repeated in the manifest, are skipped and counted. Unreadable photos get
the upload messages of `fashion_core.preprocess.ImageError`.

This module needs neither TensorFlow nor Streamlit.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashion_core.data import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from fashion_core.photostore import (
    ImportResult,
    PhotoRecord,
    PhotoStore,
    PhotoStoreError,
    Source,
    Split,
    new_record,
)
from fashion_core.preprocess import MAX_UPLOAD_BYTES, ImageError

MANIFEST_NAMES = ("MANIFEST.tsv", "photos.csv")  # looked for in this order
PATH_COLUMNS = ("relative_path", "file", "path")
EXPORT_MANIFEST = "photos.csv"
EXPORT_COLUMNS = (
    "relative_path",
    "class_index",
    "class_name",
    "split",
    "source",
    "origin",
    "sha256",
    "model_name",
    "predicted_index",
    "probabilities",
    "created_at",
    "input_path",
)
MAX_LISTED_PROBLEMS = 20  # the error message lists this many rows; `PhotoImportError.problems` has all
IMPORT_WORKERS = min(4, os.cpu_count() or 1)  # photos are converted in parallel (OpenCV releases the GIL)
EXPORT_PAGE_SIZE = 200  # photos read from the database at a time while exporting
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RowProblem:
    """Why one manifest row cannot be imported."""

    line: int
    path: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.path}): {self.reason}" if self.path else f"line {self.line}: {self.reason}"


class PhotoImportError(PhotoStoreError):
    """Raised when an import's manifest has bad rows; nothing was stored. `problems` lists every one."""

    def __init__(self, problems: list[RowProblem], num_rows: int, manifest: str):
        self.problems = tuple(problems)
        listed = "\n".join(f"- {problem}" for problem in problems[:MAX_LISTED_PROBLEMS])
        more = f"\n- ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        super().__init__(
            f"Nothing was imported: {len(problems)} of the {num_rows} rows of {manifest} "
            f"{'has a problem' if len(problems) == 1 else 'have problems'}. "
            f"Fix or remove those rows and import again.\n{listed}{more}\nReceived: {len(problems)} bad rows"
        )


class _RowError(Exception):
    """A problem with one row, said in words (becomes a `RowProblem`)."""


# ---------------------------------------------------------------------------------------------------
# Where the files are: a folder or a zip


class _FolderFiles:
    def __init__(self, folder: Path):
        self.root = folder.resolve()

    def read(self, relative: str) -> bytes:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise _RowError(f"the path leads outside the folder {self.root}")
        if not path.is_file():
            raise _RowError("the file is not there")
        _check_size(path.stat().st_size)
        return path.read_bytes()


class _ZipFiles:
    def __init__(self, archive: zipfile.ZipFile, base: str):
        self.archive, self.base = archive, base
        self.members = {info.filename: info for info in archive.infolist() if not info.is_dir()}

    def read(self, relative: str) -> bytes:
        name = posixpath.normpath(posixpath.join(self.base, relative.replace("\\", "/")))
        if name.startswith("../") or name.startswith("/"):
            raise _RowError("the path leads outside the zip")
        info = self.members.get(name)
        if info is None:
            raise _RowError("the file is not in the zip")
        _check_size(info.file_size)
        try:
            return self.archive.read(info)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise _RowError(f"the file is corrupt in the zip ({error})") from error


def _check_size(size: int) -> None:
    if size > MAX_UPLOAD_BYTES:
        raise _RowError(
            f"the file is larger than the {MAX_UPLOAD_BYTES // (1024 * 1024)} MB a photo may have; resize it. "
            f"Received: size={size} bytes"
        )


def _folder_manifest(folder: Path) -> Path:
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise PhotoStoreError(
        f"The folder has no manifest: put a tab-separated MANIFEST.tsv (or a comma-separated photos.csv) in it, "
        f"with a row per photo naming its relative_path and class_index. Received: folder={folder}"
    )


def _zip_manifest(archive: zipfile.ZipFile) -> str:
    names = [
        name
        for name in archive.namelist()
        if name.lower().endswith((".csv", ".tsv")) and not name.startswith("__MACOSX/") and not name.endswith("/")
    ]
    preferred = [name for name in names if posixpath.basename(name) in MANIFEST_NAMES]
    candidates = preferred or names
    if len(candidates) != 1:
        raise PhotoStoreError(
            "The zip must hold exactly one manifest (photos.csv or MANIFEST.tsv, or one .csv or .tsv file) "
            f"beside its photos. Received: manifests={candidates}"
        )
    return candidates[0]


# ---------------------------------------------------------------------------------------------------
# Reading the manifest


@dataclass(frozen=True)
class _Row:
    """One manifest row, parsed."""

    line: int
    path: str
    label: int
    details: dict[str, Any]
    input_path: str = ""


def _class_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_CLASS_BY_KEY = {_class_key(name): index for index, name in enumerate(CLASS_NAMES)}


def class_folder_name(label: int) -> str:
    """A class's folder name in exports: `tshirt_top`, `trouser`, ..., `ankle_boot` (as realphotos-cc0)."""
    return re.sub(r"[^a-z0-9]+", "_", CLASS_NAMES[label].lower().replace("-", "")).strip("_")


def _parse_label(values: dict[str, str]) -> int:
    index_text, name_text = values.get("class_index", ""), values.get("class_name", "")
    by_name = _CLASS_BY_KEY.get(_class_key(name_text)) if name_text else None
    if not index_text:
        if by_name is None:
            raise _RowError(f"class_name is not a Fashion-MNIST class ({', '.join(CLASS_NAMES)}): {name_text!r}")
        return by_name
    if not re.fullmatch(r"\d+", index_text) or int(index_text) >= NUM_CLASSES:
        raise _RowError(f"class_index must be a whole number from 0 to {NUM_CLASSES - 1}, not {index_text!r}")
    if by_name is not None and by_name != int(index_text):
        raise _RowError(
            f"class_index {index_text} is {CLASS_NAMES[int(index_text)]} but class_name {name_text!r} "
            f"is {CLASS_NAMES[by_name]}"
        )
    return int(index_text)


def _parse_details(values: dict[str, str], keep_split: bool) -> dict[str, Any]:
    """`new_record`'s keyword arguments from a row's optional columns."""
    details: dict[str, Any] = {"source": Source.IMPORT, "origin": values.get("origin", "")}
    source = values.get("source", "")
    if source in tuple(Source):
        details["source"] = Source(source)
    elif source and not details["origin"]:
        details["origin"] = source  # a manifest's provenance (repository, commit, path)
    split = values.get("split", "")
    if split and split not in tuple(Split):
        raise _RowError(f"split must be 'train' or 'val' (or empty), not {split!r}")
    if keep_split and split:
        details["split"] = Split(split)
    if sha256 := values.get("sha256", ""):
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise _RowError(f"sha256 must be 64 lowercase hex digits, not {sha256!r}")
        details["sha256"] = sha256
    if probabilities := values.get("probabilities", ""):
        try:
            details["probabilities"] = json.loads(probabilities)
        except json.JSONDecodeError as error:
            raise _RowError(f"probabilities must be a JSON list of {NUM_CLASSES} numbers ({error})") from error
    if created_at := values.get("created_at", ""):
        try:
            details["created_at"] = datetime.fromisoformat(created_at)
        except ValueError as error:
            raise _RowError(f"created_at must be an ISO 8601 time, not {created_at!r}") from error
    details["model_name"] = values.get("model_name", "")
    return details


def _read_manifest(text: str, name: str, keep_split: bool) -> tuple[list[_Row], list[RowProblem], int]:
    """The rows of a manifest, the problems of those that cannot be parsed, and the number of rows."""
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if name.lower().endswith(".tsv") else ",")
    columns = [column.strip() for column in reader.fieldnames or []]
    path_column = next((column for column in PATH_COLUMNS if column in columns), None)
    if path_column is None or not {"class_index", "class_name"} & set(columns):
        raise PhotoStoreError(
            f"{name} needs a header row with a relative_path column and a class_index (or class_name) column. "
            f"Received: columns={columns}"
        )
    rows, problems, num_rows = [], [], 0
    for raw in reader:
        num_rows += 1
        values = {key.strip(): (value or "").strip() for key, value in raw.items() if isinstance(key, str)}
        path = values.get(path_column, "")
        try:
            if not path:
                raise _RowError(f"the {path_column} column is empty")
            label = _parse_label(values)
            details = _parse_details(values, keep_split)
            rows.append(_Row(reader.line_num, path, label, details, values.get("input_path", "")))
        except _RowError as error:
            problems.append(RowProblem(reader.line_num, path, str(error)))
    return rows, problems, num_rows


# ---------------------------------------------------------------------------------------------------
# Importing


def _model_input(files, input_path: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(files.read(input_path))) as image:
            pixels = np.asarray(image.convert("L"))
    except (OSError, ValueError) as error:
        raise _RowError(f"input_path {input_path!r} is not a readable image ({error})") from error
    if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise _RowError(f"input_path {input_path!r} must be a 28x28 image, not {pixels.shape[1]}x{pixels.shape[0]}")
    return pixels


def _record(files, row: _Row) -> PhotoRecord | RowProblem:
    try:
        photo = files.read(row.path)
        image = _model_input(files, row.input_path) if row.input_path else None
        return new_record(photo, row.label, image=image, **row.details)
    except (_RowError, ImageError, PhotoStoreError) as error:
        return RowProblem(row.line, row.path, str(error))


def _records(files, rows: list[_Row], progress: ProgressCallback | None) -> Iterator[PhotoRecord | RowProblem]:
    with ThreadPoolExecutor(max_workers=IMPORT_WORKERS) as pool:
        for done, outcome in enumerate(pool.map(lambda row: _record(files, row), rows), start=1):
            if progress is not None:
                progress(done, len(rows))
            yield outcome


def _conflicts(rows: list[_Row], records: list[PhotoRecord]) -> list[RowProblem]:
    """Rows repeating an earlier row's photo with another class."""
    first: dict[str, tuple[int, int]] = {}
    problems = []
    for row, record in zip(rows, records):
        line, label = first.setdefault(record.sha256, (row.line, record.label))
        if label != record.label:
            problems.append(
                RowProblem(row.line, row.path, f"the same photo as line {line}, but labelled {record.label_name}")
            )
    return problems


def _import(store: PhotoStore, files, text: str, name: str, keep_split: bool, progress) -> ImportResult:
    rows, problems, num_rows = _read_manifest(text, name, keep_split)
    records, converted_rows = [], []
    for row, outcome in zip(rows, _records(files, rows, progress)):
        if isinstance(outcome, RowProblem):
            problems.append(outcome)
        else:
            records.append(outcome)
            converted_rows.append(row)
    problems += _conflicts(converted_rows, records)
    if problems:
        raise PhotoImportError(sorted(problems, key=lambda problem: problem.line), num_rows, name)
    result = store.add_many(records)
    lines = tuple(converted_rows[position - 1].line for position in result.duplicate_lines)
    return replace(result, duplicate_lines=lines)


def import_folder(
    store: PhotoStore, folder: str | os.PathLike, *, keep_split: bool = True, progress: ProgressCallback | None = None
) -> ImportResult:
    """Imports the photos a folder's `MANIFEST.tsv` (or `photos.csv`) lists: all of them or none.

    Args:
        store: where to store them.
        folder: the folder, on the machine that runs the app.
        keep_split: keep the manifest's `split` column where it has one. Defaults to `True`.
        progress: called with `(photos read, photos in all)` as the photos are converted. Defaults to `None`.

    Raises:
        PhotoImportError: when rows have problems (each listed by line and reason); nothing is stored.
        PhotoStoreError: for a missing folder or manifest, or a database that fails.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise PhotoStoreError(
            f"There is no folder at this path on the machine that runs the app. Received: folder={folder}"
        )
    manifest = _folder_manifest(path)
    text = _decoded(manifest.read_bytes(), manifest.name)
    return _import(store, _FolderFiles(path), text, manifest.name, keep_split, progress)


def import_zip(
    store: PhotoStore,
    archive: str | os.PathLike | bytes | io.BufferedIOBase,
    *,
    keep_split: bool = True,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Imports a zip of photos and one manifest (as `export_zip` writes it): all of them or none.

    Args:
        store: where to store them.
        archive: the zip: a path, its bytes, or a binary file.
        keep_split: keep the manifest's `split` column where it has one. Defaults to `True`.
        progress: called with `(photos read, photos in all)` as the photos are converted. Defaults to `None`.

    Raises:
        PhotoImportError: when rows have problems (each listed by line and reason); nothing is stored.
        PhotoStoreError: for a file that is not a zip, a zip without one manifest, or a database that fails.
    """
    source = io.BytesIO(archive) if isinstance(archive, bytes | bytearray) else archive
    try:
        with zipfile.ZipFile(source) as opened:
            manifest = _zip_manifest(opened)
            text = _decoded(opened.read(manifest), manifest)
            files = _ZipFiles(opened, posixpath.dirname(manifest))
            return _import(store, files, text, posixpath.basename(manifest), keep_split, progress)
    except (zipfile.BadZipFile, EOFError) as error:
        raise PhotoStoreError(
            f"The file is not a readable zip ({error}). Export it again. Received: {archive!r:.80}"
        ) from error


def _decoded(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PhotoStoreError(f"{name} must be UTF-8 text. Received: {error}") from error


# ---------------------------------------------------------------------------------------------------
# Exporting


_SIGNATURES = (
    (b"\xff\xd8", "jpg"),
    (b"\x89PNG", "png"),
    (b"GIF8", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)


def photo_extension(photo: bytes) -> str:
    """The usual file extension of a photo's format, read from its first bytes (`"img"` when unknown)."""
    if photo[:4] == b"RIFF" and photo[8:12] == b"WEBP":
        return "webp"
    return next((extension for signature, extension in _SIGNATURES if photo.startswith(signature)), "img")


def _png(image: np.ndarray) -> bytes:
    output = io.BytesIO()
    Image.fromarray(image, mode="L").save(output, format="PNG")
    return output.getvalue()


def _export_row(record: PhotoRecord, photo_path: str, input_path: str) -> list[str]:
    return [
        photo_path,
        str(record.label),
        CLASS_NAMES[record.label],
        str(record.split),
        str(record.source),
        record.origin,
        record.sha256,
        record.model_name,
        "" if record.predicted is None else str(record.predicted),
        "" if record.probabilities is None else json.dumps([round(value, 6) for value in record.probabilities]),
        record.created_at.isoformat(),
        input_path,
    ]


def export_zip(
    store: PhotoStore, destination: str | os.PathLike | io.BufferedIOBase, *, split: Split | str | None = None
) -> int:
    """Writes the store's photos as a zip that `import_zip` reads back to the same records.

    The zip holds `photos.csv` (the manifest, `EXPORT_COLUMNS`), `photos/<class>/<digest>.<ext>` (the
    photos as stored) and `inputs/<digest>.png` (the 28x28 each photo became).

    Args:
        store: the store.
        destination: a path or a binary file to write the zip to.
        split: only this split. Defaults to every photo.

    Returns:
        The number of photos written.
    """
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        while page := store.list_photos(split=split, limit=EXPORT_PAGE_SIZE, offset=count, with_photos=True):
            for record in page:
                stem = record.sha256[:16]
                photo_path = f"photos/{class_folder_name(record.label)}/{stem}.{photo_extension(record.photo)}"
                input_path = f"inputs/{stem}.png"
                archive.writestr(photo_path, record.photo, compress_type=zipfile.ZIP_STORED)  # already compressed
                archive.writestr(input_path, _png(record.image))
                writer.writerow(_export_row(record, photo_path, input_path))
            count += len(page)
        archive.writestr(EXPORT_MANIFEST, table.getvalue())
    return count
