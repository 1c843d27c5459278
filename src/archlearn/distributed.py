"""Structure learning across several processes or machines with ``torch.distributed`` (DDP).

The structure parameters (gates) live in the learner, not in the model, so DDP neither
broadcasts nor averages them; :meth:`archlearn.Learner.step` all-reduces their gradients
instead, and every rank then takes the same step. What works, in this order::

    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, DistributedSampler

    import archlearn as al
    from archlearn import distributed

    rank, world = distributed.init()          # torchrun's environment; gloo on CPU, nccl on GPU
    model = Net()
    learner = al.attach(model, example, method="tsrelu", total_steps=steps)  # 1. the raw model
    distributed.broadcast_structure(learner)  # 2. every rank starts from rank 0's gates
    ddp = DDP(model)                          # 3. then wrap (this broadcasts rank 0's weights)
    optimizer = torch.optim.Adam(ddp.parameters())
    sampler = DistributedSampler(train_set, shuffle=True, seed=0)  # each rank its own shard
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in DataLoader(train_set, batch_size=64, sampler=sampler):
            loss = torch.nn.functional.cross_entropy(ddp(x), y) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()                    # all-reduces the gates' gradients, then steps
    assert distributed.structure_in_sync(learner)
    if rank == 0:
        al.save(learner.shrink(), "out/")     # the same shrunk model on every rank
    distributed.cleanup()

* Attach to the raw model *before* wrapping it, or to ``ddp.module`` after (the same object):
  the gates are forward hooks on its submodules, so they act inside DDP's forward, and names
  in the architecture and the save/load recipe are the model's own. ``al.attach(ddp, ...)``
  is refused with an ``ArchlearnError``: it would trace through DDP's forward, shrink into a
  copy of the DDP wrapper, and prefix every name with ``module.``, so the saved recipe would
  not replay on a fresh instance of the model's class.
* ``learner.shrink()`` and ``learner.architecture()`` are deterministic functions of the
  (synchronised) weights and gates: every rank gets the same shrunk model; save it on rank 0.
* Checkpoints: write them on rank 0 only (``if distributed.is_main()``) and have every rank
  load that same file before wrapping, so weights, gates and both optimizers' states agree.

Launching: on one machine, ``torchrun --standalone --nproc-per-node 4 train.py``. On several
machines run the same command on each, naming one of them as the rendezvous point::

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \\
             --rdzv-endpoint node0.example.org:29400 --rdzv-id my-run train.py

(``--nnodes 1:4`` allows elastic membership; gloo picks the network interface from the host
name, set ``GLOO_SOCKET_IFNAME=eth0`` where it picks the wrong one.)
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from archlearn.learner import Learner

__all__ = [
    "broadcast_structure",
    "cleanup",
    "init",
    "is_main",
    "rank",
    "structure_in_sync",
    "world_size",
]


def active() -> bool:
    """Whether a process group is initialised (False in a plain single-process run)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True on rank 0, or when not distributed: where to save, log and print."""
    return rank() == 0


def init(backend: str | None = None) -> tuple[int, int]:
    """Join the process group described by torchrun's environment; ``(rank, world_size)``.

    Without that environment (a plain ``python train.py``) nothing is initialised and the run
    is a single process, ``(0, 1)``. The backend defaults to nccl when CUDA is available
    (selecting this process's ``LOCAL_RANK`` GPU) and gloo otherwise.

    >>> rank(), world_size(), is_main()  # before init, or in a plain single-process run
    (0, 1, True)
    """
    if active():
        return rank(), world_size()
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return 0, 1
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return rank(), world_size()


def cleanup() -> None:
    """Leave the process group (no-op when not distributed)."""
    if active():
        dist.destroy_process_group()


def _flat(learner: Learner) -> torch.Tensor:
    params = [p.detach().reshape(-1).double() for p in learner.parameters()]
    t = torch.tensor([float(learner.method.t)], dtype=torch.float64)
    return torch.cat([*params, t])


def _device() -> torch.device:
    if active() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_structure(learner: Learner, src: int = 0) -> None:
    """Copy rank ``src``'s structure parameters, their modules' buffers and step to every rank.

    Call it after ``attach``: methods whose gates start at random values need it, for tsrelu
    (constant start) it is a cheap safeguard. The structure optimizer's state is not sent.
    """
    if not active():
        return
    device = _device()
    with torch.no_grad():
        for p in [*learner.parameters(), *learner.method.buffers()]:
            buf = p.detach().to(device).clone()
            dist.broadcast(buf, src)
            p.copy_(buf.to(p.device))
        t = torch.tensor([learner.method.t], dtype=torch.int64, device=device)
        dist.broadcast(t, src)
        learner.method.t = int(t.item())


def structure_in_sync(learner: Learner) -> bool:
    """True when every rank holds bit-identical structure parameters and step count.

    A collective: every rank must call it. Always True when not distributed.
    """
    if not active():
        return True
    flat = _flat(learner).to(_device())
    sizes = torch.tensor([flat.numel(), -flat.numel()], dtype=torch.float64, device=flat.device)
    dist.all_reduce(sizes, op=dist.ReduceOp.MAX)  # the largest size and minus the smallest
    if sizes[0] != -sizes[1]:
        return False
    high, low = flat.clone(), flat.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return bool(torch.equal(high, low) and torch.equal(high, flat))
