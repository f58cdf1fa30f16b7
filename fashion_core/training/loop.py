"""`train(config)`: one training run from uint8 data to an evaluated model."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from fashion_core.data import NUM_CLASSES, FashionMNIST, load_fashion_mnist, stratified_subset, validation_split
from fashion_core.evaluation import EvaluationReport, evaluate_model
from fashion_core.metadata import ModelMetadata
from fashion_core.models import ModelOptions, build_model, inference_model
from fashion_core.training.callbacks import ProgressRecorder, RestoreBestWeights, StopOnEvent
from fashion_core.training.config import TrainingConfig


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
            **self.extra,
        }


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
    """Batches uint8 images into float32 `(B, 28, 28, 1)` and one-hot labels, one batch at a time.

    Converting per batch keeps memory at the uint8 size of the set (47 MB for the training images),
    not the 188 MB of a float32 copy.
    """
    dataset = tf.data.Dataset.from_tensor_slices((images[..., None], labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(min(len(labels), 20000), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(tf.cast(y, tf.int32), NUM_CLASSES)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def warmup_steps_for(epochs: int, steps_per_epoch: int) -> int:
    """Steps of linear learning-rate warm-up before the cosine decay: one epoch, at most a tenth of the run.

    Warm-up keeps the first large steps of a fresh batch-norm network from overshooting; a short run
    (the Quick preset's three epochs) cannot spend a whole epoch of its budget on it.
    """
    return min(steps_per_epoch, epochs * steps_per_epoch // 10)


def augmented_learning_rate(config: TrainingConfig, steps_per_epoch: int):
    """The learning rate of the augmented epochs: a number, or a schedule of the step for `"cosine"`.

    The cosine decays to zero at the end of the augmented epochs, so that the best augmented epoch
    (which the clean epochs start from) comes from a settled network.
    """
    if config.schedule != "cosine":
        return config.learning_rate
    warmup_steps = warmup_steps_for(config.augmented_epochs, steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate if warmup_steps == 0 else config.learning_rate / 10,
        decay_steps=max(config.augmented_epochs * steps_per_epoch - warmup_steps, 1),
        warmup_target=None if warmup_steps == 0 else config.learning_rate,
        warmup_steps=warmup_steps,
    )


def clean_phase_learning_rate(config: TrainingConfig, steps_per_epoch: int):
    """The learning rate of the clean epochs: a tenth of the peak, cosine-decayed to zero over them."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10,
        decay_steps=max(config.final_clean_epochs * steps_per_epoch, 1),
    )


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


def train(
    config: TrainingConfig,
    callbacks: list[keras.callbacks.Callback] | None = None,
    data: FashionMNIST | None = None,
    stop_event: threading.Event | None = None,
    recorder: ProgressRecorder | None = None,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int = 0,
) -> TrainingResult:
    """Trains a model as configured, keeps its best validation epoch, and evaluates it on the test set.

    The test set is only evaluated, never used to choose: the best epoch is chosen on the
    validation split of the training images.

    Args:
        config: the run's hyperparameters.
        callbacks: extra Keras callbacks. Defaults to none.
        data: the dataset. Defaults to `load_fashion_mnist()`.
        stop_event: set it from another thread to stop after the current batch; the run then
            restores its best weights and is evaluated as usual. Defaults to none.
        recorder: a `ProgressRecorder` to fill (one is made if not given).
        strategy: a `tf.distribute` strategy to build and train under. Defaults to the default one.
        verbose: Keras' fit verbosity (1 shows a progress bar). Defaults to 0.

    Returns:
        A `TrainingResult`.

    Raises:
        TrainingFailed: when the loss became NaN or infinite.
        DatasetError: when the dataset is missing.
    """
    data = data or load_fashion_mnist()
    keras.utils.set_random_seed(config.seed)
    strategy = strategy or tf.distribute.get_strategy()
    num_replicas = strategy.num_replicas_in_sync
    (train_images, train_labels), (val_images, val_labels) = split_training_data(config, data)
    if num_replicas > 1:
        _check_batch_size_splits(config.batch_size, num_replicas)
        train_images, train_labels = align_to_replicas(train_images, train_labels, num_replicas)
        val_images, val_labels = align_to_replicas(val_images, val_labels, num_replicas)
    steps_per_epoch = math.ceil(len(train_labels) / config.batch_size)
    with strategy.scope():
        model = build_compiled_model(config, steps_per_epoch)

    recorder = recorder or ProgressRecorder(config.epochs, steps_per_epoch, config.batch_size)
    recorder.epochs, recorder.steps_per_epoch, recorder.batch_size = config.epochs, steps_per_epoch, config.batch_size
    best = RestoreBestWeights()
    nan_guard = keras.callbacks.TerminateOnNaN()
    stopper = StopOnEvent(stop_event or threading.Event())
    run_callbacks = [recorder, nan_guard, stopper, best]

    train_dataset = make_dataset(train_images, train_labels, config.batch_size, shuffle_seed=config.seed)
    val_dataset = make_dataset(val_images, val_labels, 512 // num_replicas * num_replicas, shuffle_seed=None)
    started = time.perf_counter()
    model.fit(
        train_dataset,
        validation_data=val_dataset,
        epochs=config.augmented_epochs,
        callbacks=[*run_callbacks, *schedule_callbacks(config), *(callbacks or [])],
        shuffle=False,  # the dataset shuffles itself, by the seed
        verbose=verbose,
    )
    _raise_if_diverged(recorder)
    epochs_done = len(recorder.epoch_logs)
    if config.final_clean_epochs and epochs_done and not stopper.stopped_by_request:
        # The best augmented epoch's weights are back in `model`; go on from them without augmentation.
        with strategy.scope():
            model = build_clean_phase_model(model, config, steps_per_epoch)
        augmented_weights = model.get_weights()
        recorder.continue_in_next_fit()
        best.continue_in_next_fit(augmented_weights)
        model.fit(
            train_dataset,
            validation_data=val_dataset,
            initial_epoch=epochs_done,
            epochs=epochs_done + config.final_clean_epochs,
            callbacks=[*run_callbacks, *(callbacks or [])],  # early stopping and plateau end with the augmentation
            shuffle=False,
            verbose=verbose,
        )
        _raise_if_diverged(recorder)
        if config.clean_mix < 1:
            model.set_weights(mixed_weights(augmented_weights, model.get_weights(), config.clean_mix))
    training_seconds = time.perf_counter() - started

    evaluation = evaluate_model(model, data.test_images, data.test_labels)
    history = list(recorder.snapshot().epoch_logs)
    extra = {}
    if len(val_labels):
        extra["validation_accuracy"] = round(evaluate_model(model, val_images, val_labels).accuracy, 6)
    if ModelMetadata(config=config.to_dict()).trained_with_flips:  # what the app reports for such a model
        flip_averaged = evaluate_model(model, data.test_images, data.test_labels, flip_average=True)
        extra["test_accuracy_flip_average"] = round(flip_averaged.accuracy, 6)
        flip_averaged_validation = evaluate_model(model, val_images, val_labels, flip_average=True)
        extra["validation_accuracy_flip_average"] = round(flip_averaged_validation.accuracy, 6)
    return TrainingResult(
        model=model,
        config=config,
        history=history,
        evaluation=evaluation,
        epochs_run=len(history),
        best_epoch=None if best.best_epoch is None else best.best_epoch + 1,
        training_seconds=training_seconds,
        num_train_images=len(train_labels),
        num_validation_images=len(val_labels),
        stopped_early=stopper.stopped_by_request or len(history) < config.epochs,
        extra=extra,
    )
