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


def percent_axis(values: Sequence[float]) -> dict:
    """An axis in percent with as many decimals as the values' spread needs, so that no two ticks read the same.

    Plotly puts about six ticks over the range: accuracies of 94.7% to 94.9% on a `.1%` axis read "94.8%"
    three times.
    """
    finite = [float(value) for value in values if value is not None and np.isfinite(value)]
    spread = max(finite) - min(finite) if finite else 1.0
    decimals = 0 if spread >= 0.1 else 1 if spread >= 0.01 else 2
    return {"tickformat": f".{decimals}%"}


def _plotted_values(figure: go.Figure) -> list[float]:
    return [value for trace in figure.data for value in (trace.y if trace.y is not None else ())]


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
            textposition="auto",  # inside long bars, beside short ones (a 0% class still shows its label)
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


CLASS_COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#5f6b6d",
)  # Tableau 10: one distinguishable colour a class


def class_count_chart(counts: Sequence[int], highlighted: Sequence[int] = (), title: str = "") -> go.Figure:
    """Bars of the number of images of each class; `highlighted` classes in the accent colour, others muted."""
    counts = np.asarray(counts)
    highlighted = set(highlighted)
    colors = [ACCENT if not highlighted or i in highlighted else MUTED for i in range(len(CLASS_NAMES))]
    figure = go.Figure(
        go.Bar(
            x=list(CLASS_NAMES),
            y=counts,
            marker_color=colors,
            text=[f"{int(count):,}" for count in counts],
            textposition="outside",
            hovertemplate="%{x}: %{y:,} images<extra></extra>",
        )
    )
    top = counts.max() * 1.15 if counts.size else 1  # room for the labels above the bars
    figure.update_layout(title=title or "Images per class", yaxis={"range": [0, top]})
    return _compact(figure, 320)


def embedding_scatter(
    coordinates: np.ndarray, labels: np.ndarray, indices: np.ndarray, selected_index: int | None = None
) -> go.Figure:
    """A 2-D embedding, one trace (and legend entry) a class; each point's `customdata` is its dataset index.

    Args:
        coordinates: `(N, 2)` projected features.
        labels: `(N,)` class of each point.
        indices: `(N,)` dataset index of each point, shown on hover and returned by a selection.
        selected_index: a dataset index to mark with a ring, if it is among `indices`. Defaults to `None`.
    """
    coordinates, labels, indices = np.asarray(coordinates), np.asarray(labels), np.asarray(indices)
    figure = go.Figure()
    for class_index, name in enumerate(CLASS_NAMES):
        members = labels == class_index
        figure.add_trace(
            go.Scatter(
                x=coordinates[members, 0],
                y=coordinates[members, 1],
                mode="markers",
                name=name,
                marker={"color": CLASS_COLORS[class_index], "size": 5, "opacity": 0.75},
                customdata=indices[members],
                hovertemplate=f"#%{{customdata}} · {name}<extra></extra>",
            )
        )
    marked = np.flatnonzero(indices == selected_index) if selected_index is not None else []
    if len(marked):
        point = coordinates[marked[0]]
        figure.add_trace(
            go.Scatter(
                x=[point[0]],
                y=[point[1]],
                mode="markers",
                name="Selected",
                marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 2.5, "color": "black"}},
                hoverinfo="skip",
            )
        )
    figure.update_layout(
        xaxis={"title": "first principal component", "zeroline": False},
        yaxis={"title": "second principal component", "zeroline": False},
        legend={"itemsizing": "constant"},
        clickmode="event+select",
        dragmode="pan",
    )
    return _compact(figure, 560)


VALIDATION_COLOR = "#f59e0b"
PHOTO_VALIDATION_COLOR = "#0d9488"
MAX_CURVE_POINTS = 1500  # per training curve: a longer run is drawn as means of consecutive batches
METRIC_TITLES = {
    "loss": "Loss",
    "accuracy": "Accuracy",
    "val_loss": "Validation loss",
    "val_accuracy": "Validation accuracy",
    "photo_val_accuracy": "Photo validation accuracy",
}


def exponential_moving_average(values: Sequence[float], smoothing: float = 0.9) -> np.ndarray:
    """TensorBoard-style smoothing: an EMA with its start-up bias removed; NaNs are skipped (kept NaN).

    Args:
        values: the raw series.
        smoothing: 0..1, the weight of the past. Defaults to 0.9.
    """
    import pandas as pd  # here rather than at the top: the functions above do not need it

    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    # adjust=True divides by the sum of the weights, which is exactly the start-up bias correction.
    smoothed = pd.Series(np.where(finite, values, np.nan)).ewm(alpha=1 - smoothing, adjust=True, ignore_na=True)
    return np.where(finite, smoothed.mean().to_numpy(), np.nan)


def _bin_means(values: np.ndarray, size: int) -> np.ndarray:
    """Means of consecutive runs of `size` values (the last run may be shorter), ignoring NaNs."""
    padded = np.full(-(-len(values) // size) * size, np.nan)
    padded[: len(values)] = values
    bins = padded.reshape(-1, size)
    counts = np.isfinite(bins).sum(axis=1)
    sums = np.where(np.isfinite(bins), bins, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(bins), np.nan), where=counts > 0)


def training_curves_chart(
    progress,
    metric: str = "loss",
    smoothing: float = 0.9,
    max_points: int = MAX_CURVE_POINTS,
    augmentation_ends_at: int | None = None,
) -> go.Figure:
    """A run's training curve per batch (raw and smoothed) and its validation curve per epoch.

    For accuracy, a run that scored labelled real photos after each epoch (`photo_val_accuracy` in
    its epoch logs) gets that curve too, dashed, beside the Fashion-MNIST validation curve.

    The x axis is in epochs, so batch `k` of epoch `e` sits at `e - 1 + k / steps_per_epoch` and
    an epoch's validation value at `e`. A run longer than `max_points` batches is drawn as means of
    consecutive batches (and smoothed with the equivalent weight), which keeps each refresh light.

    Args:
        progress: a run's `fashion_core.training.callbacks.TrainingProgress` (or any object with
            `batch_steps`, `batch_loss`, `batch_accuracy`, `epoch_logs` and `steps_per_epoch`).
        metric: `"loss"` or `"accuracy"`. Defaults to `"loss"`.
        smoothing: the EMA weight of the past, per batch. Defaults to 0.9.
        max_points: at most this many points per training curve. Defaults to `MAX_CURVE_POINTS`.
        augmentation_ends_at: the epoch after which the run trains without augmentation (the
            training curves jump there, as the images get easier), marked with a dotted line.
            Defaults to none.
    """
    steps = np.asarray(progress.batch_steps, dtype=float)
    raw = np.asarray(getattr(progress, f"batch_{metric}"), dtype=float)
    bin_size = max(1, -(-len(steps) // max_points))
    if bin_size > 1:
        steps, raw = steps[bin_size - 1 :: bin_size], _bin_means(raw, bin_size)
        steps = np.append(steps, progress.batch_steps[-1]) if len(steps) < len(raw) else steps
    x = steps / max(progress.steps_per_epoch, 1)
    raw_name = "training, per batch" if bin_size == 1 else f"training, per {bin_size} batches"
    logs = [log for log in progress.epoch_logs if f"val_{metric}" in log]
    figure = go.Figure(
        [
            go.Scatter(x=x, y=raw, name=raw_name, mode="lines", line={"color": MUTED, "width": 1}),
            go.Scatter(
                x=x,
                y=exponential_moving_average(raw, smoothing**bin_size),
                name="training, smoothed",
                mode="lines",
                line={"color": ACCENT, "width": 2.5},
            ),
            go.Scatter(
                # A run stopped mid-epoch was validated where it stopped, not at the epoch's end.
                x=[min(log["epoch"], x[-1] if len(x) else log["epoch"]) for log in logs],
                y=[log[f"val_{metric}"] for log in logs],
                name="validation, per epoch",
                mode="lines+markers",
                line={"color": VALIDATION_COLOR, "width": 2},
                marker={"size": 8},
            ),
        ]
    )
    photo_logs = [log for log in progress.epoch_logs if "photo_val_accuracy" in log]
    if metric == "accuracy" and photo_logs:  # a run with labelled photos scores their `val` split too
        figure.add_trace(
            go.Scatter(
                x=[min(log["epoch"], x[-1] if len(x) else log["epoch"]) for log in photo_logs],
                y=[log["photo_val_accuracy"] for log in photo_logs],
                name="real photos (val), per epoch",
                mode="lines+markers",
                line={"color": PHOTO_VALIDATION_COLOR, "width": 2, "dash": "dash"},
                marker={"size": 8, "symbol": "diamond"},
            )
        )
    figure.update_layout(
        title=METRIC_TITLES.get(metric, metric),
        xaxis_title="epoch",
        yaxis=percent_axis(_plotted_values(figure)) if metric == "accuracy" else {},
        legend={"orientation": "h", "y": -0.25},
        uirevision=metric,  # keeps the user's zoom while the data grows
    )
    if augmentation_ends_at is not None:
        figure.add_vline(
            x=augmentation_ends_at,
            line={"color": MUTED, "dash": "dot"},
            annotation_text="augmentation off",
            annotation_position="top left",
        )
    return _compact(figure, 360)


def learning_rate_plan_chart(plan) -> go.Figure:
    """The learning rate a run will train at, along its epochs, drawn before it starts.

    Args:
        plan: a `fashion_core.training.schedule.LearningRatePlan` (or any object with `epochs`,
            `rates`, `clean_from` and `drops_on_plateau`).
    """
    figure = go.Figure(
        go.Scatter(
            x=plan.epochs,
            y=plan.rates,
            mode="lines",
            line={"color": ACCENT, "width": 2},
            fill="tozeroy",
            fillcolor="rgba(124, 58, 237, 0.12)",
            hovertemplate="epoch %{x:.2f}: %{y:.2e}<extra></extra>",
        )
    )
    figure.update_layout(
        title="Learning rate over the run",
        xaxis={"title": "epoch", "range": [0, float(plan.epochs[-1]) if len(plan.epochs) else 1]},
        yaxis={"tickformat": ".1e", "rangemode": "tozero"},
        showlegend=False,
    )
    if plan.clean_from is not None:
        figure.add_vline(
            x=plan.clean_from,
            line={"color": MUTED, "dash": "dot"},
            annotation_text="clean epochs",
            annotation_position="top right",
        )
    if plan.drops_on_plateau:
        figure.add_annotation(
            text="drops to 30% when validation loss stalls",
            xref="paper",
            yref="paper",
            x=1,
            y=0.05,
            xanchor="right",
            showarrow=False,
            font={"size": 11},
        )
    return _compact(figure, 220)


def runs_history_chart(histories: dict[str, Sequence[dict]], metric: str = "val_accuracy") -> go.Figure:
    """Several runs' per-epoch curves of one metric overlaid, one line per run.

    Args:
        histories: run name to its per-epoch logs (`metadata["history"]`: dicts with `epoch` and
            metric values).
        metric: the metric to draw. Defaults to `"val_accuracy"`.
    """
    figure = go.Figure()
    for name, history in histories.items():
        points = [(log.get("epoch", index + 1), log[metric]) for index, log in enumerate(history) if metric in log]
        figure.add_trace(
            go.Scatter(
                x=[epoch for epoch, _ in points],
                y=[value for _, value in points],
                name=name,
                mode="lines+markers",
                hovertemplate=f"{name}: epoch %{{x}}, %{{y:.4f}}<extra></extra>",
            )
        )
    figure.update_layout(
        title=f"{METRIC_TITLES.get(metric, metric)} per epoch",
        xaxis_title="epoch",
        yaxis=percent_axis(_plotted_values(figure)) if metric.endswith("accuracy") else {},
        legend={"orientation": "h", "y": -0.25},
    )
    return _compact(figure, 380)


def reliability_diagram(bins_by_set: dict[str, Sequence], title: str = "Reliability") -> go.Figure:
    """Accuracy against mean confidence per confidence bin, one line per set, against the diagonal.

    Args:
        bins_by_set: set name (e.g. `"Test images (ECE 1.2%)"`) -> its `calibration.ReliabilityBin`s
            (anything with `lower`, `upper`, `count`, `confidence` and `accuracy`).
        title: the chart's title. Defaults to "Reliability".

    A calibrated model's points lie on the diagonal; points below it are over-confident bins, above
    it under-confident ones. Each point's size grows with its bin's number of answers.
    """
    figure = go.Figure(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="Perfect calibration", line={"dash": "dot", "color": "#9ca3af"}
        )
    )
    colors = [ACCENT, "#f59e0b", "#10b981", "#ef4444"]
    for index, (name, bins) in enumerate(bins_by_set.items()):
        counts = np.array([item.count for item in bins], dtype=float)
        figure.add_trace(
            go.Scatter(
                x=[item.confidence for item in bins],
                y=[item.accuracy for item in bins],
                mode="lines+markers",
                name=name,
                line={"color": colors[index % len(colors)]},
                marker={"size": 6 + 14 * np.sqrt(counts / max(counts.max(), 1))},
                customdata=[[item.lower, item.upper, item.count] for item in bins],
                hovertemplate="confidence %{customdata[0]:.0%}-%{customdata[1]:.0%}: %{customdata[2]} answers, "
                "mean confidence %{x:.1%}, right %{y:.1%}<extra></extra>",
            )
        )
    figure.update_layout(
        title=title,
        xaxis={"title": "Confidence (mean of the bin)", "range": [0, 1.02], "tickformat": ".0%"},
        yaxis={"title": "Accuracy", "range": [0, 1.02], "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2},
    )
    return _compact(figure, 420)


def coverage_chart(
    coverage: Sequence[float],
    accuracy: Sequence[float],
    threshold: float | None = None,
    thresholds: Sequence[float] | None = None,
    target_accuracy: float | None = None,
    title: str = "Accuracy against coverage",
) -> go.Figure:
    """Accuracy of the answers given against the share of images answered, most confident first.

    Args:
        coverage: `(N,)` shares answered (`calibration.CoverageCurve.coverage`).
        accuracy: `(N,)` accuracy of those answers.
        threshold: the model's "unsure" threshold, marked on the curve when given with `thresholds`.
        thresholds: `(N,)` the confidence at each point (`CoverageCurve.thresholds`).
        target_accuracy: drawn as a dotted line when given.
        title: the chart's title.
    """
    coverage, accuracy = np.asarray(coverage, dtype=float), np.asarray(accuracy, dtype=float)
    figure = go.Figure(
        go.Scatter(
            x=coverage,
            y=accuracy,
            mode="lines",
            name="Answers at or above a confidence",
            line={"color": ACCENT},
            customdata=None if thresholds is None else np.asarray(thresholds, dtype=float),
            hovertemplate="answers %{x:.0%}, right %{y:.1%}"
            + ("" if thresholds is None else ", confidence >= %{customdata:.1%}")
            + "<extra></extra>",
        )
    )
    if target_accuracy is not None:
        figure.add_hline(y=target_accuracy, line_dash="dot", line_color="#9ca3af",
                         annotation_text=f"target {target_accuracy:.0%}")  # fmt: skip
    if threshold is not None and thresholds is not None and len(coverage):
        answered = int((np.asarray(thresholds) >= threshold).sum())
        if answered:
            figure.add_trace(
                go.Scatter(
                    x=[coverage[answered - 1]],
                    y=[accuracy[answered - 1]],
                    mode="markers+text",
                    name=f'"Unsure" below {threshold:.0%}',
                    marker={"size": 14, "color": "#f59e0b", "symbol": "diamond"},
                    text=[f"{coverage[answered - 1]:.0%} answered, {accuracy[answered - 1]:.0%} right"],
                    textposition="bottom right",
                    hovertemplate="the model's threshold: answers %{x:.0%}, right %{y:.1%}<extra></extra>",
                )
            )
    low = float(min(accuracy.min(), target_accuracy or 1.0)) if len(accuracy) else 0.0
    figure.update_layout(
        title=title,
        xaxis={"title": "Share of images answered (coverage)", "range": [0, 1.02], "tickformat": ".0%"},
        yaxis={"title": "Accuracy of the answers given", "range": [max(low - 0.05, 0), 1.02], "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2},
    )
    return _compact(figure, 420)
