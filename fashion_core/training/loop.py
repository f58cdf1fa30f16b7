"""`train(config)`: one training run from uint8 data to an evaluated model."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fashion_core.calibration import CalibrationError, calibrate_model
from fashion_core.data import NUM_CLASSES, FashionMNIST, load_fashion_mnist, stratified_subset, validation_split
from fashion_core.evaluation import EvaluationReport, evaluate_model
from fashion_core.metadata import CalibrationInfo, ModelMetadata, PhotoSetInfo
from fashion_core.models import ARCHITECTURES, ModelOptions, build_model, inference_model
from fashion_core.photo_data import PhotoArrays, load_photos, photo_set_fingerprint
from fashion_core.training.callbacks import PhotoValidation, ProgressRecorder, RestoreBestWeights, StopOnEvent
from fashion_core.training.config import TrainingConfig
from fashion_core.training.schedule import CosineSchedule, augmented_schedule, clean_phase_schedule


class TrainingFailed(RuntimeError):
    """Raised when a run cannot produce a usable model (for instance, its loss became NaN)."""


@dataclass
class TrainingResult:
    """What a finished (or stopped) run leaves: the best model, its history and its test metrics."""

    model: keras.Model
    config: TrainingConfig
    history: list[dict[str, float]]
    evaluation: EvaluationReport
    epochs_run: int
    best_epoch: int | None
    training_seconds: float
    num_train_images: int
    num_validation_images: int
    stopped_early: bool
    photos: PhotoSetInfo | None = None
    extra: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        """JSON-ready facts about the run, for `metadata.json`."""
        return {
            "config": self.config.to_dict(),
            **self.evaluation.summary(),
            "history": self.history,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "training_seconds": round(self.training_seconds, 2),
            "num_train_images": self.num_train_images,
            "num_validation_images": self.num_validation_images,
            "num_test_images": len(self.evaluation.labels),
            "stopped_early": self.stopped_early,
            **({"photos": asdict(self.photos)} if self.photos else {}),
            **self.extra,
        }


def make_dataset(
    images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None, endless: bool = False
) -> tf.data.Dataset:
    """Batches uint8 images into float32 `(B, 28, 28, 1)` and one-hot labels, one batch at a time.

    Converting per batch keeps memory at the uint8 size of the set (47 MB for the training images),
    not the 188 MB of a float32 copy.

    Args:
        images: uint8 `(N, 28, 28)`.
        labels: class indices `(N,)`.
        batch_size: images per batch; each pass ends with the smaller batch that is left.
        shuffle_seed: shuffles the images anew on each pass, by this seed; `None` keeps their order.
        endless: repeats the passes forever, each one batched and shuffled on its own (so no batch
            spans two passes), for `fit(..., steps_per_epoch=...)`: see `FitPlan.fit`.
    """
    dataset = tf.data.Dataset.from_tensor_slices((images[..., None], labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(min(len(labels), 20000), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if endless:
        dataset = dataset.repeat()
    dataset = dataset.map(
        lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(tf.cast(y, tf.int32), NUM_CLASSES)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def keras_schedule(schedule: CosineSchedule) -> keras.optimizers.schedules.CosineDecay:
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=schedule.initial,
        decay_steps=schedule.decay_steps,
        warmup_target=schedule.warmup_target,
        warmup_steps=schedule.warmup_steps,
    )


def augmented_learning_rate(config: TrainingConfig, steps_per_epoch: int):
    """The learning rate of the augmented epochs: a number, or for `"cosine"` the Keras schedule of
    `augmented_schedule`."""
    schedule = augmented_schedule(config, steps_per_epoch)
    return config.learning_rate if schedule is None else keras_schedule(schedule)


def clean_phase_learning_rate(config: TrainingConfig, steps_per_epoch: int):
    """The learning rate of the clean epochs: the Keras schedule of `clean_phase_schedule`."""
    return keras_schedule(clean_phase_schedule(config, steps_per_epoch))


def make_optimizer(config: TrainingConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The configured optimizer with its learning-rate schedule, for the augmented epochs."""
    return _optimizer(config, augmented_learning_rate(config, steps_per_epoch))


def make_clean_phase_optimizer(config: TrainingConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """A fresh optimizer for the clean epochs, at `clean_phase_learning_rate`.

    Fresh, because the clean epochs start from the best augmented epoch's weights rather than from
    where the augmented epochs' optimizer left off.
    """
    return _optimizer(config, clean_phase_learning_rate(config, steps_per_epoch))


def _optimizer(config: TrainingConfig, learning_rate) -> keras.optimizers.Optimizer:
    weight_decay = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate, weight_decay=weight_decay)


def model_options(config: TrainingConfig) -> ModelOptions:
    """What the model builder needs from a training config."""
    return ModelOptions(
        dropout=config.dropout, augment=config.augment, augment_strength=config.augment_strength, seed=config.seed
    )


def _compile(model: keras.Model, config: TrainingConfig, optimizer: keras.optimizers.Optimizer) -> keras.Model:
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def build_compiled_model(config: TrainingConfig, steps_per_epoch: int) -> keras.Model:
    """Builds and compiles the configured architecture."""
    model = build_model(config.architecture, model_options(config))
    return _compile(model, config, make_optimizer(config, steps_per_epoch))


def build_clean_phase_model(model: keras.Model, config: TrainingConfig, steps_per_epoch: int) -> keras.Model:
    """The trained model without its augmentation layers (same weights), compiled for the clean epochs."""
    clean = inference_model(model, config.architecture, model_options(config))
    return _compile(clean, config, make_clean_phase_optimizer(config, steps_per_epoch))


def schedule_callbacks(config: TrainingConfig) -> list[keras.callbacks.Callback]:
    """Early stopping and reduce-on-plateau, as configured."""
    callbacks = []
    if config.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience))
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=2, min_lr=1e-6))
    return callbacks


def split_training_data(config: TrainingConfig, data: FashionMNIST):
    """The (subset of the) training images, split into training and validation parts by the seed."""
    images, labels = stratified_subset(data.train_images, data.train_labels, config.subset_size, config.seed)
    return validation_split(images, labels, config.validation_fraction, config.seed)


def align_to_replicas(images: np.ndarray, labels: np.ndarray, num_replicas: int) -> tuple[np.ndarray, np.ndarray]:
    """Drops the last `len(labels) % num_replicas` examples so that every batch splits evenly across replicas.

    Under `MirroredStrategy`, Keras 3 averages the replicas' first batches to build the model (which
    fails when they differ in size), and a replica given an empty batch (a last batch smaller than
    the number of replicas) fails in oneDNN's convolution on CPU. With batch sizes and set sizes that
    are multiples of `num_replicas`, neither can happen; at most `num_replicas - 1` examples are lost.
    """
    usable = len(labels) - len(labels) % num_replicas
    return images[:usable], labels[:usable]


def _check_batch_size_splits(batch_size: int, num_replicas: int) -> None:
    if batch_size % num_replicas:
        raise ValueError(
            f"batch_size must be a multiple of the number of replicas ({num_replicas}) so that each replica gets "
            f"the same share of a batch; choose {batch_size - batch_size % num_replicas or num_replicas} or "
            f"{batch_size - batch_size % num_replicas + num_replicas}. Received: batch_size={batch_size}"
        )


def mixed_weights(augmented: list[np.ndarray], clean: list[np.ndarray], clean_mix: float) -> list[np.ndarray]:
    """`(1 - clean_mix) * augmented + clean_mix * clean`, weight by weight (batch-norm statistics too).

    Both come from one run (the clean epochs start from the augmented weights), so the straight line
    between them stays in one basin of the loss, where a mix of two independent runs would not.
    """
    return [((1 - clean_mix) * a + clean_mix * c).astype(a.dtype) for a, c in zip(augmented, clean, strict=True)]


def _raise_if_diverged(recorder: ProgressRecorder) -> None:
    losses = recorder.batch_loss
    if losses and not math.isfinite(losses[-1]):
        raise TrainingFailed(
            f"The training loss became {losses[-1]} at epoch {recorder.epoch + 1}, batch {recorder.batch}, "
            "so the run was stopped. Lower the learning rate or the batch size and start again."
        )


class InitModelError(ValueError):
    """Raised when `init_model` names no model, or one whose layers the run's architecture cannot take."""


# ---------------------------------------------------------------------------------------------------
# Step 1: the data


@dataclass(frozen=True)
class RunData:
    """The images a run trains on and chooses on: Fashion-MNIST's two parts, and the photos if any."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    photo_train: PhotoArrays | None = None
    photo_val: PhotoArrays | None = None

    def photo_set_info(self) -> PhotoSetInfo | None:
        """What metadata records of the photos: a fingerprint of train and val together, counts, source."""
        if self.photo_train is None or self.photo_val is None:
            return None
        train, val = self.photo_train, self.photo_val
        fingerprint = photo_set_fingerprint([*train.digests, *val.digests], [*train.labels, *val.labels])
        return PhotoSetInfo(fingerprint, train.counts_by_class_name(), val.counts_by_class_name(), train.source)


def prepare_data(config: TrainingConfig, data: FashionMNIST, num_replicas: int = 1, app_photo_store=None) -> RunData:
    """Splits Fashion-MNIST by the seed and loads the configured photos' `train` and `val` splits.

    `app_photo_store` is the `PhotoStore` that `photos="store"` means (see `load_photos`).

    Raises:
        PhotoDataError: when `config.photos` cannot be read.
        ValueError: when the batch does not split evenly across `num_replicas`.
    """
    (train_images, train_labels), (val_images, val_labels) = split_training_data(config, data)
    if num_replicas > 1:
        _check_batch_size_splits(config.batch_size, num_replicas)
        train_images, train_labels = align_to_replicas(train_images, train_labels, num_replicas)
        val_images, val_labels = align_to_replicas(val_images, val_labels, num_replicas)
    photo_train = photo_val = None
    if config.photos:
        photo_train = load_photos(config.photos, "train", app_store=app_photo_store)
        photo_val = load_photos(config.photos, "val", app_store=app_photo_store)
        if config.photo_share > 0 and not len(photo_train):
            raise ValueError(
                f"{config.photos} has no `train` photos to mix into the batches; add some or set photo_share to 0. "
                f"Received: photos={config.photos}"
            )
    return RunData(train_images, train_labels, val_images, val_labels, photo_train, photo_val)


def photos_per_batch(config: TrainingConfig) -> int:
    """How many of each batch's images are photos: `photo_share` of it, at least one when the share is set."""
    if config.photo_share <= 0 or not config.photos:
        return 0
    return min(max(1, round(config.batch_size * config.photo_share)), config.batch_size - 1)


def steps_per_epoch_for(config: TrainingConfig, run_data: RunData) -> int:
    """Steps of one epoch: one pass over the Fashion-MNIST training part (at its share of each batch)."""
    photos = photos_per_batch(config)
    if photos:
        return max(len(run_data.train_labels) // (config.batch_size - photos), 1)
    return math.ceil(len(run_data.train_labels) / config.batch_size)


def augment_photo(image: tf.Tensor, strength: float) -> tf.Tensor:
    """One photo varied at random: mirrored, zoomed (each axis on its own), shifted and re-lit.

    Args:
        image: float32 `(28, 28, 1)`, 0..255.
        strength: 0..1; at 1 the width changes by -30%..+15%, the height by -20%..+10%, shifts
            reach 3 pixels and brightness -35%..+10%.
    """
    if strength <= 0:
        return image
    image = tf.image.random_flip_left_right(image)
    height = tf.cast(tf.round(28 * tf.random.uniform([], 1 - 0.2 * strength, 1 + 0.1 * strength)), tf.int32)
    width = tf.cast(tf.round(28 * tf.random.uniform([], 1 - 0.3 * strength, 1 + 0.15 * strength)), tf.int32)
    image = tf.image.resize_with_crop_or_pad(tf.image.resize(image, tf.stack([height, width])), 28, 28)
    pad = max(1, round(3 * strength))
    image = tf.image.random_crop(tf.pad(image, [[pad, pad], [pad, pad], [0, 0]]), [28, 28, 1])
    return tf.clip_by_value(image * tf.random.uniform([], 1 - 0.35 * strength, 1 + 0.1 * strength), 0, 255)


def make_mixed_dataset(
    images: np.ndarray, labels: np.ndarray, photos: PhotoArrays, config: TrainingConfig
) -> tf.data.Dataset:
    """Batches of `photos_per_batch` augmented photos (drawn over and over), Fashion-MNIST for the rest.

    An epoch is one pass over the Fashion-MNIST images (the last incomplete batch is dropped, a
    different one each epoch as they are shuffled); the photos repeat as often as that takes. The
    passes repeat forever, as `make_dataset(..., endless=True)`'s do.
    """
    num_photos = photos_per_batch(config)
    dataset_part = (
        tf.data.Dataset.from_tensor_slices((images[..., None], labels.astype(np.int32)))
        .shuffle(min(len(labels), 20000), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size - num_photos, drop_remainder=True)
        .repeat()
    )
    photo_part = (
        tf.data.Dataset.from_tensor_slices((photos.images[..., None], photos.labels.astype(np.int32)))
        .shuffle(len(photos), seed=config.seed + 1, reshuffle_each_iteration=True)
        .repeat()
        .map(lambda x, y: (augment_photo(tf.cast(x, tf.float32), config.photo_augment), y))  # in order: seeded
        .batch(num_photos)
    )

    def joined(dataset_batch, photo_batch):
        x = tf.concat([tf.cast(dataset_batch[0], tf.float32), photo_batch[0]], axis=0)
        y = tf.concat([dataset_batch[1], photo_batch[1]], axis=0)
        return x, tf.one_hot(y, NUM_CLASSES)

    return tf.data.Dataset.zip(dataset_part, photo_part).map(joined).prefetch(tf.data.AUTOTUNE)


def make_training_dataset(config: TrainingConfig, run_data: RunData) -> tf.data.Dataset:
    """The run's training batches, endless (an epoch is `steps_per_epoch_for` batches of them).

    With photos mixed in when `photo_share` is set.
    """
    if photos_per_batch(config):
        return make_mixed_dataset(run_data.train_images, run_data.train_labels, run_data.photo_train, config)
    return make_dataset(
        run_data.train_images, run_data.train_labels, config.batch_size, shuffle_seed=config.seed, endless=True
    )


# ---------------------------------------------------------------------------------------------------
# Step 2: the model, new or from another model's weights


def resolve_init_model(reference: str) -> Path:
    """The model folder or `.keras` file `init_model` names: a path, or a model's name in the registry."""
    from fashion_core.registry import ModelRegistry, RegistryError

    path = Path(reference)
    if path.exists():
        return path
    try:
        return ModelRegistry().entry(reference).path
    except RegistryError as error:
        raise InitModelError(
            f"init_model names neither a model folder, a .keras file nor a model in the registry ({error}). "
            "Pass a model folder such as model_artifacts/default, or a model's name. "
            f"Received: init_model={reference!r}"
        ) from error


def init_model_architecture(path: Path, model: keras.Model) -> str:
    """The architecture of a starting model: from its `metadata.json`, else from the Keras model's name."""
    architecture = model.name
    if path.is_dir() and (path / "metadata.json").is_file():
        architecture = ModelMetadata.read(path).architecture
    if architecture not in ARCHITECTURES:
        raise InitModelError(
            f"init_model is not one of this app's architectures ({sorted(ARCHITECTURES)}), so it cannot be "
            f"fine-tuned here. Received: init_model={path}, architecture={architecture!r}"
        )
    return architecture


def load_init_model(config: TrainingConfig) -> tuple[TrainingConfig, keras.Model | None]:
    """Loads `config.init_model`, if any, and returns the config with that model's architecture.

    Raises:
        InitModelError: when the model cannot be found or is not of one of this app's architectures.
        RegistryError: when its file cannot be loaded.
    """
    if not config.init_model:
        return config, None
    from fashion_core.registry import load_model

    path = resolve_init_model(config.init_model)
    model = load_model(path)
    return config.replace(architecture=init_model_architecture(path, model)), model


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Each weighted layer's weights by layer name, leaving out the augmentation layers' seed states."""
    return {
        layer.name: layer.get_weights()
        for layer in model.layers
        if layer.weights and not layer.name.startswith("random_")
    }


def copy_layer_weights(target: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    """Sets each weighted layer of `target` (but the augmentation layers) from `weights`, by layer name."""
    wanted = set(layer_weights(target))
    if wanted != set(weights):
        raise InitModelError(
            "init_model's layers differ from the architecture's: it was built by another version of the app. "
            f"Received: missing={sorted(wanted - set(weights))}, unexpected={sorted(set(weights) - wanted)}"
        )
    for name in wanted:
        target.get_layer(name).set_weights(weights[name])


def build_run_model(config: TrainingConfig, steps_per_epoch: int, init_model: keras.Model | None) -> keras.Model:
    """The compiled training model: new, or holding `init_model`'s weights (call under the strategy's scope)."""
    model = build_compiled_model(config, steps_per_epoch)
    if init_model is not None:
        copy_layer_weights(model, layer_weights(init_model))
    return model


# ---------------------------------------------------------------------------------------------------
# Steps 3 and 4: the augmented epochs, then the clean ones


@dataclass
class FitPlan:
    """What every phase's `fit` shares: the batches, the callbacks that watch the run, and verbosity."""

    train_dataset: tf.data.Dataset  # endless: the recorder's `steps_per_epoch` batches make an epoch
    val_dataset: tf.data.Dataset
    recorder: ProgressRecorder
    best: RestoreBestWeights
    stopper: StopOnEvent
    watchers: list[keras.callbacks.Callback]  # the photo-val scorer first, then the recorder, ...
    user_callbacks: list[keras.callbacks.Callback]
    verbose: int = 0

    def fit(self, model: keras.Model, epochs: int, initial_epoch: int = 0, schedule=()) -> None:
        """`model.fit` over the plan's batches, reading them through one iterator for all its epochs.

        Keras makes a new iterator of a finite dataset at each epoch's start (and one more at each
        epoch's end, which the next start replaces), and each one destroyed waits for its
        background threads and refills the shuffle buffer. An endless dataset with
        `steps_per_epoch` keeps one iterator for the whole `fit`.
        """
        model.fit(
            self.train_dataset,
            steps_per_epoch=self.recorder.steps_per_epoch,
            validation_data=self.val_dataset,
            initial_epoch=initial_epoch,
            epochs=epochs,
            callbacks=[*self.watchers, *schedule, *self.user_callbacks],
            shuffle=False,  # the dataset shuffles itself, by the seed
            verbose=self.verbose,
        )
        _raise_if_diverged(self.recorder)


def make_fit_plan(
    config: TrainingConfig,
    run_data: RunData,
    steps_per_epoch: int,
    num_replicas: int,
    recorder: ProgressRecorder | None,
    stop_event: threading.Event | None,
    callbacks: list[keras.callbacks.Callback] | None,
    verbose: int,
) -> FitPlan:
    """The datasets and callbacks of a run (the photo-val scorer only when there are `val` photos)."""
    recorder = recorder or ProgressRecorder(config.epochs, steps_per_epoch, config.batch_size)
    recorder.epochs, recorder.steps_per_epoch, recorder.batch_size = config.epochs, steps_per_epoch, config.batch_size
    best, stopper = RestoreBestWeights(), StopOnEvent(stop_event or threading.Event())
    watchers = [recorder, keras.callbacks.TerminateOnNaN(), stopper, best]
    if run_data.photo_val is not None and len(run_data.photo_val):
        flips = ModelMetadata(config=config.to_dict()).trained_with_flips  # score the photos as the app will
        watchers.insert(0, PhotoValidation(run_data.photo_val.images, run_data.photo_val.labels, flips))
    val_dataset = make_dataset(
        run_data.val_images, run_data.val_labels, 512 // num_replicas * num_replicas, shuffle_seed=None
    )
    train_dataset = make_training_dataset(config, run_data)
    return FitPlan(train_dataset, val_dataset, recorder, best, stopper, watchers, callbacks or [], verbose)


def run_augmented_phase(model: keras.Model, config: TrainingConfig, plan: FitPlan) -> int:
    """The augmented epochs (all of them without clean ones); the best epoch's weights end in `model`.

    Returns:
        The number of epochs that ran.
    """
    plan.fit(model, config.augmented_epochs, schedule=schedule_callbacks(config))
    return len(plan.recorder.epoch_logs)


def run_clean_phase(
    model: keras.Model, config: TrainingConfig, plan: FitPlan, epochs_done: int, strategy: tf.distribute.Strategy
) -> tuple[keras.Model, list[np.ndarray]]:
    """The clean epochs, from the best augmented epoch, on the network without its augmentation layers.

    Returns:
        `(model, augmented_weights)`: the clean network holding its best epoch's weights, and the
        best augmented epoch's weights as that network holds them (for `clean_mix`).
    """
    with strategy.scope():
        model = build_clean_phase_model(model, config, plan.recorder.steps_per_epoch)
    augmented_weights = model.get_weights()
    plan.recorder.continue_in_next_fit()
    plan.best.continue_in_next_fit(augmented_weights)
    # early stopping and reduce-on-plateau end with the augmentation
    plan.fit(model, epochs_done + config.final_clean_epochs, initial_epoch=epochs_done)
    return model, augmented_weights


# ---------------------------------------------------------------------------------------------------
# Step 5: the final weights


def mix_final_weights(
    model: keras.Model,
    config: TrainingConfig,
    augmented_weights: list[np.ndarray] | None,
    start_weights: dict[str, list[np.ndarray]] | None,
) -> None:
    """Moves `model`'s weights toward the best augmented epoch's (`clean_mix`) and the starting model's (`init_mix`).

    Args:
        model: the trained model, changed in place.
        config: the run's config.
        augmented_weights: the best augmented epoch's weights when clean epochs ran, else `None`.
        start_weights: the `init_model`'s weights by layer name when fine-tuning, else `None`.
    """
    if augmented_weights is not None and config.clean_mix < 1:
        model.set_weights(mixed_weights(augmented_weights, model.get_weights(), config.clean_mix))
    if start_weights is not None and config.init_mix < 1:
        for name, weights in layer_weights(model).items():
            model.get_layer(name).set_weights(mixed_weights(start_weights[name], weights, config.init_mix))


# ---------------------------------------------------------------------------------------------------
# Step 6: calibration


def calibrate_step(
    model: keras.Model,
    config: TrainingConfig,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[keras.Model, CalibrationInfo | None]:
    """The trained model with a temperature fitted on the validation split folded into its last layer.

    T is fitted on the probabilities as the app will predict them: flip-averaged for a model trained
    with flips (see `fashion_core.calibration`). The test set plays no part. A run without validation
    images, or a model that does not end in a softmax Dense layer, is returned as it is, with `None`.
    """
    if len(val_labels) == 0:
        return model, None
    flip_average = ModelMetadata(config=config.to_dict()).trained_with_flips
    fitted_on = f"validation split ({len(val_labels)} images{', flip-averaged' if flip_average else ''})"
    try:
        with (strategy or tf.distribute.get_strategy()).scope():
            return calibrate_model(model, val_images, val_labels, flip_average, fitted_on)
    except CalibrationError:
        return model, None


# ---------------------------------------------------------------------------------------------------
# Step 7: evaluation


def evaluate_run(
    model: keras.Model,
    config: TrainingConfig,
    data: FashionMNIST,
    run_data: RunData,
    plan: FitPlan,
    training_seconds: float,
    calibration: CalibrationInfo | None = None,
) -> TrainingResult:
    """Test metrics (only reported, never used to choose), validation and photo-val accuracy, as the app predicts."""
    evaluation = evaluate_model(model, data.test_images, data.test_labels)
    history = list(plan.recorder.snapshot().epoch_logs)
    flips = ModelMetadata(config=config.to_dict()).trained_with_flips
    extra = {} if calibration is None else {"calibration": asdict(calibration)}
    if len(run_data.val_labels):
        validation = evaluate_model(model, run_data.val_images, run_data.val_labels)
        extra["validation_accuracy"] = round(validation.accuracy, 6)
    if flips:  # what the app reports for such a model
        flip_averaged = evaluate_model(model, data.test_images, data.test_labels, flip_average=True)
        extra["test_accuracy_flip_average"] = round(flip_averaged.accuracy, 6)
        flip_averaged_validation = evaluate_model(model, run_data.val_images, run_data.val_labels, flip_average=True)
        extra["validation_accuracy_flip_average"] = round(flip_averaged_validation.accuracy, 6)
    if run_data.photo_val is not None and len(run_data.photo_val):
        photos = evaluate_model(model, run_data.photo_val.images, run_data.photo_val.labels, flip_average=flips)
        extra["photo_val_accuracy"] = round(photos.accuracy, 6)
    best_epoch = plan.best.best_epoch
    return TrainingResult(
        model=model,
        config=config,
        history=history,
        evaluation=evaluation,
        epochs_run=len(history),
        best_epoch=None if best_epoch is None else best_epoch + 1,
        training_seconds=training_seconds,
        num_train_images=len(run_data.train_labels),
        num_validation_images=len(run_data.val_labels),
        stopped_early=plan.stopper.stopped_by_request or len(history) < config.epochs,
        photos=run_data.photo_set_info(),
        extra=extra,
    )


def train(
    config: TrainingConfig,
    callbacks: list[keras.callbacks.Callback] | None = None,
    data: FashionMNIST | None = None,
    stop_event: threading.Event | None = None,
    recorder: ProgressRecorder | None = None,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int = 0,
    app_photo_store=None,
) -> TrainingResult:
    """Trains a model as configured, keeps its best validation epoch, and evaluates it on the test set.

    The steps: the data (`prepare_data`), the model, new or from `init_model` (`build_run_model`),
    the augmented epochs (`run_augmented_phase`), the clean epochs (`run_clean_phase`), the final
    weights (`mix_final_weights`), calibration (`calibrate_step`) and the evaluation
    (`evaluate_run`). The test set is only evaluated, never used to choose: the best epoch is
    chosen on the validation split of the training images.

    Args:
        config: the run's hyperparameters.
        callbacks: extra Keras callbacks. Defaults to none.
        data: the dataset. Defaults to `load_fashion_mnist()`.
        stop_event: set it from another thread to stop after the current batch; the run then
            restores its best weights and is evaluated as usual. Defaults to none.
        recorder: a `ProgressRecorder` to fill (one is made if not given).
        strategy: a `tf.distribute` strategy to build and train under. Defaults to the default one.
        verbose: Keras' fit verbosity (1 shows a progress bar). Defaults to 0.
        app_photo_store: the `PhotoStore` that `config.photos="store"` means, where the app opened
            its own. Defaults to the one `$FASHION_STUDIO_PHOTO_DB` names, else the default file.

    Returns:
        A `TrainingResult`; with `init_model`, its config carries the starting model's architecture.

    Raises:
        TrainingFailed: when the loss became NaN or infinite.
        DatasetError: when the dataset is missing.
        PhotoDataError: when `config.photos` cannot be read.
        InitModelError: when `config.init_model` names no usable model.
    """
    data = data or load_fashion_mnist()
    keras.utils.set_random_seed(config.seed)
    strategy = strategy or tf.distribute.get_strategy()
    config, init_model = load_init_model(config)
    run_data = prepare_data(config, data, strategy.num_replicas_in_sync, app_photo_store)
    steps_per_epoch = steps_per_epoch_for(config, run_data)
    with strategy.scope():
        model = build_run_model(config, steps_per_epoch, init_model)
    start_weights = layer_weights(model) if init_model is not None else None
    plan = make_fit_plan(
        config, run_data, steps_per_epoch, strategy.num_replicas_in_sync, recorder, stop_event, callbacks, verbose
    )

    started = time.perf_counter()
    epochs_done = run_augmented_phase(model, config, plan)
    augmented_weights = None
    if config.final_clean_epochs and epochs_done and not plan.stopper.stopped_by_request:
        model, augmented_weights = run_clean_phase(model, config, plan, epochs_done, strategy)
    mix_final_weights(model, config, augmented_weights, start_weights)
    training_seconds = time.perf_counter() - started
    model, calibration = calibrate_step(model, config, run_data.val_images, run_data.val_labels, strategy)

    return evaluate_run(model, config, data, run_data, plan, training_seconds, calibration)
