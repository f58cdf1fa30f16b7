"""Shared fixtures: the real dataset, the shipped model, and a private user-model folder per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest

from fashion_core.data import load_fashion_mnist
from fashion_core.registry import USER_MODELS_ENV

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


@pytest.fixture(autouse=True)
def private_user_models(tmp_path, monkeypatch):
    """Every test saves user models into its own folder, never into the real `user_models/`."""
    folder = tmp_path / "user_models"
    monkeypatch.setenv(USER_MODELS_ENV, str(folder))
    return folder
