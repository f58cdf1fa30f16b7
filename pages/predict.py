"""Predict: classify a photo (uploaded, from the camera or one of the examples) or a drawing, and see why.

What each interaction runs: the tabs report which one is open (`st.tabs(on_change="rerun")`) and only
the open tab classifies and draws (the closed Upload and Camera tabs keep their widget, so their files
stay, and nothing else); each open tab is a fragment, so an upload, a camera photo or a stroke on the
canvas reruns that tab alone, not the title, the tips or the sidebar; every upload's conversion,
probabilities, explanation and thumbnail are cached per file content and model, so a new upload
computes only itself; picking another file's details reruns only that fragment, not the table. Until
a photo is uploaded, the Upload tab offers example photos, which go through the same cached steps.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from fashion_core import explain
from fashion_core.data import CLASS_NAMES
from fashion_core.metadata import SelectiveAnswer
from fashion_core.photo_quality import PersonWearing, find_person_wearing, prediction_warnings
from fashion_core.preprocess import (
    PHOTO_TIPS,
    ImageError,
    PhotoConversion,
    box_drawing,
    drawing_to_fashion_mnist,
    drawn_box,
    photo_steps,
)
from pages.common import (
    LAST_INPUT_KEY,
    LoadedModel,
    activity_fragment,
    app_page,
    as_display_image,
    current_model,
    escape_markdown,
    image_bytes,
    loaded_or_waiting,
    photo_store,
)

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
DISPLAY_SIZE = 196  # on-screen side of the 28x28 images, in pixels (7 per model pixel)
THUMBNAIL_SIZE = 64
CANVAS_SIZE = 280
DRAWING_TOOLS = {"Brush": "freedraw", "Filled polygon": "polygon", "Line": "line"}
INPUT_TAB_KEY = "predict_input_tab"  # the open tab's label
DETAIL_FILE_KEY = "predict_detail_file"  # which upload's details are shown (its index)
UPLOADED_NAMES_KEY = "predict_uploaded_names"  # the uploads of the last run, to see when they change
BOX_COLOUR, BOX_FILL = "#7c3aed", "rgba(124, 58, 237, 0.15)"
# {tab: digest of the input it showed last}: only a new input replaces the one handed to the Grad-CAM page.
SEEN_DIGESTS_KEY = "predict_seen_digests"
# {photo digest: (kind, text)}: what saving each photo to the photo store gave, shown while the photo is.
SAVED_PHOTOS_KEY = "predict_saved_photos"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
# Example photo file -> the class it shows, in class order (assets/examples/README.md says where they come from).
EXAMPLE_FILES = {"tshirt_top.jpg": 0, "trouser.jpg": 1, "dress.jpg": 3, "coat.jpg": 4, "shirt.jpg": 6}
EXAMPLE_KEY = "predict_example"  # the class name of the example photo picked


@dataclass(frozen=True)
class Classified:
    """One input's result: the model's image and probabilities, with where it came from."""

    name: str
    image: np.ndarray  # uint8 (28, 28)
    probabilities: np.ndarray  # float32 (10,)
    conversion: PhotoConversion | None  # None for drawings
    digest: str
    photo: bytes | None = field(default=None, repr=False)  # the file as uploaded; None for drawings

    @property
    def top_class(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    @property
    def warnings(self) -> list[str]:
        whole_photo = self.conversion is not None and self.conversion.whole_photo
        return prediction_warnings(self.probabilities, self.image, whole_photo=whole_photo)


@st.cache_data(max_entries=64, show_spinner=False)
def converted_photo(data: bytes) -> PhotoConversion:
    """`photo_steps` cached per file content (errors are not cached, and are cheap to find again)."""
    return photo_steps(data)


@st.cache_data(max_entries=64, show_spinner=False)
def converted_photo_in_box(data: bytes, box: tuple[int, int, int, int]) -> PhotoConversion:
    """`photo_steps` with a garment box, cached per file content and box."""
    return photo_steps(data, box)


@st.cache_data(max_entries=64, show_spinner=False)
def person_in_photo(digest: str, _photo: np.ndarray) -> PersonWearing | None:
    """`find_person_wearing` on a converted photo, cached per file content."""
    return find_person_wearing(_photo)


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_cache_key(loaded: LoadedModel) -> str:
    """Names the model's weights in cache keys: its name and its file's modification time."""
    return f"{loaded.name}@{loaded.entry.model_file.stat().st_mtime_ns}"


@st.cache_data(max_entries=256, show_spinner=False)
def input_probabilities(digest: str, model_key: str, _predictor, _image: np.ndarray) -> np.ndarray:
    """The `(10,)` probabilities of the input with content `digest`, computed once per model."""
    return _predictor.predict_one(_image)


def classify_photo(name: str, data: bytes, loaded: LoadedModel, savable: bool = True) -> Classified:
    """Converts and classifies one photo file, once per content and model; raises `ImageError` for a file
    that is not a readable photo.

    Args:
        name: what to call the photo (its file name).
        data: the file's bytes.
        loaded: the model that answers.
        savable: whether the result keeps the file, which offers it for saving to the photo store.
            Defaults to `True`; the example photos are not offered.
    """
    conversion = converted_photo(data)
    digest = digest_of(data)
    probabilities = input_probabilities(digest, model_cache_key(loaded), loaded.predictor, conversion.image)
    return Classified(name, conversion.image, probabilities, conversion, digest, photo=data if savable else None)


def classify_uploads(files: list, loaded: LoadedModel) -> tuple[list[Classified], list[tuple[str, str]]]:
    """Converts and classifies uploads, each once per content and model (a new upload leaves the others
    alone); returns the results and `(file name, error)` pairs."""
    results, errors = [], []
    for file in files:
        try:
            results.append(classify_photo(file.name, file.getvalue(), loaded))
        except ImageError as error:
            errors.append((file.name, str(error)))
    return results, errors


def unsure_message(probabilities: np.ndarray, selective: SelectiveAnswer | None) -> str | None:
    """What to say instead of an answer below the model's "unsure" threshold (with the top two); else `None`."""
    if selective is None or float(np.max(probabilities)) >= selective.threshold:
        return None
    first, second = np.argsort(probabilities)[::-1][:2]
    return (
        f"Unsure: {CLASS_NAMES[first]} ({probabilities[first]:.0%}) or {CLASS_NAMES[second]} "
        f"({probabilities[second]:.0%}). Below {selective.threshold:.0%} confidence this model does not answer: on "
        f"{selective.fitted_on}, the answers at or above it were right {selective.accuracy or 0:.0%} of the time."
    )


@st.cache_data(max_entries=64, show_spinner=False)
def input_explanation(
    digest: str, model_key: str, class_index: int, _loaded: LoadedModel, _image: np.ndarray
) -> np.ndarray:
    """`explain.default_explanation` of the input with content `digest`, computed once per model and class.

    Forward passes through the app's predictor only (LiteRT when the model has a checked export).
    """
    return explain.default_explanation(_loaded.predictor, _image, class_index)


def remember_input(result: Classified, source: str) -> None:
    """Hands an input to the Grad-CAM viewer page when it is new for its tab, so the newest input wins."""
    seen = st.session_state.setdefault(SEEN_DIGESTS_KEY, {})
    if seen.get(source) == result.digest:
        return
    seen[source] = result.digest
    conversion = result.conversion
    st.session_state[LAST_INPUT_KEY] = {
        "name": result.name,
        "image": result.image,
        "photo": None if conversion is None else conversion.original,
        "crop_box": None if conversion is None else conversion.crop_box,
        "content_box": None if conversion is None else conversion.content_box,
    }


# ---------------------------------------------------------------------------------------------------
# The garment box


def with_garment_box(result: Classified, loaded: LoadedModel, key: str) -> Classified:
    """Offers the garment box over the photo; returns the result again with the box when one is drawn.

    When the photo looks like a person wearing the garment, says so, and the canvas starts with a box
    around the garment alone.
    """
    conversion = result.conversion
    person = person_in_photo(result.digest, conversion.original)
    if person is not None:
        st.info(
            "This looks like a person wearing the garment: their head"
            + (", arms" if person.arms else "")
            + " and legs can be taken for part of it. Turn on **Adjust the garment box**: it starts from a box "
            "around the garment alone.",
            icon=":material/person:",
        )
    help_text = "Draw a rectangle around the garment; everything outside it counts as background."
    if not st.toggle("Adjust the garment box", key=f"{key}_box_toggle", help=help_text):
        return result
    st.caption("Draw a rectangle around the garment alone (leave out a head, arms or legs). The newest one counts.")
    height, width = conversion.original.shape[:2]
    canvas = st_canvas(
        fill_color=BOX_FILL,
        stroke_width=2,
        stroke_color=BOX_COLOUR,
        background_image=Image.fromarray(conversion.original),
        height=height,
        width=width,
        drawing_mode="rect",
        initial_drawing=None if person is None else box_drawing(person.suggested_box, BOX_COLOUR, BOX_FILL),
        key=f"{key}_box_canvas_{result.digest[:12]}",
    )
    box = drawn_box(canvas.json_data) or (None if person is None else person.suggested_box)
    if box is None:
        return result
    try:
        boxed = converted_photo_in_box(result.photo, box)
    except ImageError as error:
        st.error(str(error), icon=":material/crop:")
        return result
    probabilities = loaded.predictor.predict_one(boxed.image)
    digest = digest_of(result.photo + repr(box).encode())  # a new input for the Grad-CAM page
    return Classified(result.name, boxed.image, probabilities, boxed, digest, photo=result.photo)


# ---------------------------------------------------------------------------------------------------
# Showing results


def show_result(result: Classified, loaded: LoadedModel, key: str) -> None:
    """The model's view, its answer, its doubts, its probabilities, why it decided, and "Right?".

    `key` names the input (`"upload"`, `"example"`, `"camera"` or `"drawing"`) and keys its widgets.
    """
    remember_input(result, source=key)
    # Computed before anything is drawn, so that the answer reaches the browser in one piece rather
    # than drawn up to the explanation and finished once it is computed.
    heatmap = input_explanation(result.digest, model_cache_key(loaded), result.top_class, loaded, result.image)
    unsure = unsure_message(result.probabilities, loaded.metadata.selective)
    for warning in [unsure] if unsure else result.warnings:
        st.warning(warning, icon=":material/help:")
    help_text = confidence_help(loaded.predictor.flip_average)
    st.html(answer_html(result, unsure, help_text) + explanation_html(result, heatmap))
    if result.photo is not None:
        photo_feedback(result, loaded, key)
    if result.conversion is not None:
        show_conversion_steps(result.conversion, key)


def show_conversion_steps(conversion: PhotoConversion, key: str) -> None:
    """Each preprocessing step's image, drawn only while its expander is open (five images an answer saved)."""
    steps = st.expander("How the photo became a 28x28 image", key=f"{key}_steps", on_change="rerun")
    if not steps.open:
        return
    with steps:
        for column, (name, step) in zip(st.columns(len(conversion.steps)), conversion.steps):
            picture = as_display_image(step, DISPLAY_SIZE) if step.shape[:2] == (28, 28) else step
            column.image(picture, caption=name)


# The answer and its explanation are one HTML element, their images inline as data URIs: the browser
# renders every element again on each answer, and Streamlit's own (columns, two metrics, three images,
# markdown, a bar per class) were most of its work per answer. Eight sessions adding three photos each
# at once on the 2-core machine (72 answers): Chromium's renderers used 17-18 CPU-s against 22-24, and
# the p95 wait fell from 3.1-3.4 s to 2.2 s. Not Plotly either: the answer is drawn without the
# browser first loading Plotly's 4.7 MB script.
ROW_STYLE = "display:flex;flex-wrap:wrap;gap:1rem 1.5rem;align-items:flex-start"
CAPTION_STYLE = "font-size:0.875rem;opacity:0.6;margin-top:0.25rem"
LABEL_STYLE = "font-size:0.875rem"
VALUE_STYLE = "margin:0;font-size:2.25rem;line-height:1.3"
PROBABILITY_ROW_STYLE = "display:grid;grid-template-columns:7.5em 1fr 3.5em;gap:8px;align-items:center"
PHOTO_MAX_HEIGHT = 320  # pixels of the map drawn over the photo


def image_data_uri(pixels: np.ndarray, image_format: str = "PNG") -> str:
    """uint8 grey or RGB pixels as a data URI, to show inside an `st.html` element (no request of its own).

    PNG keeps the model's 28x28 pixels exact; JPEG keeps photos and smooth maps small.
    """
    encoded = base64.b64encode(image_bytes(pixels, image_format)).decode("ascii")
    return f"data:image/{image_format.lower()};base64,{encoded}"


def figure_html(source: str, caption: str, alt: str, image_style: str) -> str:
    """An image with its caption below, as `st.image` draws one."""
    return (
        f'<figure style="margin:0;flex:0 1 auto"><img src="{source}" alt="{html.escape(alt)}" '
        f'style="display:block;{image_style}"><figcaption style="{CAPTION_STYLE}">{html.escape(caption)}'
        "</figcaption></figure>"
    )


def value_html(label: str, value: str, help_text: str = "") -> str:
    """A label over a large value, as `st.metric` draws one; `help_text` is the label's tooltip."""
    title = f' title="{html.escape(help_text)}"' if help_text else ""
    return (
        f'<div{title}><dt style="margin:0;{LABEL_STYLE}">{html.escape(label)}</dt>'
        f'<dd style="{VALUE_STYLE}">{html.escape(value)}</dd></div>'
    )


def confidence_help(flip_average: bool) -> str:
    if flip_average:
        return "The top probability, averaged over the image and its mirror image (this model was trained with flips)."
    return "The top probability."


def answer_html(result: Classified, unsure: str | None, help_text: str) -> str:
    """The 28x28 image the model saw; beside it the class (or "Unsure"), the confidence and the ten
    probabilities."""
    seen = figure_html(
        image_data_uri(result.image),
        "What the model sees (28x28)",
        alt="The 28x28 grey image the model classified",
        image_style=f"width:{DISPLAY_SIZE}px;image-rendering:pixelated",
    )
    values = value_html("Predicted class", "Unsure" if unsure else CLASS_NAMES[result.top_class]) + value_html(
        "Confidence", f"{result.confidence:.1%}", help_text
    )
    answer = (
        f'<dl style="display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin:0 0 0.75rem;padding:0">{values}</dl>'
        f"{probabilities_html(result.probabilities)}"
    )
    return f'<div style="{ROW_STYLE}">{seen}<div style="flex:1 1 18rem">{answer}</div></div>'


def explanation_html(result: Classified, heatmap: np.ndarray) -> str:
    """Why the model answered so: its occlusion map over the 28x28 image and, for a photo, over the photo."""
    name = CLASS_NAMES[result.top_class]
    why = (
        f"<p><strong>Why {name}?</strong> Occlusion: red marks the pixels whose blacking-out lowered the score "
        "most.</p>"
    )
    figures = [
        figure_html(
            image_data_uri(explain.overlay(result.image, heatmap, size=DISPLAY_SIZE), "JPEG"),
            "On the model's image",
            alt=f"The occlusion map for {name} over the 28x28 image",
            image_style=f"width:{DISPLAY_SIZE}px",
        )
    ]
    conversion = result.conversion
    if conversion is not None:
        on_photo = explain.overlay_on_photo(conversion.original, heatmap, conversion.crop_box, conversion.content_box)
        figures.append(
            figure_html(
                image_data_uri(on_photo, "JPEG"),
                "On the photo (the model saw only the boxed crop)",
                alt=f"The occlusion map for {name} over the photo",
                image_style=f"max-width:100%;max-height:{PHOTO_MAX_HEIGHT}px",
            )
        )
    return f'{why}<div style="{ROW_STYLE}">{"".join(figures)}</div>'


def probabilities_html(probabilities: np.ndarray) -> str:
    """Each class's name, a bar filled to its probability and the percentage, as `meter`s for screen readers."""
    top = int(np.argmax(probabilities))
    rows = []
    for index, (name, probability) in enumerate(zip(CLASS_NAMES, probabilities)):
        label = f"<strong>{name}</strong>" if index == top else name
        percentage = f"{probability:.1%}"
        rows.append(
            f'<div role="meter" aria-label="{name}" aria-valuemin="0" aria-valuemax="100" '
            f'aria-valuenow="{percentage[:-1]}" style="{PROBABILITY_ROW_STYLE}">'
            f'<span>{label}</span>{bar_html(float(probability))}<span style="text-align:right">{percentage}</span>'
            "</div>"
        )
    return f'<div style="font-size:0.875rem"><div style="opacity:0.6">Probabilities</div>{"".join(rows)}</div>'


def true_class_ui(result: Classified, key: str) -> int | None:
    """The class the user says the photo shows: the answer confirmed, or another picked; `None` until they say."""
    widget_key = f"{key}_right_{result.digest[:16]}"
    verdict = st.radio(
        "Right?", ["Yes", "No"], index=None, horizontal=True, key=widget_key, help="Is the predicted class right?"
    )
    if verdict is None:
        return None
    if verdict == "Yes":
        return result.top_class
    return st.selectbox(
        "The right class",
        [index for index in range(len(CLASS_NAMES)) if index != result.top_class],
        index=None,
        format_func=CLASS_NAMES.__getitem__,
        placeholder="Pick the class the photo shows",
        key=f"{key}_true_class_{result.digest[:16]}",
    )


def save_photo(result: Classified, loaded: LoadedModel, label: int, key: str) -> tuple[str, str]:
    """Stores the photo with the class the user gave; returns the `(kind, text)` to show."""
    # Imported here: the photo store's SQLAlchemy is needed only once someone saves (0.45 s at import).
    from fashion_core.photostore import DuplicatePhotoError, PhotoStoreError, Source

    store = photo_store()
    if store is None:
        return "error", "The photo was not saved: the photo store cannot be opened (see above)."
    try:
        record = store.add(
            result.photo,
            label,
            source=Source.CAMERA if key == "camera" else Source.UPLOAD,
            image=result.image,
            probabilities=result.probabilities,
            model_name=loaded.name,
            origin=result.name,
        )
    except DuplicatePhotoError as error:
        existing = error.existing
        return "info", f"This photo is already in the photo store, as photo #{existing.id} ({existing.label_name})."
    except PhotoStoreError as error:
        return "error", f"The photo was not saved. {escape_markdown(error)}"
    return "success", f"Saved as photo #{record.id}: {record.label_name}, in the {record.split} split."


def photo_feedback(result: Classified, loaded: LoadedModel, key: str) -> None:
    """Asks "Right?" under an answer: the user confirms it or picks the right class, and may save the photo."""
    with st.container(border=True, key=f"{key}_feedback"):
        label = true_class_ui(result, key)
        saved = st.session_state.setdefault(SAVED_PHOTOS_KEY, {}).get(result.digest)
        if saved is None:
            st.caption(
                "**Save to the photo store** keeps this photo, the 28x28 image the model saw, the class you gave and "
                "the model's answer in the app's photo store, for as long as the store is kept; everyone using this "
                "app can see it on the Photos page, and it may be used to train and test models. Nothing is kept "
                "unless you save."
            )
            if st.button("Save to the photo store", key=f"{key}_save", disabled=label is None, icon=":material/save:"):
                saved = save_photo(result, loaded, label, key)
                if saved[0] != "error":  # a failed save can be tried again
                    st.session_state[SAVED_PHOTOS_KEY][result.digest] = saved
        if saved is not None:
            kind, text = saved
            {"success": st.success, "info": st.info, "error": st.error}[kind](text)


@st.cache_data(max_entries=256, show_spinner=False)
def thumbnail_data_uri(digest: str, _photo: np.ndarray) -> str:
    """A small PNG of the photo with content `digest`, as a data URI (made once per photo)."""
    image = Image.fromarray(_photo)
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    return image_data_uri(np.asarray(image))


@dataclass(frozen=True)
class TableRow:
    """One file in the table of several uploads: its answer, or the error it gave (`confidence` is then `None`)."""

    photo: str | None  # a thumbnail as a data URI
    file: str
    predicted: str
    confidence: float | None
    note: str


TABLE_COLUMNS = ("Photo", "File", "Class", "Confidence", "Note")


def results_table(results: list[Classified], errors: list[tuple[str, str]]) -> list[TableRow]:
    """One row per file: thumbnail, class, confidence and any warning or error."""
    rows = [
        TableRow(
            photo=thumbnail_data_uri(result.digest, result.conversion.original),
            file=result.name,
            predicted=CLASS_NAMES[result.top_class],
            confidence=result.confidence,
            note=" ".join(result.warnings),
        )
        for result in results
    ]
    return rows + [TableRow(photo=None, file=name, predicted="", confidence=None, note=error) for name, error in errors]


def results_csv(results: list[Classified], errors: list[tuple[str, str]]) -> str:
    """The table for download: file, class, confidence, the ten probabilities, and any error.

    Written with the standard library's `csv`: the Predict page never imports pandas (0.6 s on a
    first visitor's answer).
    """
    header = ["file", "predicted_class", "confidence", *(f"p_{name}" for name in CLASS_NAMES), "error"]
    rows = [
        [result.name, CLASS_NAMES[result.top_class], round(result.confidence, 6)]
        + [round(float(probability), 6) for probability in result.probabilities]
        + [""]
        for result in results
    ]
    rows += [[name] + [""] * (len(header) - 2) + [error] for name, error in errors]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    return text.getvalue()


# The table of several uploads is plain HTML in one element: Streamlit's interactive dataframe (a canvas
# grid with image cells) cost the browser about 0.35 s of CPU per answer, more than the server's whole
# answer, and a few rows need no sorting or scrolling.
TABLE_STYLE = "width:100%;border-collapse:collapse;font-size:0.875rem"
CELL_STYLE = "padding:4px 8px;border-bottom:1px solid rgba(128,128,128,0.25);text-align:left;vertical-align:middle"
BAR_STYLE = "height:6px;border-radius:3px;background:rgba(128,128,128,0.25);min-width:60px"
FILL_STYLE = "height:6px;border-radius:3px"
THUMBNAIL_STYLE = "max-height:48px;max-width:48px"


def confidence_cell(confidence: float | None) -> str:
    """The confidence as a percentage over a bar filled to it; empty for a file that gave no answer."""
    if confidence is None:
        return ""
    return f"{confidence:.1%}{bar_html(confidence)}"


def bar_html(fraction: float) -> str:
    """A thin bar filled to `fraction` (0..1) in the theme's colour, the colour of Streamlit's own bars."""
    colour = st.get_option("theme.primaryColor") or "#7c3aed"
    fill = f'<div style="{FILL_STYLE};background:{colour};width:{fraction:.1%}"></div>'
    return f'<div style="{BAR_STYLE}">{fill}</div>'


def results_html(table: list[TableRow]) -> str:
    """`results_table` as an HTML table; every text from a file (its name, its error) is escaped."""
    header = "".join(f'<th style="{CELL_STYLE}">{name}</th>' for name in TABLE_COLUMNS)
    rows = []
    for row in table:
        photo = f'<img src="{row.photo}" alt="" style="{THUMBNAIL_STYLE}">' if row.photo else ""
        escaped = [html.escape(row.file), html.escape(row.predicted)]
        cells = [photo, *escaped, confidence_cell(row.confidence), html.escape(row.note)]
        rows.append("<tr>" + "".join(f'<td style="{CELL_STYLE}">{cell}</td>' for cell in cells) + "</tr>")
    return f'<table style="{TABLE_STYLE}"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def show_table(results: list[Classified], errors: list[tuple[str, str]]) -> None:
    st.html(results_html(results_table(results, errors)))
    st.download_button(
        "Download as CSV",
        results_csv(results, errors),
        file_name="predictions.csv",
        mime="text/csv",
        icon=":material/download:",
        key="predict_download_csv",
        on_click="ignore",
    )


# ---------------------------------------------------------------------------------------------------
# The three inputs


def upload_widget() -> list:
    return st.file_uploader(
        "Photos of clothing items",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key="predict_upload",
        help="One item per photo. Several files give a table you can download.",
    )


@activity_fragment
def upload_tab(loaded: LoadedModel) -> None:
    files = upload_widget()
    if not files:
        st.info("Upload one or more photos to classify them.", icon=":material/upload:")
        offer_examples(loaded)
        return
    results, errors = classify_uploads(files, loaded)
    for name, error in errors:
        st.error(f"**{escape_markdown(name)}**: {escape_markdown(error)}", icon=":material/broken_image:")
    if len(files) > 1 and results:
        show_table(results, errors)
    if results:
        show_newest_when_files_change(results)
        upload_details(results, loaded)


@st.cache_data(show_spinner=False)
def example_photos() -> dict[str, bytes]:
    """{class name: JPEG bytes} of the example photos in `assets/examples`, in the dataset's class order;
    a missing file is left out."""
    paths = {CLASS_NAMES[index]: EXAMPLES_DIR / name for name, index in EXAMPLE_FILES.items()}
    return {label: path.read_bytes() for label, path in paths.items() if path.is_file()}


def offer_examples(loaded: LoadedModel) -> None:
    """Until a photo is uploaded: a pick of example photos, and the answer for the one picked.

    An example is converted, classified and explained as an upload is (and cached the same way), but has
    no garment box and is not offered for saving to the photo store.
    """
    examples = example_photos()
    if not examples:
        return
    picked = st.pills(
        "No photo at hand? Try one of these",
        list(examples),
        key=EXAMPLE_KEY,
        help="Home photos (CC0) of five classes that the shipped model never trained on. Upload your own to "
        "replace them.",
    )
    if picked is None:
        return
    st.caption(f"An example photo of a **{picked}**.")
    result = classify_photo(f"example: {picked}", examples[picked], loaded, savable=False)
    show_result(result, loaded, key="example")


def show_newest_when_files_change(results: list[Classified]) -> None:
    """After photos are added or removed, the details show the last photo: the one just added."""
    names = [result.name for result in results]
    if st.session_state.get(UPLOADED_NAMES_KEY) != names:
        st.session_state[UPLOADED_NAMES_KEY] = names
        st.session_state[DETAIL_FILE_KEY] = len(names) - 1


@activity_fragment
def upload_details(results: list[Classified], loaded: LoadedModel) -> None:
    """One upload's result; choosing another file reruns only this fragment (the table stays)."""
    chosen = results[-1]
    if len(results) > 1:
        names = [result.name for result in results]
        index = st.selectbox("Details of", range(len(names)), format_func=names.__getitem__, key=DETAIL_FILE_KEY)
        chosen = results[index]
    show_result(with_garment_box(chosen, loaded, key="upload"), loaded, key="upload")


def camera_widget():
    return st.camera_input("Take a photo of one clothing item", key="predict_camera")


@activity_fragment
def camera_tab(loaded: LoadedModel) -> None:
    photo = camera_widget()
    if photo is None:
        return
    try:
        result = classify_photo("camera photo", photo.getvalue(), loaded)
    except ImageError as error:
        st.error(str(error), icon=":material/broken_image:")
        return
    show_result(with_garment_box(result, loaded, key="camera"), loaded, key="camera")


@activity_fragment
def draw_tab(loaded: LoadedModel) -> None:
    st.caption("Draw a garment in white and fill it in, as big as the canvas: dataset images are filled silhouettes.")
    tool_column, width_column = st.columns(2)
    tool = tool_column.radio("Tool", list(DRAWING_TOOLS), horizontal=True, key="predict_draw_tool")
    brush_width = width_column.slider("Brush width", 4, 60, 24, key="predict_brush_width")
    st.space("small")  # room for the canvas's toolbar, which sits just above it
    canvas = st_canvas(
        fill_color="#FFFFFF",
        stroke_width=brush_width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=CANVAS_SIZE,
        width=CANVAS_SIZE,
        drawing_mode=DRAWING_TOOLS[tool],
        return_image_data=True,
        key="predict_canvas",
    )
    pixels = canvas.image_data
    if pixels is None or not (canvas.json_data or {}).get("objects"):
        st.info("Draw on the black canvas; the toolbar above it has undo and clear.", icon=":material/draw:")
        return
    try:
        image = drawing_to_fashion_mnist(pixels)
    except ImageError as error:
        st.info(str(error), icon=":material/draw:")
        return
    digest = digest_of(image.tobytes())
    probabilities = input_probabilities(digest, model_cache_key(loaded), loaded.predictor, image)
    show_result(Classified("drawing", image, probabilities, None, digest), loaded, key="drawing")


def tips() -> None:
    with st.expander("What makes a photo work well", icon=":material/lightbulb:"):
        st.markdown("\n".join(f"- {tip}" for tip in PHOTO_TIPS))
        st.caption(
            "The model learnt from 28x28 grey catalog images of single items on white. The app finds the item, "
            "crops to it and turns it into such an image; the steps are shown under each result."
        )


@app_page
def predict_page() -> None:
    st.title("Predict")
    st.write(
        "Upload a photo of a clothing item, take one with the camera, or draw one. The model answers with one of "
        f"the ten Fashion-MNIST classes ({', '.join(CLASS_NAMES)}) and shows what it looked at."
    )
    tips()
    if not loaded_or_waiting("model"):
        return
    loaded = current_model()
    if loaded is not None:
        input_tabs(loaded)


def input_tabs(loaded: LoadedModel) -> None:
    """The three inputs; only the open tab's code runs (switching tabs reruns the page).

    A closed Upload or Camera tab still draws its widget, which keeps its files; the canvas is drawn
    only while Draw is open (its value, 280x280x4 pixels, is decoded on every run that draws it).
    """
    upload, camera, draw = st.tabs(["Upload", "Camera", "Draw"], key=INPUT_TAB_KEY, on_change="rerun")
    with upload:
        if upload.open:
            upload_tab(loaded)
        else:
            upload_widget()
    with camera:
        if camera.open:
            camera_tab(loaded)
        else:
            camera_widget()
    if draw.open:
        with draw:
            draw_tab(loaded)


predict_page()
