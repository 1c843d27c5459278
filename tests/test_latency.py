"""Latency: the interleaved protocol and the per-layer latency table behind cost="latency"."""

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn.structure import latency_table
from archlearn.structure.measure import compare_latency, summary, time_interleaved


def test_interleaved_rounds_rotate_and_report_median_and_spread():
    order = []
    calls = {name: (lambda n=name: order.append(n)) for name in "abc"}
    times = time_interleaved(calls, rounds=3, warmup=0, block_ms=0)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    # calibration first (a's, b's, c's), then blocks in rounds a-b-c, b-c-a, c-a-b
    blocks = [n for i, n in enumerate(order) if i == 0 or order[i - 1] != n]
    assert "".join(blocks) == "abc" + "abc" + "bca" + "cab"
    s = summary([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median_ms"], s["q1_ms"], s["q3_ms"], s["iqr_ms"]) == (3.0, 2.0, 4.0, 2.0)


def test_compare_latency_ranks_a_big_layer_above_a_small_one():
    big, small = nn.Linear(1024, 1024), nn.Linear(16, 16)
    x = torch.zeros(64, 1024)
    r = compare_latency({"big": big, "small": nn.Sequential(nn.Linear(1024, 16), small)}, x,
                        rounds=5, block_ms=2)
    assert r["big"]["median_ms"] > r["small"]["median_ms"]
    assert r["big"]["threads"] == 1 and r["big"]["batch"] == 64
    assert r["big"]["q1_ms"] <= r["big"]["median_ms"] <= r["big"]["q3_ms"]


def test_latency_table_is_measured_once_and_weights_wide_layers(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 8), nn.ReLU(),
                        nn.Linear(8, 4))
    x = torch.randn(128, 256)
    learner = al.attach(net, x, cost="latency", total_steps=10)
    cost = learner.method.cost
    assert cost.kind == "latency" and cost.full > 0
    wide, narrow = (learner.method.unit_weights(i) for i in range(2))
    # the 512 units reading 256 inputs take most of the time (32x the MACs); 8 units reading
    # 512, little. A timing: measured alone 5-6x, 4.6x once inside the full suite (the narrow
    # layer's time is mostly per-call overhead), so the margin asserts the order, not a ratio
    assert float(wide.sum()) > 2 * float(narrow.sum())
    files = list((tmp_path / "archlearn" / "latency").glob("*.json"))
    assert len(files) == 1

    def no_second_measurement(*args, **kwargs):
        raise AssertionError("the cached table was measured again")

    monkeypatch.setattr(latency_table, "measure_table", no_second_measurement)
    again = al.attach(learner.detach(), x, budget={"latency": 0.5}, total_steps=10)
    assert again.method.budget.cost.full == pytest.approx(cost.full)
