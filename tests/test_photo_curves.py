"""The training curves chart draws the real-photo validation curve beside Fashion-MNIST's."""

from types import SimpleNamespace

from fashion_core.charts import training_curves_chart


def progress(epoch_logs):
    return SimpleNamespace(
        batch_steps=(1, 2, 3, 4),
        batch_loss=(2.0, 1.0, 1.0, 1.0),
        batch_accuracy=(0.5, 0.6, 0.7, 0.8),
        steps_per_epoch=2,
        epoch_logs=epoch_logs,
    )


def test_the_accuracy_chart_shows_photo_val_accuracy_per_epoch_beside_validation():
    """Test that a run with photos gets a dashed photo-val curve on the accuracy chart, not on the loss chart."""
    logs = (
        {"epoch": 1, "val_loss": 0.9, "val_accuracy": 0.9, "photo_val_accuracy": 0.66},
        {"epoch": 2, "val_loss": 0.8, "val_accuracy": 0.92, "photo_val_accuracy": 0.74},
    )
    accuracy = training_curves_chart(progress(logs), "accuracy")
    names = [trace.name for trace in accuracy.data]
    assert names[2:] == ["validation, per epoch", "real photos (val), per epoch"]
    photos = accuracy.data[3]
    assert list(photos.x) == [1, 2] and list(photos.y) == [0.66, 0.74] and photos.line.dash == "dash"
    assert list(accuracy.data[2].y) == [0.9, 0.92]
    assert len(training_curves_chart(progress(logs), "loss").data) == 3


def test_a_run_without_photos_has_no_photo_curve():
    logs = ({"epoch": 1, "val_loss": 0.9, "val_accuracy": 0.9},)
    assert len(training_curves_chart(progress(logs), "accuracy").data) == 3
