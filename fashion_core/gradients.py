"""Gradient explanations: Grad-CAM, Grad-CAM++, saliency, gradient x input and SmoothGrad (needs TensorFlow).

Every map is a `(28, 28)` float32 array in [0, 1] aligned with the model's input image. These need a
Keras model (gradients), so they live apart from `fashion_core.explain`, which holds the method
registry, the forward-only methods (which also run on a LiteRT predictor) and the overlays, and
imports this module only when a gradient method is asked for.

The class score differentiated is the class's **logit** (the score before softmax), as in
Selvaraju et al. 2017: the gradient of a softmax probability also depends on every other class's
score and vanishes when the model is confident, which washes the maps out. The logit costs nothing
extra: the last layer is a Dense layer with a softmax activation, so the logits are
`features @ kernel + bias` of that layer's input. A model whose last layer is not a softmax Dense (or a
softmax Activation after one) is explained through its probabilities instead.

Gradient functions are traced once per (model, method, layer) into a `tf.function` and cached, so a
map costs one forward and one backward pass (a few milliseconds on a CPU). The cache is thread-safe:
several Streamlit sessions may ask for maps of the same model at once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from fashion_core.data import IMAGE_SIZE
from fashion_core.explain import (
    GRADCAM,
    GRADCAM_PLUS_PLUS,
    SALIENCY,
    ExplainError,
    _as_image_batch,
    _class_indices,
    _normalised,
)
from fashion_core.models import INPUT_SHAPE, conv_layer_names

_IMAGE_SPEC = tf.TensorSpec(shape=(None, *INPUT_SHAPE), dtype=tf.float32)
_CLASS_SPEC = tf.TensorSpec(shape=(None,), dtype=tf.int32)  # -1 means "the predicted class"
_FEATURE_MAP_FOLLOWERS = (
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
)

# model -> {(method, layer name): traced function}. Weak keys: a model dropped from Streamlit's
# resource cache is freed with its functions (they hold the model's layers, never the model object).
_FUNCTION_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------------
# Validation


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the model's last 2-D convolution layer, the default layer of Grad-CAM.

    Raises:
        ExplainError: when the model has no convolution layer (the `dense` architecture).
    """
    names = conv_layer_names(model)
    if not names:
        raise ExplainError(
            "Grad-CAM needs a convolution layer, and this model has no convolution layer; use saliency instead. "
            f"Received: model={model.name!r}"
        )
    return names[-1]


def _checked_layer_name(model: keras.Model, layer_name: str | None) -> str:
    if layer_name is None:
        return last_conv_layer_name(model)
    names = conv_layer_names(model)
    if layer_name not in names:
        raise ExplainError(
            f"Grad-CAM needs one of the model's convolution layers {names or '(none: use saliency)'}. "
            f"Received: layer_name={layer_name!r}"
        )
    return layer_name


# ---------------------------------------------------------------------------------------------------
# Traced gradient functions


def _model_inputs(model: keras.Model) -> list:
    """The model's symbolic inputs; a Sequential model that was never built or called is built first."""
    try:
        return model.inputs
    except (AttributeError, ValueError):
        # Keras 3: a Sequential model without an Input has no inputs until built.
        model.build((None, *INPUT_SHAPE))
        return model.inputs


def _score_head(model: keras.Model) -> tuple[keras.KerasTensor, Callable[[tf.Tensor], tf.Tensor]]:
    """The tensor to read from the model and the function that turns it into `(N, 10)` class scores.

    The scores are the logits when the last layer is a softmax Dense layer (or a softmax Activation),
    else the model's output (probabilities).
    """
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax":
        if isinstance(last, keras.layers.Dense):
            kernel, bias = last.kernel, last.bias
            if bias is None:
                return last.input, lambda features: tf.matmul(features, kernel)
            return last.input, lambda features: tf.matmul(features, kernel) + bias
        if isinstance(last, keras.layers.Activation):
            return last.input, tf.identity
    return model.outputs[0], tf.identity


def _selected_scores(scores: tf.Tensor, class_indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`(N,)` scores of the target classes and the `(N,)` targets (-1 replaced by the predicted class)."""
    predicted = tf.argmax(scores, axis=-1, output_type=tf.int32)
    targets = tf.where(class_indices < 0, predicted, class_indices)
    return tf.gather(scores, targets, batch_dims=1), targets


def _upsampled_and_normalised(maps: tf.Tensor) -> tf.Tensor:
    """`(N, h, w)` non-negative maps -> `(N, 28, 28)` bilinear, each divided by its max (all-zero stays zero)."""
    maps = tf.image.resize(maps[..., None], (IMAGE_SIZE, IMAGE_SIZE), method="bilinear")[..., 0]
    maxima = tf.reduce_max(maps, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(maps, maxima)


def feature_map_layer(model: keras.Model, layer_name: str) -> keras.layers.Layer:
    """The layer whose output Grad-CAM reads for the conv layer `layer_name`.

    Grad-CAM weighs rectified feature maps (in VGG the ReLU is part of each conv layer). When a conv
    layer is followed only by batch normalisation and an activation (`conv3b` -> `conv3b_bn` ->
    `conv3b_relu` in the `cnn` architecture), the maps are read after them; a conv layer with its own
    activation (`seed_cnn`) is read as it is.
    """
    layer = model.get_layer(layer_name)
    while True:
        consumers = _consumers(model, layer)
        if len(consumers) != 1 or not isinstance(consumers[0], _FEATURE_MAP_FOLLOWERS):
            return layer
        layer = consumers[0]


def _consumers(model: keras.Model, layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The model's layers that take `layer`'s output as an input, found through the public graph API."""
    _model_inputs(model)  # builds a Sequential model that was never called
    consumers = []
    for other in model.layers:
        try:
            inputs = keras.tree.flatten(other.input)
        except (AttributeError, ValueError):  # an InputLayer, or a layer called more than once
            continue
        if any(tensor is layer.output for tensor in inputs):
            consumers.append(other)
    return consumers


def _conv_gradients_function(model: keras.Model, layer_name: str, plus_plus: bool) -> Callable:
    inputs = _model_inputs(model)
    score_tensor, to_scores = _score_head(model)
    feature_model = keras.Model(inputs, [feature_map_layer(model, layer_name).output, score_tensor])

    def class_activation_maps(images: tf.Tensor, class_indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            activations, head = feature_model(images, training=False)  # (N, h, w, K), (N, F)
            scores, targets = _selected_scores(to_scores(head), class_indices)
        # Each image's score depends only on its own activations, so one gradient of the sum gives all.
        gradients = tape.gradient(scores, activations)  # (N, h, w, K)
        if plus_plus:
            weights = _gradcam_plus_plus_weights(activations, gradients)
        else:
            weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # (N, 1, 1, K)
        maps = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1))  # (N, h, w)
        return _upsampled_and_normalised(maps), targets

    return tf.function(class_activation_maps, input_signature=[_IMAGE_SPEC, _CLASS_SPEC], reduce_retracing=True)


def _gradcam_plus_plus_weights(activations: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """Grad-CAM++ channel weights `(N, 1, 1, K)` (Chattopadhay et al. 2018, eq. 19 with exp scores).

    With Y = exp(S), the second and third derivatives of Y are exp(S) g^2 and exp(S) g^3, where g is
    dS/dA. The exp(S) factors cancel in alpha, and the one left in relu(dY/dA) = exp(S) relu(g) is
    a positive constant per image that the final normalisation removes, so it is left out (it would
    overflow float32 for logits above ~88).
    """
    squared = tf.square(gradients)
    cubed = squared * gradients
    activation_sums = tf.reduce_sum(activations, axis=(1, 2), keepdims=True)  # (N, 1, 1, K)
    denominator = 2.0 * squared + activation_sums * cubed
    alphas = tf.math.divide_no_nan(squared, tf.where(denominator != 0.0, denominator, tf.ones_like(denominator)))
    return tf.reduce_sum(alphas * tf.nn.relu(gradients), axis=(1, 2), keepdims=True)


def _input_gradients_function(model: keras.Model) -> Callable:
    inputs = _model_inputs(model)
    score_tensor, to_scores = _score_head(model)
    head_model = keras.Model(inputs, score_tensor)

    def input_gradients(images: tf.Tensor, class_indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(images)
            scores, targets = _selected_scores(to_scores(head_model(images, training=False)), class_indices)
        gradients = tape.gradient(scores, images)  # (N, 28, 28, 1), signed
        return gradients[..., 0], targets  # (N, 28, 28): one grey channel

    return tf.function(input_gradients, input_signature=[_IMAGE_SPEC, _CLASS_SPEC], reduce_retracing=True)


def _cached_function(model: keras.Model, method: str, layer_name: str | None) -> Callable:
    """The traced function of `(model, method, layer)`, built once under a lock."""
    key = (method, layer_name)
    with _CACHE_LOCK:
        functions = _FUNCTION_CACHE.setdefault(model, {})
        if key not in functions:
            if method == SALIENCY:
                functions[key] = _input_gradients_function(model)
            else:
                functions[key] = _conv_gradients_function(model, layer_name, plus_plus=method == GRADCAM_PLUS_PLUS)
        return functions[key]


# ---------------------------------------------------------------------------------------------------
# Public maps


def gradcam_maps(
    model: keras.Model,
    images: np.ndarray,
    class_indices: int | Sequence[int] | None = None,
    layer_name: str | None = None,
    plus_plus: bool = False,
) -> np.ndarray:
    """Grad-CAM (or Grad-CAM++) maps of a batch of images in one pass.

    Args:
        model: a model under the project's contract (0..255 in, softmax out), Functional or Sequential.
        images: `(N, 28, 28)` or `(N, 28, 28, 1)`, pixels 0..255.
        class_indices: one class for all, or one per image. Defaults to each image's predicted class.
        layer_name: a convolution layer. Defaults to the last one.
        plus_plus: whether to use Grad-CAM++ weights. Defaults to `False`.

    Returns:
        float32 `(N, 28, 28)` maps in [0, 1].

    Raises:
        ExplainError: for a model without conv layers, an unknown layer, a bad image shape or class.
    """
    batch = _as_image_batch(images, single=False)
    targets = _class_indices(class_indices, len(batch))
    layer_name = _checked_layer_name(model, layer_name)
    if len(batch) == 0:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    function = _cached_function(model, GRADCAM_PLUS_PLUS if plus_plus else GRADCAM, layer_name)
    maps, _ = function(tf.constant(batch), tf.constant(targets))
    return maps.numpy()


def gradcam(
    model: keras.Model, image: np.ndarray, class_index: int | None = None, layer_name: str | None = None
) -> np.ndarray:
    """Grad-CAM map of one image (Selvaraju et al. 2017).

    The gradients of the class logit with respect to a conv layer's rectified output (after its batch
    norm and ReLU, see `feature_map_layer`) are averaged over space into one weight per channel; the
    channels' weighted sum, through a ReLU, is upsampled bilinearly to 28x28 and divided by its maximum.

    Args:
        model: a model under the project's contract, Functional or Sequential.
        image: `(28, 28)` or `(28, 28, 1)`, pixels 0..255 (light garment on black).
        class_index: the class to explain. Defaults to the predicted class.
        layer_name: a convolution layer. Defaults to `last_conv_layer_name(model)`.

    Returns:
        float32 `(28, 28)` in [0, 1]; all zeros when nothing in the layer raises the score.

    Raises:
        ExplainError: for a model without conv layers (use `saliency`), an unknown layer, a bad image
            shape or class index.

    Example:
        >>> heatmap = gradcam(model, test_images[0])
        >>> picture = overlay(test_images[0], heatmap, size=280)  # (280, 280, 3) uint8 RGB
    """
    return gradcam_maps(model, _as_image_batch(image, single=True), class_index, layer_name)[0]


def default_gradcam(model: keras.Model, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, str]:
    """Grad-CAM of one image on the last conv layer, or on the nearest earlier one if that map is empty.

    Grad-CAM keeps only what raises the score, so for a few images (about one in a thousand
    training images for the shipped model) every position of the last layer, weighted by its
    gradients, lowers it and the map is zero everywhere. An empty picture explains nothing to
    someone who asked "why this class?", so the app's default explanation goes back one layer at a
    time until a map shows something, and says which layer it used.

    Args:
        model: a model under the project's contract, with at least one conv layer.
        image: `(28, 28)` or `(28, 28, 1)`, pixels 0..255.
        class_index: the class to explain. Defaults to the predicted class.

    Returns:
        `(heatmap, layer_name)`: the float32 `(28, 28)` map in [0, 1] and the layer it comes from
        (the last conv layer's zero map when every layer's is empty).

    Raises:
        ExplainError: as `gradcam`.
    """
    last = last_conv_layer_name(model)  # raises for a model without conv layers
    last_heatmap = gradcam(model, image, class_index, last)
    if last_heatmap.max() > 0:
        return last_heatmap, last
    for layer_name in reversed(conv_layer_names(model)[:-1]):
        heatmap = gradcam(model, image, class_index, layer_name)
        if heatmap.max() > 0:
            return heatmap, layer_name
    return last_heatmap, last


def gradcam_plus_plus(
    model: keras.Model, image: np.ndarray, class_index: int | None = None, layer_name: str | None = None
) -> np.ndarray:
    """Grad-CAM++ map of one image (Chattopadhay et al. 2018); same arguments and result as `gradcam`.

    Each position's gradient gets its own weight (from the closed-form second and third derivatives
    of exp(score)), so several parts of an image that each raise the score all show.
    """
    return gradcam_maps(model, _as_image_batch(image, single=True), class_index, layer_name, plus_plus=True)[0]


def saliency_maps(
    model: keras.Model,
    images: np.ndarray,
    class_indices: int | Sequence[int] | None = None,
    smooth_samples: int = 0,
    noise_level: float = 0.1,
    seed: int = 0,
    times_input: bool = False,
) -> np.ndarray:
    """Saliency, SmoothGrad or gradient x input maps of a batch of images; see `saliency` and
    `gradient_x_input`. Returns `(N, 28, 28)` float32 in [0, 1]."""
    batch = _as_image_batch(images, single=False)
    targets = _class_indices(class_indices, len(batch))
    if smooth_samples < 0 or noise_level < 0:
        raise ExplainError(
            f"smooth_samples and noise_level cannot be negative. Received: smooth_samples={smooth_samples}, "
            f"noise_level={noise_level}"
        )
    if len(batch) == 0:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    function = _cached_function(model, SALIENCY, None)
    gradients, fixed_targets = function(tf.constant(batch), tf.constant(targets))
    gradients = gradients.numpy()  # (N, 28, 28) signed
    if smooth_samples:
        # SmoothGrad explains the clean image's class: the targets were fixed before the noise could change them.
        rng = np.random.default_rng(seed)
        noisy = batch[:, None] + rng.normal(0.0, noise_level * 255.0, (len(batch), smooth_samples, *INPUT_SHAPE))
        noisy_gradients, _ = function(
            tf.constant(noisy.reshape(-1, *INPUT_SHAPE).astype(np.float32)),
            tf.constant(np.repeat(fixed_targets.numpy(), smooth_samples)),
        )
        noisy_gradients = noisy_gradients.numpy().reshape(len(batch), smooth_samples, IMAGE_SIZE, IMAGE_SIZE)
        # Saliency averages magnitudes; gradient x input averages signed gradients (SmoothGrad x input).
        gradients = noisy_gradients.mean(axis=1) if times_input else np.abs(noisy_gradients).mean(axis=1)
    if times_input:
        # The first-order share of each pixel in the score, against a black image (what deletion sets it to).
        return _normalised(np.maximum(gradients * batch[..., 0], 0.0))
    return _normalised(np.abs(gradients))


def gradient_x_input(
    model: keras.Model, image: np.ndarray, class_index: int | None = None, smooth_samples: int = 0, seed: int = 0
) -> np.ndarray:
    """Gradient x input of one image: the pixels whose brightness raises the class score.

    Plain saliency ranks a black background pixel as high as a garment pixel when the score is
    sensitive to it, yet deleting it (setting it to black) changes nothing; multiplying the gradient
    by the pixel (its difference from black) gives each pixel's first-order share of the logit
    (Shrikumar et al. 2016). Only the positive part is kept.

    Args:
        model: a model under the project's contract.
        image: `(28, 28)` or `(28, 28, 1)`, pixels 0..255.
        class_index: the class to explain. Defaults to the predicted class.
        smooth_samples: noisy copies whose gradients are averaged first (SmoothGrad); 0 for none.
            Defaults to 0.
        seed: seed of the noise. Defaults to 0.

    Returns:
        float32 `(28, 28)` in [0, 1].
    """
    batch = _as_image_batch(image, single=True)
    return saliency_maps(model, batch, class_index, smooth_samples, seed=seed, times_input=True)[0]


def saliency(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    smooth_samples: int = 0,
    noise_level: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Vanilla-gradient saliency of one image, or SmoothGrad with `smooth_samples > 0`.

    Works for every model, including `dense`, which has no conv layer for Grad-CAM.

    Args:
        model: a model under the project's contract.
        image: `(28, 28)` or `(28, 28, 1)`, pixels 0..255.
        class_index: the class to explain. Defaults to the predicted class.
        smooth_samples: noisy copies averaged by SmoothGrad (Smilkov et al. 2017); 0 for plain
            gradients. Defaults to 0.
        noise_level: the noise's standard deviation as a fraction of the 0..255 range. Defaults to 0.1.
        seed: seed of the noise, so a map is reproducible. Defaults to 0.

    Returns:
        float32 `(28, 28)` in [0, 1]: |d score / d pixel| (averaged over the noisy copies), divided by its max.

    Raises:
        ExplainError: for a bad image shape or class index, or negative sample count or noise.
    """
    batch = _as_image_batch(image, single=True)
    return saliency_maps(model, batch, class_index, smooth_samples, noise_level, seed)[0]
