"""The MiniLM benchmark's file (``benchmarks/minilm.py``): one seed per command, joined.

The job is replaced by a stand-in that returns a seed's record at once (the real job is tested
end to end in ``test_job_minilm.py``); what is tested is how the file joins the seeds.
"""

import argparse
import json

import pytest

from archlearn.data.text import TextSplits
from archlearn.jobs import minilm_distill
from benchmarks import minilm

NAMES = ("original", "oneshot", "archlearn", "first-3-layers", "torch-pruning")


@pytest.fixture
def stand_in(monkeypatch):
    """``minilm_distill.run`` answering with a record whose figures name the seed and steps."""
    calls = []
    counter = iter(range(100))

    def run(out, *, seeds, first_seed, steps, baselines, **_):
        calls.append({"seed": first_seed, "steps": steps, "baselines": baselines})
        row = {"params": 1.0, "macs": 1.0, "cosine": 0.9 + first_seed / 100,
               "topk_agreement": 0.5, "heads": [1], "ffn": [1], "layers": 1,
               "latency": {s: {"median_ms": 1.0, "speedup": 1.0}
                           for s in ("b32x128", "b1x128")}}
        rows = {name: dict(row) for name in NAMES}
        rows["archlearn"]["cosine"] += 0.01
        block = {"command": f"run {first_seed}", "steps": steps, "budget": {"macs": 0.45},
                 "sources": {"run": f"id-{next(counter)}", "files": {}}}
        return {"provenance": block, "models": [{"seed": first_seed}], "tokenizer": "the job's",
                "teacher_cache_seconds": 2.0,
                "runs": [{"seed": first_seed, "rows": rows, "seconds": {"total": 10.0}}]}

    def other_text(models, sentences, tokenizer):  # the man pages' figures name the seed too
        assert sentences == ["A man page sentence of some words."]
        assert tokenizer == "the job's"  # the job's own, not MiniLM's loaded again
        return {name: {"cosine": 0.8 + models["seed"] / 100, "topk_agreement": 0.4}
                for name in NAMES}

    monkeypatch.setattr(minilm_distill, "run", run)
    monkeypatch.setattr(minilm, "man_pages", lambda: TextSplits(
        "man", [], [], ["A man page sentence of some words."], "toy"))
    monkeypatch.setattr(minilm, "other_text", other_text)
    monkeypatch.setattr(minilm_distill, "table", lambda results: "table")
    return calls


def _args(tmp_path, seed: int, steps: int = 4000) -> argparse.Namespace:
    return argparse.Namespace(budget=None, out=str(tmp_path / "minilm.json"), first_seed=seed,
                              seeds=1, steps=steps, quiet=True, rounds=1,
                              work=str(tmp_path / "work"))


def test_each_seed_joins_the_file_and_a_rerun_replaces_its_seed(tmp_path, stand_in):
    path = tmp_path / "minilm.json"
    minilm.run_job(_args(tmp_path, 1))
    minilm.run_job(_args(tmp_path, 0))
    saved = json.loads(path.read_text())
    assert [r["seed"] for r in saved["runs"]] == [0, 1]
    assert all(call["baselines"] for call in stand_in)  # the benchmark distils the baselines
    p = saved["provenance"]
    assert [part["command"] for part in p["parts"]] == ["run 1", "run 0"]
    assert (p["seeds"], p["seeds_planned"]) == (2, 3)
    assert saved["mean"]["archlearn"]["cosine"] == pytest.approx(0.915)
    assert saved["comparison"]["wins"]["torch-pruning"]["cosine"] == 2
    # every row scored on the other text too, per seed and as a mean
    assert saved["runs"][1]["rows"]["archlearn"]["other"]["cosine"] == pytest.approx(0.81)
    assert saved["mean_other"]["torch-pruning"]["cosine"] == pytest.approx(0.805)
    assert p["other"]["name"] == "man"
    assert saved["seconds"] == pytest.approx(24.0)
    # seed 1 again: its old run and that run's provenance part are gone
    minilm.run_job(_args(tmp_path, 1))
    saved = json.loads(path.read_text())
    assert [r["seed"] for r in saved["runs"]] == [0, 1]
    assert [part["command"] for part in saved["provenance"]["parts"]] == ["run 0", "run 1"]
    assert len({r["run"] for r in saved["runs"]}) == 2


def test_a_run_with_other_settings_starts_the_file_afresh(tmp_path, stand_in):
    minilm.run_job(_args(tmp_path, 0))
    minilm.run_job(_args(tmp_path, 1, steps=800))
    saved = json.loads((tmp_path / "minilm.json").read_text())
    assert [r["seed"] for r in saved["runs"]] == [1]
    assert [part["steps"] for part in saved["provenance"]["parts"]] == [800]
