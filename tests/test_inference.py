"""`Predictor`: the app's prediction function, plain and with test-time flip averaging."""

import numpy as np
import pytest

from fashion_core.inference import Predictor
from fashion_core.registry import reported_test_accuracy, trained_with_flips


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


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"config": {"augment": True, "augment_strength": 0.4}}, True),
        ({"config": {"augment": True, "augment_strength": 0.0}}, False),
        ({"config": {"augment": False, "augment_strength": 0.4}}, False),
        ({"config": {"augment": "yes", "augment_strength": 0.4}}, False),
        ({"architecture": "dense"}, False),  # a model saved without its training config
        ({}, False),
    ],
)
def test_only_models_trained_with_flips_get_flip_averaging(metadata, expected):
    assert trained_with_flips(metadata) is expected


def test_the_reported_accuracy_is_the_flip_averaged_one_only_for_models_trained_with_flips():
    flips = {"augment": True, "augment_strength": 0.4}
    assert reported_test_accuracy({"config": flips, "test_accuracy": 0.94, "test_accuracy_flip_average": 0.95}) == 0.95
    assert reported_test_accuracy({"config": flips, "test_accuracy": 0.94}) == 0.94  # not measured: the plain one
    no_flips = {"augment": False, "augment_strength": 0.4}
    assert reported_test_accuracy({"config": no_flips, "test_accuracy": 0.9, "test_accuracy_flip_average": 0.8}) == 0.9
    assert reported_test_accuracy({"test_accuracy": "n/a"}) is None
