"""Command line: `python -m fashion_core train|evaluate|export|prepare|calibrate|photos ...`.

Only the commands that need TensorFlow import it, and only when they run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the training config imports TensorFlow
    from fashion_core.training.config import TrainingConfig

EXPORT_FORMATS = ("litert", "saved_model", "onnx")  # as in fashion_core.export, which imports TensorFlow

FLAG_ALIASES = {"architecture": ["--arch"]}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `TrainingConfig` field, with the field's default and allowed range in the help."""
    from fashion_core.training.config import FIELD_BOUNDS, TrainingConfig

    defaults = TrainingConfig()
    for config_field in dataclasses.fields(TrainingConfig):
        if config_field.name == "extra":
            continue
        name = config_field.name
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        bounds = FIELD_BOUNDS.get(name)
        range_help = f" (from {bounds.low:g} to {bounds.high:g})" if bounds else ""
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"default: {default}")
        else:
            parser.add_argument(
                flag,
                *FLAG_ALIASES.get(name, []),
                dest=name,
                type=type(default),
                default=None,
                help=f"default: {default}{range_help}",
            )


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; building it imports the training config (and so TensorFlow)."""
    from fashion_core.training.config import DISTRIBUTE_MODES

    parser = argparse.ArgumentParser(prog="python -m fashion_core", description="Fashion-MNIST Studio command line.")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train a model and save it as a model folder")
    _add_config_flags(train_parser)
    train_parser.add_argument("--preset", choices=["Quick", "Standard", "Best"], help="start from a preset's values")
    train_parser.add_argument("--out", required=True, help="model folder to write (model.keras + metadata.json)")
    train_parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    train_parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST .gz files")
    train_parser.add_argument(
        "--distribute",
        choices=DISTRIBUTE_MODES,
        default="none",
        help="mirrored: all visible GPUs; multiworker: MultiWorkerMirroredStrategy from TF_CONFIG",
    )
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate_parser = commands.add_parser("evaluate", help="print test metrics of a model folder or .keras file")
    evaluate_parser.add_argument("path")
    evaluate_parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST .gz files")
    evaluate_parser.add_argument("--flip-average", action="store_true", help="average with mirrored images")

    export_parser = commands.add_parser(
        "export", help="export a model to LiteRT, SavedModel or ONNX and check it on the test set in its own runtime"
    )
    export_parser.add_argument("path", help="a model folder or .keras file")
    export_parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, dest="export_format")
    export_parser.add_argument("--out", required=True, help="the file (.tflite, .onnx) or folder (SavedModel) to write")
    export_parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    export_parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST .gz files")

    prepare_parser = commands.add_parser(
        "prepare", help="add the checked LiteRT file and the stored test-set predictions to a model folder"
    )
    prepare_parser.add_argument("path", help="a model folder (model.keras + metadata.json)")
    prepare_parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST .gz files")

    calibrate_parser = commands.add_parser(
        "calibrate",
        help="fit a temperature on the validation split and the 'unsure' threshold on labelled photos; "
        "rewrites the folder's model.keras and metadata.json",
    )
    calibrate_parser.add_argument("path", help="model folder (model.keras + metadata.json)")
    calibrate_parser.add_argument(
        "--photos", help="labelled photo folder with MANIFEST.tsv; its 'val' photos choose the threshold"
    )
    calibrate_parser.add_argument("--no-photos", action="store_true", help="fit the temperature only")
    calibrate_parser.add_argument("--target-accuracy", type=float, default=0.9, help="default: 0.9")
    calibrate_parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST .gz files")
    _add_photos_parser(commands)
    return parser


def _add_photos_parser(commands) -> None:
    """`photos import|export|counts|evaluate`: the labelled-photo store (see `fashion_core.photostore`)."""
    photos_parser = commands.add_parser("photos", help="import, export, count or evaluate on the labelled-photo store")
    photos_parser.add_argument(
        "--db", help="SQLite file or SQLAlchemy URL (default: $FASHION_STUDIO_PHOTO_DB, else data/photos.sqlite3)"
    )
    actions = photos_parser.add_subparsers(dest="photos_command", required=True)
    import_parser = actions.add_parser("import", help="import a folder with MANIFEST.tsv, or a zip: all rows or none")
    import_parser.add_argument("path", help="a folder with MANIFEST.tsv (or photos.csv), or a .zip")
    import_parser.add_argument(
        "--digest-split", action="store_true", help="split by each photo's bytes, ignoring the manifest's split column"
    )
    export_parser = actions.add_parser("export", help="write the store as a zip that imports back")
    export_parser.add_argument("out", help="the .zip file to write")
    export_parser.add_argument("--split", choices=["train", "val"], help="only this split")
    actions.add_parser("counts", help="photos per class and split, and each split's fingerprint")
    evaluate_parser = actions.add_parser("evaluate", help="a model's accuracy on stored photos, as the app predicts")
    evaluate_parser.add_argument("path", help="a model folder (model.keras + metadata.json)")
    evaluate_parser.add_argument("--split", choices=["train", "val"], default="val", help="default: val")


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """The preset (or the defaults) with every flag given on the command line applied."""
    from fashion_core.training.config import PRESETS, TrainingConfig

    base = PRESETS[args.preset] if args.preset else TrainingConfig()
    changes = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainingConfig)
        if f.name != "extra" and getattr(args, f.name, None) is not None
    }
    return base.replace(**changes)


def make_strategy(mode: str):
    """The `tf.distribute` strategy for `--distribute`, or `None` for the default."""
    import tensorflow as tf

    if mode == "mirrored":
        return tf.distribute.MirroredStrategy()
    if mode == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--distribute multiworker needs TF_CONFIG describing the cluster; see the README.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return None


def run_train(args: argparse.Namespace) -> int:
    from fashion_core.data import load_fashion_mnist
    from fashion_core.registry import RegistryError, save_model_dir
    from fashion_core.training import train
    from fashion_core.training.callbacks import EpochRateLogger

    config = config_from_args(args)
    if os.path.exists(args.out) and not args.overwrite:  # say so before training, not after
        raise RegistryError(f"{args.out} already exists; pass --overwrite to replace it, or choose another --out.")
    strategy = make_strategy(args.distribute)
    data = load_fashion_mnist(args.data_dir)
    print(f"Training {config.architecture} on {data.source}: {config.to_dict()}")
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)  # a log file gets one line an epoch
    rates = [] if args.quiet else [EpochRateLogger(config.batch_size)]
    result = train(config, data=data, strategy=strategy, verbose=verbose, callbacks=rates)
    metadata = {
        **result.metadata(),
        "command": "python -m fashion_core " + shlex.join(sys.argv[1:]),
        "seed": config.seed,
        "distribute": args.distribute,
        "num_replicas": strategy.num_replicas_in_sync if strategy else 1,
    }
    path = save_model_dir(args.out, result.model, metadata, replace=args.overwrite)
    print_summary(
        result.evaluation, f"Saved {path} after {result.epochs_run} epochs in {result.training_seconds:.0f} s"
    )
    if "test_accuracy_flip_average" in metadata:
        print(f"test accuracy with flip averaging {metadata['test_accuracy_flip_average']:.4f}")
    if "validation_accuracy" in metadata:
        flip_averaged = metadata.get("validation_accuracy_flip_average")
        print(
            f"validation accuracy {metadata['validation_accuracy']:.4f} (epoch {result.best_epoch})"
            + ("" if flip_averaged is None else f", with flip averaging {flip_averaged:.4f}")
        )
    if "photo_val_accuracy" in metadata:
        photos = result.photos
        print(
            f"real photos: val accuracy {metadata['photo_val_accuracy']:.4f} as the app predicts "
            f"({sum(photos.val_counts.values())} val, {sum(photos.train_counts.values())} train photos, "
            f"fingerprint {photos.fingerprint})"
        )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from fashion_core.data import load_fashion_mnist
    from fashion_core.evaluation import evaluate_model
    from fashion_core.registry import load_model

    model = load_model(args.path)
    data = load_fashion_mnist(args.data_dir)
    report = evaluate_model(model, data.test_images, data.test_labels, flip_average=args.flip_average)
    print_summary(report, f"Evaluated {args.path} on {len(report.labels)} test images")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from fashion_core.calibration import REAL_PHOTOS_DIR, calibrate_model_dir
    from fashion_core.data import load_fashion_mnist

    photos = None if args.no_photos else (args.photos or REAL_PHOTOS_DIR)
    data = load_fashion_mnist(args.data_dir)
    metadata = calibrate_model_dir(args.path, photos, data=data, target_accuracy=args.target_accuracy)
    info, check = metadata.calibration, metadata.extra["calibration_check"]
    print(f"Calibrated {args.path}: temperature {info.temperature:.4f}, fitted on the {info.fitted_on}")
    nll = f"NLL {info.nll_before:.4f} -> {info.nll_after:.4f}"
    print(f"  validation ECE {info.ece_before:.4f} -> {info.ece_after:.4f}, {nll}")
    print(
        f"  test ({check['as_the_app_predicts']}) ECE {check['test_ece_before']:.4f} -> {check['test_ece_after']:.4f}, "
        f"accuracy {check['test_accuracy_before']:.4f} -> {check['test_accuracy_after']:.4f}"
    )
    if metadata.selective:
        selective = metadata.selective
        given = "none right" if selective.accuracy is None else f"{selective.accuracy:.1%} of them right"
        print(
            f"  'unsure' below {selective.threshold:.3f}: on {selective.fitted_on}, answers {selective.coverage:.1%} "
            f"of photos, {given} (target {selective.target_accuracy:.0%})"
        )
    return 0


def _app_predictor(model_dir: str):
    """The predictor the app answers with for a model folder: its checked LiteRT file, else TensorFlow."""
    from fashion_core.metadata import ModelMetadata
    from fashion_core.serving import LiteRTPredictor, ServingError

    try:
        return LiteRTPredictor.from_model_dir(model_dir)
    except ServingError:
        from fashion_core.inference import Predictor
        from fashion_core.registry import load_model

        return Predictor(load_model(model_dir), flip_average=ModelMetadata.read(model_dir).trained_with_flips)


def run_photos(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fashion_core.data import CLASS_NAMES
    from fashion_core.photostore import PhotoStore, evaluate_on_photos

    store = PhotoStore(args.db)
    if args.photos_command == "import":
        path, keep_split = Path(args.path), not args.digest_split
        importing = store.import_zip if path.suffix.lower() == ".zip" else store.import_folder
        result = importing(path, keep_split=keep_split)
        print(f"Imported {result.added} photos into {store.url}; {result.duplicates} already there were skipped.")
    elif args.photos_command == "export":
        print(f"Wrote {store.export_zip(args.out, split=args.split)} photos from {store.url} to {args.out}")
    elif args.photos_command == "counts":
        counts = store.counts()
        print(f"{store.url}: {counts.total} photos")
        print(f"  {'class':<12} {'train':>6} {'val':>6}")
        for name, train, val in zip(CLASS_NAMES, counts.train, counts.val):
            print(f"  {name:<12} {train:>6} {val:>6}")
        print(f"  fingerprints: train {store.fingerprint('train')}, val {store.fingerprint('val')}")
    else:
        report = evaluate_on_photos(_app_predictor(args.path), store, args.split)
        heading = f"Evaluated {args.path} on the {len(report.labels)} {args.split} photos of {store.url}"
        print(heading + f" (fingerprint {store.fingerprint(args.split)})")
        print(f"accuracy {report.accuracy:.4f}")
        for index, name in enumerate(CLASS_NAMES):
            if report.confusion_matrix[index].sum():
                photos = report.confusion_matrix[index].sum()
                print(f"  {name:<12} {report.per_class_accuracy[index]:.4f} ({photos} photos)")
    return 0


def print_summary(report, heading: str) -> None:
    from fashion_core.data import CLASS_NAMES

    print(heading)
    print(f"test accuracy {report.accuracy:.4f}   test loss {report.loss:.4f}")
    for name, accuracy in zip(CLASS_NAMES, report.per_class_accuracy):
        print(f"  {name:<12} {accuracy:.4f}")


def run_export(args: argparse.Namespace) -> int:
    from fashion_core.artifacts import check_passes, dataset_or_problem, random_check_images
    from fashion_core.export import export_model, validate_format, verify_export
    from fashion_core.inference import Predictor
    from fashion_core.registry import load_model

    validate_format(args.export_format)  # a missing converter is said before the model loads
    model = load_model(args.path)
    data, problems = dataset_or_problem(None, args.data_dir)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    images = data.test_images if data is not None else random_check_images()
    path = export_model(model, args.export_format, args.out, overwrite=args.overwrite)
    check = verify_export(path, args.export_format, images, Predictor(model).predict(images))
    print(f"Exported {args.path} to {path} ({args.export_format})")
    print(describe_check(check))
    return 0 if check_passes(check) else 1


def run_prepare(args: argparse.Namespace) -> int:
    from fashion_core.artifacts import prepare_model_dir

    prepared = prepare_model_dir(args.path, data_dir=args.data_dir)
    if prepared.litert is not None:
        print(f"Wrote {os.path.join(args.path, prepared.litert.file)}: {describe_check(prepared.litert)}")
    if prepared.test_predictions is not None:
        print(f"Wrote {prepared.test_predictions}: the test-set probabilities as the app predicts them")
    for problem in prepared.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0 if prepared.litert is not None and not prepared.problems else 1


def describe_check(check) -> str:
    """One line on an `ExportCheck`: agreement, largest difference, and whether it meets the bar."""
    from fashion_core.artifacts import MAX_ALLOWED_DIFFERENCE, REQUIRED_AGREEMENT, check_passes

    verdict = "passes" if check_passes(check) else "FAILS"
    return (
        f"top-1 agreement with Keras {check.agreement:.2%} on {check.num_images} images, max probability "
        f"difference {check.max_abs_difference:.2g}: {verdict} the check (>= {REQUIRED_AGREEMENT:.1%}, "
        f"<= {MAX_ALLOWED_DIFFERENCE:g})"
    )


COMMANDS = {
    "train": run_train,
    "evaluate": run_evaluate,
    "export": run_export,
    "prepare": run_prepare,
    "calibrate": run_calibrate,
    "photos": run_photos,
}


def main(argv: list[str] | None = None) -> int:
    try:
        # Building the parser loads the training options (and Keras, refused under another backend).
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ValueError as error:  # DatasetError, RegistryError, ExportError, config errors: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
