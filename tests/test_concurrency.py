"""Many sessions share one cached model: predictions and Grad-CAM from eight threads while a job trains."""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fashion_core.explain import gradcam, saliency
from fashion_core.inference import Predictor
from fashion_core.training import TrainingConfig
from fashion_core.training.job import TrainingJob

NUM_THREADS = 8
CALLS_PER_THREAD = 6


def explain_and_predict(predictor, model, images, thread_index):
    """What one session does: predict a few images and explain each."""
    outputs = []
    for call in range(CALLS_PER_THREAD):
        image = images[(thread_index * CALLS_PER_THREAD + call) % len(images)]
        probabilities = predictor.predict_one(image)
        outputs.append((probabilities, gradcam(model, image), saliency(model, image)))
    return outputs


@pytest.mark.slow
def test_eight_threads_get_the_single_threaded_results_while_a_job_trains(shipped_model, fashion_data):
    images = fashion_data.test_images[:16]
    predictor = Predictor(shipped_model)
    expected = [explain_and_predict(predictor, shipped_model, images, index) for index in range(NUM_THREADS)]

    job = TrainingJob(TrainingConfig(architecture="seed_cnn", epochs=2, subset_size=2000, augment=False),
                      data=fashion_data)  # fmt: skip
    job.start()
    try:
        while job.snapshot().status == "queued":
            time.sleep(0.05)
        with ThreadPoolExecutor(NUM_THREADS) as pool:
            futures = [
                pool.submit(explain_and_predict, predictor, shipped_model, images, index)
                for index in range(NUM_THREADS)
            ]
            results = [future.result(timeout=300) for future in futures]
        status_during = job.snapshot().status
    finally:
        job.stop()
        job.wait(timeout=300)

    assert status_during in {"running", "stopping", "done"}
    for got_thread, expected_thread in zip(results, expected, strict=True):
        for (probabilities, cam, grads), (want_probabilities, want_cam, want_grads) in zip(got_thread, expected_thread):
            np.testing.assert_allclose(probabilities, want_probabilities, atol=1e-6)
            np.testing.assert_allclose(cam, want_cam, atol=1e-5)
            np.testing.assert_allclose(grads, want_grads, atol=1e-5)
    assert job.snapshot().status in {"stopped", "done"}
