"""Training throughput inside a `TrainingJob` against a bare `model.fit` of the same model and batch size.

The job adds a background thread and its callbacks (progress recorder, NaN guard, stop event, best
weights); this measures what they cost. Both runs train the same architecture on the same images
with the same input pipeline; images per second are timed between the ends of training batches,
after a warm-up, so model building, tracing and validation are left out of both. Each run is timed
twice: in wall-clock seconds, and in CPU seconds of this process (all its threads), which other
programs on a shared machine do not inflate.

Run: `python -m benchmarks.training_throughput` (add `--costs` to re-measure the constants of the
run time estimate in `fashion_core.training.throughput`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from dataclasses import dataclass

import keras

from fashion_core.data import FashionMNIST, load_fashion_mnist
from fashion_core.training import PRESETS, TrainingConfig
from fashion_core.training.job import JobStatus, TrainingJob
from fashion_core.training.loop import build_compiled_model, make_dataset, split_training_data

WARMUP_STEPS = 10


@dataclass(frozen=True)
class Throughput:
    """Images per wall-clock second and per CPU second of the process."""

    wall: float
    cpu: float


class BatchClock(keras.callbacks.Callback):
    """Notes the wall-clock and process CPU time at the end of every training batch."""

    def __init__(self):
        super().__init__()
        self.wall_ends: list[float] = []
        self.cpu_ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.wall_ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())

    def throughput(self, batch_size: int) -> Throughput:
        """Over the full batches after the warm-up (the last, maybe partial, batch left out)."""
        if len(self.wall_ends) < WARMUP_STEPS + 3:
            raise ValueError(f"Too few batches to time; use more steps. Received: batches={len(self.wall_ends)}")
        first, last = WARMUP_STEPS, len(self.wall_ends) - 2
        images = (last - first) * batch_size
        return Throughput(
            wall=images / (self.wall_ends[last] - self.wall_ends[first]),
            cpu=images / (self.cpu_ends[last] - self.cpu_ends[first]),
        )


def benchmark_config(architecture: str, batch_size: int, steps: int) -> TrainingConfig:
    """The Quick preset's recipe (cosine schedule, no augmentation) for one epoch of about `steps` steps."""
    subset_size = math.ceil((steps + 1) * batch_size / 0.98)  # +1: the last, partial batch is not timed
    return PRESETS["Quick"].replace(
        architecture=architecture,
        epochs=1,
        batch_size=batch_size,
        validation_fraction=0.02,
        subset_size=min(subset_size, 60000),
    )


def time_job(config: TrainingConfig, data: FashionMNIST) -> Throughput:
    """Images per second of the training batches inside a `TrainingJob` (background thread)."""
    clock = BatchClock()
    job = TrainingJob(config, data=small_test_set(data), callbacks=[clock]).start()
    job.wait()
    if job.snapshot().status != JobStatus.DONE:
        raise RuntimeError(f"The benchmark job ended {job.snapshot().status}: {job.snapshot().error}")
    return clock.throughput(config.batch_size)


def time_bare_fit(config: TrainingConfig, data: FashionMNIST) -> Throughput:
    """Images per second of a bare `model.fit` of the same model on the job's training images."""
    keras.utils.set_random_seed(config.seed)
    (train_images, train_labels), _ = split_training_data(config, data)
    steps_per_epoch = math.ceil(len(train_labels) / config.batch_size)
    model = build_compiled_model(config, steps_per_epoch)
    clock = BatchClock()
    dataset = make_dataset(train_images, train_labels, config.batch_size, shuffle_seed=config.seed)
    model.fit(dataset, epochs=1, callbacks=[clock], shuffle=False, verbose=0)  # a tf.data set is shuffled by itself
    return clock.throughput(config.batch_size)


def small_test_set(data: FashionMNIST) -> FashionMNIST:
    """The data with 1000 test images: the job's final evaluation is not what is measured."""
    return FashionMNIST(data.train_images, data.train_labels, data.test_images[:1000], data.test_labels[:1000], "")


def measure_training_throughput(
    architecture: str = "seed_cnn", batch_size: int = 64, steps: int = 300, repeats: int = 3
) -> dict:
    """Images per second inside a `TrainingJob` and in a bare `model.fit`, alternated `repeats` times.

    Ratios use each side's best run: on a shared CPU the best run is the one least disturbed.
    `ratio_cpu` (images per CPU second) is the fairer one when other programs share the CPU.

    Args:
        architecture: the model to train. Defaults to `"seed_cnn"`.
        batch_size: images per step. Defaults to 64 (the Quick preset's).
        steps: training steps per run. Defaults to 300.
        repeats: runs of each kind. Defaults to 3.

    Returns:
        A JSON-ready dict: the settings; `job_images_per_second` and `fit_images_per_second`, the
        best runs (wall clock), and the same per CPU second; every run's figures (`*_runs_*`); and
        `ratio` and `ratio_cpu` (job / bare fit; the goal is at least 0.95).
    """
    data = load_fashion_mnist(download=False)
    config = benchmark_config(architecture, batch_size, steps)
    job_rates, fit_rates = [], []
    for _ in range(repeats):
        fit_rates.append(time_bare_fit(config, data))
        job_rates.append(time_job(config, data))
    job_wall, fit_wall = [rate.wall for rate in job_rates], [rate.wall for rate in fit_rates]
    job_cpu, fit_cpu = [rate.cpu for rate in job_rates], [rate.cpu for rate in fit_rates]
    return {
        "name": "training_throughput",
        "architecture": architecture,
        "batch_size": batch_size,
        "timed_steps": steps - WARMUP_STEPS - 1,
        "job_images_per_second": round(max(job_wall), 1),
        "fit_images_per_second": round(max(fit_wall), 1),
        "job_images_per_cpu_second": round(max(job_cpu), 1),
        "fit_images_per_cpu_second": round(max(fit_cpu), 1),
        "job_runs_images_per_second": [round(rate, 1) for rate in job_wall],
        "fit_runs_images_per_second": [round(rate, 1) for rate in fit_wall],
        "job_runs_images_per_cpu_second": [round(rate, 1) for rate in job_cpu],
        "fit_runs_images_per_cpu_second": [round(rate, 1) for rate in fit_cpu],
        "job_median": round(statistics.median(job_wall), 1),
        "fit_median": round(statistics.median(fit_wall), 1),
        "ratio": round(max(job_wall) / max(fit_wall), 3),
        "ratio_cpu": round(max(job_cpu) / max(fit_cpu), 3),
        "load_average": round(os.getloadavg()[0], 1),
        "goal": 0.95,
    }


def measure_cost_model(num_images: int = 20000) -> dict:
    """Per-image and per-step training costs of each architecture (the estimate's constants).

    Times one epoch at batch 256 and one at batch 16 per architecture in a bare `fit`; solving
    `seconds/step = step_cost + batch x image_cost` for the two gives both costs.
    """
    data = load_fashion_mnist(download=False)
    costs = {}
    for architecture in ("dense", "seed_cnn", "cnn"):
        seconds_per_step = {}
        for batch_size in (16, 256):
            steps = min(num_images // batch_size, 400)
            rate = time_bare_fit(benchmark_config(architecture, batch_size, steps), data).wall
            seconds_per_step[batch_size] = batch_size / rate
        image_cost = (seconds_per_step[256] - seconds_per_step[16]) / (256 - 16)
        costs[architecture] = {
            "seconds_per_image": round(image_cost, 7),
            "seconds_per_step": round(seconds_per_step[16] - 16 * image_cost, 5),
        }
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="seed_cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--costs", action="store_true", help="measure the run time estimate's constants instead")
    args = parser.parse_args()
    if args.costs:
        print(json.dumps(measure_cost_model(), indent=2))
    else:
        print(json.dumps(measure_training_throughput(args.architecture, args.batch_size, args.steps, args.repeats)))


if __name__ == "__main__":
    main()
