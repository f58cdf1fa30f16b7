"""Browsing the dataset: paging, filtering and ordering images, contact sheets, mean images and embeddings.

Everything here is a pure function of NumPy arrays (and, for features, a Keras model), so the Dataset page
only reads widgets, calls these and draws. Pages are numbered from 1, as `st.pagination` numbers them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from fashion_core.data import IMAGE_SIZE, NUM_CLASSES, stratified_indices

ORDERS = {
    "index": "By index",
    "random": "Random",
    "misclassified": "Misclassified only",
    "least_confident": "Least confident first",
}
ORDERS_NEEDING_PREDICTIONS = ("misclassified", "least_confident")
CAPTION_FONT_SIZE = 11
CAPTION_LINE_HEIGHT = 13  # pixels per caption line under a contact-sheet tile
SHEET_BACKGROUND = (38, 39, 48)  # RGB of the gaps: Streamlit's dark secondary background
CAPTION_COLOR = (235, 235, 240)
SHEET_GAP = 4  # pixels between contact-sheet tiles
MARK_COLOR = (255, 120, 80)  # frames and captions of marked tiles (the model's mistakes)


class BrowseError(ValueError):
    """Raised for a page out of range, an unknown ordering, or a model without a feature layer."""


def page_count(num_items: int, per_page: int) -> int:
    """The number of pages needed to show `num_items`; an empty list still has one (empty) page.

    Raises:
        BrowseError: when `num_items` is negative or `per_page` is not positive.
    """
    if per_page < 1 or num_items < 0:
        raise BrowseError(
            f"Expected num_items >= 0 and per_page >= 1. Received: num_items={num_items}, per_page={per_page}"
        )
    return max(1, math.ceil(num_items / per_page))


def page_indices(indices: Sequence[int] | np.ndarray, page: int, per_page: int) -> np.ndarray:
    """The items of one page (numbered from 1) of an ordered list of dataset indices.

    Args:
        indices: the dataset indices in display order.
        page: the page number, 1 to `page_count(len(indices), per_page)`.
        per_page: items a page.

    Returns:
        The page's slice of `indices` as an int64 array (shorter on the last page).

    Raises:
        BrowseError: when `page` is out of range.
    """
    indices = np.asarray(indices, dtype=np.int64)
    num_pages = page_count(len(indices), per_page)
    if not 1 <= page <= num_pages:
        raise BrowseError(
            f"Page {page} does not exist: {len(indices)} images at {per_page} a page make pages 1 to "
            f"{num_pages}. Received: page={page}"
        )
    start = (page - 1) * per_page
    return indices[start : start + per_page]


def page_containing(indices: Sequence[int] | np.ndarray, index: int, per_page: int) -> int | None:
    """The page (from 1) on which dataset index `index` is shown, or `None` if it is not in `indices`."""
    positions = np.flatnonzero(np.asarray(indices) == index)
    if len(positions) == 0:
        return None
    return int(positions[0]) // per_page + 1


def filter_indices(labels: np.ndarray, classes: Iterable[int] | None = None) -> np.ndarray:
    """Indices of the images whose label is one of `classes`, ascending; all of them when `classes` is empty."""
    labels = np.asarray(labels)
    classes = list(classes or [])
    if not classes:
        return np.arange(len(labels), dtype=np.int64)
    return np.flatnonzero(np.isin(labels, classes)).astype(np.int64)


def misclassified_first(indices: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The misclassified images among `indices`, most confident mistakes first.

    Args:
        indices: dataset indices to choose from.
        labels: `(N,)` true labels of the whole split.
        probabilities: `(N, 10)` the model's probabilities on the whole split.
    """
    indices = np.asarray(indices, dtype=np.int64)
    predictions = probabilities[indices].argmax(axis=1)
    mistakes = indices[predictions != labels[indices]]
    return mistakes[np.argsort(-probabilities[mistakes].max(axis=1), kind="stable")]


def least_confident_first(indices: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """`indices` ordered by the model's top probability, lowest first (ties keep index order)."""
    indices = np.asarray(indices, dtype=np.int64)
    return indices[np.argsort(probabilities[indices].max(axis=1), kind="stable")]


def order_indices(
    indices: np.ndarray,
    order: str,
    labels: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Orders (and for "misclassified", filters) dataset indices for display.

    Args:
        indices: the filtered dataset indices, ascending.
        order: one of `ORDERS`: `"index"`, `"random"`, `"misclassified"` or `"least_confident"`.
        labels: `(N,)` labels of the whole split; needed by `"misclassified"`. Defaults to `None`.
        probabilities: `(N, 10)` model probabilities on the whole split; needed by the orders in
            `ORDERS_NEEDING_PREDICTIONS`. Defaults to `None`.
        seed: the seed of the `"random"` order. Defaults to 0.

    Raises:
        BrowseError: for an unknown order, or an order that needs predictions without them.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if order not in ORDERS:
        raise BrowseError(f"Unknown order; expected one of {sorted(ORDERS)}. Received: order={order!r}")
    if order in ORDERS_NEEDING_PREDICTIONS and (probabilities is None or labels is None):
        raise BrowseError(f"The order {order!r} needs the model's labels and probabilities. Received: None")
    if order == "random":
        return np.random.default_rng(seed).permutation(indices)
    if order == "misclassified":
        return misclassified_first(indices, labels, probabilities)
    if order == "least_confident":
        return least_confident_first(indices, probabilities)
    return indices


def class_counts(labels: np.ndarray) -> np.ndarray:
    """`(10,)` int64 number of images of each class."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=NUM_CLASSES)


def mean_images(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The average image of each class.

    Args:
        images: `(N, 28, 28)` uint8 (or any numeric) images.
        labels: `(N,)` class indices.

    Returns:
        `(10, 28, 28)` float32 means in 0..255; a class with no image gets zeros.
    """
    labels = np.asarray(labels, dtype=np.int64)
    flat = np.asarray(images).reshape(len(labels), -1)
    sums = np.zeros((NUM_CLASSES, flat.shape[1]), dtype=np.float64)
    for class_index in range(NUM_CLASSES):
        members = labels == class_index
        if members.any():
            # sum in uint64 chunks of the class: exact and without a float copy of the whole split
            sums[class_index] = flat[members].sum(axis=0, dtype=np.uint64)
    counts = np.maximum(class_counts(labels), 1)[:, None]
    return (sums / counts).astype(np.float32).reshape(NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE)


def stratified_sample(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`size` indices drawn without replacement with classes in their proportions, ascending.

    The same draw as the training subset's (`fashion_core.data.stratified_indices`): exactly
    `min(size, len(labels))` indices, the same ones for the same seed.
    """
    return stratified_indices(labels, size, seed)


def upscale(images: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of `(..., H, W)` images by an integer factor, so pixels stay crisp."""
    if scale < 1:
        raise BrowseError(f"scale must be a positive integer. Received: scale={scale}")
    return np.repeat(np.repeat(np.asarray(images), scale, axis=-2), scale, axis=-1)


def contact_sheet_width(columns: int, scale: int, gap: int = SHEET_GAP) -> int:
    """The width in pixels of a full row of a `contact_sheet`, to lay a page out around it."""
    return gap + columns * (IMAGE_SIZE * scale + gap)


def contact_sheet(
    images: np.ndarray,
    columns: int = 8,
    scale: int = 3,
    gap: int = SHEET_GAP,
    captions: Sequence[str] | None = None,
    marked: Sequence[bool] | None = None,
) -> np.ndarray:
    """Tiles images into one crisp RGB image, each tile upscaled and optionally captioned below.

    One image is faster for a browser to show than dozens, and integer nearest-neighbour upscaling
    keeps every dataset pixel a sharp square.

    Args:
        images: `(N, 28, 28)` images, 0..255.
        columns: tiles a row. Defaults to 8.
        scale: the integer upscaling factor. Defaults to 3 (84-pixel tiles).
        gap: pixels between tiles and around the sheet. Defaults to 4.
        captions: one string a tile (may hold newlines), drawn under the tile. Defaults to `None`.
        marked: one flag a tile; marked tiles (say, the model's mistakes) get a coloured frame and
            coloured captions. Defaults to `None`.

    Returns:
        `(height, width, 3)` uint8 image: `gap + columns * (28 * scale + gap)` pixels wide.

    Raises:
        BrowseError: when there is no image, or captions or marks do not match images one to one.
    """
    images = np.asarray(images)
    if images.ndim != 3 or len(images) == 0:
        raise BrowseError(f"Expected a non-empty stack of images (N, H, W). Received: shape={images.shape}")
    for name, values in (("captions", captions), ("marked", marked)):
        if values is not None and len(values) != len(images):
            raise BrowseError(f"Expected one of {name} a tile. Received: {len(values)} for {len(images)} images")
    marked = list(marked) if marked is not None else [False] * len(images)
    tiles = upscale(np.clip(images, 0, 255).astype(np.uint8), scale)  # (N, 28*scale, 28*scale)
    tile_height, tile_width = tiles.shape[1:]
    num_lines = max(caption.count("\n") + 1 for caption in captions) if captions else 0
    cell_height = tile_height + num_lines * CAPTION_LINE_HEIGHT + gap
    cell_width = tile_width + gap
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    sheet = np.full((gap + rows * cell_height, gap + columns * cell_width, 3), SHEET_BACKGROUND, dtype=np.uint8)
    origins = [
        (gap + (position // columns) * cell_height, gap + (position % columns) * cell_width)
        for position in range(len(tiles))
    ]
    frame = max(gap // 2, 1)
    for (top, left), tile, is_marked in zip(origins, tiles, marked):
        if is_marked:
            sheet[top - frame : top + tile_height + frame, left - frame : left + tile_width + frame] = MARK_COLOR
        sheet[top : top + tile_height, left : left + tile_width] = tile[..., None]
    if captions:
        caption_origins = [(top + tile_height, left) for top, left in origins]
        sheet = _draw_captions(sheet, captions, caption_origins, marked)
    return sheet


def _draw_captions(
    sheet: np.ndarray, captions: Sequence[str], origins: Sequence[tuple[int, int]], marked: Sequence[bool]
) -> np.ndarray:
    """Writes each caption, line by line, at its `(top, left)` origin with Pillow's bundled font."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(sheet)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=CAPTION_FONT_SIZE)
    for (top, left), caption, is_marked in zip(origins, captions, marked):
        color = MARK_COLOR if is_marked else CAPTION_COLOR
        for line_number, line in enumerate(caption.split("\n")):
            draw.text((left + 1, top + 1 + line_number * CAPTION_LINE_HEIGHT), line, fill=color, font=font)
    return np.asarray(canvas)


def feature_extractor(model):
    """A Keras model from `model`'s input to its penultimate features.

    Uses the layer named `fashion_core.models.FEATURES_LAYER_NAME` when there is one, else the input
    of the last Dense layer (the classifier's input).

    Raises:
        BrowseError: when the model is not a Functional/Sequential model with a Dense classifier.
    """
    import keras

    from fashion_core.models import FEATURES_LAYER_NAME

    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        raise BrowseError(
            f"Features need a single-input Functional or Sequential Keras model. Received: {type(model).__name__}"
        )
    if any(layer.name == FEATURES_LAYER_NAME for layer in model.layers):
        outputs = model.get_layer(FEATURES_LAYER_NAME).output
    else:
        dense_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        if not dense_layers:
            raise BrowseError(
                f"The model has no layer named {FEATURES_LAYER_NAME!r} and no Dense layer, so it has no "
                f"penultimate features to project. Received: layers={[layer.name for layer in model.layers]}"
            )
        outputs = dense_layers[-1].input
    return keras.Model(inputs[0], outputs, name="feature_extractor")


def penultimate_features(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The model's penultimate-layer activations of each image.

    Args:
        model: a model under the project's contract (0..255 in, softmax out).
        images: `(N, 28, 28)` or `(N, 28, 28, 1)` images, 0..255.
        batch_size: images a forward pass. Defaults to 512.

    Returns:
        `(N, D)` float32 features (flattened if the layer's output is not flat).
    """
    from fashion_core.inference import as_model_input

    extractor = feature_extractor(model)
    batch = as_model_input(images)
    outputs = [
        np.asarray(extractor(batch[start : start + batch_size], training=False))
        for start in range(0, len(batch), batch_size)
    ]
    return np.concatenate(outputs).reshape(len(batch), -1).astype(np.float32)


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Projects features on their first two principal components.

    The components are the top eigenvectors of the `(D, D)` scatter matrix of the centred data, the
    same directions as an SVD of the centred `(N, D)` data gives, but about a hundred times faster for
    N >> D (an SVD of 3000x128 took 2 to 7 s on a busy 2-core machine, this 0.01 to 0.1 s). Each
    component's sign is fixed so that its largest loading is positive, so the same features always
    give the same picture, not a mirrored one.

    Args:
        features: `(N, D)` with N >= 2.

    Returns:
        `(N, 2)` float32 coordinates; the second column is zero when D is 1.

    Raises:
        BrowseError: when `features` is not 2-D or has fewer than two rows.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise BrowseError(f"Expected features shaped (N, D) with N >= 2. Received: shape={features.shape}")
    centred = features - features.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)  # columns, by ascending eigenvalue
    components = eigenvectors[:, ::-1][:, :2].T  # (k, D), k = min(2, D), largest variance first
    largest = components[np.arange(len(components)), np.abs(components).argmax(axis=1)]
    components = components * np.where(largest < 0, -1.0, 1.0)[:, None]
    projection = np.zeros((len(features), 2), dtype=np.float32)
    projection[:, : len(components)] = centred @ components.T
    return projection


def indices_from_selection(points: Sequence[dict]) -> list[int]:
    """Dataset indices of the points selected in a Plotly chart whose `customdata` holds them.

    Streamlit gives `customdata` as a list (or a scalar for one-value custom data); points without
    it (another trace) are skipped.
    """
    indices = []
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        if custom is not None:
            indices.append(int(custom))
    return indices
