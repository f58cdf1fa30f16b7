"""Training: the validated config, the training loop, and the background job the app runs."""

from fashion_core.training.callbacks import ProgressRecorder, RestoreBestWeights, StopOnEvent
from fashion_core.training.config import PRESETS, TrainingConfig
from fashion_core.training.loop import TrainingFailed, TrainingResult, make_dataset, train

__all__ = [
    "PRESETS",
    "ProgressRecorder",
    "RestoreBestWeights",
    "StopOnEvent",
    "TrainingConfig",
    "TrainingFailed",
    "TrainingResult",
    "make_dataset",
    "train",
]
