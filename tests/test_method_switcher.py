"""The switcher network: what it reads, the U-Net, epoch alternation, eval gates, exact zeros of
the connections variant through save and load (the shared contract, defaults and variants, is
in test_method_contract.py)."""

import tempfile
from typing import Any

import pytest
import torch
from helpers import settle_batchnorm
from nets import Encoder
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.methods.switcher import Switcher
from archlearn.methods.switcher_nets import KernelReducer, UNet

# the code's U-Net, narrower: tests stay fast
SMALL_UNET: dict[str, Any] = {"unet_base": 2, "unet_depth": 2}


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "steps_per_epoch"),
        ({"steps_per_epoch": 5, "meta": "mlp", "variant": "connections"}, "meta 'mlp'"),
        ({"steps_per_epoch": 5, "milestones": (0.5,)}, "total_steps"),
        ({"steps_per_epoch": 5, "milestones": (1.5,), "total_steps": 10}, "fractions"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(al.ArchlearnError, match=key):
        al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="switcher", **options)


@pytest.mark.parametrize("shape", [(784, 300), (100, 10), (50, 20), (20, 1), (7, 3), (2, 1)])
def test_unet_returns_the_input_size_with_exact_zeros(shape):
    torch.manual_seed(0)
    net = UNet(shape, base=2)
    out = net(torch.randn(1, 1, *shape))
    assert out.shape == (1, 1, *shape)
    assert (out == 0).any() and (out > 0).any()  # the final BatchNorm + ReLU
    # the skips are concatenated: every level but the deepest has a merge block
    assert len(net.up) == len(net.merge) == len(net.down) - 1 == len(net.pools)


def test_unet_depth_and_transposed_kernels_follow_the_code():
    net = UNet((784, 300))  # the code's first MLP layer: 784x300 -> ... -> 24x9, 8..256 channels
    assert [block[0].out_channels for block in net.down] == [8, 16, 32, 64, 128, 256]
    kernels = [up[0].kernel_size for up in net.up]
    assert kernels == [(3, 2), (2, 3), (2, 3), (2, 2), (2, 2)]  # as in the code's up_sample0..4


def test_kernel_reducer_maps_each_filter_to_one_value_per_input_channel():
    torch.manual_seed(0)
    red = KernelReducer(3, (5, 5))
    w = torch.randn(6, 3, 5, 5)
    out = red(w)
    assert out.shape == (1, 1, 6, 3)
    w2 = w.clone()
    w2[4] += 1.0  # filter 4 changes: in eval mode only row 4 of the map moves
    red.eval()
    diff = (red(w2) - red(w)).abs().sum(-1).flatten()
    assert diff[4] > 0 and (diff[torch.arange(6) != 4] == 0).all()


def test_neurons_read_filters_of_convs_and_fan_out_of_linears():
    model = models.lenet5(widths=(4, 6, 12))
    learner = al.attach(model, torch.zeros(1, 1, 28, 28), method="switcher", steps_per_epoch=1,
                        **SMALL_UNET)
    nets = learner.method.nets
    assert list(nets) == ["0", "3", "7"]
    assert torch.equal(nets["3"]._read(model), model[3].weight)  # conv2's own 6 filters
    assert nets["3"].reducer is not None
    fan_out = nets["7"]._read(model)[0, 0]  # fc1's 12 units, read off fc2's columns
    assert torch.equal(fan_out, model[9].weight.t())
    assert all(p is not q for p in learner.parameters() for q in model.parameters())


def test_simplified_switcher_reads_fan_out_weights_of_the_consumer():
    model = models.tiny_vgg_bn()  # last conv (16 channels) -> flatten (x16) -> Linear(256, 10)
    learner = al.attach(model, torch.zeros(1, 3, 16, 16), method="switcher", steps_per_epoch=1,
                        meta="mlp")
    nets = learner.method.nets
    last = learner.groups[-1].name
    fc = model[-1].weight  # [10, 256], channel c feeds features 16c .. 16c+15
    assert nets[last]._read(model).shape == (16, 10 * 16)
    assert torch.equal(nets[last]._read(model)[3], fc[:, 48:64].reshape(-1))


def test_single_unit_groups_stay_ungated():
    learner = al.attach(models.mlp(4, [1, 8], 2), torch.zeros(1, 4), method="switcher",
                        steps_per_epoch=1, **SMALL_UNET)
    assert learner.method.ungated == [learner.groups[0].name]
    assert torch.equal(learner.decisions()[0].scale, torch.ones(1))


def test_attention_heads_are_skipped_with_a_reason_and_the_rest_is_gated():
    torch.manual_seed(0)
    model, x = Encoder(8, 2, 16, 1, eager=False, mha=True), torch.randn(4, 5, 8)
    learner = al.attach(model, x, method="switcher", steps_per_epoch=1, **SMALL_UNET)
    assert [g.kind for g in learner.groups] == ["heads", "channels"]
    assert learner.method.ungated == ["blocks.0.attn"] and "blocks.0.fc1" in learner.method.nets
    skipped = {s["name"]: s["reason"] for s in learner.architecture()["skipped"]}
    assert "no reader for heads" in skipped["blocks.0.attn"]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):  # a switcher epoch, then a weight epoch
        loss = model(x).square().mean() + learner.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.step()
    model.eval()
    small = learner.shrink().eval()
    torch.testing.assert_close(small(x), model(x), atol=1e-5, rtol=1e-5)


def _phases(learner, model, steps):
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def snapshot():
        return ([p.detach().clone() for p in model.parameters()],
                [p.detach().clone() for p in learner.parameters()])

    def moved(a, b):
        return any(not torch.equal(u, v) for u, v in zip(a, b))

    phases = []
    for _ in range(steps):
        weights, switch = snapshot()
        active = not learner.method.warming_up
        model.train()
        loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.step()
        after_w, after_s = snapshot()
        phases.append((active, moved(weights, after_w), moved(switch, after_s)))
    return phases


@pytest.mark.parametrize("meta", ["unet", "mlp"])
def test_epochs_alternate_and_the_frozen_side_does_not_move(meta):
    torch.manual_seed(0)
    model = models.mlp(4, [8], 2)
    learner = al.attach(model, torch.zeros(1, 4), method="switcher", steps_per_epoch=2,
                        total_steps=8, warmup=0.25, init_bias=1.0, meta=meta, **SMALL_UNET)
    phases = _phases(learner, model, 8)
    assert phases[:2] == [(False, True, False)] * 2  # warm-up: plain training, no gates
    assert phases[2:4] == [(True, False, True)] * 2  # switcher epoch: weights frozen
    assert phases[4:6] == [(True, True, False)] * 2  # weight epoch: switcher frozen
    assert phases[6:8] == [(True, False, True)] * 2
    assert float(learner.penalty()) == 0.0


def test_mlp_code_schedule_gates_from_the_start_and_trains_weights_first():
    torch.manual_seed(0)
    model = models.mlp(4, [8], 2)
    learner = al.attach(model, torch.zeros(1, 4), method="switcher", steps_per_epoch=2,
                        start="weights", init_bias=1.0, **SMALL_UNET)
    phases = _phases(learner, model, 4)
    assert phases == [(True, True, False)] * 2 + [(True, False, True)] * 2


def test_milestones_divide_the_switchers_learning_rate_by_ten():
    model = models.mlp(4, [8], 2)
    learner = al.attach(model, torch.zeros(1, 4), method="switcher", steps_per_epoch=1,
                        total_steps=10, milestones=(0.5, 0.8), **SMALL_UNET)
    lrs = []
    for _ in range(10):
        nn.functional.cross_entropy(model(torch.randn(4, 4)), torch.tensor([0, 1, 0, 1])).backward()
        learner.step()
        lrs.append(learner.method.optimizer.param_groups[0]["lr"])
    # the switchers learn in even epochs (steps 0, 2, ...): the rate they stepped with
    assert lrs[::2] == pytest.approx([0.1] * 3 + [0.01] + [0.001])


@pytest.mark.parametrize("stats", ["batch", "running"])
def test_eval_gates_are_the_decision_and_batch_statistics_match_training(stats):
    model = models.mlp(6, [16], 3)
    learner = al.attach(model, torch.zeros(1, 6), method="switcher", steps_per_epoch=1,
                        stats=stats, **SMALL_UNET)
    m, key = learner.method, learner.groups[0].name
    model.train()
    train_scale = m.unit_scale(0).detach()
    assert (train_scale == 0).any() and (train_scale > 0).any()  # BN + ReLU: exact zeros
    assert m.nets[key].training
    model.eval()
    with torch.no_grad():
        eval_scale = m.unit_scale(0)
        assert m.unit_scale(0) is eval_scale  # cached while nothing changes
    assert not m.nets[key].training
    assert torch.equal(learner.decisions()[0].scale, eval_scale)
    # the map's own statistics: the decision is the training gate; running ones lag behind
    assert torch.equal(eval_scale, train_scale) == (stats == "batch")
    assert bool(m.buffers()) == (stats == "running")


def _settle_switchers(learner, steps=30):
    """Running statistics of the switchers' BatchNorms, and a varied final bias."""
    gen = torch.Generator().manual_seed(2)
    m = learner.method
    with torch.no_grad():
        for net in m.nets.values():
            bn = [b for b in net.net.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]
            bn[-1].bias.copy_(torch.randn(1, generator=gen) * 0.3)
    learner.model.train()
    with torch.no_grad():
        for _ in range(steps):
            for key in m.nets:
                m._scales(key, True)


def test_connections_gate_kernels_and_keep_zeros_through_shrink_save_and_load():
    def build():
        return models.lenet5(widths=(4, 6, 12))

    shape = (8, 1, 28, 28)
    torch.manual_seed(0)
    model = build()
    x = torch.randn(*shape)
    settle_batchnorm(model, x)
    learner = al.attach(model, x[:1], method="switcher", steps_per_epoch=1,
                        variant="connections", **SMALL_UNET)
    m = learner.method
    assert set(m.weight_modules) == {n for n, mod in model.named_modules()
                                     if isinstance(mod, (nn.Linear, nn.Conv2d))}
    _settle_switchers(learner)
    gates = learner.decisions()[0].weights
    assert gates["3"].shape == (6, 4)  # conv2: one gate per (out, in) kernel
    zeros = sum(int((g == 0).sum() * (model.get_submodule(n).weight[0, 0].numel()))
                for n, g in gates.items())
    assert zeros > 0 and all((g >= 0).all() for g in gates.values())
    model.eval()
    with torch.no_grad():
        gated = model(x)
        small = learner.shrink().eval()
        assert torch.allclose(small(x), gated, atol=1e-5)
    arch = learner.architecture()
    total = sum(p.numel() for p in model.parameters())
    assert arch["params"] == total  # same shapes: unstructured sparsity
    dense_zeros = sum(int((p == 0).sum()) for p in model.parameters())
    assert arch["nonzero_params"] == total - zeros - dense_zeros
    assert al.measure(small, x, repeats=1)["nonzero_params"] == arch["nonzero_params"]
    with tempfile.TemporaryDirectory() as d:
        al.save(small, d)
        loaded = al.load(d, model=build()).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), small(x))
    assert al.measure(loaded, x, repeats=1)["nonzero_params"] == arch["nonzero_params"]


def _trajectory(variant: str, reference: bool, **options) -> list[torch.Tensor]:
    """Ten steps of a small LeNet-5 (warm-up, then switcher and weight epochs alternating), two
    forwards a step: every loss, eval output and decision on the way, then the final weights
    and switchers."""
    torch.manual_seed(0)
    model = models.lenet5(widths=(4, 6, 12))
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 1, 28, 28, generator=gen), torch.randint(0, 10, (48,), generator=gen)
    learner = al.attach(model, x[:1], method="switcher", steps_per_epoch=2, total_steps=10,
                        warmup=0.2, milestones=(0.8,), variant=variant, **SMALL_UNET, **options)
    assert isinstance(learner.method, Switcher)
    learner.method._reference = reference
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trace = []
    for i in range(10):
        xb, yb = x[i % 3 * 16:(i % 3 + 1) * 16], y[i % 3 * 16:(i % 3 + 1) * 16]
        model.train()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss = loss + 0.5 * nn.functional.cross_entropy(model(xb.flip(0)), yb.flip(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.step()
        model.eval()
        with torch.no_grad():
            trace += [loss.detach(), model(x)]
        decisions = learner.decisions()
        trace += [d.scale for d in decisions]
        trace += [w for d in decisions for w in (d.weights or {}).values()]
    return trace + [p.detach() for p in [*model.parameters(), *learner.parameters()]]


@pytest.mark.parametrize("variant", ["neurons", "connections"])
@pytest.mark.parametrize("options", [{}, {"stats": "running", "start": "weights"}],
                         ids=["batch", "running"])
def test_scales_computed_once_a_step_train_bitwise_as_the_uncached_path(variant, options):
    """The speed-ups (no autograd through a frozen switcher, one evaluation a step, a
    meta-network's train/eval switch only when its mode changes) change nothing: the same
    losses, outputs, decisions, weights and switchers, to the bit, in switcher and weight
    epochs alike."""
    fast = _trajectory(variant, False, **options)
    slow = _trajectory(variant, True, **options)
    assert len(fast) == len(slow)
    assert all(torch.equal(a, b) for a, b in zip(fast, slow))


def test_a_frozen_switcher_runs_without_autograd_once_a_step():
    torch.manual_seed(0)
    model = models.mlp(6, [16], 3)
    learner = al.attach(model, torch.zeros(1, 6), method="switcher", steps_per_epoch=1,
                        start="weights", **SMALL_UNET)
    m, key = learner.method, learner.groups[0].name
    assert isinstance(m, Switcher)
    model.train()
    assert not m.switching  # a weight epoch: the switcher's output is a constant
    first = m.unit_scale(0)
    assert not first.requires_grad and m.unit_scale(0) is first  # cached within the step
    model(torch.randn(4, 6)).sum().backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    learner.step()  # a switcher epoch: every call with autograd, nothing cached
    assert m.switching
    again = m.unit_scale(0)
    assert again.requires_grad and m.unit_scale(0) is not again
    assert not torch.equal(again.detach(), first)  # the weights moved in between
    assert key in m.nets


def _spiked_run(seed: int, **options) -> tuple[float, dict[str, float]]:
    """A LeNet-5 (10-20-100) trained 3 plain epochs on 2,048 mnist5k digits, then its first
    switcher epoch (connections, the code's SGD at lr 0.1), one of whose losses is 10 times its
    value. Returns the test accuracy and each layer's fraction of gates on."""
    splits = data.load("mnist5k")
    x, y = splits.train.tensors[0][:2048], splits.train.tensors[1][:2048]
    torch.manual_seed(seed)
    model = models.lenet5(widths=(10, 20, 100))
    learner = al.attach(model, x[:1], method="switcher", steps_per_epoch=32, total_steps=128,
                        warmup=0.75, variant="connections", **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    order = torch.randperm(2048, generator=torch.Generator().manual_seed(seed))
    model.train()
    for t in range(128):
        batch = order[t % 32 * 64:(t % 32 + 1) * 64]
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        if t == 97:  # the second step of the switcher epoch
            loss = loss * 10
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        learner.step()
    model.eval()
    xt, yt = splits.test.tensors[0][:500], splits.test.tensors[1][:500]
    with torch.no_grad():
        accuracy = float((model(xt).argmax(1) == yt).float().mean())
        gates = learner.decisions()[0].weights or {}
    return accuracy, {k: float((g > 0).float().mean()) for k, g in gates.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_gradient_spike_in_a_switcher_epoch_does_not_kill_the_network(seed):
    """The collapse of connections on LeNet-5 (10% in a 10-epoch benchmark run, seed 0): at one
    step of the first switcher epoch the switchers' gradients were 10 times their usual norm,
    the unclipped SGD step (lr 0.1) turned fc1's gates onto its negative weights, every fc1
    ReLU died, and no gradient reached a weight or a switcher again. Here (a 10x loss at one
    step) the same step drives a layer's final BatchNorm + ReLU to all zeros, as dead. Each
    switcher's gradient is now clipped (``clip``, 5): without it both seeds end at 20%."""
    accuracy, on = _spiked_run(seed)
    assert accuracy > 0.6
    assert min(on.values()) > 0.2, on


@pytest.mark.parametrize("variant", ["neurons", "connections"])
def test_channels_last_computes_the_same_gates_up_to_the_order_of_sums(variant):
    """``channels_last`` is opt-in: the default keeps the bits (the test above); the layout
    changes only the order of the convolutions' sums, so the gates of one pass agree closely
    and every meta-network weight is stored channels-last."""
    gates = {}
    for layout in (False, True):
        torch.manual_seed(0)
        model = models.lenet5(widths=(4, 6, 12))
        learner = al.attach(model, torch.zeros(1, 1, 28, 28), method="switcher",
                            steps_per_epoch=1, variant=variant, channels_last=layout,
                            **SMALL_UNET)
        m = learner.method
        assert isinstance(m, Switcher)
        convs = [p for net in m.nets.values() for p in net.parameters() if p.dim() == 4]
        layouts = {p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                   for p in convs if p.shape[1] > 1 and p.shape[2:].numel() > 1}
        assert layouts == {layout}  # 1x1 or one-channel kernels are laid out alike in both
        model.train()
        with torch.no_grad():
            gates[layout] = {k: m._scales(k, True) for k in m.nets}
    for key, gate in gates[False].items():
        torch.testing.assert_close(gates[True][key], gate, rtol=1e-4, atol=1e-4)
