"""Training with real photos in the batches, photo-val curves, and fine-tuning from a chosen model."""

import shlex

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_photo_data import dev_rows, write_photo_folder

from fashion_core.cli import build_parser, config_from_args
from fashion_core.metadata import ModelMetadata
from fashion_core.models import PROBABILITIES_LAYER_NAME
from fashion_core.photo_data import PhotoArrays, load_photo_folder
from fashion_core.registry import load_model, save_model_dir
from fashion_core.training import TrainingConfig, train
from fashion_core.training.loop import (
    InitModelError,
    RunData,
    augment_photo,
    layer_weights,
    make_mixed_dataset,
    photos_per_batch,
    steps_per_epoch_for,
)

TINY = {"architecture": "small_cnn", "epochs": 1, "subset_size": 1000, "validation_fraction": 0.1, "augment": False}


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Twenty dev photos (four of each of five classes), half `train`, half `val`."""
    rows = dev_rows(4)
    return write_photo_folder(tmp_path_factory.mktemp("photos"), rows, ["train", "val"] * (len(rows) // 2))


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FASHION_STUDIO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "photo-cache"))


def test_photo_share_needs_photos_and_has_a_range():
    with pytest.raises(ValueError, match="photo_share mixes photos into the batches, so it needs photos"):
        TrainingConfig(photo_share=0.2)
    with pytest.raises(ValueError, match=r"photo_share must be in \[0.0, 0.5\]"):
        TrainingConfig(photos="somewhere", photo_share=0.8)
    config = TrainingConfig(photos="somewhere", photo_share=0.2, batch_size=128)
    assert photos_per_batch(config) == 26
    assert photos_per_batch(config.replace(photo_share=0.0)) == 0


def test_each_mixed_batch_holds_its_share_of_photos_and_an_epoch_is_one_pass_over_the_dataset(photo_folder):
    photos = load_photo_folder(photo_folder, "train")
    images = np.repeat(np.arange(1, 101, dtype=np.uint8), 28 * 28).reshape(100, 28, 28)  # image i is all i+1
    labels = np.full(100, 9, np.uint8)
    config = TrainingConfig(photos=str(photo_folder), photo_share=0.25, batch_size=16, seed=3)
    dataset = make_mixed_dataset(images, labels, photos, config)
    assert dataset.cardinality() == tf.data.INFINITE_CARDINALITY
    steps = 100 // 12  # an epoch: 8 batches of 12 dataset images (4 left out) and 4 photos
    batches = list(dataset.take(2 * steps))
    for x, y in batches:
        assert x.shape == (16, 28, 28, 1) and y.shape == (16, 10)
        classes = y.numpy().argmax(axis=1)
        assert (classes[:12] == 9).all()
        assert set(classes[12:]) <= set(photos.labels.tolist()) and x.numpy()[12:].max() > 0
    passes = [[int(x[i, 0, 0, 0]) for x, _ in epoch for i in range(12)] for epoch in (batches[:steps], batches[steps:])]
    assert [len(set(seen)) for seen in passes] == [96, 96]  # each epoch shows 96 different dataset images
    assert passes[0] != passes[1]  # in a new order


def test_photo_augmentation_keeps_the_frame_and_changes_the_photo(photo_folder):
    photo = tf.constant(load_photo_folder(photo_folder, "train").images[0][..., None], tf.float32)
    tf.random.set_seed(0)
    varied = [augment_photo(photo, 1.0).numpy() for _ in range(4)]
    assert all(v.shape == (28, 28, 1) and v.min() >= 0 and v.max() <= 255 for v in varied)
    assert all(np.abs(v - photo.numpy()).mean() > 1 for v in varied)
    np.testing.assert_array_equal(augment_photo(photo, 0.0).numpy(), photo.numpy())


def test_a_run_with_photos_records_photo_val_accuracy_and_the_photo_set(fashion_data, photo_folder):
    config = TrainingConfig(**{**TINY, "epochs": 2}, photos=str(photo_folder), photo_share=0.25)
    result = train(config, data=fashion_data)
    val = load_photo_folder(photo_folder, "val")
    assert [sorted(log) for log in result.history] == [
        ["accuracy", "epoch", "loss", "photo_val_accuracy", "val_accuracy", "val_loss"]
    ] * 2
    predicted = result.model.predict(val.images[..., None].astype(np.float32), verbose=0).argmax(axis=1)
    assert result.history[-1]["photo_val_accuracy"] == pytest.approx((predicted == val.labels).mean())
    metadata = ModelMetadata.from_dict(result.metadata())
    train_photos = load_photo_folder(photo_folder, "train")
    both = PhotoArrays(
        np.concatenate([train_photos.images, val.images]),
        np.concatenate([train_photos.labels, val.labels]),
        [*train_photos.digests, *val.digests],
    )
    assert metadata.photos.fingerprint == both.fingerprint
    assert metadata.photos.train_counts == train_photos.counts_by_class_name()
    assert sum(metadata.photos.train_counts.values()) == 10
    assert metadata.photos.val_counts == val.counts_by_class_name() and metadata.photos.source == str(photo_folder)
    assert metadata.extra["photo_val_accuracy"] == pytest.approx(result.history[-1]["photo_val_accuracy"], abs=1e-6)
    assert result.num_train_images == 900
    run_data = RunData(np.zeros((900, 28, 28), np.uint8), np.zeros(900), np.zeros((0, 28, 28)), np.zeros(0))
    assert steps_per_epoch_for(config, run_data) == 900 // (128 - 32)
    assert steps_per_epoch_for(config.replace(photo_share=0.0), run_data) == 8


@pytest.fixture(scope="module")
def start_model_dir(fashion_data, tmp_path_factory):
    result = train(TrainingConfig(**TINY, seed=5), data=fashion_data)
    return save_model_dir(tmp_path_factory.mktemp("models") / "start", result.model, result.metadata())


def test_fine_tuning_starts_from_the_given_weights_and_takes_its_architecture(fashion_data, start_model_dir):
    class WeightsAtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = layer_weights(self.model)

    start = layer_weights(load_model(start_model_dir))
    seen = WeightsAtStart()
    config = TrainingConfig(**{**TINY, "architecture": "dense"}, init_model=str(start_model_dir), learning_rate=1e-3)
    result = train(config, data=fashion_data, callbacks=[seen])
    assert result.config.architecture == "small_cnn" and result.metadata()["config"]["init_model"] == str(
        start_model_dir
    )
    assert "photos" not in result.metadata() and "photo_val_accuracy" not in result.history[0]  # no photos given
    assert set(seen.weights) == set(start)
    for name, weights in start.items():
        for got, expected in zip(seen.weights[name], weights, strict=True):
            np.testing.assert_array_equal(got, expected)
    assert any(
        not np.array_equal(got, expected)
        for name, weights in layer_weights(result.model).items()
        for got, expected in zip(weights, start[name], strict=True)
    )


def weights_before_calibration(result) -> dict[str, list[np.ndarray]]:
    """The run's final weights before `calibrate_step` divided the classifier's by the fitted temperature."""
    weights = layer_weights(result.model)
    temperature = ModelMetadata.from_dict(result.metadata()).temperature
    weights[PROBABILITIES_LAYER_NAME] = [w * temperature for w in weights[PROBABILITIES_LAYER_NAME]]
    return weights


def test_init_mix_moves_the_final_weights_back_toward_the_start(fashion_data, start_model_dir):
    start = layer_weights(load_model(start_model_dir))
    config = TrainingConfig(**TINY, init_model=str(start_model_dir), learning_rate=1e-3)
    tuned = weights_before_calibration(train(config, data=fashion_data))
    halfway = weights_before_calibration(train(config.replace(init_mix=0.5), data=fashion_data))
    for name in start:
        for mixed, begin, end in zip(halfway[name], start[name], tuned[name], strict=True):
            np.testing.assert_allclose(mixed, (begin + end) / 2, rtol=1e-4, atol=1e-5)


def test_an_unknown_init_model_says_what_it_accepts(fashion_data):
    with pytest.raises(InitModelError, match=r"names neither a model folder.*Received: init_model='no-such-model'"):
        train(TrainingConfig(**TINY, init_model="no-such-model"), data=fashion_data)


def test_the_command_line_takes_the_photo_and_fine_tuning_flags():
    command = (
        "train --preset Best --init-model model_artifacts/default --photos ../shared/realphotos-cc0 "
        "--photo-share 0.15 --photo-augment 0.6 --init-mix 0.5 --epochs 3 --clean-epochs 1 --out x"
    )
    args = build_parser().parse_args(shlex.split(command))
    config = config_from_args(args)
    assert (config.init_model, config.photos) == ("model_artifacts/default", "../shared/realphotos-cc0")
    assert (config.photo_share, config.photo_augment, config.init_mix) == (0.15, 0.6, 0.5)
    assert (config.epochs, config.clean_epochs, config.clean_mix) == (3, 1, 0.5)
