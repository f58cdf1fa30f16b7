"""Training: the validated config, the training loop, and the background job the app runs."""

# Imported first: fashion_core.models refuses a Keras set to another backend, with a clear message, before Keras loads.
import fashion_core.models  # noqa: F401
from fashion_core.training.callbacks import ProgressRecorder, RestoreBestWeights, StopOnEvent, TrainingProgress
from fashion_core.training.config import PRESETS, TrainingConfig
from fashion_core.training.job import (
    JobAlreadyRunning,
    JobManager,
    JobNotSavable,
    JobPhase,
    JobSnapshot,
    JobStatus,
    TrainingJob,
)
from fashion_core.training.loop import TrainingFailed, TrainingResult, make_dataset, train
from fashion_core.training.throughput import RunTimeEstimate, ThroughputLog, estimate_run_seconds

__all__ = [
    "PRESETS",
    "JobAlreadyRunning",
    "JobManager",
    "JobNotSavable",
    "JobPhase",
    "JobSnapshot",
    "JobStatus",
    "ProgressRecorder",
    "RestoreBestWeights",
    "RunTimeEstimate",
    "StopOnEvent",
    "ThroughputLog",
    "TrainingConfig",
    "TrainingFailed",
    "TrainingJob",
    "TrainingProgress",
    "TrainingResult",
    "estimate_run_seconds",
    "make_dataset",
    "train",
]
