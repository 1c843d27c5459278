"""docs/RESULTS.md: every column benchmarks/report.py renders from the committed JSON is filled."""

import json

from benchmarks import report


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_every_rendered_column_is_filled():
    text = report.render()
    tables, header = 0, None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if set(line) <= set("|-: "):
            continue  # the rule under a header
        if header is None:
            header, tables = cells, tables + 1
            continue
        assert len(cells) == len(header), line
        for name, cell in zip(header, cells):
            assert cell and cell.lower() not in ("none", "nan", "-nan"), (name, line)
    assert tables >= 10, "the report lost its tables"


def test_the_committed_page_is_what_the_report_renders():
    assert report.DOC.read_text() == report.render()


def _filled(text: str) -> None:
    """Every row of every table in ``text`` has as many non-empty cells as its header."""
    header = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
        elif not set(line) <= set("|-: "):
            cells = _cells(line)
            header = header or cells
            assert len(cells) == len(header) and all(cells), line


def test_budgets_section_marks_what_is_not_measured(tmp_path, monkeypatch):
    from benchmarks import report_budgets

    monkeypatch.setattr(report_budgets, "RESULTS", tmp_path)
    assert "Not run yet: `python -m benchmarks.budgets train`" in report_budgets.section()
    row = {"model": "lenet5", "seed": 0, "widths": [20, 50, 500], "params": 431080,
           "macs": 2338170, "macs_fraction": 1.0, "accuracy": 0.98, "seconds": 60.0}
    rows = [{**row, "method": "baseline", "budget": None},
            {**row, "method": "tsrelu", "budget": 0.25, "widths": [8, 25, 500],
             "macs_fraction": 0.25, "macs": 584542, "accuracy": 0.975}]
    provenance = {"command": "python -m benchmarks.budgets train", "git": {"commit": "abc",
                  "dirty": False}, "torch": "2", "machine": "m", "load_average_1min": 1.0,
                  "data": {"split": "s"}, "protocol": "p"}
    (tmp_path / report_budgets.TRAIN_JSON).write_text(json.dumps(
        {"provenance": provenance, "epochs": 20, "rows": rows}))
    text = report_budgets.section()
    _filled(text)
    assert "| 25% | tsrelu | 1 | 8-25-500 |" in text
    assert "| 25% | l0 | 0 | not yet measured: `python -m benchmarks.budgets train --models " \
           "lenet5 --methods l0` |" in text
    assert "not yet measured | not yet measured |" in text  # no latency JSON: untimed
    assert "Not run yet: `python -m benchmarks.budgets train --models resnet`" in text
    assert "Not run yet: `python -m benchmarks.budgets sweep`" in text


def test_demo_section_marks_a_stale_timing_and_a_missing_budgeted_row(monkeypatch):
    old = {"provenance": {"command": "c", "git": {}, "epochs": 1, "seeds": 1, "torch": "2",
                          "machine": "m", "data": {"split": "s"}},
           "runs": [{"seed": 0, **{r: {"architecture": "1-2", "params": 1, "accuracy": 0.5}
                                   for r in ("baseline", "learned", "from_scratch")}}],
           "mean": {r: {"params": 1, "macs": 2, "latency_ms": 200.0, "accuracy": 0.5}
                    for r in ("baseline", "learned", "from_scratch")}}
    monkeypatch.setattr(report, "_load", lambda name: old)
    text = report.core_demo()
    _filled(text)
    assert "| budgeted | not yet measured: rerun `python -m benchmarks.core_lenet` |" in text
    assert text.count(report.STALE_TIMING) == 3 and "200.00" not in text
