"""The learning rate a run will use: the cosine schedules' parameters, and the rates epoch by epoch.

One place decides each schedule (`augmented_schedule`, `clean_phase_schedule`):
`fashion_core.training.loop` builds the optimizers' Keras `CosineDecay` from them, and
`learning_rate_plan` evaluates them with NumPy, before a run starts, for the chart the Train page
draws beside Start. A test evaluates the Keras schedules and the plan at the same steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fashion_core.training.config import TrainingConfig
from fashion_core.training.throughput import split_sizes

POINTS_PER_EPOCH = 20  # samples per epoch of the drawn plan: smooth curves at any epoch count up to 100


@dataclass(frozen=True)
class LearningRatePlan:
    """A run's learning rate along its epochs.

    Attributes:
        epochs: where each rate is sampled, in epochs from the run's start (0 to `config.epochs`).
        rates: the learning rate there.
        clean_from: the epoch where the clean epochs (no augmentation, a fresh optimizer) begin, or `None`.
        drops_on_plateau: the rate also falls to 30% whenever validation loss stalls for two epochs,
            which cannot be known before the run: `rates` shows it as if it never stalled.
    """

    epochs: np.ndarray
    rates: np.ndarray
    clean_from: int | None
    drops_on_plateau: bool


def warmup_steps_for(epochs: int, steps_per_epoch: int) -> int:
    """Steps of linear learning-rate warm-up before the cosine decay: one epoch, at most a tenth of the run.

    Warm-up keeps the first large steps of a fresh batch-norm network from overshooting; a short run
    (the Quick preset's three epochs) cannot spend a whole epoch of its budget on it.
    """
    return min(steps_per_epoch, epochs * steps_per_epoch // 10)


@dataclass(frozen=True)
class CosineSchedule:
    """The parameters of a `keras.optimizers.schedules.CosineDecay` (alpha 0): from `initial`, a linear
    warm-up over `warmup_steps` to `warmup_target` (none without one), then a cosine to zero over
    `decay_steps`."""

    initial: float
    decay_steps: int
    warmup_steps: int = 0
    warmup_target: float | None = None

    def rates(self, steps: np.ndarray) -> np.ndarray:
        """The rate at each optimizer step of `steps`, as Keras' `CosineDecay` computes it."""
        steps = np.asarray(steps, dtype=float)
        if self.warmup_target is None:
            return self.initial * 0.5 * (1 + np.cos(math.pi * np.minimum(steps, self.decay_steps) / self.decay_steps))
        steps = np.minimum(steps, self.decay_steps + self.warmup_steps)
        warming = self.initial + (self.warmup_target - self.initial) * steps / self.warmup_steps
        decaying = self.warmup_target * 0.5 * (1 + np.cos(math.pi * (steps - self.warmup_steps) / self.decay_steps))
        return np.where(steps < self.warmup_steps, warming, decaying)


def augmented_schedule(config: TrainingConfig, steps_per_epoch: int) -> CosineSchedule | None:
    """The augmented epochs' schedule for `"cosine"` (`None`: the rate stays at `config.learning_rate`).

    It warms up from a tenth of the peak and decays to zero at the end of the augmented epochs, so
    that the best augmented epoch (which the clean epochs start from) comes from a settled network.
    """
    if config.schedule != "cosine":
        return None
    warmup_steps = warmup_steps_for(config.augmented_epochs, steps_per_epoch)
    decay_steps = max(config.augmented_epochs * steps_per_epoch - warmup_steps, 1)
    if warmup_steps == 0:
        return CosineSchedule(config.learning_rate, decay_steps)
    return CosineSchedule(config.learning_rate / 10, decay_steps, warmup_steps, config.learning_rate)


def clean_phase_schedule(config: TrainingConfig, steps_per_epoch: int) -> CosineSchedule:
    """The clean epochs' fresh optimizer's schedule: a tenth of the peak, cosine-decayed to zero over them."""
    return CosineSchedule(config.learning_rate / 10, max(config.final_clean_epochs * steps_per_epoch, 1))


def nominal_steps_per_epoch(config: TrainingConfig) -> int:
    """Steps per epoch from the config alone (a run mixing in photos takes a few more; the plan's shape in
    epochs is the same)."""
    num_train, _ = split_sizes(config)
    return max(math.ceil(num_train / config.batch_size), 1)


def learning_rate_plan(config: TrainingConfig, points_per_epoch: int = POINTS_PER_EPOCH) -> LearningRatePlan:
    """The learning rate `config`'s run will train at, sampled `points_per_epoch` times per epoch.

    Args:
        config: the run's hyperparameters.
        points_per_epoch: samples per epoch. Defaults to `POINTS_PER_EPOCH`.
    """
    steps_per_epoch = nominal_steps_per_epoch(config)
    epochs = np.linspace(0, config.epochs, config.epochs * points_per_epoch + 1)
    steps = np.floor(epochs * steps_per_epoch)
    clean_from = config.augmented_epochs if config.final_clean_epochs else None
    augmented = augmented_schedule(config, steps_per_epoch)
    rates = np.full(len(steps), config.learning_rate) if augmented is None else augmented.rates(steps)
    if clean_from is not None:
        in_clean = epochs > clean_from
        clean = clean_phase_schedule(config, steps_per_epoch)
        rates[in_clean] = clean.rates(steps[in_clean] - clean_from * steps_per_epoch)
    return LearningRatePlan(epochs, rates, clean_from, config.schedule == "plateau")
