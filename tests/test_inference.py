"""`Predictor`: the app's prediction function, plain and with test-time flip averaging."""

import numpy as np
import pytest

from fashion_core.inference import Predictor


@pytest.mark.parametrize("count", [1, 3])
def test_flip_averaging_is_the_mean_of_the_image_and_its_mirror_image(count, shipped_model, fashion_data):
    images = fashion_data.test_images[:count]
    plain = np.asarray(shipped_model(images[..., None].astype("float32"), training=False))
    mirrored = np.asarray(shipped_model(images[:, :, ::-1, None].astype("float32"), training=False))
    averaged = Predictor(shipped_model, flip_average=True).predict(images)
    assert averaged.shape == (count, 10)
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(Predictor(shipped_model).predict(images), plain, atol=1e-5)


def test_an_empty_batch_gives_no_rows(shipped_model):
    assert Predictor(shipped_model, flip_average=True).predict(np.zeros((0, 28, 28), np.uint8)).shape == (0, 10)
