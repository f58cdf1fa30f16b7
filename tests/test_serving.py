"""Tests of the LiteRT serving path and the stored test-set predictions: answers, threads, errors, freshness."""

import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from fashion_core import serving
from fashion_core.artifacts import (
    LITERT_FILE,
    MODEL_FILE,
    TEST_PREDICTIONS_FILE,
    fresh_litert_file,
    stored_test_evaluation,
    stored_test_probabilities,
)
from fashion_core.metadata import ModelMetadata
from fashion_core.serving import LiteRTPredictor, ServingError
from tests.conftest import REPO_ROOT, SHIPPED_MODEL_DIR

SHIPPED_LITERT = SHIPPED_MODEL_DIR / LITERT_FILE


@pytest.fixture(scope="module")
def litert_plain():
    return LiteRTPredictor(SHIPPED_LITERT)


@pytest.fixture(scope="module")
def litert_app():
    """The predictor the app makes for the shipped model (flip-averaged: it was trained with flips)."""
    return LiteRTPredictor.from_model_dir(SHIPPED_MODEL_DIR)


@pytest.fixture
def shipped_copy(tmp_path):
    """A copy of the shipped model folder, safe to change."""
    return shutil.copytree(SHIPPED_MODEL_DIR, tmp_path / "default-copy")


def test_the_shipped_model_has_a_checked_litert_file_made_from_its_model_keras():
    assert fresh_litert_file(SHIPPED_MODEL_DIR) == SHIPPED_LITERT
    check = ModelMetadata.read(SHIPPED_MODEL_DIR).export("litert")
    assert check.num_images == 10000 and check.agreement >= 0.999 and check.max_abs_difference <= 1e-4


def test_litert_probabilities_match_keras_on_500_test_images(litert_plain, shipped_model, fashion_data):
    images = fashion_data.test_images[:500]
    keras_probabilities = shipped_model(images[..., None].astype("float32"), training=False).numpy()
    probabilities = litert_plain.predict(images)
    assert probabilities.shape == (500, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, keras_probabilities, atol=1e-4)
    assert (probabilities.argmax(axis=1) == keras_probabilities.argmax(axis=1)).all()


def test_the_apps_predictor_averages_each_image_with_its_mirror(litert_app, litert_plain, fashion_data):
    images = fashion_data.test_images[:40]
    expected = (litert_plain.predict(images) + litert_plain.predict(images[:, :, ::-1])) / 2
    assert litert_app.flip_average is True
    np.testing.assert_allclose(litert_app.predict(images), expected, atol=1e-6)
    np.testing.assert_allclose(litert_app.predict_one(images[3]), expected[3], atol=1e-6)


def test_every_accepted_shape_gives_the_same_answer(litert_app, fashion_data):
    image = fashion_data.test_images[7]
    one = litert_app.predict_one(image)
    assert one.shape == (10,) and one.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(litert_app.predict(image[None, ..., None].astype("float32"))[0], one)
    assert litert_app.predict(fashion_data.test_images[:0]).shape == (0, 10)


def test_small_batches_give_what_one_large_call_gives(litert_plain, fashion_data):
    images = fashion_data.test_images[:300]
    np.testing.assert_allclose(litert_plain.predict(images, batch_size=7), litert_plain.predict(images), atol=1e-6)


@pytest.mark.parametrize("max_interpreters", [8, 2])
def test_eight_threads_get_exactly_the_single_thread_answers(fashion_data, max_interpreters):
    predictor = LiteRTPredictor(SHIPPED_LITERT, flip_average=True, max_interpreters=max_interpreters)
    images = fashion_data.test_images[:64]
    expected = [predictor.predict_one(image) for image in images]
    results, errors = {}, []

    def work(worker: int):
        try:
            for _ in range(3):
                for index in range(worker, len(images), 8):
                    results.setdefault(index, []).append(predictor.predict_one(images[index]))
        except Exception as error:  # reported below, with the thread's failure
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 1 <= predictor.num_interpreters <= max_interpreters
    assert sorted(results) == list(range(64))
    for index, answers in results.items():
        assert len(answers) == 3
        for answer in answers:
            np.testing.assert_array_equal(answer, expected[index])


def test_overlapping_calls_add_one_thread_interpreters_and_a_lone_call_gets_the_first(monkeypatch, fashion_data):
    """Test that interpreters added for overlapping calls use one thread each (more threads than cores
    would wait for each other), and that a call overlapping no other still gets the multi-thread one."""
    predictor = LiteRTPredictor(SHIPPED_LITERT, flip_average=True, num_threads=2)
    first_in, second_in = threading.Event(), threading.Event()
    run = serving._Runner.run

    def held_run(runner, images, flip_average):
        """The first call holds its interpreter until the second call has borrowed one too."""
        if not first_in.is_set():
            first_in.set()
            assert second_in.wait(timeout=30)
        else:
            second_in.set()
        return run(runner, images, flip_average)

    monkeypatch.setattr(serving._Runner, "run", held_run)
    first = threading.Thread(target=predictor.predict_one, args=(fashion_data.test_images[0],))
    first.start()
    assert first_in.wait(timeout=30)
    predictor.predict_one(fashion_data.test_images[1])
    first.join()
    assert predictor.interpreter_threads == (2, 1)

    used = []

    def recorded_run(runner, images, flip_average):
        used.append(runner.num_threads)
        return run(runner, images, flip_average)

    monkeypatch.setattr(serving._Runner, "run", recorded_run)
    predictor.predict_one(fashion_data.test_images[2])
    assert used == [2]


def test_images_of_the_wrong_shape_are_refused_with_the_shape(litert_plain):
    with pytest.raises(ValueError, match=r"Expected 28x28 grey images.*Received: shape=\(2, 32, 32\)"):
        litert_plain.predict(np.zeros((2, 32, 32), dtype=np.uint8))


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ServingError, match=r"There is no LiteRT file .*python -m fashion_core prepare"):
        LiteRTPredictor(tmp_path / "model.tflite")


def test_a_file_that_is_not_litert_is_refused(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    with pytest.raises(ServingError, match=r"is not a LiteRT model \(no 'TFL3' identifier\).*Received: model_path="):
        LiteRTPredictor(path)


def test_a_truncated_litert_file_is_refused(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(SHIPPED_LITERT.read_bytes()[:100_000])
    with pytest.raises(ServingError, match="not a LiteRT model the interpreter can run"):
        LiteRTPredictor(path)


def test_stored_predictions_give_the_reported_accuracy_without_predicting(fashion_data):
    report = stored_test_evaluation(SHIPPED_MODEL_DIR, fashion_data.test_labels)
    metadata = ModelMetadata.read(SHIPPED_MODEL_DIR)
    assert report.probabilities.shape == (10000, 10) and report.probabilities.dtype == np.float32
    assert report.accuracy == pytest.approx(metadata.reported_test_accuracy, abs=1e-4)


def test_a_changed_model_file_is_never_read_with_stale_predictions_or_litert_file(shipped_copy):
    assert stored_test_probabilities(shipped_copy) is not None and fresh_litert_file(shipped_copy) is not None
    with open(shipped_copy / MODEL_FILE, "ab") as handle:
        handle.write(b"\0")  # any change to the file's content
    assert stored_test_probabilities(shipped_copy) is None
    assert fresh_litert_file(shipped_copy) is None
    with pytest.raises(ServingError, match="has no checked LiteRT file made from its current model.keras"):
        LiteRTPredictor.from_model_dir(shipped_copy)


def test_stored_predictions_are_refused_when_the_flip_rule_changed(shipped_copy):
    metadata = ModelMetadata.read(shipped_copy)
    metadata.replace(config={**metadata.config, "augment": False}).write(shipped_copy)
    assert stored_test_probabilities(shipped_copy) is None


def test_a_corrupt_predictions_file_reads_as_none(shipped_copy):
    (shipped_copy / TEST_PREDICTIONS_FILE).write_bytes(b"not an npz")
    assert stored_test_probabilities(shipped_copy) is None


def test_serving_and_stored_evaluation_never_import_tensorflow_or_keras():
    script = (
        "import sys\n"
        "from fashion_core.serving import LiteRTPredictor\n"
        "from fashion_core.artifacts import stored_test_evaluation\n"
        "from fashion_core.data import load_fashion_mnist\n"
        f"predictor = LiteRTPredictor.from_model_dir({str(SHIPPED_MODEL_DIR)!r})\n"
        "data = load_fashion_mnist(download=False)\n"
        "probabilities = predictor.predict(data.test_images[:20])\n"
        f"report = stored_test_evaluation({str(SHIPPED_MODEL_DIR)!r}, data.test_labels)\n"
        "print(probabilities.shape, round(report.accuracy, 4), 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    accuracy = ModelMetadata.read(SHIPPED_MODEL_DIR).reported_test_accuracy
    assert result.stdout.strip().splitlines()[-1] == f"(20, 10) {round(accuracy, 4)} False False"


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux) to pin a process to one core")
def test_interpreters_get_one_thread_per_usable_cpu_at_most_two():
    """Test that a process pinned to one core serves with one interpreter thread, and an unpinned one with
    one per core it may use, at most two."""
    script = (
        "import os\n"
        "from fashion_core.serving import LiteRTPredictor, usable_cpus\n"
        f"predictor = LiteRTPredictor.from_model_dir({str(SHIPPED_MODEL_DIR)!r})\n"
        "print(usable_cpus(), predictor.num_threads, len(os.sched_getaffinity(0)))\n"
    )

    def threads(*prefix: str) -> list[int]:
        command = [*prefix, sys.executable, "-c", script]
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return [int(value) for value in result.stdout.split()[-3:]]

    assert threads("taskset", "-c", "0") == [1, 1, 1]
    cpus, num_threads, affinity = threads()
    assert cpus <= affinity and num_threads == min(2, cpus)


def test_a_predictor_with_an_explicit_thread_count_keeps_it():
    predictor = LiteRTPredictor(SHIPPED_MODEL_DIR / "model.tflite", num_threads=3)
    assert predictor.num_threads == 3
    with pytest.raises(ServingError, match="num_threads and max_interpreters must be at least 1"):
        LiteRTPredictor(SHIPPED_MODEL_DIR / "model.tflite", num_threads=0)
