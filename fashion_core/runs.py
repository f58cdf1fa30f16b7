"""Saved runs side by side: the registry as a table, and their per-epoch histories for comparison."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from fashion_core.registry import ModelEntry

HISTORY_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")
TABLE_COLUMNS = ["Name", "Kind", "Architecture", "Epochs", "Test accuracy", "Trained at", "Size (MB)"]


def models_table(entries: Sequence[ModelEntry]) -> pd.DataFrame:
    """One row per readable model: name, shipped or user, architecture, epochs, test accuracy, date, size.

    Unknown facts (a model saved without them) are left empty rather than guessed.
    """
    rows = []
    for entry in entries:
        if not entry.readable:
            continue
        metadata = entry.metadata
        rows.append(
            {
                "Name": entry.name,
                "Kind": "shipped" if entry.shipped else "user",
                "Architecture": metadata.architecture,
                "Epochs": metadata.epochs_run,
                "Test accuracy": metadata.reported_test_accuracy,
                "Trained at": metadata.created_at or None,
                "Size (MB)": round(entry.size_bytes / 1e6, 2),
            }
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.astype({"Epochs": "Int64", "Test accuracy": "Float64"})


def run_histories(entries: Sequence[ModelEntry], metric: str = "val_accuracy") -> dict[str, list[dict]]:
    """`{name: metadata["history"]}` of the readable models whose history has `metric`, in entry order."""
    histories = {}
    for entry in entries:
        history = entry.metadata.history if entry.readable else []
        if any(isinstance(log, dict) and metric in log for log in history):
            histories[entry.name] = [log for log in history if isinstance(log, dict)]
    return histories
