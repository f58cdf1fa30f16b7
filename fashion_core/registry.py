"""The model registry: the shipped model plus user models, each a folder with two files.

A model is `NAME/model.keras` and `NAME/metadata.json`. Saving writes both into a hidden temporary
folder and then renames that folder into place, so a save killed at any moment leaves either no
model of that name or a complete one. A name is taken once: a second save under it is refused
rather than overwriting, which also gives two concurrent saves one clear winner.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fashion_core.metadata import MetadataError, ModelMetadata

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS_DIR = PROJECT_ROOT / "model_artifacts"
DEFAULT_MODEL_NAME = "default"
USER_MODELS_ENV = "FASHION_STUDIO_MODELS_DIR"
MODEL_FILE = "model.keras"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STAGING_PREFIXES = (".saving-", ".deleted-", ".replaced-")
STALE_STAGING_SECONDS = 3600

logger = logging.getLogger(__name__)


class RegistryError(ValueError):
    """Raised for a bad model name, a name already taken, or a missing or corrupt artifact."""


def user_models_dir() -> Path:
    """Where user models are saved: `$FASHION_STUDIO_MODELS_DIR`, else `user_models/` (git-ignored)."""
    return Path(os.environ.get(USER_MODELS_ENV) or PROJECT_ROOT / "user_models")


def validate_name(name: str) -> str:
    """Returns `name` if it is 1-64 letters, digits, `-` or `_`; raises `RegistryError` otherwise.

    This also keeps names from reaching outside the registry folder (`../x`, `/etc`, ``).
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise RegistryError(
            f"A model name is 1 to 64 letters, digits, '-' or '_' (no spaces, dots or slashes). Received: name={name!r}"
        )
    return name


@dataclass(frozen=True)
class ModelEntry:
    """One model folder: readable (with its metadata) or unreadable (with the reason)."""

    name: str
    path: Path
    shipped: bool
    metadata: ModelMetadata = field(default_factory=ModelMetadata)
    error: str | None = None

    @property
    def readable(self) -> bool:
        return self.error is None

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def size_bytes(self) -> int:
        return self.model_file.stat().st_size if self.model_file.is_file() else 0


def read_metadata(path: Path) -> ModelMetadata:
    """Reads `path/metadata.json`; raises `RegistryError` if it is missing or not a JSON object."""
    try:
        return ModelMetadata.read(path)
    except MetadataError as error:
        raise RegistryError(str(error)) from error


def inspect_model_dir(path: Path, shipped: bool = False) -> ModelEntry:
    """Describes one model folder without loading the model; problems become the entry's `error`."""
    path = Path(path)
    try:
        if not (path / MODEL_FILE).is_file():
            raise RegistryError(f"{path / MODEL_FILE} is missing.")
        metadata = read_metadata(path)
        return ModelEntry(name=path.name, path=path, shipped=shipped, metadata=metadata)
    except (RegistryError, OSError) as error:
        return ModelEntry(name=path.name, path=path, shipped=shipped, error=str(error))


def load_model(path: str | os.PathLike):
    """Loads a `.keras` model (a file or a model folder) with `safe_mode=True`.

    Raises:
        RegistryError: when the file is missing, not a Keras archive, or does not fit the contract.
        KerasBackendError: when Keras is set to another backend than TensorFlow.
    """
    from fashion_core.models import require_tensorflow_backend  # its import refuses another backend before Keras

    require_tensorflow_backend()
    import keras

    path = Path(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise RegistryError(f"No model file at {model_file}. Train one, or pick another model.")
    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many kinds for a bad archive
        raise RegistryError(
            f"{model_file} could not be loaded ({type(error).__name__}: {error}). It is corrupt or not a "
            "Keras 3 model; delete it and save it again."
        ) from error
    if tuple(model.input_shape[1:]) != (28, 28, 1) or tuple(model.output_shape[1:]) != (10,):
        raise RegistryError(
            f"{model_file} takes {model.input_shape} and gives {model.output_shape}; a Fashion-MNIST Studio "
            "model takes (None, 28, 28, 1) and gives (None, 10)."
        )
    return model


class ModelRegistry:
    """Lists, loads, saves and deletes models in the shipped and user folders.

    Args:
        user_dir: the folder of user models. Defaults to `user_models_dir()`.
        shipped_dir: the folder with the shipped `default` model. Defaults to `model_artifacts/`.
    """

    def __init__(self, user_dir: str | os.PathLike | None = None, shipped_dir: str | os.PathLike | None = None):
        self.user_dir = Path(user_dir) if user_dir is not None else user_models_dir()
        self.shipped_dir = Path(shipped_dir) if shipped_dir is not None else SHIPPED_MODELS_DIR

    def default_entry(self) -> ModelEntry:
        return inspect_model_dir(self.shipped_dir / DEFAULT_MODEL_NAME, shipped=True)

    def list_models(self) -> list[ModelEntry]:
        """The shipped default first, then user models by name; unreadable ones are listed with why."""
        entries = [self.default_entry()]
        try:
            folders = sorted(p for p in self.user_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        except FileNotFoundError:
            folders = []
        except OSError as error:
            raise RegistryError(
                f"The user models folder {self.user_dir} cannot be read ({error}). Fix its permissions or set "
                f"{USER_MODELS_ENV} to another folder."
            ) from error
        entries += [inspect_model_dir(folder) for folder in folders if folder.name != DEFAULT_MODEL_NAME]
        return entries

    def entry(self, name: str) -> ModelEntry:
        """The entry of one model by name; raises `RegistryError` if there is none."""
        if name == DEFAULT_MODEL_NAME:
            return self.default_entry()
        path = self.user_dir / validate_name(name)
        if not path.is_dir():
            raise RegistryError(f"There is no model named {name!r}. Pick one from the list of models.")
        return inspect_model_dir(path)

    def load(self, name: str):
        """Loads the named model (safe mode)."""
        entry = self.entry(name)
        if not entry.readable:
            raise RegistryError(f"Model {name!r} is unreadable: {entry.error}")
        return load_model(entry.path)

    def save(self, name: str, model, metadata: ModelMetadata | dict) -> ModelEntry:
        """Saves a model under a new name, atomically.

        Raises:
            RegistryError: for an invalid name, the shipped name, or a name already taken.
        """
        validate_name(name)
        if name == DEFAULT_MODEL_NAME:
            raise RegistryError(
                f"{DEFAULT_MODEL_NAME!r} is the shipped model and cannot be overwritten; choose another name."
            )
        target = self.user_dir / name
        if target.exists():
            raise RegistryError(f"A model named {name!r} already exists; choose another name or delete it first.")
        self.user_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(self.user_dir)
        staging = write_model_dir(self.user_dir, model, metadata)
        try:
            publish_dir(staging, target)
        except FileExistsError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise RegistryError(
                f"A model named {name!r} was saved by someone else a moment ago; choose another name."
            ) from error
        return inspect_model_dir(target)

    def delete(self, name: str) -> None:
        """Deletes a user model; the shipped default cannot be deleted."""
        if name == DEFAULT_MODEL_NAME:
            raise RegistryError(f"{DEFAULT_MODEL_NAME!r} is the shipped model and cannot be deleted.")
        path = self.user_dir / validate_name(name)
        if not path.is_dir():
            raise RegistryError(f"There is no model named {name!r} to delete.")
        trash = self.user_dir / f".deleted-{name}-{uuid.uuid4().hex}"
        path.rename(trash)  # one atomic step: the name is gone at once, then the files
        shutil.rmtree(trash, ignore_errors=True)


def remove_stale_staging(parent: Path, older_than_seconds: float = STALE_STAGING_SECONDS) -> None:
    """Deletes hidden folders left by saves or deletes that were killed half way.

    Only folders older than `older_than_seconds` go, so a save in progress elsewhere is untouched.
    """
    now = time.time()
    for folder in parent.glob(".*-*"):
        if folder.name.startswith(STAGING_PREFIXES) and now - folder.stat().st_mtime > older_than_seconds:
            shutil.rmtree(folder, ignore_errors=True)


def without_optimizer(model):
    """The model without its optimizer state, which would triple the file and is never used again."""
    if getattr(model, "optimizer", None) is None:
        return model
    # Rebuilt from its config: `clone_model` would compile the copy with the same optimizer.
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def model_to_save(model, metadata: ModelMetadata):
    """What is written to disk: for our architectures, the model without augmentation layers.

    A model of another origin is saved as it is, less its optimizer state.
    """
    from fashion_core.models import ARCHITECTURES, ModelOptions, inference_model

    config = metadata.config
    if config.get("architecture") in ARCHITECTURES:
        options = ModelOptions(dropout=config.get("dropout", 0.3), seed=config.get("seed", 0))
        try:
            return inference_model(model, config["architecture"], options)
        except ValueError:  # the layers differ from today's builder: keep the model as it is
            pass
    return without_optimizer(model)


def as_metadata(metadata: ModelMetadata | dict) -> ModelMetadata:
    """`metadata` as the typed record (a dict is read with `ModelMetadata.from_dict`)."""
    return metadata if isinstance(metadata, ModelMetadata) else ModelMetadata.from_dict(metadata)


def write_model_dir(parent: Path, model, metadata: ModelMetadata | dict) -> Path:
    """Writes a model folder into a new hidden folder under `parent` and returns it.

    The folder gets `model.keras`, `metadata.json`, and what `artifacts.prepare_model_dir` adds: the
    checked LiteRT export and the stored test-set predictions (skipped without the dataset).
    """
    import keras

    from fashion_core.artifacts import prepare_model_dir

    metadata = as_metadata(metadata)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a published model is readable like any folder
    model_file = staging / MODEL_FILE
    saved_model = model_to_save(model, metadata)
    saved_model.save(model_file)
    metadata = metadata.replace(
        tensorflow_version=_tensorflow_version(),
        keras_version=keras.__version__,
        parameter_count=int(model.count_params()),
        architecture=model.name if metadata.architecture == "unknown" else metadata.architecture,
        created_at=metadata.created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        size_bytes=model_file.stat().st_size,
    )
    metadata.write(staging)
    for problem in prepare_model_dir(staging, model=saved_model).problems:
        logger.warning("Saving %s: %s", metadata.architecture, problem)
    for file in staging.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    return staging


def publish_dir(staging: Path, target: Path) -> None:
    """Renames a complete staging folder to `target`; raises `FileExistsError` if `target` exists.

    `rename(2)` onto an existing non-empty folder fails, so of two saves racing for one name
    exactly one wins, with no window in which a half-written folder carries the name.
    """
    try:
        os.rename(staging, target)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(str(target)) from error
        raise


def save_model_dir(path: str | os.PathLike, model, metadata: ModelMetadata | dict, replace: bool = False) -> Path:
    """Saves a model folder at any path (the CLI's `--out`), atomically.

    With `replace=True` an existing folder is swapped out: the old one is renamed aside first and
    removed only once the new one is in place.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not replace:
        raise RegistryError(f"{target} already exists; pass replace=True (CLI: --overwrite) to replace it.")
    staging = write_model_dir(target.parent, model, metadata)
    old = None
    if target.exists():
        old = target.parent / f".replaced-{target.name}-{uuid.uuid4().hex}"
        target.rename(old)
    os.rename(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _tensorflow_version() -> str:
    try:
        import tensorflow as tf

        return tf.__version__
    except ImportError:
        return "unknown"
