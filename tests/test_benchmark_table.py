"""The benchmark table's summary rows, read from results.json as `make bench` writes it."""

import json

from benchmarks.__main__ import faithfulness_rows

DEFAULT_NAME = "Default explanation (occlusion 7x7, stride 5, by brightness)"


def faithfulness_report() -> dict:
    """A faithfulness report gone through results.json: its methods come back in sorted order."""
    methods = {
        DEFAULT_NAME: {"deletion": 0.21, "insertion": 0.78},
        "Brightest first (ignores the model)": {"deletion": 0.31, "insertion": 0.76},
        "Random order (ignores the model)": {"deletion": 0.52, "insertion": 0.51},
    }
    report = {"num_images": 200, "methods": methods, "default_explanation_one_image": {"p50_ms": 16, "p95_ms": 18}}
    return json.loads(json.dumps(report, sort_keys=True))


def test_the_default_explanation_row_shows_the_default_method_whatever_the_order():
    report = faithfulness_report()
    assert next(iter(report["methods"])) != DEFAULT_NAME  # the order the table must not rely on

    summary = {name: (value, verdict) for name, value, _goal, verdict in faithfulness_rows(report)}

    assert summary["Default explanation: deletion / insertion"] == ("0.210 / 0.780", "met")


def test_the_trained_model_evaluation_row_judges_the_time_and_says_why_it_is_missing():
    from benchmarks.__main__ import trained_model_rows

    measured = {"model": "benchmark-quick", "evaluation_first_open_s": 0.4, "exceptions": 0}
    [(_, value, goal, verdict)] = trained_model_rows("all cores", measured)
    assert (value, goal, verdict) == ("0.40 s (`benchmark-quick`)", "<= 2.5 s", "met")
    [(_, _, _, verdict)] = trained_model_rows("all cores", {**measured, "evaluation_first_open_s": 2.6})
    assert verdict == "**missed**"
    [(_, value, _, verdict)] = trained_model_rows("one core", {"error": "TimeoutError: no Save button"})
    assert (value, verdict) == ("TimeoutError: no Save button", "**missed**")
    assert trained_model_rows("one core", None) == []
