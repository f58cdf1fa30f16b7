"""Photos: the labelled-photo store: what it holds, how the model does on its val photos, import and export."""

from __future__ import annotations

import functools
import io
import os

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, ImageOps

from fashion_core.charts import confusion_matrix_heatmap
from fashion_core.data import CLASS_NAMES
from fashion_core.evaluation import EvaluationReport
from fashion_core.photo_import import PhotoImportError
from fashion_core.photostore import ImportResult, PhotoCounts, PhotoRecord, PhotoStore, PhotoStoreError, Split
from pages.common import (
    LoadedModel,
    app_page,
    as_display_image,
    code_span,
    current_model,
    escape_markdown,
    photo_evaluation,
    photo_store,
)

PAGE_SIZE = 12
GRID_COLUMNS = 4
THUMBNAIL_SIDE = 160
ZIP_UPLOAD_LIMIT_MB = 200  # a zip holds many photos; the server's own limit (10 MB) is for one photo
ALL_CLASSES = "All classes"
BOTH_SPLITS = "Both"
CLASS_KEY = "photos_class"
SPLIT_KEY = "photos_split"
PAGE_KEY = "photos_page"
DELETE_KEY = "photos_delete_pending"  # the id of the photo whose deletion awaits confirmation
MESSAGE_KEY = "photos_message"  # (kind, text) left by a callback or an import for the next run to show

FOLDER_IMPORT_ENV = "FASHION_STUDIO_FOLDER_IMPORT"  # 1: the page may import a folder on the server


def counts_table(counts: PhotoCounts) -> pd.DataFrame:
    """Photos per split (rows: Train, Val, Total) and class (columns, then All classes)."""
    table = pd.DataFrame([counts.train, counts.val], columns=list(CLASS_NAMES), index=["Train", "Val"])
    table.loc["Total"] = table.sum()
    table["All classes"] = table.sum(axis=1)
    return table.rename_axis("Split").reset_index()


def photos_text(count: int) -> str:
    return f"{count} photo" if count == 1 else f"{count} photos"


def show_message() -> None:
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message is not None:
        kind, text = message
        {"success": st.success, "info": st.info, "error": st.error}[kind](text)


# --------------------------------------------------------------------------------------------------
# Browsing


def filters_ui() -> tuple[int | None, Split | None]:
    """The class and split to show: `None` for all."""
    left, right = st.columns(2)
    chosen_class = left.selectbox("Class", [ALL_CLASSES, *CLASS_NAMES], key=CLASS_KEY)
    st.session_state.setdefault(SPLIT_KEY, BOTH_SPLITS)
    chosen_split = right.segmented_control(
        "Split", [BOTH_SPLITS, "train", "val"], key=SPLIT_KEY, required=True, help="Val photos are never trained on."
    )
    label = None if chosen_class == ALL_CLASSES else CLASS_NAMES.index(chosen_class)
    return label, None if chosen_split == BOTH_SPLITS else Split(chosen_split)


def page_ui(total: int) -> int:
    """The page of photos to show (from 0); a page that no longer exists becomes the last one."""
    num_pages = max(1, -(-total // PAGE_SIZE))
    if st.session_state.get(PAGE_KEY, 1) > num_pages:
        st.session_state[PAGE_KEY] = num_pages
    if num_pages == 1:
        return 0
    return int(st.number_input(f"Page (of {num_pages})", 1, num_pages, key=PAGE_KEY)) - 1


@st.cache_data(max_entries=256, show_spinner=False)
def thumbnail(photo: bytes) -> np.ndarray:
    """uint8 RGB of a stored photo, oriented and at most `THUMBNAIL_SIDE` pixels on its long side."""
    with Image.open(io.BytesIO(photo)) as image:
        image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        picture = ImageOps.exif_transpose(image).convert("RGB")
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return np.asarray(picture)


def ask_to_delete(photo_id: int) -> None:
    st.session_state[DELETE_KEY] = photo_id


def delete_photo(store: PhotoStore, photo_id: int) -> None:
    """`on_click` of the confirmation: runs before the page, so the grid and counts are already without it."""
    st.session_state.pop(DELETE_KEY, None)
    try:
        deleted = store.delete(photo_id)
        st.session_state[MESSAGE_KEY] = ("success", f"Deleted photo #{photo_id}.") if deleted else None
    except PhotoStoreError as error:
        st.session_state[MESSAGE_KEY] = ("error", escape_markdown(error))


def delete_confirmation(store: PhotoStore) -> None:
    """Asks before a photo is deleted for good."""
    photo_id = st.session_state.get(DELETE_KEY)
    record = None if photo_id is None else store.get(photo_id)
    if record is None:
        st.session_state.pop(DELETE_KEY, None)
        return
    with st.container(border=True):
        st.warning(
            f"Delete photo #{record.id} ({record.label_name}, {record.split}) from the store for good? "
            "Models already trained on it keep what they learnt.",
            icon=":material/delete:",
        )
        confirm, cancel = st.columns(2)
        confirm.button(
            f"Delete photo #{record.id}",
            key="photos_delete_confirm",
            type="primary",
            on_click=delete_photo,
            args=(store, record.id),
        )
        cancel.button("Cancel", key="photos_delete_cancel", on_click=st.session_state.pop, args=(DELETE_KEY, None))


def draw_photo(column, record: PhotoRecord, probabilities: np.ndarray | None, model_name: str) -> None:
    """One photo: the photo, its 28x28, its true class, and what the current model answers."""
    column.image(thumbnail(record.photo), caption=f"#{record.id} · {record.label_name} · {record.split}")
    column.image(as_display_image(record.image, 84), caption="What the model sees")
    if probabilities is not None:
        answer = int(np.argmax(probabilities))
        verdict = "right" if answer == record.label else "wrong"
        column.markdown(
            f"{':green' if verdict == 'right' else ':red'}[**{CLASS_NAMES[answer]}**] "
            f"({probabilities[answer]:.0%}, {verdict})",
            help=f"The answer of the current model, {model_name}.",
        )
    then = f" · {record.model_name} said {CLASS_NAMES[record.predicted]}" if record.predicted is not None else ""
    column.caption(escape_markdown(f"{record.source} · {record.created_at:%Y-%m-%d %H:%M} UTC{then}"))
    column.button("Delete", key=f"photos_delete_{record.id}", icon=":material/delete:", on_click=ask_to_delete,
                  args=(record.id,))  # fmt: skip


def browse_section(store: PhotoStore, counts: PhotoCounts, loaded: LoadedModel | None) -> None:
    label, split = filters_ui()
    if split is None:
        total = counts.total if label is None else counts.train[label] + counts.val[label]
    else:
        total = sum(counts.of(split)) if label is None else counts.of(split)[label]
    if total == 0:
        st.info("No photos here yet. Save photos from the Predict page, or import some on the Import and export tab.")
        return
    page = page_ui(total)
    records = store.list_photos(label, split, limit=PAGE_SIZE, offset=page * PAGE_SIZE, with_photos=True)
    first, last = page * PAGE_SIZE + 1, page * PAGE_SIZE + len(records)
    st.caption(f"{photos_text(total)}; showing {first} to {last}, oldest first.")
    delete_confirmation(store)
    probabilities = None
    if loaded is not None and records:
        probabilities = loaded.predictor.predict(np.stack([record.image for record in records]))
    for start in range(0, len(records), GRID_COLUMNS):
        for offset, column in enumerate(st.columns(GRID_COLUMNS)):
            if start + offset < len(records):
                row = None if probabilities is None else probabilities[start + offset]
                draw_photo(column, records[start + offset], row, "" if loaded is None else loaded.name)


# --------------------------------------------------------------------------------------------------
# The model on the val photos


def per_class_photo_table(report: EvaluationReport) -> pd.DataFrame:
    """Accuracy (recall, in percent) and number of val photos of each class that has any."""
    support = report.confusion_matrix.sum(axis=1)
    table = pd.DataFrame({"Class": list(CLASS_NAMES), "Photos": support, "Accuracy": 100 * report.recall})
    return table[table["Photos"] > 0].reset_index(drop=True)


def evaluation_section(store: PhotoStore, loaded: LoadedModel | None) -> None:
    if loaded is None:
        return
    report = photo_evaluation(loaded, store)
    if report is None:
        st.info("There are no val photos yet: a fifth of the photos saved or imported land there.")
        return
    st.write(f"The current model, {code_span(loaded.name)}, on the store's val photos (never trained on).")
    columns = st.columns(3)
    columns[0].metric(f"Accuracy on {len(report.labels)} val photos", f"{report.accuracy:.2%}")
    test_accuracy = loaded.entry.metadata.reported_test_accuracy
    columns[1].metric("Fashion-MNIST test accuracy", "unknown" if test_accuracy is None else f"{test_accuracy:.2%}")
    columns[2].metric("Mistakes", f"{int((report.predictions != report.labels).sum())}")
    left, right = st.columns([1, 2])
    left.dataframe(
        per_class_photo_table(report),
        hide_index=True,
        key="photos_per_class",
        column_config={"Accuracy": st.column_config.NumberColumn(format="%.1f%%")},
    )
    right.plotly_chart(confusion_matrix_heatmap(report.confusion_matrix), key="photos_confusion")


# --------------------------------------------------------------------------------------------------
# Import and export


def import_message(result: ImportResult) -> tuple[str, str]:
    skipped = f" {result.duplicates} were already in the store and were skipped." if result.duplicates else ""
    kind = "success" if result.added else "info"
    return kind, f"Imported {photos_text(result.added)}.{skipped}"


def import_problems_text(error: PhotoImportError, shown: int = 50) -> str:
    """The rows an import refused, as a Markdown list under what happened."""
    count = len(error.problems)
    lines = "\n".join(f"- {escape_markdown(problem)}" for problem in error.problems[:shown])
    more = f"\n- ... and {count - shown} more" if count > shown else ""
    rows = "1 row has a problem" if count == 1 else f"{count} rows have problems"
    return f"**Nothing was imported**: {rows}. Fix them and import again.\n\n{lines}{more}"


def run_import(importing) -> None:
    """Runs an import with a progress bar and leaves its outcome for the next run to show."""
    bar = st.progress(0.0, text="Reading the photos...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Reading the photos: {done} of {total}")

    try:
        st.session_state[MESSAGE_KEY] = import_message(importing(progress=progress))
    except PhotoImportError as error:
        st.session_state[MESSAGE_KEY] = ("error", import_problems_text(error))
    except PhotoStoreError as error:
        st.session_state[MESSAGE_KEY] = ("error", escape_markdown(error))
    st.rerun()


def folder_import_allowed() -> bool:
    """Whether the page may read a folder on the server: only where `$FASHION_STUDIO_FOLDER_IMPORT` is 1."""
    return os.environ.get(FOLDER_IMPORT_ENV, "").strip() == "1"


def import_section(store: PhotoStore) -> None:
    st.subheader("Import")
    st.caption(
        "A folder or zip with a manifest: `MANIFEST.tsv` (tab-separated) or `photos.csv`, one row per photo with "
        "its `relative_path` and `class_index` (0 to 9) or `class_name`; optional `split` (train or val) and "
        "`source`. All rows are imported or none: a bad row is reported with its line. Photos already stored are "
        "skipped."
    )
    keep_split = st.checkbox(
        "Keep the manifest's split where it has one",
        value=True,
        key="photos_keep_split",
        help="Otherwise each photo's split comes from its bytes, as for photos saved on the Predict page.",
    )
    from_folder, from_zip = st.columns(2)
    if folder_import_allowed():
        folder = from_folder.text_input(
            "Folder on the server", key="photos_import_folder", placeholder="../shared/realphotos-cc0"
        )
        if from_folder.button("Import folder", key="photos_import_folder_button", disabled=not folder.strip()):
            run_import(functools.partial(store.import_folder, folder.strip(), keep_split=keep_split))
    else:
        from_folder.caption(
            f"Importing a folder on the server is off, so that visitors cannot read the server's files. "
            f"`make run` turns it on (`{FOLDER_IMPORT_ENV}=1`); the command line always can: "
            "`python -m fashion_core photos import FOLDER`."
        )
    archive = from_zip.file_uploader(
        "Zip of photos and a manifest", type=["zip"], key="photos_import_zip", max_upload_size=ZIP_UPLOAD_LIMIT_MB
    )
    if from_zip.button("Import zip", key="photos_import_zip_button", disabled=archive is None):
        run_import(functools.partial(store.import_zip, archive.getvalue(), keep_split=keep_split))


def export_bytes(store: PhotoStore) -> bytes:
    buffer = io.BytesIO()
    store.export_zip(buffer)
    return buffer.getvalue()


def export_section(store: PhotoStore, counts: PhotoCounts) -> None:
    st.subheader("Export")
    st.caption("A zip of every photo with `photos.csv` (classes, splits, the model answers at the time) and the 28x28 "
               "images the model saw; it imports back here or into another store.")  # fmt: skip
    st.download_button(
        f"Download all {photos_text(counts.total)} as a zip",
        data=functools.partial(export_bytes, store),
        file_name="photos.zip",
        mime="application/zip",
        key="photos_export",
        on_click="ignore",
        icon=":material/download:",
        disabled=counts.total == 0,
    )


@app_page
def photos_page() -> None:
    st.title("Photos")
    st.write(
        "Real photos people labelled: saved from the Predict page (only when they say so) or imported. "
        "Train photos can be mixed into training; val photos, a fifth chosen by each photo's bytes, are never "
        "trained on and tell how a model does on real photos."
    )
    store = photo_store()
    if store is None:
        return
    where = f"Stored in {code_span(store.url)}."
    if store.url.startswith("sqlite"):
        where += (
            " A file on this server: a deployment that restarts on a fresh disk (Community Cloud) loses it. To keep "
            "the photos, set `url` under `[connections.photos]` in `.streamlit/secrets.toml` to a PostgreSQL database."
        )
    st.caption(where)
    show_message()
    try:
        counts = store.counts()
        summary = f"{photos_text(counts.total)}: {sum(counts.train)} train, {sum(counts.val)} val"
        with st.expander(summary, expanded=True):
            st.dataframe(counts_table(counts), hide_index=True, key="photos_counts")
        loaded = current_model()
        browse, evaluate, transfer = st.tabs(["Browse", "Model on val photos", "Import and export"])
        with browse:
            browse_section(store, counts, loaded)
        with evaluate:
            evaluation_section(store, loaded)
        with transfer:
            import_section(store)
            export_section(store, counts)
    except PhotoStoreError as error:
        st.error(escape_markdown(error), icon=":material/database_off:")


photos_page()
