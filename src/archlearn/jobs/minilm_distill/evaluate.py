"""What the job reports for each model: size, MACs, fidelity to the teacher, CPU latency; and
the int8 version of a model (:func:`int8`), reported beside it."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from archlearn.data.text import length_chunks, pad
from archlearn.distillation import embed
from archlearn.fidelity import embedding_fidelity
from archlearn.models.bert import widths
from archlearn.structure.graph import preserved_mode
from archlearn.structure.measure import compare_latency, count_macs, count_params

#: the acceptance shapes: a batch of 32 sentences of 128 tokens, and one sentence of 128
LATENCY_SHAPES = {"b32x128": (32, 128), "b1x128": (1, 128)}


def sentence_embeddings(model: nn.Module, rows: Sequence[Sequence[int]],
                        batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled embeddings of token-id rows, in their order (batched by length, eval mode)."""
    chunks = length_chunks(rows, batch_size)
    parts = []
    with preserved_mode(model), torch.inference_mode():  # the caller's train/eval flags back
        model.eval()
        for chunk in chunks:
            parts.append(embed(model, *pad([rows[i] for i in chunk])))
    out = torch.empty(len(rows), parts[0].shape[1])
    out[torch.tensor([i for chunk in chunks for i in chunk])] = torch.cat(parts).float()
    return out


def describe(model: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """Layers, heads and FFN neurons per layer, parameters and MACs (per 128-token sentence)."""
    w = widths(model)
    return {"layers": len(w["heads"]), "heads": w["heads"], "ffn": w["ffn"],
            "params": count_params(model), "macs": count_macs(model, example)}


def int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with dynamic int8 Linear layers (``quantize_dynamic``: weights in
    int8, activations quantized per batch at run time; embeddings, LayerNorms and attention's
    own products stay float32). ``model`` is left as it is.

    PyTorch 2.13 marks ``torch.ao.quantization`` deprecated (for torchao, not installed here)
    but runs it; its warnings are silenced here, once, rather than shown on every run.

    >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> int8(net)[0]._get_name(), net[0]._get_name()
    ('DynamicQuantizedLinear', 'Linear')
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"(?s).*quantized tensor creation functions")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear},
                                                      dtype=torch.qint8)


def fidelity(model: nn.Module, rows, teacher_embeddings: torch.Tensor, k: int = 10) -> dict:
    """Mean cosine and top-``k`` neighbour agreement with the teacher on ``rows``."""
    return embedding_fidelity(sentence_embeddings(model, rows), teacher_embeddings, k=k)


def latency(models: Mapping[str, nn.Module], *, rounds: int = 10, threads: int = 2,
            reference: str = "original", seed: int = 0) -> dict[str, Any]:
    """CPU latency of every model at each of :data:`LATENCY_SHAPES`, by archlearn's protocol.

    ``compare_latency`` (``archlearn.structure.measure``): eval mode, ``threads`` threads, the
    models interleaved over ``rounds`` rounds (batch 1: three times as many), median and
    quartiles. Every sentence is 128 real tokens (ids drawn once, seeded; no padding), the
    acceptance case. ``speedup`` is the reference's median over the model's.
    """
    out: dict[str, Any] = {}
    gen = torch.Generator().manual_seed(seed)
    reference_model: Any = models[reference]
    vocab = int(reference_model.config.vocab_size)
    for name, (batch, tokens) in LATENCY_SHAPES.items():
        ids = torch.randint(min(1000, vocab // 2), vocab, (batch, tokens), generator=gen)
        times = compare_latency(models, (ids,), threads=threads, warmup=2,
                                rounds=rounds * (3 if batch == 1 else 1))
        for row in times.values():
            row["speedup"] = times[reference]["median_ms"] / row["median_ms"]
        out[name] = times
    return out
