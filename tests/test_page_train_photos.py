"""AppTest of the Train page's real-photo and fine-tuning options."""

import pytest

from tests.support import open_app

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
