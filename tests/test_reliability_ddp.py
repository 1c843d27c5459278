"""Gated training under DDP (gloo, 2 CPU processes started by torchrun) stays in sync.

Every registered method and variant (``archlearn.methods.variants``), in one launch. Each rank
trains on its own shard of the digits, so the gates' local gradients differ (checked): only the
all-reduce in ``learner.step()`` keeps them identical. After training every rank writes its
gates, weights, architecture and shrunk model to a file; the test compares the two ranks,
variant by variant.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

import archlearn as al
from archlearn import distributed
from archlearn.methods import variants

WORKER = textwrap.dedent(
    """
    import json, sys

    import torch

    torch.set_num_threads(1)
    import safetensors.torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, DistributedSampler

    import archlearn as al
    from archlearn import data, distributed, models
    from archlearn.methods import variants

    out = sys.argv[1]
    rank, world = distributed.init()
    assert world == 2 and dist.get_backend() == "gloo"
    splits = data.load("digits", flatten=True)
    for label, method, options in variants():
        torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
        model = models.mlp(64, [32, 16], 10, batchnorm=True)
        epochs, batch = 3, 32
        sampler = DistributedSampler(splits.train, shuffle=True, seed=0)
        per_epoch = len(DataLoader(splits.train, batch_size=batch, sampler=sampler))
        total = epochs * per_epoch
        learner = al.attach(model, splits.train.tensors[0][:1], method=method,
                            total_steps=total, steps_per_epoch=per_epoch, **options)
        distributed.broadcast_structure(learner)
        ddp = DDP(model)
        optimizer = torch.optim.Adam(ddp.parameters(), lr=3e-3)
        local_grads_differ = None
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for x, y in DataLoader(splits.train, batch_size=batch, sampler=sampler):
                ddp.train()
                loss = torch.nn.functional.cross_entropy(ddp(x), y) + learner.penalty()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                grads = [p.grad.reshape(-1) for p in learner.parameters() if p.grad is not None]
                if local_grads_differ is None and grads:  # before the all-reduce in step()
                    mine = torch.cat(grads)
                    everyone = [torch.zeros_like(mine) for _ in range(world)]
                    dist.all_gather(everyone, mine)
                    local_grads_differ = not torch.equal(everyone[0], everyone[1])
                learner.step()
        in_sync = distributed.structure_in_sync(learner)
        ddp.eval()
        small = learner.shrink().eval()
        with torch.no_grad():
            x = splits.test.tensors[0]
            exact = torch.allclose(small(x), model(x), atol=1e-5)
        tensors = {f"gate.{i}": p.detach().clone() for i, p in enumerate(learner.parameters())}
        # parameters only: each rank's BatchNorm keeps running statistics of its own shard
        tensors.update({f"model.{k}": v.detach().contiguous()
                        for k, v in model.named_parameters()})
        tensors.update({f"small.{k}": v.detach().contiguous()
                        for k, v in small.named_parameters()})
        safetensors.torch.save_file(tensors, f"{out}/{label}.rank{rank}.safetensors")
        with open(f"{out}/{label}.rank{rank}.json", "w") as f:
            json.dump({"rank": rank, "in_sync": in_sync, "local_grads_differ": local_grads_differ,
                       "shrunk_exact": exact, "architecture": learner.architecture(),
                       "step": learner.method.t, "total": total,
                       "has_parameters": bool(learner.parameters())}, f)
    distributed.cleanup()
    """
)


def _torchrun() -> list[str]:
    exe = Path(sys.executable).parent / "torchrun"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("torchrun")
    return [found] if found else [sys.executable, "-m", "torch.distributed.run"]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """One torchrun launch (2 gloo processes) trains every registered method in turn."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed missing")
    out = tmp_path_factory.mktemp("ddp")
    script = out / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [*_torchrun(), "--standalone", "--nproc-per-node", "2", str(script), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.mark.parametrize("label", [label for label, _, _ in variants()])
def test_gated_ddp_training_keeps_ranks_identical(ddp_runs, label):
    meta = [json.loads((ddp_runs / f"{label}.rank{r}.json").read_text()) for r in (0, 1)]
    tensors = [safetensors.torch.load_file(ddp_runs / f"{label}.rank{r}.safetensors")
               for r in (0, 1)]
    for m in meta:
        if m["has_parameters"]:
            assert m["local_grads_differ"], "ranks saw the same data: the test would be vacuous"
        assert m["in_sync"] and m["shrunk_exact"]
        assert m["step"] == m["total"]
    assert meta[0]["architecture"] == meta[1]["architecture"]
    assert tensors[0].keys() == tensors[1].keys()
    for k in tensors[0]:
        assert torch.equal(tensors[0][k], tensors[1][k]), k


def test_attaching_to_the_ddp_wrapper_is_refused():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(al.ArchlearnError, match=r"attach to its \.module"):
        al.attach(nn.DataParallel(model), torch.zeros(1, 4), total_steps=10)


def test_helpers_without_a_process_group():
    learner = al.attach(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
                        torch.zeros(1, 4), total_steps=10)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.structure_in_sync(learner)
    distributed.broadcast_structure(learner)  # no-op
    distributed.cleanup()
