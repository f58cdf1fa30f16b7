"""AppTest of the entry script and the Home page."""

import json
import shutil

from fashion_core import registry as registry_module
from fashion_core.models import ModelOptions, build_model
from fashion_core.registry import ModelRegistry
from pages import common
from tests.conftest import SHIPPED_MODEL_DIR
from tests.support import metrics, open_app


def test_home_shows_the_shipped_model_card():
    app = open_app()
    assert not app.exception
    metadata = json.loads((SHIPPED_MODEL_DIR / "metadata.json").read_text())
    shown = metrics(app)
    # the shipped model was trained with flips, so the card shows the flip-averaged accuracy the app gets
    assert shown["Test accuracy"] == f"{metadata['test_accuracy_flip_average']:.2%}"
    assert f"a plain `model(x)` call gets {metadata['test_accuracy']:.2%}" in app.metric[0].help
    assert shown["Parameters"] == f"{metadata['parameter_count']:,}"
    assert app.subheader[0].value == "Model in use: `default`"
    assert app.sidebar.selectbox(key="model_name").value == "default"


def test_home_draws_the_card_from_metadata_without_loading_the_model(monkeypatch):
    """Test that Home, a fresh server's first page, does not wait for the serving runtime and the model file."""

    def must_not_load(*args):
        raise AssertionError("Home loaded the model")

    monkeypatch.setattr(common, "_cached_model", must_not_load)
    app = open_app()
    assert not app.exception
    assert app.subheader[0].value == "Model in use: `default`"


def test_home_shows_each_class_accuracy_lowest_first():
    """Test that the card's bars are the metadata's per-class accuracies, the hardest class on top."""
    app = open_app()
    per_class = json.loads((SHIPPED_MODEL_DIR / "metadata.json").read_text())["per_class_accuracy"]
    bars = app.get("progress")
    expected = sorted(per_class.items(), key=lambda item: item[1])
    assert [bar.proto.text for bar in bars] == [f"{name} · {accuracy:.1%}" for name, accuracy in expected]
    assert [bar.proto.value for bar in bars] == [int(accuracy * 100) for _, accuracy in expected]
    assert not app.get("plotly_chart")  # Home draws nothing that makes the browser load Plotly


def test_home_without_a_shipped_model_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_module, "SHIPPED_MODELS_DIR", tmp_path / "nothing")
    app = open_app()
    assert not app.exception
    assert "No model is available" in app.error[0].value
    assert app.title[0].value == "Fashion-MNIST Studio"


def test_a_user_model_can_be_chosen_in_the_sidebar(private_user_models):
    shutil.copytree(SHIPPED_MODEL_DIR, private_user_models / "copy-of-default")
    app = open_app()
    app.sidebar.selectbox(key="model_name").set_value("copy-of-default").run()
    assert not app.exception
    assert app.subheader[0].value == "Model in use: `copy-of-default`"


def test_a_model_without_a_measured_accuracy_shows_unknown(private_user_models):
    """Test that a model saved with bare metadata (no test accuracy) gets "unknown", not an error."""
    ModelRegistry(user_dir=private_user_models).save("bare", build_model("dense", ModelOptions(augment=False)), {})
    app = open_app()
    app.sidebar.selectbox(key="model_name").set_value("bare").run()
    assert not app.exception
    accuracy = next(metric for metric in app.metric if metric.label == "Test accuracy")
    assert accuracy.value == "unknown" and not accuracy.help
