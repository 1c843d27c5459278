"""The switcher network (Han, Liu, Hai & Duan, arXiv 2110.05954): gates read off the weights.

A small meta-network per gated group reads the weights of the group's consumer layer and outputs
one non-negative scale per unit; the gate multiplies the layer's input, ``y = (x * g) W``. The
meta-network ends with BatchNorm + ReLU, which is what makes a scale exactly 0. The task network
and the switchers are trained alternately, by epoch, on the same task loss; there is no sparsity
term (``penalty()`` is 0). ``decision()`` returns the scales computed in eval mode (BatchNorm with
running statistics): zeros remove units, the rest are folded into the consumers' weights.

Design decisions (ours; the official code is ``hanmengqiaoyx/Mining_Knowledge_of_Weights``):

* The meta-network. The authors feed the whole weight matrix as an image through a U-Net, then a
  "row" convolution whose kernel spans one row (one input unit's fan-out weights) with 32
  channels, BN, ReLU, a 1x1 convolution to one channel, BN, ReLU. We keep that head and drop the
  U-Net: per unit, its fan-out vector ``f_u`` goes through
  ``Linear(L, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, 1) -> BatchNorm1d -> ReLU``, the
  units of the group forming the batch (as the row convolution's BN normalises over the rows).
  The U-Net lets a unit's gate see the other units' weights; here it only does through the
  BatchNorm statistics.
* What it reads: the first consumer of the group (``group.sites[0]``). For a Linear ``W[out, in]``
  a unit's fan-out is its column; after a flatten (one conv channel feeding ``k`` features) the
  ``k`` columns are concatenated; for a convolution ``W[out, in, kh, kw]`` the unit's kernels are
  flattened (``L = out * kh * kw``) rather than reduced by the authors' small learned convs. The
  weights are not detached: in weight epochs the task loss also reaches ``W`` through the
  switcher, as in the official code.
* The switchers' BatchNorms follow ``model.training``: batch statistics over the units in
  training, running statistics in eval mode and in ``decision()`` (as in the official code). Since
  the "batch" is always the same set of units, the running statistics only lag the batch ones;
  using batch statistics in eval mode too changed neither widths nor accuracy in a trial on
  digits, so the paper's form is kept.
* Groups of one unit are not gated (BatchNorm needs more than one example per batch).
* Schedule: a warm-up of plain training first, with no gate at all (the base schedule's
  ``warmup``, a fraction of ``total_steps``; the official LeNet code warms up 4 epochs, its MLP
  code none, which is the default here), then epochs alternate, starting with a switcher epoch:
  in a switcher epoch only the switchers learn (their SGD, lr 0.1, no weight decay), in a weight
  epoch only the weights (the switchers' optimizer does not step). Without a sparsity term the
  width is set mostly by the units the final BN + ReLU closes when the gates switch on and the
  switcher epochs do not reopen. Short epochs hurt: on digits the net is barely trained after
  one warm-up epoch and the gated net's accuracy drops in the first switcher epochs; give the
  method enough epochs. Measured: docs/RESULTS.md, "Each method's defaults and variants on
  digits" (``python -m benchmarks.method_settings``).
* Freezing the weights without touching the user's loop: in a switcher epoch the user's optimizer
  still steps, so the method takes a snapshot of every model parameter at the first training
  forward of the epoch and writes it back after each step (``update``). Taking it lazily, at
  a forward rather than at ``attach`` or at the end of the previous epoch, means weights loaded
  after ``attach`` or from a checkpoint are the ones kept. Costs: the backward pass still computes
  the weights' gradients, the user's Adam moments see them, and BatchNorm running statistics of
  the model keep updating (as in the official code).
* Epochs are counted with ``steps_per_epoch`` (required: the learner does not see the data
  loader). ``total_steps`` is needed only for a ``warmup`` or a ``freeze`` (the base schedule:
  after ``freeze`` the gates are fixed at the switchers' eval output and the weights train on).
* The "connections" variant (a gate per weight) is not implemented: it does not shrink layers.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.methods.base import Method, Options, register
from archlearn.structure.shrink import Decision


class SwitcherOptions(Options):
    steps_per_epoch: int = Field(gt=0, description="learner.step() calls per epoch (required)")
    hidden: int = Field(32, gt=0, description="width of the switcher's hidden layer")
    lr: float = Field(0.1, gt=0, description="SGD learning rate of the switchers")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum of the switchers")
    init_bias: float = Field(
        0.0, description="initial bias of the final BatchNorm (0: about half the gates open)"
    )


class _Reader:
    """Gathers each unit's fan-out weights from a consumer layer: ``[units, L]``.

    The consumer must be a Linear or an ungrouped convolution (weight ``[out, in, ...]``);
    anything else (attention heads, transposed or grouped convolutions) is refused.
    """

    def __init__(self, module: nn.Module, channels: list[int], units: list[int], size: int):
        if not (isinstance(module, nn.Linear) or (
                isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.groups == 1)):
            raise ValueError(f"cannot read the fan-out of a {type(module).__name__}")
        self.module: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d = module
        per_unit: list[list[int]] = [[] for _ in range(size)]
        for c, u in zip(channels, units):
            per_unit[u].append(c)
        counts = {len(c) for c in per_unit}
        if len(counts) != 1 or 0 in counts:
            raise ValueError("units read unequal numbers of channels")
        self.index = torch.tensor(per_unit, dtype=torch.long,
                                  device=module.weight.device)  # [units, k]

    @property
    def length(self) -> int:
        w = self.module.weight
        return w.shape[0] * self.index.shape[1] * math.prod(w.shape[2:])

    def __call__(self) -> torch.Tensor:
        w = self.module.weight
        if self.index.device != w.device:  # the model moved
            self.index = self.index.to(w.device)
        cols = w[:, self.index]  # [out, units, k, *kernel]
        return cols.transpose(0, 1).reshape(self.index.shape[0], -1)


def _switcher(length: int, hidden: int, init_bias: float) -> nn.Sequential:
    net = nn.Sequential(
        nn.Linear(length, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1, bias=False),
        nn.BatchNorm1d(1),
        nn.ReLU(),
    )
    final = net[4]
    assert isinstance(final, nn.BatchNorm1d)
    with torch.no_grad():
        final.bias.fill_(init_bias)
    return net


@register
class Switcher(Method[SwitcherOptions]):
    """Per-group meta-networks mapping consumer weights to unit scales, trained alternately."""

    name = "switcher"
    Options = SwitcherOptions

    def __init__(self, model, groups, options: SwitcherOptions) -> None:
        super().__init__(model, groups, options)
        o = options
        self.readers: dict[int, _Reader] = {}
        self.nets: dict[int, nn.Sequential] = {}
        self.ungated: list[str] = []
        for i, g in enumerate(groups):
            site = g.sites[0]
            module = model.get_submodule(site.module)
            if g.size < 2 or g.kind != "channels":  # BatchNorm needs two units; heads: no reader
                self.ungated.append(g.name)
                continue
            try:
                reader = _Reader(module, site.channels, site.units, g.size)
            except ValueError:
                self.ungated.append(g.name)
                continue
            self.readers[i] = reader
            self.nets[i] = self.new_module(g.name, _switcher(reader.length, o.hidden,
                                                             o.init_bias))
        if not self.nets:
            raise ArchlearnError(
                f"switcher: no group can be gated (groups of one unit: {self.ungated})"
            )
        self.optimizer = torch.optim.SGD(self.parameters(), lr=o.lr, momentum=o.momentum)
        self._snapshot: list[torch.Tensor] | None = None
        self.switching = self.switcher_phase(0)

    # schedule -------------------------------------------------------------------------------
    def switcher_phase(self, t: int) -> bool:
        """Whether step ``t`` trains the switchers (and freezes the weights).

        Epochs count from the end of the warm-up and alternate, starting with a switcher epoch.
        """
        first = math.ceil(self._warmup_steps())
        return t >= first and ((t - first) // self.options.steps_per_epoch) % 2 == 0

    def advanced(self) -> None:
        self.switching = self.switcher_phase(self.t)
        if not self.switching:
            self._snapshot = None

    # gates ----------------------------------------------------------------------------------
    def _scales(self, i: int, train: bool) -> torch.Tensor:
        net = self.nets[i]
        net.train(train)
        return net(self.readers[i]().to(self.device, self.dtype)).flatten()

    def unit_scale(self, i: int) -> torch.Tensor:
        size = self.groups[i].size
        if i not in self.nets or self.warming_up:  # warm-up: plain training, no gate at all
            return self.full(size, 1.0)
        training = self.model.training
        if training and self.switching and self._snapshot is None:
            self._snapshot = [p.detach().clone() for p in self.model.parameters()]
        return self._scales(i, training)

    def regularizer(self) -> torch.Tensor:
        return self.full((), 0.0)  # no sparsity term: the task loss alone trains the switchers

    def update(self) -> None:
        if not self.switching:
            return
        super().update()
        if self._snapshot is not None:  # a switcher epoch: the weights do not move
            with torch.no_grad():
                for p, saved in zip(self.model.parameters(), self._snapshot):
                    p.copy_(saved)

    def decision(self) -> list[Decision]:
        out = []
        with torch.no_grad():
            for i, g in enumerate(self.groups):
                if i in self.nets and not self.warming_up:
                    was = self.nets[i].training
                    scale = self._scales(i, train=False).clone()
                    self.nets[i].train(was)
                else:
                    scale = self.full(g.size, 1.0)
                out.append(Decision(scale=scale))
        return out

    def load_extra_state(self, state) -> None:
        self._snapshot = None
        self.switching = self.switcher_phase(self.t)
