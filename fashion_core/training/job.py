"""`TrainingJob`: one training run in a background thread that other threads watch and stop.

A Streamlit script reruns on every click, so a `model.fit` inside it would block the page and die
with the next rerun. A `TrainingJob` runs `train()` in a daemon thread instead; pages only read its
`snapshot()` (a frozen copy, safe from any thread) and call `stop()`. `JobManager` runs one job at a
time for the whole process: the server has two cores, and everyone sees the same job.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import keras

from fashion_core.data import DatasetError, FashionMNIST, load_fashion_mnist
from fashion_core.training.callbacks import ProgressRecorder, TrainingProgress
from fashion_core.training.config import TrainingConfig
from fashion_core.training.loop import TrainingFailed, TrainingResult, train
from fashion_core.training.throughput import ThroughputLog

logger = logging.getLogger(__name__)


class JobStatus(enum.StrEnum):
    """Where a job stands, for the people watching it.

    `QUEUED`: started, preparing data and model. `STOPPING`: a stop was asked; the current batch and
    the test-set evaluation are still to finish. `STOPPED` and `DONE` leave a model to save; `FAILED`
    leaves an error message and nothing to save.
    """

    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.STOPPING)

    @property
    def is_finished(self) -> bool:
        return not self.is_active

    @property
    def savable(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.DONE)


class JobPhase(enum.StrEnum):
    """What a job's thread is doing: preparing data and model, in `fit`, evaluating on the test set, or finished."""

    PREPARING = "preparing"
    TRAINING = "training"
    EVALUATING = "evaluating"
    FINISHED = "finished"


class JobAlreadyRunning(RuntimeError):
    """Raised when a job is started while another one still runs (the server trains one at a time)."""


class JobNotSavable(ValueError):
    """Raised when a job that has no model (running, failed, never started) is asked to save one."""


@dataclasses.dataclass(frozen=True)
class JobSnapshot:
    """A consistent, immutable copy of a job's state at one moment.

    `training` is the training loop's own `TrainingProgress`; once the job has finished it is frozen at
    the last batch (no ETA, and `fraction_done` 1.0 for a run that left a model). `elapsed_seconds`
    counts from `start()` to now, or to the end of the job.
    """

    job_id: str
    status: JobStatus
    phase: JobPhase
    config: TrainingConfig
    training: TrainingProgress
    elapsed_seconds: float
    error: str | None
    started_at: str | None
    saved_as: tuple[str, ...]

    @property
    def is_active(self) -> bool:
        return self.status.is_active

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def savable(self) -> bool:
        return self.status.savable


class _PhaseTracker(keras.callbacks.Callback):
    """Notes when `fit` begins and ends, and whether a stop had been asked for before it ended."""

    def __init__(self, stop_event: threading.Event, recorder: ProgressRecorder):
        super().__init__()
        self.stop_event = stop_event
        self.recorder = recorder
        self.phase = JobPhase.PREPARING
        self.stopped_by_request = False
        self.final_progress: TrainingProgress | None = None

    def on_train_begin(self, logs=None):
        self.phase = JobPhase.TRAINING

    def on_train_end(self, logs=None):
        # Freeze the loop's numbers here, so that elapsed time and throughput stop at the last batch.
        self.final_progress = self.recorder.snapshot()
        self.stopped_by_request = self.stop_event.is_set()
        self.phase = JobPhase.EVALUATING


class TrainingJob:
    """Runs `train(config)` in a daemon thread; `snapshot()` watches it and `stop()` ends it early.

    Args:
        config: the run's hyperparameters.
        data: the dataset (pass the app's cached copy to avoid loading it again). Defaults to
            `load_fashion_mnist(download=False)`, loaded in the job's thread.
        callbacks: extra Keras callbacks for `train()`. Defaults to none.
        on_finish: called with the job, in its thread, once it has ended in any state. Defaults to none.
        app_photo_store: the `PhotoStore` that `photos="store"` means (see `train()`). Defaults to none.

    Example:
        >>> job = TrainingJob(PRESETS["Quick"], data=data)
        >>> job.start()
        >>> job.snapshot().status == JobStatus.RUNNING
        True
        >>> job.stop(); job.wait()
        >>> job.save(ModelRegistry(), "quick-run")
    """

    def __init__(
        self,
        config: TrainingConfig,
        data: FashionMNIST | None = None,
        callbacks: list[keras.callbacks.Callback] | None = None,
        on_finish: Callable[[TrainingJob], None] | None = None,
        app_photo_store=None,
    ):
        self.config = config
        self._app_photo_store = app_photo_store
        self.job_id = uuid.uuid4().hex[:8]
        self._data = data
        self._callbacks = list(callbacks or [])
        self._on_finish = on_finish
        self._stop_event = threading.Event()
        self._recorder = ProgressRecorder(config.epochs, steps_per_epoch=0, batch_size=config.batch_size)
        self._tracker = _PhaseTracker(self._stop_event, self._recorder)
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started: float | None = None
        self._started_at: str | None = None
        self._finished: float | None = None
        self._outcome: JobStatus | None = None
        self._error: str | None = None
        self._result: TrainingResult | None = None
        self._final_progress: TrainingProgress | None = None
        self._saved_as: list[str] = []

    def start(self) -> TrainingJob:
        """Starts the background thread; a job runs once.

        Raises:
            RuntimeError: when the job was already started.
        """
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"Training job {self.job_id} was already started; make a new TrainingJob.")
            self._started = time.perf_counter()
            self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
            self._thread = threading.Thread(target=self._run, name=f"training-job-{self.job_id}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Asks the run to end after the current batch; it then keeps its best weights and is evaluated.

        Returns at once; `wait()` for the end. Stopping a finished job does nothing.
        """
        self._stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the job has ended or `timeout` seconds passed; returns whether it ended."""
        thread = self._thread
        if thread is None:
            return False
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def result(self) -> TrainingResult | None:
        """The `TrainingResult` of a `done` or `stopped` job; `None` otherwise."""
        with self._lock:
            return self._result

    @property
    def status(self) -> JobStatus:
        return self.snapshot().status

    def snapshot(self) -> JobSnapshot:
        """The job's state now, as an immutable copy (thread-safe)."""
        with self._lock:
            outcome, error, saved_as = self._outcome, self._error, tuple(self._saved_as)
            started, finished, started_at = self._started, self._finished, self._started_at
            final_progress = self._final_progress
        phase = JobPhase.FINISHED if outcome else self._tracker.phase
        if phase == JobPhase.EVALUATING:
            final_progress = self._tracker.final_progress
        training = final_progress or self._recorder.snapshot()
        if outcome:
            status = outcome
            training = dataclasses.replace(
                training, eta_seconds=None, fraction_done=1.0 if outcome.savable else training.fraction_done
            )
        elif self._stop_event.is_set():
            status = JobStatus.STOPPING
        else:
            status = JobStatus.QUEUED if phase == JobPhase.PREPARING else JobStatus.RUNNING
        now = finished if finished is not None else time.perf_counter()
        return JobSnapshot(
            job_id=self.job_id,
            status=status,
            phase=phase,
            config=self.config,
            training=training,
            elapsed_seconds=0.0 if started is None else now - started,
            error=error,
            started_at=started_at,
            saved_as=saved_as,
        )

    def save(self, registry, name: str, extra_metadata: dict | None = None):
        """Saves the job's model into a `ModelRegistry` under a new name.

        A job stopped before its first epoch ended is savable too: it keeps its current weights
        (there was no validated epoch to go back to), and its metadata says it was stopped.

        Args:
            registry: a `fashion_core.registry.ModelRegistry`.
            name: the new model's name (letters, digits, `-` and `_`).
            extra_metadata: more facts for `metadata.json`. Defaults to none.

        Returns:
            The new `ModelEntry`.

        Raises:
            JobNotSavable: when the job has no model (still running, failed, or never started).
            RegistryError: for a bad or taken name, or the shipped name.
        """
        snapshot = self.snapshot()
        result = self.result
        if result is None:
            raise JobNotSavable(
                f"Training job {self.job_id} has no model to save: it is {snapshot.status}. Wait until it is done "
                f"or stopped; a failed run leaves nothing to save. Received: status={snapshot.status!r}"
            )
        metadata = {
            **result.metadata(),
            "seed": self.config.seed,
            "job_id": self.job_id,
            "stopped_by_request": snapshot.status == JobStatus.STOPPED,
            "images_per_second": round(snapshot.training.images_per_second, 1),
            **(extra_metadata or {}),
        }
        with self._save_lock:  # one model, saved by one thread at a time
            entry = registry.save(name, result.model, metadata)
        with self._lock:
            self._saved_as.append(entry.name)
        return entry

    def _run(self) -> None:
        try:
            data = self._data if self._data is not None else load_fashion_mnist(download=False)
            result = train(
                self.config,
                callbacks=[self._tracker, *self._callbacks],
                data=data,
                stop_event=self._stop_event,
                recorder=self._recorder,
                app_photo_store=self._app_photo_store,
            )
        except Exception as error:  # a background thread has no caller to raise to: it reports instead
            logger.exception("Training job %s failed", self.job_id)
            self._finish(JobStatus.FAILED, error=describe_failure(error))
        else:
            outcome = JobStatus.STOPPED if self._tracker.stopped_by_request else JobStatus.DONE
            self._finish(outcome, result=result)
        finally:
            self._data = None  # the job may be kept around long after; the dataset need not be
        if self._on_finish is not None:
            try:
                self._on_finish(self)
            except Exception:  # bookkeeping after a run must not turn it into a failure
                logger.exception("on_finish of training job %s failed", self.job_id)

    def _finish(self, outcome: JobStatus, result: TrainingResult | None = None, error: str | None = None) -> None:
        # A run that raised never reached on_train_end: freeze its numbers now.
        final_progress = self._tracker.final_progress or self._recorder.snapshot()
        with self._lock:
            self._outcome, self._result, self._error = outcome, result, error
            self._final_progress = final_progress
            self._finished = time.perf_counter()


def describe_failure(error: Exception) -> str:
    """The text a user sees for a failed run: our own errors as they are, others with their type."""
    if isinstance(error, TrainingFailed | DatasetError):
        return str(error)
    return (
        f"The run failed with {type(error).__name__}: {error}. Nothing was saved; the server log has the "
        "traceback. Try again, or with other settings."
    )


class JobManager:
    """Runs one `TrainingJob` at a time for the whole process, and remembers the last one.

    Args:
        throughput_log: where the speed of every run that ends `done` is recorded, to refine run
            time estimates. Defaults to none.
    """

    def __init__(self, throughput_log: ThroughputLog | None = None):
        self._lock = threading.Lock()
        self._current: TrainingJob | None = None
        self.throughput_log = throughput_log

    def start(
        self,
        config: TrainingConfig,
        data: FashionMNIST | None = None,
        callbacks: list[keras.callbacks.Callback] | None = None,
        app_photo_store=None,
    ) -> TrainingJob:
        """Starts a job unless one is running (`TrainingJob` says what the arguments are).

        Raises:
            JobAlreadyRunning: when a job is still queued, running or stopping.
        """
        with self._lock:
            if self._current is not None:
                snapshot = self._current.snapshot()
                if snapshot.is_active:
                    raise JobAlreadyRunning(describe_running_job(snapshot))
            job = TrainingJob(
                config, data, callbacks, on_finish=self._record_throughput, app_photo_store=app_photo_store
            )
            job.start()
            self._current = job
            return job

    def current(self) -> TrainingJob | None:
        """The running job, else the last one (finished), else `None`."""
        with self._lock:
            return self._current

    def _record_throughput(self, job: TrainingJob) -> None:
        result = job.result
        if self.throughput_log is not None and result is not None and job.status == JobStatus.DONE:
            self.throughput_log.record(job.config, result.epochs_run, result.training_seconds)

    def stop_current(self) -> bool:
        """Asks the running job to stop; returns whether there was one."""
        job = self.current()
        if job is None or not job.snapshot().is_active:
            return False
        job.stop()
        return True


def describe_running_job(snapshot: JobSnapshot) -> str:
    """Why a second job cannot start: which job runs, how far it is, and how to stop it."""
    config = snapshot.config
    training = snapshot.training
    where = f"epoch {training.epoch} of {training.epochs}" if training.steps_done else "preparing"
    return (
        f"A training job is already running (job {snapshot.job_id}: {config.architecture}, {config.epochs} epochs, "
        f"{where}, started {snapshot.started_at}). The server trains one model at a time: wait for it to finish, "
        f"or stop it with Stop on the Train page. Received: status={snapshot.status!r}"
    )
