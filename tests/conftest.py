"""Shared fixtures: the real dataset, the shipped model, a private user-model folder per test, no dataset."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest

from fashion_core import data as data_module
from fashion_core.data import load_fashion_mnist
from fashion_core.photostore import PHOTO_DB_ENV
from fashion_core.registry import USER_MODELS_ENV
from pages import common

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL_DIR = REPO_ROOT / "model_artifacts" / "default"


@pytest.fixture(scope="session")
def fashion_data():
    """Fashion-MNIST from the Debian package (or wherever the loader finds it)."""
    return load_fashion_mnist(download=False)


@pytest.fixture(scope="session")
def shipped_model():
    from fashion_core.registry import load_model

    return load_model(SHIPPED_MODEL_DIR)


@pytest.fixture(scope="session")
def shipped_predictor(shipped_model):
    """The app's predictor for the shipped model: flip-averaged when its metadata says it was trained with flips."""
    from fashion_core.inference import Predictor
    from fashion_core.metadata import ModelMetadata

    return Predictor(shipped_model, flip_average=ModelMetadata.read(SHIPPED_MODEL_DIR).trained_with_flips)


@pytest.fixture
def no_dataset(tmp_path, monkeypatch):
    """Makes every place the loader looks empty, and the cached dataset forgotten (before and after)."""
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(data_module, "DEBIAN_DATASET_DIR", tmp_path / "no-debian-package")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras-home"))
    common._cached_dataset.clear()
    yield
    common._cached_dataset.clear()


@pytest.fixture(autouse=True)
def private_user_models(tmp_path, monkeypatch):
    """Every test saves user models into its own folder, never into the real `user_models/`."""
    folder = tmp_path / "user_models"
    monkeypatch.setenv(USER_MODELS_ENV, str(folder))
    return folder


@pytest.fixture(autouse=True)
def private_photo_store(tmp_path, monkeypatch):
    """Every test's photo store is its own SQLite file, never the real `data/photos.sqlite3`."""
    path = tmp_path / "photos.sqlite3"
    monkeypatch.setenv(PHOTO_DB_ENV, str(path))
    return path


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (see `tests/support/postgres.py`); skipped without its binaries."""
    from tests.support.postgres import running_postgres

    with running_postgres() as server:
        yield server


@pytest.fixture(autouse=True, scope="session")
def explicit_navigation_in_apptest():
    """Runs AppTests as the server does once `st.navigation` has run: through `streamlit_app.py`.

    AppTest resets Streamlit's "legacy `pages/` folder" flag before every run, which would run a
    page file on its own after `switch_page`, without the entry's navigation and model picker.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    class ExplicitNavigationPagesManager(PagesManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    original = app_test.PagesManager
    app_test.PagesManager = ExplicitNavigationPagesManager
    yield
    app_test.PagesManager = original
