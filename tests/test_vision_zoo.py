"""The CNN zoos people use: timm and torchvision models (random init, nothing downloaded).

Each model either shrinks exactly -- attach, a few steps in the user's loop, a random mixed gate
pattern (one group all off), BatchNorm statistics recomputed, then the shrunk model's outputs
equal the gated model's and save/load rebuilds it on a fresh instance -- or is refused with one
``ArchlearnError`` naming the op. timm's norm-act layers (``F.batch_norm`` inside a BatchNorm2d
subclass), Squeeze-Excite, hard-swish/SiLU, DenseNet's concatenations and RegNet's grouped
convolutions are gated (at least 85% of the removable output channels: all but the model's
own outputs); ConvNeXt's channels-first residual streams, and a ViT's stream and the heads
of its fused ``qkv`` projection too (at least 95%).
"""

import pytest
import torch
from helpers import assert_shrinks_exactly, random_gates, recalibrate_batchnorm

import archlearn as al
from archlearn.structure.coverage import coverage
from benchmarks.vision_shim import import_timm, import_torchvision

try:
    timm = import_timm()
    tvm = import_torchvision().models
except ImportError:  # the test extra is not installed
    pytest.skip("timm and torchvision are test dependencies ('.[dev]')", allow_module_level=True)

torch.set_grad_enabled(True)


def _timm(name: str, **kwargs):
    return lambda: timm.create_model(name, pretrained=False, num_classes=10, **kwargs)


# name -> (build, image size): the smallest input each model takes
ZOO = {
    "timm/resnet18": (_timm("resnet18"), 64),
    "timm/resnet50": (_timm("resnet50"), 64),
    "timm/efficientnet_b0": (_timm("efficientnet_b0"), 64),
    "timm/mobilenetv3_large_100": (_timm("mobilenetv3_large_100"), 64),
    "timm/regnetx_002": (_timm("regnetx_002"), 64),
    "timm/regnety_004": (_timm("regnety_004"), 64),
    "timm/densenet121": (_timm("densenet121"), 64),
    "timm/convnext_atto": (_timm("convnext_atto"), 64),
    "timm/vit_tiny_patch16_224": (_timm("vit_tiny_patch16_224", img_size=32), 32),
    "tv/mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(num_classes=10), 64),
    "tv/shufflenet_v2_x0_5": (lambda: tvm.shufflenet_v2_x0_5(num_classes=10), 64),
    "tv/googlenet": (lambda: tvm.googlenet(num_classes=10, aux_logits=False,
                                           init_weights=True), 64),
    "tv/squeezenet1_0": (lambda: tvm.squeezenet1_0(num_classes=10), 64),
}
# refused models and the op their one error must name
REFUSED = {"tv/shufflenet_v2_x0_5": "channel shuffle"}
# at least this share of removable output channels gated (archlearn.structure.coverage)
GATED = {name: 0.85 for name in [
    "timm/resnet18", "timm/resnet50", "timm/efficientnet_b0", "timm/mobilenetv3_large_100",
    "timm/regnetx_002", "timm/regnety_004", "timm/densenet121"]} | {
    "timm/convnext_atto": 0.95, "timm/vit_tiny_patch16_224": 0.95}
# what must be gated (kinds of unit groups)
KINDS = {"timm/regnetx_002": {"channels", "blocks"}, "timm/regnety_004": {"channels", "blocks"},
         "timm/convnext_atto": {"channels", "hidden"},
         "timm/vit_tiny_patch16_224": {"channels", "heads", "hidden"}}


def build(name: str):
    torch.manual_seed(0)
    return ZOO[name][0]()


def image(name: str) -> torch.Tensor:
    size = ZOO[name][1]
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def train_a_little(model, learner, x, steps=2):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        loss = model(x).pow(2).mean() + learner.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        learner.step()


@pytest.mark.parametrize("name", sorted(set(ZOO) - set(REFUSED)))
def test_model_shrinks_exactly(name, tmp_path):
    x = image(name)
    model = build(name)
    learner = al.attach(model, x, total_steps=100)
    assert {g.kind for g in learner.groups} >= KINDS.get(name, {"channels"}), learner.skipped
    share = coverage(learner)["channels"]
    assert share >= GATED.get(name, 0.0), (share, learner.skipped)
    train_a_little(model, learner, x)
    # a mixed pattern (an all-off check alone passes trivially: the output collapses)
    random_gates(learner, torch.Generator().manual_seed(3), all_off=len(learner.groups) // 2)
    recalibrate_batchnorm(model, x)
    small = assert_shrinks_exactly(learner, lambda: build(name), x, tmp_path)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,size,minimum", [("resnet18", 64, 0.85),
                                               ("convnext_atto", 64, 0.95)])
def test_coverage_leaves_out_the_1000_class_classifier(name, size, minimum):
    """The 1000 logits are the model's own outputs: removable channels are the rest."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    learner = al.attach(model, torch.randn(1, 3, size, size), total_steps=10)
    share = coverage(learner)
    assert share["channels"] >= minimum, (share, learner.skipped)
    assert share["channels_all"] < share["channels"]  # the classifier counted: below


def _convnext(conv_mlp: bool):
    """A small ConvNeXt: conv_mlp=True is convnext_atto's layout (LayerNorm2d and 1x1
    convolutions), False convnext_tiny's (blocks permute to channels-last for a LayerNorm and
    a Linear MLP and back)."""
    from timm.models.convnext import ConvNeXt

    torch.manual_seed(0)
    return ConvNeXt(depths=(2, 1, 1, 1), dims=(24, 32, 40, 48), conv_mlp=conv_mlp,
                    num_classes=5)


@pytest.mark.parametrize("conv_mlp", [True, False])
def test_convnext_stages_are_hidden_streams(conv_mlp, tmp_path):
    """Each stage's residual stream is one hidden group: its LayerNorms masked while gated,
    sliced after, the layer scale ``gamma`` sliced with it, and the gated outputs are the
    shrunk model's with trained-looking norms and layer scales (not ones and 1e-6)."""
    from archlearn.structure.cost import build_cost
    from archlearn.structure.measure import count_params

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model = _convnext(conv_mlp)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "gamma" in name or "downsample.0" in name):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    learner = al.attach(model, x, total_steps=10)
    hidden = [g for g in learner.groups if g.kind == "hidden"]
    assert [g.name for g in hidden] == ["stem.0"] + [f"stages.{i}.downsample.1"
                                                     for i in (1, 2, 3)], learner.skipped
    assert hidden[0].stream.norms == ["stages.0.blocks.0.norm", "stages.0.blocks.1.norm",
                                      "stages.1.downsample.0", "stem.1"]
    assert {"stages.0.blocks.0.gamma", "stages.0.blocks.1.gamma"} <= set(hidden[0].members)
    assert hidden[3].stream.norms == ["head.norm", "stages.3.blocks.0.norm"]
    assert not learner.skipped and coverage(learner)["channels"] == 1.0
    random_gates(learner, torch.Generator().manual_seed(0), all_off=None)
    scales = [learner.method.gate(i).detach() for i in range(len(learner.groups))]
    kept = [int((s != 0).sum()) for s in scales]
    small = assert_shrinks_exactly(learner, lambda: _convnext(conv_mlp), x, tmp_path)
    k0 = kept[learner.groups.index(hidden[0])]
    assert 0 < k0 < 24 and small.stem[1].normalized_shape == (k0,)
    assert small.stages[0].blocks[1].gamma.shape == (k0,)
    assert small.stages[0].blocks[0].conv_dw.out_channels == k0
    assert small.stages[1].downsample[1].in_channels == k0
    params = build_cost(model, learner.groups, learner.inputs, "params").of(scales)
    assert params == count_params(small)


def _vit():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5,
                             img_size=32, depth=2)


def test_vit_heads_and_stream_shrink_exactly(tmp_path):
    """timm's ViT: heads of the fused ``qkv`` projection are units, and the residual stream
    (patch embedding, class token, position embedding, every LayerNorm) is one hidden group."""
    from archlearn.structure.cost import build_cost
    from archlearn.structure.measure import count_params

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model = _vit()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # trained-looking norms and embeddings, not ones, zeros and 0.02
        for name, p in model.named_parameters():
            if "norm" in name or name in ("cls_token", "pos_embed"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    learner = al.attach(model, x, total_steps=10)
    kinds = {g.name: g.kind for g in learner.groups}
    assert kinds["patch_embed.proj"] == "hidden" and kinds["blocks.0.attn"] == "heads"
    hidden = next(g for g in learner.groups if g.kind == "hidden")
    assert {"cls_token", "pos_embed"} <= set(hidden.members), hidden.members
    assert not learner.skipped and coverage(learner)["channels"] == 1.0
    random_gates(learner, torch.Generator().manual_seed(0), all_off=None)
    kept = int((learner.method.gate(learner.groups.index(hidden)) != 0).sum())
    heads = int((learner.method.gate(learner.groups.index(
        next(g for g in learner.groups if g.name == "blocks.0.attn"))) != 0).sum())
    scales = [learner.method.gate(i).detach() for i in range(len(learner.groups))]
    small = assert_shrinks_exactly(learner, _vit, x, tmp_path)
    assert build_cost(model, learner.groups, x, "params").of(scales) == count_params(small)
    assert 0 < kept < 192 and small.cls_token.shape == (1, 1, kept)
    assert small.pos_embed.shape == (1, 5, kept) and small.blocks[1].norm2.weight.shape == (kept,)
    assert small.blocks[0].attn.num_heads == heads < 3
    assert small.blocks[0].attn.qkv.out_features == 3 * 64 * heads


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_model_is_refused_naming_the_op(name):
    model = build(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(al.ArchlearnError, match=REFUSED[name]):
        al.attach(model, image(name), total_steps=100)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_norm_act_batch_norm_with_foreign_weights_is_not_gated_through():
    """``F.batch_norm`` is accepted only with the weights of the BatchNorm module it ends in."""
    from torch import nn

    class Borrowing(nn.BatchNorm2d):  # normalises with another layer's statistics and weights
        def __init__(self, other: nn.BatchNorm2d):
            super().__init__(other.num_features)
            self.other = [other]

        def forward(self, x):
            o = self.other[0]
            return torch.relu(nn.functional.batch_norm(
                x, o.running_mean, o.running_var, o.weight, o.bias, False, 0.0, o.eps))

    donor = nn.BatchNorm2d(8)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), Borrowing(donor), nn.Conv2d(8, 8, 3), donor,
                        nn.ReLU(), nn.Conv2d(8, 6, 1), nn.ReLU(), nn.Conv2d(6, 2, 1))
    learner = al.attach(net, torch.randn(1, 3, 8, 8), total_steps=10)
    reasons = {s.name: s.reason for s in learner.skipped}
    assert "functional batch norm" in reasons["0"], reasons
    assert [g.name for g in learner.groups] == ["5"]  # the donor's group fails its trial shrink


def test_zoo_benchmark_covers_timm_and_torchvision(tmp_path):
    """``python -m benchmarks.zoo`` lists them; a gated and a refused one render in RESULTS."""
    import json

    from benchmarks import report_zoo, zoo

    assert {f"timm/{n}" for n in zoo.TIMM} | {"tv/googlenet", "tv/shufflenet_v2_x0_5"} <= set(
        zoo.zoo(quick=False))
    models = zoo.zoo(quick=True)
    rows = {name: zoo.one_run(*models[name])
            for name in ("timm/efficientnet_b0", "tv/shufflenet_v2_x0_5")}
    assert rows["timm/efficientnet_b0"]["share"]["channels"] >= 0.85, rows
    assert "channel shuffle" in rows["tv/shufflenet_v2_x0_5"]["error"]
    out = tmp_path / "zoo.json"
    out.write_text(json.dumps({"provenance": zoo._provenance("test", 1), "models": {
        name: {**row, "attach_s": {"median": 1.0, "min": 1.0, "max": 1.0},
               "shrink_s": {"median": 1.0, "min": 1.0, "max": 1.0}} if "error" not in row else row
        for name, row in rows.items()}}))
    text = report_zoo.section(out)
    assert "timm 1.0" in text and "| timm/efficientnet_b0 |" in text
    assert "*removable* output channels" in text and "% of all)" in text
    assert "**tv/shufflenet_v2_x0_5** refused" in text
