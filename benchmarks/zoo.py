"""Real architectures at their usual sizes: what attach gates, what it skips and why, and how
long attach and shrink take.

    python -m benchmarks.zoo [--repeats 3] [--models bert-base-sdpa,mobilenet-v2] [--quick]

transformers' own model classes from their default configs, the CNNs people take from timm and
torchvision (``timm/...``, ``tv/...``: their default sizes; random init, nothing downloaded) and
the pre-trained all-MiniLM-L6-v2. For each: the share of removable output channels (every
layer's but the model's output layers': the model's own outputs cannot be removed) and of all
output channels, parameters and MACs in gated groups (``archlearn.structure.coverage``), the
groups by kind, the skipped groups
grouped by reason, and the seconds of ``attach`` (tracing, head detection, the trial shrink)
and of ``shrink`` with about half the units off -- each the median of ``--repeats`` runs,
models interleaved, with the range. A model that is refused records its one error line.
Writes benchmarks/results/zoo.json. Timings need a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

import archlearn as al
from archlearn.io import write_json
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.structure.coverage import coverage
from archlearn.structure.measure import count_macs, count_params

OUT = Path(__file__).parent / "results" / "zoo.json"


# timm models at their default sizes (random init)
TIMM = ["resnet18", "resnet50", "efficientnet_b0", "mobilenetv3_large_100", "regnetx_002",
        "regnety_004", "densenet121", "convnext_atto", "vit_tiny_patch16_224"]


def vision_libraries():
    """timm and ``torchvision.models``, importable on the CPU torch (see ``vision_shim``)."""
    from benchmarks.vision_shim import import_timm, import_torchvision

    timm = import_timm()
    return timm, import_torchvision().models


def _img(size: int):
    return lambda: torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))


def _ids(length: int):
    return lambda: torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(0))


def zoo(quick: bool) -> dict:
    """name -> (build, example inputs); ``quick``: small configs (for the test of this script)."""
    import transformers as T

    from archlearn.models.pretrained import load_minilm

    timm, tvm = vision_libraries()
    if quick:
        vision = {
            "resnet": lambda: T.ResNetForImageClassification(T.ResNetConfig(
                embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1])),
            "mobilenet-v2": lambda: T.MobileNetV2ForImageClassification(T.MobileNetV2Config(
                depth_multiplier=0.25, image_size=32)),
        }
        text = {"bert-sdpa": lambda: T.BertModel(T.BertConfig(
            vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64))}
        vision |= {
            "timm/efficientnet_b0": lambda: timm.create_model("efficientnet_b0", num_classes=10),
            "tv/shufflenet_v2_x0_5": lambda: tvm.shufflenet_v2_x0_5(num_classes=10),  # refused
        }
        return ({k: (v, _img(32)) for k, v in vision.items()}
                | {k: (v, _ids(8)) for k, v in text.items()})
    vision = {
        "resnet-50": lambda: T.ResNetForImageClassification(T.ResNetConfig()),
        "convnext-tiny": lambda: T.ConvNextForImageClassification(T.ConvNextConfig()),
        "mobilenet-v2": lambda: T.MobileNetV2ForImageClassification(T.MobileNetV2Config()),
        "efficientnet-b0": lambda: T.EfficientNetForImageClassification(T.EfficientNetConfig(
            width_coefficient=1.0, depth_coefficient=1.0, image_size=224, hidden_dim=1280)),
        "regnet-y": lambda: T.RegNetForImageClassification(T.RegNetConfig()),
        "vit-base": lambda: T.ViTForImageClassification(T.ViTConfig()),
    }
    vision |= {f"timm/{name}": (lambda name=name: timm.create_model(name, pretrained=False))
               for name in TIMM}
    vision |= {
        "tv/mobilenet_v3_small": lambda: tvm.mobilenet_v3_small(),
        "tv/shufflenet_v2_x0_5": lambda: tvm.shufflenet_v2_x0_5(),
        "tv/googlenet": lambda: tvm.googlenet(aux_logits=False, init_weights=True),
        "tv/squeezenet1_0": lambda: tvm.squeezenet1_0(),
    }
    text = {
        # attn_implementation is one of PretrainedConfig's **kwargs, untyped
        "bert-base-eager": lambda: T.BertModel(T.BertConfig(
            attn_implementation="eager")),  # pyright: ignore[reportCallIssue]
        "bert-base-sdpa": lambda: T.BertModel(T.BertConfig(
            attn_implementation="sdpa")),  # pyright: ignore[reportCallIssue]
        "gpt2-no-cache": lambda: T.GPT2Model(T.GPT2Config(use_cache=False)),
        "gpt2-with-cache": lambda: T.GPT2Model(T.GPT2Config(use_cache=True)),
        "all-MiniLM-L6-v2": load_minilm,
    }
    return ({k: (v, _img(224)) for k, v in vision.items()}
            | {k: (v, _ids(128)) for k, v in text.items()})


def half_off(learner) -> None:
    """About half of every group's units off (tri-state gates), a fixed pattern."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for w in learner.method.w.values():
            w.copy_((torch.rand(w.shape, generator=gen) < 0.5).float())
            w[0] = 1.0


def one_run(build, make_inputs) -> dict:
    torch.manual_seed(0)
    model = build().eval()
    x = make_inputs()
    start = time.perf_counter()
    try:
        learner = al.attach(model, x, total_steps=100)
    except al.ArchlearnError as exc:
        return {"error": str(exc)}
    attach_s = time.perf_counter() - start
    share = coverage(learner)
    half_off(learner)
    start = time.perf_counter()
    small = learner.shrink()
    shrink_s = time.perf_counter() - start
    return {
        "attach_s": attach_s, "shrink_s": shrink_s, "share": share,
        "params": count_params(model),
        "macs": count_macs(model, x),
        "groups": dict(Counter(g.kind for g in learner.groups)),
        "units": {k: sum(g.size for g in learner.groups if g.kind == k)
                  for k in ("channels", "heads", "blocks", "hidden")},
        "skipped": dict(Counter(s.reason for s in learner.skipped)),
        "half_off_params": count_params(small),
    }


def _provenance(command: str, repeats: int) -> dict:
    import transformers

    timm, _ = vision_libraries()
    import torchvision

    return provenance(command, transformers=transformers.__version__, timm=timm.__version__,
                      torchvision=torchvision.__version__, repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_allow_dirty(parser)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="", help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="small configs (a smoke run)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    models = zoo(args.quick)
    if args.models:
        models = {k: v for k, v in models.items() if k in args.models.split(",")}
    runs: dict[str, list[dict]] = {name: [] for name in models}
    for _ in range(args.repeats):  # interleaved: one run of every model per round
        for name, (build, make_inputs) in models.items():
            print(f"{name} ...", flush=True)
            runs[name].append(one_run(build, make_inputs))
    rows = {}
    for name, rs in runs.items():
        first = rs[0]
        if "error" in first:
            rows[name] = {"error": first["error"]}
            continue
        row = {k: v for k, v in first.items() if k not in ("attach_s", "shrink_s")}
        for key in ("attach_s", "shrink_s"):
            values = [r[key] for r in rs]
            row[key] = {"median": statistics.median(values), "min": min(values),
                        "max": max(values)}
        rows[name] = row
    command = f"python -m benchmarks.zoo --repeats {args.repeats}" + (
        " --quick" if args.quick else "") + (f" --models {args.models}" if args.models else "")
    write_json(args.out, {"provenance": _provenance(command, args.repeats), "models": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
