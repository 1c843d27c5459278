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
    assert "| 25% | tsrelu | n=1 | 8-25-500 |" in text
    assert "| 25% | l0 | n=0 | not yet measured: `python -m benchmarks.budgets train --models " \
           "lenet5 --methods l0` |" in text
    assert "not yet measured | not yet measured |" in text  # no latency JSON: untimed
    assert "Not run yet: `python -m benchmarks.budgets train --models resnet`" in text
    assert "Not run yet: `python -m benchmarks.budgets sweep`" in text
    swept = {"model": "lenet5", "kind": "macs", "budget": 0.25, "epochs": 10, "seed": 0,
             "ratio": 0.99, "controller_ratio": 0.7, "accuracy": 0.97}
    (tmp_path / report_budgets.SWEEP_JSON).write_text(json.dumps(
        {"provenance": provenance, "rows": [swept]}))
    text = report_budgets.sweep_section()
    assert "| lenet5 | 25% macs | 10 | n=1 | 0.990 | yes |" in text
    assert "Not run yet for the residual CNN with BatchNorm (tiny_resnet, width 16): `python -m " \
           "benchmarks.budgets sweep --seeds 3 --models resnet`" in text


def test_demo_section_marks_a_stale_timing_and_a_missing_budgeted_row(monkeypatch):
    old = {"provenance": {"command": "c", "git": {}, "epochs": 1, "seeds": 1, "torch": "2",
                          "machine": "m", "data": {"split": "s"}},
           "runs": [{"seed": 0, **{r: {"architecture": "1-2", "params": 1, "accuracy": 0.5}
                                   for r in ("baseline", "learned", "from_scratch")}}],
           "mean": {r: {"params": 1, "macs": 2, "latency_ms": 200.0, "accuracy": 0.5}
                    for r in ("baseline", "learned", "from_scratch")}}
    monkeypatch.setattr(report, "load", lambda name, folder: old)
    text = report.core_demo()
    _filled(text)
    assert "| budgeted | not yet measured: rerun `python -m benchmarks.core_lenet` |" in text
    assert text.count(report.STALE_TIMING) == 3 and "200.00" not in text


def test_every_results_file_has_a_section_and_a_command():
    from benchmarks.budgets import LATENCY_JSON, SWEEP_JSON, TRAIN_JSON
    from benchmarks.compress import LENET_JSON, MINILM_JSON

    names = [name for name, _, _ in report.SECTIONS]
    assert len(names) == len(set(names))
    files = {p.relative_to(report.RESULTS).as_posix()
             for p in [*report.RESULTS.glob("*.json"), *report.RESULTS.glob("paper/*.json")]}
    assert files <= set(names)
    assert {TRAIN_JSON, LATENCY_JSON, SWEEP_JSON, LENET_JSON, MINILM_JSON} <= set(names)


def test_the_page_marks_in_bold_every_section_the_status_calls_stale():
    text, behind = report.status()
    page = report.render()
    stale = [(name, command) for name, _, command in report.SECTIONS
             if (report.RESULTS / name).exists()
             and report.stale_reasons(json.loads((report.RESULTS / name).read_text()))]
    assert page.count("**Stale: ") == len(stale)
    for name, command in stale:
        assert f"Refresh: `{command}`.**" in page
        assert f"{name}: stale\n" in text
    assert text.startswith(f"{len(report.SECTIONS) - behind} of {len(report.SECTIONS)} sections "
                           "current")


# the machinery under test (this change's files), carried into the clone so that the clone
# runs this code; the rest of the clone is the committed tree
_MACHINERY = ["src/archlearn/provenance.py", "src/archlearn/io.py", "benchmarks/report.py",
              "benchmarks/run_all.py", "benchmarks/budgets.py",
              *(f"benchmarks/report_{n}.py" for n in ("budgets", "methods", "seeds", "minilm",
                                                      "compress"))]
# a benchmark's run, simulated: import its module, record provenance, write its results file
_WRITE = """import json, sys
import importlib
importlib.import_module("benchmarks." + sys.argv[1])
from archlearn.io import write_json
from archlearn.provenance import provenance
path = "benchmarks/results/" + sys.argv[1] + ".json"
d = json.load(open(path))
d["provenance"] = {**d["provenance"], **provenance(d["provenance"]["command"])}
write_json(path, d)
"""
_READ = """import json
from benchmarks import report
print(json.dumps({"status": report.status()[0], "page": report.render(),
                  "doc": report.DOC.read_text()}))
"""


def test_a_source_edit_in_a_clone_marks_the_affected_sections_stale(tmp_path):
    """Two runs in a clone: the magnitude pruning benchmark (which imports archlearn.data) and
    the zoo (which does not). An edit marks stale exactly the sections whose runs imported the
    edited file."""
    import os
    import shutil
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from archlearn.provenance import ALLOW_DIRTY_ENV

    clone = tmp_path / "clone"
    env = {k: v for k, v in os.environ.items() if k != ALLOW_DIRTY_ENV}
    env.update(PYTHONPATH=f"{clone / 'src'}{os.pathsep}{clone}", OMP_NUM_THREADS="1")

    def git(*args):
        subprocess.run(["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t",
                        *args], check=True, capture_output=True)

    def python(*args, **extra):
        return subprocess.run([sys.executable, *args], cwd=clone, env={**env, **extra},
                              capture_output=True, text=True, timeout=300)

    def read():
        done = python("-c", _READ)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def edit(path: str) -> None:
        with open(clone / path, "a") as f:
            f.write("# edited\n")

    subprocess.run(["git", "clone", "-q", str(report.ROOT), str(clone)], check=True)
    for name in _MACHINERY:
        shutil.copy(report.ROOT / name, clone / name)
    git("add", *_MACHINERY)
    git("commit", "-q", "--allow-empty", "-m", "the machinery under test")
    stier, zoo = "magnitude_stier", "zoo"
    # two runs from the clean clone, each its own process, the two at once (neither reads what
    # the other writes: a results file changed in the tree does not make it dirty)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda bench: python("-c", _WRITE, bench), (stier, zoo)))
    for done in runs:
        assert done.returncode == 0, done.stderr
    recorded = {b: json.loads((clone / f"benchmarks/results/{b}.json").read_text())[
        "provenance"]["sources"]["files"] for b in (stier, zoo)}
    splits = "src/archlearn/data/splits.py"
    assert splits in recorded[stier] and splits not in recorded[zoo]
    assert "src/archlearn/io.py" in recorded[stier] and "src/archlearn/io.py" in recorded[zoo]
    done = python("-m", "benchmarks.report")  # the page as it would be committed
    assert done.returncode == 0, done.stderr
    git("add", "benchmarks/results", "docs/RESULTS.md")
    git("commit", "-q", "-m", "results")
    mark = {b: f"Refresh: `{report.COMMANDS[b + '.json']}`.**" for b in (stier, zoo)}

    def current(r: dict, *names: str) -> bool:
        return all(f"{b}.json: current at" in r["status"] and mark[b] not in r["page"]
                   for b in names)

    def stale(r: dict, *names: str) -> bool:
        return all(f"{b}.json: stale\n" in r["status"] and mark[b] in r["page"] for b in names)

    r = read()
    assert current(r, stier, zoo) and r["page"] == r["doc"]
    assert "target: make bench-methods" in r["status"]  # what refreshes magnitude_stier.json

    # a benchmark's own file: its section only
    edit(f"benchmarks/{stier}.py")
    r = read()
    assert stale(r, stier) and current(r, zoo)
    assert f"its source files changed since it ran: benchmarks/{stier}.py (changed)" in r["status"]
    assert "**Stale: its source files changed since it ran. Refresh:" in r["page"]
    assert r["page"] != r["doc"]  # the committed page no longer renders: its test fails
    git("checkout", "--", f"benchmarks/{stier}.py")

    # a file of the package that one run imported and the other did not
    edit(splits)
    r = read()
    assert stale(r, stier) and current(r, zoo)
    assert f"{splits} (changed)" in r["status"]
    git("checkout", "--", splits)
    assert current(read(), stier, zoo)

    # a file both runs imported: both sections
    edit("src/archlearn/io.py")
    r = read()
    assert stale(r, stier, zoo) and "src/archlearn/io.py (changed)" in r["status"]

    # and that tree is dirty: a run refuses to write its results, unless told --allow-dirty
    done = python("-c", _WRITE, stier)
    assert done.returncode != 0
    assert "refusing to write" in done.stderr and "src/archlearn/io.py" in done.stderr
    done = python("-c", _WRITE, stier, **{ALLOW_DIRTY_ENV: "1"})
    assert done.returncode == 0, done.stderr
    r = read()  # it ran the edited io.py, which is today's: current, with the note shown
    assert current(r, stier) and stale(r, zoo)
    assert "note: written with --allow-dirty from a tree with local changes" in r["status"]
    assert "_Written with `--allow-dirty`" in r["page"]
    git("checkout", "--", "src/archlearn/io.py")  # the edit it ran is gone: now it is stale
    r = read()
    assert stale(r, stier) and current(r, zoo)
