"""Property: shrinking is exact on the layer types of real architectures, or the group is
refused with a reason.

Random nets with Conv1d, transposed convolutions, depthwise convolutions (MobileNetV2's inverted
residuals), grouped convolutions with squeeze-excitation (ResNeXt/RegNet) and transformer blocks
(``nn.MultiheadAttention``; separate Q/K/V Linears with SDPA or an eager softmax, as in BERT),
trained BatchNorm statistics recalibrated under random 0/1 gates (some groups all off): the
shrunk model equals the gated one, ``architecture()["params"]`` is its size, save/load rebuilds it.
"""

import pytest
import torch
from helpers import assert_shrinks_exactly, random_gates, recalibrate_batchnorm
from hypothesis import given, settings
from hypothesis import strategies as st
from nets import Conv1dNet, DecoderNet, Encoder, GroupedNet, MobileNet, ShuffleNet

import archlearn as al


def _check(build, x, seed, all_off, tmp_path_factory, kinds=None):
    torch.manual_seed(seed)
    model = build()
    recalibrate_batchnorm(model, x)
    learner = al.attach(model, x[:1], total_steps=10)
    if kinds:
        assert {g.kind for g in learner.groups} >= set(kinds), learner.architecture()["skipped"]
    random_gates(learner, torch.Generator().manual_seed(seed), all_off=all_off)
    recalibrate_batchnorm(model, x)
    assert_shrinks_exactly(learner, build, x, tmp_path_factory.mktemp("saved"))
    return learner


@settings(max_examples=12, deadline=None)
@given(cin=st.integers(1, 4), widths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       kernel=st.sampled_from([1, 3]), seed=st.integers(0, 2**16), off=st.integers(0, 3))
def test_conv1d(cin, widths, kernel, seed, off, tmp_path_factory):
    x = torch.randn(6, cin, 9)
    _check(lambda: Conv1dNet(cin, tuple(widths), kernel), x, seed, off, tmp_path_factory)


@settings(max_examples=12, deadline=None)
@given(mid=st.integers(1, 6), up=st.integers(1, 6), stride=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16), off=st.integers(0, 2))
def test_conv_transpose(mid, up, stride, seed, off, tmp_path_factory):
    x = torch.randn(4, 2, 8, 8)
    _check(lambda: DecoderNet(2, mid, up, stride), x, seed, off, tmp_path_factory)


@settings(max_examples=12, deadline=None)
@given(c=st.integers(2, 5), expands=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       seed=st.integers(0, 2**16), off=st.integers(0, 4))
def test_depthwise_inverted_residuals(c, expands, seed, off, tmp_path_factory):
    x = torch.randn(4, 3, 6, 6)
    learner = _check(lambda: MobileNet(3, c, tuple(expands)), x, seed, off, tmp_path_factory)
    # every expansion layer is a gated group that carries its depthwise convolution
    expansions = [g for g in learner.groups if g.name.endswith("expand.0")]
    assert len(expansions) == len(expands)
    assert all(any("depthwise.0" in m for m in g.members) for g in expansions)


@settings(max_examples=12, deadline=None)
@given(groups=st.sampled_from([2, 4]), per=st.integers(2, 3), se=st.booleans(),
       seed=st.integers(0, 2**16), off=st.integers(0, 3))
def test_grouped_convolution_blocks(groups, per, se, seed, off, tmp_path_factory):
    x = torch.randn(4, 3, 6, 6)
    learner = _check(lambda: GroupedNet(3, 4, groups * per, groups, se), x, seed, off,
                     tmp_path_factory, kinds=["blocks"])
    blocks = next(g for g in learner.groups if g.kind == "blocks")
    assert blocks.size == groups


@settings(max_examples=10, deadline=None)
@given(heads=st.sampled_from([2, 4]), ffn=st.integers(2, 12), layers=st.integers(1, 2),
       style=st.sampled_from(["sdpa", "eager", "mha"]), seed=st.integers(0, 2**16),
       off=st.integers(0, 3))
def test_attention_heads(heads, ffn, layers, style, seed, off, tmp_path_factory):
    dim = 4 * heads
    x = torch.randn(3, 5, dim)

    def build():
        return Encoder(dim, heads, ffn, layers, eager=style == "eager", mha=style == "mha")

    learner = _check(build, x, seed, off, tmp_path_factory, kinds=["heads", "channels"])
    assert sum(g.kind == "heads" for g in learner.groups) == layers
    assert all(g.size == heads for g in learner.groups if g.kind == "heads")
    # the residual stream starts at the model's input (or passes nn.MultiheadAttention): it
    # stays ungated and is listed
    assert not any(g.kind == "hidden" for g in learner.groups)
    assert any("no layer computes" in s.reason or "residual stream" in s.reason
               for s in learner.skipped)


@pytest.mark.parametrize("style", ["sdpa", "eager", "mha"])
def test_all_heads_and_all_ffn_units_off_keep_one_zeroed_unit(style, tmp_path):
    x = torch.randn(3, 5, 8)

    def build():
        torch.manual_seed(0)
        return Encoder(8, 2, 6, 1, eager=style == "eager", mha=style == "mha")

    model = build()
    learner = al.attach(model, x[:1], total_steps=10)
    with torch.no_grad():
        for w in learner.method.w.values():
            w.zero_()
    small = assert_shrinks_exactly(learner, build, x, tmp_path)
    attn = small.blocks[0].attn
    heads = attn.num_heads if style == "mha" else attn.num_attention_heads
    assert heads == 1 and small.blocks[0].fc1.out_features == 1


def test_channel_shuffle_is_refused_with_a_reason():
    x = torch.randn(2, 3, 6, 6)
    learner = al.attach(ShuffleNet(), x[:1], total_steps=10)
    reasons = {s.name: s.reason for s in learner.skipped}
    assert "a" in reasons and ("shuffle" in reasons["a"] or "Torch-Pruning" in reasons["a"])
    assert [g.name for g in learner.groups] == ["b"]




def test_attention_that_breaks_the_head_layout_is_refused_not_shrunk_wrongly():
    """A context laid out head-minor (channel = j * heads + h) looks like BERT by its names;
    the trial shrink at attach catches it and the heads are listed as skipped."""
    from nets import SelfAttention

    class HeadMinor(SelfAttention):
        def forward(self, x):
            shape = (*x.shape[:-1], -1, self.attention_head_size)
            q, k, v = (f(x).view(shape).transpose(1, 2) for f in (self.query, self.key,
                                                                 self.value))
            ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            return ctx.permute(0, 2, 3, 1).reshape(*x.shape[:-1], -1)

    torch.manual_seed(0)
    model = Encoder(8, 2, 6, 1, eager=False, mha=False)
    model.blocks[0].attn = HeadMinor(8, 2, eager=False)
    learner = al.attach(model, torch.randn(1, 5, 8), total_steps=10)
    assert not any(g.kind == "heads" for g in learner.groups)
    reason = {s.name: s.reason for s in learner.skipped}["blocks.0.attn"]
    assert "trial shrink" in reason
