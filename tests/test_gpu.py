"""The device checks on a GPU, for every registered method (skipped without CUDA).

    python -m pytest tests/test_gpu.py -q          # on a machine with a CUDA GPU

Gates are created on the model's device, follow ``learner.to("cuda")`` and ``model.cuda()``
with their optimizer state, add no host-to-device copy to a forward pass, train under autocast
(bfloat16, and float16 with a GradScaler), under ``torch.compile`` (inductor), and under DDP with
NCCL (one process per GPU, at most two). ``ARCHLEARN_TEST_DEVICE=cpu`` runs the same checks,
less NCCL and the copy count, on the CPU (how they were written without a GPU).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import models
from archlearn.methods import names

DEVICE = torch.device(os.environ.get("ARCHLEARN_TEST_DEVICE", "cuda"))
CUDA = DEVICE.type == "cuda"
pytestmark = pytest.mark.skipif(CUDA and not torch.cuda.is_available(), reason="needs CUDA")
METHODS = names()


@pytest.fixture(autouse=True)
def _exact_float32():
    """No TF32: shrunk and gated outputs are compared in float32."""
    if CUDA:
        matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        yield
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    else:
        yield


def data(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, 16, 16, generator=gen)
    return x.to(DEVICE), torch.randint(0, 10, (64,), generator=gen).to(DEVICE)


def attach(method, model, x):
    return al.attach(model, x[:1], method=method, total_steps=40, steps_per_epoch=4)


def train(model, learner, x, y, steps=3, dtype=None, scaler=None, forward=None):
    forward = forward or model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        model.train()
        with torch.autocast(DEVICE.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(forward(x).float(), y) + learner.penalty()
        opt.zero_grad()
        if scaler is None:
            loss.backward()
            opt.step()
            learner.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            learner.step(scaler)
            scaler.update()


def on_device(learner):
    tensors = list(learner.parameters()) + learner.method.buffers()
    opt = learner.method.optimizer
    if opt is not None:
        tensors += [v for s in opt.state.values() for k, v in s.items()
                    if torch.is_tensor(v) and k != "step"]
    return all(t.device.type == DEVICE.type for t in tensors)


def assert_shrink_exact(model, learner, x, atol=1e-4):
    model.eval()
    with torch.no_grad():
        gated = model(x)
        small = learner.shrink().eval()
        out = small(x)
    assert next(small.parameters()).device.type == DEVICE.type
    assert torch.allclose(out, gated, atol=atol), (out - gated).abs().max()


@pytest.mark.parametrize("method", METHODS)
def test_gates_are_created_on_the_models_device(method):
    torch.manual_seed(0)
    model = models.tiny_resnet().to(DEVICE)
    x, y = data()
    learner = attach(method, model, x)
    assert on_device(learner) and learner.method.device.type == DEVICE.type
    train(model, learner, x, y)
    assert on_device(learner)
    assert_shrink_exact(model, learner, x)


@pytest.mark.skipif(not CUDA, reason="counts CUDA copies")
@pytest.mark.parametrize("method", METHODS)
def test_a_forward_pass_copies_nothing_from_the_host(method):
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = models.tiny_resnet().to(DEVICE)
    x, y = data()
    learner = attach(method, model, x)
    train(model, learner, x, y, steps=2)
    model.eval()
    with torch.no_grad():
        model(x)  # warm caches (index tensors, masks)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model(x)
            torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type == DeviceType.CUDA]
    assert kernels, "no CUDA work was profiled: the check would be vacuous"
    copies = [n for n in kernels if "HtoD" in n]
    assert not copies, copies


@pytest.mark.parametrize("method", METHODS)
def test_learner_to_and_model_moves_carry_the_optimizer_state(method):
    torch.manual_seed(0)
    model = models.tiny_vgg_bn()
    x, y = data()
    learner = attach(method, model, x.cpu())
    train(model, learner, x.cpu(), y.cpu(), steps=2)
    learner.to(DEVICE)
    assert on_device(learner) and next(model.parameters()).device.type == DEVICE.type
    train(model, learner, x, y, steps=2)
    assert on_device(learner)
    model.cpu()  # a plain model move: the next forward moves the gates back
    train(model, learner, x.cpu(), y.cpu(), steps=1)
    assert all(p.device.type == "cpu" for p in learner.parameters())
    model.to(DEVICE)
    train(model, learner, x, y, steps=1)
    assert on_device(learner)
    assert_shrink_exact(model, learner, x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("method", METHODS)
def test_training_under_autocast(method, dtype):
    torch.manual_seed(0)
    model = models.tiny_resnet().to(DEVICE)
    x, y = data()
    learner = attach(method, model, x)
    start = [p.detach().clone() for p in learner.parameters()]
    scaler = torch.amp.GradScaler(DEVICE.type) if dtype == torch.float16 else None
    train(model, learner, x, y, steps=4, dtype=dtype, scaler=scaler)
    params = learner.parameters()
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in params)
    if start:
        assert any(not torch.equal(p, q) for p, q in zip(params, start)), "no structure update"
    assert learner.method.t == 4
    assert_shrink_exact(model, learner, x)


@pytest.mark.parametrize("method", METHODS)
def test_torch_compile_inductor(method):
    torch.manual_seed(0)
    model = models.tiny_vgg_bn().to(DEVICE)
    x, y = data()
    learner = attach(method, model, x)
    torch._dynamo.reset()
    compiled = torch.compile(model)
    train(model, learner, x, y, steps=3, forward=compiled)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-4)
    assert_shrink_exact(model, learner, x)
    torch._dynamo.reset()


WORKER = textwrap.dedent(
    """
    import json, sys

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import archlearn as al
    from archlearn import distributed, models
    from archlearn.methods import names

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    out = sys.argv[1]
    rank, world = distributed.init()
    assert dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device())
    gen = torch.Generator().manual_seed(rank)  # each rank its own data
    x = torch.randn(32, 3, 16, 16, generator=gen).to(device)
    y = torch.randint(0, 10, (32,), generator=gen).to(device)
    report = {}
    for method in names():
        torch.manual_seed(100 + rank)
        model = models.tiny_vgg_bn().to(device)
        learner = al.attach(model, x[:1], method=method, total_steps=8, steps_per_epoch=2)
        distributed.broadcast_structure(learner)
        ddp = DDP(model, device_ids=[device.index])
        opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
        for _ in range(8):
            ddp.train()
            loss = torch.nn.functional.cross_entropy(ddp(x), y) + learner.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            learner.step()
        gates = [p.detach().double().sum().item() for p in learner.parameters()]
        report[method] = {"in_sync": distributed.structure_in_sync(learner), "t": learner.method.t,
                          "on_gpu": all(p.is_cuda for p in learner.parameters()),
                          "gates": gates, "widths": [l["width"] for l in
                                                     learner.architecture()["layers"]]}
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"world": world, "report": report}, f)
    distributed.cleanup()
    """
)


@pytest.mark.skipif(not CUDA, reason="NCCL needs CUDA")
def test_ddp_with_nccl_keeps_every_method_in_sync(tmp_path):
    world = min(2, torch.cuda.device_count())
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run([torchrun, "--standalone", "--nproc-per-node", str(world),
                           str(script), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    for method in METHODS:
        reports = [r["report"][method] for r in ranks]
        for rep in reports:
            assert rep["in_sync"] and rep["t"] == 8 and rep["on_gpu"], (method, rep)
        assert all(rep["gates"] == reports[0]["gates"] for rep in reports), method
        assert all(rep["widths"] == reports[0]["widths"] for rep in reports), method
