"""`make bench`: every benchmark in turn (about three hours on 2 cores), then docs/RESULTS.md.

Each step writes JSON (and plots) under benchmarks/results; `make results` re-renders the page.
"""

import subprocess
import sys

STEPS = [
    ["-m", "benchmarks.core_lenet", "--seeds", "3", "--epochs", "20"],
    ["-m", "benchmarks.peer_torch_pruning", "--seeds", "3", "--epochs", "20",
     "--out", "benchmarks/results/peer_torch_pruning.json"],
    ["-m", "benchmarks.paper_experiments", "all"],
    ["-m", "benchmarks.compare_methods"],
    ["-m", "benchmarks.method_settings"],
    ["-m", "benchmarks.magnitude_stier"],
    ["-m", "benchmarks.structure_prediction"],
    ["-m", "benchmarks.genetic_search"],
    ["-m", "benchmarks.zoo"],
    ["-m", "benchmarks.minilm", "fidelity"],
    ["-m", "benchmarks.minilm", "latency"],
    ["-m", "benchmarks.compress", "all", "--seeds", "3"],  # trained LeNet-5 and MiniLM, one shot
    ["-m", "benchmarks.switcher", "--seeds", "3", "--epochs", "4", "6", "--jobs", "2"],
    ["-m", "benchmarks.diffsparse", "--seeds", "3", "--epochs", "30"],
    ["-m", "benchmarks.budgets", "train", "--seeds", "3", "--epochs", "20"],
    ["-m", "benchmarks.budgets", "sweep", "--seeds", "3"],
    ["-m", "benchmarks.budgets", "latency"],  # timings: on a quiet machine
    ["-m", "benchmarks.report"],
]

if __name__ == "__main__":
    for step in STEPS:
        print("+ python", " ".join(step), flush=True)
        subprocess.run([sys.executable, *step], check=True)
