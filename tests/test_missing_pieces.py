"""Every page without the dataset, without the shipped model, or with an unreadable registry folder:
a clear message where the piece is needed, no exception anywhere."""

import re

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fashion_core import registry as registry_module
from fashion_core.registry import USER_MODELS_ENV
from tests.conftest import REPO_ROOT

PAGE_FILES = re.findall(r'st\.Page\("(pages/\w+\.py)"', (REPO_ROOT / "streamlit_app.py").read_text())


@pytest.fixture
def fresh_caches():
    """Pages cache the dataset and models per process: start and end each test without them."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def page_messages(app: AppTest) -> str:
    return " ".join(element.value for element in [*app.error, *app.warning, *app.info])


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=180).run()
    if page != "pages/home.py":
        app.switch_page(page).run()
    return app


@pytest.mark.parametrize("page", PAGE_FILES)
def test_without_the_dataset_pages_say_how_to_get_it(page, no_dataset, fresh_caches):
    app = open_page(page)
    assert not app.exception, app.exception
    messages = page_messages(app)
    if "dataset is not available" in messages:
        assert "apt-get install dataset-fashion-mnist" in messages


@pytest.mark.parametrize("page", PAGE_FILES)
def test_without_the_shipped_model_pages_say_how_to_train_one(page, tmp_path, monkeypatch, fresh_caches):
    monkeypatch.setattr(registry_module, "SHIPPED_MODELS_DIR", tmp_path / "no-models")
    app = open_page(page)
    assert not app.exception, app.exception
    messages = page_messages(app)
    if page == "pages/models.py":  # the registry page lists the shipped model as missing, with its path
        assert "Model `default` cannot be used" in messages and "There is no readable model." in messages
    elif page != "pages/train.py":  # training needs no model; every other page explains its absence
        assert "No model is available" in messages


@pytest.mark.parametrize("page", PAGE_FILES)
def test_an_unreadable_registry_folder_is_reported_and_the_shipped_model_still_works(page, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "models-file"
    not_a_folder.write_text("not a folder")
    monkeypatch.setenv(USER_MODELS_ENV, str(not_a_folder))
    app = open_page(page)
    assert not app.exception, app.exception
    assert app.sidebar.selectbox(key="model_name").value == "default"
    assert "cannot be read" in " ".join(w.value for w in [*app.warning, *app.sidebar.warning, *app.error])
