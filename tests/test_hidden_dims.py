"""Hidden dimensions behind LayerNorm: one gate group for a whole residual stream (issue 20.3).

The stream of BERT/MiniLM (embedding columns, every LayerNorm, the rows writing and the columns
reading it) is one ``"hidden"`` group; a gated LayerNorm takes its statistics over the dimensions
still on, so the gated and the shrunk model compute the same outputs, and the LayerNorm the
model returns keeps the output width (zeros at removed dimensions).
"""

import copy
import pickle

import pytest
import torch
from helpers import assert_shrinks_exactly, random_gates
from torch import nn

import archlearn as al
from archlearn.structure.cost import build_cost
from archlearn.structure.coverage import coverage
from archlearn.structure.measure import count_macs, count_params
from archlearn.structure.shrink import Decision, shrink
from archlearn.structure.stream import PaddedLayerNorm, masked_layer_norm

T = pytest.importorskip("transformers")
torch.set_grad_enabled(True)


def _ids(batch=2, tokens=8):
    return torch.randint(1, 100, (batch, tokens), generator=torch.Generator().manual_seed(0))


def _bert(attn="eager", layers=2, **config):
    torch.manual_seed(0)
    return T.BertModel(T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=layers,
                                    num_attention_heads=4, intermediate_size=64,
                                    attn_implementation=attn, **config))


def _hidden(learner):
    groups = [g for g in learner.groups if g.kind == "hidden"]
    assert len(groups) == 1, (learner.groups, learner.skipped)
    return learner.groups.index(groups[0]), groups[0]


def test_masked_layer_norm_is_the_layer_norm_of_the_kept_dimensions():
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(3, 5, 8, generator=gen), torch.randn(8, generator=gen),
               torch.randn(8, generator=gen))
    keep = torch.tensor([0, 2, 3, 6])
    mask = torch.zeros(8, dtype=torch.bool).index_fill(0, keep, True)
    out = masked_layer_norm(x, mask, w, b, 1e-5)
    ref = nn.functional.layer_norm(x[..., keep], (4,), w[keep], b[keep], 1e-5)
    assert torch.allclose(out[..., keep], ref, atol=1e-6)
    assert out[..., ~mask].abs().max() == 0
    assert masked_layer_norm(x, torch.zeros(8, dtype=torch.bool), w, b, 1e-5).abs().max() == 0


def test_masked_layer_norm_over_channels_first():
    """timm's LayerNorm2d normalises dimension 1 of an NCHW tensor: masked the same way."""
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(2, 6, 3, 3, generator=gen), torch.randn(6, generator=gen),
               torch.randn(6, generator=gen))
    keep = torch.tensor([1, 2, 5])
    mask = torch.zeros(6, dtype=torch.bool).index_fill(0, keep, True)
    out = masked_layer_norm(x, mask, w, b, 1e-6, dim=1)
    ref = nn.functional.layer_norm(x[:, keep].permute(0, 2, 3, 1), (3,), w[keep], b[keep],
                                   1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(out[:, keep], ref, atol=1e-6) and out[:, ~mask].abs().max() == 0


def test_layer_norm_weights_keep_their_order(tmp_path):
    """Torch-Pruning's LayerNorm pruner sorts a copy of its kept indices: keeping these 17 of 40
    dimensions it put the weight of dimension 39 between 11 and 13. Invisible with the initial
    ones and zeros; with trained weights the shrunk model computed something else."""
    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 40), nn.LayerNorm(40), nn.ReLU(), nn.Linear(40, 2))

    x = torch.randn(4, 8)
    model = build()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-1, 1)
    learner = al.attach(model, x, total_steps=10)
    keep = [4, 6, 7, 8, 9, 10, 11, 13, 15, 17, 18, 19, 20, 22, 27, 31, 39]
    with torch.no_grad():
        learner.method.w[0].zero_()[keep] = 1.0
    small = learner.shrink()
    assert torch.equal(small[1].weight, model[1].weight[keep])
    assert torch.equal(small[1].bias, model[1].bias[keep])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(small.eval()(x), model(x), atol=1e-5)


def test_padded_layer_norm_writes_the_full_width():
    ln = nn.LayerNorm(6)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    small = PaddedLayerNorm.keeping(ln, [1, 4, 5], 6)
    x = torch.randn(2, 6)
    out = small(x[:, [1, 4, 5]])
    assert out.shape == (2, 6) and out[:, [0, 2, 3]].abs().max() == 0
    assert torch.allclose(out[:, [1, 4, 5]], nn.functional.layer_norm(
        x[:, [1, 4, 5]], (3,), ln.weight[[1, 4, 5]], ln.bias[[1, 4, 5]]))
    assert set(small.state_dict()) == {"weight", "bias"}  # the kept index comes from the recipe


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_bert_stream_is_one_group(attn):
    model = _bert(attn)
    learner = al.attach(model, _ids(), total_steps=10)
    _, hidden = _hidden(learner)
    assert hidden.size == 32
    assert len(hidden.stream.norms) == 5  # embeddings + two per layer
    assert hidden.stream.padded == ["encoder.layer.1.output.LayerNorm"]  # last_hidden_state
    assert hidden.stream.full_readers == ["pooler.dense"]
    readers = {s.module for s in hidden.sites} - set(hidden.stream.norms)
    assert {f"encoder.layer.{i}.attention.self.{p}" for i in range(2)
            for p in ("query", "key", "value")} <= readers
    assert {"embeddings.word_embeddings", "embeddings.position_embeddings",
            "embeddings.token_type_embeddings"} <= set(hidden.members)
    assert not any("LayerNorm" in s.reason for s in learner.skipped), learner.skipped


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("seed", [0, 1])
def test_bert_random_hidden_heads_and_ffn_shrink_exactly(attn, seed, tmp_path):
    x = _ids()
    model = _bert(attn)
    learner = al.attach(model, x, total_steps=10)
    i, _ = _hidden(learner)
    random_gates(learner, torch.Generator().manual_seed(seed), all_off=None)
    kept = int(learner.method.w[i].sum())
    assert 0 < kept < 32
    small = assert_shrinks_exactly(learner, lambda: _bert(attn), x, tmp_path)
    assert small.embeddings.word_embeddings.weight.shape == (100, kept)
    assert small.embeddings.position_embeddings.embedding_dim == kept
    assert small.encoder.layer[0].attention.self.query.in_features == kept
    assert small.encoder.layer[1].output.dense.out_features == kept
    # the output keeps its width: the returned LayerNorm writes zeros at removed dimensions
    assert isinstance(small.encoder.layer[1].output.LayerNorm, PaddedLayerNorm)
    with torch.no_grad():
        out = small.eval()(x).last_hidden_state
    off = learner.method.w[i] == 0
    assert out.shape == (2, 8, 32) and out[..., off].abs().max() == 0


def test_bert_with_the_whole_stream_off_shrinks_exactly(tmp_path):
    x = _ids()
    model = _bert()
    learner = al.attach(model, x, total_steps=10)
    i, _ = _hidden(learner)
    random_gates(learner, torch.Generator().manual_seed(2), all_off=i)
    small = assert_shrinks_exactly(learner, _bert, x, tmp_path)
    assert small.embeddings.word_embeddings.embedding_dim == 1  # never zero width


def test_gated_bert_trains_and_the_hidden_group_learns():
    x = _ids()
    model = _bert()
    learner = al.attach(model, x, total_steps=20)
    i, _ = _hidden(learner)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = learner.method.w[i].detach().clone()
    model.train()
    for _ in range(3):
        loss = model(x).last_hidden_state.pow(2).mean() + learner.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        learner.step()
    after = learner.method.w[i].detach()
    assert torch.isfinite(after).all() and not torch.equal(before, after)


def test_frozen_embeddings_still_shrink_with_the_stream(tmp_path):
    """A user freezing the embeddings after attach (as minilm-distill does): the graph traced
    at shrink time still holds the tables."""
    x = _ids()
    model = _bert()
    learner = al.attach(model, x, total_steps=10)
    for name, p in model.named_parameters():
        if name.startswith("embeddings."):
            p.requires_grad_(False)
    random_gates(learner, torch.Generator().manual_seed(5), all_off=None)
    assert_shrinks_exactly(learner, _bert, x, tmp_path)
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if n.startswith("embeddings."))


def test_a_plain_layer_norm_between_linears_is_gated_exactly(tmp_path):
    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 2))

    x = torch.randn(4, 8)
    learner = al.attach(build(), x, total_steps=10)
    assert [g.kind for g in learner.groups] == ["hidden"]
    random_gates(learner, torch.Generator().manual_seed(0), all_off=None)
    small = assert_shrinks_exactly(learner, build, x, tmp_path)
    assert small[1].normalized_shape == (small[0].out_features,) and small[0].out_features < 16


def test_cost_of_the_stream_is_exact():
    x = _ids(1)
    model = _bert()
    learner = al.attach(model, x, total_steps=10)
    i, _ = _hidden(learner)
    with learner.hooks.suspended():
        costs = {k: build_cost(model, learner.groups, learner.inputs, k) for k in ("macs",
                                                                                  "params")}
        assert costs["params"].full == count_params(model)
        assert costs["macs"].full == count_macs(model, x)
        gen = torch.Generator().manual_seed(4)
        scales = [(torch.rand(g.size, generator=gen) > 0.4).float() for g in learner.groups]
        small, _ = shrink(model, learner.groups, [Decision(s) for s in scales], learner.inputs)
    assert costs["params"].of(scales) == count_params(small)
    assert costs["macs"].of(scales) == count_macs(small, x)
    # the embedding tables' params scale with the stream: a hidden unit costs at least its
    # word, position and token-type columns (100 + 512 + 2)
    weights = costs["params"].weights([torch.ones(g.size) for g in learner.groups])
    assert float(weights[i].mean() * costs["params"].scale) > 614


def test_bert_coverage_with_hidden_dims():
    model = _bert(layers=4)  # the pooler's own outputs are the model's: 32 of 928 channels
    learner = al.attach(model, _ids(), total_steps=10)
    share = coverage(learner)
    assert share["channels"] >= 0.95, share
    assert share["params"] > 0.95, share  # embedding tables and LayerNorms shrink too


def test_attached_bert_with_masked_norms_copies_and_pickles():
    x = _ids()
    model = _bert()
    learner = al.attach(model, x, total_steps=10)
    random_gates(learner, torch.Generator().manual_seed(0), all_off=None)
    model.eval()
    with torch.no_grad():
        ref = model(x).last_hidden_state
        for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert torch.allclose(other.eval()(x).last_hidden_state, ref, atol=1e-6)


def test_returned_hidden_states_refuse_the_stream():
    """Every layer's output returned: a padded LayerNorm would feed the stream further."""
    model = _bert(output_hidden_states=True)
    learner = al.attach(model, _ids(), total_steps=10)
    assert not any(g.kind == "hidden" for g in learner.groups)
    reasons = [s.reason for s in learner.skipped if "hidden dimensions" in s.reason]
    assert reasons and ("returned" in reasons[0]), learner.skipped


def test_tied_embeddings_refuse_the_stream():
    torch.manual_seed(0)
    model = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=4,
                                           n_positions=16, use_cache=False))
    learner = al.attach(model, _ids(), total_steps=10)
    assert not any(g.kind == "hidden" for g in learner.groups)
    assert any("tied" in s.reason for s in learner.skipped), learner.skipped


def test_a_layer_norm_with_its_own_forward_is_refused():
    class ChannelsFirst(nn.LayerNorm):
        def forward(self, x):
            return super().forward(x.transpose(1, -1)).transpose(1, -1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.norm, self.b = nn.Linear(4, 6), ChannelsFirst(6), nn.Linear(6, 2)

        def forward(self, x):
            return self.b(self.norm(self.a(x)))

    with pytest.raises(al.ArchlearnError, match="LayerNorm"):
        al.attach(Net(), torch.randn(2, 4), total_steps=10)


def test_pretrained_minilm_hidden_dims_shrink_exactly(tmp_path):
    """all-MiniLM-L6-v2: a random pattern on hidden dims, heads and FFN neurons; the word
    embedding table (11.7M of 22.7M parameters) shrinks with the stream."""
    pytest.importorskip("tokenizers")
    from archlearn.models.pretrained import load_minilm, load_tokenizer

    try:
        model = load_minilm(cache=tmp_path / "cache")
    except al.ArchlearnError as exc:
        pytest.skip(str(exc))
    tok = load_tokenizer(cache=tmp_path / "cache")
    enc = tok.encode_batch(["Shrinking a sentence encoder.", "Hidden dimensions are units."])
    width = max(len(e.ids) for e in enc)
    ids = torch.tensor([e.ids + [0] * (width - len(e.ids)) for e in enc])
    learner = al.attach(model, ids, total_steps=10)
    i, hidden = _hidden(learner)
    assert hidden.size == 384 and len(hidden.stream.norms) == 13
    assert coverage(learner)["channels"] >= 0.95
    random_gates(learner, torch.Generator().manual_seed(0), all_off=None)
    kept = int(learner.method.w[i].sum())
    full = sum(p.numel() for p in model.parameters())
    small = assert_shrinks_exactly(learner, lambda: load_minilm(cache=tmp_path / "cache"), ids,
                                   tmp_path / "saved")
    assert small.embeddings.word_embeddings.weight.shape == (30522, kept) and kept < 384
    assert sum(p.numel() for p in small.parameters()) < 0.8 * full


def _hf_convnext():
    torch.manual_seed(0)
    return T.ConvNextForImageClassification(T.ConvNextConfig(
        hidden_sizes=[16, 24, 32, 40], depths=[2, 1, 1, 1], num_labels=3))


def test_transformers_convnext_stages_are_hidden_streams(tmp_path):
    """transformers' ConvNeXt: ConvNextLayerNorm by its data_format, the channels-last blocks
    (layer scale before the permute back) and the final LayerNorm of the pooled (N, C) stream;
    exact with trained-looking norms and layer scales (not ones and 1e-6)."""
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model = _hf_convnext()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("layernorm" in name or "layer_scale" in name):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    learner = al.attach(model, x, total_steps=10)
    hidden = [g for g in learner.groups if g.kind == "hidden"]
    assert len(hidden) == 4 and not learner.skipped, learner.skipped
    assert "convnext.layernorm" in hidden[-1].stream.norms
    assert coverage(learner)["channels"] == 1.0
    random_gates(learner, torch.Generator().manual_seed(0), all_off=None)
    kept = int((learner.method.gate(learner.groups.index(hidden[0])) != 0).sum())
    small = assert_shrinks_exactly(learner, _hf_convnext, x, tmp_path)
    stage = small.convnext.encoder.stages[0]
    assert 0 < kept < 16 and stage.layers[1].layer_scale_parameter.shape == (kept,)
    assert small.convnext.embeddings.layernorm.normalized_shape == (kept,)
