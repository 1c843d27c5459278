"""The job ``minilm-distill`` end to end, on a tiny random BERT with MiniLM's vocabulary.

Every step of the real job runs (text file, teacher cache, gates with a MACs budget for the
gated share of the steps, shrinking, dense distillation for the rest, the truncation and
Torch-Pruning baselines asked for explicitly, a validation curve, fidelity on the test split,
interleaved latency, saving); then every saved model reloads with
``al.load(dir, model=BertModel(config))`` to outputs identical to the model the job evaluated.
The same with ``oneshot=True``: the teacher compressed by ``al.compress`` on calibration
sentences, beside Torch-Pruning (asked for), neither trained.
"""

import json
from typing import Any

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
def tiny(tmp_path_factory):
    """MiniLM's tokenizer, the sentences file and a tiny random BERT teacher."""
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
    return out, text, tokenizer, teacher, config


#: the end-to-end run's schedule: 12 steps, the gates train for a quarter of them (3), and
#: every student's fidelity on the validation sentences is taken every 4 steps
STEPS, GATED, VALIDATE_EVERY = 12, 0.25, 4
#: sentences of the installed packages' docstrings that join the training sentences
EXTRA = 40


@pytest.fixture(scope="module")
def job_run(tiny):
    from archlearn.jobs import minilm_distill

    out, text, tokenizer, teacher, config = tiny
    results = minilm_distill.run(out / "run", dataset="text-file", path=str(text),
                                 teacher=teacher, tokenizer=tokenizer, steps=STEPS,
                                 budget={"macs": 0.6}, truncate=(1,), torch_pruning=True,
                                 gated=GATED, validate_every=VALIDATE_EVERY, latency_rounds=1,
                                 extra=EXTRA, progress=False, command="test")
    return out / "run", results, config


@pytest.fixture(scope="module")
def oneshot_run(tiny):
    from archlearn.jobs import minilm_distill

    out, text, tokenizer, teacher, config = tiny
    results = minilm_distill.run(out / "oneshot", dataset="text-file", path=str(text),
                                 teacher=teacher, tokenizer=tokenizer, oneshot=True,
                                 torch_pruning=True, latency_rounds=1, progress=False,
                                 command="test")
    return out / "oneshot", results, config


def _reloads_identically(out, results, names):
    ids = torch.randint(1000, 5000, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    models = results["models"][0]
    for name in names:
        folder = out / "seed0" / "models" / name
        config = T.BertConfig.from_json_file(folder / "config.json")
        loaded = al.load(folder, model=T.BertModel(config)).eval()
        with torch.no_grad():
            want = models[name].eval()(ids, attention_mask=mask).last_hidden_state
            got = loaded(ids, attention_mask=mask).last_hidden_state
        assert torch.equal(got, want), name


def test_job_writes_the_table_figures(job_run, tiny):
    out, results, _ = job_run
    from archlearn.jobs.minilm_distill import table

    saved = json.loads((out / "results.json").read_text())
    # the tokenizer that encoded every split comes back beside the models, not in the JSON
    assert results["tokenizer"] is tiny[2] and "tokenizer" not in saved
    rows = saved["runs"][0]["rows"]
    assert set(rows) == {"original", "oneshot", "archlearn", "archlearn-int8", "first-1-layers",
                         "torch-pruning"}
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
    # the gates started at al.compress's decision (the oneshot row, at the same budget), held
    # there by the Lagrangian
    history = saved["runs"][0]["history"]
    assert saved["provenance"]["start"] == "oneshot"
    assert saved["provenance"]["controller"] == "lagrangian"
    assert (history[0]["heads"], history[0]["ffn"]) == (sum(rows["oneshot"]["heads"]),
                                                        sum(rows["oneshot"]["ffn"]))
    assert rows["oneshot"]["macs"] <= 0.6 * full and saved["runs"][0]["compress"]["refit"]
    text = table(results)
    assert "archlearn" in text and "torch-pruning" in text and "cosine" in text
    _int8_row_beside(rows, "archlearn", results["models"][0])


def test_gates_train_for_the_gated_share_then_the_small_model_trains_dense(job_run):
    from archlearn.jobs import minilm_distill

    out, results, _ = job_run
    saved = json.loads((out / "results.json").read_text())
    run, p = saved["runs"][0], saved["provenance"]
    assert run["gated"] == round(GATED * STEPS) == 3
    assert (p["gated"], p["steps"], p["similarity_weight"]) == (GATED, STEPS, 0.0)
    assert (p["truncate"], p["torch_pruning"]) == ([1], True)
    assert saved["teacher_cache_seconds"] > 0
    # the installed packages' sentences joined the distillation's, and the table says so
    assert p["extra"]["requested"] == p["extra"]["sentences"] == EXTRA
    assert f"+ {EXTRA} package docstring sentences" in minilm_distill.table(results)
    history = run["history"]
    steps = [h["step"] for h in history]
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == STEPS - 1
    # the gated phase's last step is recorded, and only its entries count heads and FFN
    assert run["gated"] - 1 in steps
    for h in history:
        gated = h["step"] < run["gated"]
        assert ("heads" in h, "ffn" in h, "penalty" in h) == (gated, gated, gated), h
        assert h["embedding"] >= 0
    assert any(h["step"] >= run["gated"] for h in history)  # the dense phase is there
    # the gates' last count is the shrunk model's shape
    last_gated = [h for h in history if h["step"] < run["gated"]][-1]
    rows = run["rows"]
    assert (last_gated["heads"], last_gated["ffn"]) == (sum(rows["archlearn"]["heads"]),
                                                        sum(rows["archlearn"]["ffn"]))


def test_validation_curve_every_few_steps(job_run):
    """``validate_every``: each student's fidelity on the validation sentences every so many
    steps and at the end of each of its training runs (archlearn: the gated phase, then the
    dense one)."""
    out, results, _ = job_run
    run = json.loads((out / "results.json").read_text())["runs"][0]
    curves = run["validation"]
    assert set(curves) == {"archlearn", "first-1-layers", "torch-pruning"}
    every = {s for s in range(STEPS) if (s + 1) % VALIDATE_EVERY == 0}  # 3, 7, 11
    want = {"archlearn": sorted(every | {run["gated"] - 1}),
            "first-1-layers": sorted(every), "torch-pruning": sorted(every)}
    for name, curve in curves.items():
        assert [c["step"] for c in curve] == want[name], (name, curve)
        for c in curve:
            assert {"step", "valid_cosine", "valid_topk_agreement"} <= set(c)
            assert all(k == "step" or k.startswith("valid_") for k in c)
            assert -1 <= c["valid_cosine"] <= 1 and 0 <= c["valid_topk_agreement"] <= 1
    # the curve's figures are in the history too, at the same steps
    assert [h["step"] for h in run["history"] if "valid_cosine" in h] == want["archlearn"]


def test_teacher_cache_reads_back_any_batch_as_the_teacher_computes_it(tiny):
    """``TeacherCache.batch`` of sentences the cache never ran together (other batches, other
    padding, another order) is the teacher's own output on that batch: the last hidden state
    and every hidden state at the real tokens (to float16 rounding), zeros at the padding."""
    from archlearn.data.text import pad
    from archlearn.distillation import distill
    from archlearn.jobs.minilm_distill import _encode
    from archlearn.jobs.minilm_distill.training import TeacherCache
    from archlearn.structure.graph import preserved_mode

    _, _, tokenizer, teacher, config = tiny
    words = " ".join(_sentences()[:6]).split()
    sentences = [" ".join(words[:n]) for n in (3, 20, 5, 14, 9, 30, 7, 11)]
    rows = _encode(tokenizer, sentences)
    assert len({len(r) for r in rows}) == len(rows)
    distiller = distill(teacher, hidden=1.0)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    # cached in length-sorted chunks of 2; read back the shortest, the longest and a middle
    # one together (never in one chunk), in that order
    picked = [order[0], order[-1], order[len(order) // 2], order[1]]
    for bf16, tol in ((False, 2e-3), (True, 5e-2)):
        cache = TeacherCache(distiller, rows, batch_size=2, bf16=bf16)
        assert cache.last is None  # a BERT's last hidden state is its hidden states' last
        ids, mask, (last, states) = cache.batch(picked)
        want_ids, want_mask = pad([rows[i] for i in picked])
        assert torch.equal(ids, want_ids) and torch.equal(mask, want_mask)
        want_last, want_states = distiller.teacher_outputs(ids, mask)
        assert last.dtype == torch.float16 and last.shape == want_last.shape
        assert states is not None and len(states) == len(want_states) == 3
        real = mask.bool()
        for got, want in ((last, want_last), *zip(states, want_states)):
            scale = float(want[real].abs().max())
            torch.testing.assert_close(got[real].float(), want[real], rtol=0,
                                       atol=tol * scale)
            assert not got[~real].any()  # zeros at the padding
        # and the teacher (in eval mode: no dropout) is its cached targets' perfect student
        with preserved_mode(teacher), torch.no_grad():
            cached = distiller(teacher.eval(), ids, mask, teacher_outputs=(last, states)).item()
        assert cached == pytest.approx(0.0, abs=tol)
    # no hidden-state term: the cache keeps the last hidden state only
    _, _, (last, states) = TeacherCache(distill(teacher), rows[:3], bf16=False).batch([2, 0])
    assert states is None and last.shape[0] == 2


def test_saved_models_reload_to_identical_outputs(job_run):
    out, results, _ = job_run
    _reloads_identically(out, results, ("oneshot", "archlearn", "first-1-layers",
                                        "torch-pruning"))


@pytest.fixture(scope="module", autouse=True)
def script(ahead, tmp_path_factory):
    """The module's one real process, started with the module (conftest.ahead) so that it runs
    beside the jobs above: the installed script on a missing text file (it gets into the job's
    run, as far as reading the data, before it is refused); returns its (result, folder)."""
    import sys
    from pathlib import Path

    folder = tmp_path_factory.mktemp("script")
    if ahead.collected("test_bad_input_is_one_line_exit_2_and_writes_nothing"):
        ahead.start("missing", [str(Path(sys.executable).parent / "archlearn"), "run",
                                "minilm-distill", "--data-path", str(folder / "missing.txt"),
                                "--out", str(folder / "o")],
                    capture_output=True, text=True, timeout=300)
    return ahead, folder


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, archlearn_main, script):
    ahead, folder = script
    # one real process: the installed script's exit status and stderr, imports and all
    r = ahead.result("missing")
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not (folder / "o").exists()
    out = tmp_path / "o"
    missing = ["minilm-distill", "--data-path", str(tmp_path / "missing.txt")]
    # every bad input through the same entry point, in this process (conftest.archlearn_main)
    for args in (["minilm-distill", "--epochs", "3"], ["minilm-distill", "--budget", "macs"],
                 ["minilm-distill", "--budget", "size=0.5"], ["minilm-distill", "--steps", "0"],
                 missing,
                 ["lenet-mnist", "--steps", "10"],  # lenet-mnist takes a budget, not steps
                 # the calibration set is one-shot compression's
                 ["minilm-distill", "--start", "full", "--calibration", "64"],
                 ["minilm-distill", "--start", "middle"],
                 ["minilm-distill", "--oneshot", "--start", "full"],
                 # the gated share of the steps is in (0, 1], and one-shot trains no gates
                 ["minilm-distill", "--gated", "0"], ["minilm-distill", "--gated", "1.5"],
                 ["minilm-distill", "--gated", "x"],
                 ["minilm-distill", "--oneshot", "--gated", "0.5"],
                 ["lenet-mnist", "--gated", "0.5"], ["lenet-mnist", "--baselines"],
                 ["minilm-distill", "--oneshot", "--steps", "10"],  # oneshot trains nothing
                 ["minilm-distill", "--oneshot", "--calibration", "0"],
                 ["minilm-distill", "--model-dir", str(tmp_path / "missing")],
                 ["lenet-mnist", "--model-dir", str(tmp_path)]):  # lenet-mnist takes no model
        code, _, err = archlearn_main("run", *args, "--out", str(out))
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
        assert not out.exists()


def test_oneshot_compresses_without_training(oneshot_run):
    out, results, _ = oneshot_run
    from archlearn.jobs.minilm_distill import table

    saved = json.loads((out / "results.json").read_text())
    run = saved["runs"][0]
    rows = run["rows"]
    assert set(rows) == {"original", "oneshot", "oneshot-int8", "torch-pruning"}
    full = rows["original"]["macs"]
    # the default one-shot budget, met within 2% under it; Torch-Pruning brought to its MACs
    assert saved["provenance"]["budget"] == {"macs": 0.5} and saved["provenance"]["oneshot"]
    assert 0.98 * 0.5 * full <= rows["oneshot"]["macs"] <= 0.5 * full
    assert abs(rows["torch-pruning"]["macs"] - rows["oneshot"]["macs"]) < 0.1 * full
    assert rows["oneshot"]["macs"] == run["compress"]["macs"]
    for row in rows.values():
        assert -1 <= row["cosine"] <= 1 and 0 <= row["topk_agreement"] <= 1
        assert row["latency"]["b32x128"]["median_ms"] > 0
    # the compress report, as JSON: the budget reached, widths, re-fit rows and seconds
    report = run["compress"]
    assert report["budget"]["budget"] == pytest.approx(0.5)
    assert report["budget"]["reached"] <= 0.5 and report["refit"] and report["layers"]
    assert report["seconds"]["total"] > 0 and run["seconds"]["compress"] > 0
    train = saved["provenance"]["data"]["sizes"]["train"]
    assert run["calibration"]["sentences"] == min(512, train)
    assert "steps" not in saved["provenance"] and "history" not in run
    text = table(results)
    assert "oneshot" in text and "torch-pruning" in text and "al.compress reached" in text
    _reloads_identically(out, results, ("oneshot", "torch-pruning"))
    _int8_row_beside(rows, "oneshot", results["models"][0])


def _int8_row_beside(rows, name, models):
    """The int8 row: the float model's shape and MACs, its own fidelity and latency, not saved;
    its Linear layers are int8 and it computes nearly what the float model computes."""
    row, base = rows[name + "-int8"], rows[name]
    assert row["int8"] and "saved" not in row
    assert (row["macs"], row["heads"], row["ffn"]) == (base["macs"], base["heads"], base["ffn"])
    assert row["latency"]["b32x128"]["median_ms"] > 0 and row["latency"]["b1x128"]["speedup"] > 0
    assert abs(row["cosine"] - base["cosine"]) < 0.05, (row["cosine"], base["cosine"])
    quantized = models[name + "-int8"]
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert any(type(m) is torch.nn.Linear for m in models[name].modules())


def test_oneshot_bad_settings_fail_before_any_work(tmp_path):
    from archlearn.jobs import minilm_distill

    bad: list[dict[str, Any]] = [{"oneshot": True, "steps": 10},
                                 {"calibration": 64, "start": "full"}, {"start": "middle"},
                                 {"calibration": 4}, {"oneshot": True, "start": "full"},
                                 {"oneshot": True, "options": {"lambda1": 0.004}},
                                 {"oneshot": True, "calibration": 4}]
    for settings in bad:
        with pytest.raises(al.ArchlearnError):
            minilm_distill.run(tmp_path / "o", teacher=object(), tokenizer=object(),
                               progress=False, **settings)
        assert not (tmp_path / "o").exists()
    for settings, match in (({"gated": 0}, r"--gated is the share .* in \(0, 1\]; got 0"),
                            ({"gated": 1.5}, r"in \(0, 1\]; got 1.5"),
                            ({"gated": -0.1, "start": "full"}, r"in \(0, 1\]"),
                            ({"oneshot": True, "gated": 0.5}, "leave out --start, --gated"),
                            ({"oneshot": True, "extra": 10}, "and --extra"),
                            ({"extra": -1}, "--extra is a number of sentences, >= 0; got -1"),
                            ({"oneshot": True, "truncate": (1,)}, "truncation needs distillation")):
        with pytest.raises(al.ArchlearnError, match=match):
            minilm_distill.run(tmp_path / "o", teacher=object(), tokenizer=object(),
                               progress=False, **settings)
        assert not (tmp_path / "o").exists()


def test_any_local_bert_encoder_folder_replaces_minilm(tiny, tmp_path):
    """``model_dir``: a folder with config.json, model.safetensors and tokenizer.json (here a
    tiny random BERT of another width) is the teacher the job compresses."""
    from archlearn.jobs import minilm_distill
    from archlearn.models.pretrained import load_encoder_dir

    out, text, tokenizer, _, _ = tiny
    config = T.BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=48,
                          num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
                          max_position_embeddings=128)
    with seeded(1):
        encoder = T.BertModel(config)
    folder = tmp_path / "my-encoder"
    encoder.save_pretrained(folder, safe_serialization=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    results = minilm_distill.run(tmp_path / "run", dataset="text-file", path=str(text),
                                 model_dir=str(folder), oneshot=True, torch_pruning=False,
                                 latency_rounds=1, progress=False, command="test")
    rows = results["runs"][0]["rows"]
    assert rows["original"]["params"] == sum(p.numel() for p in encoder.parameters())
    assert rows["original"]["heads"] == [3, 3] and rows["oneshot"]["macs"] < rows[
        "original"]["macs"]
    assert results["provenance"]["model"] == "my-encoder"
    assert minilm_distill.table(results).startswith("my-encoder compressed one-shot")
    # a folder that is not a BERT encoder is one clear error, before any work
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(al.ArchlearnError, match="holds a 'gpt2' model"):
        load_encoder_dir(folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(al.ArchlearnError, match="lacks tokenizer.json"):
        minilm_distill.run(tmp_path / "bad", model_dir=str(folder), progress=False)
    assert not (tmp_path / "bad").exists()


def test_gates_can_start_all_on(tiny, tmp_path):
    """``start="full"``: the gates start all-on on a copy of the teacher (no oneshot row)."""
    from archlearn.jobs import minilm_distill

    out, text, tokenizer, teacher, _ = tiny
    results = minilm_distill.run(tmp_path / "run", dataset="text-file", path=str(text),
                                 teacher=teacher, tokenizer=tokenizer, steps=4, start="full",
                                 budget={"macs": 0.6}, truncate=(), torch_pruning=False,
                                 latency_rounds=1, extra=0, progress=False, command="test")
    run = results["runs"][0]
    assert set(run["rows"]) == {"original", "archlearn", "archlearn-int8"}
    assert "compress" not in run and results["provenance"]["start"] == "full"
    assert (run["history"][0]["heads"], run["history"][0]["ffn"]) == (8, 128)
    # with all-on gates they train for every step (the default share): no dense phase
    assert run["gated"] == 4 and results["provenance"]["gated"] == 1.0
    assert run["history"][-1]["step"] == 3 and all("heads" in h for h in run["history"])
    assert "validation" not in run  # no validate_every, no curve
    assert "gates started all-on" in minilm_distill.table(results)
