"""The learning-rate plan the Train page draws: the same rates, step by step, as the Keras schedules a run uses."""

import dataclasses

import numpy as np
import pytest

from fashion_core.charts import learning_rate_plan_chart
from fashion_core.training import PRESETS, TrainingConfig
from fashion_core.training.loop import augmented_learning_rate, clean_phase_learning_rate
from fashion_core.training.schedule import learning_rate_plan, nominal_steps_per_epoch

CONFIGS = {
    **PRESETS,  # Best: warm-up, cosine, then clean epochs with a fresh optimizer
    "no warm-up": TrainingConfig(epochs=1, subset_size=1000, batch_size=256, schedule="cosine", augment=False),
    "constant": TrainingConfig(epochs=4, schedule="none", learning_rate=1e-3),
    "plateau": TrainingConfig(epochs=4, schedule="plateau", learning_rate=3e-3),
}


def keras_rate(schedule, step: float) -> float:
    """A Keras learning rate (a number or a schedule) at an optimizer step."""
    return float(schedule(step)) if callable(schedule) else float(schedule)


@pytest.mark.parametrize("name", CONFIGS)
def test_plan_matches_the_keras_schedules_the_run_uses(name):
    """Test that every sampled rate equals the Keras schedule's at that step (augmented, then clean phase)."""
    config = CONFIGS[name]
    plan = learning_rate_plan(config, points_per_epoch=7)
    steps_per_epoch = nominal_steps_per_epoch(config)
    augmented = augmented_learning_rate(config, steps_per_epoch)
    clean = clean_phase_learning_rate(config, steps_per_epoch) if config.final_clean_epochs else None
    expected = []
    for epoch in plan.epochs:
        step = np.floor(epoch * steps_per_epoch)
        if clean is not None and epoch > config.augmented_epochs:
            expected.append(keras_rate(clean, step - config.augmented_epochs * steps_per_epoch))
        else:
            expected.append(keras_rate(augmented, step))
    np.testing.assert_allclose(plan.rates, expected, rtol=1e-5, atol=1e-9)


def test_plan_spans_the_run_and_marks_its_clean_epochs_and_plateau_drops():
    """Test the plan's extent, the clean epochs' start, warm-up to the peak and the plateau flag."""
    best = learning_rate_plan(PRESETS["Best"])
    assert best.epochs[0] == 0 and best.epochs[-1] == PRESETS["Best"].epochs
    assert best.clean_from == PRESETS["Best"].augmented_epochs
    assert best.rates.max() == pytest.approx(PRESETS["Best"].learning_rate)
    assert best.rates[0] < best.rates.max()  # warm-up starts at a tenth of the peak
    assert learning_rate_plan(PRESETS["Quick"]).clean_from is None
    assert learning_rate_plan(CONFIGS["plateau"]).drops_on_plateau
    assert not learning_rate_plan(CONFIGS["constant"]).drops_on_plateau
    np.testing.assert_allclose(learning_rate_plan(CONFIGS["constant"]).rates, 1e-3)


def test_plan_chart_draws_the_rates_with_the_clean_epochs_and_the_plateau_note():
    """Test the chart's curve, its x range over the whole run, the clean-epochs line and the plateau note."""
    best = learning_rate_plan(PRESETS["Best"])
    figure = learning_rate_plan_chart(best)
    np.testing.assert_allclose(figure.data[0].y, best.rates)
    assert list(figure.layout.xaxis.range) == [0, PRESETS["Best"].epochs]
    assert [shape.x0 for shape in figure.layout.shapes] == [best.clean_from]
    assert "clean epochs" in [annotation.text for annotation in figure.layout.annotations]
    plateau = learning_rate_plan_chart(learning_rate_plan(CONFIGS["plateau"]))
    assert not plateau.layout.shapes
    assert any("validation loss stalls" in annotation.text for annotation in plateau.layout.annotations)


def test_nominal_steps_per_epoch_counts_the_training_part_of_the_subset():
    """Test the steps per epoch without data: the subset less its validation part, in whole batches."""
    config = dataclasses.replace(PRESETS["Quick"], subset_size=10_000, validation_fraction=0.1, batch_size=128)
    assert nominal_steps_per_epoch(config) == 71  # ceil(9000 / 128)
