"""Train: hyperparameters on sliders, a background run with live curves, Stop, and Save to the registry.

The run is a `TrainingJob` held by a process-wide `JobManager` (`st.cache_resource`): it keeps going
while people navigate or reload, everyone who opens the page sees it, and one runs at a time. The
live panel is two fragments that only read the job's snapshot: the progress line and Stop every
LIVE_PROGRESS_EVERY_S, the curves every LIVE_CURVES_EVERY_S.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from fashion_core.charts import (
    MAX_CURVE_POINTS,
    confusion_matrix_heatmap,
    learning_rate_plan_chart,
    per_class_accuracy_chart,
    training_curves_chart,
)
from fashion_core.data import CLASS_NAMES, FashionMNIST
from fashion_core.metadata import ModelMetadata
from fashion_core.models import ARCHITECTURE_DESCRIPTIONS, ARCHITECTURES
from fashion_core.photo_data import APP_PHOTO_STORE
from fashion_core.registry import RegistryError
from fashion_core.training import PRESETS, TrainingConfig
from fashion_core.training.config import FIELD_BOUNDS, OPTIMIZERS, SCHEDULES
from fashion_core.training.job import (
    JobAlreadyRunning,
    JobManager,
    JobNotSavable,
    JobPhase,
    JobSnapshot,
    JobStatus,
    TrainingJob,
)
from fashion_core.training.schedule import learning_rate_plan
from fashion_core.training.throughput import RunTimeEstimate, ThroughputLog, estimate_run_seconds
from pages.common import (
    app_page,
    dataset_or_message,
    loaded_or_waiting,
    photo_store,
    readable_model_names,
    registry,
    test_accuracy_metric,
    use_for_predictions,
)

PRESET_KEY = "train_preset"
FORM_VALUES_KEY = "train_form_values"  # the form's last values: widget state is dropped when the page is left
SAVE_NAME_KEY = "train_save_name"
SAVE_NAME_JOB_KEY = "train_save_name_job"  # the job whose default name the name box holds
LIVE_CURVE_POINTS = 300  # per training curve while a run is live; a finished run's use MAX_CURVE_POINTS
# How often the live panel redraws. A browser watching the page shares the CPU with TensorFlow on a
# small machine, and Plotly's redraw is most of its work (about 0.17 s of the browser's main thread per
# chart in headless Chromium). Measured on the 2-core machine, a Quick run watched in Chromium: the
# browser took about 0.3 of a core with the progress every second and the curves every 5 s; with every
# 2 s and every 10 s the run's first epoch went 12% faster (medians of three alternating runs).
LIVE_PROGRESS_EVERY_S = 2.0
LIVE_CURVES_EVERY_S = 10.0
FIELD_KEY_PREFIX = "train_"  # + a TrainingConfig field name: that field's widget


def with_preset_values(options: list, name: str) -> list:
    """A select slider's options plus every preset's value of the field, so a preset runs exactly as defined."""
    return sorted(set(options) | {getattr(preset, name) for preset in PRESETS.values()})


# Powers of two from 8 to 1024, log-spaced rates from 1e-5 to 1, and decays from 0 and 1e-5 to 0.1.
BATCH_SIZES = with_preset_values([2**power for power in range(3, 11)], "batch_size")
LEARNING_RATES = with_preset_values(
    [round(m * 10.0**e, 6) for e in range(-5, 0) for m in (1, 2, 3, 5)] + [1.0], "learning_rate"
)
WEIGHT_DECAYS = with_preset_values(
    [0.0] + [round(m * 10.0**e, 6) for e in range(-5, -1) for m in (1, 2, 5)] + [0.1], "weight_decay"
)
SUBSET_STEP = 500
SCHEDULE_LABELS = {"none": "constant", "cosine": "cosine decay", "plateau": "reduce on plateau"}
OPTIMIZER_LABELS = {"adam": "Adam", "sgd": "SGD with Nesterov momentum", "rmsprop": "RMSprop"}


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    """The one job manager of this server process, shared by every session."""
    return JobManager(throughput_log=ThroughputLog())


def field_key(name: str) -> str:
    return FIELD_KEY_PREFIX + name


def nearest(options: list[float], value: float, log_scale: bool = False) -> float:
    """The option closest to `value` (in log space if asked), so any preset value fits a select slider."""
    distance = (lambda option: abs(math.log(option / value))) if log_scale else (lambda option: abs(option - value))
    return min(options, key=distance)


def form_values(config: TrainingConfig) -> dict:
    """A config's values as the form's widgets hold them (snapped to the sliders' options)."""
    values = config.to_dict()
    values["batch_size"] = nearest(BATCH_SIZES, config.batch_size, log_scale=True)
    values["learning_rate"] = nearest(LEARNING_RATES, config.learning_rate, log_scale=True)
    values["weight_decay"] = nearest(WEIGHT_DECAYS, config.weight_decay)
    values["subset_size"] = max(SUBSET_STEP, round(config.subset_size / SUBSET_STEP) * SUBSET_STEP)
    return values


def fill_form(values: dict) -> None:
    for name, value in values.items():
        st.session_state[field_key(name)] = value


def apply_preset() -> None:
    """`on_change` of the preset box: fills every field with the preset's values."""
    fill_form(form_values(PRESETS[st.session_state[PRESET_KEY]]))


def restore_form() -> None:
    """Puts back the form as it was when the page was last shown (or the Quick preset the first time)."""
    saved = st.session_state.get(FORM_VALUES_KEY) or {"preset": "Quick", **form_values(PRESETS["Quick"])}
    if PRESET_KEY not in st.session_state:
        st.session_state[PRESET_KEY] = saved["preset"]
    for name, value in saved.items():
        if name != "preset" and field_key(name) not in st.session_state:
            st.session_state[field_key(name)] = value


def model_widgets() -> None:
    st.markdown("**Model**")
    architecture = st.selectbox("Architecture", list(ARCHITECTURES), key=field_key("architecture"))
    st.caption(ARCHITECTURE_DESCRIPTIONS[architecture])
    st.slider("Dropout", 0.0, FIELD_BOUNDS["dropout"].high, step=0.05, key=field_key("dropout"))
    st.checkbox("Augment (shifts, zoom, rotation, flips, erasing)", key=field_key("augment"))
    augment = st.session_state[field_key("augment")]
    st.slider("Augmentation strength", 0.0, 1.0, step=0.05, key=field_key("augment_strength"), disabled=not augment)
    st.slider(
        "Last epochs without augmentation",
        0,
        20,
        key=field_key("clean_epochs"),
        disabled=not augment,
        help="Counted in the epochs. They start from the best augmented epoch and fit the network to the dataset's "
        "images as they are, at a tenth of the learning rate: augmentation makes the training images harder than "
        "the test images, and these epochs close that gap.",
    )
    st.slider(
        "Mix of clean and augmented weights",
        0.0,
        1.0,
        step=0.1,
        key=field_key("clean_mix"),
        disabled=not augment or not st.session_state[field_key("clean_epochs")],
        help="Where the final weights lie between the best augmented epoch (0) and the best clean epoch (1). The "
        "clean weights fit the dataset's images best; the augmented ones cope better with shifted, squeezed or "
        "partly hidden garments, as in photos. Halfway (the Best preset) keeps much of both.",
    )


def optimisation_widgets() -> None:
    st.markdown("**Optimisation**")
    st.slider("Epochs", 1, 100, key=field_key("epochs"))
    st.select_slider("Batch size", BATCH_SIZES, key=field_key("batch_size"))
    st.select_slider(
        "Learning rate (log scale)", LEARNING_RATES, key=field_key("learning_rate"), format_func=lambda v: f"{v:g}"
    )
    st.selectbox("Optimizer", OPTIMIZERS, key=field_key("optimizer"), format_func=OPTIMIZER_LABELS.get)
    st.selectbox(
        "Learning-rate schedule",
        SCHEDULES,
        key=field_key("schedule"),
        format_func=SCHEDULE_LABELS.get,
        help="Cosine decay starts with a warm-up of one epoch (a tenth of the run at most). Reduce on plateau "
        "cuts the rate to 30% after two epochs without a better validation loss.",
    )
    st.select_slider(
        "Weight decay",
        WEIGHT_DECAYS,
        key=field_key("weight_decay"),
        format_func=lambda v: f"{v:g}",
        help="Shrinks every weight by learning rate x weight decay each step (5e-4 is usual with SGD; the presets "
        "use Adam without it).",
    )
    st.slider("Label smoothing", 0.0, FIELD_BOUNDS["label_smoothing"].high, step=0.01, key=field_key("label_smoothing"))


def data_widgets() -> None:
    validation = FIELD_BOUNDS["validation_fraction"]
    st.markdown("**Data**")
    st.slider("Training images (stratified subset)", SUBSET_STEP, 60000, step=SUBSET_STEP, key=field_key("subset_size"))
    st.slider(
        "Validation fraction",
        validation.low,
        validation.high,
        step=0.01,
        key=field_key("validation_fraction"),
        help="Held out from the training images to choose the best epoch; the test set is never used to choose.",
    )
    st.slider("Early-stopping patience (0: off)", 0, 20, key=field_key("patience"))
    st.number_input("Seed", 0, int(FIELD_BOUNDS["seed"].high), step=1, key=field_key("seed"))


def photo_widgets() -> None:
    st.markdown("**Real photos and fine-tuning**")
    photos_column, start_column = st.columns(2)
    with photos_column:
        st.text_input(
            "Real photos",
            key=field_key("photos"),
            placeholder="store, or a photo folder with MANIFEST.tsv",
            help="`store` trains on the photo store's `train` photos; a folder needs a MANIFEST.tsv like "
            "realphotos-cc0's. The `val` photos are scored after every epoch (the dashed curve); the best epoch is "
            "still chosen on the Fashion-MNIST validation images.",
        )
        no_photos = not st.session_state[field_key("photos")].strip()
        st.slider(
            "Share of each batch from photos",
            0.0,
            FIELD_BOUNDS["photo_share"].high,
            step=0.05,
            key=field_key("photo_share"),
            disabled=no_photos,
            help="The rest of each batch are Fashion-MNIST images. The photos are drawn over and over; a modest share "
            "(0.1-0.2) keeps the model good on the dataset.",
        )
        st.slider(
            "Photo augmentation",
            0.0,
            1.0,
            step=0.1,
            key=field_key("photo_augment"),
            disabled=no_photos,
            help="Mirroring, zoom, shifts and brightness on the photos, so a few hundred are not learnt by heart.",
        )
    with start_column:
        names = ["", *readable_model_names(warn=False)]
        current = st.session_state[field_key("init_model")]
        st.selectbox(
            "Start from",
            names if current in names else [*names, current],
            key=field_key("init_model"),
            format_func=lambda name: name or "new weights (train from scratch)",
            help="Fine-tune a model instead of training from scratch: its architecture is used, with a small "
            "learning rate and a few epochs.",
        )
        st.slider(
            "Mix with the starting weights",
            0.0,
            1.0,
            step=0.1,
            key=field_key("init_mix"),
            disabled=not st.session_state[field_key("init_model")],
            help="Where the final weights lie between the starting model (0) and the fine-tuned one (1). Halfway keeps "
            "most of what each knows (robust fine-tuning).",
        )


def hyperparameter_widgets() -> dict:
    """Draws the preset box and one widget per `TrainingConfig` field; returns the values by field name."""
    st.selectbox(
        "Preset",
        list(PRESETS),
        key=PRESET_KEY,
        on_change=apply_preset,
        help="Quick: about a minute. Standard: the CNN for a few epochs. Best: the shipped model's recipe. "
        "A preset fills the fields; change any of them afterwards.",
    )
    for column, widgets in zip(st.columns(3), (model_widgets, optimisation_widgets, data_widgets)):
        with column:
            widgets()
    photo_widgets()
    values = {name: st.session_state[field_key(name)] for name in form_values(TrainingConfig())}
    st.session_state[FORM_VALUES_KEY] = {"preset": st.session_state[PRESET_KEY], **values}
    return values


def format_duration(seconds: float | None) -> str:
    """`45 s`, `3 min 20 s` or `1 h 05 min`."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def estimate_caption(config: TrainingConfig, estimate: RunTimeEstimate) -> str:
    source = (
        f"learnt from {estimate.num_runs} finished {config.architecture} run{'s' * (estimate.num_runs > 1)} here"
        if estimate.num_runs
        else "measured on a 2-core server"
    )
    return (
        f"{config.subset_size:,} images x {config.epochs} epoch{'s' * (config.epochs > 1)} at about "
        f"{estimate.images_per_second:,.0f} images/s ({source}), plus the test-set evaluation."
    )


def start_panel(manager: JobManager, values: dict, data: FashionMNIST | None) -> None:
    """The learning rate the run will follow, the run time estimate and Start; a second start while a
    job runs says so instead."""
    try:
        config = TrainingConfig(**values)
    except ValueError as error:
        st.error(str(error), icon=":material/error:")
        return
    estimate = estimate_run_seconds(config, manager.throughput_log)
    plan_column, estimate_column = st.columns([3, 2], vertical_alignment="center")
    plan_column.plotly_chart(learning_rate_plan_chart(learning_rate_plan(config)), key="train_learning_rate_plan")
    estimate_column.metric("Estimated run time", format_duration(estimate.seconds))
    estimate_column.caption(estimate_caption(config, estimate))
    clicked = estimate_column.button(
        "Start training", key="train_start", type="primary", icon=":material/play_arrow:", disabled=data is None
    )
    if clicked:
        app_store = None
        if config.photos == APP_PHOTO_STORE:  # the store the Photos page shows (secrets.toml's, where set)
            app_store = photo_store()
            if app_store is None:  # photo_store() has said why
                return
        try:
            manager.start(config, data=data, app_photo_store=app_store)
        except JobAlreadyRunning as error:
            st.warning(str(error), icon=":material/hourglass_top:")


def progress_text(snapshot: JobSnapshot) -> str:
    if snapshot.status == JobStatus.STOPPING:
        return "Stopping after the current batch, then keeping the best epoch and evaluating on the test set..."
    if snapshot.phase == JobPhase.PREPARING:
        return "Preparing the data and building the model..."
    if snapshot.phase == JobPhase.EVALUATING:
        return "Training ended: evaluating the best epoch's weights on the 10000 test images..."
    training = snapshot.training
    return (
        f"Epoch {training.epoch} of {training.epochs}, batch {training.batch} of {training.steps_per_epoch} · "
        f"{training.images_per_second:,.0f} images/s · about {format_duration(training.eta_seconds)} left"
    )


def last_validation_accuracy(snapshot: JobSnapshot) -> str:
    values = [log["val_accuracy"] for log in snapshot.training.epoch_logs if "val_accuracy" in log]
    return f"{values[-1]:.2%}" if values else "not yet"


def job_header(snapshot: JobSnapshot) -> None:
    config = snapshot.config
    st.subheader(f"Run `{snapshot.job_id}`: {config.architecture}, {config.epochs} epochs")
    st.caption(f"Started {snapshot.started_at} (UTC) · {', '.join(f'{k}={v}' for k, v in config.to_dict().items())}")


def training_curves(snapshot: JobSnapshot, key_prefix: str, max_points: int = MAX_CURVE_POINTS) -> None:
    config = snapshot.config
    augmentation_ends_at = config.augmented_epochs if config.final_clean_epochs else None
    for column, metric in zip(st.columns(2), ("loss", "accuracy")):
        chart = training_curves_chart(
            snapshot.training, metric, max_points=max_points, augmentation_ends_at=augmentation_ends_at
        )
        column.plotly_chart(chart, key=f"{key_prefix}_{metric}")


@st.fragment(run_every=LIVE_PROGRESS_EVERY_S)
def live_job_panel(job: TrainingJob) -> None:
    """Progress, Stop and the figures of a running job, redrawn every LIVE_PROGRESS_EVERY_S from its snapshot."""
    snapshot = job.snapshot()
    if snapshot.is_finished:
        st.rerun()  # the whole page, to show the results and Save
    job_header(snapshot)
    status_column, elapsed_column, rate_column, validation_column, stop_column = st.columns(5)
    status_column.metric("Status", snapshot.status)
    elapsed_column.metric("Elapsed", format_duration(snapshot.elapsed_seconds))
    learning_rate = snapshot.training.learning_rate
    rate_column.metric("Learning rate", f"{learning_rate:.2e}" if np.isfinite(learning_rate) else "-")
    validation_column.metric("Validation accuracy", last_validation_accuracy(snapshot))
    stop_column.button(
        "Stop",
        key="train_stop",
        on_click=job.stop,
        icon=":material/stop_circle:",
        disabled=snapshot.status == JobStatus.STOPPING,
        help="Ends the run after the current batch; the best epoch's weights are kept and can be saved.",
    )
    st.progress(snapshot.training.fraction_done, text=progress_text(snapshot))


@st.fragment(run_every=LIVE_CURVES_EVERY_S)
def live_curves(job: TrainingJob) -> None:
    """The running job's loss and accuracy curves so far (at most LIVE_CURVE_POINTS points each).

    Drawn from the moment the run starts, empty until its first batches, so that their first draw
    happens while the server prepares the data and traces the training step. The browser has loaded
    Plotly's code (about a CPU-second, once per tab) before Start, for the learning-rate plan: on a
    small server that a browser shares, that load would otherwise take CPU from the run's first epoch.
    """
    training_curves(job.snapshot(), "train_live", max_points=LIVE_CURVE_POINTS)


def finished_job_panel(job: TrainingJob) -> None:
    """A finished job: why it failed, or its test results and Save."""
    snapshot = job.snapshot()
    job_header(snapshot)
    training = snapshot.training
    if snapshot.status == JobStatus.FAILED:
        st.error(f"**The run failed after {training.steps_done} steps.** {snapshot.error}", icon=":material/error:")
        if training.steps_done:
            training_curves(snapshot, "train_failed")
        return
    result = job.result
    best = f"epoch {result.best_epoch}" if result.best_epoch else "the last weights (no epoch was validated)"
    if snapshot.status == JobStatus.STOPPED:
        where = f"epoch {training.epoch}, batch {training.batch} of {training.steps_per_epoch}"
        st.info(f"Stopped on request at {where}; the model keeps {best}.", icon=":material/stop_circle:")
    else:
        st.success(f"Finished {result.epochs_run} epoch(s); the model keeps {best}.", icon=":material/check_circle:")
    columns = st.columns(4)
    test_accuracy_metric(columns[0], ModelMetadata.from_dict(result.metadata()))
    columns[1].metric("Test loss", f"{result.evaluation.loss:.4f}")
    columns[2].metric("Epochs", f"{result.epochs_run} of {result.config.epochs}")
    columns[3].metric("Training time", format_duration(result.training_seconds))
    training_curves(snapshot, "train_final")
    matrix_column, per_class_column = st.columns([3, 2])
    with matrix_column:
        st.markdown("**Confusion matrix** (test set)")
        st.plotly_chart(confusion_matrix_heatmap(result.evaluation.confusion_matrix), key="train_confusion")
    per_class = dict(zip(CLASS_NAMES, result.evaluation.per_class_accuracy))
    per_class_column.plotly_chart(per_class_accuracy_chart(per_class), key="train_per_class")
    save_panel(job)


def save_panel(job: TrainingJob) -> None:
    """Save under a name, then Use this model for predictions."""
    st.subheader("Save this model")
    if st.session_state.get(SAVE_NAME_JOB_KEY) != job.job_id:
        st.session_state[SAVE_NAME_JOB_KEY] = job.job_id
        st.session_state[SAVE_NAME_KEY] = f"{job.config.architecture}-{job.job_id}"
    name_column, save_column = st.columns([3, 1], vertical_alignment="bottom")
    name = name_column.text_input(
        "Model name",
        key=SAVE_NAME_KEY,
        max_chars=64,
        help="Letters, digits, '-' and '_'. The shipped 'default' cannot be overwritten.",
    )
    if save_column.button("Save to the registry", key="train_save", icon=":material/save:"):
        try:
            job.save(registry(), name.strip())
        except (RegistryError, JobNotSavable) as error:
            st.error(str(error), icon=":material/error:")
        else:
            st.rerun()  # so that the sidebar's model picker, drawn before this, lists the new model
    saved_as = job.snapshot().saved_as
    if saved_as:
        st.success(f"Saved as {', '.join(f'`{saved}`' for saved in saved_as)}. It is listed on the Models page.")
        if st.button(f"Use `{saved_as[-1]}` for predictions", key="train_use_model", icon=":material/arrow_forward:"):
            use_for_predictions(saved_as[-1])


def job_section(manager: JobManager) -> None:
    job = manager.current()
    if job is None:
        st.info("No model has been trained on this server since it started. Choose the settings above and Start.")
    elif job.snapshot().is_active:
        live_job_panel(job)
        live_curves(job)
    else:
        finished_job_panel(job)


@app_page
def train_page() -> None:
    st.title("Train a model")
    st.write(
        "Choose the hyperparameters and start a run: it trains in the background on the server (one run at a time, "
        "shared by everyone), so you can leave this page and come back. Stop keeps the best epoch so far."
    )
    if not loaded_or_waiting("dataset"):
        return
    manager = job_manager()
    data = dataset_or_message()
    restore_form()
    with st.container(border=True):
        values = hyperparameter_widgets()
        start_panel(manager, values, data)
    job_section(manager)


train_page()
