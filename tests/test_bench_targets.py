"""`make bench-<target>`: each target fits in an hour on 2 cores, together they refresh every
section of docs/RESULTS.md, and `make results-status` names the target of each section."""

import shutil
import subprocess

import pytest

from benchmarks import report, run_all


def test_every_target_fits_in_an_hour_on_two_cores():
    assert len(run_all.TARGETS) > 1
    for target, steps in run_all.TARGETS.items():
        assert steps and run_all.minutes(target) <= run_all.LIMIT_MINUTES, target
        assert all(step.minutes > 0 and step.basis for step in steps), target


def test_every_step_runs_a_benchmark_that_exists():
    for steps in run_all.TARGETS.values():
        for step in steps:
            assert step.args[0] == "-m" and step.args[1].startswith("benchmarks.")
            module = step.args[1].split(".")[1]
            assert (report.ROOT / "benchmarks" / f"{module}.py").is_file(), step.command


def test_the_targets_together_refresh_every_section():
    sections = {name for name, _, _ in report.SECTIONS}
    written = {f for steps in run_all.TARGETS.values() for s in steps for f in s.writes}
    assert sections <= written, sections - written
    assert written <= sections, written - sections  # no step writes a file the page ignores
    assert set(run_all.RESUMABLE) <= sections


def test_results_status_names_the_make_target_of_every_section():
    text, _ = report.status()
    for name, _, command in report.SECTIONS:
        entry = text.split(f"\n{name}: ", 1)[1].split("\n\n", 1)[0]
        assert f"refresh: {command}\n" in entry + "\n"
        targets = [f"bench-{t}" for t in run_all.writers(name)]
        assert f"target: make {' '.join(targets)}" in entry
    # a section whose rows come from several targets says so, and which rows are made again
    assert "in this order, each within an hour" in report.make_targets("budgets.json")
    assert "the others made again" in report.make_targets("budgets_sweep.json")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_runs_a_target_through_run_all():
    done = subprocess.run(["make", "-n", "bench-core", "bench-list"],
                          cwd=report.ROOT, capture_output=True, text=True, check=True)
    assert "-m benchmarks.run_all core" in done.stdout
    assert "-m benchmarks.run_all --list" in done.stdout


def test_run_all_refuses_an_unknown_target(capsys):
    with pytest.raises(SystemExit):
        run_all.main(["no-such-target"])
    assert "unknown target" in capsys.readouterr().err
    run_all.main(["--list"])
    listing = capsys.readouterr().out
    assert all(f"make bench-{t} " in listing for t in run_all.TARGETS)
