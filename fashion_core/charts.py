"""Plotly figures the pages draw; pure functions of arrays, so they can be tested without Streamlit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from fashion_core.data import CLASS_NAMES

ACCENT = "#7c3aed"
MUTED = "#c4b5fd"


def _compact(figure: go.Figure, height: int) -> go.Figure:
    figure.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure


def probability_bar_chart(probabilities: Sequence[float], title: str = "Probabilities") -> go.Figure:
    """Horizontal bars of all ten class probabilities, the predicted class highlighted."""
    probabilities = np.asarray(probabilities, dtype=float)
    top = int(probabilities.argmax())
    colors = [ACCENT if i == top else MUTED for i in range(len(CLASS_NAMES))]
    figure = go.Figure(
        go.Bar(
            x=probabilities[::-1],
            y=list(CLASS_NAMES)[::-1],
            orientation="h",
            marker_color=colors[::-1],
            text=[f"{p:.1%}" for p in probabilities[::-1]],
            textposition="outside",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    figure.update_layout(title=title, xaxis={"range": [0, 1.15], "tickformat": ".0%"})
    return _compact(figure, 320)


def per_class_accuracy_chart(per_class_accuracy: dict[str, float] | Sequence[float], title: str = "") -> go.Figure:
    """Bars of each class's test accuracy, lowest first, so the hard classes stand out."""
    values = (
        [per_class_accuracy[name] for name in CLASS_NAMES]
        if isinstance(per_class_accuracy, dict)
        else list(per_class_accuracy)
    )
    order = np.argsort(values)
    figure = go.Figure(
        go.Bar(
            x=[values[i] for i in order],
            y=[CLASS_NAMES[i] for i in order],
            orientation="h",
            marker_color=ACCENT,
            text=[f"{values[i]:.1%}" for i in order],
            textposition="inside",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    low = max(min(values) - 0.1, 0.0)
    figure.update_layout(title=title or "Test accuracy per class", xaxis={"range": [low, 1.0], "tickformat": ".0%"})
    return _compact(figure, 340)


def confusion_matrix_heatmap(matrix: np.ndarray, normalize: bool = False) -> go.Figure:
    """The confusion matrix, true classes down and predicted across; row-normalised if asked."""
    matrix = np.asarray(matrix)
    values = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    text = [[f"{v:.0%}" if normalize else str(int(v)) for v in row] for row in values]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=list(CLASS_NAMES),
            y=list(CLASS_NAMES),
            colorscale="Purples",
            text=text,
            texttemplate="%{text}",
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        )
    )
    figure.update_layout(xaxis_title="Predicted", yaxis_title="True", yaxis_autorange="reversed")
    return _compact(figure, 520)


def pixel_heatmap(image: np.ndarray, title: str = "") -> go.Figure:
    """A grey image as a heat map whose hover shows each pixel's row, column and value."""
    figure = go.Figure(
        go.Heatmap(
            z=np.asarray(image),
            colorscale="gray",
            zmin=0,
            zmax=255,
            showscale=False,
            hovertemplate="row %{y}, column %{x}: %{z}<extra></extra>",
        )
    )
    figure.update_layout(title=title, yaxis={"autorange": "reversed", "scaleanchor": "x"}, xaxis={"visible": False})
    figure.update_yaxes(visible=False)
    return _compact(figure, 360)
