"""Evaluation: how the chosen model does on the 10000 test images, and where it fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from fashion_core import calibration, explain
from fashion_core.charts import confusion_matrix_heatmap, coverage_chart, reliability_diagram
from fashion_core.data import CLASS_NAMES, FashionMNIST
from fashion_core.evaluation import EvaluationReport
from fashion_core.explain import ExplainError
from fashion_core.photostore import PhotoStoreError
from pages.common import (
    GRADCAM_REQUEST_KEY,
    LoadedModel,
    app_page,
    as_display_image,
    current_model,
    dataset_or_message,
    escape_markdown,
    loaded_or_waiting,
    photo_evaluation,
    photo_store,
    reference_photo_evaluation,
    test_evaluation,
)

SECTIONS = ["Confusion matrix", "Mistakes", "Confidence", "Real photos"]
SECTION_KEY = "evaluation_section"  # the open tab's label
NORMALIZE_KEY = "evaluation_normalize"
PAIR_KEY = "evaluation_pair"
GALLERY_MAPS_KEY = "evaluation_maps"
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
    """The model on the photo store's val photos, beside its test figures; without any, on the reference
    photos' val split where this machine has them."""
    store = photo_store()
    if store is None:
        return
    try:
        photo_report = photo_evaluation(loaded, store)
    except PhotoStoreError as error:
        st.error(escape_markdown(error), icon=":material/database_off:")
        return
    if photo_report is not None:
        help_text = "The photo store's val photos (see the Photos page): real photos no model trains on."
        show_photo_report(test_report, photo_report, help_text)
        return
    st.info(
        "The photo store has no val photos yet. Save photos from the Predict page, or import some on the Photos "
        "page, to see how the model does on real photos."
    )
    reference = reference_photo_evaluation(loaded)
    if reference is not None:
        st.caption(
            f"Meanwhile, the model on the {len(reference.labels)} val photos of realphotos-cc0, labelled home photos "
            "of five classes. Models trained with photos were chosen on these, so the figure flatters them a little."
        )
        show_photo_report(test_report, reference, "The val split of ../shared/realphotos-cc0.")


def show_photo_report(test_report: EvaluationReport, photo_report: EvaluationReport, help_text: str) -> None:
    gap = photo_report.accuracy - test_report.accuracy
    st.metric(
        f"Photo val accuracy ({len(photo_report.labels)} photos)",
        f"{photo_report.accuracy:.2%}",
        delta=f"{100 * gap:+.1f} points against the test images",
        help=help_text,
    )
    percent = st.column_config.NumberColumn(format="%.1f%%")
    st.dataframe(
        photo_comparison_table(test_report, photo_report),
        hide_index=True,
        key="evaluation_photos_table",
        column_config={"Test accuracy": percent, "Photo val accuracy": percent},
    )


# --------------------------------------------------------------------------------------------------
# Confidence: calibration and "unsure"


def labelled_photo_report(loaded: LoadedModel) -> tuple[EvaluationReport | None, str]:
    """The model on labelled real photos: the photo store's val photos, else the reference photos' val split."""
    store = photo_store()
    try:
        report = None if store is None else photo_evaluation(loaded, store)
    except PhotoStoreError:
        report = None  # said above, in "On real photos"
    if report is not None:
        return report, f"the photo store's {len(report.labels)} val photos"
    report = reference_photo_evaluation(loaded)
    if report is None:
        return None, ""
    return report, f"the {len(report.labels)} val photos of realphotos-cc0"


def draw_confidence(loaded: LoadedModel, test_report: EvaluationReport) -> None:
    """Reliability diagram and ECE on test images and photos; accuracy against coverage with the model's threshold."""
    st.caption(
        "How far to trust the confidence: how often answers given with a confidence are right, and what the "
        '"unsure" threshold leaves unanswered.'
    )
    metadata = loaded.metadata
    photo_report, photos_name = labelled_photo_report(loaded)
    test_ece = calibration.expected_calibration_error(test_report.probabilities, test_report.labels)
    bins = {
        f"Test images (ECE {test_ece:.1%})": calibration.reliability_bins(test_report.probabilities, test_report.labels)
    }
    columns = st.columns(4)
    columns[0].metric("Calibration error, test", f"{test_ece:.1%}", help="Expected calibration error, 15 bins: the "
                      "gap between confidence and accuracy, averaged over the answers.")  # fmt: skip
    if photo_report is not None:
        photo_ece = calibration.expected_calibration_error(photo_report.probabilities, photo_report.labels)
        bins[f"Real photos (ECE {photo_ece:.1%})"] = calibration.reliability_bins(
            photo_report.probabilities, photo_report.labels
        )
        columns[1].metric("Calibration error, photos", f"{photo_ece:.1%}", help=f"On {photos_name}.")
    temperature = f"{metadata.temperature:.3f}" if metadata.calibration else "none"
    columns[2].metric("Temperature", temperature, help="Fitted on the validation split and folded into the last "
                      "layer: the logits are divided by it.")  # fmt: skip
    selective = metadata.selective
    columns[3].metric('"Unsure" below', f"{selective.threshold:.0%}" if selective else "not set",
                      help=None if selective is None else f"Chosen on {selective.fitted_on} so that the answers "
                      f"given are right {selective.target_accuracy:.0%} of the time.")  # fmt: skip
    st.plotly_chart(reliability_diagram(bins), key="evaluation_reliability")
    if photo_report is None:
        st.info("No labelled photos to draw accuracy against coverage: add val photos on the Photos page.")
        return
    curve = calibration.coverage_curve(photo_report.probabilities, photo_report.labels)
    st.plotly_chart(
        coverage_chart(
            curve.coverage,
            curve.accuracy,
            threshold=selective.threshold if selective else None,
            thresholds=curve.thresholds,
            target_accuracy=selective.target_accuracy if selective else None,
            title=f"Accuracy against coverage on {photos_name}",
        ),
        key="evaluation_coverage",
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
) -> list[np.ndarray]:
    """Thumbnails, with the map of the predicted class over each when asked.

    The map is the Predict page's explanation (occlusion): forward passes through the serving
    predictor, so the page needs no TensorFlow; the gradient methods are a click away in the viewer.
    """
    if not with_maps:
        return [as_display_image(image, THUMBNAIL_SIZE) for image in images]
    maps = explain.explain_batch(loaded.predictor, images, explain.DEFAULT_METHOD, predictions)
    return [explain.overlay(image, heatmap, size=THUMBNAIL_SIZE) for image, heatmap in zip(images, maps, strict=True)]


def draw_gallery(loaded: LoadedModel, data: FashionMNIST, report: EvaluationReport) -> None:
    pair = pair_ui(report)
    if pair is None:
        return
    indices = report.mistakes(true_class=pair[0], predicted_class=pair[1])
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    with_maps = left.toggle(
        "Why",
        key=GALLERY_MAPS_KEY,
        help="Overlay the map of what made the model choose the wrong class (occlusion, as on the Predict page). "
        "Each image's Grad-CAM button opens it in the viewer, with every method.",
    )
    st.session_state.setdefault(GALLERY_SIZE_KEY, GALLERY_SIZES[0])
    limit = right.segmented_control("Show", GALLERY_SIZES, key=GALLERY_SIZE_KEY, required=True)
    shown = indices[: int(limit)]
    st.caption(
        f"{len(indices)} test images of class {CLASS_NAMES[pair[0]]} predicted as {CLASS_NAMES[pair[1]]}, most "
        f"confident mistakes first; showing {len(shown)}."
    )
    try:
        thumbnails = gallery_images(loaded, data.test_images[shown], report.predictions[shown], with_maps)
    except ExplainError as error:
        st.error(str(error), icon=":material/error:")
        return
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
    if not (loaded_or_waiting("model") and loaded_or_waiting("dataset")):
        return
    loaded = current_model()
    if loaded is None:
        return
    data = dataset_or_message()
    if data is None:
        return
    report = test_evaluation(loaded)
    metrics_row(report, loaded.predictor.flip_average)
    draw_sections(loaded, data, report)


def draw_sections(loaded: LoadedModel, data: FashionMNIST, report: EvaluationReport) -> None:
    """The page's sections as tabs; only the open one runs and draws (switching tabs reruns the page).

    Each section holds Plotly charts, tables or a gallery of images with buttons: drawn all at once,
    they made the browser work about a second each time the page was opened.
    """
    confusion, mistakes, confidence, photos = st.tabs(SECTIONS, key=SECTION_KEY, on_change="rerun")
    if confusion.open:
        with confusion:
            draw_confusion(report)
    if mistakes.open:
        with mistakes:
            draw_gallery(loaded, data, report)
    if confidence.open:
        with confidence:
            draw_confidence(loaded, report)
    if photos.open:
        with photos:
            draw_photo_figures(loaded, report)


def draw_confusion(report: EvaluationReport) -> None:
    normalize = st.toggle("Row-normalised (share of each true class)", key=NORMALIZE_KEY)
    st.plotly_chart(confusion_matrix_heatmap(report.confusion_matrix, normalize=normalize), key="evaluation_confusion")
    draw_tables(report)


evaluation_page()
