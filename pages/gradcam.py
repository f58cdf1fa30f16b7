"""Grad-CAM viewer: which pixels made the model choose a class, for test images or your own."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from fashion_core import explain
from fashion_core.artifacts import ModelFileError, conv_layer_names_in_file
from fashion_core.charts import probability_bar_chart
from fashion_core.data import CLASS_NAMES, FashionMNIST
from fashion_core.explain import ExplainError
from fashion_core.faithfulness import read_faithfulness
from pages.common import (
    GRADCAM_REQUEST_KEY,
    LAST_INPUT_KEY,
    LoadedModel,
    app_page,
    as_display_image,
    current_model,
    dataset_or_message,
    keras_model_ready,
    loaded_or_waiting,
    test_evaluation,
)

SOURCE_KEY = "gradcam_source"
SPLIT_KEY = "gradcam_split"
INDEX_KEY = "gradcam_index"
CLASS_KEY = "gradcam_class"
CLASS_POSITION_KEY = "gradcam_class_position"
MISTAKE_KEY = "gradcam_mistake"
METHOD_KEY = "gradcam_method"
LAYER_KEY = "gradcam_layer"
TARGET_KEY = "gradcam_target"
ALPHA_KEY = "gradcam_alpha"
COLORMAP_KEY = "gradcam_colormap"

BY_INDEX, BY_CLASS, MISTAKES, LAST_INPUT = "By index", "By class", "Model's mistakes", "Last upload or drawing"
SOURCES = (BY_INDEX, BY_CLASS, MISTAKES, LAST_INPUT)
SPLITS = {"test": "Test set", "train": "Training set"}
IMAGE_TITLES = {"test": "Test image", "train": "Training image"}
PREDICTED, TRUE = "Predicted class", "True class"
DISPLAY_SIZE = 280  # pixels of each large image
TOP_SIZE = 196  # pixels of each "why this and not that" image
GRADIENTS_MEANWHILE = "Occlusion and RISE need only the model's answers and work meanwhile."


@dataclass(frozen=True)
class ChosenImage:
    """The image to explain: 28x28 uint8, its true label if known, and the photo it came from if any."""

    image: np.ndarray
    title: str
    label: int | None = None
    photo: np.ndarray | None = None
    crop_box: tuple | None = None
    content_box: tuple | None = None


@dataclass(frozen=True)
class Settings:
    method: str
    layer_name: str | None
    target: str  # PREDICTED, TRUE or a class name
    alpha: float
    colormap: int


# --------------------------------------------------------------------------------------------------
# Widget readers


def apply_request() -> str | None:
    """Opens the image another page asked for (through `GRADCAM_REQUEST_KEY`); returns a note saying so."""
    request = st.session_state.pop(GRADCAM_REQUEST_KEY, None)
    if not request:
        return None
    split = request.get("split", "test")
    st.session_state[SOURCE_KEY] = BY_INDEX
    st.session_state[SPLIT_KEY] = split if split in SPLITS else "test"
    st.session_state[INDEX_KEY] = int(request.get("index", 0))
    return f"Opened {IMAGE_TITLES[st.session_state[SPLIT_KEY]].lower()} {st.session_state[INDEX_KEY]}."


def pick_random_image(num_images: int) -> None:
    """Button callback: a random image of the chosen split, shown by index so it can be found again."""
    st.session_state[SOURCE_KEY] = BY_INDEX
    st.session_state[INDEX_KEY] = int(np.random.default_rng().integers(num_images))


def source_ui(data: FashionMNIST) -> str:
    """The source radio and the Random button; returns the source."""
    st.session_state.setdefault(SOURCE_KEY, BY_INDEX)
    left, right = st.columns([4, 1], vertical_alignment="bottom")  # room for the button's label
    source = left.radio("Image", SOURCES, key=SOURCE_KEY, horizontal=True)
    split = st.session_state.get(SPLIT_KEY, "test")
    right.button(
        "Random image",
        key="gradcam_random",
        icon=":material/casino:",
        on_click=pick_random_image,
        args=(len(data.split(split)[1]),),
    )
    return source


def dataset_image_ui(data: FashionMNIST, source: str) -> ChosenImage:
    """Split and index (or class and position within it) of a dataset image."""
    st.session_state.setdefault(SPLIT_KEY, "test")
    columns = st.columns(3)
    split = columns[0].selectbox("Split", list(SPLITS), format_func=SPLITS.get, key=SPLIT_KEY)
    images, labels = data.split(split)
    if source == BY_INDEX:
        st.session_state[INDEX_KEY] = min(int(st.session_state.get(INDEX_KEY, 0)), len(labels) - 1)
        index = int(columns[1].number_input(f"Index (0 to {len(labels) - 1})", 0, len(labels) - 1, key=INDEX_KEY))
    else:
        class_index = columns[1].selectbox(
            "Class", range(len(CLASS_NAMES)), format_func=CLASS_NAMES.__getitem__, key=CLASS_KEY
        )
        members = np.flatnonzero(labels == class_index)
        st.session_state[CLASS_POSITION_KEY] = min(int(st.session_state.get(CLASS_POSITION_KEY, 0)), len(members) - 1)
        position = columns[2].number_input(
            f"Image of this class (0 to {len(members) - 1})", 0, len(members) - 1, key=CLASS_POSITION_KEY
        )
        index = int(members[int(position)])
    return ChosenImage(images[index], f"{IMAGE_TITLES[split]} {index}", label=int(labels[index]))


def mistake_ui(data: FashionMNIST, loaded: LoadedModel) -> ChosenImage | None:
    """A test image the model gets wrong, most confident mistakes first."""
    report = test_evaluation(loaded)
    mistakes = [int(i) for i in report.mistakes()]
    if not mistakes:
        st.success("The model classifies every test image correctly: there is no mistake to show.")
        return None

    def describe(index: int) -> str:
        true, predicted = CLASS_NAMES[report.labels[index]], CLASS_NAMES[report.predictions[index]]
        return f"Test image {index}: {true}, predicted {predicted} ({report.confidences[index]:.0%})"

    if st.session_state.get(MISTAKE_KEY) not in mistakes:
        st.session_state[MISTAKE_KEY] = mistakes[0]
    index = st.selectbox(
        f"Mistake ({len(mistakes)} in the test set, most confident first)",
        mistakes,
        format_func=describe,
        key=MISTAKE_KEY,
    )
    return ChosenImage(data.test_images[index], f"{IMAGE_TITLES['test']} {index}", label=int(data.test_labels[index]))


def last_input_ui() -> ChosenImage | None:
    """The last upload or drawing of the Predict page, with its photo and crop boxes."""
    last = st.session_state.get(LAST_INPUT_KEY)
    if not last:
        st.info(
            "Classify a photo or a drawing on the Predict page first; it then shows up here.", icon=":material/info:"
        )
        return None
    return ChosenImage(
        np.asarray(last["image"], dtype=np.uint8),
        f"Your image “{escape_markdown(str(last.get('name', 'upload')))}”",
        photo=last.get("photo"),
        crop_box=last.get("crop_box"),
        content_box=last.get("content_box"),
    )


def escape_markdown(text: str) -> str:
    """User text (a file name) shown literally in Markdown: no emphasis, links or headings."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$])", r"\\\1", text)


def _reset_if_missing(key: str, options: list, default) -> None:
    # An option list that changed (another model, another image) must not keep a stale choice.
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def model_conv_layers(loaded: LoadedModel) -> list[str]:
    """The model's convolution layers, read from its file: listing them does not wait for TensorFlow."""
    try:
        return conv_layer_names_in_file(loaded.entry.model_file)
    except ModelFileError:  # a file whose configuration this reader does not know: ask Keras
        from fashion_core.models import conv_layer_names

        return conv_layer_names(loaded.model)


def settings_ui(loaded: LoadedModel, chosen: ChosenImage) -> Settings:
    """Method, layer, target class, opacity and colour map."""
    layers = model_conv_layers(loaded)
    methods = [method for method in explain.METHODS if layers or method not in explain.CONV_METHODS]
    targets = [PREDICTED] + ([TRUE] if chosen.label is not None else []) + list(CLASS_NAMES)
    _reset_if_missing(METHOD_KEY, methods, methods[0])
    _reset_if_missing(LAYER_KEY, layers, layers[-1] if layers else None)
    _reset_if_missing(TARGET_KEY, targets, PREDICTED)
    st.session_state.setdefault(ALPHA_KEY, 0.4)
    _reset_if_missing(COLORMAP_KEY, list(explain.COLORMAPS), next(iter(explain.COLORMAPS)))

    columns = st.columns([2, 1.3, 1.5, 1.2, 1])
    method = columns[0].radio("Method", methods, key=METHOD_KEY, horizontal=True)
    uses_layer = method in explain.CONV_METHODS
    layer_name = columns[1].selectbox(
        "Layer",
        layers or ["(no conv layer)"],
        key=LAYER_KEY if layers else "gradcam_no_layer",
        disabled=not uses_layer,
        help="Grad-CAM looks at one convolution layer: early layers show edges, the last one the parts "
        "that decide the class.",
    )
    target = columns[2].selectbox("Target class", targets, key=TARGET_KEY)
    alpha = columns[3].slider("Opacity", 0.0, 1.0, step=0.05, key=ALPHA_KEY)
    colormap_name = columns[4].selectbox("Colour map", list(explain.COLORMAPS), key=COLORMAP_KEY)
    if not layers:
        st.info(
            f"This model (`{loaded.name}`) has no convolution layer, so Grad-CAM and Grad-CAM++ cannot be "
            "computed: they need a conv layer's feature maps. The other methods work for every model.",
            icon=":material/info:",
        )
    return Settings(method, layer_name if uses_layer else None, target, alpha, explain.COLORMAPS[colormap_name])


# --------------------------------------------------------------------------------------------------
# Model step


def target_class(settings: Settings, chosen: ChosenImage, probabilities: np.ndarray) -> int:
    if settings.target == PREDICTED:
        return int(probabilities.argmax())
    if settings.target == TRUE:
        return int(chosen.label)
    return CLASS_NAMES.index(settings.target)


def heatmaps(loaded: LoadedModel, image: np.ndarray, settings: Settings, class_indices: list[int]) -> np.ndarray:
    """`(len(class_indices), 28, 28)` maps of one image, one per class, in one pass."""
    images = np.repeat(image[None], len(class_indices), axis=0)
    # Forward-only methods run through the app's predictor (flip-averaged, LiteRT when it can): what it answers.
    model = loaded.predictor if settings.method in explain.FORWARD_METHODS else loaded.model
    return explain.explain_batch(model, images, settings.method, class_indices, settings.layer_name)


# --------------------------------------------------------------------------------------------------
# Drawing


def draw_prediction(chosen: ChosenImage, probabilities: np.ndarray) -> None:
    predicted = int(probabilities.argmax())
    truth = f" · true class: **{CLASS_NAMES[chosen.label]}**" if chosen.label is not None else ""
    verdict = ""
    if chosen.label is not None:
        verdict = " ✓" if chosen.label == predicted else " ✗"
    st.markdown(
        f"**{chosen.title}**{truth} · predicted: **{CLASS_NAMES[predicted]}** ({probabilities[predicted]:.1%}){verdict}"
    )


def draw_maps(chosen: ChosenImage, heatmap: np.ndarray, settings: Settings, class_index: int) -> None:
    """The image, the heat map and the overlay side by side, and the overlay on the photo if there is one."""
    where = f" on layer `{settings.layer_name}`" if settings.layer_name else ""
    st.markdown(f"Explaining **{CLASS_NAMES[class_index]}** with {settings.method}{where}.")
    st.caption(explain.METHOD_DESCRIPTIONS[settings.method])
    if heatmap.max() == 0:
        st.info(
            f"The map is zero everywhere: weighted by their gradients, this layer's features lower the score of "
            f"{CLASS_NAMES[class_index]} at every position, and Grad-CAM keeps only what raises it. "
            "Try Grad-CAM++ or another layer.",
            icon=":material/info:",
        )
    pictures = {
        "What the model sees (28x28)": as_display_image(chosen.image, DISPLAY_SIZE),
        "Heat map": explain.heatmap_image(heatmap, settings.colormap, DISPLAY_SIZE),
        "Overlay": explain.overlay(chosen.image, heatmap, settings.alpha, settings.colormap, DISPLAY_SIZE),
    }
    for column, (caption, picture) in zip(st.columns(3), pictures.items(), strict=True):
        column.image(picture, caption=caption, output_format="PNG")  # PNG: JPEG would blur the crisp pixels
    if chosen.photo is not None and chosen.crop_box is not None and chosen.content_box is not None:
        try:
            on_photo = explain.overlay_on_photo(
                chosen.photo, heatmap, chosen.crop_box, chosen.content_box, settings.alpha, settings.colormap
            )
        except ExplainError as error:
            st.warning(f"The map cannot be drawn on your photo: {error}")
        else:
            st.image(on_photo, caption="On your photo (the crop the model saw)", width=min(560, on_photo.shape[1]))


def faithfulness_table(report: dict) -> pd.DataFrame:
    """One row per method (and Grad-CAM layer) of a `faithfulness.json` report."""
    rows = [
        {"Method": name, "Deletion (lower is better)": figures["deletion"],
         "Insertion (higher is better)": figures["insertion"], "ms per image": figures["ms_per_image_in_a_batch"]}
        for name, figures in report["methods"].items()
    ]  # fmt: skip
    return pd.DataFrame(rows)


def draw_faithfulness(loaded: LoadedModel) -> None:
    """Each method's deletion and insertion scores, as measured by `python -m benchmarks.faithfulness`."""
    with st.expander("How faithful is each method?"):
        report = read_faithfulness(loaded.entry.path)
        if report is None:
            st.write(
                "Not measured for this model yet: run `python -m benchmarks.faithfulness --model-dir "
                f"{loaded.entry.path}` to measure every method."
            )
            return
        st.write(
            f"On {report['num_images']} test images (Petsiuk et al. 2018): pixels are set to black in the map's order, "
            "most important first, and the class probability is averaged over 21 steps (**deletion**, lower is "
            "better); or revealed on black in that order (**insertion**, higher is better). Two orders that ignore "
            "the model give the scale. The map shown with every answer on the Predict page is "
            f"{report['default_method']}."
        )
        st.dataframe(faithfulness_table(report), hide_index=True, key="gradcam_faithfulness")


def draw_top_classes(chosen: ChosenImage, maps: np.ndarray, top: list[int], probabilities, settings: Settings) -> None:
    """A row of maps for the three likeliest classes: why this class and not that one."""
    st.subheader("Why this and not that")
    st.caption("The same method for each of the three likeliest classes: what speaks for each of them.")
    for rank, (column, class_index, heatmap) in enumerate(zip(st.columns(3), top, maps, strict=True), start=1):
        column.image(
            explain.overlay(chosen.image, heatmap, settings.alpha, settings.colormap, TOP_SIZE),
            caption=f"{rank}. {CLASS_NAMES[class_index]} · {probabilities[class_index]:.1%}",
            output_format="PNG",
        )


def chosen_image_ui(data: FashionMNIST | None, loaded: LoadedModel) -> ChosenImage | None:
    note = apply_request()
    if note:
        st.toast(note, icon=":material/visibility:")
    if data is None:
        st.session_state[SOURCE_KEY] = LAST_INPUT
        return last_input_ui()
    source = source_ui(data)
    if source == LAST_INPUT:
        return last_input_ui()
    if source == MISTAKES:
        return mistake_ui(data, loaded)
    return dataset_image_ui(data, source)


@app_page
def gradcam_page() -> None:
    st.title("Grad-CAM viewer")
    st.write(
        "Which pixels made the model choose a class? Pick an image, a method and a class; warm colours mark "
        "what raised that class's score."
    )
    if not (loaded_or_waiting("model") and loaded_or_waiting("dataset")):
        return
    loaded = current_model()
    if loaded is None:
        return
    data = dataset_or_message()
    chosen = chosen_image_ui(data, loaded)
    if chosen is None:
        return
    settings = settings_ui(loaded, chosen)
    probabilities = loaded.predictor.predict_one(chosen.image)
    st.divider()
    draw_prediction(chosen, probabilities)
    if settings.method in explain.GRADIENT_METHODS and not keras_model_ready(
        loaded, f"{settings.method}: the gradient methods need it", GRADIENTS_MEANWHILE
    ):
        st.image(as_display_image(chosen.image, DISPLAY_SIZE), caption="What the model sees (28x28)")
    else:
        draw_explanations(loaded, chosen, settings, probabilities)
    with st.expander("All ten probabilities"):
        st.plotly_chart(probability_bar_chart(probabilities), key="gradcam_probabilities")
    draw_faithfulness(loaded)


def draw_explanations(loaded: LoadedModel, chosen: ChosenImage, settings: Settings, probabilities) -> None:
    """The maps of the target class, then of the three likeliest classes."""
    class_index = target_class(settings, chosen, probabilities)
    top = [int(i) for i in np.argsort(-probabilities)[:3]]
    try:
        maps = heatmaps(loaded, chosen.image, settings, [class_index, *top])
    except ExplainError as error:
        st.error(str(error), icon=":material/error:")
        return
    draw_maps(chosen, maps[0], settings, class_index)
    draw_top_classes(chosen, maps[1:], top, probabilities, settings)


gradcam_page()
