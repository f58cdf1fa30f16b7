"""Plotly figures as the browser receives them."""

from __future__ import annotations

import base64

import numpy as np


def plotly_array(value) -> np.ndarray:
    """A figure's array from its JSON: a plain (nested) list, or Plotly's typed array `{dtype, bdata, shape}`.

    Plotly packs small integers as int8 or int16; they come back as int64 so that arithmetic on them
    (the sum of a confusion matrix's counts) cannot overflow.
    """
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        if shape is not None:
            array = array.reshape([int(size) for size in str(shape).split(",")])
        return array.astype(np.int64) if array.dtype.kind in "iu" else array
    return np.asarray(value)
