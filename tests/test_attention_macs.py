"""Attention's two products (``q k^T``, ``p v``) count the same whichever kernel runs them.

PyTorch's ``FlopCounterMode`` has no formula for the CPU's fused ``scaled_dot_product_attention``
kernel, so before ``measure`` registered one an SDPA model counted its linear layers only.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archlearn as al
from archlearn.structure.cost import build_cost
from archlearn.structure.measure import count_macs, layer_macs
from archlearn.structure.shrink import Decision, shrink

torch.set_grad_enabled(True)

HIDDEN, HEADS, LAYERS, FFN, TOKENS = 64, 4, 2, 128, 8
D_HEAD = HIDDEN // HEADS
# per layer: Q/K/V/output projections and the FFN per token, the two attention products; the
# pooler reads one token
LINEAR = LAYERS * TOKENS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN) + HIDDEN * HIDDEN
ATTENTION = LAYERS * 2 * HEADS * TOKENS * TOKENS * D_HEAD


def _bert(attn):
    T = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = T.BertModel(T.BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                     num_attention_heads=HEADS, intermediate_size=FFN,
                                     attn_implementation=attn))
    ids = torch.randint(0, 100, (1, TOKENS), generator=torch.Generator().manual_seed(0))
    return model, ids


def test_eager_and_sdpa_bert_count_the_same_macs_in_the_same_modules():
    counts = {attn: layer_macs(*_bert(attn)) for attn in ("eager", "sdpa")}
    assert counts["eager"] == counts["sdpa"]
    assert counts["sdpa"][""] == LINEAR + ATTENTION
    # the products belong to the attention module (the cost model scales them with its heads)
    per_layer = 3 * HIDDEN * HIDDEN * TOKENS + ATTENTION // LAYERS  # Q, K, V + products
    assert counts["sdpa"]["encoder.layer.0.attention.self"] == per_layer


class _Attention(nn.Module):
    def __init__(self, fused: bool) -> None:
        super().__init__()
        self.fused = fused

    def forward(self, q, k, v):
        if self.fused:
            return F.scaled_dot_product_attention(q, k, v)
        p = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1)
        return p @ v


@pytest.mark.parametrize("kv_dims", [(16, 16), (16, 12)])  # the fused kernel, the math fallback
def test_functional_sdpa_counts_what_the_eager_products_count(kv_dims):
    d, d_v = kv_dims
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 8, d, generator=gen), torch.randn(1, 4, 6, d, generator=gen),
               torch.randn(1, 4, 6, d_v, generator=gen))
    expected = 4 * 8 * 6 * (d + d_v)
    assert count_macs(_Attention(True), (q, k, v)) == expected
    assert count_macs(_Attention(False), (q, k, v)) == expected


class _MHA(nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x):
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


def test_multihead_attention_counts_its_products_without_weights_too():
    """need_weights=False runs SDPA, need_weights=True the explicit products."""
    x = torch.randn(1, 8, 16)
    expected = 8 * 4 * 16 * 16 + 2 * 4 * 8 * 8 * 4  # in/out projections, the two products
    for need_weights in (False, True):
        assert layer_macs(_MHA(need_weights), x) == {"": expected, "attn": expected}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_cost_model_is_exact_for_a_head_pruned_bert(attn):
    model, ids = _bert(attn)
    learner = al.attach(model, ids, method="tsrelu", total_steps=10)
    with learner.hooks.suspended():
        cost = build_cost(model, learner.groups, learner.inputs, "macs")
        assert cost.full == count_macs(model, ids) == LINEAR + ATTENTION
        heads = [i for i, g in enumerate(learner.groups) if g.kind == "heads"]
        assert len(heads) == LAYERS
        scales = [torch.ones(g.size) for g in learner.groups]
        scales[heads[0]][1] = 0  # one head off in the first layer, two in the second
        scales[heads[1]][::2] = 0
        # a head costs its Q/K/V rows, its output-projection columns and its share of the
        # attention products, per token
        per_head = TOKENS * (4 * D_HEAD * HIDDEN + 2 * TOKENS * D_HEAD)
        ones = [torch.ones(g.size) for g in learner.groups]
        assert torch.allclose(cost.weights(ones)[heads[0]] * cost.scale,
                              torch.full((HEADS,), float(per_head), dtype=torch.float64))
        small, _ = shrink(model, learner.groups, [Decision(s) for s in scales], learner.inputs)
    assert cost.of(scales) == count_macs(small, ids) == LINEAR + ATTENTION - 3 * per_head
