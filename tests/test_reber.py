"""Reber grammar: acceptor, generators, dataset and a short training run."""

import random
import time

import pytest
import torch
from torch.utils.data import DataLoader

from archlearn.graphs import (
    ReberClassifier,
    encode,
    generate_invalid,
    generate_valid,
    is_valid,
    reber_dataset,
)


@pytest.mark.parametrize(
    "s,valid",
    [
        ("BTSSXXTVVE", True),  # 1 T2 S2 S2 X4 X3 T3 V5 V6 E
        ("BTSSXXTVPSE", True),  # ... V5 P4 S6 E
        ("BTXSE", True),  # shortest string
        ("BPVVE", True),  # 1 P3 V5 V6 E
        ("BPTTVPXVVE", True),  # 1 P3 T3 T3 V5 P4 X3 V5 V6 E
        ("BPE", False),  # state 3 has no E
        ("BTSSXXTVV", False),  # stops before E
        ("BTSSXXTVVEE", False),  # nothing may follow E
        ("TSSXXTVVE", False),  # must start with B
        ("BTXXE", False),  # state 3 has no E
        ("", False),
    ],
)
def test_known_examples(s, valid):
    assert is_valid(s) is valid


def test_generators_agree_with_acceptor():
    rng = random.Random(0)
    valid = [generate_valid(rng) for _ in range(1000)]
    invalid = [generate_invalid(rng) for _ in range(1000)]
    assert all(is_valid(s) and 11 <= len(s) <= 53 for s in valid)
    assert not any(is_valid(s) for s in invalid)
    assert all(11 <= len(s) <= 53 and s.isalpha() and s.isupper() for s in invalid)
    # Both kinds of negatives occur: corrupted (Reber-like) and random letters.
    assert any(s.startswith("B") for s in invalid) and any(not s.startswith("B") for s in invalid)


def test_dataset_shapes_balance_and_speed():
    start = time.perf_counter()
    train, test = reber_dataset(n=25000, seed=0)
    assert time.perf_counter() - start < 5
    assert len(train) == 18750 and len(test) == 6250
    codes, lengths, y = train.tensors
    assert codes.shape == (18750, 53) and codes.dtype == torch.long
    total = torch.cat([y, test.tensors[2]])
    assert total.sum() == 12500
    row = 0
    s = bytes(codes[row, : lengths[row]].tolist()).decode()
    assert is_valid(s) == bool(y[row]) and codes[row, lengths[row] :].eq(0).all()


def test_dataset_is_reproducible():
    a, _ = reber_dataset(n=200, seed=3)
    b, _ = reber_dataset(n=200, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors, b.tensors))


def test_classifier_reads_true_last_position():
    torch.manual_seed(0)
    model = ReberClassifier("lstm", hidden=8, layers=2).eval()
    codes, lengths = encode(["BTXSE", "BPVVE"], 9)
    padded = torch.cat([codes, torch.full((2, 4), 70)], 1)  # junk after the string is ignored
    assert torch.allclose(model(codes, lengths), model(padded, lengths))
    with pytest.raises(ValueError):
        ReberClassifier("transformer")


@pytest.fixture
def one_thread():
    # Tiny recurrent ops gain nothing from intra-op threads, and on a busy 2-core machine
    # thread contention made this test 100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_short_training_learns_the_task(one_thread):
    torch.manual_seed(0)
    train, test = reber_dataset(n=2000, seed=1)
    model = ReberClassifier("gru", hidden=32, layers=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(2):
        for codes, lengths, y in DataLoader(train, batch_size=32, shuffle=True):
            cut = int(lengths.max())  # drop all-padding columns: same result, faster
            loss = torch.nn.functional.cross_entropy(model(codes[:, :cut], lengths), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    codes, lengths, y = test.tensors
    with torch.no_grad():
        acc = (model(codes, lengths).argmax(1) == y).float().mean().item()
    assert acc > 0.7
