"""AppTest of the Train page's real-photo and fine-tuning options."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.secrets import AttrDict

from fashion_core.photo_data import load_photos
from fashion_core.photostore import PHOTO_DB_ENV, PhotoStore
from fashion_core.training import job as job_module
from pages.common import PhotoStoreConnection
from tests.support import open_app, rerun_until
from tests.support.scripted_training import ScriptedTraining

PAGE = "pages/train.py"


@pytest.fixture
def models_dir(private_user_models):
    return private_user_models


def test_photo_options_wait_for_photos_and_fine_tuning_offers_the_models(models_dir):
    """Test that the photo sliders are off without photos, the models can be started from, and a share needs photos."""
    app = open_app(PAGE)
    assert not app.exception
    assert app.text_input(key="train_photos").value == ""
    assert app.slider(key="train_photo_share").disabled and app.slider(key="train_photo_augment").disabled
    start_from = app.selectbox(key="train_init_model")
    assert start_from.options[:2] == ["new weights (train from scratch)", "default"]
    assert app.slider(key="train_init_mix").disabled
    start_from.set_value("default").run()
    assert not app.slider(key="train_init_mix").disabled

    app.text_input(key="train_photos").input("../shared/realphotos-cc0").run()
    assert not app.slider(key="train_photo_share").disabled
    app.slider(key="train_photo_share").set_value(0.15).run()
    assert not app.exception and not app.error
    app.text_input(key="train_photos").input("").run()
    assert app.error[0].value.startswith("photo_share mixes photos into the batches, so it needs photos")
    assert "train_start" not in [button.key for button in app.button]


def test_training_on_the_store_reads_the_store_the_photos_page_shows(models_dir, tmp_path, monkeypatch):
    """Test that `store` means the store of `[connections.photos]` in secrets, not the variable's default."""
    dev_photos = Path(__file__).resolve().parents[2] / "shared" / "realphotos-dev"
    secrets_store = PhotoStore(tmp_path / "from-secrets.sqlite3")
    for photo in sorted(dev_photos.glob("*/*.jpg"))[:10]:
        secrets_store.add(photo.read_bytes(), label=0)
    monkeypatch.setenv(PHOTO_DB_ENV, str(tmp_path / "from-variable.sqlite3"))
    # What `[connections.photos] url` in secrets.toml gives the connection (AppTest's secrets do not reach it).
    monkeypatch.setattr(PhotoStoreConnection, "_secrets", property(lambda self: AttrDict({"url": secrets_store.url})))
    scripted = ScriptedTraining()
    monkeypatch.setattr(job_module, "train", scripted)
    st.cache_resource.clear()  # a fresh job manager and connection
    try:
        app = open_app(PAGE)
        app.text_input(key="train_photos").input("store").run()
        app.button(key="train_start").click().run()
        assert not app.exception and not app.error
        rerun_until(app, lambda app: getattr(scripted, "options", None))
        photos = load_photos("store", "train", app_store=scripted.options["app_photo_store"])
        assert "from-secrets.sqlite3" in photos.source
        assert len(photos) == len(secrets_store.arrays("train")) > 0
    finally:
        scripted.close()
        st.cache_resource.clear()
