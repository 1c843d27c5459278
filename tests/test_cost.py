"""The cost model: exact params/MACs at full width and for any decision, MorphNet-style weights."""

import pytest
import torch
from nets import Conv1dNet, DecoderNet, Encoder, GroupedNet, MobileNet

import archlearn as al
from archlearn import models
from archlearn.structure.cost import build_cost
from archlearn.structure.measure import count_macs, count_params
from archlearn.structure.shrink import Decision, shrink

torch.set_grad_enabled(True)

NETS = {
    "lenet5": (models.lenet5, (1, 1, 28, 28)),
    "mlp": (lambda: models.mlp(64, [32, 24, 16], 10), (1, 64)),
    "resnet_bn": (lambda: models.tiny_resnet(in_channels=1), (1, 1, 28, 28)),
    "vgg_bn": (models.tiny_vgg_bn, (1, 3, 16, 16)),
    "concat": (models.concat_net, (1, 3, 16, 16)),
    "conv1d": (lambda: Conv1dNet(3, (8, 6), 3), (1, 3, 20)),
    "conv_transpose": (lambda: DecoderNet(3, 8, 6, 2), (1, 3, 8, 8)),
    "depthwise": (lambda: MobileNet(3, 8, (2, 3)), (1, 3, 16, 16)),
    "grouped_se": (lambda: GroupedNet(3, 8, 8, 2, True), (1, 3, 16, 16)),
    "mha": (lambda: Encoder(16, 4, 32, 2, True, True), (1, 6, 16)),
    "sdpa": (lambda: Encoder(16, 4, 32, 2, False, False), (1, 6, 16)),
}


def _hf(name):
    T = pytest.importorskip("transformers")
    ids = torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(0))
    if name == "bert":
        return T.BertModel(T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=64,
                                        attn_implementation="eager")), ids
    if name == "gpt2":
        return T.GPT2Model(T.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4,
                                        n_positions=16, use_cache=False)), ids
    img = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    if name == "vit":
        return T.ViTModel(T.ViTConfig(image_size=32, patch_size=8, hidden_size=32,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64)), img
    return T.MobileNetV2Model(T.MobileNetV2Config(depth_multiplier=0.25, image_size=32)), img


def _check_exact(model, x, seed=1):
    learner = al.attach(model, x, total_steps=10)
    with learner.hooks.suspended():
        costs = {k: build_cost(model, learner.groups, learner.inputs, k) for k in ("macs",
                                                                                  "params")}
        assert costs["macs"].full == count_macs(model, x)
        assert costs["params"].full == count_params(model)
        gen = torch.Generator().manual_seed(seed)
        scales = [(torch.rand(g.size, generator=gen) > 0.4).float() for g in learner.groups]
        scales[-1].zero_()  # a group with every unit off keeps one zeroed unit
        small, _ = shrink(model, learner.groups, [Decision(s) for s in scales], learner.inputs)
    assert count_params(small) < count_params(model)
    assert costs["macs"].of(scales) == count_macs(small, x)
    assert costs["params"].of(scales) == count_params(small)
    return learner, costs


@pytest.mark.parametrize("name", sorted(NETS))
def test_cost_is_exact_for_the_shrunk_model(name):
    build, shape = NETS[name]
    torch.manual_seed(0)
    _check_exact(build(), torch.randn(*shape))


@pytest.mark.parametrize("name", ["bert", "gpt2", "vit", "mobilenetv2"])
def test_cost_is_exact_on_transformers_models(name):
    torch.manual_seed(0)
    model, x = _hf(name)
    learner, costs = _check_exact(model, x)
    assert {g.kind for g in learner.groups} >= ({"channels"} if name == "mobilenetv2"
                                                 else {"heads", "channels"})


def test_a_head_costs_its_projections_and_its_share_of_attention():
    """BERT, 4 heads of 8 channels over 8 tokens: a head's MACs are its Q/K/V rows (3 x 8 x 32
    per token), its output-projection columns (8 x 32 per token) and its share of the two
    attention products (2 x 8 x 8 per token)."""
    torch.manual_seed(0)
    model, x = _hf("bert")
    learner = al.attach(model, x, total_steps=10)
    with learner.hooks.suspended():
        cost = build_cost(model, learner.groups, learner.inputs, "macs")
    i = next(i for i, g in enumerate(learner.groups) if g.kind == "heads")
    full = [torch.ones(g.size) for g in learner.groups]
    per_head = cost.weights(full)[i] * cost.scale
    assert torch.allclose(per_head, torch.full((4,), 8.0 * (4 * 8 * 32 + 2 * 8 * 8),
                                               dtype=torch.float64))


def test_lenet_weights_are_what_removing_a_unit_saves_now():
    """conv1 channel: its own 25 x 24 x 24 MACs plus conv2's 50 x 25 x 8 x 8 reading it; the
    weight follows conv2's current width (MorphNet)."""
    model = models.lenet5()
    x = torch.zeros(1, 1, 28, 28)
    learner = al.attach(model, x, total_steps=10)
    with learner.hooks.suspended():
        cost = build_cost(model, learner.groups, learner.inputs, "macs")
    alive = [torch.ones(g.size) for g in learner.groups]
    conv1 = cost.weights(alive)[0] * cost.scale
    assert torch.allclose(conv1, torch.full((20,), 25 * 576 + 50 * 25 * 64.0,
                                            dtype=torch.float64))
    alive[1][25:] = 0  # conv2 at half width: conv1's channels save half as much in conv2
    assert float(cost.weights(alive)[0][0] * cost.scale) == 25 * 576 + 25 * 25 * 64
    # removing one unit saves exactly its weight (the polynomial is linear in each unit)
    before = float(cost.total(alive))
    alive[2][0] = 0
    saved = before - float(cost.total(alive))
    alive[2][0] = 1
    assert saved == pytest.approx(float(cost.weights(alive)[2][0] * cost.scale))
    # mean weight 1 over units at full width
    ones = [torch.ones(g.size) for g in learner.groups]
    assert float(sum(w.sum() for w in cost.weights(ones))) == pytest.approx(570)


def test_units_cost_counts_units_and_unknown_kind_is_refused():
    model = models.lenet5()
    learner = al.attach(model, torch.zeros(1, 1, 28, 28), total_steps=10)
    cost = build_cost(model, learner.groups, learner.inputs, "units")
    assert cost.full == 570 and all((w == 1).all() for w in cost.weights(
        [torch.ones(g.size) for g in learner.groups]))
    with pytest.raises(al.ArchlearnError, match="unknown cost 'flops'"):
        build_cost(model, learner.groups, learner.inputs, "flops")
