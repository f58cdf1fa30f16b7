"""`make bench`: run every benchmark, write `benchmarks/results.json` and the README's table.

Each measurement runs in its own subprocess, so one's warm caches and threads don't flatter the
next. The Markdown table goes to `benchmarks/RESULTS.md` and between the README's
`<!-- benchmarks:start -->` and `<!-- benchmarks:end -->` markers, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_JSON = BENCHMARKS_DIR / "results.json"
RESULTS_MD = BENCHMARKS_DIR / "RESULTS.md"
README = REPO_ROOT / "README.md"
START_MARKER, END_MARKER = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
DEFAULT_EXPLANATION = "Default explanation"  # how benchmarks/faithfulness.py names the app's own method

# name -> (module, function, keyword arguments): each returns a JSON-ready dict.
MEASUREMENTS = {
    "accuracy": ("benchmarks.accuracy", "measure_accuracy", {}),
    "latency": ("benchmarks.latency", "measure_latency", {}),
    "real_photos": ("benchmarks.realphotos", "measure_realphoto_accuracy", {}),
    "real_photos_cc0_val": ("benchmarks.realphotos", "measure_cc0_val_accuracy", {}),
    "robustness": ("benchmarks.robustness", "measure_robustness", {}),
    # The default architecture and batch size of the Train page, then a tiny model whose 2 ms steps
    # show the job's fixed per-batch cost at its largest.
    "training_throughput": (
        "benchmarks.training_throughput",
        "measure_training_throughput",
        {"architecture": "cnn", "batch_size": 128, "steps": 80, "repeats": 2},
    ),
    "training_throughput_seed_cnn": ("benchmarks.training_throughput", "measure_training_throughput", {}),
    "server": ("benchmarks.server", "measure_server", {}),
    "exports": ("benchmarks.exports", "measure_exports", {}),
    "serving": ("benchmarks.serving", "measure_serving", {}),
    "faithfulness": ("benchmarks.faithfulness", "measure_faithfulness", {}),
    "rerun_cost": ("benchmarks.rerun_cost", "measure_rerun_cost", {}),
    # A real server in Chromium, with every core and pinned to one: issue 17's waits (7 to 11 minutes).
    "browser": ("benchmarks.browser", "measure_browser", {}),
}


def machine_description() -> dict:
    """What the numbers were measured on."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)  # fmt: skip
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_measurement(module: str, function: str, kwargs: dict) -> dict:
    """Runs one measurement in a fresh Python process and returns its dict (or the error)."""
    code = f"import json, {module} as m; print('RESULT' + json.dumps(m.{function}(**{kwargs!r})))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600
    )
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT") :])
    return {"error": (completed.stderr or completed.stdout)[-1500:]}


def _goal(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "**missed**")


def goal_judged_on_the_app(
    measure: str, plain: float, flip_averaged: float, in_app: bool, goal: float, value_format: str
) -> list[tuple[str, str, str, str]]:
    """Rows for a plain and a flip-averaged figure, the goal judged on the one the app shows.

    The app averages with the mirror image for models trained with flips (`trained_with_flips`).
    """
    plain_row = [f"{measure}, plain `model(x)`", value_format.format(plain), "", ""]
    flip_row = [f"{measure}, flip-averaged", value_format.format(flip_averaged), "", ""]
    judged, value = (flip_row, flip_averaged) if in_app else (plain_row, plain)
    if in_app:
        flip_row[0] += " (as the app predicts)"
    judged[2:] = [f">= {value_format.format(goal)}", _goal(value >= goal)]
    return [tuple(plain_row), tuple(flip_row)]


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(measure, value, goal, met?) rows for what was measured."""
    rows = []
    accuracy = results.get("accuracy", {})
    if "test_accuracy" in accuracy:
        rows += goal_judged_on_the_app(
            "Shipped model, test accuracy",
            plain=accuracy["test_accuracy"],
            flip_averaged=accuracy["test_accuracy_flip_average"],
            in_app=accuracy.get("flip_average_in_app", False),
            goal=0.945,
            value_format="{:.4f}",
        )
    if "quick_preset" in accuracy:
        quick = accuracy["quick_preset"]
        ok = quick["test_accuracy"] >= 0.91 and quick["training_seconds"] <= 60
        value = f"{quick['test_accuracy']:.4f} in {quick['training_seconds']:.0f} s"
        rows.append(("Quick preset, test accuracy and training time", value, ">= 0.91 within 60 s", _goal(ok)))
    latency = results.get("latency", {})
    if "predict_one_app" in latency:
        app, keras_predict = latency["predict_one_app"], latency["predict_one_model_predict"]
        flips = " (flip-averaged)" if latency.get("flip_average") else ""
        runtime = "LiteRT" if latency.get("app_runtime") == "litert" else "TensorFlow"
        rows.append((f"One image, app's {runtime} predictor{flips}, p50 / p95",
                     f"{app['p50_ms']:.2f} / {app['p95_ms']:.2f} ms",
                     "p50 < 2 ms", _goal(app["p50_ms"] < 2)))  # fmt: skip
        if latency.get("flip_average"):
            plain = latency["predict_one_app_without_flip_average"]
            rows.append((f"One image, app's {runtime} predictor without flip averaging, p50 / p95",
                         f"{plain['p50_ms']:.2f} / {plain['p95_ms']:.2f} ms", "", ""))  # fmt: skip
        if "predict_one_tensorflow" in latency:
            tensorflow = latency["predict_one_tensorflow"]
            rows.append((f"One image, TensorFlow's `Predictor`{flips} (Grad-CAM viewer), p50 / p95",
                         f"{tensorflow['p50_ms']:.2f} / {tensorflow['p95_ms']:.2f} ms", "", ""))  # fmt: skip
        rows.append(("One image, `model.predict`, p50 / p95",
                     f"{keras_predict['p50_ms']:.1f} / {keras_predict['p95_ms']:.1f} ms",
                     f"ratio {latency['predict_speedup_vs_model_predict']}x", ""))  # fmt: skip
        photo = latency["photo_1000px_jpeg_to_probabilities"]
        rows.append(("1000x1000 JPEG to probabilities, p50 / p95", f"{photo['p50_ms']:.1f} / {photo['p95_ms']:.1f} ms",
                     "< 30 ms", _goal(photo["p50_ms"] < 30)))  # fmt: skip
        cam = latency["gradcam"]
        rows.append(("Grad-CAM, p50 / p95", f"{cam['p50_ms']:.1f} / {cam['p95_ms']:.1f} ms", "< 50 ms",
                     _goal(cam["p50_ms"] < 50)))  # fmt: skip
    photos = results.get("real_photos", {})
    if "pipeline" in photos:
        rows.append(("Real dev photos (120), naive squash-and-invert", f"{photos['naive']['accuracy']:.1%}", "", ""))
        rows += goal_judged_on_the_app(
            "Real dev photos (120), our preprocessing",
            plain=photos["pipeline"]["accuracy"],
            flip_averaged=photos["pipeline_flip_average"]["accuracy"],
            in_app=photos.get("flip_average_in_app", False),
            goal=0.70,
            value_format="{:.1%}",
        )
    cc0 = results.get("real_photos_cc0_val", {})
    if "accuracy" in cc0:
        how = ", flip-averaged as in the app" if cc0["flip_average_in_app"] else ""
        rows.append((f"realphotos-cc0 val ({cc0['num_photos']} home photos, never trained on){how}",
                     f"{cc0['accuracy']:.1%}", "", ""))  # fmt: skip
        per_class = ", ".join(f"{name} {value:.0%}" for name, value in cc0["per_class"].items())
        rows.append(("realphotos-cc0 val per class", per_class, "", ""))
    robustness = results.get("robustness", {})
    if "augmented_validation_accuracy_flip_average" in robustness:
        rows.append(("Shipped model, validation images through the training augmentation (flip-averaged)",
                     f"{robustness['augmented_validation_accuracy_flip_average']:.1%}", "", ""))  # fmt: skip
        rows.append((f"Shipped model, empty last-layer Grad-CAM maps in {robustness['gradcam_images']} training images",
                     str(robustness["empty_last_layer_gradcam_maps"]), "", ""))  # fmt: skip
    for key in ("training_throughput", "training_throughput_seed_cnn"):
        throughput = results.get(key, {})
        if "ratio" in throughput:
            measure = f"Training images/s, TrainingJob vs bare fit ({throughput['architecture']}, " \
                      f"batch {throughput['batch_size']})"  # fmt: skip
            value = f"{throughput['job_images_per_second']:.0f} vs {throughput['fit_images_per_second']:.0f} " \
                    f"(ratio {throughput['ratio']:.3f})"  # fmt: skip
            rows.append((measure, value, ">= 0.95", _goal(throughput["ratio"] >= 0.95)))
    server = results.get("server", {})
    if "cold_start" in server:
        cold = server["cold_start"]["to_home_rendered_s"]
        rows.append(("Cold start, `streamlit run` to Home rendered", f"{cold:.1f} s", "< 10 s", _goal(cold < 10)))
    if "training_memory" in server:
        peak = server["training_memory"]["peak_rss_mb_during_default_training"]
        rows.append(("Peak RSS of the server in a default training run", f"{peak:.0f} MB", "< 1536 MB",
                     _goal(peak < 1536)))  # fmt: skip
    rerun = results.get("rerun_cost", {})
    if "apps_cleanup" in rerun:
        for key, label in (("streamlits_cleanup", "Streamlit's cleanup"), ("apps_cleanup", "the app's cleanup")):
            figures = rerun[key]
            measure = f"After a run, with {label}: cleanup / next predict + Grad-CAM / Quick training, 1 rerun a second"
            value = (f"{figures['cleanup_ms']:.0f} ms / {figures['next_predict_and_gradcam_ms']:.0f} ms / "
                     f"{figures['training_images_per_second']:.0f} images/s")  # fmt: skip
            rows.append((measure, value, "", ""))
    rows += export_rows(results.get("exports", {})) + serving_rows(results.get("serving", {}))
    rows += faithfulness_rows(results.get("faithfulness", {}))
    rows += browser_rows(results.get("browser", {}))
    return rows


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def browser_rows(browser: dict) -> list[tuple[str, str, str, str]]:
    """The browser benchmark's rows: each figure with every core, then pinned to one core."""
    runs = [(label, browser[key]) for key, label in (("all_cores", "all cores"), ("single_core", "one core"))
            if "cold_start" in browser.get(key, {})]  # fmt: skip
    if not runs:
        return []
    rows = []
    reference = browser["import_tensorflow_s"]
    rows.append(('Bare `python -c "import tensorflow"`', _seconds(reference), "the cold-start reference", ""))
    for serving, first in browser.get("first_answer", {}).items():
        if "to_first_answer_s" not in first:
            continue
        met = first["to_first_answer_s"] <= 3 and first["rss_mb_after_first_answer"] <= 350
        goal = ("<= 3 s, <= 350 MB", _goal(met))
        value = (f"{_seconds(first['to_first_answer_s'])}, {first['rss_mb_after_first_answer']:.0f} MB, "
                 f"TensorFlow {'loaded' if first['tensorflow_loaded'] else 'not loaded'}")  # fmt: skip
        rows.append((f"Browser, all cores: launch to the first answer (Home, Predict, one photo), {serving} serving",
                     value, *(goal if serving == "litert" else ("", ""))))  # fmt: skip
    for label, run in runs:
        card = run["cold_start"]["to_home_card_s"]
        rows.append((f"Browser, {label}: server launch to the Home model card", _seconds(card),
                     f"< 0.6 x import = {0.6 * reference:.1f} s", _goal(card < 0.6 * reference)))  # fmt: skip
        for title, seconds in run.get("page_first_open_s", {}).items():
            goal = ("<= 2.5 s", _goal(seconds <= 2.5)) if title == "Evaluation" else ("", "")
            value = _seconds(seconds)
            if title in run.get("page_first_usable_s", {}):
                value += f" (usable after {_seconds(run['page_first_usable_s'][title])}, while TensorFlow loads)"
            rows.append((f"Browser, {label}: {title}, first open", value, *goal))
        slowest_again = max(run.get("page_again_s", {}).values(), default=float("inf"))
        pages = ", ".join(f"{title} {seconds:.2f}" for title, seconds in run.get("page_again_s", {}).items())
        rows.append((f"Browser, {label}: every page opened again (s)", pages, "<= 0.6 s each",
                     _goal(slowest_again <= 0.6)))  # fmt: skip
        upload = run.get("upload_to_answer", {"count": 0, "median_s": None, "max_s": None})
        rows.append((f"Browser, {label}: upload to answer, {upload['count']} photos in a row, median / max",
                     f"{_seconds(upload['median_s'])} / {_seconds(upload['max_s'])}", "<= 0.5 s / <= 1 s",
                     _goal(upload["count"] >= 6 and upload["median_s"] <= 0.5 and upload["max_s"] <= 1)))  # fmt: skip
        sessions = run.get("eight_sessions")
        if sessions and "count" in sessions:
            ok = sessions["p95_s"] is not None and sessions["p95_s"] <= 3
            ok = ok and not sessions["exceptions"] and not sessions["lost_uploads"]
            value = (f"median {_seconds(sessions['median_s'])}, p95 {_seconds(sessions['p95_s'])} "
                     f"over {sessions['count']} uploads, {sessions['exceptions']} exceptions, "
                     f"{sessions['lost_uploads']} lost")  # fmt: skip
            if "p95_s_per_burst" in sessions:
                value += f" (p95 of each burst: {', '.join(f'{p95:.2f}' for p95 in sessions['p95_s_per_burst'])} s)"
            if sessions.get("server_part", {}).get("count"):
                server_part = sessions["server_part"]
                value += (f"; server's part median {_seconds(server_part['median_s'])}, "
                          f"p95 {_seconds(server_part['p95_s'])}")  # fmt: skip
            if "server_cpu_s" in sessions:
                browser_cpu = sum(sessions["chromium_cpu_s"].values())
                value += f"; CPU: server {sessions['server_cpu_s']:.1f} s, Chromium {browser_cpu:.1f} s"
            bursts = f", {sessions['bursts']} bursts" if sessions.get("bursts", 1) > 1 else ""
            rows.append((f"Browser, {label}: 8 sessions x 3 uploads at once{bursts}", value,
                         "p95 <= 3 s, none lost, no exception", _goal(ok)))  # fmt: skip
        memory = run["memory"]
        after = memory.get("rss_mb_after_first_predictions", memory.get("rss_mb_after_first_prediction", float("nan")))
        rows.append((f"Browser, {label}: server RSS after start / after the first predictions",
                     f"{memory['rss_mb_after_start']:.0f} / {after:.0f} MB", "<= 350 MB after the answers",
                     _goal(after <= 350)))  # fmt: skip
        if "rss_mb_after_quiet_warmup" in memory:
            rows.append((f"Browser, {label}: server RSS once idle (pandas, photo store, Fashion-MNIST loaded)",
                         f"{memory['rss_mb_after_quiet_warmup']:.0f} MB", "", ""))  # fmt: skip
        if "rss_mb_after_home_predict_dataset" in memory:
            rss = memory["rss_mb_after_home_predict_dataset"]
            loaded = memory["tensorflow_loaded_after_home_predict_dataset"]
            rows.append((f"Browser, {label}: server RSS after Home, Predict (six answers) and Dataset",
                         f"{rss:.0f} MB, TensorFlow {'loaded' if loaded else 'not loaded'}",
                         "<= 350 MB, no TensorFlow", _goal(rss <= 350 and not loaded)))  # fmt: skip
        without_tf = not memory.get("tensorflow_loaded_after_predictions", True)
        rows.append((f"Browser, {label}: TensorFlow loaded after Home and six answers",
                     "no" if without_tf else "yes", "no", _goal(without_tf)))  # fmt: skip
        if "rss_mb_peak_during_training" in run.get("train_in_browser", {}):
            rows.append((f"Browser, {label}: server RSS peak during the Quick preset",
                         f"{run['train_in_browser']['rss_mb_peak_during_training']:.0f} MB", "", ""))  # fmt: skip
        app, cli = run.get("train_in_browser", {}), run.get("train_on_cli", {})
        for epoch, key, what in (("first", "train_ratio_browser_vs_cli", "first epoch, start-up included"),
                                 ("second", "train_ratio_browser_vs_cli_second_epoch", "second epoch")):  # fmt: skip
            if key in run:
                rates = app[f"images_per_second_{epoch}_epoch"], cli[f"images_per_second_{epoch}_epoch"]
                value = f"{rates[0]:.0f} vs {rates[1]:.0f} (ratio {run[key]:.2f})"
                if len(run.get(f"{key}_pairs", [])) > 1:
                    pairs = ", ".join(f"{ratio:.2f}" for ratio in run[f"{key}_pairs"])
                    value = f"{rates[0]:.0f} vs {rates[1]:.0f}, medians; ratio {run[key]:.2f}, median of pairs {pairs}"
                rows.append((f"Browser, {label}: Quick preset images/s, Train page watched live vs CLI, {what}",
                             value, ">= 0.9", _goal(run[key] >= 0.9)))  # fmt: skip
        rows.extend(trained_model_rows(label, run.get("trained_model")))
    return rows


def trained_model_rows(label: str, trained: dict | None) -> list[tuple[str, str, str, str]]:
    """The Evaluation page's first open for a model just trained, saved and picked in the app."""
    if not trained:
        return []
    title = f"Browser, {label}: Evaluation, first open, for a model just trained and saved on the Train page"
    if "evaluation_first_open_s" not in trained:
        return [(title, trained.get("error", "not measured"), "<= 2.5 s", _goal(False))]
    seconds = trained["evaluation_first_open_s"]
    ok = seconds <= 2.5 and not trained["exceptions"]
    return [(title, f"{_seconds(seconds)} (`{trained['model']}`)", "<= 2.5 s", _goal(ok))]


def export_rows(exports: dict) -> list[tuple[str, str, str, str]]:
    """One row per export format: its agreement with Keras on the test set, in its own runtime."""
    rows = []
    for export_format, check in exports.items():
        if "agreement" not in check:
            rows.append((f"Export to {export_format}", check.get("error", "not measured"), "", ""))
            continue
        value = f"{check['agreement']:.2%} top-1, max diff {check['max_abs_difference']:.1e}"
        value += f" ({check['num_images']} images)"
        rows.append((f"Export to {export_format}, agreement with Keras in its own runtime", value,
                     ">= 99.9%, <= 1e-4", _goal(check["passes"])))  # fmt: skip
    return rows


def serving_rows(serving: dict) -> list[tuple[str, str, str, str]]:
    """LiteRT's and TensorFlow's predictor: start-up, memory, one flip-averaged image, 8 threads."""
    names = {"litert": "LiteRT as the app serves", "litert_1_thread": "LiteRT, 1 thread", "tensorflow": "TensorFlow"}
    rows = []
    for key, name in names.items():
        figures = serving.get(key, {})
        if "predict_one_p50_ms" not in figures:
            continue
        if key == "litert":
            name += f" ({figures['interpreter_threads']} threads in the first interpreter, one in each added)"
        p50 = figures["predict_one_p50_ms"]
        goal = ("<= 0.8 ms", _goal(p50 <= 0.8)) if key == "litert" else ("", "")
        value = f"{p50:.2f} / {figures['predict_one_p95_ms']:.2f} ms"
        rows.append((f"{name}: one image flip-averaged, p50 / p95", value, *goal))
        rows.append((f"{name}: import + load / resident memory / answers per s with 8 threads",
                     f"{figures['import_and_load_s']:.1f} s / {figures['rss_mb_after_answers']:.0f} MB / "
                     f"{figures['answers_per_s_8_threads']:.0f}", "", ""))  # fmt: skip
    return rows


def faithfulness_rows(faithful: dict) -> list[tuple[str, str, str, str]]:
    """Deletion / insertion of every explanation method; the default explanation's goals."""
    if "methods" not in faithful:
        return []
    rows = [(f"Faithfulness ({faithful['num_images']} test images), {name}: deletion / insertion",
             f"{figures['deletion']:.3f} / {figures['insertion']:.3f}", "", "")
            for name, figures in faithful["methods"].items()]  # fmt: skip
    # Found by name: results.json is written with sorted keys, so the measured order is lost.
    default = next(figures for name, figures in faithful["methods"].items() if name.startswith(DEFAULT_EXPLANATION))
    ok = default["deletion"] <= 0.25 and default["insertion"] >= 0.60
    rows.append(("Default explanation: deletion / insertion", f"{default['deletion']:.3f} / {default['insertion']:.3f}",
                 "<= 0.25 / >= 0.60", _goal(ok)))  # fmt: skip
    single = faithful["default_explanation_one_image"]
    rows.append(("Default explanation, one image, p50 / p95", f"{single['p50_ms']:.1f} / {single['p95_ms']:.1f} ms",
                 "< 50 ms", _goal(single["p50_ms"] < 50)))  # fmt: skip
    return rows


def markdown_table(results: dict) -> str:
    machine = results["machine"]
    lines = [
        f"Measured on {machine['cpu']}, {machine['cores']} cores, {machine['system']}, Python {machine['python']}, "
        f"at {machine['measured_at']} by `make bench`.",
        "",
        "| Measure | Value | Goal | |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {measure} | {value} | {goal} | {met} |" for measure, value, goal, met in table_rows(results)]
    errors = [f"- `{name}` failed: {result['error'].splitlines()[-1]}" for name, result in results.items()
              if isinstance(result, dict) and "error" in result]  # fmt: skip
    return "\n".join(lines + (["", *errors] if errors else [])) + "\n"


def update_readme(table: str) -> None:
    text = README.read_text(encoding="utf-8")
    if START_MARKER in text and END_MARKER in text:
        before, rest = text.split(START_MARKER, 1)
        after = rest.split(END_MARKER, 1)[1]
        README.write_text(f"{before}{START_MARKER}\n{table}{END_MARKER}{after}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(MEASUREMENTS), help="run only these")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() and args.only else {}
    for name in args.only or MEASUREMENTS:
        print(f"measuring {name}...", flush=True)
        results[name] = run_measurement(*MEASUREMENTS[name])
        print(json.dumps(results[name], indent=2), flush=True)
    results["machine"] = machine_description()
    RESULTS_JSON.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    table = markdown_table(results)
    RESULTS_MD.write_text("# Benchmark results\n\n" + table)
    update_readme(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
