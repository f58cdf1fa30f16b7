"""Tests of `python -m fashion_core`, run as a user would, in a subprocess."""

import json
import os
import re
import subprocess
import sys

import pytest

from fashion_core.cli import build_parser, config_from_args
from fashion_core.registry import load_model
from tests.conftest import REPO_ROOT


def run_cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "fashion_core", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_trains_seed_cnn_for_one_epoch_and_the_result_loads(tmp_path):
    out = tmp_path / "model"
    result = run_cli("train", "--arch", "seed_cnn", "--epochs", "1", "--subset-size", "2000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert re.search(r"^Epoch 1: [\d,]+\.\d images/s$", result.stdout, re.MULTILINE), result.stdout
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["config"]["architecture"] == "seed_cnn"
    assert metadata["num_train_images"] + metadata["num_validation_images"] == 2000
    assert metadata["command"].endswith(f"--subset-size 2000 --out {out}")
    # trained with random flips (the default augmentation), so the flip-averaged accuracy is recorded too
    assert f"test accuracy with flip averaging {metadata['test_accuracy_flip_average']:.4f}" in result.stdout
    assert (
        f"validation accuracy {metadata['validation_accuracy']:.4f} (epoch 1), "
        f"with flip averaging {metadata['validation_accuracy_flip_average']:.4f}"
    ) in result.stdout
    assert load_model(out).output_shape == (None, 10)

    evaluated = run_cli("evaluate", str(out))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test accuracy {metadata['test_accuracy']:.4f}" in evaluated.stdout
    assert "Ankle boot" in evaluated.stdout


def test_cli_refuses_to_overwrite_without_the_flag(tmp_path):
    (tmp_path / "model").mkdir()
    result = run_cli("train", "--epochs", "1", "--subset-size", "200", "--out", str(tmp_path / "model"))
    assert result.returncode == 2
    assert "already exists; pass --overwrite to replace it" in result.stderr


def test_cli_reports_a_bad_value_without_a_traceback(tmp_path):
    result = run_cli("train", "--epochs", "0", "--out", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "error: epochs must be in [1, 200]. Received: epochs=0" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_config_field_is_a_flag():
    args = build_parser().parse_args(
        [
            "train",
            "--out",
            "x",
            "--arch",
            "dense",
            "--epochs",
            "3",
            "--batch-size",
            "64",
            "--learning-rate",
            "0.01",
            "--optimizer",
            "sgd",
            "--dropout",
            "0.1",
            "--no-augment",
            "--augment-strength",
            "0.2",
            "--clean-epochs",
            "1",
            "--clean-mix",
            "0.3",
            "--label-smoothing",
            "0.05",
            "--weight-decay",
            "0.001",
            "--patience",
            "2",
            "--schedule",
            "plateau",
            "--validation-fraction",
            "0.2",
            "--subset-size",
            "5000",
            "--seed",
            "7",
            "--photos",
            "photos",
            "--photo-share",
            "0.2",
            "--photo-augment",
            "0.7",
            "--init-model",
            "default",
            "--init-mix",
            "0.6",
        ]
    )
    config = config_from_args(args)
    assert config.to_dict() == {
        "architecture": "dense",
        "epochs": 3,
        "batch_size": 64,
        "learning_rate": 0.01,
        "optimizer": "sgd",
        "dropout": 0.1,
        "augment": False,
        "augment_strength": 0.2,
        "clean_epochs": 1,
        "clean_mix": 0.3,
        "label_smoothing": 0.05,
        "weight_decay": 0.001,
        "patience": 2,
        "schedule": "plateau",
        "validation_fraction": 0.2,
        "subset_size": 5000,
        "seed": 7,
        "photos": "photos",
        "photo_share": 0.2,
        "photo_augment": 0.7,
        "init_model": "default",
        "init_mix": 0.6,
    }


def test_preset_values_are_the_base_and_flags_override_them():
    args = build_parser().parse_args(["train", "--out", "x", "--preset", "Quick", "--epochs", "1"])
    config = config_from_args(args)
    assert config.architecture == "small_cnn" and config.epochs == 1


@pytest.mark.parametrize("path", ["does-not-exist", "README.md"])
def test_evaluate_reports_a_missing_or_bad_model_clearly(path):
    result = run_cli("evaluate", path)
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr
