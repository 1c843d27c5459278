"""`make bench-<target>`: the benchmarks in targets that each finish within an hour on 2 cores.

    python -m benchmarks.run_all --list       # every target, its steps, the files they write
    python -m benchmarks.run_all core         # one target (what `make bench-core` runs)
    python -m benchmarks.run_all              # every target in turn (`make bench`: many hours)

Each step writes JSON (and plots) under benchmarks/results; `make results` re-renders the page,
and `make results-status` names the target that refreshes each section.

The minutes of a step are an estimate on the 2-core machine, from the seconds its results files
recorded (``seconds``, ``wall_seconds``, per-row ``seconds``); those runs shared the machine
(load averages 2-15 on 2 CPUs), so on a quiet machine a step is faster, never slower. Where a
file recorded no timing, ``basis`` says what the estimate scales from. A resumable benchmark
(``budgets train`` and ``sweep``) skips the rows that today's code already made (and makes the
others again), which is what lets its rows be split over several targets: each adds its share.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass

LIMIT_MINUTES = 60  # what a target may take on 2 cores (tests/test_run_all.py checks the sum)


@dataclass(frozen=True)
class Step:
    """One command of a target: ``python <args>``, the results files it writes (relative to
    benchmarks/results), and its estimated minutes on 2 cores with what they come from."""

    args: tuple[str, ...]
    writes: tuple[str, ...]
    minutes: float
    basis: str

    @property
    def command(self) -> str:
        """The command line, as a section's refresh line names it."""
        return " ".join(["python", *self.args])


def _budgets(*args: str, minutes: float, basis: str, seeds: int = 3) -> Step:
    return Step(("-m", "benchmarks.budgets", "train", "--seeds", str(seeds), "--epochs", "20",
                 *args), ("budgets.json",), minutes, basis)


def _sweep(*args: str, minutes: float, basis: str) -> Step:
    return Step(("-m", "benchmarks.budgets", "sweep", *args), ("budgets_sweep.json",), minutes,
                basis)


# budgets.json at 40c8cc9, from a clean worktree with nothing else running (1 thread): LeNet-5
# rows of tsrelu / l0 / morphnet 35-38 s each (27 rows, 1005 s); baseline 33 s, Torch-Pruning
# 22-29 s, Optuna 24-52 s (27 rows, 1354 s). The residual CNN (width 16): a dense epoch 6.4 s
# (LeNet-5 3.2 s), so a row of 20 epochs about 2-2.5x LeNet-5's. ``--seeds k`` runs seeds
# 0..k-1 and skips the rows today's code already made: one seed per target.
_RESNET = "seed {k}: dense 128 s + 9 gated rows x ~155 s + 6 Torch-Pruning x ~45 s + Optuna"
# measured on an AVX2 EPYC (float32 training): a gated MiniLM step ~0.6 s, the shrunk model's
# ~0.26 s, the first 3 layers' ~0.2 s; 4,000 steps each, the teacher cache and evaluations
_MINILM = ("archlearn 200 x 0.6 s + 3,800 x 0.26 s, first 3 layers 4,000 x 0.2 s, Torch-Pruning "
           "4,000 x 0.26 s, teacher cache and one-shot ~3 min")
_SWEEP_RESNET = "tsrelu at ~8 s per epoch on the residual CNN x 4 budgets x 40 epochs, one seed"

TARGETS: dict[str, list[Step]] = {
    "core": [
        Step(("-m", "benchmarks.core_lenet", "--seeds", "3", "--epochs", "20"),
             ("core_overhead.json", "core_demo.json", "core_user_loop.json"), 15,
             "no total recorded; 0.6-0.7 s per epoch (core_user_loop.json) x 20 epochs x "
             "(4 demo rows + 2 loops) x 3 seeds, and the interleaved latency"),
        Step(("-m", "benchmarks.peer_torch_pruning", "--seeds", "3", "--epochs", "20", "--out",
              "benchmarks/results/peer_torch_pruning.json"), ("peer_torch_pruning.json",), 10,
             "no timing recorded; 2 targets x 3 seeds of LeNet-5 at 20 epochs"),
    ],
    "methods": [
        Step(("-m", "benchmarks.compare_methods", "--seeds", "3", "--epochs", "10"),
             ("compare_methods.json",), 9, "wall_seconds 506"),
        Step(("-m", "benchmarks.method_settings"), ("method_settings.json",), 20,
             "no timing recorded; digits (1,797 8x8 images), 3 seeds x 30 epochs per variant"),
        Step(("-m", "benchmarks.select_defaults"), ("select_defaults.json",), 15,
             "seconds 805 (load 1.1 on 2 CPUs)"),
        Step(("-m", "benchmarks.magnitude_stier", "--seeds", "3", "--epochs", "100"),
             ("magnitude_stier.json",), 5, "wall_seconds 292"),
    ],
    "paper": [
        Step(("-m", "benchmarks.paper_experiments", name), (f"paper/{name}.json",), minutes,
             basis)
        for name, minutes, basis in [
            ("table31", 15, "no timing recorded; 4 settings x 3 seeds x 20 epochs, and scratch"),
            ("svd", 3, "no timing recorded; one training of 20 epochs"),
            ("hyper", 10, "no timing recorded; a grid of 10-epoch runs"),
            ("classes", 5, "no timing recorded; 5 runs of 10 epochs"),
            ("depth", 5, "no timing recorded; 4 runs of 10 epochs"),
            ("pretrained", 5, "no timing recorded; 10 + 5 epochs per variant"),
        ]
    ],
    "paper-bayesopt": [
        Step(("-m", "benchmarks.paper_experiments", "bayesopt"), ("paper/bayesopt.json",), 25,
             "one AL run 8.6 CPU s (10 epochs): 3 seeds x 2 spaces x 20 Optuna trials of it"),
    ],
    "structure": [
        Step(("-m", "benchmarks.structure_prediction",), ("structure_prediction.json",), 34,
             "seconds 1997 (wall)"),
    ],
    "genetic": [
        Step(("-m", "benchmarks.genetic_search",), ("genetic_search.json",), 24,
             "seconds 1383 (wall)"),
    ],
    "zoo": [
        Step(("-m", "benchmarks.zoo",), ("zoo.json",), 10,
             "no timing recorded; attach and shrink of 3 models, 3 repeats"),
    ],
    # one seed per target: the job (archlearn) and its two baselines, each distilled the same
    # number of steps; the file joins the seeds (benchmarks/minilm.py)
    **{f"minilm-seed{k}": [
        Step(("-m", "benchmarks.minilm", "fidelity", "--first-seed", str(k)), ("minilm.json",),
             55, _MINILM)]
       for k in (0, 1, 2)},
    "compress": [
        Step(("-m", "benchmarks.compress", "all", "--seeds", "3"),
             ("compress_lenet.json", "compress_minilm.json"), 27,
             "1579 s at 692b869 from a clean worktree (LeNet-5 trained afresh; MiniLM 544 s)"),
        Step(("-m", "benchmarks.minilm", "latency"), ("minilm_latency.json",), 2, "seconds 56"),
    ],
    "papers-2-4": [
        Step(("-m", "benchmarks.switcher", "--seeds", "3", "--epochs", "4", "6", "--jobs", "2"),
             ("switcher.json",), 30, "train_seconds 3326 in all, 2 jobs"),
        Step(("-m", "benchmarks.diffsparse", "--seeds", "3", "--epochs", "30"),
             ("diffsparse.json",), 9, "train_seconds 473 in all"),
    ],
    "budgets-lenet5": [
        _budgets("--models", "lenet5", "--methods", "tsrelu", "l0", "morphnet", minutes=17,
                 basis="1005 s at 40c8cc9 (27 rows)")],
    "budgets-lenet5-peers": [
        _budgets("--models", "lenet5", "--methods", "baseline", "tp-l1", "tp-taylor", "optuna",
                 minutes=23, basis="1354 s at 40c8cc9 (27 rows)")],
    **{f"budgets-resnet-seed{k - 1}": [
        _budgets("--models", "resnet", seeds=k, minutes=40, basis=_RESNET.format(k=k - 1))]
       for k in (1, 2, 3)},
    "budgets-sweep-lenet5": [
        _sweep("--seeds", "3", "--models", "lenet5", minutes=20,
               basis="tsrelu at 1.8 s per epoch (budgets.json) x 5 budgets x 40 epochs x 3 seeds")],
    **{f"budgets-sweep-resnet-seed{k - 1}": [
        _sweep("--seeds", str(k), "--models", "resnet", minutes=22, basis=_SWEEP_RESNET)]
       for k in (1, 2, 3)},
    "budgets-latency": [  # after every budgets target: times the trained rows (a quiet machine)
        Step(("-m", "benchmarks.budgets", "latency"), ("budgets_latency.json",), 15,
             "no timing recorded; 30 interleaved rounds per seed at batch 1 and 256"),
    ],
}
# every command of `make bench`, in order, the page rendered last
STEPS: list[list[str]] = [[*s.args] for steps in TARGETS.values() for s in steps] + [
    ["-m", "benchmarks.report"]]
# results files that a resumable benchmark adds rows to: a refresh starts from an empty file
RESUMABLE = ("budgets.json", "budgets_sweep.json")


def minutes(target: str) -> float:
    """The estimated minutes of ``target`` on 2 cores."""
    return sum(step.minutes for step in TARGETS[target])


def writers(name: str) -> list[str]:
    """The targets whose steps write the results file ``name``, in the order they run."""
    return [t for t, steps in TARGETS.items() if any(name in s.writes for s in steps)]


def listing() -> str:
    """``--list``: every target with its estimate, its steps and the files they write."""
    out = []
    for target, steps in TARGETS.items():
        out.append(f"make bench-{target}  (about {minutes(target):.0f} min on 2 cores)\n")
        out += [f"  {s.command}\n    writes {', '.join(s.writes)}; ~{s.minutes:g} min "
                f"({s.basis})\n" for s in steps]
    return "".join(out)


def run(target: str) -> None:
    """Run the steps of ``target`` in turn; stop at the first that fails."""
    for step in TARGETS[target]:
        print("+", step.command, flush=True)
        subprocess.run([sys.executable, *step.args], check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"one or more of: {', '.join(TARGETS)} (default: all, then the "
                             "report)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; `--list` shows them")
    if args.list:
        print(listing(), end="")
        return
    for target in args.targets or TARGETS:
        run(target)
    if not args.targets:
        subprocess.run([sys.executable, *STEPS[-1]], check=True)


if __name__ == "__main__":
    main()
