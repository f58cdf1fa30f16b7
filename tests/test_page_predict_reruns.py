"""AppTest of what a Predict rerun computes: only the open tab's code, and only the new upload."""

import sys

import pytest
import streamlit as st

from fashion_core import explain
from pages.common import load_model
from tests.explain_page_support import navigation_app
from tests.test_page_predict import INPUT_TAB_KEY, PAGE, dev_photo


@pytest.fixture
def app():
    st.cache_data.clear()  # earlier tests may have cached these photos' results
    return navigation_app(PAGE)


def counted(monkeypatch, owner, name: str) -> list:
    """Replaces `owner.name` with a wrapper that records each call and calls the original."""
    calls, original = [], getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_the_drawing_tab_runs_only_when_it_is_open(app, monkeypatch):
    """Test that uploads never run the canvas (its 280x280 pixels are decoded on each run), and Draw does."""
    # The component registers itself when imported inside a run: the page's first run has imported it.
    canvas_calls = counted(monkeypatch, sys.modules["streamlit_drawable_canvas"], "st_canvas")
    name, data = dev_photo("trouser")
    app.file_uploader(key="predict_upload").set_value((name, data, "image/jpeg")).run()
    app.run()
    assert not app.exception
    assert canvas_calls == []
    assert [metric.label for metric in app.metric] == ["Predicted class", "Confidence"]
    app.session_state[INPUT_TAB_KEY] = "Draw"
    app.run()
    assert not app.exception
    assert len(canvas_calls) == 1
    assert [metric.label for metric in app.metric] == []  # the upload's answer is not computed either
    app.session_state[INPUT_TAB_KEY] = "Upload"
    app.run()
    assert app.file_uploader(key="predict_upload").value[0].name == name  # the closed tab kept the file
    assert [metric.label for metric in app.metric] == ["Predicted class", "Confidence"]


def test_a_new_upload_computes_only_itself(app, monkeypatch):
    """Test that adding a photo predicts and explains only that photo, and reruns reuse every result."""
    predictor = load_model("default").predictor
    predictions = counted(monkeypatch, type(predictor), "predict_one")
    explanations = counted(monkeypatch, explain, "default_gradcam")
    first, second = dev_photo("dress"), dev_photo("coat")
    uploader = app.file_uploader(key="predict_upload")
    uploader.set_value((*first, "image/jpeg")).run()
    assert (len(predictions), len(explanations)) == (1, 1)
    app.file_uploader(key="predict_upload").set_value([(*first, "image/jpeg"), (*second, "image/jpeg")]).run()
    assert not app.exception
    assert len(app.dataframe[0].value) == 2
    assert (len(predictions), len(explanations)) == (2, 1)  # the second photo's probabilities; details show the first
    app.selectbox(key="predict_detail_file").set_value(1).run()
    app.selectbox(key="predict_detail_file").set_value(0).run()
    app.run()
    assert not app.exception
    assert (len(predictions), len(explanations)) == (2, 2)  # the second's explanation, once
