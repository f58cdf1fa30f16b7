"""Unit tests of chart helpers that the pages' Plotly figures share."""

import math

import numpy as np
import pytest

from fashion_core.charts import percent_axis, runs_history_chart


def plotly_like_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Ticks as Plotly places them on a linear axis: a 1, 2 or 5 times a power of ten step, about `target` of them."""
    rough = (high - low) / target
    power = 10 ** math.floor(math.log10(rough))
    step = min((factor * power for factor in (1, 2, 5, 10) if factor * power >= rough), default=10 * power)
    first = math.ceil(low / step)
    return [index * step for index in range(first, math.floor(high / step) + 1)]


@pytest.mark.parametrize("low, spread", [(0.9467, 0.0026), (0.91, 0.008), (0.80, 0.03), (0.35, 0.6), (0.9, 0.0004)])
def test_percent_ticks_never_read_the_same_twice(low, spread):
    """Test that the axis's decimals tell apart every tick Plotly would place over the values' range."""
    values = np.linspace(low, low + spread, 5)
    decimals = int(percent_axis(values)["tickformat"][1:-1])
    ticks = plotly_like_ticks(values.min(), values.max())
    labels = [f"{tick:.{decimals}%}" for tick in ticks]
    assert len(ticks) >= 2 and len(set(labels)) == len(labels), labels


def test_percent_axis_ignores_missing_values_and_keeps_whole_percent_for_wide_ranges():
    """Test that `None` and NaN are skipped, and that a wide range keeps whole percents."""
    assert percent_axis([0.2, None, float("nan"), 0.9]) == {"tickformat": ".0%"}
    assert percent_axis([]) == {"tickformat": ".0%"}


def test_comparing_runs_that_differ_by_tenths_of_a_percent_gives_two_decimal_ticks():
    """Test that the run comparison's accuracy axis follows its curves' spread (as on the Models page)."""
    history = [{"epoch": 1, "val_accuracy": 0.9467}, {"epoch": 2, "val_accuracy": 0.9493}]
    figure = runs_history_chart({"default": history})
    assert figure.layout.yaxis.tickformat == ".2%"
    loss = runs_history_chart({"default": [{"epoch": 1, "val_loss": 0.3}]}, metric="val_loss")
    assert loss.layout.yaxis.tickformat is None
