"""When the page warns: an unsure model, or an image unlike Fashion-MNIST."""

import numpy as np
import pytest

from fashion_core.data import CLASS_NAMES
from fashion_core.photo_quality import (
    FASHION_MNIST_REFERENCE,
    dataset_distance,
    image_statistics,
    prediction_warnings,
    reference_from_images,
    unlike_dataset_reason,
)


@pytest.fixture(scope="module")
def test_set_reference(fashion_data):
    return reference_from_images(fashion_data.test_images, quantile=0.99)


def test_the_stored_reference_describes_the_test_images_too(test_set_reference):
    recomputed = test_set_reference
    np.testing.assert_allclose(recomputed.mean, FASHION_MNIST_REFERENCE.mean, atol=0.005)
    np.testing.assert_allclose(recomputed.covariance, FASHION_MNIST_REFERENCE.covariance, atol=0.002)
    assert recomputed.threshold == pytest.approx(FASHION_MNIST_REFERENCE.threshold, rel=0.05)


def test_about_one_in_a_hundred_test_images_counts_as_unlike_the_dataset(fashion_data):
    sample = fashion_data.test_images[::4]  # 2500 images
    distances = FASHION_MNIST_REFERENCE.distances(image_statistics(sample))
    assert 0.002 <= (distances > FASHION_MNIST_REFERENCE.threshold).mean() <= 0.025


def test_noise_a_grey_square_and_a_thin_stick_are_unlike_the_dataset():
    noise = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    assert unlike_dataset_reason(noise) == "the frame's edges are not black around the garment"
    assert (
        unlike_dataset_reason(np.full((28, 28), 150, np.uint8)) == "the frame's edges are not black around the garment"
    )
    stick = np.zeros((28, 28), np.uint8)
    stick[:, 12:16] = 200
    assert dataset_distance(stick) > FASHION_MNIST_REFERENCE.threshold
    assert unlike_dataset_reason(stick) == "the garment is flatter grey than dataset garments"


def test_a_dataset_image_and_a_confident_answer_give_no_warning(fashion_data):
    image = fashion_data.test_images[0]  # an ankle boot
    probabilities = np.zeros(10)
    probabilities[[9, 7]] = 0.95, 0.05
    assert unlike_dataset_reason(image) is None
    assert prediction_warnings(probabilities, image) == []


@pytest.mark.parametrize(("top", "second"), [(0.5, 0.1), (0.65, 0.5)])
def test_a_low_or_close_top_probability_says_the_model_is_unsure(fashion_data, top, second):
    probabilities = np.full(10, (1 - top - second) / 8)
    probabilities[[3, 6]] = top, second
    warnings = prediction_warnings(probabilities, fashion_data.test_images[0])
    assert warnings == [f"The model is unsure: {CLASS_NAMES[3]} {top:.0%}, {CLASS_NAMES[6]} {second:.0%}."]


def test_a_whole_photo_fallback_and_an_unusual_image_are_both_reported():
    probabilities = np.zeros(10)
    probabilities[8] = 1.0
    warnings = prediction_warnings(probabilities, np.full((28, 28), 150, np.uint8), whole_photo=True)
    assert warnings == [
        "No garment could be told apart from the background, so the whole photo was used.",
        "The image looks unlike the dataset's (the frame's edges are not black around the garment), "
        "so the answer may be wrong.",
    ]
