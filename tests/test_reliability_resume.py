"""A killed training run resumes to the same result; bad checkpoints are refused whole.

The kill test runs a real training script in a subprocess, holds it at a step in the middle of its
second epoch (after the epoch-1 checkpoint was written) and SIGKILLs it there, runs it again (it
resumes from the checkpoint) and compares the result with an uninterrupted run of the same seed
(the same script, run in this process meanwhile).
"""

import json
import os
import runpy
import signal
import subprocess
import sys
import textwrap

import pytest
import safetensors.torch
import torch

import archlearn as al
from archlearn import data, models
from archlearn.train import TrainConfig, Trainer, steps_per_epoch

EPOCHS, BATCH = 4, 64

SCRIPT = textwrap.dedent(
    f"""
    import json, os, sys, time

    import torch

    torch.set_num_threads(1)
    import safetensors.torch

    import archlearn as al
    from archlearn import data, models
    from archlearn.train import TrainConfig, Trainer, steps_per_epoch

    checkpoint, out = sys.argv[1], sys.argv[2]
    hold = int(os.environ.get("ARCHLEARN_TEST_HOLD_AT", "0"))
    splits = data.load("digits", flatten=True)
    cfg = TrainConfig(epochs={EPOCHS}, batch_size={BATCH}, lr=3e-3, seed=7, progress=False)
    torch.manual_seed(cfg.seed)
    model = models.mlp(64, [32, 16], 10)
    total = cfg.epochs * steps_per_epoch(splits.train, cfg.batch_size)
    learner = al.attach(model, splits.train.tensors[0][:1], method="tsrelu", total_steps=total,
                        lr=5e-3, lambda1=5e-3, lambda3=5e-3)
    step = learner.step

    def announced_step():  # lets the test kill the run at a known step, mid-epoch
        step()
        print("step", learner.method.t, flush=True)
        if learner.method.t == hold:
            time.sleep(600)

    learner.step = announced_step
    trainer = Trainer(model, splits.train, splits.test, cfg, learner=learner,
                      checkpoint=checkpoint)
    history = trainer.fit()
    state = {{k: v.contiguous() for k, v in model.state_dict().items()}}
    state.update({{f"gate.{{i}}": p.detach() for i, p in enumerate(learner.parameters())}})
    safetensors.torch.save_file(state, out + ".safetensors")
    small = learner.shrink()
    safetensors.torch.save_file(
        {{k: v.contiguous() for k, v in small.state_dict().items()}}, out + ".small.safetensors"
    )
    with open(out + ".json", "w") as f:
        json.dump({{"architecture": learner.architecture(), "history": history}}, f)
    """
)


def _command(script, checkpoint, out):
    return [sys.executable, str(script), str(checkpoint), str(out)]


def _env(hold: int = 0) -> dict:
    return {**os.environ, "ARCHLEARN_TEST_HOLD_AT": str(hold), "OMP_NUM_THREADS": "1"}


def _results(out):
    return (
        safetensors.torch.load_file(f"{out}.safetensors"),
        safetensors.torch.load_file(f"{out}.small.safetensors"),
        json.loads(open(f"{out}.json").read()),
    )


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    n = steps_per_epoch(data.load("digits", flatten=True).train, BATCH)
    kill_at = n + n // 2  # the middle of epoch 2
    run = subprocess.Popen(
        _command(script, tmp_path / "run.pt", tmp_path / "run"), env=_env(hold=kill_at),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # meanwhile, the uninterrupted reference: the same script in this process
        argv = _command(script, tmp_path / "ref.pt", tmp_path / "ref")[1:]
        monkeypatch.setattr(sys, "argv", argv)
        runpy.run_path(str(script), run_name="__main__")
        capsys.readouterr()
        lines = []
        for line in run.stdout:
            lines.append(line)
            if line.split() == ["step", str(kill_at)]:
                run.send_signal(signal.SIGKILL)
                break
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == -signal.SIGKILL, f"{lines[-3:]} {run.stderr.read()}"
    assert not (tmp_path / "run.json").exists()
    state = torch.load(tmp_path / "run.pt", weights_only=True)
    assert state["epoch"] == 1  # the checkpoint of epoch 1; the kill landed mid-epoch 2

    resumed = subprocess.run(
        _command(script, tmp_path / "run.pt", tmp_path / "run"), env=_env(),
        capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    first_step = int(resumed.stdout.split()[1])
    assert first_step == n + 1  # it resumed after epoch 1 rather than starting over

    weights, small, meta = _results(tmp_path / "run")
    ref_weights, ref_small, ref_meta = _results(tmp_path / "ref")
    assert meta["architecture"] == ref_meta["architecture"]
    widths = [layer["width"] for layer in meta["architecture"]["layers"]]
    assert widths != [32, 16]  # the gates did prune something, so the comparison has teeth
    assert meta["history"] == ref_meta["history"]
    assert weights.keys() == ref_weights.keys() and small.keys() == ref_small.keys()
    for k in weights:
        assert torch.allclose(weights[k], ref_weights[k], rtol=0, atol=1e-7), k
    for k in small:
        assert torch.allclose(small[k], ref_small[k], rtol=0, atol=1e-7), k
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers  # no temporary checkpoint files left behind


def _trainer(tmp_path, hidden=(32, 16), epochs=1):
    splits = data.load("digits", flatten=True)
    small = torch.utils.data.TensorDataset(*(t[:128] for t in splits.train.tensors))
    model = models.mlp(64, list(hidden), 10)
    learner = al.attach(model, splits.train.tensors[0][:1], total_steps=4)
    cfg = TrainConfig(epochs=epochs, batch_size=64, progress=False)
    return Trainer(model, small, None, cfg, learner=learner, checkpoint=tmp_path / "ckpt.pt")


def _snapshot(trainer):
    return (
        {k: v.clone() for k, v in trainer.model.state_dict().items()},
        [p.detach().clone() for p in trainer.learner.parameters()],
        trainer.epoch,
    )


def _assert_unchanged(trainer, snapshot):
    weights, gates, epoch = snapshot
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, weights[k]), f"{k} changed by a failed load"
    for p, q in zip(trainer.learner.parameters(), gates):
        assert torch.equal(p, q), "structure parameters changed by a failed load"
    assert trainer.epoch == epoch


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_checkpoint_is_refused(tmp_path, keep):
    trainer = _trainer(tmp_path)
    trainer.fit()
    path = tmp_path / "ckpt.pt"
    blob = path.read_bytes()
    cut = int(len(blob) * keep) if isinstance(keep, float) else keep % len(blob)
    path.write_bytes(blob[:cut])
    fresh = _trainer(tmp_path)
    before = _snapshot(fresh)
    with pytest.raises(al.ArchlearnError, match=r"ckpt\.pt.*(unreadable|truncated)"):
        fresh.load_checkpoint(path)
    _assert_unchanged(fresh, before)
    with pytest.raises(al.ArchlearnError, match="truncated"):
        fresh.fit()  # fit() resumes from the file it finds: same refusal
    _assert_unchanged(fresh, before)


@pytest.mark.parametrize(
    "other", [(32, 8), (16, 16), (32, 16, 8), "lenet"], ids=["width", "first", "deeper", "lenet"]
)
def test_checkpoint_of_another_model_is_refused_without_partial_load(tmp_path, other):
    if other == "lenet":
        model = models.lenet5(widths=(2, 3, 4))
        cfg = TrainConfig(epochs=1, progress=False)
        foreign = Trainer(model, data.load("digits").train, config=cfg)
        foreign.save_checkpoint(tmp_path / "ckpt.pt")
    else:
        foreign = _trainer(tmp_path, hidden=other)
        foreign.fit()
    trainer = _trainer(tmp_path)
    before = _snapshot(trainer)
    with pytest.raises(al.ArchlearnError, match=r"ckpt\.pt does not fit this model"):
        trainer.load_checkpoint(tmp_path / "ckpt.pt")
    _assert_unchanged(trainer, before)


def test_checkpoint_with_other_gates_is_refused_without_partial_load(tmp_path):
    """Same weights, but the gates were for other layers: nothing of it may be loaded."""
    trainer = _trainer(tmp_path)
    trainer.fit()
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    state["learner"]["params"] = {"elsewhere.w": torch.ones(3)}
    torch.save(state, tmp_path / "ckpt.pt")
    fresh = _trainer(tmp_path)
    before = _snapshot(fresh)
    with pytest.raises(al.ArchlearnError, match="structure"):
        fresh.load_checkpoint(tmp_path / "ckpt.pt")
    _assert_unchanged(fresh, before)


def test_checkpoint_that_is_not_a_training_state_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    for payload in (torch.zeros(3), {"model": {}}, [1, 2]):
        torch.save(payload, path)
        trainer = _trainer(tmp_path)
        before = _snapshot(trainer)
        with pytest.raises(al.ArchlearnError, match=r"ckpt\.pt"):
            trainer.load_checkpoint(path)
        _assert_unchanged(trainer, before)


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temp file."""
    trainer = _trainer(tmp_path)
    trainer.fit()
    path = tmp_path / "ckpt.pt"
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # like a Ctrl-C in the middle of torch.save

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
