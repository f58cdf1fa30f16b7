"""Evaluation: how the chosen model does on the 10000 test images, and where it fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from fashion_core import explain
from fashion_core.charts import confusion_matrix_heatmap
from fashion_core.data import CLASS_NAMES, FashionMNIST
from fashion_core.evaluation import EvaluationReport
from fashion_core.explain import ExplainError
from fashion_core.models import conv_layer_names
from fashion_core.photostore import PhotoStoreError
from pages.common import (
    GRADCAM_REQUEST_KEY,
    LoadedModel,
    app_page,
    as_display_image,
    current_model,
    dataset_or_message,
    escape_markdown,
    photo_evaluation,
    photo_store,
    test_evaluation,
)

NORMALIZE_KEY = "evaluation_normalize"
PAIR_KEY = "evaluation_pair"
GALLERY_GRADCAM_KEY = "evaluation_gradcam"
GALLERY_SIZE_KEY = "evaluation_gallery_size"
GALLERY_COLUMNS = 6
THUMBNAIL_SIZE = 112
GALLERY_SIZES = (12, 24, 48)


# --------------------------------------------------------------------------------------------------
# Tables


FLIP_AVERAGE_HELP = (
    "Each image's probabilities are averaged with its mirror image's, as everywhere in the app, because this "
    "model was trained with random flips."
)


def metrics_row(report: EvaluationReport, flip_average: bool) -> None:
    mistakes = int((report.predictions != report.labels).sum())
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{report.accuracy:.2%}", help=FLIP_AVERAGE_HELP if flip_average else None)
    columns[1].metric("Test loss", f"{report.loss:.4f}")
    columns[2].metric("Macro F1", f"{report.f1.mean():.2%}")
    columns[3].metric(f"Mistakes (of {len(report.labels):,})", f"{mistakes:,}")


def per_class_table(report: EvaluationReport) -> pd.DataFrame:
    """Precision, recall and F1 of each class in percent, and its number of images."""
    return pd.DataFrame(
        {
            "Class": list(CLASS_NAMES),
            "Precision": 100 * report.precision,
            "Recall": 100 * report.recall,
            "F1": 100 * report.f1,
            "Images": report.confusion_matrix.sum(axis=1),
        }
    )


def confused_pairs_table(report: EvaluationReport, top: int = 10) -> pd.DataFrame:
    """The most frequent mistakes: true class, predicted class, count and percent of the true class."""
    support = report.confusion_matrix.sum(axis=1)
    pairs = report.most_confused_pairs(top)
    return pd.DataFrame(
        {
            "True class": [CLASS_NAMES[true] for true, _, _ in pairs],
            "Predicted as": [CLASS_NAMES[predicted] for _, predicted, _ in pairs],
            "Images": [count for _, _, count in pairs],
            "Share of the true class": [100 * count / max(int(support[true]), 1) for true, _, count in pairs],
        }
    )


def draw_tables(report: EvaluationReport) -> None:
    percent = st.column_config.NumberColumn(format="%.1f%%")
    left, right = st.columns(2)
    left.subheader("Per class")
    left.dataframe(
        per_class_table(report),
        hide_index=True,
        column_config={"Precision": percent, "Recall": percent, "F1": percent},
    )
    right.subheader("Most confused pairs")
    right.dataframe(
        confused_pairs_table(report),
        hide_index=True,
        column_config={"Share of the true class": percent},
    )


def photo_comparison_table(test_report: EvaluationReport, photo_report: EvaluationReport) -> pd.DataFrame:
    """Per class: accuracy (recall, in percent) on the test images and on the store's val photos, and the photos."""
    photos = photo_report.confusion_matrix.sum(axis=1)
    return pd.DataFrame(
        {
            "Class": list(CLASS_NAMES),
            "Test accuracy": 100 * test_report.recall,
            "Photo val accuracy": np.where(photos > 0, 100 * photo_report.recall, np.nan),
            "Val photos": photos,
        }
    )


def draw_photo_figures(loaded: LoadedModel, test_report: EvaluationReport) -> None:
    """The model on the photo store's val photos, beside its test figures."""
    st.subheader("On real photos")
    store = photo_store()
    if store is None:
        return
    try:
        photo_report = photo_evaluation(loaded, store)
    except PhotoStoreError as error:
        st.error(escape_markdown(error), icon=":material/database_off:")
        return
    if photo_report is None:
        st.info(
            "The photo store has no val photos yet. Save photos from the Predict page, or import some on the Photos "
            "page, to see how the model does on real photos."
        )
        return
    gap = photo_report.accuracy - test_report.accuracy
    st.metric(
        f"Photo val accuracy ({len(photo_report.labels)} photos)",
        f"{photo_report.accuracy:.2%}",
        delta=f"{100 * gap:+.1f} points against the test images",
        help="The photo store's val photos (see the Photos page): real photos no model trains on.",
    )
    percent = st.column_config.NumberColumn(format="%.1f%%")
    st.dataframe(
        photo_comparison_table(test_report, photo_report),
        hide_index=True,
        key="evaluation_photos_table",
        column_config={"Test accuracy": percent, "Photo val accuracy": percent},
    )


# --------------------------------------------------------------------------------------------------
# Gallery of one pair's mistakes


def pair_ui(report: EvaluationReport) -> tuple[int, int] | None:
    """A select box of every (true, predicted) pair the model confuses, most frequent first."""
    pairs = {(true, predicted): count for true, predicted, count in report.most_confused_pairs(top=90)}
    if not pairs:
        st.success("The model classifies every test image correctly.")
        return None
    options = list(pairs)
    if st.session_state.get(PAIR_KEY) not in options:
        st.session_state[PAIR_KEY] = options[0]
    return st.selectbox(
        "Mistakes of the pair",
        options,
        format_func=lambda pair: f"{CLASS_NAMES[pair[0]]} predicted as {CLASS_NAMES[pair[1]]} ({pairs[pair]})",
        key=PAIR_KEY,
    )


def open_in_gradcam(index: int) -> None:
    """Opens a test image in the Grad-CAM viewer (which pops the request on its next run)."""
    st.session_state[GRADCAM_REQUEST_KEY] = {"split": "test", "index": int(index)}
    st.switch_page("pages/gradcam.py")


def gallery_images(
    loaded: LoadedModel, images: np.ndarray, predictions: np.ndarray, with_maps: bool
) -> tuple[list[np.ndarray], str | None]:
    """Thumbnails, with the map of the predicted class over each when asked; and a note on the method used."""
    if not with_maps:
        return [as_display_image(image, THUMBNAIL_SIZE) for image in images], None
    method = explain.GRADCAM if conv_layer_names(loaded.model) else explain.SALIENCY
    note = None if method == explain.GRADCAM else "This model has no conv layer for Grad-CAM: the maps are saliency."
    maps = explain.explain_batch(loaded.model, images, method, predictions)
    return [
        explain.overlay(image, heatmap, size=THUMBNAIL_SIZE) for image, heatmap in zip(images, maps, strict=True)
    ], note


def draw_gallery(loaded: LoadedModel, data: FashionMNIST, report: EvaluationReport) -> None:
    st.subheader("Mistakes, pair by pair")
    pair = pair_ui(report)
    if pair is None:
        return
    indices = report.mistakes(true_class=pair[0], predicted_class=pair[1])
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    with_maps = left.toggle(
        "Grad-CAM", key=GALLERY_GRADCAM_KEY, help="Overlay the map of the predicted class: what made it wrong."
    )
    st.session_state.setdefault(GALLERY_SIZE_KEY, GALLERY_SIZES[0])
    limit = right.segmented_control("Show", GALLERY_SIZES, key=GALLERY_SIZE_KEY, required=True)
    shown = indices[: int(limit)]
    st.caption(
        f"{len(indices)} test images of class {CLASS_NAMES[pair[0]]} predicted as {CLASS_NAMES[pair[1]]}, most "
        f"confident mistakes first; showing {len(shown)}."
    )
    try:
        thumbnails, note = gallery_images(loaded, data.test_images[shown], report.predictions[shown], with_maps)
    except ExplainError as error:
        st.error(str(error), icon=":material/error:")
        return
    if note:
        st.caption(note)
    for row_start in range(0, len(shown), GALLERY_COLUMNS):
        row = zip(st.columns(GALLERY_COLUMNS), shown[row_start : row_start + GALLERY_COLUMNS], thumbnails[row_start:])
        for column, index, thumbnail in row:
            draw_thumbnail(column, int(index), thumbnail, report)


def draw_thumbnail(column, index: int, thumbnail: np.ndarray, report: EvaluationReport) -> None:
    """One mistake: the image, its index and confidence, and a button that opens it in the Grad-CAM viewer."""
    caption = f"#{index} · {report.confidences[index]:.0%}"
    column.image(thumbnail, caption=caption, width=THUMBNAIL_SIZE, output_format="PNG")
    if column.button("Grad-CAM", key=f"evaluation_open_{index}", icon=":material/visibility:"):
        open_in_gradcam(index)


@app_page
def evaluation_page() -> None:
    st.title("Evaluation")
    st.write("How the chosen model does on the 10000 test images it never trained on, and where it goes wrong.")
    loaded = current_model()
    if loaded is None:
        return
    data = dataset_or_message()
    if data is None:
        return
    report = test_evaluation(loaded)
    metrics_row(report, loaded.predictor.flip_average)
    st.subheader("Confusion matrix")
    normalize = st.toggle("Row-normalised (share of each true class)", key=NORMALIZE_KEY)
    st.plotly_chart(confusion_matrix_heatmap(report.confusion_matrix, normalize=normalize), key="evaluation_confusion")
    draw_tables(report)
    draw_photo_figures(loaded, report)
    draw_gallery(loaded, data, report)


evaluation_page()
