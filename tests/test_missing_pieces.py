"""Every page without the dataset, without the shipped model, or with an unreadable registry folder:
the page's own message where the piece is needed, the rest of the page working, no exception anywhere."""

import re

import pytest
import streamlit as st

from fashion_core import registry as registry_module
from fashion_core.data import DatasetError, load_fashion_mnist
from fashion_core.registry import USER_MODELS_ENV, ModelRegistry, RegistryError
from tests.support import REPO_ROOT, open_app

PAGE_FILES = re.findall(r'st\.Page\("(pages/\w+\.py)"', (REPO_ROOT / "streamlit_app.py").read_text())
NO_MODEL = (
    "No model is available: the shipped model `model_artifacts/default` is missing or unreadable. Train one on the "
    "Train page, or run `python -m fashion_core train --out model_artifacts/default`."
)
NO_UPLOAD_YET = "Classify a photo or a drawing on the Predict page first; it then shows up here."
NO_JOB_YET = "No model has been trained on this server since it started. Choose the settings above and Start."
PAGES_THAT_NEED_THE_DATASET = {"pages/gradcam.py", "pages/evaluation.py", "pages/dataset.py", "pages/train.py"}
PAGES_THAT_NEED_A_MODEL = {
    "pages/home.py",
    "pages/predict.py",
    "pages/gradcam.py",
    "pages/evaluation.py",
    "pages/dataset.py",
    "pages/photos.py",
}


@pytest.fixture
def fresh_caches():
    """Pages cache the dataset and models per process: start and end each test without them."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def values(elements) -> list[str]:
    return [element.value for element in elements]


@pytest.mark.parametrize("page", PAGE_FILES)
def test_without_the_dataset_pages_that_need_it_say_how_to_get_it(page, no_dataset, fresh_caches):
    """Test that a page that needs the dataset says it is missing and how to install it; the others work on."""
    with pytest.raises(DatasetError) as missing:
        load_fashion_mnist(download=False)
    dataset_message = f"**The Fashion-MNIST dataset is not available.** {missing.value}"
    assert "apt-get install dataset-fashion-mnist" in dataset_message
    app = open_app(page)
    assert not app.exception, app.exception
    assert values(app.error) == ([dataset_message] if page in PAGES_THAT_NEED_THE_DATASET else [])
    if page == "pages/home.py":
        assert app.subheader[0].value == "Model in use: `default`"
    elif page == "pages/predict.py":
        assert values(app.info)[0] == "Upload one or more photos to classify them."
    elif page == "pages/gradcam.py":  # the last upload can still be explained
        assert values(app.info) == [NO_UPLOAD_YET]
    elif page == "pages/train.py":
        assert app.button(key="train_start").disabled and values(app.info) == [NO_JOB_YET]
    elif page == "pages/models.py":
        assert "default" in app.dataframe[0].value["Name"].tolist()
    elif page in ("pages/evaluation.py", "pages/dataset.py"):  # nothing to show but the message
        assert not app.dataframe and not app.get("plotly_chart")


@pytest.mark.parametrize("page", PAGE_FILES)
def test_without_the_shipped_model_pages_say_how_to_train_one(page, tmp_path, monkeypatch, fresh_caches):
    """Test that a page that needs a model says how to make one; Train needs none; Models says what is missing."""
    monkeypatch.setattr(registry_module, "SHIPPED_MODELS_DIR", tmp_path / "no-models")
    app = open_app(page)
    assert not app.exception, app.exception
    assert values(app.error) == ([NO_MODEL] if page in PAGES_THAT_NEED_A_MODEL else [])
    if page == "pages/train.py":
        assert not app.button(key="train_start").disabled and values(app.info) == [NO_JOB_YET]
    elif page == "pages/models.py":
        missing_file = tmp_path / "no-models" / "default" / "model.keras"
        assert values(app.warning) == [f"Model `default` cannot be used: {missing_file} is missing."]
        assert "There is no readable model." in values(app.info)
    elif page == "pages/dataset.py":  # the grid still shows the labels
        assert list(app.dataframe[0].value.columns) == ["Tile", "Index", "Label"]


@pytest.mark.parametrize("page", PAGE_FILES)
def test_an_unreadable_registry_folder_is_reported_and_the_shipped_model_still_works(page, tmp_path, monkeypatch):
    """Test that every page says which folder cannot be read, and still uses the shipped model."""
    not_a_folder = tmp_path / "models-file"
    not_a_folder.write_text("not a folder")
    monkeypatch.setenv(USER_MODELS_ENV, str(not_a_folder))
    with pytest.raises(RegistryError) as unreadable:
        ModelRegistry().list_models()
    app = open_app(page)
    assert not app.exception, app.exception
    assert values(app.warning) == [str(unreadable.value)]
    assert app.sidebar.selectbox(key="model_name").value == "default"
    assert values(app.error) == ([str(unreadable.value)] if page == "pages/models.py" else [])
    if page == "pages/home.py":
        assert app.subheader[0].value == "Model in use: `default`"
