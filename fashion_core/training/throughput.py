"""How long a training run takes: measured costs per architecture, corrected by the runs that finish.

The estimate is a cost model, `steps x per-step overhead + images x per-image cost` for the training
images and (at a third of the cost, forward pass only) the validation and test images. The constants
were measured on this project's server; a `ThroughputLog` then learns, per architecture, how much
faster or slower the machine actually is from every finished run, so the estimate holds on other
hardware too.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from fashion_core.registry import user_models_dir
from fashion_core.training.config import TrainingConfig

# Seconds of training per image, and the fixed cost of one step, on a 2-core CPU server (TF 2.21, Keras
# 3.15). dense and seed_cnn: `python -m benchmarks.training_throughput --costs` (a bare `fit` of 20000
# images at batch 16 and at batch 256). small_cnn: the Quick preset's run in `make bench`. cnn: a
# 40-epoch run of the Best preset at batch 128; such runs take 0.0013 to 0.0015 s an image depending on
# what else shares the cores, and the lower figure is kept, so a busy machine runs longer than estimated.
SECONDS_PER_TRAINING_IMAGE = {"dense": 0.000010, "seed_cnn": 0.00036, "small_cnn": 0.00030, "cnn": 0.0013}
SECONDS_PER_STEP = 0.0020
INFERENCE_COST_RATIO = 1 / 3  # a forward pass costs about a third of a training step's forward+backward
STARTUP_SECONDS = 4.0  # building the model, tracing the step functions
NUM_TEST_IMAGES = 10000
THROUGHPUT_FILE_NAME = ".training_throughput.json"  # hidden: the registry lists only model folders
LEARNING_WEIGHT = 0.5  # how much one finished run moves an architecture's speed factor


@dataclass(frozen=True)
class RunTimeEstimate:
    """A run's expected duration and the training throughput it assumes.

    `speed_factor` is 1.0 for the built-in measurements, larger when finished runs on this machine
    were faster; `num_runs` is how many finished runs it was learnt from.
    """

    seconds: float
    images_per_second: float
    speed_factor: float
    num_runs: int


def split_sizes(config: TrainingConfig) -> tuple[int, int]:
    """`(training images, validation images)` the run will use."""
    num_validation = round(config.subset_size * config.validation_fraction)
    return config.subset_size - num_validation, num_validation


def modelled_seconds(config: TrainingConfig, epochs: int | None = None) -> tuple[float, float]:
    """`(training loop seconds, test evaluation seconds)` by the built-in cost model."""
    epochs = config.epochs if epochs is None else epochs
    num_train, num_validation = split_sizes(config)
    image_seconds = SECONDS_PER_TRAINING_IMAGE[config.architecture]
    steps = math.ceil(num_train / config.batch_size)
    epoch_seconds = steps * SECONDS_PER_STEP + (num_train + num_validation * INFERENCE_COST_RATIO) * image_seconds
    return epochs * epoch_seconds, NUM_TEST_IMAGES * INFERENCE_COST_RATIO * image_seconds


def estimate_run_seconds(config: TrainingConfig, log: ThroughputLog | None = None) -> RunTimeEstimate:
    """How long `train(config)` should take on this machine, start to evaluated model.

    Args:
        config: the run's hyperparameters.
        log: measured speeds of finished runs. Defaults to none (built-in measurements only).

    Returns:
        A `RunTimeEstimate`.
    """
    speed_factor, num_runs = log.speed_factor(config.architecture) if log is not None else (1.0, 0)
    loop_seconds, test_seconds = modelled_seconds(config)
    seconds = STARTUP_SECONDS + (loop_seconds + test_seconds) / speed_factor
    num_train, _ = split_sizes(config)
    images_per_second = num_train * config.epochs / (loop_seconds / speed_factor)
    return RunTimeEstimate(seconds, images_per_second, speed_factor, num_runs)


class ThroughputLog:
    """A small JSON file of how fast finished runs were, relative to the cost model, per architecture.

    Args:
        path: the JSON file. Defaults to `.training_throughput.json` in the user models folder
            (resolved at each use, so `$FASHION_STUDIO_MODELS_DIR` applies).
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self._path = Path(path) if path is not None else None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path or user_models_dir() / THROUGHPUT_FILE_NAME

    def read(self) -> dict[str, dict]:
        """`{architecture: {"speed_factor": float, "num_runs": int}}`; empty if missing or unreadable."""
        try:
            values = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return values if isinstance(values, dict) else {}

    def speed_factor(self, architecture: str) -> tuple[float, int]:
        """`(speed factor, number of runs)` for an architecture; `(1.0, 0)` when none was recorded."""
        entry = self.read().get(architecture) or {}
        factor = entry.get("speed_factor")
        if not isinstance(factor, int | float) or not math.isfinite(factor) or factor <= 0:
            return 1.0, 0
        return float(factor), int(entry.get("num_runs", 1))

    def record(self, config: TrainingConfig, epochs_run: int, training_seconds: float) -> None:
        """Learns from a finished run: `training_seconds` for `epochs_run` full epochs of `config`."""
        if epochs_run < 1 or training_seconds <= 0:
            return
        modelled, _ = modelled_seconds(config, epochs_run)
        measured_factor = modelled / training_seconds
        with self._lock:
            values = self.read()
            previous, num_runs = self.speed_factor(config.architecture)
            factor = (
                measured_factor
                if num_runs == 0
                else math.exp((1 - LEARNING_WEIGHT) * math.log(previous) + LEARNING_WEIGHT * math.log(measured_factor))
            )
            values[config.architecture] = {"speed_factor": round(factor, 4), "num_runs": num_runs + 1}
            self._write(values)

    def _write(self, values: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".throughput-", dir=self.path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(values, file, indent=2, sort_keys=True)
        os.replace(temporary, self.path)  # readers see the old file or the new one, never half of one
