"""One harness for the tests: the app under AppTest, the elements a user reads, and Plotly figures.

`open_app(page)` builds and runs the app; `plotly_spec`, `plotly_array`, `image_urls`, `html_table`,
`html_meters`, `html_values`, `html_value_help`, `html_figures`, `metrics` and `rerun_until` read
what it shows; `tensorflow_still_loading` holds Keras
models back, as a server importing TensorFlow does. The dataset, the shipped model and private folders
are fixtures in `tests/conftest.py`.
"""

from tests.support.apptest import (
    REPO_ROOT,
    TIMEOUT,
    as_shown,
    caption_starting,
    html_figures,
    html_meters,
    html_table,
    html_value_help,
    html_values,
    image_urls,
    metrics,
    open_app,
    plotly_spec,
    plotly_specs,
    rerun_until,
    shown_class,
    tensorflow_still_loading,
    wait_for_warmup,
)
from tests.support.plotly import plotly_array

__all__ = [
    "REPO_ROOT",
    "TIMEOUT",
    "as_shown",
    "caption_starting",
    "html_figures",
    "html_meters",
    "html_table",
    "html_value_help",
    "html_values",
    "image_urls",
    "metrics",
    "open_app",
    "plotly_array",
    "plotly_spec",
    "plotly_specs",
    "rerun_until",
    "shown_class",
    "tensorflow_still_loading",
    "wait_for_warmup",
]
