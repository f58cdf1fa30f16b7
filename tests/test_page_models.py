"""AppTest of the Models page: the registry table, unreadable models, run comparison, download, use, delete."""

import pytest

from fashion_core.models import ModelOptions, build_model
from fashion_core.registry import ModelRegistry
from fashion_core.runs import models_table, run_histories
from tests.support import open_app, plotly_spec

PAGE = "pages/models.py"
HISTORY_A = [
    {"epoch": 1, "loss": 0.9, "accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.78},
    {"epoch": 2, "loss": 0.5, "accuracy": 0.82, "val_loss": 0.45, "val_accuracy": 0.84},
]
HISTORY_B = [{"epoch": 1, "loss": 0.7, "accuracy": 0.75, "val_loss": 0.5, "val_accuracy": 0.81}]


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A user-model folder with two small dense models and one whose metadata is corrupt."""
    folder = tmp_path / "user_models"
    monkeypatch.setenv("FASHION_STUDIO_MODELS_DIR", str(folder))
    registry = ModelRegistry()
    model = build_model("dense", ModelOptions(augment=False))
    registry.save(
        "run-a", model, {"architecture": "dense", "epochs_run": 2, "test_accuracy": 0.8312, "history": HISTORY_A}
    )
    registry.save(
        "run-b", model, {"architecture": "dense", "epochs_run": 1, "test_accuracy": 0.8001, "history": HISTORY_B}
    )
    broken = folder / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes(b"not a zip")
    (broken / "metadata.json").write_text("{half a json", encoding="utf-8")
    return folder


@pytest.fixture
def app(models_dir):
    return open_app(PAGE)


def test_table_lists_every_readable_model_and_says_why_one_is_unreadable(app, models_dir):
    """Test that the table shows the shipped and user models' facts and the corrupt one is explained."""
    assert not app.exception
    table = app.dataframe[0].value
    assert table["Name"].tolist() == ["default", "run-a", "run-b"]
    run_a = table.set_index("Name").loc["run-a"]
    assert [run_a["Kind"], run_a["Architecture"], run_a["Epochs"], run_a["Test accuracy"]] == [
        "user",
        "dense",
        2,
        pytest.approx(0.8312),
    ]
    assert run_a["Size (MB)"] == round((models_dir / "run-a" / "model.keras").stat().st_size / 1e6, 2)
    assert run_a["Trained at"].startswith("20")
    assert table.set_index("Name").loc["default", "Kind"] == "shipped"
    assert len(app.warning) == 1
    assert app.warning[0].value.startswith("Model `broken` cannot be used: ")
    assert "metadata.json is unreadable" in app.warning[0].value
    assert "broken" not in app.sidebar.selectbox(key="model_name").options


def test_runs_are_compared_on_the_chosen_curve(app):
    """Test that the chosen runs' histories are overlaid, one line per run, for the chosen metric."""
    figure = plotly_spec(app, "models_history")
    assert figure["layout"]["title"]["text"] == "Validation accuracy per epoch"
    lines = {trace["name"]: trace["y"] for trace in figure["data"]}
    assert set(lines) == {"default", "run-a", "run-b"}
    assert lines["run-a"] == [0.78, 0.84] and lines["run-b"] == [0.81]

    app.multiselect(key="models_compare").set_value(["run-a"]).run()
    app.segmented_control(key="models_compare_metric").set_value("loss").run()
    figure = plotly_spec(app, "models_history")
    assert figure["layout"]["title"]["text"] == "Loss per epoch"
    assert [(trace["name"], trace["y"]) for trace in figure["data"]] == [("run-a", [0.9, 0.5])]


def test_download_use_and_delete_a_user_model(app, models_dir):
    """Test that a user model can be downloaded, used and, once confirmed, deleted; the shipped one cannot."""
    assert app.selectbox(key="models_selected").value == "default"
    assert app.get("download_button")[0].label == "Download .keras"
    assert [caption.value for caption in app.caption if "cannot be deleted" in caption.value] == [
        "The shipped model cannot be deleted."
    ]
    assert not [button for button in app.button if button.key == "models_delete"]

    app.selectbox(key="models_selected").set_value("run-b").run()
    assert app.get("download_button")[0].proto.deferred_file_id  # the file is read when clicked, not every run
    app.button(key="models_use").click().run()
    assert app.sidebar.selectbox(key="model_name").value == "run-b"

    app.switch_page(PAGE).run()
    app.selectbox(key="models_selected").set_value("run-a").run()
    assert app.button(key="models_delete").disabled is True
    app.checkbox(key="models_delete_confirm_run-a").check().run()
    assert app.button(key="models_delete").disabled is False
    app.button(key="models_delete").click().run()
    assert not app.exception
    assert app.success[0].value == "Deleted `run-a`."
    assert not (models_dir / "run-a").exists()
    assert app.dataframe[0].value["Name"].tolist() == ["default", "run-b"]
    assert app.sidebar.selectbox(key="model_name").options == ["default", "run-b"]
    assert app.selectbox(key="models_selected").value == "default"


def test_models_table_and_histories_skip_what_cannot_be_shown(models_dir):
    """Test that unreadable models have no row and that a model without a history is not compared."""
    registry = ModelRegistry()
    registry.save("no-history", build_model("dense", ModelOptions(augment=False)), {"architecture": "dense"})
    entries = registry.list_models()
    table = models_table(entries)
    assert table["Name"].tolist() == ["default", "no-history", "run-a", "run-b"]
    assert table.set_index("Name").loc["no-history", ["Epochs", "Test accuracy"]].isna().all()
    assert list(run_histories(entries, "val_loss")) == ["default", "run-a", "run-b"]
    assert run_histories(entries, "val_top5") == {}
