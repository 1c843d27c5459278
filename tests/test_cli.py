"""The command line: help, listing, one-line errors with exit status 2, a tiny real run.

The installed ``archlearn`` script runs in a real process twice: once on its success path (no
arguments: the help, status 0) and once on bad input (status 2, exactly one line on stderr, no
traceback, nothing written). Everything else goes through the same entry point,
``archlearn.cli.main``, in this process (conftest's ``archlearn_main``), the tiny real run too
(each subprocess pays a fresh ``import torch``).
"""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BIN = Path(sys.executable).parent / "archlearn"


# the module's real processes, by the test that reads each
SCRIPTS = {"test_bad_input_is_one_line_exit_2": ["run", "lenet-mnist", "--oneshot"],
           "test_no_arguments_prints_the_help_and_unknown_command_is_one_line": []}


@pytest.fixture(scope="module", autouse=True)
def scripts(ahead, tmp_path_factory):
    """The installed script's real processes, started with the module (conftest.ahead): they
    run beside the in-process tests instead of after them. The bad input's ``--out`` is a
    folder of its own, checked to stay absent."""
    out = tmp_path_factory.mktemp("script") / "o"
    for test, args in SCRIPTS.items():
        if ahead.collected(test):
            ahead.start(test, [str(BIN), *args, *(["--out", str(out)] if args else [])],
                        capture_output=True, text=True, timeout=300)
    return SimpleNamespace(result=ahead.result, out=out)


def test_help_documents_commands(archlearn_main):
    code, out, _ = archlearn_main("--help")
    assert code == 0 and "run" in out and "list" in out
    _, out, _ = archlearn_main("run", "--help")
    assert "--seeds" in out and "--option" in out
    assert "--oneshot" in out and "--calibration" in out


def test_bad_input_is_one_line_exit_2(tmp_path, archlearn_main, scripts):
    # one real process: the installed script's exit status and stderr, imports and all (this
    # case, --oneshot, minilm-distill's only, reaches the job module before it is refused)
    r = scripts.result("test_bad_input_is_one_line_exit_2")
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not scripts.out.exists()
    for args in (["run", "nope"], ["run", "lenet-mnist", "-o", "lambda1=-1"],
                 ["run", "lenet-mnist", "-o", "bogus=1"], ["run", "lenet-mnist", "-o", "x"],
                 ["run", "lenet-mnist", "--no-such-flag"], ["run", "lenet-mnist", "--seeds", "x"],
                 ["run", "lenet-mnist", "--epochs"], ["run"],
                 ["run", "lenet-mnist", "--budget", "flops=0.5"],
                 ["run", "lenet-mnist", "--budget", "macs"],
                 ["run", "lenet-mnist", "--oneshot"],  # minilm-distill's only
                 ["run", "lenet-mnist", "--calibration", "64"]):
        code, _, err = archlearn_main(*args, "--out", str(tmp_path / "o"))
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
        assert not (tmp_path / "o").exists()


def test_no_arguments_prints_the_help_and_unknown_command_is_one_line(archlearn_main, scripts):
    # a real process: the installed script's success path, status 0
    r = scripts.result("test_no_arguments_prints_the_help_and_unknown_command_is_one_line")
    assert r.returncode == 0 and "Usage" in r.stdout
    code, out, _ = archlearn_main()
    assert code == 0 and "Usage" in out
    code, _, err = archlearn_main("no-such-command")
    assert code == 2 and err.strip().splitlines() == [
        "archlearn: error: No such command 'no-such-command'."]


def test_tiny_demo_run_writes_results(tmp_path, archlearn_main, quick_latency):
    # four one-epoch trainings and their timing (3 interleaved rounds, see quick_latency), through
    # the CLI's entry point in this process: about 15 s on 2 idle cores, more on a loaded machine
    code, out, err = archlearn_main("run", "lenet-mnist", "--epochs", "1", "--quiet", "--out",
                                    str(tmp_path), "--budget", "macs=0.25",
                                    stderr_only_from_archlearn=False)
    assert code == 0, err
    assert "baseline" in out and "learned" in out
    assert "budget 25% of the macs (573,250), reached 2" in out  # budget against reached
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["runs"][0]["learned"]["max_output_difference"] < 1e-4
    budgeted = results["runs"][0]["budgeted"]
    assert 0.95 * 0.25 <= budgeted["learned"]["budget"]["reached"] <= 0.25
    assert budgeted["macs"] == budgeted["learned"]["macs"]
    row = results["mean"]["baseline"]  # timed together: a median, its spread, the speed-up
    assert row["speedup"] == 1.0 and row["latency_iqr_ms"] >= 0
    assert results["provenance"]["data"]["train"] == 4000
    assert (tmp_path / "widths.png").stat().st_size > 1000


def test_minilm_options_reach_the_job(tmp_path, archlearn_main, monkeypatch):
    """``--gated`` and ``--baselines`` (flags or config fields) reach minilm-distill's ``run``
    as ``gated`` and ``baselines=True``; without them the job's defaults hold
    (no gated share passed, no baselines). The job itself is replaced by a stand-in with its
    signature that records what it got and stops."""
    import functools

    from archlearn import ArchlearnError
    from archlearn.jobs import minilm_distill

    calls: list[dict] = []

    @functools.wraps(minilm_distill.run)
    def stand_in(out, **settings):
        calls.append(settings)
        raise ArchlearnError("stand-in stops here")

    monkeypatch.setattr(minilm_distill, "run", stand_in)
    out = str(tmp_path / "o")
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"job": "minilm-distill", "out": out, "gated": 0.2,
                                  "baselines": True, "start": "full"}))
    for args in (["--gated", "0.3", "--baselines", "--extra", "0", "--out", out],
                 ["--out", out],
                 ["--config", str(config)]):
        code, _, err = archlearn_main("run", "minilm-distill", *args)
        assert code == 2 and "stand-in stops here" in err, (args, err)
    flags, plain, from_file = calls
    assert (flags["gated"], flags["baselines"], flags["extra"]) == (0.3, True, 0)
    assert not {"gated", "baselines", "truncate", "torch_pruning", "extra"} & set(plain)
    assert (from_file["gated"], from_file["baselines"], from_file["start"]) == (0.2, True, "full")
    _, out_help, _ = archlearn_main("run", "--help")
    assert "--gated" in out_help and "--baselines" in out_help
    # lenet-mnist takes neither, from flags or from a config file; the share is in (0, 1]
    config.write_text(json.dumps({"job": "lenet-mnist", "out": out, "baselines": False}))
    for args, match in ((["lenet-mnist", "--gated", "0.5"], "takes no gated"),
                        (["lenet-mnist", "--baselines"], "takes no baselines"),
                        (["lenet-mnist", "--extra", "10"], "takes no extra"),
                        (["lenet-mnist", "--config", str(config)], "takes no baselines"),
                        (["minilm-distill", "--gated", "0"], "gated"),
                        (["minilm-distill", "--gated", "1.01"], "gated")):
        code, _, err = archlearn_main("run", *args, "--out", out)
        assert code == 2 and match in err, (args, err)
    assert len(calls) == 3 and not (tmp_path / "o").exists()
