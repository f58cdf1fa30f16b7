"""Keras callbacks that let a training run be watched, stopped and recovered from."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import keras
import numpy as np


class StopOnEvent(keras.callbacks.Callback):
    """Stops training after the current batch once `stop_event` is set (from another thread)."""

    def __init__(self, stop_event: threading.Event):
        super().__init__()
        self.stop_event = stop_event
        self.stopped_by_request = False

    def on_train_begin(self, logs=None):
        self.stopped_by_request = False

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_event.is_set():
            self.stopped_by_request = True
            self.model.stop_training = True


class EpochRateLogger(keras.callbacks.Callback):
    """Prints each epoch's images per second when it ends: `Epoch 2: 4,512.3 images/s`.

    Timed as Keras times an epoch (from its start to the end of its validation pass), so the first
    epoch's includes tracing the training step; to a tenth of an image, where Keras' own line gives
    whole milliseconds per step (2 to 4% apart at the Quick preset's 25 ms steps).
    """

    def __init__(self, batch_size: int, print_function=print):
        super().__init__()
        self.batch_size = batch_size
        self.print_function = print_function
        self._began = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._began
        steps = self.params.get("steps") or 0
        if steps and seconds > 0:
            self.print_function(f"Epoch {epoch + 1}: {steps * self.batch_size / seconds:,.1f} images/s")


class RestoreBestWeights(keras.callbacks.Callback):
    """Remembers the weights of the best epoch by `monitor` and puts them back when training ends.

    Unlike `EarlyStopping(restore_best_weights=True)`, it restores also when training is stopped by
    a request or ends normally, so the saved model is always the best epoch seen on validation data.
    A run stopped before its first epoch ends keeps its current weights.
    """

    def __init__(self, monitor: str = "val_accuracy", mode: str = "max"):
        super().__init__()
        self.monitor = monitor
        self.mode = mode
        self.best_weights = None
        self.best_epoch = None
        self.best_value = None
        self._continuing = False

    def continue_in_next_fit(self, best_weights: list) -> None:
        """Makes the next `fit` (of a rebuilt model) compete with the best epoch so far instead of starting over.

        Args:
            best_weights: the best epoch's weights as the next fit's model holds them (`get_weights()`).
        """
        self.best_weights = best_weights if self.best_epoch is not None else None
        self._continuing = True

    def on_train_begin(self, logs=None):
        if self._continuing:
            self._continuing = False
            return
        self.best_weights = None
        self.best_epoch = None
        self.best_value = None

    def _is_better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if self._is_better(float(value)):
            self.best_value = float(value)
            self.best_epoch = epoch
            self.best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class PhotoValidation(keras.callbacks.Callback):
    """Adds the accuracy on labelled real photos to each epoch's logs, as `photo_val_accuracy`.

    List it before the callbacks that read the logs (the progress recorder), so they see the value.
    It only watches: the best epoch is still chosen on the Fashion-MNIST validation split.

    Args:
        images: uint8 `(N, 28, 28)` photos made into Fashion-MNIST images.
        labels: `(N,)` class indices.
        flip_average: whether to average each photo's probabilities with its mirror image's, as
            the app does for a model trained with flips. Defaults to `False`.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, flip_average: bool = False):
        super().__init__()
        self.images = np.asarray(images, dtype=np.float32)[..., None]  # (N, 28, 28, 1), 0..255
        self.labels = np.asarray(labels)
        self.flip_average = flip_average

    def accuracy(self) -> float:
        """The current model's accuracy on the photos."""
        probabilities = self.model.predict(self.images, batch_size=512, verbose=0)
        if self.flip_average:
            probabilities = (probabilities + self.model.predict(self.images[:, :, ::-1], batch_size=512, verbose=0)) / 2
        return float((probabilities.argmax(axis=1) == self.labels).mean())

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and len(self.labels):
            logs["photo_val_accuracy"] = self.accuracy()


LEARNING_RATE_EVERY_STEPS = 20


@dataclass(frozen=True)
class TrainingProgress:
    """A consistent, immutable copy of a run's progress at one moment, safe to read from any thread.

    `batch_loss` and `batch_accuracy` are each batch's own values (Keras reports running means over the
    epoch; see `per_batch_values`), aligned with `batch_steps` (1-based step numbers across epochs).
    `epoch_logs` holds one dict per finished epoch (`loss`, `accuracy`, `val_loss`, `val_accuracy`,
    `epoch`). `epoch` is 1-based and 0 before the run begins. `eta_seconds` is `None` before the first
    batch; `fraction_done` is the share of all planned steps done, 0 to 1.
    """

    epoch: int
    epochs: int
    batch: int
    steps_per_epoch: int
    steps_done: int
    batch_steps: tuple[int, ...]
    batch_loss: tuple[float, ...]
    batch_accuracy: tuple[float, ...]
    epoch_logs: tuple[dict[str, float], ...]
    learning_rate: float
    elapsed_seconds: float
    eta_seconds: float | None
    images_per_second: float
    fraction_done: float


class ProgressRecorder(keras.callbacks.Callback):
    """Records every batch and epoch of a run under a lock, for another thread to read.

    `snapshot()` returns a `TrainingProgress`: per-batch training loss and accuracy, per-epoch
    training and validation metrics, the learning rate, timings and throughput.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, batch_size: int):
        super().__init__()
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._continuing = False
        self._reset()

    def continue_in_next_fit(self) -> None:
        """Makes the next `fit` add to this run's records (its epochs follow on) instead of starting them over."""
        self._continuing = True

    def _reset(self):
        self.epoch = 0
        self.batch = 0
        self.batch_steps: list[int] = []
        self.batch_loss: list[float] = []
        self.batch_accuracy: list[float] = []
        self.epoch_logs: list[dict[str, float]] = []
        self.learning_rate = float("nan")
        self.started_at = None
        self.steps_done = 0

    def on_train_begin(self, logs=None):
        if self._continuing:
            self._continuing = False
            return
        with self._lock:
            self._reset()
            self.started_at = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        with self._lock:
            self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        # A scheduled rate costs ~0.5 ms to read, a quarter of a small model's step: read it now and then.
        learning_rate = self.learning_rate
        if self.steps_done % LEARNING_RATE_EVERY_STEPS == 0:
            learning_rate = _current_learning_rate(self.model)
        with self._lock:
            self.batch = batch + 1
            self.steps_done += 1
            self.batch_steps.append(self.steps_done)
            self.batch_loss.append(float(logs.get("loss", float("nan"))))
            self.batch_accuracy.append(float(logs.get("accuracy", float("nan"))))
            self.learning_rate = learning_rate

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items() if np.isscalar(value)}
        logs["epoch"] = epoch + 1
        with self._lock:
            self.epoch_logs.append(logs)

    def snapshot(self) -> TrainingProgress:
        """A consistent copy of the run's progress so far."""
        with self._lock:
            elapsed = 0.0 if self.started_at is None else time.perf_counter() - self.started_at
            total_steps = self.epochs * self.steps_per_epoch
            seconds_per_step = elapsed / self.steps_done if self.steps_done else float("nan")
            return TrainingProgress(
                epoch=self.epoch + 1 if self.started_at is not None else 0,
                epochs=self.epochs,
                batch=self.batch,
                steps_per_epoch=self.steps_per_epoch,
                steps_done=self.steps_done,
                batch_steps=tuple(self.batch_steps),
                batch_loss=per_batch_values(self.batch_loss, self.steps_per_epoch),
                batch_accuracy=per_batch_values(self.batch_accuracy, self.steps_per_epoch),
                epoch_logs=tuple(dict(log) for log in self.epoch_logs),
                learning_rate=self.learning_rate,
                elapsed_seconds=elapsed,
                eta_seconds=max(total_steps - self.steps_done, 0) * seconds_per_step if self.steps_done else None,
                images_per_second=self.steps_done * self.batch_size / elapsed if elapsed > 0 else 0.0,
                fraction_done=min(self.steps_done / total_steps, 1.0) if total_steps else 0.0,
            )


def per_batch_values(running_means: list[float], steps_per_epoch: int) -> tuple[float, ...]:
    """Each batch's own value from Keras' running means over the epoch so far.

    Keras' batch logs hold the mean of the epoch's batches so far (reset at each epoch), so batch
    `k` of an epoch had `k * mean_k - (k - 1) * mean_(k-1)`. This takes the batches as equally
    sized; the last, smaller batch of an epoch comes out pulled towards the epoch's mean.

    Args:
        running_means: one value per step, across epochs.
        steps_per_epoch: steps in a full epoch.

    Returns:
        A tuple as long as `running_means`.
    """
    means = np.asarray(running_means, dtype=np.float64)
    if steps_per_epoch <= 0 or means.size == 0:
        return tuple(means.tolist())
    batch_in_epoch = np.arange(means.size) % steps_per_epoch + 1  # k = 1, 2, ..., steps_per_epoch, 1, ...
    previous = np.where(batch_in_epoch > 1, np.roll(means, 1), 0.0)
    return tuple((batch_in_epoch * means - (batch_in_epoch - 1) * previous).tolist())


def _current_learning_rate(model) -> float:
    """The optimizer's learning rate at its current step, whether fixed or scheduled."""
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:  # an optimizer without a readable rate is not worth failing a run for
        return float("nan")
