"""Tests of the training config and loop, on small real subsets."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from fashion_core.evaluation import evaluate_model
from fashion_core.training import PRESETS, ProgressRecorder, TrainingConfig, TrainingFailed, train
from fashion_core.training.callbacks import RestoreBestWeights
from fashion_core.training.loop import (
    RunData,
    augmented_learning_rate,
    clean_phase_learning_rate,
    make_dataset,
    make_optimizer,
    make_training_dataset,
    mixed_weights,
    split_training_data,
)
from fashion_core.training.schedule import warmup_steps_for

TINY = {"architecture": "seed_cnn", "epochs": 1, "subset_size": 1000, "validation_fraction": 0.1, "augment": False}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, r"epochs must be in \[1, 200\]"),
        ("batch_size", 4096, r"batch_size must be in \[8, 1024\]"),
        ("learning_rate", float("nan"), "learning_rate must be a number"),
        ("dropout", 0.95, r"dropout must be in \[0.0, 0.8\]"),
        ("architecture", "vgg", "architecture must be one of"),
        ("optimizer", "adagrad", r"optimizer must be one of \['adam', 'sgd', 'rmsprop'\]"),
        ("schedule", "step", "schedule must be one of"),
        ("subset_size", 10, r"subset_size must be in \[100, 60000\]"),
        ("epochs", 2.5, "epochs must be a whole number"),
        ("augment", "yes", "augment must be True or False"),
        ("weight_decay", 0.5, r"weight_decay must be in \[0.0, 0.1\]"),
        ("clean_epochs", 1.5, "clean_epochs must be a whole number"),
        ("clean_epochs", 40, "clean_epochs must be less than epochs.*lower clean_epochs or raise epochs"),
        ("clean_mix", 1.5, r"clean_mix must be in \[0.0, 1.0\]"),
    ],
)
def test_invalid_config_names_the_allowed_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**{field: value})


def test_config_round_trips_through_a_dict():
    config = TrainingConfig(architecture="dense", epochs=3, learning_rate=1e-3)
    assert TrainingConfig.from_dict(config.to_dict()) == config


def test_presets_are_valid_and_quick_is_small():
    assert set(PRESETS) == {"Quick", "Standard", "Best"}
    assert PRESETS["Quick"].epochs <= PRESETS["Standard"].epochs <= PRESETS["Best"].epochs


@pytest.mark.parametrize(
    ("epochs", "steps_per_epoch", "expected"),
    [(40, 422, 422), (3, 422, 126), (1, 100, 10), (1, 5, 0)],
)
def test_warmup_is_one_epoch_but_never_more_than_a_tenth_of_the_run(epochs, steps_per_epoch, expected):
    assert warmup_steps_for(epochs, steps_per_epoch) == expected


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_weight_decay_reaches_the_optimizer_and_zero_means_none(optimizer):
    decayed = make_optimizer(TrainingConfig(optimizer=optimizer, weight_decay=5e-4), steps_per_epoch=10)
    assert decayed.weight_decay == pytest.approx(5e-4)
    assert make_optimizer(TrainingConfig(optimizer=optimizer), steps_per_epoch=10).weight_decay is None


def test_clean_epochs_are_counted_in_the_epochs_and_need_augmentation():
    config = TrainingConfig(epochs=40, clean_epochs=4)
    assert (config.augmented_epochs, config.final_clean_epochs) == (36, 4)
    for no_augmentation in ({"augment": False}, {"augment_strength": 0.0}):
        # Without augmentation every epoch is clean already: nothing to switch off, nothing to refuse.
        config = TrainingConfig(epochs=2, clean_epochs=4, **no_augmentation)
        assert (config.augmented_epochs, config.final_clean_epochs) == (2, 0)
    assert PRESETS["Best"].final_clean_epochs == 4 and PRESETS["Best"].clean_mix == 0.5
    assert PRESETS["Quick"].final_clean_epochs == 0


def test_the_augmented_schedule_ends_before_the_clean_one_starts_at_a_tenth():
    config = TrainingConfig(epochs=10, clean_epochs=2, learning_rate=1e-2)
    augmented = augmented_learning_rate(config, steps_per_epoch=10)
    assert float(augmented(80)) == pytest.approx(0.0, abs=1e-9)  # decayed to zero after the 8 augmented epochs
    assert float(augmented(8)) == pytest.approx(1e-2)  # the peak, after a tenth of the 80 augmented steps
    clean = clean_phase_learning_rate(config, steps_per_epoch=10)
    assert float(clean(0)) == pytest.approx(1e-3)
    assert float(clean(10)) == pytest.approx(0.5e-3)
    assert float(clean(20)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_clean_epochs_follow_on_without_augmentation_layers(fashion_data):
    recorder = ProgressRecorder(epochs=1, steps_per_epoch=1, batch_size=1)
    config = TrainingConfig(
        architecture="small_cnn", epochs=3, clean_epochs=1, subset_size=1000, augment_strength=0.4, learning_rate=1e-3
    )
    result = train(config, data=fashion_data, recorder=recorder)
    assert [log["epoch"] for log in result.history] == [1, 2, 3]
    assert result.epochs_run == 3 and not result.stopped_early
    progress = recorder.snapshot()
    assert progress.steps_done == 3 * 8 and progress.fraction_done == 1.0  # one run: 8 steps an epoch, counted on
    assert progress.learning_rate < 1e-4  # the clean phase's rate, decayed from a tenth of the peak
    assert not [layer.name for layer in result.model.layers if layer.name.startswith("random_")]
    assert result.best_epoch == 1 + int(np.argmax([log["val_accuracy"] for log in result.history]))
    metadata = result.metadata()
    assert metadata["validation_accuracy"] == pytest.approx(max(log["val_accuracy"] for log in result.history))
    assert 0.0 < metadata["validation_accuracy_flip_average"] <= 1.0


def test_an_endless_dataset_shuffles_each_pass_on_its_own_and_ends_each_with_the_smaller_batch():
    images = np.repeat(np.arange(10, dtype=np.uint8), 28 * 28).reshape(10, 28, 28)  # image i is all i
    dataset = make_dataset(images, np.arange(10), batch_size=4, shuffle_seed=1, endless=True)
    assert dataset.cardinality() == tf.data.INFINITE_CARDINALITY
    batches = [(x.numpy(), y.numpy()) for x, y in dataset.take(6)]  # two passes of 4 + 4 + 2
    assert [len(x) for x, _ in batches] == [4, 4, 2, 4, 4, 2]
    assert all(x.dtype == np.float32 and x.shape[1:] == (28, 28, 1) for x, _ in batches)
    passes = [np.concatenate([x[:, 0, 0, 0] for x, _ in batches[start : start + 3]]) for start in (0, 3)]
    assert [sorted(order.tolist()) for order in passes] == [list(range(10))] * 2  # each image once per pass
    assert passes[0].tolist() != passes[1].tolist()  # reshuffled
    for x, y in batches:
        np.testing.assert_array_equal(y.argmax(axis=1), x[:, 0, 0, 0])  # labels stay with their images


def test_a_run_reads_its_training_batches_from_one_endless_dataset(fashion_data):
    """Keras keeps one iterator of an endless dataset for a whole `fit`; a finite one it remakes every epoch."""
    config = TrainingConfig(**TINY)
    (train_images, train_labels), (val_images, val_labels) = split_training_data(config, fashion_data)
    run_data = RunData(train_images, train_labels, val_images, val_labels)
    assert make_training_dataset(config, run_data).cardinality() == tf.data.INFINITE_CARDINALITY


def test_mixed_weights_lie_on_the_line_between_the_two_and_keep_their_types():
    augmented = [np.zeros((2, 2), np.float32), np.full(3, 4.0, np.float32)]
    clean = [np.ones((2, 2), np.float32), np.full(3, 8.0, np.float32)]
    halfway = mixed_weights(augmented, clean, 0.5)
    assert [w.dtype for w in halfway] == [np.float32, np.float32]
    np.testing.assert_array_equal(halfway[0], np.full((2, 2), 0.5))
    np.testing.assert_array_equal(halfway[1], np.full(3, 6.0))
    assert all(np.array_equal(a, b) for a, b in zip(mixed_weights(augmented, clean, 1.0), clean))
    with pytest.raises(ValueError):
        mixed_weights(augmented, clean[:1], 0.5)  # the two must be the same model's weights


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """The weights of each layer that has some, by layer name, leaving out the augmentation layers' seeds."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights and "random" not in layer.name}


@pytest.mark.slow
def test_a_mixed_run_ends_halfway_between_its_best_augmented_and_best_clean_weights(fashion_data):
    """Test that clean_mix=0.5 keeps the midpoint of the two fits' ends and records that model's validation accuracy."""

    class KeepWeightsAtEachFitEnd(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_end(self, logs=None):  # after RestoreBestWeights (listed before it) put the best epoch back
            self.ends.append(layer_weights(self.model))

    config = TrainingConfig(
        architecture="small_cnn", epochs=2, clean_epochs=1, clean_mix=0.5, subset_size=1000, learning_rate=1e-3
    )
    ends = KeepWeightsAtEachFitEnd()
    result = train(config, data=fashion_data, callbacks=[ends])
    augmented_end, clean_end = ends.ends
    final = layer_weights(result.model)
    assert set(final) == set(augmented_end) == set(clean_end)
    temperature = result.metadata()["calibration"]["temperature"]  # folded into the softmax layer at the end
    for name, weights in final.items():
        scale = temperature if name == "probabilities" else 1.0
        for got, augmented, clean in zip(weights, augmented_end[name], clean_end[name], strict=True):
            np.testing.assert_allclose(got * scale, (augmented + clean) / 2, rtol=1e-4, atol=1e-6)
    _, (val_images, val_labels) = split_training_data(config, fashion_data)
    recorded = result.metadata()["validation_accuracy"]
    assert recorded == pytest.approx(evaluate_model(result.model, val_images, val_labels).accuracy, abs=1e-6)


@pytest.mark.slow
def test_a_stop_during_the_augmented_epochs_skips_the_clean_ones(fashion_data):
    stop_event = threading.Event()

    class StopInTheFirstEpoch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:
                stop_event.set()

    config = TrainingConfig(architecture="small_cnn", epochs=3, clean_epochs=1, subset_size=1000)
    result = train(config, data=fashion_data, stop_event=stop_event, callbacks=[StopInTheFirstEpoch()])
    assert result.stopped_early and result.epochs_run == 1
    assert [layer.name for layer in result.model.layers if layer.name.startswith("random_")]  # never rebuilt


@pytest.mark.slow
def test_train_on_a_small_subset_returns_an_evaluated_model(fashion_data):
    result = train(TrainingConfig(**TINY), data=fashion_data)
    assert result.epochs_run == 1
    assert result.num_train_images == 900 and result.num_validation_images == 100
    assert result.evaluation.confusion_matrix.sum() == 10000
    assert 0.5 < result.evaluation.accuracy <= 1.0  # one pass over 900 images is far above chance (0.1)
    assert set(result.history[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "epoch"}
    metadata = result.metadata()
    assert metadata["config"]["subset_size"] == 1000
    assert metadata["test_accuracy"] == pytest.approx(result.evaluation.accuracy, abs=1e-6)
    assert metadata["validation_accuracy"] == pytest.approx(result.history[0]["val_accuracy"], abs=1e-6)
    assert "validation_accuracy_flip_average" not in metadata  # trained without flips: the app does not average


@pytest.mark.slow
def test_a_stop_request_ends_the_run_after_the_current_batch(fashion_data):
    stop_event = threading.Event()

    class StopDuringTheThirdBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                stop_event.set()

    recorder = ProgressRecorder(epochs=3, steps_per_epoch=1, batch_size=1)
    config = TrainingConfig(**{**TINY, "epochs": 3})
    result = train(
        config, data=fashion_data, stop_event=stop_event, callbacks=[StopDuringTheThirdBatch()], recorder=recorder
    )
    assert recorder.snapshot().steps_done == 3
    assert result.stopped_early
    assert result.evaluation.confusion_matrix.sum() == 10000


def test_a_nan_loss_fails_the_run_with_its_reason(fashion_data):
    class PoisonClassifierBias(keras.callbacks.Callback):
        """Makes the classifier's bias NaN before the second batch, as a diverging run would."""

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:
                weights = self.model.get_weights()
                weights[-1] = np.full_like(weights[-1], np.nan)
                self.model.set_weights(weights)

    with pytest.raises(TrainingFailed, match="loss became nan at epoch 1, batch 2.*Lower the learning rate"):
        train(TrainingConfig(**TINY), data=fashion_data, callbacks=[PoisonClassifierBias()])


def test_restore_best_weights_puts_back_the_best_epoch():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    callback = RestoreBestWeights(monitor="val_accuracy")
    callback.set_model(model)
    callback.on_train_begin()
    best = [w.copy() for w in model.get_weights()]
    callback.on_epoch_end(0, {"val_accuracy": 0.9})
    model.set_weights([w + 1 for w in best])
    callback.on_epoch_end(1, {"val_accuracy": 0.5})
    callback.on_train_end()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), best))
    assert callback.best_epoch == 0


def test_restore_best_weights_carries_the_best_epoch_into_the_next_fit():
    """Test that after `continue_in_next_fit` a worse epoch of the rebuilt model does not replace the best one."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    callback = RestoreBestWeights(monitor="val_accuracy")
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_accuracy": 0.9})
    callback.on_train_end()
    best = [w.copy() for w in model.get_weights()]
    callback.continue_in_next_fit(best)
    callback.on_train_begin()
    model.set_weights([w + 1 for w in best])
    callback.on_epoch_end(1, {"val_accuracy": 0.8})
    callback.on_train_end()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), best))
    assert (callback.best_epoch, callback.best_value) == (0, 0.9)
    callback.continue_in_next_fit(model.get_weights())
    callback.on_train_begin()
    callback.on_epoch_end(2, {"val_accuracy": 0.95})
    assert callback.best_epoch == 2
