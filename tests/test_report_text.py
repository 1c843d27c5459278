"""docs/RESULTS.md says what its rows show: headings and verdicts generated from the data, every
section states its seeds, epochs, split and n per row, and one seed never shows a spread."""

import json
import re

import pytest

from benchmarks import report, report_budgets


def _table(text: str, first_cell: str) -> list[dict[str, str]]:
    """The rows of the table in ``text`` whose header starts with ``first_cell``, by column."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def _sweep(rows: list[dict], monkeypatch, tmp_path) -> str:
    monkeypatch.setattr(report_budgets, "RESULTS", tmp_path)
    provenance = {"command": "python -m benchmarks.budgets sweep", "git": {"commit": "abc"},
                  "seeds": 3, "data": {"name": "mnist5k", "train": 3500, "valid": 500,
                                       "test": 1000}}
    (tmp_path / report_budgets.SWEEP_JSON).write_text(json.dumps(
        {"provenance": provenance, "rows": rows}))
    return report_budgets.sweep_section()


def _check_sweep_claim(text: str) -> None:
    """The sweep's heading against its own table: "hit" only where every row's every seed is
    within the tolerance under its budget; otherwise the count and every missed case named."""
    heading = text.splitlines()[0]
    rows = _table(text, "model")
    assert rows
    for row in rows:  # the hit column agrees with the reached / budget it stands beside
        n = int(row["n (seeds)"].removeprefix("n="))
        values = re.findall(r"\d\.\d{3}", row["reached / budget"])
        low, high = (float(values[1]), float(values[2])) if n > 1 else (float(values[0]),) * 2
        landed = 1 - report_budgets.HIT - 5e-4 <= low and high <= 1 + 5e-4
        assert (row["hit"] == "yes") == landed, row
    hits = sum(row["hit"] == "yes" for row in rows)
    if "are hit" in heading:
        assert hits == len(rows) and "**Missed**" not in text
    else:
        assert f"hit in {hits} of {len(rows)} cases" in heading
        missed = text.split("**Missed**", 1)[1].split("\n", 1)[0]
        for row in rows:
            if row["hit"] != "yes":
                assert f"{row['model']} {row['budget']} at {row['epochs']} epochs" in missed


def test_the_committed_sweep_heading_claims_what_its_table_shows():
    path = report_budgets.RESULTS / report_budgets.SWEEP_JSON
    if not path.exists():
        pytest.skip("no sweep results committed")
    _check_sweep_claim(report_budgets.sweep_section())


def test_the_sweep_says_hit_only_when_every_seed_lands_within_the_tolerance(monkeypatch,
                                                                            tmp_path):
    row = {"model": "lenet5", "kind": "macs", "budget": 0.25, "epochs": 10, "seed": 0,
           "ratio": 0.99, "controller_ratio": 0.8, "accuracy": 0.97}
    good = [{**row, "seed": s} for s in range(3)] + [{**row, "epochs": 30, "ratio": 0.985}]
    text = _sweep(good, monkeypatch, tmp_path)
    assert text.startswith("### Budgets are hit at 10 and 30 epochs: every seed within 2% under")
    _check_sweep_claim(text)
    # one seed 2.1% under, and one case over its budget: no "hit", both named
    bad = [*good[:2], {**row, "seed": 2, "ratio": 0.979},
           {**row, "kind": "params", "budget": 40_000, "ratio": 1.01}]
    text = _sweep(bad, monkeypatch, tmp_path)
    assert "are hit" not in text.splitlines()[0]
    assert "hit in 0 of 2 cases" in text.splitlines()[0]
    assert "lenet5 25% macs at 10 epochs (0.979)" in text
    assert "lenet5 40,000 params at 10 epochs (1.010)" in text
    _check_sweep_claim(text)
    # a case of one seed: n=1, no min-max spread
    one = _table(_sweep([row], monkeypatch, tmp_path), "model")[0]
    assert one["n (seeds)"] == "n=1" and one["reached / budget"] == "0.990"


def test_the_budgets_heading_promises_only_methods_with_rows():
    rows = [{"method": m} for m in ("baseline", "tsrelu", "l0", "tp-l1", "tp-taylor")]
    assert report_budgets.heading(rows) == (
        "## Matched MACs budgets: archlearn (tsrelu, l0) against Torch-Pruning")
    rows += [{"method": "morphnet"}, {"method": "optuna"}]
    assert report_budgets.heading(rows) == ("## Matched MACs budgets: archlearn (tsrelu, l0) "
                                            "against MorphNet, Torch-Pruning and Optuna")
    trained = report_budgets.RESULTS / report_budgets.TRAIN_JSON
    if trained.exists():  # the committed page: a peer in the heading has rows in the table
        text = report_budgets.section()
        title = text.strip().splitlines()[0]
        have = {r["method"] for r in json.loads(trained.read_text())["rows"]}
        for peer, methods in (("MorphNet", {"morphnet"}), ("Optuna", {"optuna"}),
                              ("Torch-Pruning", {"tp-l1", "tp-taylor"})):
            assert (peer in title) == bool(have & methods), (peer, title)


def test_a_row_of_one_seed_shows_n1_and_no_spread(monkeypatch, tmp_path):
    monkeypatch.setattr(report_budgets, "RESULTS", tmp_path)
    row = {"model": "resnet", "seed": 0, "widths": [8, 8, 8, 16, 16], "params": 6306,
           "macs": 2565408, "macs_fraction": 1.0, "accuracy": 0.93, "seconds": 60.0}
    rows = [{**row, "method": "baseline", "budget": None},
            {**row, "method": "tsrelu", "budget": 0.25, "macs_fraction": 0.24, "accuracy": 0.8},
            {**row, "method": "tsrelu", "budget": 0.25, "macs_fraction": 0.24, "accuracy": 0.8,
             "seed": 1}]
    provenance = {"command": "python -m benchmarks.budgets train", "git": {"commit": "abc",
                  "dirty": False}, "torch": "2", "machine": "m", "load_average_1min": 1.0,
                  "seeds": 2, "epochs": 20, "data": {"split": "s"}, "protocol": "p"}
    (tmp_path / report_budgets.TRAIN_JSON).write_text(json.dumps(
        {"provenance": provenance, "epochs": 20, "rows": rows}))
    table = _table(report_budgets.section(), "budget")
    baseline = next(r for r in table if r["method"] == "baseline" and r["n (seeds)"] == "n=1")
    assert baseline["accuracy % (sd)"] == "93.00 (n=1, no sd)"
    two = next(r for r in table if r["method"] == "tsrelu" and r["budget"] == "25%")
    assert two["n (seeds)"] == "n=2" and two["accuracy % (sd)"] == "80.00 (0.00)"
    # and nowhere on the page does a row of one seed carry a spread
    for line in report.render().splitlines():
        if line.startswith("|") and re.search(r"\bn=1\b", line):
            assert "(0.00)" not in line and "+-" not in line and "±" not in line, line


def test_every_section_states_seeds_epochs_split_and_n():
    from benchmarks import report_compress, report_methods, report_minilm, report_seeds, report_zoo

    # the defaults' selection on validation has a setup line once its results file exists
    selection = (report.RESULTS / "select_defaults.json").exists()
    renderers = {report.core_demo: 1, report.user_loop: 1, report.peers: 1,
                 report.paper_section: 7, report.structure_section: 2,
                 report_budgets.section: 2, report_methods.section: 3 + selection,
                 report_seeds.section: 3, report_minilm.section: 1,
                 report_compress.section: 2, report_zoo.section: 1}
    for render, sections in renderers.items():
        text = render()
        lines = [line for line in text.splitlines() if "Setup: " in line]
        assert len(lines) == sections, (render.__name__, lines)  # one per results file
        for line in lines:
            assert "seed" in line and "n=" in line, line
            assert "epoch" in line and "data " in line, line
            assert "split" in line or "test" in line or "held-out" in line, line
