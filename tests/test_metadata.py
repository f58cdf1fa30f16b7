"""`ModelMetadata`: one typed record for `metadata.json`, its rules, and old files still loading."""

import json

import pytest

from fashion_core.metadata import (
    CalibrationInfo,
    ExportCheck,
    MetadataError,
    ModelMetadata,
    PhotoSetInfo,
    SelectiveAnswer,
)
from tests.conftest import SHIPPED_MODEL_DIR


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
    assert ModelMetadata.from_dict(metadata).trained_with_flips is expected


def test_the_reported_accuracy_is_the_flip_averaged_one_only_for_models_trained_with_flips():
    flips = {"augment": True, "augment_strength": 0.4}
    no_flips = {"augment": False, "augment_strength": 0.4}

    def reported(data):
        return ModelMetadata.from_dict(data).reported_test_accuracy

    assert reported({"config": flips, "test_accuracy": 0.94, "test_accuracy_flip_average": 0.95}) == 0.95
    assert reported({"config": flips, "test_accuracy": 0.94}) == 0.94  # not measured: the plain one
    assert reported({"config": no_flips, "test_accuracy": 0.9, "test_accuracy_flip_average": 0.8}) == 0.9
    assert reported({"test_accuracy": "n/a"}) is None


def test_the_shipped_metadata_file_reads_and_writes_back_unchanged():
    original = json.loads((SHIPPED_MODEL_DIR / "metadata.json").read_text())
    metadata = ModelMetadata.read(SHIPPED_MODEL_DIR)
    assert metadata.architecture == original["architecture"]
    assert metadata.test_accuracy == original["test_accuracy"]
    assert metadata.to_dict() == original
    assert ModelMetadata.from_dict(metadata.to_dict()) == metadata


def test_an_old_file_without_architecture_takes_it_and_the_seed_from_its_config():
    metadata = ModelMetadata.from_dict({"config": {"architecture": "dense", "seed": 3}, "note": "kept"})
    assert (metadata.architecture, metadata.seed) == ("dense", 3)
    assert metadata.extra == {"note": "kept"}
    assert metadata.temperature == 1.0 and metadata.calibration is None


def test_nested_records_round_trip_and_bad_ones_are_dropped():
    metadata = ModelMetadata(
        architecture="cnn",
        calibration=CalibrationInfo(temperature=0.8, fitted_on="validation", ece_before=0.08, ece_after=0.01),
        exports=(ExportCheck(format="litert", file="model.tflite", agreement=1.0, num_images=10000),),
        photos=PhotoSetInfo(fingerprint="abc", train_counts={"Coat": 3}),
        selective=SelectiveAnswer(threshold=0.7, target_accuracy=0.9, coverage=0.5),
    )
    assert ModelMetadata.from_dict(json.loads(json.dumps(metadata.to_dict()))) == metadata
    assert metadata.temperature == 0.8
    assert metadata.export("litert").agreement == 1.0 and metadata.export("onnx") is None
    newer = metadata.with_export(ExportCheck(format="litert", agreement=0.999))
    assert [check.agreement for check in newer.exports] == [0.999]
    broken = ModelMetadata.from_dict({"calibration": {"fitted_on": "no temperature"}, "exports": ["x", {}]})
    assert broken.calibration is None and broken.exports == ()


def test_wrongly_typed_values_get_their_defaults():
    metadata = ModelMetadata.from_dict({"epochs_run": "3", "history": {}, "test_accuracy": True, "config": []})
    assert (metadata.epochs_run, metadata.history, metadata.test_accuracy, metadata.config) == (None, [], None, {})


@pytest.mark.parametrize(
    ("content", "message"), [(None, "is missing"), ("{no", "is unreadable"), ("[1]", "JSON object")]
)
def test_a_bad_metadata_file_raises_a_clear_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / "metadata.json").write_text(content)
    with pytest.raises(MetadataError, match=message):
        ModelMetadata.read(tmp_path)


def test_write_then_read_gives_the_same_record(tmp_path):
    metadata = ModelMetadata(architecture="dense", test_accuracy=0.8, extra={"job_id": "x"})
    metadata.write(tmp_path)
    assert ModelMetadata.read(tmp_path) == metadata
