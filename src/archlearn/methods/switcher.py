"""The switcher network (Han, Liu, Hai & Duan, arXiv 2110.05954): gates read off the weights.

A meta-network (a *switcher*) per gated layer reads the layer's weights and outputs
non-negative scales whose last BatchNorm + ReLU makes some of them exactly 0. The task network
and the switchers are trained alternately, by epoch, on the same task loss; there is no sparsity
term (``penalty()`` is 0). ``decision()`` returns the scales computed in eval mode (BatchNorm
with running statistics). Two variants, as the official code (``hanmengqiaoyx/
Mining_Knowledge_of_Weights``, the "Optimal_Model_Neurons" and "_Connections" folders):

* ``variant="neurons"`` (default): one scale per unit of each coupled group, on the inputs of
  the group's consumers, ``y = (x * g) W``; zeros remove units (a smaller dense model).
  What the switcher reads, as in the code: for a group made by a convolution, that conv's
  filters ``[out, in, kh, kw]``, reduced per kernel by small convs to an ``out x in`` map (one
  row per filter: the code gates whole filters); for a group made by a Linear, its first
  consumer's fan-out weights, one row per unit (the code gates a Linear's inputs reading the
  rows of its ``W[in, out]``; after a flatten a unit's ``k`` columns are concatenated). The map
  goes through the U-Net, then the row head (a ``1 x L`` conv, BN, ReLU, a 1x1 conv, BN, ReLU).
* ``variant="connections"``: a gate map shaped like each Linear's weight, or ``[out, in]`` for
  a conv (one gate per kernel), from the U-Net on ``W`` (a Linear's read as its ``W[in, out]``
  image, as the code stores it; a conv's kernel-reduced map); the layer computes with ``W * G``
  (``structure/weight_gates.py``). Every Linear/Conv layer is gated, the first and the output
  layer included, as in the code. Shrinking folds ``G`` into ``W``: an unstructured-sparse model
  of the same shapes whose zeros are kept by a mask; ``architecture()`` and ``al.measure``
  report its ``nonzero_params``.

The meta-networks are in ``switcher_nets.py``. Design decisions (ours):

* ``meta="mlp"`` (neurons only) keeps the simplified switcher this package shipped first: per
  unit, its consumer fan-out row through ``Linear -> BN -> ReLU -> Linear -> BN -> ReLU``, the
  units of a group forming the batch, and no U-Net (a unit's gate sees the other units only
  through the BatchNorm statistics). It is much cheaper; ``benchmarks/switcher.py`` compares
  both in docs/RESULTS.md.
* The code also gates the 784 input pixels (its first layer's inputs) in the neuron variant; we
  gate hidden units only (an input is not a unit of the network's architecture).
* The switcher reads the weights detached: the task loss reaches ``W`` only through the layer.
  In the code it also flows back through the switcher (``weights_grad=True``); with the code's
  SGD at lr 0.1 that made LeNet-300-100 diverge (NaN weights in epoch 3, seed 0, 1 thread):
  the switcher's first BatchNorm divides the small weights by their small spread and multiplies
  their gradient by as much. In the code the switchers' BatchNorm affine parameters are never
  frozen and also learn in weight epochs (an oversight, we think); here the whole switcher is
  frozen in weight epochs.
* The switchers' BatchNorms normalise with the statistics of their own input in eval mode too
  (``stats="batch"``, default). The code keeps running averages and uses them in eval mode
  (``stats="running"``); but a switcher's "batch" is always the whole weight map, so its
  statistics are a function of the weights, and using them makes the decision the very gates
  the weights last trained with. Running averages lag them: after a few updates the decided
  gates of a fresh switcher had no zero at all where the training gates had half.
* What a step costs. The scales need autograd only while the switchers learn (a switcher
  epoch), with ``weights_grad``, or when the caller asks for it in eval mode. In a weight epoch
  a switcher's output is a constant of the weights: it runs under ``no_grad`` (no backward
  through the U-Net) and is cached until a weight or a switcher parameter changes or
  ``learner.step()`` is called, so one evaluation serves every consumer of a group and every
  forward of a step (eval mode without autograd caches the same way). The results are the
  same to the bit (a test compares with the uncached path, ``_reference``). A switcher epoch
  has no such slack: the switchers change at every step, each is evaluated once a step (one
  forward a step), and all of them learn, so every step runs each U-Net's forward and
  backward. Those are arithmetic, bound by the convolutions on the largest map (LeNet-5's fc1:
  800x500, about 3 GMAC forward; a step of ``connections`` on LeNet-5 is 21 GFLOP, two thirds
  of it the U-Nets' backward); what is not (pooling, concatenation, ReLU, mode switches) is a
  fifth of a step at most, and the same bits forbid another kernel or summation order: a
  switcher epoch cannot get much cheaper without computing something else. Timed
  with ``python -m benchmarks.switcher --profile-epochs 3`` (one thread, a shared machine):
  an epoch of ``neurons`` costs twice a dense epoch on LeNet-5 (2.2 s against 1.1 s), of
  ``connections`` 28 s (LeNet-5) and 15 s (LeNet-300-100). ``channels_last=True`` runs the
  U-Nets in that layout: 1.2-1.5x faster on ``connections``, 5-10% on ``neurons``; but its
  sums run in another order, the gates of one pass move by up to 2e-4 (3 of LeNet-5 fc1's
  400,000 cross zero) and trajectories drift apart within steps, so it is not the default.
* Groups of one unit and maps of one value are not gated (BatchNorm needs two values), nor
  attention heads (no reader for them); `architecture()["skipped"]` lists each with its reason.
* The gates are unbounded (a ReLU): the switcher learns to amplify some weights, up to about 20
  times on LeNet-300-100, and an SGD step on ``W`` then moves ``W * G`` by ``G**2`` times as
  much. With the code's SGD at lr 0.1 that diverged (NaN in epoch 14 of 30, connections);
  clipping the weights' gradient norm (at 5) kept the run finite.
* Each switcher's gradient norm is clipped at ``clip`` (5) before its step; the code does not
  clip. Without it ``connections`` collapsed to chance on LeNet-5 (10 epochs, seed 0): at the
  sixth step of the first switcher epoch the switchers' gradients were about 10 times their
  usual norm (the step before had raised conv1's gates and the loss spiked), and the step at
  lr 0.1 moved fc1's gates off its positive weights (mean gate 0.62 -> 0.14) onto its negative
  ones (0.40 -> 0.62): every fc1 ReLU died for every input, no gradient reached a weight or a
  switcher again, and no later epoch could undo it. On smaller nets the same kind of step
  drives a layer's final BatchNorm + ReLU to all zeros, as dead. With the clip, seeds 0-2 of
  that run end at 96.7-97.0%.
* Schedule (the code's): a warm-up of plain training with no gate at all (the base schedule's
  ``warmup``, a fraction of ``total_steps``: the LeNet code warms up 4 epochs, its MLP code none,
  the default), then epochs alternate starting with ``start``: in a switcher epoch only the
  switchers learn (their SGD, lr 0.1, no weight decay), in a weight epoch only the weights. The
  LeNet code is ``warmup=4/epochs, start="switcher"`` (the default ``start``), the MLP code
  ``start="weights"``. No warm-up, the default, is confirmed on a validation split of digits
  (``python -m benchmarks.select_defaults``, 3 seeds, ``warmup`` 0/0.05/0.15): the fewest parameters
  (4,403) and the best accuracy (96.6%, sd 0.8). ``milestones`` (fractions of ``total_steps``)
  multiply the switchers' learning rate by 0.1 at each, the code's MultiStep decay (50 and 75 of 100
  epochs: ``(0.5, 0.75)``); the task network's optimizer and its decay are the user's. Give the
  method enough epochs: a gated net barely trained loses accuracy in its first switcher epochs. The
  base ``freeze`` fixes the gates at the switchers' eval output and lets the weights train on.
* Freezing the weights without touching the user's loop: in a switcher epoch the user's optimizer
  still steps, so the method takes a snapshot of every model parameter at the first training
  forward of the epoch and writes it back after each step (``update``). Taking it lazily, at a
  forward, means weights loaded after ``attach`` or from a checkpoint are the ones kept. Costs:
  the backward pass still computes the weights' gradients, the user's Adam moments see them,
  and BatchNorm running statistics of the model keep updating (as in the code).
* Epochs are counted with ``steps_per_epoch`` (required: the learner does not see the data
  loader); ``total_steps`` is needed for a ``warmup``, a ``freeze`` or ``milestones``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.methods.base import Method, Options, register
from archlearn.methods.switcher_nets import KernelReducer, RowHead, UNet, UnitMLP
from archlearn.structure.groups import Skipped
from archlearn.structure.shrink import Decision
from archlearn.structure.weight_gates import gateable_layers, weight_of

ONE_VALUE = "one unit or one weight (its BatchNorm needs two values)"


class SwitcherOptions(Options):
    steps_per_epoch: int = Field(gt=0, description="learner.step() calls per epoch (required)")
    variant: Literal["neurons", "connections"] = Field(
        "neurons", description="gate units (a smaller dense net) or single weights (sparse)"
    )
    meta: Literal["unet", "mlp"] = Field(
        "unet", description="the official U-Net switcher, or the simplified per-unit MLP"
    )
    start: Literal["switcher", "weights"] = Field(
        "switcher", description="which side learns in the first epoch of the alternation"
    )
    lr: float = Field(0.1, gt=0, description="SGD learning rate of the switchers")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum of the switchers")
    clip: float | None = Field(
        5.0, gt=0, description="each switcher's gradient norm is clipped to this (None: the "
        "code, no clip)"
    )
    milestones: tuple[float, ...] = Field(
        (), description="fractions of total_steps where the switchers' lr is multiplied by 0.1"
    )
    unet_depth: int | None = Field(
        None, gt=0, le=6, description="pooling levels of the U-Net (default: the code's choice)"
    )
    unet_base: int = Field(8, gt=0, description="channels of the U-Net's first level")
    hidden: int = Field(32, gt=0, description="width of the simplified switcher's hidden layer")
    init_bias: float = Field(
        0.0, description="initial bias of the final BatchNorm (0: about half the gates open)"
    )
    weights_grad: bool = Field(
        False, description="let the task loss reach W through the switcher too (the code does)"
    )
    stats: Literal["batch", "running"] = Field(
        "batch", description="switchers' BatchNorm in eval: the weight map's own statistics, "
        "or running averages (the code)"
    )
    channels_last: bool = Field(
        False, description="run the meta-networks in channels-last layout: faster, but not the "
        "same sums (gates differ from the default's by about 1e-4, then drift apart)"
    )

    @model_validator(mode="after")
    def _consistent(self):
        if self.meta == "mlp" and self.variant == "connections":
            raise ValueError("meta 'mlp' gates units only; use variant 'neurons' or meta 'unet'")
        if self.milestones and self.total_steps is None:
            raise ValueError("total_steps is required when milestones are set")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions in (0, 1), got {self.milestones}")
        return self


class _Weight:
    """Reads layer ``name``'s weight off the model it is called with (``[1, 1, in, out]``, a
    Linear's ``W[in, out]`` image as the code stores it, when ``image``).

    A picklable object, not a closure: a deep copy or an unpickled copy of an attached model
    carries a copy of the method whose ``model`` is the copy, so its gates read the copy's
    weights.
    """

    def __init__(self, name: str, image: bool = False) -> None:
        self.name, self.image = name, image

    def __call__(self, model: nn.Module) -> torch.Tensor:
        w = weight_of(model, self.name)
        return w.t()[None, None] if self.image else w


class _Reader:
    """Gathers each unit's fan-out weights from consumer layer ``name``: ``[units, L]`` (as a
    ``[1, 1, units, L]`` image when ``image``), off the model it is called with.

    The consumer must be a Linear or an ungrouped convolution (weight ``[out, in, ...]``);
    anything else (attention heads, transposed or grouped convolutions) is refused.
    """

    def __init__(self, model: nn.Module, name: str, channels: list[int], units: list[int],
                 size: int, image: bool = False) -> None:
        module = model.get_submodule(name)
        if not (isinstance(module, nn.Linear) or (
                isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.groups == 1)):
            raise ValueError(f"cannot read the fan-out of a {type(module).__name__}")
        self.name, self.image = name, image
        per_unit: list[list[int]] = [[] for _ in range(size)]
        for c, u in zip(channels, units):
            per_unit[u].append(c)
        counts = {len(c) for c in per_unit}
        if len(counts) != 1 or 0 in counts:
            raise ValueError("units read unequal numbers of channels")
        w = weight_of(model, name)
        self.index = torch.tensor(per_unit, dtype=torch.long, device=w.device)  # [units, k]
        self.length = w.shape[0] * self.index.shape[1] * math.prod(w.shape[2:])

    def __call__(self, model: nn.Module) -> torch.Tensor:
        w = weight_of(model, self.name)
        if self.index.device != w.device:  # the model moved
            self.index = self.index.to(w.device)
        cols = w[:, self.index]  # [out, units, k, *kernel]
        rows = cols.transpose(0, 1).reshape(self.index.shape[0], -1)
        return rows[None, None] if self.image else rows


def _image_out(gates: torch.Tensor) -> torch.Tensor:
    """The U-Net's ``[1, 1, out, in]`` map of a conv: its ``[out, in]`` kernel gates."""
    return gates[0, 0]


def _transposed_out(gates: torch.Tensor) -> torch.Tensor:
    """The U-Net's ``[1, 1, in, out]`` map of a Linear: gates shaped like its ``W[out, in]``."""
    return gates[0, 0].t()


class _Switcher(nn.Module):
    """``read(model)`` -> [reducer] -> net -> [post] -> scales."""

    def __init__(self, read: Callable[[nn.Module], torch.Tensor], net: nn.Module,
                 reducer: nn.Module | None = None,
                 post: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.net, self.reducer = net, reducer
        self._read, self._post = read, post  # plain attributes: picklable, hold no model

    def forward(self, model: nn.Module, weights_grad: bool = False) -> torch.Tensor:
        x = self._read(model)
        x = (x if weights_grad else x.detach()).to(next(self.net.parameters()).dtype)
        if self.reducer is not None:
            x = self.reducer(x)
        out = self.net(x)
        return self._post(out) if self._post else out


def _final_bn(net: nn.Module) -> nn.modules.batchnorm._BatchNorm:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)][-1]


def _channels_last(net: nn.Module) -> None:
    """Conv kernels in channels-last layout; the convolutions compute in their weights' layout
    (``Method.to`` keeps it: tensors move with ``preserve_format``)."""
    for p in net.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)


def _batch_statistics(net: nn.Module) -> None:
    """BatchNorms that normalise with the statistics of their input, in eval mode too."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


@register
class Switcher(Method[SwitcherOptions]):
    """Per-layer meta-networks mapping weights to unit or weight scales, trained alternately."""

    name = "switcher"
    Options = SwitcherOptions
    variants = {"connections": {"variant": "connections"}, "simplified": {"meta": "mlp"}}

    def __init__(self, model, groups, options: SwitcherOptions) -> None:
        super().__init__(model, groups, options)
        self.nets: dict[str, _Switcher] = {}  # by group name (neurons) or layer name
        self.ungated: list[str] = []  # listed with the reason in architecture()["skipped"]
        if options.variant == "neurons":
            candidates = [(g.name, self._unit_switcher(g)) for g in groups]
        else:
            candidates = [(n, self._weight_switcher(n)) for n in gateable_layers(model)]
        for key, net in candidates:
            if isinstance(net, str):
                self.ungated.append(key)
                self.skipped.append(Skipped(key, f"switcher: {net}"))
                continue
            with torch.no_grad():
                _final_bn(net.net).bias.fill_(options.init_bias)
            if options.stats == "batch":
                _batch_statistics(net)
            if options.channels_last:
                _channels_last(net)
            self.nets[key] = self.new_module(key, net)
        if not self.nets:
            raise ArchlearnError(
                f"switcher: nothing can be gated (groups or maps of one value: {self.ungated})"
            )
        if options.variant == "connections":
            self.weight_modules = list(self.nets)
        self.optimizer = torch.optim.SGD(self.parameters(), lr=options.lr,
                                         momentum=options.momentum)
        self._snapshot: list[torch.Tensor] | None = None
        self._cache: dict[str, tuple[tuple, torch.Tensor]] = {}
        self._reference = False  # tests: the uncached path, autograd in every training call
        self.switching = self.switcher_phase(0)

    # meta-networks --------------------------------------------------------------------------
    def _unet(self, shape: tuple[int, int]) -> UNet:
        return UNet(shape, self.options.unet_depth, self.options.unet_base)

    def _unit_switcher(self, g) -> _Switcher | str:
        """The switcher of group ``g``, or why it has none."""
        if g.size < 2:
            return ONE_VALUE
        if g.kind != "channels":
            return f"no reader for {g.kind} (only channels of Linear/Conv layers are read)"
        root = self.model.get_submodule(g.name)
        if self.options.meta == "unet" and isinstance(root, nn.modules.conv._ConvNd):
            w = weight_of(self.model, g.name)  # one row per filter: [out, in] after the reduction
            reducer = KernelReducer(w.shape[1], tuple(w.shape[2:]))
            unet = self._unet((w.shape[0], w.shape[1]))
            return _Switcher(_Weight(g.name), nn.Sequential(unet, RowHead(w.shape[1])), reducer)
        site = g.sites[0]
        try:
            reader = _Reader(self.model, site.module, site.channels, site.units, g.size,
                             image=self.options.meta == "unet")
        except ValueError as e:
            return str(e)
        if self.options.meta == "mlp":
            return _Switcher(reader, UnitMLP(reader.length, self.options.hidden))
        unet = self._unet((g.size, reader.length))
        return _Switcher(reader, nn.Sequential(unet, RowHead(reader.length)))

    def _weight_switcher(self, name: str) -> _Switcher | str:
        """The switcher of layer ``name``'s weight, or why it has none."""
        w = weight_of(self.model, name)
        out, cin = w.shape[:2]
        if out * cin < 2:
            return ONE_VALUE
        if isinstance(self.model.get_submodule(name), nn.Linear):  # the code's W[in, out]
            return _Switcher(_Weight(name, image=True), self._unet((cin, out)),
                             post=_transposed_out)
        return _Switcher(_Weight(name), self._unet((out, cin)),
                         KernelReducer(cin, tuple(w.shape[2:])), post=_image_out)

    # schedule -------------------------------------------------------------------------------
    def switcher_phase(self, t: int) -> bool:
        """Whether step ``t`` trains the switchers (and freezes the weights).

        Epochs count from the end of the warm-up and alternate, starting with ``start``.
        """
        first = math.ceil(self._warmup_steps())
        epoch = (t - first) // self.options.steps_per_epoch
        return t >= first and epoch % 2 == (0 if self.options.start == "switcher" else 1)

    def advanced(self) -> None:
        self.switching = self.switcher_phase(self.t)
        if not self.switching:
            self._snapshot = None

    def _lr(self) -> float:
        o = self.options
        total = o.total_steps or 0  # set whenever there are milestones (validated)
        passed = sum(self.t >= m * total for m in o.milestones)
        return o.lr * 0.1**passed

    # gates ----------------------------------------------------------------------------------
    def _versions(self, key: str) -> tuple:
        net = self.nets[key]
        tensors = [*self.model.parameters(), *net.parameters(), *net.buffers()]
        return tuple((t._version, t.data_ptr()) for t in tensors)

    def _set_mode(self, net: nn.Module, train: bool) -> None:
        """``net.train(train)``, skipped when ``net`` is in that mode already (every call walks
        the whole U-Net: 2-4% of a switcher epoch of ``neurons``); ``_reference`` always calls
        it, as this method did before."""
        if self._reference or net.training != train:
            net.train(train)

    def _needs_graph(self, train: bool) -> bool:
        """Whether the scales must carry autograd: when the switchers learn (a switcher epoch),
        when the task loss reaches ``W`` through them (``weights_grad``), and in eval mode
        with autograd on (the user asked for it). In a weight epoch the switcher is frozen and
        its output is a constant of the weights."""
        if not torch.is_grad_enabled():
            return False
        return self._reference or not train or self.switching or self.options.weights_grad

    def _scales(self, key: str, train: bool) -> torch.Tensor:
        """The switcher's output for ``key`` in train or eval mode.

        With autograd (see ``_needs_graph``) every call computes it afresh. Without, it is a
        function of the model's weights and the switcher's parameters: cached until one of them
        changes or ``learner.step()`` is called, so one evaluation serves every consumer of a
        group and every forward of a step. The exception is training with running statistics,
        where each call also moves them, as it always did. ``_reference`` (tests) computes
        every training call with autograd, as this method did before the cache.
        """
        net = self.nets[key]
        if self._needs_graph(train):
            self._set_mode(net, train)
            return net(self.model, self.options.weights_grad)
        if train and (self._reference or self.options.stats == "running"):
            with torch.no_grad():
                self._set_mode(net, True)
                return net(self.model)
        stamp = (train, self.t, self._versions(key))
        hit = self._cache.get(key)
        if hit is None or hit[0] != stamp:
            with torch.no_grad():
                self._set_mode(net, train)
                self._cache[key] = (stamp, net(self.model))
        return self._cache[key][1]

    def _gate(self, key: str) -> torch.Tensor:
        training = self.model.training
        if training and self.switching and self._snapshot is None:
            self._snapshot = [p.detach().clone() for p in self.model.parameters()]
        return self._scales(key, training)

    def unit_scale(self, i: int) -> torch.Tensor:
        name = self.groups[i].name
        if self.options.variant == "connections" or name not in self.nets or self.warming_up:
            return self.full(self.groups[i].size, 1.0)  # warm-up: plain training, no gate
        return self._gate(name)

    def weight_scale(self, name: str) -> torch.Tensor | None:
        return None if self.warming_up else self._gate(name)

    def regularizer(self) -> torch.Tensor:
        return self.full((), 0.0)  # no sparsity term: the task loss alone trains the switchers

    def update(self) -> None:
        if not self.switching:
            return
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        if self.options.clip is not None:
            for net in self.nets.values():
                nn.utils.clip_grad_norm_(net.parameters(), self.options.clip)
        super().update()
        if self._snapshot is not None:  # a switcher epoch: the weights do not move
            with torch.no_grad():
                for p, saved in zip(self.model.parameters(), self._snapshot):
                    p.copy_(saved)

    def _eval_scales(self, key: str) -> torch.Tensor:
        was = self.nets[key].training
        scale = self._scales(key, train=False).clone()
        self._set_mode(self.nets[key], was)
        return scale

    def decision(self) -> list[Decision]:
        with torch.no_grad():
            if self.options.variant == "connections":
                out = [Decision(scale=self.full(g.size, 1.0)) for g in self.groups]
                if not self.warming_up:
                    out[0].weights = {k: self._eval_scales(k) for k in self.weight_modules}
                return out
            return [
                Decision(scale=self._eval_scales(g.name) if g.name in self.nets
                         and not self.warming_up else self.full(g.size, 1.0))
                for g in self.groups
            ]

    def load_extra_state(self, state) -> None:
        self._snapshot = None
        self._cache.clear()
        self.switching = self.switcher_phase(self.t)

    def moved(self) -> None:
        self._cache.clear()

    def __getstate__(self) -> dict:
        """Copies and pickles start without cached scales (they are the original's)."""
        return {**self.__dict__, "_cache": {}}
