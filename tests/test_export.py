"""Tests of model export (LiteRT, SavedModel, ONNX), its checks, and the artifacts written at save time."""

import io
import json
import shutil
import zipfile

import numpy as np
import pytest

from fashion_core.artifacts import (
    LITERT_FILE,
    MODEL_FILE,
    NUM_CHECK_IMAGES_WITHOUT_DATASET,
    TEST_PREDICTIONS_FILE,
    download_file_name,
    export_download_bytes,
    file_sha256,
    fresh_litert_file,
    probabilities_on_test_set,
    stored_test_probabilities,
)
from fashion_core.cli import main as cli_main
from fashion_core.export import (
    EXPORT_FORMATS,
    ExportError,
    export_download,
    export_model,
    export_probabilities,
    verify_export,
)
from fashion_core.inference import Predictor
from fashion_core.metadata import ModelMetadata
from fashion_core.models import ModelOptions, build_model
from fashion_core.registry import ModelRegistry, save_model_dir
from fashion_core.serving import LiteRTPredictor
from tests.support import open_app


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained dense model: few parameters, fast to export, and distinct answers per image."""
    return build_model("dense", ModelOptions(augment=False))


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_model, tmp_path_factory):
    """A tiny model folder as the registry saves it (artifacts included), trained-with-flips in its config."""
    config = {"architecture": "dense", "augment": True, "augment_strength": 0.4}
    return save_model_dir(tmp_path_factory.mktemp("models") / "tiny", tiny_model, {"config": config})


@pytest.mark.parametrize("export_format", EXPORT_FORMATS)
def test_each_format_exports_and_agrees_with_keras_in_its_own_runtime(
    export_format, tiny_model, fashion_data, tmp_path
):
    images = fashion_data.test_images[:300]
    reference = Predictor(tiny_model).predict(images)
    out = tmp_path / {"litert": "m.tflite", "saved_model": "m_saved", "onnx": "m.onnx"}[export_format]
    path = export_model(tiny_model, export_format, out)
    check = verify_export(path, export_format, images, reference)
    assert path == out and out.exists()
    assert (check.format, check.file, check.num_images) == (export_format, out.name, 300)
    assert check.agreement == 1.0 and check.max_abs_difference <= 1e-5
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left beside it


def test_an_export_does_not_overwrite_unless_asked(tiny_model, tmp_path):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"keep me")
    with pytest.raises(ExportError, match=r"already exists; pass overwrite=True.*Received: out_path="):
        export_model(tiny_model, "litert", out)
    assert out.read_bytes() == b"keep me"
    export_model(tiny_model, "litert", out, overwrite=True)
    assert out.read_bytes()[4:8] == b"TFL3"


def test_an_unknown_format_is_refused_with_the_known_ones(tiny_model, tmp_path):
    with pytest.raises(ExportError, match=r"one of litert, saved_model, onnx\. Received: export_format='tfjs'"):
        export_model(tiny_model, "tfjs", tmp_path / "m")


def test_a_saved_model_downloads_as_a_zip_of_its_folder(tiny_model):
    name, data = export_download(tiny_model, "saved_model")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert name == "saved_model.zip"
    assert "saved_model/saved_model.pb" in names and any(n.startswith("saved_model/variables/") for n in names)
    litert_name, litert_bytes = export_download(tiny_model, "litert")
    assert litert_name == "model.tflite" and litert_bytes[4:8] == b"TFL3"


def test_a_save_writes_the_checked_litert_file_and_the_test_predictions(tiny_model_dir, tiny_model, fashion_data):
    metadata = ModelMetadata.read(tiny_model_dir)
    check = metadata.export("litert")
    assert check.model_sha256 == file_sha256(tiny_model_dir / MODEL_FILE)
    assert (check.file, check.num_images, check.agreement) == (LITERT_FILE, 10000, 1.0)
    assert check.max_abs_difference <= 1e-5
    assert fresh_litert_file(tiny_model_dir) == tiny_model_dir / LITERT_FILE
    # stored as the app predicts: this model's config says it was trained with flips
    stored = stored_test_probabilities(tiny_model_dir)
    expected = Predictor(tiny_model, flip_average=True).predict(fashion_data.test_images)
    assert stored.shape == (10000, 10) and stored.dtype == np.float32
    np.testing.assert_allclose(stored, expected, atol=1e-6)
    served = LiteRTPredictor.from_model_dir(tiny_model_dir)
    assert served.flip_average is True
    np.testing.assert_allclose(served.predict(fashion_data.test_images[:50]), expected[:50], atol=1e-5)


def test_the_registry_saves_the_artifacts_into_the_published_folder(tiny_model, private_user_models):
    entry = ModelRegistry(user_dir=private_user_models).save("with-artifacts", tiny_model, {})
    assert sorted(p.name for p in entry.path.iterdir()) == sorted(
        [MODEL_FILE, "metadata.json", LITERT_FILE, TEST_PREDICTIONS_FILE]
    )
    assert entry.metadata.export("litert").model_sha256 == file_sha256(entry.model_file)
    assert [p.name for p in private_user_models.iterdir()] == ["with-artifacts"]  # no staging folder left


def test_without_the_dataset_a_model_is_saved_and_exported_but_stores_no_predictions(
    tiny_model, private_user_models, no_dataset
):
    entry = ModelRegistry(user_dir=private_user_models).save("no-data", tiny_model, {})
    assert entry.readable and not (entry.path / TEST_PREDICTIONS_FILE).exists()
    check = ModelMetadata.read(entry.path).export("litert")
    assert check.num_images == NUM_CHECK_IMAGES_WITHOUT_DATASET and check.agreement == 1.0
    assert fresh_litert_file(entry.path) == entry.path / LITERT_FILE


def test_predictions_missing_at_save_are_computed_on_first_use_and_stored(tiny_model_dir, fashion_data, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    (folder / TEST_PREDICTIONS_FILE).unlink()
    assert stored_test_probabilities(folder) is None
    computed = probabilities_on_test_set(folder, data=fashion_data)
    np.testing.assert_array_equal(stored_test_probabilities(folder), computed)
    np.testing.assert_allclose(computed, stored_test_probabilities(tiny_model_dir), atol=1e-6)


def test_prepare_cli_adds_the_artifacts_to_an_existing_folder(tiny_model_dir, tmp_path, capsys):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    for name in (LITERT_FILE, TEST_PREDICTIONS_FILE):
        (folder / name).unlink()
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["exports"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert fresh_litert_file(folder) is None
    assert cli_main(["prepare", str(folder)]) == 0
    output = capsys.readouterr().out
    assert f"Wrote {folder / LITERT_FILE}: top-1 agreement with Keras 100.00% on 10000 images" in output
    assert "passes the check (>= 99.9%, <= 0.0001)" in output
    assert f"Wrote {folder / TEST_PREDICTIONS_FILE}" in output
    assert fresh_litert_file(folder) is not None and stored_test_probabilities(folder) is not None
    assert ModelMetadata.read(folder).config == metadata["config"]  # the rest of the metadata is kept


def test_export_cli_writes_the_file_and_prints_its_agreement(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "exported.onnx"
    assert cli_main(["export", str(tiny_model_dir), "--format", "onnx", "--out", str(out)]) == 0
    output = capsys.readouterr().out
    assert f"Exported {tiny_model_dir} to {out} (onnx)" in output
    assert "top-1 agreement with Keras 100.00% on 10000 images" in output
    assert out.stat().st_size > 100_000
    assert cli_main(["export", str(tiny_model_dir), "--format", "onnx", "--out", str(out)]) == 2
    assert "already exists; pass overwrite=True (CLI: --overwrite)" in capsys.readouterr().err


@pytest.mark.parametrize("export_format", EXPORT_FORMATS)
def test_each_download_of_a_model_folder_runs_in_its_runtime(
    export_format, tiny_model, tiny_model_dir, fashion_data, tmp_path
):
    data = export_download_bytes(tiny_model_dir, export_format)
    path = tmp_path / download_file_name("tiny", export_format)
    path.write_bytes(data)
    if export_format == "litert":
        assert data == (tiny_model_dir / LITERT_FILE).read_bytes()  # the checked file, not a new export
    if export_format == "saved_model":
        assert path.name == "tiny_saved_model.zip"
        zipfile.ZipFile(path).extractall(tmp_path)
        path = tmp_path / "saved_model"
    images = fashion_data.test_images[:100]
    expected = Predictor(tiny_model).predict(images)
    np.testing.assert_allclose(export_probabilities(path, export_format, images), expected, atol=1e-5)


def test_the_models_page_offers_one_download_per_export_format():
    """Test that the Models page shows a deferred download for each export format of the selected model."""

    app = open_app("pages/models.py")
    assert not app.exception
    labels = [button.label for button in app.get("download_button")]
    assert labels == [
        "Download .keras",
        "Export LiteRT (.tflite)",
        "Export TensorFlow SavedModel (.zip)",
        "Export ONNX (.onnx)",
    ]
    assert all(button.proto.deferred_file_id for button in app.get("download_button"))
    assert not any(button.proto.disabled for button in app.get("download_button"))


def test_export_cli_without_the_dataset_checks_on_random_images(tiny_model_dir, tmp_path, capsys, no_dataset):
    out = tmp_path / "exported.tflite"
    assert cli_main(["export", str(tiny_model_dir), "--format", "litert", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "export is checked on 256 random images instead of the test set" in captured.err
    assert "top-1 agreement with Keras 100.00% on 256 images" in captured.out
    assert out.read_bytes()[4:8] == b"TFL3"
