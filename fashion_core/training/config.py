"""`TrainingConfig`: every choice a training run makes, validated up front."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from fashion_core.models import ARCHITECTURES

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("none", "cosine", "plateau")
DISTRIBUTE_MODES = ("none", "mirrored", "multiworker")
MAX_TRAIN_IMAGES = 60000


@dataclass(frozen=True)
class Bounds:
    """The allowed closed range of a numeric field."""

    low: float
    high: float


FIELD_BOUNDS = {
    "epochs": Bounds(1, 200),
    "batch_size": Bounds(8, 1024),
    "learning_rate": Bounds(1e-5, 1.0),
    "dropout": Bounds(0.0, 0.8),
    "augment_strength": Bounds(0.0, 1.0),
    "clean_epochs": Bounds(0, 50),
    "clean_mix": Bounds(0.0, 1.0),
    "label_smoothing": Bounds(0.0, 0.3),
    "weight_decay": Bounds(0.0, 0.1),
    "patience": Bounds(0, 100),
    "validation_fraction": Bounds(0.02, 0.5),
    "subset_size": Bounds(100, MAX_TRAIN_IMAGES),
    "seed": Bounds(0, 2**31 - 1),
    "photo_share": Bounds(0.0, 0.5),
    "photo_augment": Bounds(0.0, 1.0),
    "init_mix": Bounds(0.0, 1.0),
}
CHOICES = {"architecture": tuple(ARCHITECTURES), "optimizer": OPTIMIZERS, "schedule": SCHEDULES}


@dataclass(frozen=True)
class TrainingConfig:
    """A training run's hyperparameters; invalid values raise `ValueError` on construction.

    Args:
        architecture: one of `fashion_core.models.ARCHITECTURES`. Defaults to `"cnn"`.
        epochs: maximum number of passes over the training images. Defaults to 40.
        batch_size: images per step. Defaults to 128.
        learning_rate: peak learning rate. Defaults to 3e-3.
        optimizer: `"adam"`, `"sgd"` (with Nesterov momentum 0.9) or `"rmsprop"`. Defaults to `"adam"`.
        dropout: dropout rate of the classifier. Defaults to 0.3.
        augment: whether to train with random augmentation layers. Defaults to `True`.
        augment_strength: 0..1, how strong the augmentation is. Defaults to 0.4.
        clean_epochs: how many of the last epochs train on the images as they are, without
            augmentation, from the best augmented epoch, at a tenth of the learning rate decaying to
            zero. Augmentation teaches the network to cope with shifted, mirrored and partly hidden
            garments; these last passes then fit it to the dataset's own images. Ignored without
            augmentation; must be less than `epochs`. Defaults to 0 (the Best preset uses 4).
        clean_mix: 0..1, where between the best augmented epoch's weights (0) and the best clean
            epoch's (1) the final weights lie. The clean epochs fit the dataset's images better, the
            augmented weights cope better with shifted, squeezed or partly hidden garments (real
            photos); averaging the two weights keeps most of both (Wortsman et al. 2022, "Robust
            fine-tuning of zero-shot models"). Defaults to 1 (the Best preset uses 0.5).
        label_smoothing: 0..0.3, softens the one-hot targets. Defaults to 0.1.
        weight_decay: 0..0.1, shrinks every weight by `learning_rate * weight_decay` each step
            (decoupled weight decay). Defaults to 0.
        patience: epochs without validation improvement before stopping early; 0 turns early
            stopping off. Defaults to 0.
        schedule: `"none"`, `"cosine"` (one warm-up epoch, then cosine decay) or `"plateau"`
            (reduce on plateau). Defaults to `"cosine"`.
        validation_fraction: share of the training images held out to validate and to choose the
            best epoch (the test set is never used to choose). Defaults to 0.1.
        subset_size: number of training images to use, before the validation split, stratified.
            Defaults to 60000 (all).
        seed: seeds the split, the shuffling, the weights and the augmentation. Defaults to 0.
        photos: labelled real photos to train on and to watch: a folder with a `MANIFEST.tsv` (like
            `../shared/realphotos-cc0`), `"store"` for the app's photo store, or a photo store's
            SQLAlchemy URL (see `fashion_core.photo_data.load_photos`). Their `train` photos go
            into the batches (see `photo_share`), their `val` photos are scored after every epoch
            (`photo_val_accuracy` in the history). The best epoch is still chosen on the
            Fashion-MNIST validation split. Defaults to `""` (no photos).
        photo_share: 0..0.5, the share of each batch drawn from the `train` photos (sampled with
            replacement, so a small set is seen many times); the rest are Fashion-MNIST images, and
            an epoch is one pass over those. 0 with `photos` set only watches the `val` photos.
            Defaults to 0.
        photo_augment: 0..1, how strongly the photos are varied on top of the model's own
            augmentation: mirroring, shifts, zoom and brightness, so that a few hundred photos are
            not learnt by heart. Defaults to 0.5.
        init_model: start from this model's weights instead of random ones (fine-tuning): a model
            folder, a `.keras` file or the name of a model in the registry (`"default"` is the
            shipped one). Its architecture replaces `architecture`. Defaults to `""` (from scratch).
        init_mix: 0..1, where between the `init_model`'s weights (0) and the fine-tuned ones (1)
            the final weights lie; below 1 keeps more of what the starting model knew (robust
            fine-tuning, Wortsman et al. 2022). Ignored without `init_model`. Defaults to 1.
    """

    architecture: str = "cnn"
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 3e-3
    optimizer: str = "adam"
    dropout: float = 0.3
    augment: bool = True
    augment_strength: float = 0.4
    clean_epochs: int = 0
    clean_mix: float = 1.0
    label_smoothing: float = 0.1
    weight_decay: float = 0.0
    patience: int = 0
    schedule: str = "cosine"
    validation_fraction: float = 0.1
    subset_size: int = MAX_TRAIN_IMAGES
    seed: int = 0
    photos: str = ""
    photo_share: float = 0.0
    photo_augment: float = 0.5
    init_model: str = ""
    init_mix: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}. Received: {name}={value!r}")
        for name, bounds in FIELD_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(
                    f"{name} must be a number in [{bounds.low}, {bounds.high}]. Received: {name}={value!r}"
                )
            if not bounds.low <= value <= bounds.high:
                raise ValueError(f"{name} must be in [{bounds.low}, {bounds.high}]. Received: {name}={value!r}")
        for name in ("epochs", "clean_epochs", "batch_size", "patience", "subset_size", "seed"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be a whole number. Received: {name}={getattr(self, name)!r}")
        for name in ("photos", "init_model"):
            if not isinstance(getattr(self, name), str):
                received = getattr(self, name)
                raise ValueError(f"{name} must be a text (a path, URL or name). Received: {name}={received!r}")
        if self.photo_share > 0 and not self.photos:
            raise ValueError(
                "photo_share mixes photos into the batches, so it needs photos: set photos to a photo folder or "
                f"a photo store URL, or set photo_share to 0. Received: photo_share={self.photo_share}, photos=''"
            )
        if not isinstance(self.augment, bool):
            raise ValueError(f"augment must be True or False. Received: augment={self.augment!r}")
        if self.augments and self.clean_epochs >= self.epochs:
            raise ValueError(
                "clean_epochs must be less than epochs, so that at least one epoch trains with augmentation; "
                f"lower clean_epochs or raise epochs. Received: clean_epochs={self.clean_epochs}, epochs={self.epochs}"
            )

    @property
    def augments(self) -> bool:
        """Whether the run trains with augmentation layers (on, at a strength above zero)."""
        return self.augment and self.augment_strength > 0

    @property
    def augmented_epochs(self) -> int:
        """Epochs trained with augmentation: all of them, less the clean ones at the end."""
        return self.epochs - self.clean_epochs if self.augments else self.epochs

    @property
    def final_clean_epochs(self) -> int:
        """Epochs trained at the end without augmentation, from the best augmented epoch (0 without augmentation)."""
        return self.epochs - self.augmented_epochs

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-ready values (without `extra`)."""
        values = dataclasses.asdict(self)
        values.pop("extra")
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Builds a config from `to_dict()` output, ignoring keys it does not know."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{key: value for key, value in values.items() if key in known})

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, TrainingConfig] = {
    # Under a minute on two CPU cores: the small CNN, three passes, no augmentation. Light dropout,
    # because three passes underfit rather than overfit (docs/model-card.md, "Presets").
    "Quick": TrainingConfig(
        architecture="small_cnn",
        epochs=3,
        batch_size=128,
        learning_rate=4e-3,
        dropout=0.15,
        augment=False,
        label_smoothing=0.1,
        schedule="cosine",
        validation_fraction=0.05,
    ),
    # About a quarter of an hour on two cores: the default CNN for a few epochs.
    "Standard": TrainingConfig(architecture="cnn", epochs=8, augment_strength=0.3),
    # The shipped model's recipe (about 55 minutes on two cores): 36 augmented epochs, 4 on the images
    # as they are, and the final weights halfway between the best of each (docs/model-card.md).
    "Best": TrainingConfig(clean_epochs=4, clean_mix=0.5),
}
