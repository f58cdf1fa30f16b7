"""Model architectures by name, all under one contract.

Every model takes float32 `(N, 28, 28, 1)` images with pixel values 0..255 (light garment on black,
as in the dataset), scales them itself, and returns `(N, 10)` softmax probabilities in dataset class
order. Models use only built-in Keras layers, so a saved `.keras` file loads with plain
`keras.saving.load_model(path)` in a process that never imported `fashion_core`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from fashion_core.data import IMAGE_SIZE, NUM_CLASSES
from fashion_core.metadata import ARCHITECTURE_DESCRIPTIONS  # noqa: F401  (re-exported)


class KerasBackendError(ValueError):
    """Raised when Keras is set to run on another backend than TensorFlow, which this library needs."""


def configured_keras_backend() -> str:
    """The backend Keras runs (or will run) on, found as Keras finds it, without importing Keras.

    The loaded Keras' own answer if it is imported; else `$KERAS_BACKEND`; else the `"backend"` of
    `keras.json` in Keras' home (`$KERAS_HOME`, else `~/.keras`); else `"tensorflow"`.
    """
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "backend"):
        return sys.modules["keras"].backend.backend()
    if "KERAS_BACKEND" in os.environ:
        return os.environ["KERAS_BACKEND"]
    keras_home = os.environ["KERAS_HOME"] if "KERAS_HOME" in os.environ else Path.home() / ".keras"
    try:
        return json.loads((Path(keras_home).expanduser() / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):  # no file, or not a JSON object: Keras uses its default too
        return "tensorflow"


def require_tensorflow_backend() -> None:
    """Checks that Keras runs on TensorFlow, before any TensorFlow-backed code starts.

    The models, the training loop, Grad-CAM and the predictor use TensorFlow directly (`tf.function`,
    `tf.data`, `GradientTape`); under another Keras backend they would fail later with errors that do
    not name the cause, or Keras would not even import when that backend is not installed.

    Raises:
        KerasBackendError: when Keras is set to another backend.
    """
    backend = configured_keras_backend()
    if backend != "tensorflow":
        raise KerasBackendError(
            f"Fashion-MNIST Studio needs Keras on the TensorFlow backend, but Keras is set to use {backend!r}. "
            'Unset KERAS_BACKEND or set it to "tensorflow" (and check the "backend" of keras.json in '
            f"$KERAS_HOME or ~/.keras). Received: backend={backend!r}"
        )


require_tensorflow_backend()  # before Keras loads: under another backend it may not even import

import keras  # noqa: E402
from keras import layers  # noqa: E402

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
FEATURES_LAYER_NAME = "features"  # the penultimate layer, used for embeddings
PROBABILITIES_LAYER_NAME = "probabilities"


@dataclass(frozen=True)
class ModelOptions:
    """What a builder needs besides the architecture's name.

    Args:
        dropout: dropout rate before the classifier. Defaults to 0.3.
        augment: whether to add random augmentation layers (active only in training).
            Defaults to `True`.
        augment_strength: 0..1, scales shifts, zoom, rotation and erasing. Defaults to 0.4.
        seed: seed of the augmentation layers. Defaults to 0.
    """

    dropout: float = 0.3
    augment: bool = True
    augment_strength: float = 0.4
    seed: int = 0


def augmentation_layers(strength: float, seed: int) -> list[keras.layers.Layer]:
    """Random flips, shifts, zoom (each axis on its own), small rotations and erasing, in 0..255 pixel space.

    These are the changes that separate a real photo from a dataset image: a garment not quite
    centred, a little bigger or smaller, wider or narrower (a T-shirt laid flat with its sleeves
    spread is wider than the catalog shots the dataset was made from), tilted, mirrored, or partly
    hidden or badly cut out. At strength 0.4, the default, shifts are up to 1.3 pixels, the width
    changes by -24%..+12% and the height by +-8%, and 40% of the images get an erased patch.
    """
    shift = 0.12 * strength
    return [
        layers.RandomFlip("horizontal", seed=seed, name="random_flip"),
        layers.RandomTranslation(
            shift, shift, fill_mode="constant", interpolation="nearest", seed=seed + 1, name="random_shift"
        ),
        layers.RandomZoom(
            height_factor=(-0.2 * strength, 0.2 * strength),
            width_factor=(-0.6 * strength, 0.3 * strength),
            fill_mode="constant",
            seed=seed + 2,
            name="random_zoom",
        ),
        layers.RandomRotation(0.03 * strength, fill_mode="constant", seed=seed + 3, name="random_rotation"),
        layers.RandomErasing(
            factor=(strength, strength), scale=(0.02, 0.16), value_range=(0, 255), seed=seed + 4, name="random_erasing"
        ),
    ]


def _inputs_and_scaling(options: ModelOptions) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=INPUT_SHAPE, dtype="float32", name="image")
    x = inputs
    if options.augment and options.augment_strength > 0:
        for layer in augmentation_layers(options.augment_strength, options.seed):
            x = layer(x)
    x = layers.Rescaling(1.0 / 255.0, name="scale_to_unit")(x)
    return inputs, x


def _classifier(x: keras.KerasTensor) -> keras.KerasTensor:
    return layers.Dense(NUM_CLASSES, activation="softmax", name=PROBABILITIES_LAYER_NAME)(x)


def build_dense(options: ModelOptions) -> keras.Model:
    """The tutorials' baseline: Flatten, Dense 128 relu, Dense 10."""
    inputs, x = _inputs_and_scaling(options)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name=FEATURES_LAYER_NAME)(x)
    x = layers.Dropout(options.dropout, name="dropout")(x)
    return keras.Model(inputs, _classifier(x), name="dense")


def build_seed_cnn(options: ModelOptions) -> keras.Model:
    """The tutorials' small CNN: Conv 32, MaxPool, Conv 64, MaxPool, Dense 128, Dense 10."""
    inputs, x = _inputs_and_scaling(options)
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name=FEATURES_LAYER_NAME)(x)
    x = layers.Dropout(options.dropout, name="dropout")(x)
    return keras.Model(inputs, _classifier(x), name="seed_cnn")


def build_small_cnn(options: ModelOptions) -> keras.Model:
    """A fast CNN for quick runs: two conv blocks (32, 64 filters), Dense 128, Dense 10.

    Batch norm lets it learn in a few passes what `seed_cnn` needs many more for. Each block pools
    before its batch norm and ReLU, so those run on a quarter of the pixels: a quarter faster to
    train on a CPU than convolution, batch norm, ReLU, then pooling.
    """
    inputs, x = _inputs_and_scaling(options)
    for block, filters in enumerate((32, 64), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}")(x)
        x = layers.MaxPooling2D(name=f"pool{block}")(x)
        x = layers.BatchNormalization(name=f"conv{block}_bn")(x)
        x = layers.Activation("relu", name=f"conv{block}_relu")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(options.dropout, name="dropout")(x)
    x = layers.Dense(128, activation="relu", name=FEATURES_LAYER_NAME)(x)
    x = layers.Dropout(options.dropout / 2, name="classifier_dropout")(x)
    return keras.Model(inputs, _classifier(x), name="small_cnn")


def _conv_bn_relu(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build_cnn(options: ModelOptions) -> keras.Model:
    """The default: a VGG-style CNN with batch norm, dropout and augmentation.

    Two blocks of two 3x3 convolutions (32, then 64 filters) with max pooling, a third block of two
    96-filter convolutions at 7x7, then the 7x7 map flattened (garments are centred, so where a
    feature is matters), a 128-unit feature layer and the classifier.
    """
    inputs, x = _inputs_and_scaling(options)
    for block, filters in enumerate((32, 64), start=1):
        x = _conv_bn_relu(x, filters, f"conv{block}a")
        x = _conv_bn_relu(x, filters, f"conv{block}b")
        x = layers.MaxPooling2D(name=f"pool{block}")(x)
    x = _conv_bn_relu(x, 96, "conv3a")
    x = _conv_bn_relu(x, 96, "conv3b")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(options.dropout, name="dropout")(x)
    x = layers.Dense(128, activation="relu", name=FEATURES_LAYER_NAME)(x)
    x = layers.Dropout(options.dropout / 2, name="classifier_dropout")(x)
    return keras.Model(inputs, _classifier(x), name="cnn")


ARCHITECTURES: dict[str, Callable[[ModelOptions], keras.Model]] = {
    "dense": build_dense,
    "seed_cnn": build_seed_cnn,
    "small_cnn": build_small_cnn,
    "cnn": build_cnn,
}


def build_model(architecture: str, options: ModelOptions | None = None) -> keras.Model:
    """Builds an uncompiled model of the named architecture.

    Args:
        architecture: one of `ARCHITECTURES` (`"dense"`, `"seed_cnn"`, `"cnn"`).
        options: dropout, augmentation and seed. Defaults to `ModelOptions()`.

    Raises:
        ValueError: for an unknown architecture name.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture; choose one of {sorted(ARCHITECTURES)}. Received: architecture={architecture!r}"
        )
    return ARCHITECTURES[architecture](options or ModelOptions())


def inference_model(model: keras.Model, architecture: str, options: ModelOptions) -> keras.Model:
    """The same model without its augmentation layers and optimizer: what is saved and shipped.

    Keras' random augmentation layers default to `training=True`, so with them inside, a plain
    `model(images)` call (without `training=False`) would augment the images and update the
    batch-norm statistics. Only the training step needs them.
    """
    copy = build_model(architecture, replace(options, augment=False))
    for layer in copy.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return copy


def conv_layer_names(model: keras.Model) -> list[str]:
    """Names of the model's 2-D convolution layers, first to last."""
    return [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
