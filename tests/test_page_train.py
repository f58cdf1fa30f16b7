"""AppTest of the Train page: presets, a background run with live curves, Stop, Save and Use.

The run is a real `TrainingJob` whose `train()` replays a scripted run (`tests/support/scripted_training.py`),
so each rerun shows a known state; real training is tested in `test_training.py` and `test_job.py`.
"""

import re

import numpy as np
import pytest
import streamlit as st

from fashion_core.registry import ModelRegistry
from fashion_core.training import job as job_module
from fashion_core.training.callbacks import per_batch_values
from tests.support import caption_starting, metrics, open_app, plotly_array, plotly_spec, plotly_specs, rerun_until
from tests.support.scripted_training import ScriptedTraining, scripted_running_means

PAGE = "pages/train.py"


@pytest.fixture
def models_dir(private_user_models):
    return private_user_models


@pytest.fixture
def scripted_training(monkeypatch):
    """Jobs started from the page replay a scripted run; the server's job manager starts empty."""
    scripted = ScriptedTraining()
    monkeypatch.setattr(job_module, "train", scripted)
    st.cache_resource.clear()  # `job_manager()` is one per process: forget earlier tests' jobs
    yield scripted
    scripted.close()
    st.cache_resource.clear()


def live_loss_curve(app) -> np.ndarray:
    """The live loss chart's per-batch values (empty when the chart is not drawn)."""
    if not any(element_id.endswith("train_live_loss") for element_id in plotly_specs(app)):
        return np.zeros(0)
    return plotly_array(plotly_spec(app, "train_live_loss")["data"][0]["y"]).astype(float)


def progress_text(app) -> str:
    return app.get("progress")[0].proto.text


def test_presets_fill_the_form_and_the_estimate_follows_it(models_dir):
    """Test that a preset sets every field and that the run time estimate follows the chosen values."""
    app = open_app(PAGE)
    assert not app.exception
    app.selectbox(key="train_preset").set_value("Standard").run()
    assert app.selectbox(key="train_architecture").value == "cnn"
    assert app.slider(key="train_epochs").value == 8
    assert app.select_slider(key="train_learning_rate").value == pytest.approx(3e-3)
    assert app.checkbox(key="train_augment").value is True
    assert app.slider(key="train_augment_strength").value == pytest.approx(0.3)
    caption_starting(app, "60,000 images x 8 epochs at about")

    app.selectbox(key="train_preset").set_value("Quick").run()
    values = {key: app.slider(key=key).value for key in ("train_epochs", "train_subset_size", "train_dropout")}
    assert values == {"train_epochs": 3, "train_subset_size": 60000, "train_dropout": pytest.approx(0.15)}
    assert app.select_slider(key="train_batch_size").value == 128
    assert app.select_slider(key="train_learning_rate").value == pytest.approx(4e-3)  # as measured, not snapped
    assert app.selectbox(key="train_architecture").value == "small_cnn"
    assert app.checkbox(key="train_augment").value is False
    quick_minutes = metrics(app)["Estimated run time"]
    assert re.fullmatch(r"\d+ s|1 min \d\d s", quick_minutes), quick_minutes  # "Quick: about one minute"

    app.slider(key="train_epochs").set_value(8).run()
    caption_starting(app, "60,000 images x 8 epochs at about")
    assert metrics(app)["Estimated run time"] != quick_minutes


def test_learning_rate_plan_follows_the_schedule_and_epochs_chosen(models_dir):
    """Test that the plan beside Start is the chosen run's: its epochs, its peak rate, clean epochs and plateau."""
    app = open_app(PAGE)
    app.selectbox(key="train_preset").set_value("Best").run()
    plan = plotly_spec(app, "train_learning_rate_plan")
    assert plan["layout"]["xaxis"]["range"] == [0, 40]
    assert max(plotly_array(plan["data"][0]["y"])) == pytest.approx(3e-3)
    assert [shape["x0"] for shape in plan["layout"]["shapes"]] == [36]  # the clean epochs' start

    app.selectbox(key="train_preset").set_value("Quick").run()
    app.selectbox(key="train_schedule").set_value("plateau").run()
    plan = plotly_spec(app, "train_learning_rate_plan")
    assert plan["layout"]["xaxis"]["range"] == [0, 3]
    np.testing.assert_allclose(plotly_array(plan["data"][0]["y"]).astype(float), 4e-3)
    assert "validation loss stalls" in plan["layout"]["annotations"][0]["text"]


def test_best_preset_ends_with_clean_epochs_and_too_few_epochs_are_refused(models_dir):
    """Test that the Best preset's clean epochs show, and that a run of no more epochs than that explains itself."""
    app = open_app(PAGE)
    app.selectbox(key="train_preset").set_value("Best").run()
    assert app.slider(key="train_clean_epochs").value == 4
    assert app.slider(key="train_clean_mix").value == pytest.approx(0.5)
    assert app.slider(key="train_epochs").value == 40
    app.slider(key="train_epochs").set_value(4).run()
    assert not app.exception
    assert app.error[0].value.startswith("clean_epochs must be less than epochs")
    assert "train_start" not in [button.key for button in app.button]  # nothing to start until it is fixed
    assert not app.slider(key="train_clean_mix").disabled
    app.slider(key="train_clean_epochs").set_value(0).run()
    assert app.slider(key="train_clean_mix").disabled  # no clean epochs: nothing to mix
    assert not app.error
    app.slider(key="train_clean_epochs").set_value(4).run()
    app.checkbox(key="train_augment").uncheck().run()
    assert app.slider(key="train_clean_epochs").disabled and app.slider(key="train_clean_mix").disabled
    assert not app.error  # without augmentation every epoch is clean: nothing to refuse
    assert metrics(app)["Estimated run time"]


def test_quick_run_streams_curves_stops_saves_and_becomes_the_model_in_use(models_dir, scripted_training):
    """Test the whole journey: start, live curves that grow, a refused second start, Stop, Save, Use."""
    app = open_app(PAGE)
    app.selectbox(key="train_preset").set_value("Quick").run()
    app.slider(key="train_epochs").set_value(1)
    app.slider(key="train_subset_size").set_value(20000)
    app.select_slider(key="train_batch_size").set_value(8)
    app.run()
    app.button(key="train_start").click().run()
    assert not app.exception
    before_the_first_batch = plotly_spec(app, "train_live_loss")  # drawn at once, for the browser to load
    assert all(len(plotly_array(trace.get("y", []))) == 0 for trace in before_the_first_batch["data"])

    scripted_training.advance(40)
    app.run()
    running_means = [scripted_running_means(step)["loss"] for step in range(40)]
    np.testing.assert_allclose(live_loss_curve(app), per_batch_values(running_means, 2375))  # each batch's own loss
    assert metrics(app)["Status"] == "running"
    assert app.button(key="train_stop").disabled is False
    assert progress_text(app).startswith("Epoch 1 of 1, batch 40 of 2375 · ")
    app.button(key="train_start").click().run()  # a second start while the first runs
    assert app.warning[0].value.startswith("A training job is already running (job ")
    assert "small_cnn, 1 epochs, epoch 1 of 1" in app.warning[0].value

    scripted_training.advance(60)
    app.run()
    assert len(live_loss_curve(app)) == 100
    assert progress_text(app).startswith("Epoch 1 of 1, batch 100 of 2375 · ")
    accuracy = plotly_spec(app, "train_live_accuracy")
    assert [trace["name"] for trace in accuracy["data"]] == [
        "training, per batch",
        "training, smoothed",
        "validation, per epoch",
    ]

    app.button(key="train_stop").click().run()
    rerun_until(app, lambda app: "Test accuracy" in metrics(app))
    [stopped] = [info.value for info in app.info]
    assert stopped == "Stopped on request at epoch 1, batch 100 of 2375; the model keeps epoch 1."
    assert metrics(app)["Epochs"] == "1 of 1"
    shown_accuracy = metrics(app)["Test accuracy"]
    confusion = plotly_array(plotly_spec(app, "train_confusion")["data"][0]["z"])
    assert confusion.sum() == 10000 and f"{np.trace(confusion.reshape(10, 10)) / 10000:.2%}" == shown_accuracy
    assert len(plotly_array(plotly_spec(app, "train_final_loss")["data"][0]["y"])) == 100
    assert re.fullmatch(r"small_cnn-[0-9a-f]{8}", app.text_input(key="train_save_name").value)

    app.text_input(key="train_save_name").set_value("my model!")
    app.button(key="train_save").click().run()
    assert app.error[0].value.startswith("A model name is 1 to 64 letters, digits, '-' or '_'")
    app.text_input(key="train_save_name").set_value("default")
    app.button(key="train_save").click().run()
    assert app.error[0].value == "'default' is the shipped model and cannot be overwritten; choose another name."
    assert not models_dir.exists() or not any(models_dir.iterdir())  # nothing saved by the refused attempts

    app.text_input(key="train_save_name").set_value("quick-test")
    app.button(key="train_save").click().run()
    assert not app.exception and not app.error
    assert app.success[-1].value == "Saved as `quick-test`. It is listed on the Models page."
    saved = ModelRegistry().entry("quick-test")
    assert saved.readable and f"{saved.metadata.test_accuracy:.2%}" == shown_accuracy
    assert saved.metadata.extra["stopped_by_request"] is True and saved.metadata.config["batch_size"] == 8

    app.run()
    assert "quick-test" in app.sidebar.selectbox(key="model_name").options
    app.button(key="train_use_model").click().run()
    assert app.sidebar.selectbox(key="model_name").value == "quick-test"

    app.switch_page("pages/models.py").run()
    assert not app.exception
    table = app.dataframe[0].value.set_index("Name")
    assert table.loc["quick-test", ["Kind", "Architecture", "Epochs"]].tolist() == ["user", "small_cnn", 1]
    assert f"{table.loc['quick-test', 'Test accuracy']:.2%}" == shown_accuracy
