"""Tests of the model registry: round trips, names, protection of the shipped model, crash safety."""

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from fashion_core.models import ModelOptions, build_model
from fashion_core.registry import DEFAULT_MODEL_NAME, ModelRegistry, RegistryError, load_model, remove_stale_staging
from tests.conftest import REPO_ROOT, SHIPPED_MODEL_DIR


@pytest.fixture(scope="module")
def tiny_model():
    return build_model("dense", ModelOptions(augment=False))


@pytest.fixture
def registry(private_user_models):
    return ModelRegistry(user_dir=private_user_models)


def test_save_then_load_gives_the_same_predictions(registry, tiny_model, fashion_data):
    entry = registry.save("my-run_1", tiny_model, {"test_accuracy": 0.5, "config": {"architecture": "dense"}})
    assert entry.readable and entry.metadata.test_accuracy == 0.5
    assert {"created_at", "keras_version", "tensorflow_version", "parameter_count"} <= set(entry.metadata.to_dict())
    images = fashion_data.test_images[:5, ..., None].astype("float32")
    loaded = registry.load("my-run_1")
    assert np.allclose(loaded(images), tiny_model(images), atol=1e-6)
    assert [e.name for e in registry.list_models()] == [DEFAULT_MODEL_NAME, "my-run_1"]


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "", "a b", "dots.are.out", "x" * 65, "ünï"])
def test_names_that_could_escape_or_confuse_are_refused(registry, tiny_model, name):
    with pytest.raises(RegistryError, match="A model name is 1 to 64 letters"):
        registry.save(name, tiny_model, {})
    assert not any(registry.user_dir.glob("*")) if registry.user_dir.exists() else True


def test_the_shipped_model_cannot_be_overwritten_or_deleted(registry, tiny_model):
    with pytest.raises(RegistryError, match="shipped model and cannot be overwritten"):
        registry.save(DEFAULT_MODEL_NAME, tiny_model, {})
    with pytest.raises(RegistryError, match="shipped model and cannot be deleted"):
        registry.delete(DEFAULT_MODEL_NAME)
    assert registry.default_entry().readable


def test_a_second_save_under_a_taken_name_is_refused_and_the_first_kept(registry, tiny_model):
    registry.save("taken", tiny_model, {"test_accuracy": 0.1})
    with pytest.raises(RegistryError, match="already exists"):
        registry.save("taken", tiny_model, {"test_accuracy": 0.9})
    assert registry.entry("taken").metadata.test_accuracy == 0.1


def test_two_saves_at_once_under_one_name_give_one_winner(registry, tiny_model):
    outcomes = []

    def save(accuracy):
        try:
            registry.save("race", tiny_model, {"test_accuracy": accuracy})
            outcomes.append("saved")
        except RegistryError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=save, args=(value,)) for value in (0.1, 0.2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes)[-1] == "saved" and outcomes.count("saved") == 1
    loser = next(o for o in outcomes if o != "saved")
    assert "already exists" in loser or "a moment ago" in loser
    assert registry.entry("race").readable
    assert [p.name for p in registry.user_dir.iterdir()] == ["race"]  # no staging folder left


def test_corrupt_artifacts_are_listed_as_unreadable_with_their_reason(registry, tiny_model):
    registry.save("good", tiny_model, {})
    bad_json = registry.user_dir / "bad-json"
    bad_json.mkdir()
    (bad_json / "model.keras").write_bytes(b"PK")
    (bad_json / "metadata.json").write_text("{not json")
    no_model = registry.user_dir / "no-model"
    no_model.mkdir()
    entries = {e.name: e for e in registry.list_models()}
    assert entries["good"].readable
    assert "metadata.json is unreadable" in entries["bad-json"].error
    assert "model.keras is missing" in entries["no-model"].error


def test_a_corrupt_model_file_raises_registry_error_on_load(registry, tiny_model):
    entry = registry.save("will-break", tiny_model, {})
    entry.model_file.write_bytes(b"this is not a zip archive")
    with pytest.raises(RegistryError, match="could not be loaded.*delete it and save it again"):
        registry.load("will-break")


def test_delete_removes_a_user_model(registry, tiny_model):
    registry.save("old", tiny_model, {})
    registry.delete("old")
    assert [e.name for e in registry.list_models()] == [DEFAULT_MODEL_NAME]
    with pytest.raises(RegistryError, match="no model named 'old'"):
        registry.delete("old")


def test_an_unreadable_registry_folder_raises_a_clear_error(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(RegistryError, match="cannot be read"):
        ModelRegistry(user_dir=not_a_folder).list_models()


def test_load_model_loads_in_safe_mode_and_checks_shapes(tmp_path):
    import keras

    wrong = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    wrong.save(tmp_path / "wrong.keras")
    with pytest.raises(RegistryError, match=r"takes \(None, 4\)"):
        load_model(tmp_path / "wrong.keras")


KILLED_SAVE_SCRIPT = """
import sys, time
import fashion_core.registry as registry
from fashion_core.models import ModelOptions, build_model

stage = sys.argv[2]
original_write = registry.write_model_dir

def slow_write(parent, model, metadata):
    if stage == "while-writing":
        import keras
        real_save = keras.Model.save
        def half_save(self, path, *args, **kwargs):
            open(path, "wb").write(b"PK\\x03\\x04 half a zip")
            print("READY", flush=True)
            time.sleep(60)
        keras.Model.save = half_save
    staging = original_write(parent, model, metadata)
    print("READY", flush=True)
    time.sleep(60)
    return staging

registry.write_model_dir = slow_write
model = build_model("dense", ModelOptions(augment=False))
registry.ModelRegistry(user_dir=sys.argv[1]).save("victim", model, {"test_accuracy": 0.99})
"""


@pytest.mark.parametrize("stage", ["while-writing", "before-publishing"])
def test_a_save_killed_half_way_leaves_no_broken_model(registry, tiny_model, stage):
    registry.save("survivor", tiny_model, {"test_accuracy": 0.42})
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE_SCRIPT, str(registry.user_dir), stage],
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert process.stdout.readline().strip() == b"READY"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    entries = {e.name: e for e in registry.list_models()}
    assert "victim" not in entries
    assert entries["survivor"].readable and entries["survivor"].metadata.test_accuracy == 0.42
    assert registry.load("survivor") is not None
    leftovers = list(registry.user_dir.glob(".saving-*"))
    assert leftovers  # the killed save's hidden staging folder, never listed
    remove_stale_staging(registry.user_dir, older_than_seconds=0)
    assert not list(registry.user_dir.glob(".saving-*"))


def test_shipped_metadata_records_how_the_model_was_made():
    metadata = json.loads((SHIPPED_MODEL_DIR / "metadata.json").read_text())
    for key in (
        "command",
        "seed",
        "training_seconds",
        "test_accuracy",
        "per_class_accuracy",
        "confusion_matrix",
        "created_at",
        "tensorflow_version",
        "keras_version",
        "config",
        "epochs_run",
        "num_train_images",
    ):
        assert key in metadata, key
    assert metadata["command"].startswith("python -m fashion_core train")
    assert (SHIPPED_MODEL_DIR / "model.keras").stat().st_size < 5 * 1024 * 1024


def test_saved_models_carry_no_optimizer_state(registry, fashion_data):
    import zipfile

    import h5py

    model = build_model("dense", ModelOptions(augment=False))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(fashion_data.train_images[:64, ..., None].astype("float32"), fashion_data.train_labels[:64], verbose=0)
    entry = registry.save("compiled", model, {})
    with zipfile.ZipFile(entry.model_file) as archive, h5py.File(archive.open("model.weights.h5")) as weights:
        optimizer_arrays = [name for name in weights.get("optimizer/vars", {})]
    assert optimizer_arrays == []
    assert entry.size_bytes < 500_000  # 101,770 float32 weights, without Adam's two copies of them
