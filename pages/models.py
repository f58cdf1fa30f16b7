"""Models: the registry as a table, runs compared, and a model downloaded, deleted or put to use."""

from __future__ import annotations

import streamlit as st

from fashion_core.artifacts import (
    EXPORT_FORMATS,
    EXPORT_LABELS,
    download_file_name,
    export_download_bytes,
    onnx_unavailable_reason,
)
from fashion_core.charts import runs_history_chart
from fashion_core.photostore import PhotoStore, PhotoStoreError, Split
from fashion_core.registry import USER_MODELS_ENV, ModelEntry, RegistryError
from fashion_core.runs import HISTORY_METRICS, models_table, run_histories
from pages.common import (
    app_page,
    escape_markdown,
    known_photo_accuracy,
    load_model,
    photo_evaluation,
    photo_store,
    registry,
    use_for_predictions,
)

COMPARE_KEY = "models_compare"
COMPARE_METRIC_KEY = "models_compare_metric"
SELECTED_KEY = "models_selected"
MESSAGE_KEY = "models_message"  # (kind, text) left by the delete callback for the next run to show
METRIC_LABELS = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "accuracy": "training accuracy",
    "loss": "training loss",
}


def list_entries() -> list[ModelEntry]:
    """Every model folder, readable or not; only the shipped one when the user folder cannot be read."""
    try:
        return registry().list_models()
    except RegistryError as error:
        st.error(str(error), icon=":material/folder_off:")
        return [registry().default_entry()]


def photo_accuracy_column(entries: list[ModelEntry], store: PhotoStore | None) -> list[float | None]:
    """Each readable model's accuracy on the store's val photos where it was already computed, else `None`."""
    readable = [entry for entry in entries if entry.readable]
    if store is None:
        return [None] * len(readable)
    fingerprint = store.fingerprint(Split.VAL)
    return [known_photo_accuracy(entry, store, fingerprint) for entry in readable]


def score_on_photos(entries: list[ModelEntry], store: PhotoStore) -> None:
    """Evaluates every readable model on the store's val photos (each result is kept for the photo set)."""
    readable = [entry for entry in entries if entry.readable]
    bar = st.progress(0.0, text="Scoring the models on the val photos...")
    for done, entry in enumerate(readable, start=1):
        try:
            photo_evaluation(load_model(entry.name), store)
        except (RegistryError, PhotoStoreError) as error:
            st.warning(f"`{entry.name}` could not be scored: {escape_markdown(error)}")
        bar.progress(done / len(readable), text=f"Scored {done} of {len(readable)} models")
    bar.empty()


def registry_table(entries: list[ModelEntry]) -> None:
    store = photo_store()
    table = models_table(entries)
    try:
        if store is not None and st.button(
            "Score every model on the stored val photos",
            key="models_score_photos",
            icon=":material/photo_library:",
            disabled=not sum(store.counts().val),
            help="Accuracy on the photo store's val photos (see the Photos page); kept until the photos change.",
        ):
            score_on_photos(entries, store)
        photo_accuracies = photo_accuracy_column(entries, store)
    except PhotoStoreError as error:
        st.error(escape_markdown(error), icon=":material/database_off:")
        photo_accuracies = [None] * len(table)
    table.insert(table.columns.get_loc("Test accuracy") + 1, "Photo val accuracy", photo_accuracies)
    st.dataframe(
        table.astype({"Photo val accuracy": "Float64"}),
        hide_index=True,
        key="models_table",
        column_config={
            "Test accuracy": st.column_config.NumberColumn(format="percent"),
            "Photo val accuracy": st.column_config.NumberColumn(format="percent"),
            "Size (MB)": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    for entry in entries:
        if not entry.readable:
            st.warning(f"Model `{entry.name}` cannot be used: {entry.error}", icon=":material/broken_image:")


def keep_valid_choices(key: str, options: list[str], default) -> None:
    """Sets a widget's state before it is drawn: the default the first time, and never a vanished option."""
    if key not in st.session_state:
        st.session_state[key] = default
    elif isinstance(st.session_state[key], list):
        st.session_state[key] = [value for value in st.session_state[key] if value in options]
    elif st.session_state[key] not in options:
        st.session_state[key] = default


def comparison_section(entries: list[ModelEntry]) -> None:
    """Per-epoch curves of several runs overlaid."""
    st.subheader("Compare runs")
    keep_valid_choices(COMPARE_METRIC_KEY, list(HISTORY_METRICS), HISTORY_METRICS[0])
    metric = st.segmented_control(
        "Curve", HISTORY_METRICS, key=COMPARE_METRIC_KEY, format_func=METRIC_LABELS.get, required=True
    )
    histories = run_histories(entries, metric)
    if not histories:
        st.info("No saved model has a per-epoch history yet. Train one on the Train page and save it.")
        return
    names = list(histories)
    keep_valid_choices(COMPARE_KEY, names, names[:4])
    chosen = st.multiselect("Runs", names, key=COMPARE_KEY, placeholder="Choose runs to compare")
    if chosen:
        st.plotly_chart(runs_history_chart({name: histories[name] for name in chosen}, metric), key="models_history")


def delete_model(name: str) -> None:
    """`on_click` of Delete: runs before the page, so the table and the sidebar are already without it."""
    try:
        registry().delete(name)
        st.session_state[MESSAGE_KEY] = ("success", f"Deleted `{name}`.")
    except RegistryError as error:
        st.session_state[MESSAGE_KEY] = ("error", str(error))


def actions_section(entries: list[ModelEntry]) -> None:
    """Download, use or delete one model."""
    st.subheader("Download, use or delete")
    readable = {entry.name: entry for entry in entries if entry.readable}
    if not readable:
        st.info("There is no readable model.")
        return
    keep_valid_choices(SELECTED_KEY, list(readable), next(iter(readable)))
    name = st.selectbox("Model", list(readable), key=SELECTED_KEY)
    entry = readable[name]
    download_column, use_column, delete_column = st.columns(3)
    download_column.download_button(
        "Download .keras",
        data=entry.model_file.read_bytes,
        file_name=f"{name}.keras",
        mime="application/octet-stream",
        key="models_download",
        on_click="ignore",
        icon=":material/download:",
        help="Loads anywhere with keras.saving.load_model(path): 0..255 grey 28x28 images in, 10 probabilities out.",
    )
    exports_section(entry)
    if use_column.button("Use for predictions", key="models_use", icon=":material/arrow_forward:"):
        use_for_predictions(name)
    with delete_column:
        if entry.shipped:
            st.caption("The shipped model cannot be deleted.")
            return
        confirmed = st.checkbox(f"Yes, delete `{name}` for good", key=f"models_delete_confirm_{name}")
        st.button(
            "Delete",
            key="models_delete",
            icon=":material/delete:",
            disabled=not confirmed,
            on_click=delete_model,
            args=(name,),
        )


def exports_section(entry: ModelEntry) -> None:
    """One download per export format; each export is read or made when its button is clicked."""
    onnx_reason = onnx_unavailable_reason()
    columns = st.columns(len(EXPORT_FORMATS))
    for column, export_format in zip(columns, EXPORT_FORMATS):
        unavailable = export_format == "onnx" and onnx_reason is not None
        column.download_button(
            f"Export {EXPORT_LABELS[export_format]}",
            data=lambda export_format=export_format: export_download_bytes(entry.path, export_format),
            file_name=download_file_name(entry.name, export_format),
            mime="application/zip" if export_format == "saved_model" else "application/octet-stream",
            key=f"models_export_{export_format}",
            on_click="ignore",
            icon=":material/deployed_code:",
            disabled=unavailable,
            help=onnx_reason if unavailable else EXPORT_HELP[export_format],
        )


EXPORT_HELP = {
    "litert": "For phones, browsers and small servers (LiteRT, formerly TensorFlow Lite); checked against Keras "
    "on the 10,000 test images when the model was saved.",
    "saved_model": "For TensorFlow Serving and TensorFlow.js converters: the zipped SavedModel folder "
    "(signature `serving_default`, input `image`).",
    "onnx": "For ONNX Runtime and other ONNX tools (input `image`, float32 (N, 28, 28, 1), 0..255).",
}


@app_page
def models_page() -> None:
    st.title("Models")
    st.write(
        "Every model the app can use: the shipped `default` and the ones trained on the Train page. "
        f"User models live in `user_models/` (not under version control), or in `${USER_MODELS_ENV}`."
    )
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message is not None:
        (st.success if message[0] == "success" else st.error)(message[1])
    model_entries = list_entries()
    registry_table(model_entries)
    comparison_section(model_entries)
    actions_section(model_entries)


models_page()
