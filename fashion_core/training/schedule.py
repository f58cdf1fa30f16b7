"""The learning rate a run will use, epoch by epoch, computed with NumPy before it starts.

The Train page draws it beside Start so that the schedule, warm-up and clean epochs chosen on the
sliders can be seen before any time is spent. It mirrors the Keras schedules that
`fashion_core.training.loop` gives the optimizers (`augmented_learning_rate`,
`clean_phase_learning_rate`); a test evaluates both at the same steps, so the two cannot drift apart.
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


def cosine_rates(
    steps: np.ndarray, initial: float, decay_steps: int, warmup_steps: int = 0, warmup_target: float | None = None
) -> np.ndarray:
    """`keras.optimizers.schedules.CosineDecay` (alpha 0) at each of `steps`, as NumPy."""
    steps = np.asarray(steps, dtype=float)
    if warmup_target is None:
        return initial * 0.5 * (1 + np.cos(math.pi * np.minimum(steps, decay_steps) / decay_steps))
    steps = np.minimum(steps, decay_steps + warmup_steps)
    warming = initial + (warmup_target - initial) * steps / max(warmup_steps, 1)
    decaying = warmup_target * 0.5 * (1 + np.cos(math.pi * (steps - warmup_steps) / decay_steps))
    return np.where(steps < warmup_steps, warming, decaying)


def augmented_phase_rates(config: TrainingConfig, steps: np.ndarray, steps_per_epoch: int) -> np.ndarray:
    """The rate at each optimizer step of the augmented epochs (all epochs of a run without clean ones)."""
    if config.schedule != "cosine":
        return np.full(len(steps), config.learning_rate)
    warmup_steps = warmup_steps_for(config.augmented_epochs, steps_per_epoch)
    decay_steps = max(config.augmented_epochs * steps_per_epoch - warmup_steps, 1)
    if warmup_steps == 0:
        return cosine_rates(steps, config.learning_rate, decay_steps)
    return cosine_rates(steps, config.learning_rate / 10, decay_steps, warmup_steps, config.learning_rate)


def clean_phase_rates(config: TrainingConfig, steps: np.ndarray, steps_per_epoch: int) -> np.ndarray:
    """The rate at each step of the clean epochs' fresh optimizer: a tenth of the peak, cosine-decayed to zero."""
    return cosine_rates(steps, config.learning_rate / 10, max(config.final_clean_epochs * steps_per_epoch, 1))


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
    rates = augmented_phase_rates(config, steps, steps_per_epoch)
    if clean_from is not None:
        in_clean = epochs > clean_from
        rates[in_clean] = clean_phase_rates(config, steps[in_clean] - clean_from * steps_per_epoch, steps_per_epoch)
    return LearningRatePlan(epochs, rates, clean_from, config.schedule == "plateau")
