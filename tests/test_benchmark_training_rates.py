"""The browser benchmark's training rates: what it reads off the Train page and Keras' epoch lines."""

import pytest

from benchmarks.browser import (
    EPOCH_RATE_LINE,
    PROGRESS,
    QUICK_BATCH_SIZE,
    ProgressReading,
    second_epoch_rate,
    training_pairs_summary,
    training_ratios,
)
from fashion_core.training import PRESETS

BATCH_SIZE = 128
STEPS_PER_EPOCH = 100


def reading_of_a_run(epoch: int, batch: int, start_up_s: float = 3.0, steps_per_s: float = 10.0) -> ProgressReading:
    """What the page shows for a run that spent `start_up_s` before its first step, then ran steadily."""
    steps = (epoch - 1) * STEPS_PER_EPOCH + batch
    elapsed = start_up_s + steps / steps_per_s
    return ProgressReading(epoch, batch, STEPS_PER_EPOCH, steps * BATCH_SIZE / elapsed)


def test_second_epoch_rate_leaves_the_start_up_out():
    readings = [reading_of_a_run(1, 40), reading_of_a_run(2, 7), reading_of_a_run(2, 80), reading_of_a_run(3, 2)]

    assert readings[1].images_per_second < 1280  # the page's own figure includes the start-up
    assert second_epoch_rate(readings, BATCH_SIZE) == pytest.approx(1280, abs=0.1)


def test_a_reading_that_still_shows_the_last_epochs_batch_count_is_skipped():
    # Just after epoch 2 begins the line reads "Epoch 2, batch 100 of 100": 100 steps, not 200.
    stale = ProgressReading(2, STEPS_PER_EPOCH, STEPS_PER_EPOCH, reading_of_a_run(1, STEPS_PER_EPOCH).images_per_second)
    readings = [stale, reading_of_a_run(2, 10), reading_of_a_run(3, STEPS_PER_EPOCH), reading_of_a_run(3, 5)]

    assert second_epoch_rate(readings, BATCH_SIZE) == pytest.approx(1280, abs=0.1)


def test_no_second_epoch_rate_without_readings_inside_epochs_two_and_three():
    assert second_epoch_rate([reading_of_a_run(1, 50), reading_of_a_run(2, 30)], BATCH_SIZE) is None
    assert second_epoch_rate([], BATCH_SIZE) is None


def test_training_ratios_are_given_only_for_epochs_both_sides_measured():
    app = {"images_per_second_first_epoch": 900.0, "images_per_second_second_epoch": None}
    cli = {"images_per_second_first_epoch": 1000.0, "images_per_second_second_epoch": 1200.0}

    assert training_ratios(app, cli) == {"train_ratio_browser_vs_cli": 0.9}
    assert training_ratios(app, {"error": "Keras printed no epoch line"}) == {}


def test_the_patterns_read_the_pages_progress_line_and_the_clis_epoch_rates():
    line = "Epoch 2 of 3, batch 17 of 422 · 1,425 images/s · about 31 s left"
    cli_output = "Epoch 1/2\n422/422 - 41s - 97ms/step - accuracy: 0.81\nEpoch 1: 1,319.6 images/s\nEpoch 2/2\n"

    assert PROGRESS.search(line).groups() == ("2", "3", "17", "422", "1,425")
    assert EPOCH_RATE_LINE.findall(cli_output) == [("1", "1,319.6")]


def test_the_benchmarks_batch_size_is_the_quick_presets():
    assert PRESETS["Quick"].batch_size == QUICK_BATCH_SIZE


def test_pairs_give_the_median_ratio_and_every_pairs_ratio():
    """Test that three app/CLI pairs give the median of their ratios (not the ratio of the medians) and
    list each, and that the peak memory is the highest of the runs."""
    runs = [(900.0, 1000.0, 1100.0, 1000.0), (950.0, 1000.0, 1000.0, 1000.0), (800.0, 1000.0, 1050.0, 1100.0)]
    pairs = [
        (
            {"images_per_second_first_epoch": app1, "images_per_second_second_epoch": app2,
             "rss_mb_peak_during_training": 1000.0 + index},
            {"images_per_second_first_epoch": cli1, "images_per_second_second_epoch": cli2},
        )
        for index, (app1, cli1, app2, cli2) in enumerate(runs)
    ]  # fmt: skip

    summary = training_pairs_summary(pairs)

    assert summary["train_ratio_browser_vs_cli_pairs"] == [0.9, 0.95, 0.8]
    assert summary["train_ratio_browser_vs_cli"] == 0.9
    assert summary["train_ratio_browser_vs_cli_second_epoch_pairs"] == [1.1, 1.0, 0.955]
    assert summary["train_ratio_browser_vs_cli_second_epoch"] == 1.0
    assert summary["train_in_browser"] == {
        "rss_mb_peak_during_training": 1002.0,
        "images_per_second_first_epoch": 900.0,
        "images_per_second_second_epoch": 1050.0,
    }
    assert summary["train_pairs"] == 3
