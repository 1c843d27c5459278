"""``al.compress``: one-shot compression of a trained model to a budget, without training.

Random nets on random Gaussian data (held-out inputs drawn from the same distribution): the
budget is met on the compressed model's own count, the user's model is untouched, the re-fit
brings outputs back towards the original's, every calibration form gives the same model, and
bad input is one clear ``ArchlearnError``.
"""

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archlearn as al
from archlearn.models.lenet import lenet5
from archlearn.structure.measure import count_macs, count_params


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 4)).eval()


def _lenet() -> nn.Sequential:
    torch.manual_seed(0)
    return lenet5().eval()


MODELS = {
    "mlp": (_mlp, lambda n, seed: torch.randn(n, 16, generator=_gen(seed))),
    "lenet": (_lenet, lambda n, seed: torch.randn(n, 1, 28, 28, generator=_gen(seed))),
}


def _compress(model, calibration, budget, **kw):
    return al.compress(model, calibration, budget, progress=False, **kw)


def _relative_error(small: nn.Module, model: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        y = model(x)
        return float((small(x) - y).pow(2).mean() / y.pow(2).mean())


def _report(model: nn.Module) -> dict[str, Any]:
    return getattr(model, "archlearn_report")  # noqa: B009 (set by compress)


def _layer(model: nn.Module, name: str) -> Any:
    return model.get_submodule(name)


def _hooks(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules()
            if m._forward_pre_hooks or m._forward_hooks]


# --- budget, report, the user's model ------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(("kind", "value"), [("params", 0.5), ("macs", 0.5), ("macs", 0.25)])
def test_budget_is_reached_on_the_compressed_model_itself(name, kind, value):
    build, data = MODELS[name]
    model = build()
    x = data(256, 1)
    small = _compress(model, x, {kind: value})
    example = x[:1]
    counted = count_params(small) if kind == "params" else count_macs(small, (example,))
    full = count_params(model) if kind == "params" else count_macs(model, (example,))
    assert (1 - 0.02) * value * full <= counted <= value * full, (counted, full)
    budget = _report(small)["budget"]
    assert budget["kind"] == kind and budget["full"] == full
    assert budget["counted"] == counted
    assert budget["reached_count"] == pytest.approx(counted)  # the cost model is exact
    assert _report(small)["params"] == count_params(small)
    assert _report(small)["macs"] == count_macs(small, (example,))
    assert _report(small)["calibration_examples"] == 256


def test_budget_as_an_absolute_count():
    model = _lenet()
    small = _compress(model, MODELS["lenet"][1](128, 1), {"params": 40000})
    assert 0.98 * 40000 <= count_params(small) <= 40000
    assert _report(small)["budget"]["target"] == 40000


def test_the_input_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64),
                          nn.ReLU(), nn.Linear(64, 4))
    x = torch.randn(256, 16, generator=_gen(1))
    model.train()  # a BatchNorm in training mode would update its statistics on every pass
    state = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        before = model.eval()(x)
    model.train()
    small = _compress(model, x, {"params": 0.5})
    assert model.training  # its mode too
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], state[k]) for k in state)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), before)
    assert count_params(small) < count_params(model)


def test_no_hooks_are_left_on_the_input_or_the_compressed_model():
    model = _lenet()
    small = _compress(model, MODELS["lenet"][1](64, 1), {"macs": 0.5})
    assert _hooks(model) == [] and _hooks(small) == []
    # a compress that fails while scoring leaves nothing behind either
    branchy = _Branchy()
    with pytest.raises(al.ArchlearnError):
        _compress(branchy, torch.randn(64, 16), {"params": 0.5})
    assert _hooks(branchy) == []


# --- re-fit -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind", "n"), [("mlp", "params", 512), ("mlp", "macs", 512),
                                                 ("lenet", "macs", 1024),
                                                 ("lenet", "params", 1024)])
def test_refit_brings_the_outputs_closer_to_the_original(name, kind, n):
    build, data = MODELS[name]
    model = build()
    calibration, held_out = data(n, 1), data(512, 2)
    small = _compress(model, calibration, {kind: 0.25})
    plain = _compress(model, calibration, {kind: 0.25}, refit_layers=False)
    rows = _report(small)["refit"]
    assert rows and all("skipped" not in r for r in rows), rows
    assert all(r["error_after"] <= r["error_before"] for r in rows), rows
    assert any(r["error_after"] < 0.5 * r["error_before"] for r in rows), rows
    assert _report(plain)["refit"] == []
    # same architecture; only the readers' weights moved
    assert [lay["width"] for lay in _report(small)["layers"]] == [
        lay["width"] for lay in _report(plain)["layers"]]
    refit_error = _relative_error(small, model, held_out)
    plain_error = _relative_error(plain, model, held_out)
    assert refit_error < 0.8 * plain_error, (refit_error, plain_error)


def test_refit_with_a_few_hundred_examples_does_not_hurt_held_out_outputs():
    model = _lenet()
    calibration, held_out = MODELS["lenet"][1](400, 1), MODELS["lenet"][1](512, 2)
    small = _compress(model, calibration, {"params": 0.25})
    plain = _compress(model, calibration, {"params": 0.25}, refit_layers=False)
    assert _layer(small, "7").in_features > 400  # fewer examples than fc1 has inputs
    assert _relative_error(small, model, held_out) <= _relative_error(plain, model, held_out)


def test_a_convolution_reading_removed_channels_is_refit():
    # LeNet-5 up to conv2, whose output is the model's: conv1's channels are the one group
    model = _lenet()[:4]
    calibration, held_out = MODELS["lenet"][1](256, 1), MODELS["lenet"][1](256, 2)
    small = _compress(model, calibration, {"macs": 0.6})
    plain = _compress(model, calibration, {"macs": 0.6}, refit_layers=False)
    widths = {lay["name"]: lay["width"] for lay in _report(small)["layers"]}
    assert set(widths) == {"0"} and 1 < widths["0"] < 20
    assert _layer(small, "3").in_channels == widths["0"] and _layer(small, "3").out_channels == 50
    rows = _report(small)["refit"]
    assert [r["layer"] for r in rows] == ["3"] and rows[0]["rows"] == 256 * 8 * 8
    assert rows[0]["error_after"] < rows[0]["error_before"]
    with torch.no_grad():
        target = model(held_out)
        refit = (small(held_out) - target).pow(2).mean()
        unfit = (plain(held_out) - target).pow(2).mean()
    assert refit < 0.8 * unfit, (float(refit), float(unfit))


def test_ignore_keeps_the_units_of_the_named_layers_only():
    model = _lenet()
    small = _compress(model, MODELS["lenet"][1](128, 1), {"macs": 0.6}, ignore=["3", "7"])
    widths = {lay["name"]: lay["width"] for lay in _report(small)["layers"]}
    assert set(widths) == {"0"} and widths["0"] < 20
    assert _layer(small, "3").out_channels == 50 and _layer(small, "7").out_features == 500
    assert [r["layer"] for r in _report(small)["refit"]] == ["3"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_and_load_rebuild_the_compressed_model(name, tmp_path):
    build, data = MODELS[name]
    model = build()
    small = _compress(model, data(256, 1), {"macs": 0.25})
    al.save(small, tmp_path / "small")
    torch.manual_seed(123)  # a fresh instance with other weights
    fresh = lenet5() if name == "lenet" else nn.Sequential(
        nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    loaded = al.load(tmp_path / "small", model=fresh).eval()
    x = data(32, 3)
    with torch.no_grad():
        assert torch.equal(loaded(x), small(x))
    assert count_params(loaded) == count_params(small) < count_params(fresh)


# --- calibration forms --------------------------------------------------------------------------

def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.allclose(sa[k], sb[k], atol=1e-5) for k in sa)


def test_every_calibration_form_gives_the_same_model():
    model = _mlp()
    x = torch.randn(256, 16, generator=_gen(1))
    forms = {
        "tensor": x,
        "list of tensors": list(x.split(50)),
        "list of tuples": [(t,) for t in x.split(64)],
        "list of lists": [[t] for t in x.split(100)],
        "generator": (t for t in x.split(32)),
    }
    smalls = {k: _compress(model, v, {"macs": 0.4}) for k, v in forms.items()}
    reference = smalls.pop("tensor")
    assert _report(reference)["refit"]  # the re-fit saw the calibration too
    for form, small in smalls.items():
        assert _same_weights(small, reference), form
        assert _report(small)["calibration_examples"] == 256


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(8, 48), nn.Linear(4, 48), nn.Linear(48, 3)

    def forward(self, x, z):
        return self.head(F.relu(self.a(x) + self.b(z)))


def test_tuples_are_positional_arguments():
    torch.manual_seed(0)
    model = _TwoInputs().eval()
    gen = _gen(1)
    batches = [(torch.randn(32, 8, generator=gen), torch.randn(32, 4, generator=gen))
               for _ in range(8)]
    small = _compress(model, batches, {"params": 0.5})
    width = _layer(small, "a").out_features
    assert _layer(small, "b").out_features == _layer(small, "head").in_features == width < 48
    unit = 8 + 4 + 1 + 1 + 3  # one hidden unit's parameters: a, b (weights, biases), head
    assert 0.5 * count_params(model) - unit < count_params(small) <= 0.5 * count_params(model)
    x, z = torch.randn(16, 8, generator=gen), torch.randn(16, 4, generator=gen)
    plain = _compress(model, batches, {"params": 0.5}, refit_layers=False)
    with torch.no_grad():
        y = model(x, z)
        assert (small(x, z) - y).pow(2).mean() < (plain(x, z) - y).pow(2).mean()


# --- a transformers BERT with padded dict batches -----------------------------------------------

def _bert():
    T = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return T.BertModel(T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64,
                                    attn_implementation="sdpa")).eval()


def _padded(pad_seed: int | None, batches: int = 4, seed: int = 1) -> list[dict]:
    """Batches of 8 sentences of 4-16 tokens padded to 16; what sits at the padded positions
    is 0 (``pad_seed=None``) or random tokens drawn with ``pad_seed``."""
    gen, fill = _gen(seed), _gen(pad_seed or 0)
    out = []
    for _ in range(batches):
        ids = torch.randint(1, 100, (8, 16), generator=gen)
        lengths = torch.randint(4, 17, (8,), generator=gen)
        mask = (torch.arange(16)[None] < lengths[:, None]).long()
        pad = torch.zeros_like(ids) if pad_seed is None else torch.randint(
            1, 100, ids.shape, generator=fill)
        out.append({"input_ids": torch.where(mask.bool(), ids, pad), "attention_mask": mask})
    return out


EXAMPLE = (torch.randint(1, 100, (1, 16), generator=_gen(2)),)


def test_dict_batches_compress_a_bert_and_padding_is_ignored(tmp_path):
    model = _bert()
    zeros, noise = _padded(None), _padded(7)
    # the two calibrations differ where the mask is 0 and that changes what the model computes
    with torch.no_grad():
        a, b = model(**zeros[0]).last_hidden_state, model(**noise[0]).last_hidden_state
    pad = zeros[0]["attention_mask"] == 0
    assert pad.any() and not torch.allclose(a[pad], b[pad])
    small = _compress(model, zeros, {"macs": 0.5}, example_inputs=EXAMPLE)
    other = _compress(model, noise, {"macs": 0.5}, example_inputs=EXAMPLE)
    assert _same_weights(small, other)
    report = _report(small)
    assert {lay["kind"] for lay in report["layers"]} == {"heads", "channels"}
    assert any(lay["width"] < lay["of"] for lay in report["layers"] if lay["kind"] == "heads")
    assert 0.98 * 0.5 * report["budget"]["full"] <= report["budget"]["counted"] <= (
        0.5 * report["budget"]["full"])
    assert report["budget"]["counted"] == count_macs(small, EXAMPLE)
    tokens = sum(int(b["attention_mask"].sum()) for b in zeros)
    assert report["refit"] and all(r["rows"] == tokens for r in report["refit"]), report["refit"]
    assert _hooks(model) == [] and _hooks(small) == []
    # the compressed BERT takes the same batches, and save/load rebuilds it
    al.save(small, tmp_path / "bert")
    loaded = al.load(tmp_path / "bert", model=_bert()).eval()
    held = _padded(None, batches=1, seed=9)[0]
    with torch.no_grad():
        assert torch.equal(loaded(**held).last_hidden_state, small(**held).last_hidden_state)


def test_bert_heads_share_the_stream_scale_with_the_ffn_weighted_by_head_weight():
    """In a post-LayerNorm block heads and FFN units are scored as fractions of one residual
    stream: the allocation reads the raw stream fractions, heads weighted by ``HEAD_WEIGHT``."""
    from archlearn.compression import HEAD_WEIGHT, decide
    from archlearn.compression.calibration import calls
    from archlearn.compression.refit import residual_streams
    from archlearn.compression.scores import unit_scores

    model, batches = _bert(), calls(_padded(None))
    decided = decide(model, EXAMPLE, batches, "macs", 0.5)
    streams = residual_streams(model, decided.groups, batches[0])
    raw = unit_scores(model, decided.groups, batches, streams=streams)
    kinds = {g.kind for g in decided.groups}
    assert kinds == {"heads", "channels"} and streams
    for group, share, r in zip(decided.groups, decided.scores, raw):
        weight = HEAD_WEIGHT if group.kind == "heads" else 1.0
        torch.testing.assert_close(share, r * weight)
    assert HEAD_WEIGHT != 1.0



def test_wide_transformer_ffn_widths_are_aligned_within_the_budget():
    """A transformer FFN of at least ``WIDE`` units keeps a multiple of ``WIDTH_MULTIPLE``
    (faster CPU GEMMs); the allocation stays within the budget, and no narrower than before."""
    from archlearn.compression import WIDE, WIDTH_MULTIPLE, decide
    from archlearn.compression.calibration import calls

    T = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = T.BertModel(T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=WIDE,
                                     attn_implementation="sdpa")).eval()
    decided = decide(model, EXAMPLE, calls(_padded(None)), "macs", 0.5)
    ffn = [int(a.sum()) for g, a in zip(decided.groups, decided.alive) if g.kind == "channels"]
    assert ffn and all(w % WIDTH_MULTIPLE == 0 for w in ffn), ffn
    reached = decided.report()["budget"]["reached"]
    assert 0.5 - 0.02 <= reached <= 0.5, reached

# --- the taylor score ---------------------------------------------------------------------------

def _shift_net() -> nn.Sequential:
    """Hidden units 16-31 read strongly but add the same value to every logit: the cross
    entropy cannot see them, their activation energy is the largest."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3)).eval()
    out = _layer(net, "2").weight
    with torch.no_grad():
        out[:, :16].mul_(0.1)
        out[:, 16:] = torch.randn(16, generator=_gen(5)).abs() + 2.0
    return net


def _kept(small: nn.Module, net: nn.Module) -> set[int]:
    """Which of ``net``'s hidden units ``small`` kept (the first layer's rows are not re-fit)."""
    rows = _layer(small, "0").weight.detach()
    full = _layer(net, "0").weight.detach()
    distance = (full[None] - rows[:, None]).abs().sum(-1)  # [kept, all]
    assert bool((distance.min(1).values == 0).all())
    return set(distance.argmin(1).tolist())


def test_taylor_score_follows_the_loss_and_targets():
    net = _shift_net()
    gen = _gen(1)
    batches = [torch.randn(32, 8, generator=gen) for _ in range(8)]
    labels = [torch.randint(0, 3, (32,), generator=gen) for _ in range(8)]
    taylor = _compress(net, batches, {"params": 0.5},
                       loss=lambda out, y: F.cross_entropy(out, y), targets=labels)
    energy = _compress(net, batches, {"params": 0.5})
    assert _report(taylor)["score"] == "taylor"
    assert _report(energy)["score"] == "energy"
    kept_t, kept_e = _kept(taylor, net), _kept(energy, net)
    assert len(kept_t) == _layer(taylor, "0").out_features
    assert len(kept_e) == _layer(energy, "0").out_features
    assert kept_t <= set(range(16))  # what the loss cannot see goes first
    assert kept_e <= set(range(16, 32))  # by energy, the strongly read units stay
    budget = _report(taylor)["budget"]
    unit = 8 + 1 + 3  # one hidden unit's parameters
    assert budget["target"] - unit < budget["counted"] <= budget["target"]


def test_taylor_without_a_loss_is_refused():
    with pytest.raises(al.ArchlearnError, match="taylor score needs a loss"):
        _compress(_mlp(), torch.randn(64, 16), {"params": 0.5}, score="taylor")


# --- clear errors -------------------------------------------------------------------------------

class _Branchy(nn.Module):
    """Takes another layer for batches than for the single example it is traced with."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(16, 32), nn.Linear(32, 4), nn.Linear(32, 4)

    def forward(self, x):
        h = F.relu(self.a(x))
        return self.c(h) if x.shape[0] > 1 else self.b(h)


class _DataDependentWidth(nn.Module):
    """Keeps the hidden columns that happen to be active: a width only the data decides."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.c = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x):
        h = F.relu(self.a(x))
        kept = h[:, h.sum(0) > 0]
        return self.c(F.pad(kept, (0, 32 - kept.shape[1])))


X = torch.randn(64, 16, generator=_gen(0))


@pytest.mark.parametrize(("model", "calibration", "budget", "match"), [
    (_mlp, [], {"params": 0.5}, "has 0 example"),
    (_mlp, X[:8], {"params": 0.5}, "has 8 example.*at least 16"),
    (_mlp, [X, "not a batch"], {"params": 0.5}, "batch 1 is a str"),
    (_mlp, 3.0, {"params": 0.5}, "must be an iterable"),
    (_mlp, X, {"params": 1e12}, "not below the model's 5,508 params"),
    (_mlp, X, {"params": 10}, "below what one unit in every group costs"),
    (_mlp, X, {"flops": 0.5}, "unknown budget 'flops'"),
    (_mlp, X, {"macs": 0.5, "params": 0.5}, "only key"),
    (_mlp, X, {"macs": -0.5}, "positive number"),
    (lambda: nn.Linear(16, 4), X, {"params": 0.5}, "no layer of this model can be compressed"),
    (_DataDependentWidth, X, {"params": 0.5}, "a: its channels pass through Index"),
    (_Branchy, X, {"params": 0.5}, "no calibration batch reached"),
])
def test_bad_input_is_one_clear_error(model, calibration, budget, match):
    with pytest.raises(al.ArchlearnError, match=match):
        _compress(model(), calibration, budget)


def test_unknown_score_is_refused():
    with pytest.raises(al.ArchlearnError, match="unknown score 'fisher'"):
        _compress(_mlp(), X, {"params": 0.5}, score="fisher")
