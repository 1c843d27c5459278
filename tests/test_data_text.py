"""Sentences that exist offline: the stdlib's documentation, a user's file, the fixed split."""

import pytest
import torch

from archlearn import ArchlearnError
from archlearn.data.text import (
    length_batches,
    length_groups,
    load_text,
    package_sentences,
    pad,
    prose_sentences,
    read_sentences,
    split_sentences,
    stdlib_sentences,
)
from archlearn.fidelity import embedding_fidelity


def test_prose_sentences_skip_code_and_fragments():
    doc = ("Return the height of the turtle window. See also width().\n\n"
           "    >>> turtle.height()\n    400\n\n"
           "Args:\n    x: the value.\n\n"
           "The screen is redrawn\nwhen the window changes size. Ok.")
    assert prose_sentences(doc) == ["Return the height of the turtle window.",
                                    "The screen is redrawn when the window changes size."]


def test_stdlib_sentences_from_a_small_tree_without_importing_it(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        '"""A module that opens a web browser when it is imported."""\n'
        'raise SystemExit("imported!")\n'
        'def f():\n    """Return the answer to the question asked."""\n')
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.py").write_text('"""Tests are not part of the documentation text."""')
    (tmp_path / "bad.py").write_bytes(b"\xff\xfe not python")
    assert stdlib_sentences(tmp_path) == ["A module that opens a web browser when it is imported.",
                                          "Return the answer to the question asked."]


def test_package_sentences_take_count_from_files_in_hash_order_and_never_held_out(tmp_path):
    """Up to ``count`` sentences; a held-out sentence (white space aside) is never one; tests
    are left out; which sentences come depends on the files, not on how they are listed."""
    for i in range(30):
        (tmp_path / f"mod{i}.py").write_text(
            f'"""Module number {i} documents one small thing.\n\nIt has a second sentence '
            f'here, number {i}."""\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text('"""Tests are never part of the extra text."""')
    held = ["Module  number 3 documents one small thing."]
    everything = package_sentences(1000, exclude=held, root=tmp_path)
    assert len(everything) == 59 and "Module number 3 documents one small thing." not in everything
    assert not any("Tests" in s for s in everything)
    some = package_sentences(7, exclude=held, root=tmp_path)
    assert len(some) == 7 and set(some) < set(everything) and some == sorted(some)
    assert package_sentences(7, exclude=held, root=tmp_path) == some
    assert package_sentences(0, root=tmp_path) == []


def test_the_split_is_fixed_by_each_sentence_alone():
    rows = [f"Sentence number {i} says something new." for i in range(400)]
    a = split_sentences(rows, name="a")
    b = split_sentences(rows[:200] + rows[::-1], name="b")  # other order, duplicates
    assert (a.train, a.valid, a.test) == (b.train, b.valid, b.test)
    c = split_sentences(rows[:300], name="c")  # fewer sentences: each stays where it was
    assert set(c.test) == set(a.test) & set(rows[:300])
    assert 20 <= len(a.test) <= 60 and 20 <= len(a.valid) <= 60
    assert not set(a.train) & set(a.test) and not set(a.valid) & set(a.test)
    record = a.record()
    assert record["sizes"]["train"] == len(a.train) and len(record["sha256"]["test"]) == 16


def test_read_sentences_lines_or_prose(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("One sentence per line is here.\nAnother one comes on this line.\n\n"
                     "Too short.\n")
    assert read_sentences(lines) == ["Another one comes on this line.",
                                     "One sentence per line is here."]
    prose = tmp_path / "prose.txt"
    prose.write_text("A paragraph of running text\nwraps over lines. It has two sentences\n"
                     "in it, and no more than that")
    assert read_sentences(prose) == ["A paragraph of running text wraps over lines.",
                                     "It has two sentences in it, and no more than that"]
    with pytest.raises(ArchlearnError, match="does not exist"):
        read_sentences(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("short\n")
    with pytest.raises(ArchlearnError, match="no sentence"):
        read_sentences(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait is a drink here.".encode("latin-1"))
    with pytest.raises(ArchlearnError, match="UTF-8"):
        read_sentences(tmp_path / "latin1.txt")


def test_too_few_sentences_for_a_split():
    with pytest.raises(ArchlearnError, match="too few"):
        split_sentences(["Only one sentence is here today."], name="tiny")


def test_the_stdlib_corpus_of_this_python():
    s = load_text()
    sizes = s.record()["sizes"]
    assert sizes["train"] > 5000 and sizes["valid"] > 500 and sizes["test"] > 500
    assert "Return the height of the turtle window." in s.train + s.valid + s.test


def test_length_batches_cover_every_row_once_per_epoch_and_are_seeded():
    rows = [[7] * (1 + i % 9) for i in range(50)]
    batches = length_batches(rows, batch_size=8, steps=7, seed=3)
    assert len(batches) == 7
    assert sum(int(mask.sum()) for _, mask in batches) == sum(len(r) for r in rows)
    again = length_batches(rows, batch_size=8, steps=7, seed=3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    assert len(length_batches(rows, batch_size=8, steps=20, seed=3)) == 20  # next epochs
    ids, mask = pad([[1, 2, 3], [4]])
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_length_groups_cover_every_row_once_per_epoch_and_are_seeded():
    lengths = [1 + (7 * i) % 23 for i in range(130)]
    groups = length_groups(lengths, batch_size=8, steps=40, seed=5, pool=4)
    assert len(groups) == 40 and all(1 <= len(g) <= 8 for g in groups)
    # epoch after epoch: 17 batches (16 of 8 and one of 2) hold each of the 130 rows once
    per_epoch = 17
    for epoch in range(2):
        rows = [i for g in groups[epoch * per_epoch:(epoch + 1) * per_epoch] for i in g]
        assert sorted(rows) == list(range(130))
    assert len({i for g in groups[2 * per_epoch:] for i in g}) == sum(
        len(g) for g in groups[2 * per_epoch:])  # the third, cut short, repeats no row
    # similar lengths share a batch: each batch is sorted out of its pool of 32 rows
    assert sum(max(lengths[i] for i in g) - min(lengths[i] for i in g) for g in groups) < (
        sum(max(lengths) - min(lengths) for _ in groups) / 2)
    assert length_groups(lengths, batch_size=8, steps=40, seed=5, pool=4) == groups
    assert length_groups(lengths, batch_size=8, steps=40, seed=6, pool=4) != groups
    assert groups[per_epoch:2 * per_epoch] != groups[:per_epoch]  # each epoch shuffles anew
    with pytest.raises(ArchlearnError, match="batch_size"):
        length_groups([], batch_size=8, steps=1, seed=0)


def test_length_batches_pad_the_length_groups():
    rows = [[3 + i] * (1 + (5 * i) % 11) for i in range(45)]
    groups = length_groups([len(r) for r in rows], batch_size=6, steps=12, seed=2, pool=3)
    batches = length_batches(rows, batch_size=6, steps=12, seed=2, pool=3)
    assert len(batches) == len(groups) == 12
    for (ids, mask), group in zip(batches, groups):
        want_ids, want_mask = pad([rows[i] for i in group])
        assert torch.equal(ids, want_ids) and torch.equal(mask, want_mask)


def test_embedding_fidelity():
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(40, 8, generator=gen)
    same = embedding_fidelity(teacher * 3.0, teacher, k=5)  # scale does not matter
    assert same["cosine"] == pytest.approx(1.0) and same["topk_agreement"] == 1.0
    noisy = embedding_fidelity(teacher + 0.5 * torch.randn(40, 8, generator=gen), teacher, k=5)
    other = embedding_fidelity(torch.randn(40, 8, generator=gen), teacher, k=5)
    assert 1.0 > noisy["topk_agreement"] > other["topk_agreement"]
    assert 1.0 > noisy["cosine"] > other["cosine"]
    # agreement counts common neighbours: swap the embeddings of two rows
    swapped = teacher.clone()
    swapped[[0, 1]] = swapped[[1, 0]]
    assert embedding_fidelity(swapped, teacher, k=5)["topk_agreement"] < 1.0
    with pytest.raises(ArchlearnError, match="k must be"):
        embedding_fidelity(teacher, teacher, k=40)
    with pytest.raises(ArchlearnError, match="same n"):
        embedding_fidelity(teacher[:3], teacher, k=1)
