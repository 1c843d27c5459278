"""The one-shot compression benchmark (``benchmarks/compress.py``) at a tiny size, and its section.

LeNet-5 trains one epoch (its weights cached, then read back), is compressed at one budget by
``al.compress`` and by Torch-Pruning; a tiny random BERT with MiniLM's vocabulary stands in for
MiniLM (as in ``test_job_minilm.py``), scored on a small text file and on two tiny man pages.
"""

import gzip
import json

import pytest

import archlearn as al
from archlearn.seeding import seeded
from benchmarks import compress

WORDS = ["table", "file", "socket", "thread", "buffer", "string", "number", "module", "path",
         "queue", "record", "stream"]
VERBS = ["returns", "reads", "writes", "closes", "opens", "checks", "builds", "formats"]
NOUNS = ["kernel", "process", "signal", "socket", "device", "memory", "user", "system"]
ACTS = ["sends", "blocks", "maps", "wakes", "stops", "limits", "frees", "counts"]


@pytest.fixture
def needs_compress():
    pytest.importorskip("archlearn.compression")
    assert callable(compress.compress_function())


def _man_page(sentences: list[str]) -> str:
    body = "\n.PP\n".join(f"A\n.B {s.split()[1]}\n{' '.join(s.split()[2:])}" for s in sentences)
    return (".\\\" a comment\n.TH toy 7 2024-01-01 \"Linux man-pages 6.9\"\n.SH NAME\ntoy \\- "
            f"a page\n.SH DESCRIPTION\n{body}\n.EX\nint main(void) {{ return 0; }}\n.EE\n")


@pytest.fixture
def man_folder(tmp_path):
    sentences = [f"A {n} {a} the {m} of every waiting {x} on this machine."
                 for n in NOUNS for a in ACTS for m, x in zip(NOUNS[::2], NOUNS[1::2])]
    half = len(sentences) // 2
    folder = tmp_path / "man7"
    folder.mkdir()
    for i, part in enumerate((sentences[:half], sentences[half:])):
        with gzip.open(folder / f"toy{i}.7.gz", "wt") as f:
            f.write(_man_page(part))
    (folder / "other.7").write_text('.TH ABORT 7 2024 "PostgreSQL 15"\n.SH NAME\nNot ours.\n')
    return folder, sentences


def test_man_pages_are_read_as_sentences(man_folder):
    folder, sentences = man_folder
    s = compress.man_pages(folder)
    got = s.train + s.valid + s.test
    assert sorted(got) == sorted(sentences)  # bold words joined, code and comments dropped
    assert "2 section-7 pages" in s.description and "6.9" in s.description
    with pytest.raises(al.ArchlearnError, match="manpages"):
        compress.man_pages(folder.parent)


def test_trained_lenet_is_cached(tmp_path):
    s = compress.lenet_splits()
    first, info = compress.trained_lenet(s, 0, 1, tmp_path)
    again, cached = compress.trained_lenet(s, 0, 1, tmp_path)
    assert not info["cached"] and cached["cached"] and info["path"] == cached["path"]
    assert compress.fingerprint(first) == compress.fingerprint(again)
    assert cached["seconds"] == pytest.approx(info["seconds"], abs=1e-3)
    _, other = compress.trained_lenet(s, 1, 1, tmp_path)
    assert other["path"] != info["path"]  # keyed by the seed (and the settings' hash)


def test_lenet_benchmark_and_its_section(tmp_path, needs_compress):
    from benchmarks import report_compress

    results = compress.run_lenet(tmp_path, seeds=1, epochs=1, calibration=64, budgets=(0.5,),
                                 cache=tmp_path / "cache", tp_iterations=6, latency_rounds=2,
                                 progress=False, command="test")
    saved = json.loads((tmp_path / compress.LENET_JSON).read_text())
    run = saved["runs"][0]
    assert run["input_untouched"]
    assert {r["method"] for r in run["rows"]} == {"dense", *compress.METHODS}
    for row in run["rows"]:
        for key in ("params", "macs", "macs_fraction", "accuracy", "seconds", "speedup",
                    "latency_ms", "architecture"):
            assert key in row, (row["method"], key)
        assert 0 <= row["accuracy"] <= 1 and row["speedup"] > 0
    ours = next(r for r in run["rows"] if r["method"] == "archlearn")
    assert ours["macs_fraction"] <= 0.5 * 1.02
    summary = {(e["method"], e["budget"]): e for e in saved["summary"]}
    assert summary[("archlearn", 0.5)]["accuracy"]["n"] == 1
    assert set(saved["comparison"]["0.5"]["archlearn"]) == set(compress.TP)
    assert saved["provenance"]["calibration"] == 64 and results["seconds"] > 0
    text = report_compress.lenet_section(saved)
    assert "| 50% | archlearn | 1 |" in text and "tp-taylor-global" in text
    _filled(text)


def _sentences() -> list[str]:
    return [f"The {w} helper {v} the {x} of the given {y} object."
            for w in WORDS for v in VERBS for x, y in zip(WORDS[::2], WORDS[1::2])]


def test_minilm_benchmark_and_its_section(tmp_path, man_folder, needs_compress):
    T = pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    compress.transformers_ready()
    from archlearn.data.text import load_text
    from archlearn.models.pretrained import load_tokenizer
    from benchmarks import report_compress

    try:
        tokenizer = load_tokenizer(cache=tmp_path / "cache")
    except al.ArchlearnError as exc:
        pytest.skip(str(exc))
    text_file = tmp_path / "sentences.txt"
    text_file.write_text("\n".join(_sentences()) + "\n")
    config = T.BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32,
                          num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          max_position_embeddings=128)
    with seeded(0):
        teacher = T.BertModel(config).eval()
    compress.run_minilm(tmp_path, seeds=1, calibration=48, teacher=teacher,
                        tokenizer=tokenizer, text=load_text(text_file),
                        other=compress.man_pages(man_folder[0]), tp_iterations=4,
                        latency_rounds=1, progress=False, command="test")
    saved = json.loads((tmp_path / compress.MINILM_JSON).read_text())
    rows = saved["runs"][0]["rows"]
    assert set(rows) == {"original", "archlearn", "torch-pruning", "ridge-recipe"}
    # the recipe within archlearn's MACs (the tiny model's heads are coarse: 0.88 of them)
    assert 0.75 <= rows["ridge-recipe"]["macs_vs_archlearn"] <= 1.0
    assert saved["runs"][0]["input_untouched"]
    assert rows["original"]["test"]["cosine"] == pytest.approx(1.0)
    for row in rows.values():
        for corpus in ("test", "other"):
            assert -1 <= row[corpus]["cosine"] <= 1 + 1e-6
            assert 0 <= row[corpus]["topk_agreement"] <= 1
        assert row["latency"]["b32x128"]["speedup"] > 0 and "b1x128" in row["latency"]
        assert len(row["heads"]) == 2 and "seconds" in row
    assert rows["archlearn"]["macs_fraction"] <= 0.5 * 1.02
    assert saved["provenance"]["other"]["name"] == "linux-man-pages-7"
    assert set(saved["comparison"]) == set(compress.MINILM_FIGURES)
    assert set(saved["comparison_recipe"]) == set(compress.MINILM_FIGURES)
    text = report_compress.minilm_section(saved)
    assert "| archlearn |" in text and "| torch-pruning |" in text and "| ridge-recipe |" in text
    assert "archlearn minus the ANCHORS.md recipe:" in text
    _filled(text)


def test_ridge_recipe_builds_what_it_fitted_within_its_budget():
    T = pytest.importorskip("transformers")
    compress.transformers_ready()
    import torch

    from archlearn.models.bert import keeping
    from benchmarks.ridge_recipe import _forward, encoder_macs, ridge_recipe

    with seeded(0):
        teacher = T.BertModel(T.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, intermediate_size=64)).eval()
        mask = torch.ones(16, 10, dtype=torch.long)
        mask[8:, 7:] = 0  # padded sentences: their padding is neither scored nor fitted
        batch = {"input_ids": torch.randint(0, 60, (16, 10)), "attention_mask": mask}
    small, info = ridge_recipe(teacher, [batch], 0.5, tokens=10)
    assert info["full_macs"] == encoder_macs(teacher, 10)
    assert 0.45 * info["full_macs"] <= info["macs"] <= 0.5 * info["full_macs"]
    assert [len(h) for h in info["heads"]] == [
        layer.attention.self.num_attention_heads for layer in small.encoder.layer]
    assert sum(map(len, info["ffn"])) < 2 * 64
    # the built float32 model computes the float64 layers the recipe fitted
    with torch.no_grad():
        h = teacher.embeddings(input_ids=batch["input_ids"]).double()
        for q in info["weights"]:
            h = _forward(q, h, mask)["out"]
        built = small(**batch).last_hidden_state
        real = mask.bool()
        assert torch.allclose(built[real], h[real].float(), atol=1e-4)
        # the re-fit brings the kept units closer to the original than keeping them alone
        target = teacher(**batch).last_hidden_state[real]
        plain = keeping(teacher, info["heads"], info["ffn"], batch["input_ids"][:1])
        refit_error = (built[real] - target).pow(2).mean()
        plain_error = (plain(**batch).last_hidden_state[real] - target).pow(2).mean()
    assert refit_error < 0.5 * plain_error
    assert not torch.equal(small.encoder.layer[0].output.dense.weight,
                           plain.encoder.layer[0].output.dense.weight)


def test_section_says_what_is_not_run(tmp_path):
    from benchmarks import report_compress

    text = report_compress.section(tmp_path)
    assert "python -m benchmarks.compress lenet" in text
    assert "python -m benchmarks.compress minilm" in text


def _filled(text: str) -> None:
    """Every row of every table has as many non-empty cells as its header."""
    header = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
        elif not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            header = header or cells
            assert len(cells) == len(header) and all(cells), line
            assert not {c.lower() for c in cells} & {"none", "nan"}, line


def test_run_all_has_the_benchmark():
    from benchmarks.run_all import STEPS

    assert ["-m", "benchmarks.compress", "all", "--seeds", "3"] in STEPS
    assert STEPS[-1] == ["-m", "benchmarks.report"]  # the page is rendered after it
