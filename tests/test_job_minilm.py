"""The job ``minilm-distill`` end to end, on a tiny random BERT with MiniLM's vocabulary.

Every step of the real job runs (text file, teacher cache, gates with a MACs budget, distillation,
shrinking, truncation and Torch-Pruning baselines, fidelity on the test split, interleaved
latency, saving); then every saved model reloads with ``al.load(dir, model=BertModel(config))``
to outputs identical to the model the job evaluated.
"""

import json

import pytest
import torch

import archlearn as al
from archlearn.seeding import seeded

T = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

WORDS = ["table", "file", "socket", "thread", "buffer", "string", "number", "module", "path",
         "queue", "record", "stream"]
VERBS = ["returns", "reads", "writes", "closes", "opens", "checks", "builds", "formats"]


def _sentences() -> list[str]:
    return [f"The {w} helper {v} the {x} of the given {y} object."
            for w in WORDS for v in VERBS for x, y in zip(WORDS[::2], WORDS[1::2])]


@pytest.fixture(scope="module")
def job_run(tmp_path_factory):
    from archlearn.jobs import minilm_distill
    from archlearn.models.pretrained import load_tokenizer

    try:
        tokenizer = load_tokenizer(cache=tmp_path_factory.mktemp("cache"))
    except al.ArchlearnError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("job")
    text = out / "sentences.txt"
    text.write_text("\n".join(_sentences()) + "\n")
    config = T.BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32,
                          num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          max_position_embeddings=128)
    with seeded(0):
        teacher = T.BertModel(config)
    results = minilm_distill.run(out / "run", dataset="text-file", path=str(text),
                                 teacher=teacher, tokenizer=tokenizer, steps=12,
                                 budget={"macs": 0.6}, truncate=(1,), latency_rounds=1,
                                 progress=False, command="test")
    return out / "run", results, config


def test_job_writes_the_table_figures(job_run):
    out, results, _ = job_run
    from archlearn.jobs.minilm_distill import table

    saved = json.loads((out / "results.json").read_text())
    rows = saved["runs"][0]["rows"]
    assert set(rows) == {"original", "archlearn", "first-1-layers", "torch-pruning"}
    full = rows["original"]["macs"]
    assert rows["original"]["cosine"] == pytest.approx(1.0)
    assert rows["original"]["topk_agreement"] == 1.0
    # the budget is met; Torch-Pruning is brought to archlearn's MACs (whole heads: near)
    assert rows["archlearn"]["macs"] <= 0.6 * full * 1.001
    assert abs(rows["torch-pruning"]["macs"] - rows["archlearn"]["macs"]) < 0.1 * full
    assert rows["first-1-layers"]["layers"] == 1 and rows["first-1-layers"]["heads"] == [4]
    for row in rows.values():
        assert -1 <= row["cosine"] <= 1 and 0 <= row["topk_agreement"] <= 1
        assert row["latency"]["b32x128"]["median_ms"] > 0
    assert saved["provenance"]["data"]["sizes"]["test"] > 10
    assert "heads" in saved["runs"][0]["history"][-1]
    text = table(results)
    assert "archlearn" in text and "torch-pruning" in text and "cosine" in text


def test_saved_models_reload_to_identical_outputs(job_run):
    out, results, _ = job_run
    ids = torch.randint(1000, 5000, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    models = results["models"][0]
    for name in ("archlearn", "first-1-layers", "torch-pruning"):
        folder = out / "seed0" / "models" / name
        config = T.BertConfig.from_json_file(folder / "config.json")
        loaded = al.load(folder, model=T.BertModel(config)).eval()
        with torch.no_grad():
            want = models[name].eval()(ids, attention_mask=mask).last_hidden_state
            got = loaded(ids, attention_mask=mask).last_hidden_state
        assert torch.equal(got, want), name


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    command = Path(sys.executable).parent / "archlearn"
    out = tmp_path / "o"
    for args in (["minilm-distill", "--epochs", "3"], ["minilm-distill", "--budget", "macs"],
                 ["minilm-distill", "--budget", "size=0.5"], ["minilm-distill", "--steps", "0"],
                 ["minilm-distill", "--data-path", str(tmp_path / "missing.txt")],
                 ["lenet-mnist", "--steps", "10"]):  # lenet-mnist takes a budget, not steps
        r = subprocess.run([str(command), "run", *args, "--out", str(out)], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()
