"""Every architecture keeps the model contract: 0..255 in, softmax out, plain `load_model` works."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from fashion_core.artifacts import ModelFileError, conv_layer_names_in_file
from fashion_core.models import (
    ARCHITECTURES,
    ModelOptions,
    augmentation_layers,
    build_model,
    conv_layer_names,
    inference_model,
)
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_architecture_returns_probabilities_for_0_to_255_images(architecture, fashion_data):
    model = build_model(architecture, ModelOptions(augment=True))
    images = fashion_data.test_images[:8, ..., None].astype("float32")  # (8, 28, 28, 1), 0..255
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (8, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_architecture_learns_from_a_small_batch(architecture, fashion_data):
    model = build_model(architecture, ModelOptions(augment=False, dropout=0.0))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images = fashion_data.train_images[:256, ..., None].astype("float32")
    labels = fashion_data.train_labels[:256]
    history = model.fit(images, labels, epochs=3, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_the_inference_model_predicts_the_same_and_a_plain_call_changes_nothing(architecture, fashion_data):
    trained = build_model(architecture, ModelOptions(augment=True, augment_strength=1.0))
    model = inference_model(trained, architecture, ModelOptions())
    assert not [layer.name for layer in model.layers if layer.name.startswith("random_")]
    images = fashion_data.test_images[:16, ..., None].astype("float32")
    weights_before = [w.copy() for w in model.get_weights()]
    first, second = np.asarray(model(images)), np.asarray(model(images))
    np.testing.assert_array_equal(first, second)  # no augmentation, no dropout
    np.testing.assert_allclose(first, np.asarray(trained(images, training=False)), atol=1e-6)
    for before, after in zip(model.get_weights(), weights_before, strict=True):
        np.testing.assert_array_equal(before, after)  # batch-norm statistics untouched


def garment_width_and_height(image: np.ndarray) -> tuple[int, int]:
    columns, rows = np.flatnonzero(image.max(axis=0) > 40), np.flatnonzero(image.max(axis=1) > 40)
    return columns[-1] - columns[0] + 1, rows[-1] - rows[0] + 1


def test_augmentation_changes_width_and_height_independently(fashion_data):
    """Real T-shirts laid flat are wider than the dataset's: the zoom must change the aspect ratio too."""
    image = fashion_data.train_images[fashion_data.train_labels == 0][0].astype("float32")
    batch = np.repeat(image[None, ..., None], 64, axis=0)
    zoom = next(layer for layer in augmentation_layers(1.0, seed=0) if layer.name == "random_zoom")
    zoomed = np.asarray(zoom(batch, training=True))[..., 0]
    ratios = [width / height for width, height in map(garment_width_and_height, zoomed)]
    original = np.divide(*garment_width_and_height(image))
    assert min(ratios) < 0.9 * original and max(ratios) > 1.1 * original
    assert zoomed.min() >= 0.0 and zoomed.max() <= 255.5


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"choose one of \['cnn', 'dense', 'seed_cnn', 'small_cnn'\]"):
        build_model("resnet")


def test_conv_layer_names_lists_the_default_cnns_convolutions_in_order():
    names = conv_layer_names(build_model("cnn"))
    assert names == ["conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b"]
    assert conv_layer_names(build_model("dense")) == []


def test_saved_model_loads_with_plain_keras_in_a_fresh_process(tmp_path, fashion_data):
    model = build_model("cnn", ModelOptions(augment=True))
    images = fashion_data.test_images[:4, ..., None].astype("float32")
    expected = np.asarray(model(images, training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, keras\n"
        f"model = keras.saving.load_model({str(path)!r})\n"
        f"out = model(np.load({str(tmp_path / 'images.npy')!r}), training=False)\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, np.asarray(out))\n"
        "assert 'fashion_core' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=120)
    assert np.allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


def run_python(code_or_args: list[str], env_changes: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    """Runs the project's Python in a fresh process, with Keras' home in `tmp_path` and `env_changes` on top."""
    env = {key: value for key, value in os.environ.items() if key not in ("KERAS_BACKEND", "KERAS_HOME")}
    env.update({"KERAS_HOME": str(tmp_path / "keras-home"), "TF_CPP_MIN_LOG_LEVEL": "3", **env_changes})
    return subprocess.run(
        [sys.executable, *code_or_args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300
    )


def test_a_keras_set_to_another_backend_is_refused_with_one_clear_message(tmp_path):
    """Test that KERAS_BACKEND=jax stops the library before Keras loads, saying what to change."""
    imported = run_python(["-c", "import fashion_core.models"], {"KERAS_BACKEND": "jax"}, tmp_path)
    assert imported.returncode != 0
    last_line = imported.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "fashion_core.models.KerasBackendError: Fashion-MNIST Studio needs Keras on the TensorFlow backend, "
        "but Keras is set to use 'jax'. Unset KERAS_BACKEND"
    )
    assert last_line.endswith("Received: backend='jax'")
    assert "No module named 'jax'" not in imported.stderr  # refused before Keras tried to load JAX

    loading = run_python(
        ["-c", "from fashion_core.registry import load_model; load_model('model_artifacts/default')"],
        {"KERAS_BACKEND": "jax"},
        tmp_path,
    )
    assert loading.returncode != 0 and "No module named" not in loading.stderr
    assert loading.stderr.strip().splitlines()[-1].endswith("Received: backend='jax'")

    cli = run_python(["-m", "fashion_core", "evaluate", "model_artifacts/default"], {"KERAS_BACKEND": "jax"}, tmp_path)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert cli.stderr.startswith("error: Fashion-MNIST Studio needs Keras on the TensorFlow backend")


def test_the_backend_in_keras_json_is_checked_before_the_training_package_loads_keras(tmp_path):
    """Test that `keras.json` under KERAS_HOME saying "torch" is refused by `fashion_core.training` too."""
    keras_json = tmp_path / "keras-home" / "keras.json"
    keras_json.parent.mkdir()
    keras_json.write_text(json.dumps({"backend": "torch", "floatx": "float32"}))
    refused = run_python(["-c", "import fashion_core.training.callbacks"], {}, tmp_path)
    assert refused.returncode != 0
    assert "KerasBackendError: Fashion-MNIST Studio needs Keras on the TensorFlow backend" in refused.stderr
    assert "Keras is set to use 'torch'" in refused.stderr and "No module named" not in refused.stderr


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_conv_layer_names_read_from_a_saved_file_are_the_loaded_models(architecture, tmp_path):
    """Test that the `.keras` file's configuration lists the same convolution layers as the model, in order."""
    model = build_model(architecture, ModelOptions(augment=architecture != "dense"))
    path = tmp_path / "model.keras"
    model.save(path)
    assert conv_layer_names_in_file(path) == conv_layer_names(model)


def test_conv_layer_names_of_a_file_without_a_model_configuration_are_refused(tmp_path):
    """Test that a file that is no zip, a zip without `config.json` and a configuration without layers each
    raise `ModelFileError` naming the file."""
    import zipfile

    not_a_zip = tmp_path / "text.keras"
    not_a_zip.write_text("not a model")
    no_config = tmp_path / "empty.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("model.weights.h5", b"")
    no_layers = tmp_path / "odd.keras"
    with zipfile.ZipFile(no_layers, "w") as archive:
        archive.writestr("config.json", '{"class_name": "Functional", "config": {}}')
    for path in (not_a_zip, no_config, no_layers, tmp_path / "missing.keras"):
        with pytest.raises(ModelFileError, match=re.escape(str(path))):
            conv_layer_names_in_file(path)
