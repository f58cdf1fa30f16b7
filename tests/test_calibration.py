"""Tests of `fashion_core.calibration`: ECE by hand, temperature fitting and folding, the "unsure" threshold."""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from fashion_core import calibration
from fashion_core.calibration import CalibrationError
from fashion_core.cli import main
from fashion_core.metadata import ModelMetadata
from fashion_core.registry import load_model, save_model_dir
from fashion_core.training import TrainingConfig, train
from tests.conftest import REPO_ROOT

DEV_PHOTOS = REPO_ROOT.parent / "shared" / "realphotos-dev"


def one_hot_confidences(confidences, classes):
    """`(N, 10)` probabilities whose top class is `classes[i]` at `confidences[i]`, the rest shared evenly."""
    confidences = np.asarray(confidences, dtype=np.float64)
    probabilities = np.repeat(((1 - confidences) / 9)[:, None], 10, axis=1)
    probabilities[np.arange(len(classes)), classes] = confidences
    return probabilities


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def linear_model(seed=0, kernel_scale=0.02, softmax_layer=False):
    """A tiny plain-Keras model under the project's contract: 0..255 in, softmax out."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    if softmax_layer:
        x = keras.layers.Dense(10, name="logits")(x)
        outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    else:
        outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    model.set_weights([rng.normal(0, kernel_scale * 50 if w.ndim == 2 else 0.1, w.shape) for w in model.get_weights()])
    return model


def test_ece_matches_a_hand_computed_reference():
    # 5 bins: 0.9 right -> (0.8, 1] gap 0.1; 0.55 wrong -> (0.4, 0.6] gap 0.55; 0.75 and 0.65 right -> (0.6, 0.8]
    # with mean confidence 0.7, gap 0.3 for 2 answers. ECE = (0.1 + 0.55 + 2 * 0.3) / 4.
    probabilities = [[0.9, 0.1], [0.55, 0.45], [0.75, 0.25], [0.35, 0.65]]
    labels = [0, 1, 0, 1]
    assert calibration.expected_calibration_error(probabilities, labels, num_bins=5) == pytest.approx(0.3125)
    bins = calibration.reliability_bins(probabilities, labels, num_bins=5)
    assert [(b.lower, b.upper, b.count) for b in bins] == [(0.4, 0.6, 1), (0.6, 0.8, 2), (0.8, 1.0, 1)]
    assert [b.accuracy for b in bins] == [0.0, 1.0, 1.0]
    assert bins[1].confidence == pytest.approx(0.7)
    assert calibration.expected_calibration_error([[0.9, 0.1], [0.7, 0.3]], [0, 1]) == pytest.approx(0.4)


def test_fitted_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 10))
    labels = np.array([rng.choice(10, p=p) for p in softmax(logits / 2.0)])  # the truth is logits / 2
    assert calibration.fit_temperature(softmax(logits), labels) == pytest.approx(2.0, rel=0.05)
    assert calibration.fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)


def test_fitted_temperature_of_two_views_is_fitted_on_their_average():
    """Test that with two views, T makes the average of the two tempered softmaxes match the labels."""
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 3, (20000, 10))
    views = np.stack([shared + rng.normal(0, 1, shared.shape), shared + rng.normal(0, 1, shared.shape)])
    truth = (softmax(views[0] / 0.5) + softmax(views[1] / 0.5)) / 2
    labels = np.array([rng.choice(10, p=p / p.sum()) for p in truth])
    assert calibration.fit_temperature(views, labels) == pytest.approx(0.5, rel=0.05)
    fitted = calibration.fit_temperature(views, labels)
    tempered = calibration.tempered_probabilities(views, fitted)
    np.testing.assert_allclose(tempered, (softmax(views[0] / fitted) + softmax(views[1] / fitted)) / 2, atol=1e-12)


@pytest.mark.parametrize("softmax_layer", [False, True])
def test_folding_keeps_the_top_class_and_the_file_loads_with_plain_keras(tmp_path, softmax_layer):
    model = linear_model(softmax_layer=softmax_layer)
    images = np.random.default_rng(2).integers(0, 256, (64, 28, 28, 1)).astype("float32")
    folded = calibration.fold_temperature(model, 2.5)
    before, after = model.predict(images, verbose=0), folded.predict(images, verbose=0)
    np.testing.assert_array_equal(before.argmax(axis=1), after.argmax(axis=1))
    np.testing.assert_allclose(after, calibration.tempered_probabilities(np.log(before), 2.5), atol=1e-5)
    assert model.get_layer("hidden").get_weights()[0] is not None  # the original is left as it was
    np.testing.assert_allclose(model.predict(images, verbose=0), before)

    folded.save(tmp_path / "folded.keras")
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy, keras\n"
        f"model = keras.saving.load_model({str(tmp_path / 'folded.keras')!r})\n"
        f"numpy.save({str(tmp_path / 'out.npy')!r}, model.predict(numpy.load({str(tmp_path / 'images.npy')!r}), "
        "verbose=0))\n"
        "print(any(name.startswith('fashion_core') for name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), after, atol=1e-6)


def test_folding_refuses_a_model_without_a_softmax_dense_layer_and_a_bad_temperature():
    inputs = keras.Input((28, 28, 1))
    no_softmax = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    with pytest.raises(CalibrationError, match="Received: last layer=Dense"):
        calibration.fold_temperature(no_softmax, 2.0)
    with pytest.raises(CalibrationError, match="Received: temperature=0"):
        calibration.fold_temperature(linear_model(), 0)


def test_calibrate_model_recovers_the_temperature_of_its_labels_and_reports_better_ece():
    model = linear_model(seed=3)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3000, 28, 28)).astype(np.uint8)
    probabilities = model.predict(images[..., None].astype("float32"), verbose=0)
    truth = calibration.tempered_probabilities(np.log(probabilities), 0.5)  # the model is under-confident
    labels = np.array([rng.choice(10, p=p / p.sum()) for p in truth])
    calibrated, info = calibration.calibrate_model(model, images, labels, flip_average=False)
    assert info.temperature == pytest.approx(0.5, rel=0.1)
    assert info.fitted_on == "3000 images"
    assert info.nll_after < info.nll_before and info.ece_after < info.ece_before
    np.testing.assert_array_equal(
        calibrated.predict(images[..., None].astype("float32"), verbose=0).argmax(axis=1), probabilities.argmax(axis=1)
    )


def test_the_threshold_is_the_lowest_whose_answers_reach_the_target():
    # Most confident first: right, right, wrong, right, right, wrong, wrong.
    confidences = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5]
    classes = [0, 1, 2, 3, 4, 5, 6]
    labels = [0, 1, 9, 3, 4, 9, 9]
    probabilities = one_hot_confidences(confidences, classes)
    # Answered above each cut: 1/1, 2/2, 2/3, 3/4, 4/5, 4/6, 4/7.
    chosen = calibration.choose_confidence_threshold(probabilities, labels, target_accuracy=0.75)
    assert chosen.threshold == pytest.approx(0.7)
    assert chosen.accuracy == pytest.approx(0.8) and chosen.coverage == pytest.approx(5 / 7)
    assert chosen.fitted_on == "7 labelled photos" and chosen.target_accuracy == 0.75
    strict = calibration.choose_confidence_threshold(probabilities, labels, target_accuracy=0.9)
    assert (strict.threshold, strict.accuracy, strict.coverage) == (pytest.approx(0.9), 1.0, pytest.approx(2 / 7))
    curve = calibration.coverage_curve(probabilities, labels)
    np.testing.assert_allclose(curve.accuracy, [1, 1, 2 / 3, 3 / 4, 4 / 5, 4 / 6, 4 / 7])
    np.testing.assert_allclose(curve.coverage, np.arange(1, 8) / 7)
    np.testing.assert_allclose(curve.thresholds, confidences)


def test_a_tie_is_answered_whole_and_an_unreachable_target_means_unsure_to_all():
    probabilities = one_hot_confidences([0.9, 0.8, 0.8], [0, 1, 2])
    chosen = calibration.choose_confidence_threshold(probabilities, [0, 1, 9], target_accuracy=0.75)
    assert chosen.threshold == pytest.approx(0.9) and chosen.coverage == pytest.approx(1 / 3)  # 0.8 answers 2 of 3
    never = calibration.choose_confidence_threshold(probabilities, [9, 9, 9], target_accuracy=0.9)
    assert never.threshold == 1.0 and never.coverage == 0.0 and never.accuracy is None


def test_a_training_run_is_calibrated_on_its_validation_split_and_the_cli_calibrates_a_folder(
    fashion_data, tmp_path, capsys
):
    config = TrainingConfig(architecture="seed_cnn", epochs=1, subset_size=1000, validation_fraction=0.2, augment=False)
    result = train(config, data=fashion_data)
    info = ModelMetadata.from_dict(result.metadata()).calibration
    assert info is not None and info.fitted_on == "validation split (200 images)"
    assert info.nll_after <= info.nll_before and info.temperature > 0

    folder = save_model_dir(tmp_path / "tiny", result.model, result.metadata())
    photos = tmp_path / "photos"  # five dev photos, marked "val"
    rows = [line.split("\t") for line in (DEV_PHOTOS / "MANIFEST.tsv").read_text().splitlines()[1:6]]
    for relative_path, _ in (row[:2] for row in rows):
        (photos / relative_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEV_PHOTOS / relative_path, photos / relative_path)
    manifest = ["relative_path\tclass_index\tsplit", *("\t".join([*row[:2], "val"]) for row in rows)]
    (photos / "MANIFEST.tsv").write_text("\n".join(manifest) + "\n")
    assert main(["calibrate", str(folder), "--photos", str(photos)]) == 0
    output = capsys.readouterr().out
    metadata = ModelMetadata.read(folder)
    assert f"temperature {metadata.calibration.temperature:.4f}" in output
    assert metadata.calibration.temperature == pytest.approx(info.temperature, rel=0.05)  # nearly 1 x the first
    assert metadata.selective.fitted_on == "photos val (5 photos)"
    assert 0 < metadata.selective.threshold <= 1.0
    assert json.loads((folder / "metadata.json").read_text())["calibration_check"]["as_the_app_predicts"] == "plain"
    reloaded = load_model(folder)
    np.testing.assert_array_equal(
        reloaded.predict(fashion_data.test_images[:50, ..., None].astype("float32"), verbose=0).argmax(axis=1),
        result.model.predict(fashion_data.test_images[:50, ..., None].astype("float32"), verbose=0).argmax(axis=1),
    )
    assert not [path.name for path in folder.iterdir() if path.name.startswith(".")]  # no temporary file left
