"""The command line: help, listing, one-line errors with exit status 2, a tiny real run."""

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "archlearn"


def _run(*args, cwd=None, timeout=300):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_help_documents_commands():
    r = _run("--help")
    assert r.returncode == 0 and "run" in r.stdout and "list" in r.stdout
    r = _run("run", "--help")
    assert "--seeds" in r.stdout and "--option" in r.stdout
    assert "--oneshot" in r.stdout and "--calibration" in r.stdout


def test_bad_input_is_one_line_exit_2(tmp_path):
    for args in (["run", "nope"], ["run", "lenet-mnist", "-o", "lambda1=-1"],
                 ["run", "lenet-mnist", "-o", "bogus=1"], ["run", "lenet-mnist", "-o", "x"],
                 ["run", "lenet-mnist", "--no-such-flag"], ["run", "lenet-mnist", "--seeds", "x"],
                 ["run", "lenet-mnist", "--epochs"], ["run"],
                 ["run", "lenet-mnist", "--budget", "flops=0.5"],
                 ["run", "lenet-mnist", "--budget", "macs"],
                 ["run", "lenet-mnist", "--oneshot"],  # minilm-distill's only
                 ["run", "lenet-mnist", "--calibration", "64"]):
        r = _run(*args, "--out", str(tmp_path / "o"))
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert not (tmp_path / "o").exists()


def test_no_arguments_prints_the_help_and_unknown_command_is_one_line():
    r = _run()
    assert r.returncode == 0 and "Usage" in r.stdout
    r = _run("no-such-command")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "archlearn: error: No such command 'no-such-command'."]


def test_tiny_demo_run_writes_results(tmp_path):
    # four one-epoch trainings and their timing: about a minute on 2 idle cores, several
    # times that on a loaded machine
    r = _run("run", "lenet-mnist", "--epochs", "1", "--quiet", "--out", str(tmp_path),
             "--budget", "macs=0.25", timeout=540)
    assert r.returncode == 0, r.stderr
    assert "baseline" in r.stdout and "learned" in r.stdout
    assert "budget 25% of the macs (573,250), reached 2" in r.stdout  # budget against reached
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["runs"][0]["learned"]["max_output_difference"] < 1e-4
    budgeted = results["runs"][0]["budgeted"]
    assert 0.95 * 0.25 <= budgeted["learned"]["budget"]["reached"] <= 0.25
    assert budgeted["macs"] == budgeted["learned"]["macs"]
    row = results["mean"]["baseline"]  # timed together: a median, its spread, the speed-up
    assert row["speedup"] == 1.0 and row["latency_iqr_ms"] >= 0
    assert results["provenance"]["data"]["train"] == 4000
    assert (tmp_path / "widths.png").stat().st_size > 1000
