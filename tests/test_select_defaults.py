"""The selection of the methods' defaults on validation (benchmarks/select_defaults.py): its
criteria, its grids, and the report section that shows it."""

import json

import pytest

from benchmarks import report_methods, select_defaults
from benchmarks.select_defaults import select_accurate, select_smallest


def _v(acc: float, params: float = 0.0, sd: float = 0.0) -> dict:
    return {"accuracy_mean": acc, "params_mean": params, "accuracy_std": sd}


def test_the_smallest_model_within_one_point_of_the_best_is_selected():
    variants = {"best": _v(0.970, 9000), "near": _v(0.961, 5000), "far": _v(0.955, 1000)}
    assert select_smallest(variants) == "near"  # "far" is 1.5 points below the best
    assert select_smallest(variants, tolerance=0.02) == "far"
    assert select_smallest(variants, tolerance=0.0) == "best"
    # exactly one point below still counts; equal sizes go to the more accurate
    assert select_smallest({"a": _v(0.97, 10), "b": _v(0.96, 5)}) == "b"
    assert select_smallest({"a": _v(0.965, 5), "b": _v(0.96, 5)}) == "a"


def test_a_budgeted_default_changes_only_beyond_the_seed_spread():
    variants = {"default": _v(0.950, sd=0.004), "other": _v(0.956, sd=0.005)}
    assert select_accurate(variants, "default") == "other"  # +0.6 points > 0.5 sd
    variants["default"]["accuracy_std"] = 0.008
    assert select_accurate(variants, "default") == "default"
    assert select_accurate({"default": _v(0.96), "other": _v(0.95)}, "default") == "default"


@pytest.mark.parametrize("method", sorted(select_defaults.GRIDS))
def test_every_grid_holds_the_current_defaults(method):
    variants = select_defaults.grid(method)
    assert select_defaults.defaults(method) in variants
    assert len({select_defaults.label(v) for v in variants}) == len(variants)


def test_the_tasks_carry_no_test_split():
    all_tasks, digits, mnist = select_defaults.tasks()
    assert digits["valid"] and mnist["valid"] == select_defaults.MNIST_VALID
    for task in all_tasks.values():
        assert "test" not in task and len(task["valid"]) and len(task["train"])


def test_the_report_marks_the_default_and_the_selection(tmp_path):
    run = {"seed": 0, "widths": [4, 3], "params": 100, "macs_fraction": 0.5, "accuracy": 0.9}
    variant = {"runs": [run], "widths": ["4-3"], "params_mean": 100.0,
               "macs_fraction_mean": 0.5, "accuracy_mean": 0.9, "accuracy_std": 0.0}
    payload = {
        "provenance": {"command": "python -m benchmarks.select_defaults", "seeds": 1,
                       "epochs": {"digits": 30}, "protocol": "p",
                       "data": {"digits": {"name": "digits", "train": 1010, "valid": 337}}},
        "methods": {"l1": {"task": "digits", "criterion": "fewest params",
                           "variants": {"lam=0.005": variant, "lam=0.01": variant,
                                        "lam=0.02": variant},
                           "default_variant": "lam=0.005", "selected": "lam=0.01",
                           "agrees": False}}}
    (tmp_path / "select_defaults.json").write_text(json.dumps(payload))
    text = report_methods.defaults_section(tmp_path)
    assert "| l1 | lam=0.005 | 4-3 | 100 | 50.0 | 90.00 (0.00) | default |" in text
    assert "| l1 | lam=0.01 | 4-3 | 100 | 50.0 | 90.00 (0.00) | selected |" in text
    assert "| l1 | lam=0.02 | 4-3 | 100 | 50.0 | 90.00 (0.00) | grid |" in text  # no empty cell
    assert "digits (1,010 train / 337 validation)" in text and "validation split" in text
    assert "_Not run yet" in report_methods.defaults_section(tmp_path / "none")
