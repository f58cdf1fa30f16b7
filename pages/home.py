"""Home: what the app does, and the card of the model in use."""

import streamlit as st

from fashion_core.data import CLASS_NAMES
from fashion_core.metadata import ARCHITECTURE_DESCRIPTIONS
from fashion_core.registry import ModelEntry
from pages.common import app_page, code_span, current_model_entry, test_accuracy_metric

PAGE_GUIDE = [
    ("Predict", "Upload a clothing photo, take one with the camera, or draw one, and get the class and why."),
    ("Grad-CAM", "See which pixels made the model choose a class, for test images or your own."),
    ("Dataset", "Browse the 70000 images the model learns from, its mistakes and its embedding map."),
    ("Evaluation", "Confusion matrix, precision, recall and F1, and the model's mistakes pair by pair."),
    ("Train", "Retrain with hyperparameters on sliders and watch live curves; stop any time."),
    ("Models", "Compare saved runs, download or delete them, and pick the one the app uses."),
]


def per_class_accuracy_bars(per_class: dict[str, float]) -> None:
    """Each class's test accuracy as a bar, lowest first, so the hard classes stand out.

    Native progress bars rather than a Plotly chart: Home is the page every visitor opens first, and
    loading Plotly's 4.7 MB script kept a fresh visitor's browser busy for about a second after the
    card appeared, so a click on Predict then waited for it.
    """
    st.caption("Test accuracy per class, lowest first")
    for name, accuracy in sorted(per_class.items(), key=lambda item: item[1]):
        st.progress(min(max(float(accuracy), 0.0), 1.0), text=f"{name} · {accuracy:.1%}")


def model_card(entry: ModelEntry) -> None:
    """The chosen model's facts, all from its `metadata.json`: architecture, size, accuracy, per-class
    accuracy, training run."""
    metadata = entry.metadata
    architecture = metadata.architecture
    st.subheader(f"Model in use: `{entry.name}`")
    st.caption(ARCHITECTURE_DESCRIPTIONS.get(architecture, architecture))
    columns = st.columns(4)
    test_accuracy_metric(columns[0], metadata)
    parameters = metadata.parameter_count
    columns[1].metric("Parameters", "unknown" if parameters is None else f"{parameters:,}")
    columns[2].metric("Epochs", metadata.epochs_run or "?")
    seconds = metadata.training_seconds
    columns[3].metric("Training time", f"{seconds / 60:.1f} min" if seconds else "unknown")
    left, right = st.columns([3, 2])
    per_class = metadata.per_class_accuracy
    if per_class:
        with left.container(key="home_per_class", gap="xsmall"):
            per_class_accuracy_bars(per_class)
    facts = {
        "Architecture": architecture,
        "Trained at": metadata.created_at or "unknown",
        "Training images": metadata.num_train_images or "?",
        "Seed": "?" if metadata.seed is None else metadata.seed,
        "Command": metadata.command or "trained in the app",
        "TensorFlow / Keras": f"{metadata.tensorflow_version or '?'} / {metadata.keras_version or '?'}",
    }
    right.markdown("\n".join(f"- **{label}:** {code_span(value)}" for label, value in facts.items()))


@app_page
def home_page() -> None:
    st.title("Fashion-MNIST Studio")
    st.write(
        "Classify clothing images into the ten Fashion-MNIST classes "
        f"({', '.join(CLASS_NAMES)}), and see why the model decided."
    )
    for column, (page, description) in zip(st.columns(3) * 2, PAGE_GUIDE):
        column.markdown(f"**{page}**: {description}")

    entry = current_model_entry()
    if entry is not None:
        model_card(entry)


home_page()
