"""Provenance that cannot mislead: what a result records, when the report calls it stale, and the
refusal to write benchmarks/results/ from a dirty tree."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from archlearn import provenance as prov
from archlearn.io import write_json
from benchmarks import report

PYPROJECT = """[project]
name = "x"
dependencies = ["torch>=2.3", "torch-pruning~=1.6.1"]
[project.optional-dependencies]
hf = ["transformers>=4.46"]
"""


def _git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A small git checkout laid out like archlearn's: a package, a benchmark, a results folder."""
    (tmp_path / "src" / "archlearn").mkdir(parents=True)
    (tmp_path / "src" / "archlearn" / "core.py").write_text("X = 1\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "bench.py").write_text("Y = 1\n")
    (tmp_path / "benchmarks" / "results" / "old.json").write_text("{}\n")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def _record(root: Path, files: list[str] | None = None, **extra) -> dict:
    """A results file as a clean run in ``root`` that imported ``files`` writes it."""
    files = files or [*prov.package_files(root), "benchmarks/bench.py"]
    p = {"command": "python -m benchmarks.bench", "git": prov.git_state(root),
         "allow_dirty": False, "versions": {"torch": "2.13.0", "torch-pruning": "1.6.1"},
         "sources": {"scope": prov.LOADED, "files": prov.hash_files(root, files),
                     "changed_during_run": []}, **extra}
    return {"provenance": p, "rows": []}


@pytest.fixture
def as_checkout(checkout: Path, monkeypatch) -> Path:
    """``checkout`` as the one archlearn.provenance records from, with its modules
    ``src/archlearn/used.py`` and ``benchmarks/bench.py`` imported and ``unused.py`` not."""
    import importlib.util
    import sys

    package = checkout / "src" / "archlearn"
    (package / "used.py").write_text("U = 1\n")
    (package / "unused.py").write_text("V = 1\n")
    _git(checkout, "add", ".")
    _git(checkout, "commit", "-q", "-m", "two modules")
    monkeypatch.setattr(prov, "_SOURCE", package)
    monkeypatch.setattr(prov, "_CHECKOUT", checkout)
    monkeypatch.setattr(prov, "_BASE", checkout)
    monkeypatch.setattr(prov, "_AT_START", prov.hash_files(
        checkout, [*prov.package_files(checkout), "benchmarks/bench.py"]))
    for name, path in (("_pt_used", package / "used.py"),
                       ("_pt_bench", checkout / "benchmarks" / "bench.py")):
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setitem(sys.modules, name, module)
    return checkout


def test_a_result_records_only_the_files_its_run_imported(as_checkout):
    record = prov.source_record()
    assert sorted(record["files"]) == ["benchmarks/bench.py", "src/archlearn/used.py"]
    assert record["changed_during_run"] == []
    payload = _record(as_checkout, files=sorted(record["files"]))
    assert report.stale_reasons(payload, root=as_checkout) == []
    # a module the run never imported, edited or added: the result still stands
    (as_checkout / "src" / "archlearn" / "unused.py").write_text("V = 2\n")
    (as_checkout / "src" / "archlearn" / "new.py").write_text("")
    assert report.stale_reasons(payload, root=as_checkout) == []
    # the module it imported, edited: stale, naming it
    (as_checkout / "src" / "archlearn" / "used.py").write_text("U = 2\n")
    assert report.stale_reasons(payload, detail=True, root=as_checkout) == [
        "its source files changed since it ran: src/archlearn/used.py (changed)"]


def test_write_json_records_the_modules_imported_by_the_time_it_writes(as_checkout, tmp_path,
                                                                        monkeypatch):
    import importlib.util
    import sys

    block = prov.provenance("python -m benchmarks.bench")  # built before the work
    foreign = {**block, "sources": {**block["sources"], "run": "another process"}}
    assert "src/archlearn/unused.py" not in block["sources"]["files"]
    spec = importlib.util.spec_from_file_location(
        "_pt_unused", as_checkout / "src" / "archlearn" / "unused.py")
    assert spec is not None and spec.loader is not None
    monkeypatch.setitem(sys.modules, "_pt_unused", importlib.util.module_from_spec(spec))
    write_json(tmp_path / "r.json", {"provenance": block,
                                     "nested": {"provenance": prov.merged(foreign, block)}})
    written = json.loads((tmp_path / "r.json").read_text())
    assert "src/archlearn/unused.py" in written["provenance"]["sources"]["files"]
    first, last = written["nested"]["provenance"]["parts"]
    assert first == json.loads(json.dumps(foreign))  # another run's block: as it was
    assert "src/archlearn/unused.py" in last["sources"]["files"]
    assert "src/archlearn/unused.py" not in block["sources"]["files"]  # the caller's: untouched


def test_a_result_records_commit_tree_versions_command_and_source_hashes():
    import benchmarks.report  # noqa: F401  a benchmark module this process has loaded

    p = prov.provenance("python -m benchmarks.something --seeds 3", seeds=3)
    assert p["command"] == "python -m benchmarks.something --seeds 3" and p["seeds"] == 3
    assert p["command_line"].startswith("python ")
    assert len(p["git"]["commit"]) == 40 and isinstance(p["git"]["dirty"], bool)
    assert isinstance(p["git"]["changes"], list) and isinstance(p["allow_dirty"], bool)
    assert {"torch", "torch-pruning", "transformers"} <= set(p["versions"])
    files = p["sources"]["files"]
    assert "src/archlearn/provenance.py" in files and "benchmarks/report.py" in files
    # the files this process imported, not the whole package
    assert p["sources"]["scope"] == prov.LOADED and set(files) == set(prov.loaded_files())
    # in a fresh interpreter (this one may have imported every module by now), a module the run
    # never imported is not among its sources
    code = ("import archlearn.provenance as p, benchmarks.report; "
            "files = p.provenance('x')['sources']['files']; "
            "print('src/archlearn/jobs/minilm_distill/baselines.py' in files, "
            "'src/archlearn/provenance.py' in files)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=report.ROOT, timeout=300, check=True).stdout.split()
    assert out == ["False", "True"], out
    assert all(len(h) == prov.HASH_CHARS for h in files.values())
    assert isinstance(p["sources"]["changed_during_run"], list)
    json.dumps(p)  # it goes into a JSON file as it is


def test_a_file_edited_while_the_run_goes_on_is_recorded_as_it_started(monkeypatch):
    name = "src/archlearn/provenance.py"
    monkeypatch.setitem(prov._AT_START, name, "0" * prov.HASH_CHARS)
    record = prov.source_record()
    assert record["files"][name] == "0" * prov.HASH_CHARS  # the code the run loaded
    assert name in record["changed_during_run"]


def test_changed_sources_names_changed_removed_and_added_files(checkout):
    record = prov.hash_files(checkout, [*prov.package_files(checkout), "benchmarks/bench.py"])
    clean = _record(checkout)["provenance"]  # a clean run's block
    assert prov.changed_sources(record, checkout) == []
    (checkout / "benchmarks" / "bench.py").write_text("Y = 2\n")
    (checkout / "src" / "archlearn" / "core.py").unlink()
    (checkout / "src" / "archlearn" / "new.py").write_text("")
    (checkout / "benchmarks" / "other.py").write_text("")  # a benchmark the run did not load
    assert prov.changed_sources(record, checkout) == [
        "src/archlearn/core.py (removed)", "benchmarks/bench.py (changed)"]
    # a record of every file of the package (written before only the imported ones were): a
    # file added since counts too, as it may have been run
    assert prov.changed_sources(record, checkout, whole_package=True) == [
        "src/archlearn/core.py (removed)", "benchmarks/bench.py (changed)",
        "src/archlearn/new.py (added)"]
    old = {"provenance": {**clean, "sources": {"files": record}}}
    assert report.stale_reasons(old, detail=True, root=checkout) == [
        "its source files changed since it ran: src/archlearn/core.py (removed), "
        "benchmarks/bench.py (changed), src/archlearn/new.py (added)"]


def test_a_result_whose_source_hash_no_longer_matches_the_files_is_stale(checkout):
    payload = _record(checkout)
    assert report.stale_reasons(payload, root=checkout) == []
    (checkout / "src" / "archlearn" / "core.py").write_text("X = 2\n")
    assert report.stale_reasons(payload, root=checkout) == ["its source files changed since it ran"]
    assert report.stale_reasons(payload, detail=True, root=checkout) == [
        "its source files changed since it ran: src/archlearn/core.py (changed)"]


def test_every_other_reason_to_call_a_result_stale(checkout):
    def reasons(payload):
        return report.stale_reasons(payload, root=checkout)

    fresh = _record(checkout)
    p = fresh["provenance"]
    assert reasons({"rows": []}) == ["no provenance recorded"]
    old = {"provenance": {"command": "c", "git": {"commit": "abc", "dirty": False},
                          "torch": "2.13.0", "torch_pruning": "1.6.0"}}
    assert reasons(old) == ["no source hash recorded", "torch-pruning 1.6.0 outside its pin "
                                                       "~=1.6.1"]
    assert reasons({"provenance": {**p, "git": {"commit": None}}}) == ["no commit recorded"]
    dirty = {**p, "git": {**p["git"], "dirty": True, "changes": ["src/archlearn/core.py"]}}
    assert reasons({"provenance": dirty}) == ["written from a tree with local changes"]
    # told --allow-dirty: its hashes are of the files it ran, which is what is checked; the
    # page and the status say so without calling it stale
    allowed = {"provenance": {**dirty, "allow_dirty": True}}
    assert reasons(allowed) == [] and report.notes(allowed, detail=True) == [
        "written with --allow-dirty from a tree with local changes: src/archlearn/core.py"]
    mark = report.stale(allowed, "budgets.json", root=checkout)
    assert mark.startswith("_Written with `--allow-dirty`") and "**Stale" not in mark
    during = {**p, "sources": {**p["sources"], "changed_during_run": ["src/archlearn/core.py"]}}
    assert reasons({"provenance": during}) == ["source files changed while it ran"]
    assert reasons({"provenance": {**p, "versions": {"transformers": "4.40.0"}}}) == [
        "transformers 4.40.0 outside its pin >=4.46"]
    # nested blocks (one per experiment) are each checked
    assert reasons({"experiments": {"a": fresh, "b": old}}) == reasons(old)
    # rows of several runs: every run's provenance, or the file says it kept only one
    assert reasons({**fresh, "commands": ["a", "b"]}) == [
        "joins the rows of 2 runs but keeps one run's provenance"]
    assert reasons({"provenance": prov.merged(p, p), "commands": ["a", "b"]}) == []
    assert reasons({"provenance": prov.merged(old["provenance"], p)}) == reasons(old)


def test_merged_keeps_every_part_once():
    a, b, c = {"command": "a"}, {"command": "b"}, {"command": "c"}
    m = prov.merged(prov.merged(a, b), b, c)
    assert m["command"] == "c" and [x["command"] for x in m["parts"]] == ["a", "b", "c"]
    assert list(report.blocks({"provenance": m})) == m["parts"]
    with pytest.raises(ValueError):
        prov.merged(None)


def test_results_are_refused_from_a_dirty_tree_unless_allowed(checkout, monkeypatch):
    monkeypatch.delenv(prov.ALLOW_DIRTY_ENV, raising=False)
    results = checkout / "benchmarks" / "results"
    write_json(results / "old.json", {"a": 1})  # clean: written
    write_json(results / "old.json", {"a": 2})  # a results file rewritten is not a dirty tree
    assert prov.git_state(checkout)["dirty"] is False
    (checkout / "src" / "archlearn" / "core.py").write_text("X = 3\n")
    with pytest.raises(prov.DirtyTreeError, match=r"local changes \(src/archlearn/core.py\).*"
                                                  r"--allow-dirty"):
        write_json(results / "new.json", {})
    assert not (results / "new.json").exists()
    write_json(checkout / "elsewhere" / "x.json", {})  # outside benchmarks/results: no check
    monkeypatch.setenv(prov.ALLOW_DIRTY_ENV, "1")
    write_json(results / "new.json", {})
    assert (results / "new.json").exists()


def test_allow_dirty_flag(monkeypatch):
    monkeypatch.delenv(prov.ALLOW_DIRTY_ENV, raising=False)
    parser = prov.add_allow_dirty(argparse.ArgumentParser())
    assert parser.parse_args([]).allow_dirty is False and not prov.dirty_allowed()
    assert parser.parse_args(["--allow-dirty"]).allow_dirty is True
    assert prov.dirty_allowed() and prov.provenance("c")["allow_dirty"] is True


def test_budgets_merge_keeps_every_runs_provenance(checkout, tmp_path, monkeypatch):
    from benchmarks import budgets

    monkeypatch.setattr(budgets, "plots", lambda out: None)  # no figures needed here
    row = {"model": "lenet5", "budget": 0.25, "seed": 0, "accuracy": 0.9}
    current = _record(checkout)["provenance"]
    old = {"command": "c", "git": {"commit": "abc", "dirty": False}}  # no source hashes
    runs = {"a": (current, "tsrelu"), "b": (old, "l0")}
    for folder, (block, method) in runs.items():
        (tmp_path / folder).mkdir()
        write_json(tmp_path / folder / budgets.TRAIN_JSON, {
            "provenance": block, "epochs": 20, "commands": [f"train {method}"],
            "rows": [{**row, "method": method}]})
    budgets.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    joined = json.loads((tmp_path / "out" / budgets.TRAIN_JSON).read_text())
    assert [r["method"] for r in joined["rows"]] == ["tsrelu", "l0"]
    assert joined["provenance"]["parts"] == json.loads(json.dumps([current, old]))
    # one part without source hashes: the whole file is stale, and says why
    assert report.stale_reasons(joined, root=checkout) == ["no source hash recorded"]
    only_current = {**joined, "provenance": prov.merged(current), "commands": ["train tsrelu"]}
    assert report.stale_reasons(only_current, root=checkout) == []


def test_modules_a_worker_imported_count_as_the_runs():
    # in a fresh interpreter: this one may have imported every module of the package by now
    code = """
import pkgutil, sys
import archlearn.provenance as prov
from benchmarks import parallel, report
name = "archlearn.fidelity"
assert name not in sys.modules, "imported already"
path = "src/archlearn/fidelity.py"
assert path not in prov.source_record()["files"]
done = list(parallel.completed(pkgutil.resolve_name, [name + ":__name__"], 1))
assert done == [(name + ":__name__", name)], done
assert name not in sys.modules  # only the worker imported it
record = prov.source_record()
assert record["files"][path] == prov.file_hash(report.ROOT / path)
assert path not in record["changed_during_run"]
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=report.ROOT, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]

