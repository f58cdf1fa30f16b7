"""Dataset: browse the 70000 images the model learns from, its mistakes and its embedding map.

Split, classes, order, page, selected image and tab are bound to the URL's query parameters
(`bind="query-params"`: the widget key is the parameter's name), so a view can be shared as a link.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from fashion_core import browse
from fashion_core.charts import class_count_chart, embedding_scatter, pixel_heatmap, probability_bar_chart
from fashion_core.data import CLASS_NAMES, NUM_CLASSES, FashionMNIST
from pages.common import (
    GRADCAM_REQUEST_KEY,
    LoadedModel,
    app_page,
    current_model,
    dataset,
    dataset_or_message,
    image_bytes,
    keras_model_ready,
    loaded_or_waiting,
    test_evaluation,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
GRADCAM_PAGE = "pages/gradcam.py"
PER_PAGE = 48
GRID_COLUMNS = 6  # 6 x 84-pixel tiles leave room for the image panel beside the grid
TILE_SCALE = 3  # 84-pixel tiles
GRID_WIDTH = browse.contact_sheet_width(GRID_COLUMNS, TILE_SCALE)
EMBEDDING_SIZE = 3000  # test images in the embedding map, stratified
EMBEDDING_SEED = 0
SPLITS = {"test": "Test", "train": "Train"}
TABS = ("Class distribution", "Mean images", "Embedding map")

# Keys bound to the URL: each is also its query parameter's name.
SPLIT_KEY, CLASSES_KEY, ORDER_KEY, PAGE_KEY, IMAGE_KEY, TAB_KEY = "split", "classes", "order", "page", "image", "view"
SEED_PARAM = "seed"  # the random order's seed, written to the URL by hand (it is not a widget)
SEED_KEY = "dataset_seed"
REVEAL_KEY = "dataset_reveal"  # set when an image is chosen, so that the grid turns to its page
RANDOM_BUTTON_KEY = "dataset_random"
GRADCAM_BUTTON_KEY = "dataset_open_gradcam"
PIXELS_KEY = "dataset_pixels"
PROBABILITIES_KEY = "dataset_probabilities"
EMBEDDING_KEY = "dataset_embedding"
TABLE_KEY_PREFIX = "dataset_table"  # + split and page: each page's table starts with no row selected


@dataclass(frozen=True)
class View:
    """What the controls ask to see."""

    split: str
    classes: tuple[int, ...]
    order: str
    seed: int


@dataclass(frozen=True)
class Embedding:
    """The 2-D PCA of a model's penultimate features for a stratified sample of test images."""

    indices: np.ndarray  # (EMBEDDING_SIZE,) test-set indices
    labels: np.ndarray
    coordinates: np.ndarray  # (EMBEDDING_SIZE, 2)


def model_key(loaded: LoadedModel) -> tuple[str, str, int]:
    """Name, folder and file time of a model: a cache key that changes when the model is saved again."""
    return loaded.name, str(loaded.entry.path), loaded.entry.model_file.stat().st_mtime_ns


@st.cache_data(show_spinner=False, max_entries=64)
def sheet_png(split: str, indices: tuple[int, ...], captions: tuple[str, ...], marked: tuple[bool, ...]) -> bytes:
    """The contact sheet of one page, PNG-encoded; cached per page, so paging back and forth is instant."""
    images, _ = dataset().split(split)
    sheet = browse.contact_sheet(images[list(indices)], GRID_COLUMNS, TILE_SCALE, captions=captions, marked=marked)
    return image_bytes(sheet)


@st.cache_data(show_spinner=False, max_entries=4)
def mean_images_png(split: str) -> list[bytes]:
    """The ten class means of a split, each upscaled 5x and PNG-encoded."""
    images, labels = dataset().split(split)
    means = np.rint(browse.mean_images(images, labels)).astype(np.uint8)
    return [image_bytes(image) for image in browse.upscale(means, 5)]


@st.cache_data(show_spinner=False, max_entries=256)
def page_probabilities(_loaded: LoadedModel, key: tuple, split: str, indices: tuple[int, ...]) -> np.ndarray:
    """`(len(indices), 10)` probabilities of one page's images (`key` is `model_key(_loaded)`)."""
    images, _ = dataset().split(split)
    return _loaded.predictor.predict(images[list(indices)])


@st.cache_resource(show_spinner="Projecting 3000 test images...", max_entries=4)
def embedding(_loaded: LoadedModel, key: tuple) -> Embedding:
    """The model's embedding map, computed once per model and process (`key` is `model_key(_loaded)`)."""
    data = dataset()
    indices = browse.stratified_sample(data.test_labels, EMBEDDING_SIZE, seed=EMBEDDING_SEED)
    features = browse.penultimate_features(_loaded.model, data.test_images[indices])
    return Embedding(indices, data.test_labels[indices], browse.pca_2d(features))


def select_image(index: int, split: str | None = None) -> None:
    """Makes `index` the selected image (of `split`, if given) and turns the grid to its page."""
    if split is not None:
        st.session_state[SPLIT_KEY] = split
    st.session_state[IMAGE_KEY] = int(index)
    st.session_state[REVEAL_KEY] = True


def reveal_selected_image() -> None:
    st.session_state[REVEAL_KEY] = True


def turn_to_first_page() -> None:
    st.session_state[PAGE_KEY] = 1


def new_random_sample() -> None:
    st.session_state[SEED_KEY] = secrets.randbelow(1_000_000)
    st.session_state[ORDER_KEY] = "random"
    turn_to_first_page()


def on_table_select(table_key: str, indices: tuple[int, ...]) -> None:
    rows = st.session_state[table_key].selection.rows
    if rows:
        select_image(indices[rows[0]])


def on_embedding_select() -> None:
    chosen = browse.indices_from_selection(st.session_state[EMBEDDING_KEY].selection.points)
    if chosen:
        select_image(chosen[0], split="test")


def random_seed() -> int:
    """The random order's seed: the session's, else the URL's on first load, else 0."""
    if SEED_KEY not in st.session_state:
        value = st.query_params.get(SEED_PARAM, "0")
        st.session_state[SEED_KEY] = int(value) if value.isdigit() else 0
    return st.session_state[SEED_KEY]


def controls_ui() -> View:
    """Split, classes and order, with a button for a fresh random sample."""
    split_column, classes_column, order_column, button_column = st.columns(
        [1.3, 2.7, 1.4, 1.4], vertical_alignment="bottom"
    )
    split = split_column.segmented_control(
        "Split",
        list(SPLITS),
        format_func=SPLITS.get,
        default="test",
        required=True,
        key=SPLIT_KEY,
        bind="query-params",
        on_change=turn_to_first_page,
    )
    classes = classes_column.multiselect(
        "Classes",
        list(range(NUM_CLASSES)),
        format_func=CLASS_NAMES.__getitem__,
        key=CLASSES_KEY,
        bind="query-params",
        placeholder="All classes",
        on_change=turn_to_first_page,
    )
    order = order_column.selectbox(
        "Order",
        list(browse.ORDERS),
        format_func=browse.ORDERS.get,
        key=ORDER_KEY,
        bind="query-params",
        on_change=turn_to_first_page,
        help="Misclassified and least-confident orders use the current model's test-set predictions.",
    )
    button_column.button(
        "Random sample",
        icon=":material/shuffle:",
        key=RANDOM_BUTTON_KEY,
        on_click=new_random_sample,
        help="Shows the images in a new random order.",
    )
    return View(split=split, classes=tuple(classes), order=order, seed=random_seed())


def write_seed_to_url(view: View) -> None:
    if view.order == "random":
        st.query_params[SEED_PARAM] = str(view.seed)
    else:
        st.query_params.pop(SEED_PARAM, None)


def displayed_order(data: FashionMNIST, view: View, loaded: LoadedModel | None) -> np.ndarray:
    """The dataset indices to page through; says why when an order cannot be used."""
    _, labels = data.split(view.split)
    filtered = browse.filter_indices(labels, view.classes)
    order, probabilities = view.order, None
    if order in browse.ORDERS_NEEDING_PREDICTIONS:
        if view.split != "test":
            st.info(
                f"“{browse.ORDERS[order]}” uses the model's test-set predictions: switch to the test split to "
                "use it. Showing the training images by index.",
                icon=":material/info:",
            )
            order = "index"
        elif loaded is None:
            order = "index"
        else:
            probabilities = test_evaluation(loaded).probabilities
    return browse.order_indices(filtered, order, labels=labels, probabilities=probabilities, seed=view.seed)


def keep_selection_valid(num_images: int) -> None:
    """Clears a selected index the split does not have (say, 50000 after switching to test)."""
    index = st.session_state.get(IMAGE_KEY)
    if index is not None and not 0 <= index < num_images:
        st.session_state[IMAGE_KEY] = None


def turn_to_selected_image(ordering: np.ndarray) -> None:
    """After an image is chosen (index, table, map), shows the page it is on, if it is in the ordering."""
    if st.session_state.pop(REVEAL_KEY, False) and st.session_state.get(IMAGE_KEY) is not None:
        page = browse.page_containing(ordering, st.session_state[IMAGE_KEY], PER_PAGE)
        if page is not None:
            st.session_state[PAGE_KEY] = page


def page_table(labels: np.ndarray, indices: np.ndarray, probabilities: np.ndarray | None) -> pd.DataFrame:
    """One row a tile: position, index, label and, with a model, its prediction and confidence."""
    table = pd.DataFrame(
        {
            "Tile": np.arange(1, len(indices) + 1),
            "Index": indices,
            "Label": [CLASS_NAMES[label] for label in labels[indices]],
        }
    )
    if probabilities is not None:
        table["Predicted"] = [CLASS_NAMES[p] for p in probabilities.argmax(axis=1)]
        table["Confidence"] = probabilities.max(axis=1)
    return table


def tile_captions(table: pd.DataFrame) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """Captions under the tiles: index, label and the model's verdict; mistakes are marked."""
    has_predictions = "Predicted" in table
    captions, marked = [], []
    for row in table.itertuples(index=False):
        lines = [f"#{row.Index}", row.Label]
        mistake = has_predictions and row.Predicted != row.Label
        if has_predictions:
            lines.append(f"as {row.Predicted}" if mistake else f"ok {row.Confidence:.0%}")
        captions.append("\n".join(lines))
        marked.append(bool(mistake))
    return tuple(captions), tuple(marked)


def image_grid(data: FashionMNIST, view: View, ordering: np.ndarray, loaded: LoadedModel | None) -> None:
    """The paged contact sheet of the ordering, and its table, whose rows select an image."""
    _, labels = data.split(view.split)
    num_pages = browse.page_count(len(ordering), PER_PAGE)
    page = st.pagination(num_pages, key=PAGE_KEY, bind="query-params", max_visible_pages=9)
    page = min(page, num_pages)
    indices = browse.page_indices(ordering, page, PER_PAGE)
    if len(indices) == 0:
        st.info("No image matches these filters.", icon=":material/filter_alt_off:")
        return
    st.caption(
        f"Images {(page - 1) * PER_PAGE + 1}–{(page - 1) * PER_PAGE + len(indices)} of {len(ordering):,} "
        f"({view.split} split). Pick a row of the table, type an index, or click the embedding map to "
        "look at one closely."
    )
    probabilities = page_probabilities(loaded, model_key(loaded), view.split, tuple(indices)) if loaded else None
    table = page_table(labels, indices, probabilities)
    captions, marked = tile_captions(table)
    st.image(
        sheet_png(view.split, tuple(int(i) for i in indices), captions, marked),
        width="content",
        output_format="PNG",  # keep the crisp PNG: "auto" re-encodes it as a blurrier JPEG
        alt=f"Page {page}: {', '.join(f'#{i} {label}' for i, label in zip(table['Index'], table['Label']))}",
    )
    if any(marked):
        wrong = sum(marked)
        images = "image" if wrong == 1 else "images"
        st.caption(f"Framed in orange: the {wrong} {images} on this page the model gets wrong.")
    table_key = f"{TABLE_KEY_PREFIX}_{view.split}_{page}"
    st.dataframe(
        table,
        key=table_key,
        on_select=functools.partial(on_table_select, table_key, tuple(int(i) for i in indices)),
        selection_mode="single-row",
        hide_index=True,
        height=250,
        column_config={"Confidence": st.column_config.ProgressColumn("Confidence", format="percent")},
    )


def gradcam_button(split: str, index: int) -> None:
    """Opens the image in the Grad-CAM viewer, if the app has one."""
    if not (REPO_ROOT / GRADCAM_PAGE).exists():
        return
    if st.button("Open in Grad-CAM viewer", icon=":material/visibility:", key=GRADCAM_BUTTON_KEY):
        st.session_state[GRADCAM_REQUEST_KEY] = {"split": split, "index": int(index)}
        # An explicit (empty) `query_params`: the default clears the URL, which Streamlit 1.67 refuses while
        # this page has widgets bound to it ("Cannot clear query parameters - ... bound to widgets").
        st.switch_page(GRADCAM_PAGE, query_params={})


def selected_image_panel(data: FashionMNIST, view: View, ordering: np.ndarray, loaded: LoadedModel | None) -> None:
    """The chosen image large, with its label, index and the model's ten probabilities."""
    images, labels = data.split(view.split)
    index = st.number_input(
        "Image index",
        min_value=0,
        max_value=len(labels) - 1,
        value=None,
        step=1,
        key=IMAGE_KEY,
        bind="query-params",
        placeholder=f"0 to {len(labels) - 1:,}",
        on_change=reveal_selected_image,
    )
    if index is None:
        st.info("Choose an image to see it pixel by pixel with the model's verdict.", icon=":material/touch_app:")
        return
    label = int(labels[index])
    st.subheader(f"#{index} · {CLASS_NAMES[label]}")
    shown = browse.page_containing(ordering, index, PER_PAGE) is not None
    where = "" if shown else " It is not among the images the filters show."
    st.caption(f"Image {index} of the {view.split} split, labelled {CLASS_NAMES[label]} (class {label}).{where}")
    st.plotly_chart(pixel_heatmap(images[index]), key=PIXELS_KEY)
    if loaded is not None:
        probabilities = loaded.predictor.predict_one(images[index])
        predicted = int(probabilities.argmax())
        verdict = "right" if predicted == label else "wrong"
        st.markdown(
            f"Model `{loaded.name}` predicts **{CLASS_NAMES[predicted]}** ({probabilities[predicted]:.1%}): {verdict}."
        )
        st.plotly_chart(probability_bar_chart(probabilities), key=PROBABILITIES_KEY)
    gradcam_button(view.split, index)


def class_distribution_tab(data: FashionMNIST, view: View) -> None:
    _, labels = data.split(view.split)
    counts = browse.class_counts(labels)
    title = f"Images per class in the {view.split} split ({len(labels):,})"
    st.plotly_chart(class_count_chart(counts, highlighted=view.classes, title=title), key="dataset_class_counts")
    if counts.min() == counts.max():
        st.caption(f"Every class has {counts[0]:,} images: the split is balanced, so no class dominates accuracy.")


def mean_images_tab(view: View) -> None:
    st.caption(
        f"The average of every {view.split} image of each class: where each class puts its pixels, and how much "
        "its images vary (a blurry mean means varied shapes)."
    )
    st.image(mean_images_png(view.split), caption=list(CLASS_NAMES), width=140, output_format="PNG")


def embedding_tab(data: FashionMNIST, loaded: LoadedModel | None) -> None:
    """The PCA map of the model's penultimate features; clicking a point selects that test image."""
    if loaded is None:
        st.info("The embedding map needs a model.", icon=":material/info:")
        return
    if not keras_model_ready(
        loaded, "the embedding map: the model's features need it", "The rest of the page works meanwhile."
    ):
        return
    try:
        projected = embedding(loaded, model_key(loaded))
    except browse.BrowseError as error:
        st.warning(str(error), icon=":material/warning:")
        return
    st.caption(
        f"{EMBEDDING_SIZE:,} test images ({EMBEDDING_SIZE // NUM_CLASSES} a class) placed by the two main directions "
        f"of model `{loaded.name}`'s penultimate-layer features (PCA): close points look alike to the model. Click a "
        "point to select its image; click legend entries to hide classes."
    )
    selected = st.session_state.get(IMAGE_KEY) if st.session_state.get(SPLIT_KEY) == "test" else None
    map_column, preview_column = st.columns([4, 1])
    figure = embedding_scatter(projected.coordinates, projected.labels, projected.indices, selected_index=selected)
    map_column.plotly_chart(
        figure, key=EMBEDDING_KEY, on_select=on_embedding_select, selection_mode="points", config={"scrollZoom": True}
    )
    if selected is not None:
        with preview_column:
            selected_preview(data, loaded, selected)


def selected_preview(data: FashionMNIST, loaded: LoadedModel, index: int) -> None:
    """A small view of the selected test image beside the map, so a click shows its result where it was made."""
    image, label = data.test_images[index], int(data.test_labels[index])
    predicted = int(page_probabilities(loaded, model_key(loaded), "test", (index,))[0].argmax())
    st.image(image_bytes(browse.upscale(image, 5)), caption=f"#{index} · {CLASS_NAMES[label]}", output_format="PNG")
    st.caption(f"Predicted {CLASS_NAMES[predicted]}. Full view at the top of the page.")


def explore_tabs(data: FashionMNIST, view: View, loaded: LoadedModel | None) -> None:
    """Tabs that run only while open, so the embedding is computed only when someone looks at it."""
    distribution, means, embedding_map = st.tabs(TABS, key=TAB_KEY, bind="query-params")
    with distribution:
        if distribution.open:
            class_distribution_tab(data, view)
    with means:
        if means.open:
            mean_images_tab(view)
    with embedding_map:
        if embedding_map.open:
            embedding_tab(data, loaded)


@app_page
def dataset_page() -> None:
    st.title("Dataset")
    st.caption("The 70000 Fashion-MNIST images the model learns from (60000) and is tested on (10000).")
    if not (loaded_or_waiting("dataset") and loaded_or_waiting("model")):
        return
    data = dataset_or_message()
    if data is None:
        return
    loaded = current_model()
    view = controls_ui()
    write_seed_to_url(view)
    ordering = displayed_order(data, view, loaded)
    keep_selection_valid(len(data.split(view.split)[1]))
    turn_to_selected_image(ordering)
    # The grid keeps its native width, so that no browser rescaling blurs its pixels; the image
    # panel takes the rest of the row, or wraps below it on a narrow screen.
    with st.container(horizontal=True, gap="large"):
        with st.container(width=GRID_WIDTH):
            image_grid(data, view, ordering, loaded)
        with st.container(width="stretch"):
            selected_image_panel(data, view, ordering, loaded)
    explore_tabs(data, view, loaded)


dataset_page()
