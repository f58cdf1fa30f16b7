"""AppTest of the photo store in the app: the Photos page, and the Predict page's "Right?" and save."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import streamlit as st

from fashion_core.data import CLASS_NAMES
from fashion_core.photostore import PhotoStore, Source, Split, evaluate_on_photos
from fashion_core.preprocess import photo_steps
from fashion_core.serving import LiteRTPredictor
from pages.common import PhotoStoreConnection, escape_markdown
from tests.conftest import REPO_ROOT, SHIPPED_MODEL_DIR
from tests.support.apptest import image_urls, open_app

DEV_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "realphotos-dev"


def dev_rows(per_class: int) -> list[dict[str, str]]:
    manifest = DEV_PHOTOS / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"The real dev photos are not there: {manifest} is missing.")
    with manifest.open(newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    chosen: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if len(chosen.setdefault(row["class_name"], [])) < per_class:
            chosen[row["class_name"]].append(row)
    return [row for group in chosen.values() for row in group]


def photo_folder(folder: Path, rows: list[dict[str, str]], splits: list[str]) -> Path:
    """Copies of some dev photos with a MANIFEST.tsv giving each its split."""
    lines = ["relative_path\tclass_index\tsplit"]
    for row, split in zip(rows, splits, strict=True):
        (folder / row["relative_path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEV_PHOTOS / row["relative_path"], folder / row["relative_path"])
        lines.append(f"{row['relative_path']}\t{row['class_index']}\t{split}")
    (folder / "MANIFEST.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def seeded_store(tmp_path):
    """The app's store (the test's own SQLite file) with 6 dev photos: 4 train, 2 val."""
    rows = dev_rows(per_class=2)[:6]
    store = PhotoStore()
    store.import_folder(photo_folder(tmp_path / "seed", rows, ["train", "val", "train", "train", "val", "train"]))
    return store


@pytest.fixture(scope="module")
def app_predictor():
    """The predictor the app answers with for the shipped model: its checked LiteRT file."""
    return LiteRTPredictor.from_model_dir(SHIPPED_MODEL_DIR)


def markdown_texts(app) -> list[str]:
    return [element.value for element in app.markdown]


# --- the Photos page ------------------------------------------------------------------------------------


def test_an_empty_store_says_how_to_fill_it():
    """Test that the page shows zero counts and where photos come from."""
    app = open_app("pages/photos.py")
    assert not app.exception
    assert app.expander[0].label == "0 photos: 0 train, 0 val"
    counts = app.dataframe[0].value
    assert counts.columns.tolist() == ["Split", *CLASS_NAMES, "All classes"]
    assert counts["Split"].tolist() == ["Train", "Val", "Total"] and counts["All classes"].sum() == 0
    infos = [info.value for info in app.info]
    assert (
        "No photos here yet. Save photos from the Predict page, or import some on the Import and export tab." in infos
    )
    assert "There are no val photos yet: a fifth of the photos saved or imported land there." in infos
    assert app.caption[0].value.startswith(f"Stored in `{PhotoStore().url}`. A file on this server")


def test_the_store_is_shown_by_class_and_split_with_the_current_models_answers(seeded_store, app_predictor):
    """Test that counts, every photo with its 28x28, and the model's answer for each are shown, and filters work."""
    app = open_app("pages/photos.py")
    assert not app.exception
    assert app.expander[0].label == "6 photos: 4 train, 2 val"
    counts = app.dataframe[0].value.set_index("Split")
    store_counts = seeded_store.counts()
    assert counts.loc["Train", list(CLASS_NAMES)].tolist() == list(store_counts.train)
    assert counts.loc["Val", list(CLASS_NAMES)].tolist() == list(store_counts.val)
    assert counts.loc["Total", "All classes"] == 6
    records = seeded_store.list_photos()
    captions = image_urls(app)
    for record in records:
        assert f"#{record.id} · {record.label_name} · {record.split}" in captions
    assert list(captions).count("What the model sees") == 1  # one caption, six images
    answers = app_predictor.predict(np.stack([record.image for record in records])).argmax(axis=1)
    shown = [text for text in markdown_texts(app) if text.startswith((":green[", ":red["))]
    expected = [
        f"{':green' if answer == record.label else ':red'}[**{CLASS_NAMES[answer]}**]"
        for record, answer in zip(records, answers)
    ]
    assert [text.split(" (")[0] for text in shown] == expected

    val_label = next(record for record in records if record.split is Split.VAL).label
    app.selectbox(key="photos_class").set_value(CLASS_NAMES[val_label]).run()
    app.button_group[0].set_value("val").run()
    assert not app.exception
    shown_ids = [caption for caption in image_urls(app) if caption.startswith("#")]
    expected_ids = [r for r in records if r.label == val_label and r.split is Split.VAL]
    assert shown_ids == [f"#{r.id} · {r.label_name} · val" for r in expected_ids]


def test_a_photo_is_deleted_only_after_confirmation(seeded_store):
    """Test that Delete asks first, Cancel keeps the photo, and the confirmation deletes it."""
    first = seeded_store.list_photos()[0]
    app = open_app("pages/photos.py")
    app.button(key=f"photos_delete_{first.id}").click().run()
    assert app.warning[0].value.startswith(f"Delete photo #{first.id} ({first.label_name}, {first.split})")
    app.button(key="photos_delete_cancel").click().run()
    assert not app.warning and seeded_store.get(first.id) is not None

    app.button(key=f"photos_delete_{first.id}").click().run()
    app.button(key="photos_delete_confirm").click().run()
    assert not app.exception
    assert [success.value for success in app.success] == [f"Deleted photo #{first.id}."]
    assert seeded_store.get(first.id) is None
    assert app.expander[0].label == "5 photos: " + f"{sum(seeded_store.counts().train)} train, 2 val"


def test_the_current_model_is_evaluated_on_the_val_photos(seeded_store, app_predictor):
    """Test that the accuracy, per-class table and confusion matrix are those of the store's val photos."""
    app = open_app("pages/photos.py")
    assert not app.exception
    report = evaluate_on_photos(app_predictor, seeded_store)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Accuracy on 2 val photos"] == f"{report.accuracy:.2%}"
    per_class = app.dataframe[1].value
    val = seeded_store.arrays("val")
    assert per_class["Class"].tolist() == [CLASS_NAMES[label] for label in sorted(set(val.labels.tolist()))]
    assert per_class["Photos"].sum() == 2


def test_folder_import_is_off_unless_the_server_allows_it(monkeypatch):
    """Test that a public server (no FASHION_STUDIO_FOLDER_IMPORT) offers no box to read its folders."""
    monkeypatch.delenv("FASHION_STUDIO_FOLDER_IMPORT", raising=False)
    app = open_app("pages/photos.py")
    assert not app.exception
    assert not [box for box in app.text_input if box.key == "photos_import_folder"]
    assert any("Importing a folder on the server is off" in caption.value for caption in app.caption)


def test_a_folder_is_imported_and_a_bad_one_reported_by_line(tmp_path, monkeypatch):
    """Test that a server folder imports all its photos, and a manifest with a bad row imports nothing."""
    monkeypatch.setenv("FASHION_STUDIO_FOLDER_IMPORT", "1")
    rows = dev_rows(per_class=1)[:3]
    folder = photo_folder(tmp_path / "good", rows, ["train", "val", "train"])
    app = open_app("pages/photos.py")
    app.text_input(key="photos_import_folder").input(str(folder)).run()
    app.button(key="photos_import_folder_button").click().run()
    assert not app.exception
    assert [success.value for success in app.success] == ["Imported 3 photos."]
    assert PhotoStore().counts().total == 3

    app.button(key="photos_import_folder_button").click().run()
    assert [info.value for info in app.info if info.value.startswith("Imported")] == [
        "Imported 0 photos. 3 were already in the store and were skipped."
    ]

    bad = photo_folder(tmp_path / "bad", rows[:1], ["train"])
    with (bad / "MANIFEST.tsv").open("a", encoding="utf-8") as manifest:
        manifest.write("missing.jpg\t3\ttrain\n")
    app.text_input(key="photos_import_folder").input(str(bad)).run()
    app.button(key="photos_import_folder_button").click().run()
    assert not app.exception
    assert app.error[0].value.startswith("**Nothing was imported**: 1 row has a problem.")
    assert escape_markdown("line 3 (missing.jpg): the file is not there") in app.error[0].value
    assert PhotoStore().counts().total == 3


def test_the_export_zip_imports_back_through_the_uploader(seeded_store, monkeypatch, tmp_path):
    """Test that the download is a zip of the store that the zip import reads back to the same photo set."""
    downloads = {}
    download_button = st.download_button

    def recording_download_button(label, data, *args, **kwargs):
        downloads[kwargs.get("key")] = data
        return download_button(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", recording_download_button)
    app = open_app("pages/photos.py")
    assert not app.exception
    archive = downloads["photos_export"]()
    assert app.get("download_button")[0].proto.label == "Download all 6 photos as a zip"

    monkeypatch.setenv("FASHION_STUDIO_PHOTO_DB", str(tmp_path / "other.sqlite3"))
    other = open_app("pages/photos.py")
    other.file_uploader(key="photos_import_zip").set_value(("photos.zip", archive, "application/zip")).run()
    other.button(key="photos_import_zip_button").click().run()
    assert not other.exception
    assert [success.value for success in other.success] == ["Imported 6 photos."]
    copy = PhotoStore(tmp_path / "other.sqlite3")
    assert copy.fingerprint() == seeded_store.fingerprint() and copy.counts() == seeded_store.counts()


def test_the_connection_reads_its_url_from_secrets_first(tmp_path, monkeypatch):
    """Test that `[connections.photos] url` in secrets wins over the URL passed in (the environment variable)."""
    from streamlit.runtime.secrets import AttrDict

    secret_path = tmp_path / "from-secrets.sqlite3"
    monkeypatch.setattr(PhotoStoreConnection, "_secrets", property(lambda self: AttrDict({"url": str(secret_path)})))
    connection = PhotoStoreConnection("photos", url=str(tmp_path / "from-env.sqlite3"))
    assert connection.store.url == f"sqlite:///{secret_path}"
    monkeypatch.setattr(PhotoStoreConnection, "_secrets", property(lambda self: AttrDict({})))
    assert PhotoStoreConnection("photos", url=str(tmp_path / "env.sqlite3")).store.url.endswith("/env.sqlite3")


def test_an_unreachable_database_is_an_error_in_the_page_not_a_traceback(monkeypatch):
    """Test that a database URL nothing answers at gives a clear message on the Photos page."""
    monkeypatch.setenv("FASHION_STUDIO_PHOTO_DB", "postgresql://nobody@127.0.0.1:9/photos")
    app = open_app("pages/photos.py")
    assert not app.exception
    assert app.error[0].value.startswith("**The photo store cannot be opened.** Could not open the photo database")
    assert escape_markdown("Received: url=postgresql+psycopg://nobody@127.0.0.1:9/photos") in app.error[0].value


# --- the Predict page's "Right?" -----------------------------------------------------------------------


def upload(app, row: dict[str, str]) -> tuple[str, bytes]:
    name, data = Path(row["relative_path"]).name, (DEV_PHOTOS / row["relative_path"]).read_bytes()
    app.file_uploader(key="predict_upload").set_value((name, data, "image/jpeg")).run()
    assert not app.exception
    return name, data


def test_a_corrected_photo_is_saved_only_when_the_user_says_so(app_predictor):
    """Test that answering "No" and picking the class stores nothing until Save, then stores everything."""
    row = dev_rows(per_class=1)[3]
    app = open_app("pages/predict.py")
    name, data = upload(app, row)
    conversion = photo_steps(data)
    probabilities = app_predictor.predict_one(conversion.image)
    predicted = int(probabilities.argmax())
    save = app.button(key="upload_save")
    assert save.disabled and save.label == "Save to the photo store"
    assert any("Nothing is kept unless you save." in caption.value for caption in app.caption)

    app.radio(key=next(r.key for r in app.radio if r.key.startswith("upload_right_"))).set_value("No").run()
    picker = next(box for box in app.selectbox if box.key.startswith("upload_true_class_"))
    assert CLASS_NAMES[predicted] not in picker.options and len(picker.options) == 9
    true_class = 4 if predicted != 4 else 6
    picker.set_value(true_class).run()
    assert PhotoStore().counts().total == 0  # nothing yet

    app.button(key="upload_save").click().run()
    assert not app.exception
    record = PhotoStore().list_photos(with_photos=True)[0]
    assert [success.value for success in app.success] == [
        f"Saved as photo #{record.id}: {CLASS_NAMES[true_class]}, in the {record.split} split."
    ]
    assert (record.label, record.source, record.origin, record.model_name) == (
        true_class,
        Source.UPLOAD,
        name,
        "default",
    )
    assert record.photo == data and record.predicted == predicted
    np.testing.assert_allclose(record.probabilities, probabilities, atol=1e-6)
    np.testing.assert_array_equal(record.image, conversion.image)

    app.run()
    assert [success.value for success in app.success] == [
        f"Saved as photo #{record.id}: {CLASS_NAMES[true_class]}, in the {record.split} split."
    ]
    assert not [button for button in app.button if button.key == "upload_save"]


def test_a_confirmed_camera_photo_is_saved_with_the_models_class_and_a_second_save_finds_it(app_predictor):
    """Test that "Yes" saves the predicted class from the camera, and the same photo saved again is found."""
    row = dev_rows(per_class=1)[0]
    data = (DEV_PHOTOS / row["relative_path"]).read_bytes()
    predicted = int(app_predictor.predict_one(photo_steps(data).image).argmax())
    app = open_app("pages/predict.py")
    app.session_state["predict_input_tab"] = "Camera"  # only the open tab runs
    app.camera_input(key="predict_camera").set_value(("shot.jpg", data, "image/jpeg")).run()
    app.radio(key=next(r.key for r in app.radio if r.key.startswith("camera_right_"))).set_value("Yes").run()
    app.button(key="camera_save").click().run()
    assert not app.exception
    record = PhotoStore().list_photos()[0]
    assert (record.label, record.source, record.origin) == (predicted, Source.CAMERA, "camera photo")

    again = open_app("pages/predict.py")  # another session, the same photo
    again.session_state["predict_input_tab"] = "Camera"
    again.camera_input(key="predict_camera").set_value(("shot.jpg", data, "image/jpeg")).run()
    again.radio(key=next(r.key for r in again.radio if r.key.startswith("camera_right_"))).set_value("Yes").run()
    again.button(key="camera_save").click().run()
    assert [info.value for info in again.info if info.value.startswith("This photo")] == [
        f"This photo is already in the photo store, as photo #{record.id} ({CLASS_NAMES[predicted]})."
    ]
    assert PhotoStore().counts().total == 1


def test_the_evaluation_and_models_pages_show_the_photo_val_accuracy(seeded_store, app_predictor):
    """Test that the Evaluation page and the Models table give the model's accuracy on the val photos."""
    accuracy = evaluate_on_photos(app_predictor, seeded_store).accuracy
    models = open_app("pages/models.py")
    assert not models.exception
    assert models.dataframe[0].value.set_index("Name")["Photo val accuracy"].isna().all()
    models.button(key="models_score_photos").click().run()
    assert not models.exception
    assert models.dataframe[0].value.set_index("Name").loc["default", "Photo val accuracy"] == pytest.approx(accuracy)

    evaluation = open_app("pages/evaluation.py")
    evaluation.session_state["evaluation_section"] = "Real photos"
    evaluation.run()
    assert not evaluation.exception
    metric = next(metric for metric in evaluation.metric if metric.label.startswith("Photo val accuracy"))
    assert (metric.label, metric.value) == ("Photo val accuracy (2 photos)", f"{accuracy:.2%}")
    table = next(frame.value for frame in evaluation.dataframe if "Photo val accuracy" in frame.value.columns)
    assert table["Val photos"].sum() == 2 and table["Class"].tolist() == list(CLASS_NAMES)


LIGHT_SCRIPT = """
import sys
from streamlit.testing.v1 import AppTest

app = AppTest.from_file({entry!r}, default_timeout=120)
app.switch_page("pages/photos.py").run()
assert not app.exception, [exception.value for exception in app.exception]
print([element.value for element in app.markdown if element.value.startswith((":green[", ":red["))])
print(sorted({{"tensorflow", "keras"}} & set(sys.modules)))
"""


def test_the_photos_page_answers_without_importing_tensorflow(seeded_store):
    """Test that a fresh process shows the Photos page, with the model's answers, from LiteRT alone."""
    script = LIGHT_SCRIPT.format(entry=str(REPO_ROOT / "streamlit_app.py"))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    answers, heavy = result.stdout.strip().splitlines()[-2:]
    assert answers.count("[**") == 6
    assert heavy == "[]"
