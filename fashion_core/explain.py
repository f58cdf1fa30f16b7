"""Why a model chose a class: the explanation methods by name, forward-only maps, and overlays.

Every map is a `(28, 28)` float32 array in [0, 1] aligned with the model's input image.

This module is light: it never imports TensorFlow. The forward-only methods, occlusion sensitivity
and RISE, only call `predict` on a predictor (the TF `inference.Predictor` or the LiteRT
`serving.LiteRTPredictor`: `predict(images) -> (N, 10)` probabilities), batching every perturbed
image of a map into one call; a Keras model is wrapped in a `Predictor` (imported then). The
gradient methods (Grad-CAM, Grad-CAM++, saliency, gradient x input, SmoothGrad) need TensorFlow and
live in `fashion_core.gradients`, imported the first time one is asked for; their functions can
still be reached as `explain.gradcam`, `explain.saliency`, ... .

`default_explanation` is the map the app shows with every answer: the method that did best on the
deletion and insertion curves of `fashion_core.faithfulness` among those fast enough, using only
forward passes.

Forward-only maps score a class by its **log-probability**: a confident answer's probability hardly
moves when a patch is hidden (0.999 to 0.998), while its log-probability still ranks the patches.
The baseline a pixel is hidden with is black (0), the dataset's background, which is also what the
deletion curve sets pixels to.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from fashion_core.data import IMAGE_SIZE, NUM_CLASSES

GRADCAM = "Grad-CAM"
GRADCAM_PLUS_PLUS = "Grad-CAM++"
OCCLUSION = "Occlusion"
RISE = "RISE"
GRADIENT_X_INPUT = "Gradient x input"
SALIENCY = "Saliency"
SMOOTHGRAD = "SmoothGrad"
METHODS = (GRADCAM, GRADCAM_PLUS_PLUS, OCCLUSION, RISE, GRADIENT_X_INPUT, SALIENCY, SMOOTHGRAD)
CONV_METHODS = (GRADCAM, GRADCAM_PLUS_PLUS)  # the methods that need a convolution layer
GRADIENT_METHODS = (GRADCAM, GRADCAM_PLUS_PLUS, GRADIENT_X_INPUT, SALIENCY, SMOOTHGRAD)  # need a Keras model
FORWARD_METHODS = (OCCLUSION, RISE)  # need only `predict`: work on any predictor
METHOD_DESCRIPTIONS = {
    GRADCAM: "Which regions of a convolution layer's feature maps raise the class score (Selvaraju et al. 2017).",
    GRADCAM_PLUS_PLUS: "Grad-CAM with pixel-wise weights; better when a class shows in several places "
    "(Chattopadhay et al. 2018).",
    OCCLUSION: "How much the class's log-probability falls when a patch is blacked out, at two patch sizes, "
    "shared among the patch's pixels by brightness (Zeiler and Fergus 2014). Forward passes only.",
    RISE: "The class probability averaged over random masks that keep each pixel, weighted by brightness "
    "(Petsiuk et al. 2018). Forward passes only.",
    GRADIENT_X_INPUT: "Gradient of the class score times the pixel: each pixel's first-order share of the score "
    "(Shrikumar et al. 2016).",
    SALIENCY: "How much each input pixel changes the class score: |d score / d pixel| (Simonyan et al. 2014).",
    SMOOTHGRAD: "Saliency averaged over noisy copies of the image, which removes its speckle (Smilkov et al. 2017).",
}
SMOOTHGRAD_SAMPLES = 25  # what `explain(..., method="SmoothGrad")` uses
OCCLUSION_PATCHES = ((4, 2), (7, 7))  # default (patch size, stride) pairs of `occlusion_maps`
RISE_MASKS = 500  # what `explain(..., method="RISE")` uses
_PREDICTED = -1
_PERTURBED_PER_CALL = 4096  # perturbed images per predict call, so memory stays ~13 MB of float32

# Name shown in a select box -> OpenCV colour map; the first is the default.
COLORMAPS: dict[str, int] = {
    "Jet": cv2.COLORMAP_JET,
    "Turbo": cv2.COLORMAP_TURBO,
    "Inferno": cv2.COLORMAP_INFERNO,
    "Viridis": cv2.COLORMAP_VIRIDIS,
    "Magma": cv2.COLORMAP_MAGMA,
    "Hot": cv2.COLORMAP_HOT,
    "Plasma": cv2.COLORMAP_PLASMA,
}

# Gradient functions kept reachable as `explain.<name>` (they live in `fashion_core.gradients`).
_GRADIENT_FUNCTIONS = frozenset(
    {
        "gradcam",
        "gradcam_maps",
        "gradcam_plus_plus",
        "default_gradcam",
        "saliency",
        "saliency_maps",
        "gradient_x_input",
        "last_conv_layer_name",
        "feature_map_layer",
    }
)


class ExplainError(ValueError):
    """Raised for an explanation that cannot be made: no conv layer, an unknown layer, a bad image or class."""


class ImagePredictor(Protocol):
    """What forward-only explanations need: `(N, 28, 28)` 0..255 images in, `(N, 10)` probabilities out."""

    def predict(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray: ...


def __getattr__(name: str) -> Any:
    """`explain.gradcam` and the other gradient functions, imported from `fashion_core.gradients` on first use."""
    if name in _GRADIENT_FUNCTIONS:
        from fashion_core import gradients

        return getattr(gradients, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------------
# Validation


def _as_image_batch(images: np.ndarray, single: bool) -> np.ndarray:
    """float32 `(N, 28, 28, 1)` from `(28, 28)`/`(28, 28, 1)` (single) or `(N, 28, 28)`/`(N, 28, 28, 1)`."""
    array = np.asarray(images)
    if single:
        shapes = "(28, 28) or (28, 28, 1)"
        batch = array.reshape(1, IMAGE_SIZE, IMAGE_SIZE, 1) if array.shape in ((28, 28), (28, 28, 1)) else None
    else:
        shapes = "(N, 28, 28) or (N, 28, 28, 1)"
        ok = array.ndim in (3, 4) and array.shape[1:3] == (28, 28) and (array.ndim == 3 or array.shape[3] == 1)
        batch = array.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1) if ok else None
    if batch is None:
        raise ExplainError(f"Expected a grey 28x28 image shaped {shapes}, pixels 0..255. Received: shape={array.shape}")
    return batch.astype(np.float32, copy=False)


def _class_indices(class_index: int | Sequence[int] | None, count: int) -> np.ndarray:
    """int32 `(count,)` targets; `None` becomes -1, "the predicted class"."""
    if class_index is None:
        return np.full(count, _PREDICTED, dtype=np.int32)
    indices = np.broadcast_to(np.asarray(class_index), (count,))
    if not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0 or indices.max() >= NUM_CLASSES:
        raise ExplainError(
            f"A class index is an integer from 0 to {NUM_CLASSES - 1}. Received: class_index={class_index!r}"
        )
    return indices.astype(np.int32)


def _normalised(maps: np.ndarray) -> np.ndarray:
    maxima = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, maxima, out=np.zeros_like(maps), where=maxima > 0).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Predictors

# Keras model -> its `inference.Predictor`, traced once. Weak keys: a model dropped from Streamlit's
# resource cache is freed with its predictor.
_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PREDICTORS_LOCK = threading.Lock()


def is_predictor(model: Any) -> bool:
    """Whether `model` follows the predictor protocol (`predict`, `predict_one`, `flip_average`)."""
    return all(hasattr(model, name) for name in ("predict", "predict_one", "flip_average"))


def as_predictor(model: Any) -> ImagePredictor:
    """`model` itself if it is a predictor, else its cached `inference.Predictor` (no flip averaging).

    A Keras model's own `predict` builds a data pipeline on every call (tens of milliseconds); the
    traced `Predictor` does not.
    """
    if is_predictor(model):
        return model
    from fashion_core.inference import Predictor  # TensorFlow: only for a Keras model

    with _PREDICTORS_LOCK:
        if model not in _PREDICTORS:
            _PREDICTORS[model] = Predictor(model)
        return _PREDICTORS[model]


def _log_probabilities(predictor: ImagePredictor, images: np.ndarray) -> np.ndarray:
    """`(N, 10)` float64 log-probabilities of `(N, 28, 28, 1)` images, `_PERTURBED_PER_CALL` at a time."""
    probabilities = predictor.predict(images, batch_size=_PERTURBED_PER_CALL)
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))


def _targets(log_probabilities: np.ndarray, class_indices: np.ndarray) -> np.ndarray:
    """The classes to explain: each image's predicted class where `class_indices` says -1."""
    return np.where(class_indices < 0, log_probabilities.argmax(axis=1), class_indices)


# ---------------------------------------------------------------------------------------------------
# Occlusion


@functools.lru_cache(maxsize=16)
def patch_masks(patch_size: int, stride: int) -> np.ndarray:
    """bool `(P, 28, 28)`: every `patch_size` square patch, `stride` apart, the last ones flush with the edge."""
    if not 1 <= patch_size <= IMAGE_SIZE or stride < 1:
        raise ExplainError(
            f"An occlusion patch is 1 to {IMAGE_SIZE} pixels wide with a stride of at least 1. "
            f"Received: patch_size={patch_size}, stride={stride}"
        )
    starts = list(range(0, IMAGE_SIZE - patch_size + 1, stride))
    if starts[-1] != IMAGE_SIZE - patch_size:
        starts.append(IMAGE_SIZE - patch_size)
    masks = np.zeros((len(starts) ** 2, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for index, (top, left) in enumerate((top, left) for top in starts for left in starts):
        masks[index, top : top + patch_size, left : left + patch_size] = True
    masks.setflags(write=False)
    return masks


def occlusion_maps(
    model: Any,
    images: np.ndarray,
    class_indices: int | Sequence[int] | None = None,
    patches: Sequence[tuple[int, int]] = OCCLUSION_PATCHES,
    by_brightness: bool = True,
) -> np.ndarray:
    """Occlusion sensitivity of a batch of images, from forward passes only (Zeiler and Fergus 2014).

    Each patch is blacked out in turn and the fall of the class's log-probability is noted; a
    pixel's importance is the mean fall over the patches that cover it, summed over the patch sizes.
    With `by_brightness`, each pixel's importance is then multiplied by its brightness: a patch's
    effect comes from its pixels' difference from black, and a black pixel, which blacking out
    leaves unchanged, gets none. The image and every perturbed copy go through one `predict` call.

    Args:
        model: a Keras model under the project's contract, or a predictor (see `ImagePredictor`).
        images: `(N, 28, 28)` or `(N, 28, 28, 1)`, pixels 0..255.
        class_indices: one class for all, or one per image. Defaults to each image's predicted class.
        patches: `(patch size, stride)` pairs. Defaults to `OCCLUSION_PATCHES`.
        by_brightness: whether to share a patch's effect by pixel brightness. Defaults to `True`.

    Returns:
        float32 `(N, 28, 28)` maps in [0, 1] (only falls count; all zeros if no patch lowers the score).

    Raises:
        ExplainError: for a bad image shape, class index or patch.
    """
    batch = _as_image_batch(images, single=False)
    targets = _class_indices(class_indices, len(batch))
    if not patches:
        raise ExplainError(f"Occlusion needs at least one (patch size, stride) pair. Received: patches={patches!r}")
    masks = np.concatenate([patch_masks(size, stride) for size, stride in patches])  # (P, 28, 28)
    coverage = np.concatenate([_coverage_weights(patch_masks(size, stride)) for size, stride in patches])
    per_call = max(_PERTURBED_PER_CALL // (len(masks) + 1), 1)
    predictor = as_predictor(model)
    maps = np.zeros((len(batch), IMAGE_SIZE, IMAGE_SIZE))
    for start in range(0, len(batch), per_call):
        end = start + per_call
        maps[start:end] = _occlusion_chunk(predictor, batch[start:end], targets[start:end], masks, coverage)
    if by_brightness:
        maps = maps * batch[..., 0] / 255.0
    return _normalised(np.maximum(maps, 0.0).astype(np.float32))


def _coverage_weights(masks: np.ndarray) -> np.ndarray:
    """float `(P, 28, 28)`: each patch's mask divided by how many patches of its size cover each pixel."""
    return masks / masks.sum(axis=0, keepdims=True)


def _occlusion_chunk(
    predictor: ImagePredictor, batch: np.ndarray, targets: np.ndarray, masks: np.ndarray, coverage: np.ndarray
) -> np.ndarray:
    """float64 `(n, 28, 28)` raw occlusion maps of a few images; `batch` is `(n, 28, 28, 1)`."""
    count, num_masks = len(batch), len(masks)
    occluded = batch[:, None] * ~masks[None, ..., None]  # (n, P, 28, 28, 1): patches set to black
    stacked = np.concatenate([batch[:, None], occluded], axis=1).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    log_probabilities = _log_probabilities(predictor, stacked).reshape(count, num_masks + 1, NUM_CLASSES)
    classes = _targets(log_probabilities[:, 0], targets)
    scores = log_probabilities[np.arange(count), :, classes]  # (n, P + 1)
    falls = scores[:, :1] - scores[:, 1:]  # (n, P)
    return np.einsum("np,pij->nij", falls, coverage)


# ---------------------------------------------------------------------------------------------------
# RISE


@functools.lru_cache(maxsize=8)
def rise_masks(num_masks: int, cells: int = 7, keep_probability: float = 0.5, seed: int = 0) -> np.ndarray:
    """float32 `(num_masks, 28, 28)` smooth random masks in [0, 1] (Petsiuk et al. 2018), the same for a seed.

    Each mask is a `cells` x `cells` grid of cells kept with `keep_probability`, upsampled
    bilinearly to `(cells + 1)` cell widths and cropped at a random shift, so its edges fall anywhere.
    """
    if num_masks < 1 or cells < 1 or not 0.0 < keep_probability < 1.0:
        raise ExplainError(
            "RISE needs at least one mask, at least one cell, and a keep probability between 0 and 1. "
            f"Received: num_masks={num_masks}, cells={cells}, keep_probability={keep_probability}"
        )
    rng = np.random.default_rng(seed)
    cell_size = -(-IMAGE_SIZE // cells)  # ceil
    upsampled_size = (cells + 1) * cell_size
    grids = (rng.random((num_masks, cells, cells)) < keep_probability).astype(np.float32)
    shifts = rng.integers(0, cell_size, size=(num_masks, 2))
    masks = np.empty((num_masks, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for index, (grid, (dy, dx)) in enumerate(zip(grids, shifts, strict=True)):
        large = cv2.resize(grid, (upsampled_size, upsampled_size), interpolation=cv2.INTER_LINEAR)
        masks[index] = large[dy : dy + IMAGE_SIZE, dx : dx + IMAGE_SIZE]
    masks.setflags(write=False)
    return masks


def rise_maps(
    model: Any,
    images: np.ndarray,
    class_indices: int | Sequence[int] | None = None,
    num_masks: int = RISE_MASKS,
    seed: int = 0,
    by_brightness: bool = True,
) -> np.ndarray:
    """RISE maps of a batch of images (Petsiuk et al. 2018), from forward passes only.

    The image is multiplied by `num_masks` seeded random masks (what a mask hides turns black); a
    pixel's importance is the class probability averaged over the masks, each weighted by how much
    it keeps that pixel, minus the mean probability (a constant that the ranking ignores). With
    `by_brightness`, it is then multiplied by the pixel's brightness, as in `occlusion_maps`.

    Args:
        model: a Keras model under the project's contract, or a predictor.
        images: `(N, 28, 28)` or `(N, 28, 28, 1)`, pixels 0..255.
        class_indices: one class for all, or one per image. Defaults to each image's predicted class.
        num_masks: masks per image. Defaults to `RISE_MASKS`.
        seed: seed of the masks. Defaults to 0.
        by_brightness: whether to weight each pixel by its brightness. Defaults to `True`.

    Returns:
        float32 `(N, 28, 28)` maps in [0, 1].

    Raises:
        ExplainError: for a bad image shape, class index or mask count.
    """
    batch = _as_image_batch(images, single=False)
    targets = _class_indices(class_indices, len(batch))
    masks = rise_masks(num_masks, seed=seed)
    predictor = as_predictor(model)
    base = _log_probabilities(predictor, batch)
    classes = _targets(base, targets)
    maps = np.zeros((len(batch), IMAGE_SIZE, IMAGE_SIZE))
    per_call = max(_PERTURBED_PER_CALL // num_masks, 1)
    for start in range(0, len(batch), per_call):
        chunk = batch[start : start + per_call, None, ..., 0] * masks[None]  # (n, M, 28, 28)
        probabilities = np.exp(_log_probabilities(predictor, chunk.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)))
        probabilities = probabilities.reshape(len(chunk), num_masks, NUM_CLASSES)
        scores = probabilities[np.arange(len(chunk)), :, classes[start : start + per_call]]  # (n, M)
        centred = scores - scores.mean(axis=1, keepdims=True)
        maps[start : start + len(chunk)] = np.einsum("nm,mij->nij", centred, masks) / num_masks
    if by_brightness:
        maps = maps * batch[..., 0] / 255.0
    return _normalised(np.maximum(maps, 0.0).astype(np.float32))


# ---------------------------------------------------------------------------------------------------
# The registry of methods and the default explanation


def default_explanation(model: Any, image: np.ndarray, class_index: int | None = None) -> np.ndarray:
    """The map the app shows with every answer: multi-scale occlusion, from forward passes only.

    Chosen by measurement (`python -m benchmarks.faithfulness`): of the methods fast enough for the
    Predict page, it had the lowest deletion and highest insertion scores on 200 test images.

    Args:
        model: a Keras model under the project's contract, or a predictor (the app's, flip-averaged
            or not, TensorFlow or LiteRT).
        image: `(28, 28)` or `(28, 28, 1)`, pixels 0..255.
        class_index: the class to explain. Defaults to the predicted class.

    Returns:
        float32 `(28, 28)` in [0, 1].

    Raises:
        ExplainError: for a bad image shape or class index.
    """
    return occlusion_maps(model, _as_image_batch(image, single=True), class_index)[0]


def explain(
    model: Any,
    image: np.ndarray,
    method: str = GRADCAM,
    class_index: int | None = None,
    layer_name: str | None = None,
) -> np.ndarray:
    """The `(28, 28)` map of one image by the method's name in `METHODS` (the layer only matters for Grad-CAMs).

    Raises:
        ExplainError: for an unknown method, and as the chosen method does.
    """
    return explain_batch(model, _as_image_batch(image, single=True), method, class_index, layer_name)[0]


def explain_batch(
    model: Any,
    images: np.ndarray,
    method: str = GRADCAM,
    class_indices: int | Sequence[int] | None = None,
    layer_name: str | None = None,
) -> np.ndarray:
    """`(N, 28, 28)` maps of a batch by the method's name in `METHODS`.

    `model` is a Keras model; for `FORWARD_METHODS` it may also be a predictor.

    Raises:
        ExplainError: for an unknown method, a gradient method asked of a predictor, and as the chosen
            method does.
    """
    if method == OCCLUSION:
        return occlusion_maps(model, images, class_indices)
    if method == RISE:
        return rise_maps(model, images, class_indices)
    if method not in GRADIENT_METHODS:
        raise ExplainError(f"Unknown explanation method; choose one of {list(METHODS)}. Received: method={method!r}")
    if is_predictor(model) and not hasattr(model, "model"):
        raise ExplainError(
            f"{method} needs the gradients of a Keras model; this predictor only runs it forward. Use one of "
            f"{list(FORWARD_METHODS)}, or pass the Keras model. Received: model={type(model).__name__}"
        )
    from fashion_core import gradients

    keras_model = model.model if is_predictor(model) else model
    if method in CONV_METHODS:
        return gradients.gradcam_maps(
            keras_model, images, class_indices, layer_name, plus_plus=method == GRADCAM_PLUS_PLUS
        )
    samples = SMOOTHGRAD_SAMPLES if method == SMOOTHGRAD else 0
    return gradients.saliency_maps(keras_model, images, class_indices, samples, times_input=method == GRADIENT_X_INPUT)


# ---------------------------------------------------------------------------------------------------
# Overlays


def colorize(heatmap: np.ndarray, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A [0, 1] map as RGB uint8 `(H, W, 3)` through an OpenCV colour map."""
    levels = np.clip(np.rint(np.asarray(heatmap, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, colormap), cv2.COLOR_BGR2RGB)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ExplainError(
            f"Expected a grey (H, W) or (H, W, 1), or an RGB (H, W, 3) image. Received: shape={array.shape}"
        )
    return np.clip(array, 0, 255).astype(np.uint8)


def _blend(base_rgb: np.ndarray, colours_rgb: np.ndarray, alpha: float) -> np.ndarray:
    if not 0.0 <= alpha <= 1.0:
        raise ExplainError(f"alpha is the heat map's opacity, from 0 to 1. Received: alpha={alpha}")
    blended = (1.0 - alpha) * base_rgb.astype(np.float32) + alpha * colours_rgb.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = 0.4,
    colormap: int = cv2.COLORMAP_JET,
    size: int | None = None,
) -> np.ndarray:
    """A grey image with a heat map blended over it, as RGB uint8.

    Args:
        image: `(28, 28)` or `(28, 28, 1)`, 0..255 (any square grey image works).
        heatmap: a map in [0, 1] of the image's size.
        alpha: the heat map's opacity, 0 (image only) to 1 (map only). Defaults to 0.4.
        colormap: an OpenCV colour map (see `COLORMAPS`). Defaults to `cv2.COLORMAP_JET`.
        size: the side in pixels of the square output: the image is upscaled with nearest neighbours
            (crisp pixels) and the map smoothly (bicubic). Defaults to the image's own size.

    Returns:
        uint8 `(size, size, 3)` RGB, or the image's size when `size` is `None`.

    Raises:
        ExplainError: for an alpha outside [0, 1], a size below 1, or images that do not match.
    """
    base = _as_rgb(image)
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != base.shape[:2]:
        raise ExplainError(f"The heat map must have the image's shape {base.shape[:2]}. Received: shape={heat.shape}")
    if size is not None:
        if size < 1:
            raise ExplainError(f"size is the output's side in pixels, at least 1. Received: size={size}")
        base = cv2.resize(base, (size, size), interpolation=cv2.INTER_NEAREST)
        heat = cv2.resize(heat, (size, size), interpolation=cv2.INTER_CUBIC)
    return _blend(base, colorize(heat, colormap), alpha)


def heatmap_image(heatmap: np.ndarray, colormap: int = cv2.COLORMAP_JET, size: int | None = None) -> np.ndarray:
    """The heat map alone in colour, RGB uint8, smoothly upscaled to `(size, size, 3)` if asked."""
    heat = np.asarray(heatmap, dtype=np.float32)
    if size is not None:
        heat = cv2.resize(heat, (size, size), interpolation=cv2.INTER_CUBIC)
    return colorize(heat, colormap)


def _checked_box(box: Sequence[float], width: int, height: int, name: str) -> tuple[int, int, int, int]:
    left, top, right, bottom = (round(float(v)) for v in box)
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ExplainError(
            f"{name} is (left, top, right, bottom) with 0 <= left < right <= {width} and "
            f"0 <= top < bottom <= {height}. Received: {name}={tuple(box)}"
        )
    return left, top, right, bottom


def overlay_on_photo(
    photo_rgb: np.ndarray,
    heatmap: np.ndarray,
    crop_box: Sequence[float],
    content_box: Sequence[float],
    alpha: float = 0.4,
    colormap: int = cv2.COLORMAP_JET,
) -> np.ndarray:
    """The heat map of a 28x28 model input drawn onto the photo it was made from.

    The part of the map inside `content_box` (where the garment's crop sits in the 28x28 image) is
    resized smoothly to the crop box and blended into the photo there. Outside the crop box the photo
    is left unchanged: the model saw nothing of it.

    Args:
        photo_rgb: the original photo, uint8 `(H, W, 3)` RGB (or grey `(H, W)`).
        heatmap: a `(28, 28)` map in [0, 1] of the model input.
        crop_box: `(left, top, right, bottom)` of the garment's crop, in the photo's pixels.
        content_box: `(left, top, right, bottom)` of that crop inside the 28x28 image.
        alpha: the heat map's opacity inside the crop. Defaults to 0.4.
        colormap: an OpenCV colour map. Defaults to `cv2.COLORMAP_JET`.

    Returns:
        uint8 RGB of the photo's size `(H, W, 3)`.

    Raises:
        ExplainError: for boxes outside their images or empty, a bad heat map shape or alpha.
    """
    photo = _as_rgb(photo_rgb)
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ExplainError(f"Expected a (28, 28) heat map. Received: shape={heat.shape}")
    height, width = photo.shape[:2]
    left, top, right, bottom = _checked_box(crop_box, width, height, "crop_box")
    c_left, c_top, c_right, c_bottom = _checked_box(content_box, IMAGE_SIZE, IMAGE_SIZE, "content_box")
    content = heat[c_top:c_bottom, c_left:c_right]
    region = cv2.resize(content, (right - left, bottom - top), interpolation=cv2.INTER_CUBIC)
    result = photo.copy()
    result[top:bottom, left:right] = _blend(photo[top:bottom, left:right], colorize(region, colormap), alpha)
    return result
