"""The labelled-photo store: real photos people confirmed or corrected, kept in a database.

Each record (`PhotoRecord`) holds the photo as uploaded (re-encoded to a JPEG of at most
`MAX_PHOTO_SIDE` pixels when it is larger), the 28x28 image the model saw, the true class, where the
photo came from, the model's answer at the time, when it was added, and its split. The split is
fixed when a photo is added, from the SHA-256 of its bytes (one photo in five is `val`), so the same
photo always lands in the same split and `val` photos never leak into training.

`PhotoStore` works on any SQLAlchemy database: by default a SQLite file (`data/photos.sqlite3`, or
the path or URL in `$FASHION_STUDIO_PHOTO_DB`), or a server database such as PostgreSQL
(`postgresql+psycopg://user:password@host/db`), which survives a redeploy that wipes the app's disk.
Writers from many threads and processes are safe: SQLite runs in WAL mode and every write takes the
write lock up front (`BEGIN IMMEDIATE`) and waits for it; a write that still meets a lock, or a
photo added by someone else at the same moment, is retried.

Import and export (a folder with `MANIFEST.tsv`, or a zip with `photos.csv`) live in
`fashion_core.photo_import`. This module needs neither TensorFlow nor Streamlit.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from fashion_core.data import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from fashion_core.evaluation import EvaluationReport, evaluate_model
from fashion_core.photo_data import PHOTO_DB_ENV, PhotoArrays, photo_set_fingerprint
from fashion_core.preprocess import ImageError, decode_photo, photo_to_fashion_mnist

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = PROJECT_ROOT / "data" / "photos.sqlite3"

MAX_PHOTO_SIDE = 1024  # pixels; a larger photo is stored as a JPEG this size on its long side
MAX_PHOTO_BYTES = 1024 * 1024  # a larger file is re-encoded too, whatever its size in pixels
JPEG_QUALITY = 90
VAL_ONE_IN = 5  # a photo whose digest is 0 modulo this is `val`: a fifth of the photos

SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another's lock
WRITE_ATTEMPTS = 6  # a write meeting a lock or a concurrent duplicate is tried this many times
CONNECT_TIMEOUT_S = 10  # a server database that does not answer within this is reported unreachable
# Database errors that a second try can clear: a lock (SQLite), a deadlock or a serialisation failure
# (PostgreSQL), or two processes creating the table at once.
RETRYABLE_PHRASES = ("database is locked", "busy", "deadlock", "could not serialize", "already exists")

T = TypeVar("T")


class PhotoStoreError(ValueError):
    """Raised for a database that cannot be reached or used, or a record that cannot be stored."""


class DuplicatePhotoError(PhotoStoreError):
    """Raised by `PhotoStore.add` for a photo whose bytes are already stored; `existing` is that record."""

    def __init__(self, message: str, existing: PhotoRecord):
        super().__init__(message)
        self.existing = existing


class Source(StrEnum):
    """Where a stored photo came from."""

    UPLOAD = "upload"
    CAMERA = "camera"
    IMPORT = "import"


class Split(StrEnum):
    """What a stored photo is for: training, or choosing and judging models (never trained on)."""

    TRAIN = "train"
    VAL = "val"


def split_for_digest(sha256: str) -> Split:
    """The split a photo gets from its SHA-256 hex digest: `val` for one digest in `VAL_ONE_IN`."""
    return Split.VAL if int(sha256[:8], 16) % VAL_ONE_IN == 0 else Split.TRAIN


def photo_digest(photo: bytes) -> str:
    """The SHA-256 hex digest of a photo's bytes, which names it in the store."""
    return hashlib.sha256(photo).hexdigest()


# ---------------------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True)
class PhotoRecord:
    """One stored photo. Build it with `new_record`, or read it with `from_dict` / from a `PhotoStore`.

    Attributes:
        sha256: SHA-256 hex digest of the photo's bytes as uploaded (unique in a store).
        label: the true class index (0..9).
        split: `Split.TRAIN` or `Split.VAL`.
        source: `Source.UPLOAD`, `Source.CAMERA` or `Source.IMPORT`.
        image: uint8 `(28, 28)`, what the model saw.
        photo: the photo's bytes (capped to `MAX_PHOTO_SIDE`), or `None` in listings that leave them out.
        probabilities: the model's ten probabilities when the photo was added, or `None`.
        model_name: the model that gave them (empty when none did).
        origin: where the photo was found: the uploaded file's name, or an import's path or source.
        created_at: when it was added (UTC).
        id: the database's id, `None` before it is stored.
    """

    sha256: str
    label: int
    split: Split
    source: Source
    image: np.ndarray = field(repr=False, compare=False)
    photo: bytes | None = field(default=None, repr=False)
    probabilities: tuple[float, ...] | None = field(default=None, repr=False)
    model_name: str = ""
    origin: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None

    @property
    def label_name(self) -> str:
        return CLASS_NAMES[self.label]

    @property
    def predicted(self) -> int | None:
        """The class the model answered when the photo was added, or `None`."""
        return None if self.probabilities is None else int(np.argmax(self.probabilities))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (bytes in base64) that `from_dict` reads back to an equal record."""
        data: dict[str, Any] = {
            "sha256": self.sha256,
            "label": self.label,
            "split": str(self.split),
            "source": str(self.source),
            "image": base64.b64encode(np.ascontiguousarray(self.image, dtype=np.uint8).tobytes()).decode("ascii"),
            "model_name": self.model_name,
            "origin": self.origin,
            "created_at": self.created_at.isoformat(),
        }
        if self.photo is not None:
            data["photo"] = base64.b64encode(self.photo).decode("ascii")
        if self.probabilities is not None:
            data["probabilities"] = list(self.probabilities)
        if self.id is not None:
            data["id"] = self.id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhotoRecord:
        """The record of a `to_dict` dict; optional keys that are missing get their defaults."""
        photo = data.get("photo")
        probabilities = data.get("probabilities")
        created_at = data.get("created_at")
        return cls(
            sha256=str(data["sha256"]),
            label=validate_label(data["label"]),
            split=Split(data["split"]),
            source=Source(data["source"]),
            image=validate_image(np.frombuffer(base64.b64decode(data["image"]), dtype=np.uint8)),
            photo=None if photo is None else base64.b64decode(photo),
            probabilities=None if probabilities is None else validate_probabilities(probabilities),
            model_name=str(data.get("model_name") or ""),
            origin=str(data.get("origin") or ""),
            created_at=as_utc(datetime.fromisoformat(created_at)) if created_at else datetime.now(UTC),
            id=data.get("id"),
        )


def validate_label(label: Any) -> int:
    """`label` as an int class index; raises `PhotoStoreError` unless it is a whole number 0..9."""
    if isinstance(label, bool) or not isinstance(label, int | np.integer) or not 0 <= int(label) < NUM_CLASSES:
        raise PhotoStoreError(
            f"A photo's class is its Fashion-MNIST class index, a whole number from 0 to {NUM_CLASSES - 1} "
            f"({', '.join(f'{index} {name}' for index, name in enumerate(CLASS_NAMES))}). Received: label={label!r}"
        )
    return int(label)


def validate_image(image: Any) -> np.ndarray:
    """The model's input as uint8 `(28, 28)`; raises `PhotoStoreError` for any other shape."""
    array = np.asarray(image)
    if array.size != IMAGE_SIZE * IMAGE_SIZE:
        raise PhotoStoreError(
            f"The image the model saw must be 28x28 grey pixels (784 values). Received: shape={array.shape}"
        )
    return np.clip(array.reshape(IMAGE_SIZE, IMAGE_SIZE), 0, 255).astype(np.uint8)


def validate_probabilities(probabilities: Any) -> tuple[float, ...]:
    """Ten finite probabilities as floats; raises `PhotoStoreError` otherwise."""
    values = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if values.shape != (NUM_CLASSES,) or not np.all(np.isfinite(values)):
        raise PhotoStoreError(
            f"A prediction is {NUM_CLASSES} finite probabilities, one per class. "
            f"Received: probabilities={np.asarray(probabilities).tolist()!r}"
        )
    return tuple(float(value) for value in values)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive time is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def capped_photo(photo: bytes) -> bytes:
    """The photo as it is stored: unchanged when small enough, else a JPEG at most `MAX_PHOTO_SIDE` on its long side.

    Raises:
        ImageError: as uploads do, for a file that is not a photo the app can read.
    """
    decode_photo(photo)  # the upload checks and their messages, before Pillow decodes it in full here
    with Image.open(io.BytesIO(photo)) as image:
        if max(image.size) <= MAX_PHOTO_SIDE and len(photo) <= MAX_PHOTO_BYTES:
            return bytes(photo)
        image.draft("RGB", (MAX_PHOTO_SIDE, MAX_PHOTO_SIDE))  # JPEGs decode at a reduced scale directly
        image = ImageOps.exif_transpose(image).convert("RGBA")
        flattened = Image.new("RGB", image.size, (255, 255, 255))
        flattened.paste(image, mask=image.getchannel("A"))
        flattened.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE), Image.Resampling.LANCZOS)
        output = io.BytesIO()
        flattened.save(output, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        return output.getvalue()


def new_record(
    photo: bytes,
    label: int,
    *,
    source: Source | str = Source.UPLOAD,
    image: np.ndarray | None = None,
    probabilities: Sequence[float] | np.ndarray | None = None,
    model_name: str = "",
    origin: str = "",
    split: Split | str | None = None,
    sha256: str | None = None,
    created_at: datetime | None = None,
) -> PhotoRecord:
    """A record ready to store, from a photo's bytes and its true class.

    Args:
        photo: the photo's bytes as uploaded.
        label: the true class index (0..9).
        source: where it came from. Defaults to `Source.UPLOAD`.
        image: the uint8 `(28, 28)` the model saw; computed with `photo_to_fashion_mnist` when `None`.
        probabilities: the model's ten probabilities for it, if a model answered. Defaults to `None`.
        model_name: the name of that model. Defaults to `""`.
        origin: the file name or path it came from. Defaults to `""`.
        split: `"train"` or `"val"`; from the digest when `None` (the default), so it is stable.
        sha256: the digest of the photo as first uploaded, when `photo` is an export's re-encoded copy.
            Defaults to the digest of `photo`.
        created_at: when it was first added. Defaults to now.

    Raises:
        ImageError: for a file that is not a readable photo (the upload messages).
        PhotoStoreError: for a bad class, image, probabilities, source or split.
    """
    digest = sha256 or photo_digest(photo)
    model_input = photo_to_fashion_mnist(photo) if image is None else validate_image(image)
    return PhotoRecord(
        sha256=digest,
        label=validate_label(label),
        split=split_for_digest(digest) if split is None else _enum(Split, split, "split"),
        source=_enum(Source, source, "source"),
        image=model_input,
        photo=capped_photo(photo),
        probabilities=None if probabilities is None else validate_probabilities(probabilities),
        model_name=model_name or "",
        origin=origin or "",
        created_at=as_utc(created_at) if created_at else datetime.now(UTC),
    )


def _enum(kind: type[StrEnum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError as error:
        allowed = ", ".join(repr(str(member)) for member in kind)
        raise PhotoStoreError(f"A photo's {name} is one of {allowed}. Received: {name}={value!r}") from error


# ---------------------------------------------------------------------------------------------------
# The database


class _UTCDateTime(TypeDecorator):
    """Times stored in UTC and read back as aware UTC times (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        return None if value is None else as_utc(value)


_TABLES = MetaData()
PHOTOS = Table(
    "photos",
    _TABLES,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("label", Integer, nullable=False),
    Column("split", String(8), nullable=False),
    Column("source", String(16), nullable=False),
    Column("origin", String(1024), nullable=False, default=""),
    Column("model_name", String(256), nullable=False, default=""),
    Column("probabilities", JSON, nullable=True),
    Column("created_at", _UTCDateTime, nullable=False),
    Column("image", LargeBinary, nullable=False),
    Column("photo", LargeBinary, nullable=False),
    Index("ix_photos_label_split", "label", "split"),
)
_SUMMARY_COLUMNS = [column for column in PHOTOS.columns if column.name != "photo"]


def database_url(url: str | os.PathLike | None = None) -> URL:
    """The store's SQLAlchemy URL: `url`, else `$FASHION_STUDIO_PHOTO_DB`, else `data/photos.sqlite3`.

    A value without `://` is a SQLite file's path. `postgresql://` (and Heroku's `postgres://`) use the
    installed psycopg 3 driver.

    Raises:
        PhotoStoreError: for a value that is not a database URL.
    """
    text = str(url or os.environ.get(PHOTO_DB_ENV) or DEFAULT_DB_PATH)
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().resolve()))
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as error:  # ValueError: a port that is not a number
        raise PhotoStoreError(
            "The photo database must be a SQLite file's path or a SQLAlchemy URL such as "
            f"postgresql+psycopg://user:password@host:5432/photos. Received: url={text!r}"
        ) from error
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        options = {"connect_timeout": CONNECT_TIMEOUT_S} if url.get_backend_name() == "postgresql" else {}
        return create_engine(url, pool_pre_ping=True, connect_args=options)
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        # SQLAlchemy, not the sqlite3 module, begins transactions (see `_begin`); WAL lets readers
        # read while one writer writes, and the busy timeout makes a writer wait for the lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        # Writers take the write lock when they begin, so no transaction that read first can be refused
        # the lock later (SQLite would refuse it at once, without waiting).
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def _is_retryable(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return any(
        phrase in text for phrase in ("database is locked", "busy", "deadlock", "could not serialize", "already exists")
    )


def _reason(error: Exception) -> str:
    original = getattr(error, "orig", None) or error
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


@dataclass(frozen=True)
class PhotoCounts:
    """How many photos a store holds, per split and class.

    Attributes:
        train: photos of each class (10 ints) in `train`.
        val: photos of each class (10 ints) in `val`.
    """

    train: tuple[int, ...] = (0,) * NUM_CLASSES
    val: tuple[int, ...] = (0,) * NUM_CLASSES

    def of(self, split: Split | str) -> tuple[int, ...]:
        return self.val if Split(split) is Split.VAL else self.train

    @property
    def total(self) -> int:
        return sum(self.train) + sum(self.val)

    def by_class_name(self, split: Split | str) -> dict[str, int]:
        """Photos per class name in one split, classes without photos left out (as `PhotoSetInfo` has them)."""
        return {name: count for name, count in zip(CLASS_NAMES, self.of(split)) if count}


@dataclass(frozen=True)
class ImportResult:
    """What an import stored.

    Attributes:
        added: photos stored.
        duplicates: photos skipped because the same bytes were already stored (or came twice).
        duplicate_lines: the manifest lines of those photos.
    """

    added: int
    duplicates: int = 0
    duplicate_lines: tuple[int, ...] = ()


class PhotoStore:
    """Labelled photos in a SQLAlchemy database; safe to share between threads.

    Args:
        url: a SQLAlchemy URL or a SQLite file's path. Defaults to `$FASHION_STUDIO_PHOTO_DB`, else
            `data/photos.sqlite3` in the project folder.

    Raises:
        PhotoStoreError: when the database cannot be reached or its table cannot be created.

    Example:
        >>> store = PhotoStore("/tmp/photos.sqlite3")
        >>> record = store.add(photo_bytes, label=3, probabilities=probabilities, model_name="default")
        >>> store.arrays("train").images.shape
        (1, 28, 28)
    """

    def __init__(self, url: str | os.PathLike | None = None):
        self._url = database_url(url)
        self.url = self._url.render_as_string(hide_password=True)
        with self._database_errors("open"):
            self._engine = _create_engine(self._url)
            self._writer = self._engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            self._write(lambda connection: _TABLES.create_all(connection, checkfirst=True))

    def __repr__(self) -> str:
        return f"PhotoStore(url={self.url!r})"

    def close(self) -> None:
        """Closes the store's database connections (it reopens them if used again)."""
        self._engine.dispose()

    # --- errors and transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def _database_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except PhotoStoreError:
            raise
        except (SQLAlchemyError, OSError, ModuleNotFoundError) as error:
            if isinstance(error, NoSuchModuleError | ModuleNotFoundError):
                advice = "Install the database's driver (psycopg for PostgreSQL) or fix the URL's dialect."
            elif self._url.get_backend_name() == "sqlite":
                advice = f"Check that the file's folder can be created and written to, or set `{PHOTO_DB_ENV}`."
            else:
                advice = (
                    f"Check that the database server is running and reachable and that the URL (`{PHOTO_DB_ENV}`, "
                    "or `url` under `[connections.photos]` in `.streamlit/secrets.toml`) is right."
                )
            raise PhotoStoreError(
                f"Could not {action} the photo database: {_reason(error)}. {advice} Received: url={self.url}"
            ) from error

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one write transaction, again when it meets a lock or a concurrent duplicate."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self._writer.begin() as connection:
                    return work(connection)
            except IntegrityError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
            except DBAPIError as error:
                if not _is_retryable(error) or attempt == WRITE_ATTEMPTS - 1:
                    raise
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._database_errors("read"), self._engine.connect() as connection:
            yield connection

    # --- adding ------------------------------------------------------------------------------------

    def add(
        self,
        photo: bytes,
        label: int,
        *,
        source: Source | str = Source.UPLOAD,
        image: np.ndarray | None = None,
        probabilities: Sequence[float] | np.ndarray | None = None,
        model_name: str = "",
        origin: str = "",
        split: Split | str | None = None,
        created_at: datetime | None = None,
    ) -> PhotoRecord:
        """Stores one photo with its true class (the arguments are `new_record`'s).

        Returns:
            The stored record, with its `id`.

        Raises:
            ImageError: for a file that is not a readable photo (the upload messages).
            DuplicatePhotoError: when the same bytes are already stored (nothing changes).
            PhotoStoreError: for a bad class, image, probabilities, source or split, or a database that fails.
        """
        record = new_record(
            photo,
            label,
            source=source,
            image=image,
            probabilities=probabilities,
            model_name=model_name,
            origin=origin,
            split=split,
            created_at=created_at,
        )
        with self._database_errors("write to"):
            stored_id = self._write(lambda connection: self._insert_new(connection, record))
        return _with_id(record, stored_id)

    def _insert_new(self, connection: Connection, record: PhotoRecord) -> int:
        existing = connection.execute(select(*_SUMMARY_COLUMNS).where(PHOTOS.c.sha256 == record.sha256)).first()
        if existing is not None:
            found = _record_from_row(existing)
            raise DuplicatePhotoError(
                f"This photo is already in the store as photo #{found.id} ({found.label_name}, {found.split}); "
                f"nothing was added. Received: sha256={record.sha256}",
                found,
            )
        return connection.execute(PHOTOS.insert().values(**_row_values(record))).inserted_primary_key[0]

    def add_many(self, records: Sequence[PhotoRecord]) -> ImportResult:
        """Stores records made by `new_record` in one transaction, skipping the photos already stored.

        All are stored or none (when the database fails). Records repeating an earlier one's digest
        are skipped too. `ImportResult.duplicate_lines` holds the skipped records' positions (from 1).
        """
        with self._database_errors("write to"):
            return self._write(lambda connection: self._insert_missing(connection, records))

    def _insert_missing(self, connection: Connection, records: Sequence[PhotoRecord]) -> ImportResult:
        digests = [record.sha256 for record in records]
        stored: set[str] = set()
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            stored.update(connection.scalars(select(PHOTOS.c.sha256).where(PHOTOS.c.sha256.in_(chunk))))
        rows, skipped = [], []
        for position, record in enumerate(records, start=1):
            if record.sha256 in stored:
                skipped.append(position)
                continue
            stored.add(record.sha256)
            rows.append(_row_values(record))
        if rows:
            connection.execute(PHOTOS.insert(), rows)
        return ImportResult(added=len(rows), duplicates=len(skipped), duplicate_lines=tuple(skipped))

    # --- reading -----------------------------------------------------------------------------------

    def get(self, photo_id: int) -> PhotoRecord | None:
        """The record with this id, photo included, or `None` when there is none."""
        with self._read() as connection:
            row = connection.execute(select(PHOTOS).where(PHOTOS.c.id == int(photo_id))).first()
        return None if row is None else _record_from_row(row)

    def find(self, sha256: str) -> PhotoRecord | None:
        """The record of the photo with this SHA-256 hex digest, photo included, or `None`."""
        with self._read() as connection:
            row = connection.execute(select(PHOTOS).where(PHOTOS.c.sha256 == sha256)).first()
        return None if row is None else _record_from_row(row)

    def list_photos(
        self,
        label: int | None = None,
        split: Split | str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        with_photos: bool = False,
    ) -> list[PhotoRecord]:
        """Records in the order they were added, optionally of one class and split.

        Args:
            label: only this class. Defaults to every class.
            split: only this split. Defaults to both.
            limit: at most this many. Defaults to all.
            offset: skip this many first. Defaults to 0.
            with_photos: include the photos' bytes (without them `photo` is `None`). Defaults to `False`.
        """
        query = select(*(PHOTOS.columns if with_photos else _SUMMARY_COLUMNS))
        query = _filtered(query, label, split).order_by(PHOTOS.c.id).offset(offset).limit(limit)
        with self._read() as connection:
            return [_record_from_row(row) for row in connection.execute(query)]

    def counts(self) -> PhotoCounts:
        """Photos per split and class."""
        query = select(PHOTOS.c.split, PHOTOS.c.label, func.count()).group_by(PHOTOS.c.split, PHOTOS.c.label)
        tallies = {Split.TRAIN: [0] * NUM_CLASSES, Split.VAL: [0] * NUM_CLASSES}
        with self._read() as connection:
            for split, label, count in connection.execute(query):
                tallies[Split(split)][label] = int(count)
        return PhotoCounts(train=tuple(tallies[Split.TRAIN]), val=tuple(tallies[Split.VAL]))

    def __len__(self) -> int:
        return self.counts().total

    def arrays(self, split: Split | str | None = None) -> PhotoArrays:
        """The 28x28 images, labels and digests of one split (or all photos), in the order they were added."""
        query = _filtered(select(PHOTOS.c.image, PHOTOS.c.label, PHOTOS.c.sha256), None, split).order_by(PHOTOS.c.id)
        with self._read() as connection:
            rows = connection.execute(query).all()
        images = np.array([np.frombuffer(row.image, dtype=np.uint8) for row in rows], dtype=np.uint8)
        return PhotoArrays(
            images=images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE),
            labels=np.array([row.label for row in rows], dtype=np.int64),
            digests=tuple(row.sha256 for row in rows),
        )

    def fingerprint(self, split: Split | str | None = None) -> str:
        """`photo_set_fingerprint` of one split (or all photos); a photo added, removed or relabelled changes it."""
        query = _filtered(select(PHOTOS.c.sha256, PHOTOS.c.label), None, split)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return photo_set_fingerprint((row.sha256 for row in rows), (row.label for row in rows))

    # --- changing ----------------------------------------------------------------------------------

    def delete(self, photo_id: int) -> bool:
        """Deletes a photo; returns whether there was one with this id."""
        with self._database_errors("write to"):
            deleted = self._write(
                lambda connection: connection.execute(PHOTOS.delete().where(PHOTOS.c.id == int(photo_id))).rowcount
            )
        return deleted > 0

    def relabel(self, photo_id: int, label: int) -> bool:
        """Sets a stored photo's true class; returns whether there was one with this id."""
        label = validate_label(label)
        with self._database_errors("write to"):
            changed = self._write(
                lambda connection: (
                    connection.execute(PHOTOS.update().where(PHOTOS.c.id == int(photo_id)).values(label=label)).rowcount
                )
            )
        return changed > 0

    # --- import and export (see fashion_core.photo_import) -------------------------------------------

    def import_folder(self, folder: str | os.PathLike, **options: Any) -> ImportResult:
        """Imports a folder with a `MANIFEST.tsv` (or `photos.csv`): all its photos or none.

        See `fashion_core.photo_import.import_folder` for the manifest's columns and `options`
        (`keep_split`, `progress`).
        """
        from fashion_core.photo_import import import_folder

        return import_folder(self, folder, **options)

    def import_zip(self, archive: str | os.PathLike | bytes | io.BufferedIOBase, **options: Any) -> ImportResult:
        """Imports a zip of photos with one manifest (as `export_zip` writes it): all its photos or none.

        See `fashion_core.photo_import.import_zip`.
        """
        from fashion_core.photo_import import import_zip

        return import_zip(self, archive, **options)

    def export_zip(self, destination: str | os.PathLike | io.BufferedIOBase, split: Split | str | None = None) -> int:
        """Writes the store (or one split) as a zip that `import_zip` reads back; returns the photo count."""
        from fashion_core.photo_import import export_zip

        return export_zip(self, destination, split=split)


def _filtered(query, label: int | None, split: Split | str | None):
    if label is not None:
        query = query.where(PHOTOS.c.label == validate_label(label))
    if split is not None:
        query = query.where(PHOTOS.c.split == str(_enum(Split, split, "split")))
    return query


def _row_values(record: PhotoRecord) -> dict[str, Any]:
    return {
        "sha256": record.sha256,
        "label": record.label,
        "split": str(record.split),
        "source": str(record.source),
        "origin": record.origin[:1024],
        "model_name": record.model_name[:256],
        "probabilities": None if record.probabilities is None else list(record.probabilities),
        "created_at": record.created_at,
        "image": np.ascontiguousarray(record.image, dtype=np.uint8).tobytes(),
        "photo": record.photo,
    }


def _record_from_row(row) -> PhotoRecord:
    values = row._mapping
    probabilities = values["probabilities"]
    photo = values.get("photo")
    return PhotoRecord(
        sha256=values["sha256"],
        label=int(values["label"]),
        split=Split(values["split"]),
        source=Source(values["source"]),
        image=np.frombuffer(bytes(values["image"]), dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE),
        photo=None if photo is None else bytes(photo),
        probabilities=None if probabilities is None else tuple(float(value) for value in probabilities),
        model_name=values["model_name"],
        origin=values["origin"],
        created_at=as_utc(values["created_at"]),
        id=int(values["id"]),
    )


def _with_id(record: PhotoRecord, photo_id: int) -> PhotoRecord:
    return dataclasses.replace(record, id=int(photo_id))


# ---------------------------------------------------------------------------------------------------
# Evaluation


def evaluate_on_photos(predictor, store: PhotoStore, split: Split | str = Split.VAL) -> EvaluationReport:
    """A model's `EvaluationReport` (accuracy, per class, confusion matrix) on the store's photos of one split.

    Args:
        predictor: an object with the predictor protocol (`predict(images) -> (N, 10)` probabilities,
            `flip_average`), or a Keras model.
        store: the photo store.
        split: the photos to score. Defaults to `Split.VAL`, the photos no model trains on.

    Raises:
        PhotoStoreError: when the store has no photos in that split.
    """
    photos = store.arrays(split)
    if len(photos) == 0:
        raise PhotoStoreError(
            f"The photo store has no {Split(split)} photos to evaluate on. Save photos from the Predict page or "
            f"import some on the Photos page. Received: split={str(split)!r}, url={store.url}"
        )
    return evaluate_model(predictor, photos.images, photos.labels)


__all__ = [
    "DEFAULT_DB_PATH",
    "PHOTO_DB_ENV",
    "DuplicatePhotoError",
    "ImageError",
    "ImportResult",
    "PhotoCounts",
    "PhotoRecord",
    "PhotoStore",
    "PhotoStoreError",
    "Source",
    "Split",
    "database_url",
    "evaluate_on_photos",
    "new_record",
    "split_for_digest",
]
