"""Tests of `TrainingJob`, `JobManager` and the run time estimate, on small slices of the real dataset."""

import json
import time
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from fashion_core.charts import training_curves_chart
from fashion_core.data import DatasetError, FashionMNIST, load_fashion_mnist
from fashion_core.inference import Predictor
from fashion_core.registry import ModelRegistry
from fashion_core.training import PRESETS, TrainingConfig
from fashion_core.training import job as job_module
from fashion_core.training.callbacks import per_batch_values
from fashion_core.training.job import (
    JobAlreadyRunning,
    JobManager,
    JobNotSavable,
    JobPhase,
    JobStatus,
    TrainingJob,
)
from fashion_core.training.throughput import ThroughputLog, estimate_run_seconds

# dense trains a 16-image batch in about a millisecond; 1800 images make 113 steps an epoch.
LONG_RUN = TrainingConfig(
    architecture="dense", epochs=50, batch_size=16, augment=False, schedule="none", subset_size=2000
)
SHORT_RUN = LONG_RUN.replace(epochs=1, batch_size=64)


@pytest.fixture(scope="session")
def small_data() -> FashionMNIST:
    """2000 training and 500 test images of the real dataset."""
    data = load_fashion_mnist(download=False)
    return FashionMNIST(
        data.train_images[:2000], data.train_labels[:2000], data.test_images[:500], data.test_labels[:500], data.source
    )


@pytest.fixture
def registry(tmp_path, monkeypatch) -> ModelRegistry:
    monkeypatch.setenv("FASHION_STUDIO_MODELS_DIR", str(tmp_path / "user_models"))
    return ModelRegistry()


def wait_until(condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def user_model_names(registry: ModelRegistry) -> list[str]:
    return [entry.name for entry in registry.list_models() if not entry.shipped]


class StopJobAt(keras.callbacks.Callback):
    """Calls `job.stop()` at the end of a given batch, as a user pressing Stop at that moment."""

    def __init__(self, job_holder: list, batch: int):
        super().__init__()
        self.job_holder = job_holder
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            self.job_holder[0].stop()


class PoisonWeightsAt(keras.callbacks.Callback):
    """Sets the classifier's weights to NaN after a given batch, so the next batch's loss is NaN."""

    def __init__(self, batch: int):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            kernel = self.model.get_layer("probabilities").kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


class RaiseAt(keras.callbacks.Callback):
    def __init__(self, batch: int):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            raise RuntimeError("the metrics disk is full")


def test_job_snapshot_grows_then_stop_keeps_a_model_that_saves_and_reloads(small_data, registry):
    """Test that a running job's snapshot grows, Stop ends it `stopped`, and its model saves and reloads."""
    job = TrainingJob(LONG_RUN, data=small_data)
    assert job.snapshot().status == JobStatus.QUEUED
    job.start()
    first = wait_until(lambda: (s := job.snapshot()).training.steps_done >= 3 and s)
    later = wait_until(lambda: (s := job.snapshot()).training.steps_done > first.training.steps_done + 5 and s)
    assert first.status == later.status == JobStatus.RUNNING and later.phase == JobPhase.TRAINING
    progress = later.training
    assert len(progress.batch_loss) == len(progress.batch_accuracy) == len(progress.batch_steps) == progress.steps_done
    assert progress.batch_steps[: first.training.steps_done] == first.training.batch_steps
    assert progress.steps_per_epoch == 113 and progress.epochs == 50
    assert progress.images_per_second > 0 and progress.eta_seconds > 0
    assert progress.learning_rate == pytest.approx(3e-3)

    job.stop()
    assert job.snapshot().status in (JobStatus.STOPPING, JobStatus.STOPPED)
    assert job.wait(timeout=60)
    final = job.snapshot()
    assert final.status == JobStatus.STOPPED and final.phase == JobPhase.FINISHED and final.error is None
    assert final.training.steps_done >= progress.steps_done and final.training.eta_seconds is None
    assert job.snapshot().elapsed_seconds == final.elapsed_seconds  # frozen once finished
    result = job.result
    assert 1 <= result.epochs_run < 50 and len(final.training.epoch_logs) == result.epochs_run
    assert user_model_names(registry) == []  # nothing is saved unless asked

    entry = job.save(registry, "stopped-run")
    assert user_model_names(registry) == ["stopped-run"]
    assert entry.metadata.extra["stopped_by_request"] is True
    assert entry.metadata.test_accuracy == pytest.approx(result.evaluation.accuracy, abs=1e-6)
    assert entry.metadata.config == LONG_RUN.to_dict()
    assert [log["epoch"] for log in entry.metadata.history] == list(range(1, result.epochs_run + 1))
    assert job.snapshot().saved_as == ("stopped-run",)
    reloaded = registry.load("stopped-run")
    images = small_data.test_images[:64]
    np.testing.assert_allclose(Predictor(reloaded).predict(images), Predictor(result.model).predict(images), atol=1e-6)


@pytest.mark.parametrize("stop_batch", [None, 40], ids=["before-first-batch", "mid-epoch"])
def test_stop_at_any_moment_ends_stopped_with_a_savable_model(small_data, registry, stop_batch):
    """Test that Stop before the first batch or in the middle of an epoch ends `stopped`, savable."""
    holder = []
    callbacks = [] if stop_batch is None else [StopJobAt(holder, stop_batch)]
    job = TrainingJob(LONG_RUN, data=small_data, callbacks=callbacks)
    holder.append(job)
    if stop_batch is None:
        job.stop()  # pressed before the thread even started: one batch runs, then the run ends
    job.start()
    assert job.wait(timeout=60)
    snapshot = job.snapshot()
    assert snapshot.status == JobStatus.STOPPED
    # The stop is seen at the end of the batch it was asked in, or (asked by a later callback) the next one.
    expected_steps = 1 if stop_batch is None else stop_batch + 2
    assert snapshot.training.steps_done == expected_steps
    assert job.result.epochs_run == 1 and job.result.best_epoch == 1  # the partial epoch was validated
    assert job.result.evaluation.labels.shape == (500,)
    assert user_model_names(registry) == []
    job.save(registry, "early")
    assert user_model_names(registry) == ["early"]


def test_nan_loss_ends_failed_with_its_reason_and_saves_nothing(small_data, registry):
    """Test that a loss turned NaN ends the job `failed`, saying why and how to fix it."""
    job = TrainingJob(SHORT_RUN, data=small_data, callbacks=[PoisonWeightsAt(batch=5)]).start()
    assert job.wait(timeout=60)
    snapshot = job.snapshot()
    assert snapshot.status == JobStatus.FAILED and snapshot.phase == JobPhase.FINISHED
    assert snapshot.error == (
        "The training loss became nan at epoch 1, batch 7, so the run was stopped. "
        "Lower the learning rate or the batch size and start again."
    )
    assert snapshot.training.steps_done == 7 and np.isnan(snapshot.training.batch_loss[-1])
    assert job.result is None
    with pytest.raises(JobNotSavable, match="it is failed"):
        job.save(registry, "diverged")
    assert user_model_names(registry) == []


def test_exception_in_a_callback_ends_failed_with_its_reason(small_data, registry):
    """Test that an exception raised inside a callback ends the job `failed` with the exception's text."""
    job = TrainingJob(SHORT_RUN, data=small_data, callbacks=[RaiseAt(batch=2)]).start()
    assert job.wait(timeout=60)
    snapshot = job.snapshot()
    assert snapshot.status == JobStatus.FAILED
    assert snapshot.error.startswith("The run failed with RuntimeError: the metrics disk is full. Nothing was saved")
    assert snapshot.training.steps_done == 3 and job.result is None
    assert user_model_names(registry) == []


def test_missing_dataset_ends_failed_with_how_to_get_it(monkeypatch):
    """Test that a job without data ends `failed` with the DatasetError's message."""

    def missing(download=True):
        raise DatasetError("Fashion-MNIST was not found. Looked in: /nowhere. Install it with apt.")

    monkeypatch.setattr(job_module, "load_fashion_mnist", missing)
    job = TrainingJob(SHORT_RUN).start()
    assert job.wait(timeout=30)
    assert job.snapshot().status == JobStatus.FAILED
    assert job.snapshot().error == "Fashion-MNIST was not found. Looked in: /nowhere. Install it with apt."


def test_manager_runs_one_job_at_a_time_and_records_its_speed(small_data, tmp_path):
    """Test that a second start is refused while a job runs, and allowed once it has ended."""
    log = ThroughputLog(tmp_path / "throughput.json")
    manager = JobManager(throughput_log=log)
    assert manager.current() is None
    running = manager.start(LONG_RUN, data=small_data)
    with pytest.raises(JobAlreadyRunning) as refused:
        manager.start(SHORT_RUN, data=small_data)
    message = str(refused.value)
    assert f"job {running.job_id}: dense, 50 epochs" in message and "Stop on the Train page" in message
    assert manager.current() is running
    assert manager.stop_current() is True
    assert running.wait(timeout=60) and running.status == JobStatus.STOPPED
    assert manager.stop_current() is False
    assert log.read() == {}  # a stopped run says nothing about a full epoch's time

    finished = manager.start(SHORT_RUN, data=small_data)
    assert finished is not running and manager.current() is finished
    assert finished.wait(timeout=60) and finished.status == JobStatus.DONE
    assert finished.snapshot().training.fraction_done == 1.0
    recorded = json.loads((tmp_path / "throughput.json").read_text())
    assert recorded["dense"]["num_runs"] == 1 and recorded["dense"]["speed_factor"] > 0


def test_run_time_estimate_follows_the_presets_and_learns_from_finished_runs(tmp_path):
    """Test that Quick is estimated at about a minute and that a faster measured run shortens estimates."""
    quick = estimate_run_seconds(PRESETS["Quick"])
    assert 30 <= quick.seconds <= 120 and quick.num_runs == 0
    assert estimate_run_seconds(PRESETS["Best"]).seconds > 10 * quick.seconds
    assert estimate_run_seconds(PRESETS["Quick"].replace(epochs=8)).seconds > 1.8 * quick.seconds - 10

    log = ThroughputLog(tmp_path / "throughput.json")
    config = PRESETS["Quick"]
    modelled = estimate_run_seconds(config, log)
    log.record(config, epochs_run=config.epochs, training_seconds=(modelled.seconds - 10) / 2)  # twice as fast
    faster = estimate_run_seconds(config, log)
    assert faster.num_runs == 1 and faster.speed_factor > 1.5
    assert faster.seconds < 0.65 * modelled.seconds
    assert estimate_run_seconds(config.replace(architecture="cnn"), log).speed_factor == 1.0


def test_per_batch_values_undo_keras_running_means_epoch_by_epoch():
    """Test that each batch's own value is recovered from the epoch's running means."""
    batch_values = [4.0, 2.0, 6.0, 1.0, 3.0]  # epoch 1: three batches; epoch 2: two so far
    running_means = [4.0, 3.0, 4.0, 1.0, 2.0]
    assert per_batch_values(running_means, steps_per_epoch=3) == pytest.approx(batch_values)
    assert np.isnan(per_batch_values([1.0, float("nan")], steps_per_epoch=3)[1])
    assert per_batch_values([], steps_per_epoch=3) == ()


def test_training_curves_chart_places_batches_and_epochs_on_one_epoch_axis():
    """Test that the curves chart puts batch k of epoch e at e-1+k/steps and smooths without start-up bias."""
    snapshot = SimpleNamespace(
        batch_steps=(1, 2, 3, 4),
        batch_loss=(2.0, 1.0, 1.0, 1.0),
        batch_accuracy=(0.5, 0.6, 0.7, 0.8),
        steps_per_epoch=2,
        epoch_logs=({"epoch": 1, "val_loss": 0.9, "val_accuracy": 0.7}, {"epoch": 2, "val_loss": 0.8}),
    )
    figure = training_curves_chart(snapshot, "loss", smoothing=0.5)
    raw, smoothed, validation = figure.data
    assert list(raw.x) == [0.5, 1.0, 1.5, 2.0] and list(raw.y) == [2.0, 1.0, 1.0, 1.0]
    assert smoothed.y[0] == pytest.approx(2.0)  # bias-corrected: the first value is itself
    assert smoothed.y[1] == pytest.approx((0.25 * 2.0 + 0.5 * 1.0) / 0.75)
    assert list(validation.x) == [1, 2] and list(validation.y) == [0.9, 0.8]
    stopped = SimpleNamespace(**{**vars(snapshot), "batch_steps": (1, 2, 3), "batch_loss": (2.0, 1.0, 1.0)})
    assert list(training_curves_chart(stopped, "loss").data[2].x) == [1, 1.5]  # validated where it stopped
    accuracy = training_curves_chart(snapshot, "accuracy")
    assert list(accuracy.data[2].y) == [0.7] and accuracy.layout.yaxis.tickformat == ".0%"
    long = SimpleNamespace(**{**vars(snapshot), "batch_steps": tuple(range(1, 3001)), "batch_loss": (1.0,) * 3000})
    assert len(training_curves_chart(long, "loss", max_points=1000).data[0].x) == 1000


def test_training_curves_chart_marks_where_augmentation_ends():
    snapshot = SimpleNamespace(
        batch_steps=(1, 2, 3),
        batch_loss=(2.0, 1.0, 0.5),
        batch_accuracy=(0.5, 0.6, 0.9),
        steps_per_epoch=1,
        epoch_logs=(),
    )
    assert not training_curves_chart(snapshot, "loss").layout.shapes
    marked = training_curves_chart(snapshot, "loss", augmentation_ends_at=2)
    (line,) = marked.layout.shapes
    assert (line.x0, line.x1) == (2, 2)
    assert marked.layout.annotations[0].text == "augmentation off"
