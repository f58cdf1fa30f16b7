"""A stand-in for `train()` that replays a scripted run batch by batch, for the Train page's tests.

Everything around it is the real thing: the page starts a real `TrainingJob` through the real
`JobManager`; the job's `ProgressRecorder` and phase tracking are driven through their Keras hooks
with scripted logs (as Keras' own tests drive callbacks, without `fit`); the result is a real
model evaluated on the real test set, and it saves into the real registry. What training itself
does is tested in `tests/test_training.py` and `tests/test_job.py`.

The run waits before every batch until the test lets it go on (`advance`), so the test decides
what the page shows at each rerun instead of racing a training thread.
"""

from __future__ import annotations

import math
import threading
import time

import keras

from fashion_core.data import FashionMNIST
from fashion_core.evaluation import evaluate_model
from fashion_core.models import ModelOptions, build_model
from fashion_core.training.config import TrainingConfig
from fashion_core.training.loop import TrainingResult, split_training_data


def scripted_running_means(step: int) -> dict[str, float]:
    """The logs Keras would give after `step` (0-based) batches of an epoch: running means, falling loss."""
    return {"loss": 2.3 * 0.99**step + 0.3, "accuracy": 0.9 - 0.8 * 0.99**step}


class ScriptedTraining:
    """Called as `train(config, callbacks, data, stop_event, recorder)`; replays batches as `advance` allows.

    Attributes:
        steps_done: batches replayed so far.
        steps_per_epoch: batches in an epoch of the config's training split (0 before the run starts).
    """

    def __init__(self):
        self.steps_done = 0
        self.steps_per_epoch = 0
        self._allowed = 0
        self._closed = False
        self._condition = threading.Condition()

    def advance(self, num_batches: int, timeout: float = 30.0) -> None:
        """Lets `num_batches` more batches run, and returns once they have been recorded."""
        with self._condition:
            target = self.steps_done + num_batches
            self._allowed += num_batches
            self._condition.notify_all()
            if not self._condition.wait_for(lambda: self.steps_done >= target, timeout):
                raise AssertionError(f"the scripted run did not reach step {target} within {timeout} s")

    def close(self) -> None:
        """Ends a run still waiting for its next batch (at the end of a test)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def _wait_for_next_batch(self, stop_event: threading.Event) -> bool:
        """Waits until a batch is allowed (True), or a stop was asked or the script closed (False)."""
        with self._condition:
            while not self._allowed:
                if stop_event.is_set() or self._closed:
                    return False
                self._condition.wait(0.05)
            self._allowed -= 1
            return True

    def _record_batch(self) -> None:
        with self._condition:
            self.steps_done += 1
            self._condition.notify_all()

    def __call__(
        self,
        config: TrainingConfig,
        callbacks: list[keras.callbacks.Callback],
        data: FashionMNIST,
        stop_event: threading.Event,
        recorder: keras.callbacks.Callback,
        **options,
    ) -> TrainingResult:
        self.options = options  # what else `train()` was given (`app_photo_store`, say)
        started = time.perf_counter()
        (_, train_labels), (_, val_labels) = split_training_data(config, data)
        self.steps_per_epoch = math.ceil(len(train_labels) / config.batch_size)
        recorder.epochs, recorder.steps_per_epoch, recorder.batch_size = (
            config.epochs,
            self.steps_per_epoch,
            config.batch_size,
        )
        model = build_model(config.architecture, ModelOptions(augment=False, dropout=config.dropout, seed=config.seed))
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="categorical_crossentropy")
        hooks = [recorder, *callbacks]
        for hook in hooks:
            hook.set_model(model)
            hook.on_train_begin()
        history = []
        for epoch in range(config.epochs):
            for hook in hooks:
                hook.on_epoch_begin(epoch)
            for batch in range(self.steps_per_epoch):
                if not self._wait_for_next_batch(stop_event):
                    break
                for hook in hooks:
                    hook.on_train_batch_end(batch, scripted_running_means(batch))
                self._record_batch()
            epoch_logs = {**scripted_running_means(self.steps_per_epoch - 1), "val_loss": 0.5, "val_accuracy": 0.8}
            for hook in hooks:
                hook.on_epoch_end(epoch, epoch_logs)
            history.append({**epoch_logs, "epoch": epoch + 1})
            if stop_event.is_set():
                break
        for hook in hooks:
            hook.on_train_end()
        return TrainingResult(
            model=model,
            config=config,
            history=history,
            evaluation=evaluate_model(model, data.test_images, data.test_labels),
            epochs_run=len(history),
            best_epoch=len(history),
            training_seconds=time.perf_counter() - started,
            num_train_images=len(train_labels),
            num_validation_images=len(val_labels),
            stopped_early=stop_event.is_set(),
        )
