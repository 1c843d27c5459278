"""`make bench`: every benchmark in turn, then docs/RESULTS.md."""

import subprocess
import sys

STEPS = [
    ["-m", "benchmarks.core_lenet", "--seeds", "3", "--epochs", "20"],
    ["-m", "benchmarks.peer_torch_pruning", "--seeds", "3", "--epochs", "20",
     "--out", "benchmarks/results/peer_torch_pruning.json"],
    ["-m", "benchmarks.report"],
]

if __name__ == "__main__":
    for step in STEPS:
        print("+ python", " ".join(step), flush=True)
        subprocess.run([sys.executable, *step], check=True)
