"""al.distill: the loss, its terms, its layer pairs, and a student that learns from it."""

import pytest
import torch

import archlearn as al
from archlearn.distillation import Distiller, embed, mean_pool, similarity_loss
from archlearn.seeding import seeded

T = pytest.importorskip("transformers")


def _bert(layers=2, seed=0):
    config = T.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers,
                          num_attention_heads=2, intermediate_size=32)
    with seeded(seed):
        return T.BertModel(config).eval()


def _batch():
    ids = torch.randint(1, 50, (4, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 4:] = 0
    ids[0, 4:] = 0
    return ids, mask


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


@pytest.mark.parametrize("loss", ["cosine", "mse"])
def test_zero_for_the_teacher_itself_positive_for_another_model(loss):
    teacher, other = _bert(), _bert(seed=1)
    ids, mask = _batch()
    d = al.distill(teacher, loss=loss, hidden=1.0)
    assert d(teacher, ids, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert d(other, ids, mask).item() > 1e-3
    assert set(d.last) == {"embedding", "hidden"}


def test_similarity_term_compares_the_in_batch_similarity_matrices():
    teacher, other = _bert(), _bert(seed=1)
    ids, mask = _batch()
    d = al.distill(teacher, similarity=2.0)
    with torch.no_grad():
        assert d(teacher, ids, mask).item() == pytest.approx(0.0, abs=1e-6)
        assert set(d.last) == {"embedding", "similarity"}
        assert d.last["similarity"] == pytest.approx(0.0, abs=1e-6)
        total = d(other, ids, mask).item()
        s, t = embed(other, ids, mask), embed(teacher, ids, mask)
    term = d.last["similarity"]
    assert term > 1e-4
    # the term as defined: MSE of the cosine-similarity matrices, weighted into the loss
    cos = torch.nn.functional.cosine_similarity
    want = ((cos(s[:, None], s[None], dim=-1) - cos(t[:, None], t[None], dim=-1)) ** 2).mean()
    assert term == pytest.approx(want.item(), rel=1e-4)
    assert total == pytest.approx(d.last["embedding"] + 2.0 * term, rel=1e-6)
    assert similarity_loss(3.0 * t, t).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    # weight 0 (the default): no term, and the loss is the embedding term alone
    plain = al.distill(teacher)
    with torch.no_grad():
        assert plain(other, ids, mask).item() == pytest.approx(d.last["embedding"], rel=1e-6)
    assert "similarity" not in plain.last


def test_cosine_term_is_one_minus_cosine_of_pooled_embeddings():
    teacher, other = _bert(), _bert(seed=1)
    ids, mask = _batch()
    with torch.no_grad():
        a, b = embed(other, ids, mask), embed(teacher, ids, mask)
        want = (1 - torch.nn.functional.cosine_similarity(a, b)).mean()
        got = al.distill(teacher)(other, ids, mask)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_padding_does_not_change_the_loss():
    teacher, other = _bert(), _bert(seed=1)
    ids, mask = _batch()
    d = al.distill(teacher, hidden=0.5)
    with torch.no_grad():
        short = d(other, ids[:1, :4], mask[:1, :4])
        padded = d(other, ids[:1], mask[:1])
    assert short.item() == pytest.approx(padded.item(), rel=1e-5)


def test_layer_pairs_spread_a_shallow_student_over_the_teacher():
    d = Distiller(_bert())
    assert d.pairs(2, 2) == {1: 1, 2: 2}
    assert d.pairs(2, 6) == {1: 3, 2: 6}
    assert Distiller(_bert(), layers={0: 0, 1: 2}).pairs(1, 2) == {0: 0, 1: 2}
    with pytest.raises(al.ArchlearnError, match="out of range"):
        Distiller(_bert(), layers={3: 1}).pairs(2, 2)


def test_cached_teacher_outputs_give_the_same_loss():
    teacher, other = _bert(), _bert(seed=1)
    ids, mask = _batch()
    d = al.distill(teacher, hidden=1.0)
    cached = d.teacher_outputs(ids, mask)
    half = (cached[0].half(), tuple(s.half() for s in cached[1]))
    with torch.no_grad():
        direct = d(other, ids, mask)
        assert d(other, ids, mask, teacher_outputs=cached).item() == direct.item()
        assert d(other, ids, mask, teacher_outputs=half).item() == pytest.approx(
            direct.item(), rel=1e-2)


def test_teacher_is_left_in_its_mode_and_gets_no_gradient():
    teacher, student = _bert(), _bert(seed=1)
    teacher.train()
    ids, mask = _batch()
    al.distill(teacher, hidden=1.0)(student.train(), ids, mask).backward()
    assert teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_a_student_gets_closer_to_the_teacher():
    teacher, student = _bert(), _bert(seed=1)
    ids = torch.randint(1, 50, (64, 8), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    d = al.distill(teacher, hidden=1.0)
    with torch.no_grad():
        before = d(student, ids, mask).item()
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    student.train()
    for step in range(40):
        b = slice(8 * (step % 8), 8 * (step % 8) + 8)
        loss = d(student, ids[b], mask[b])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    student.eval()
    with torch.no_grad():
        assert d(student, ids, mask).item() < 0.5 * before


def test_bad_arguments_are_named():
    with pytest.raises(al.ArchlearnError, match="cosine"):
        al.distill(_bert(), loss="l1")
    with pytest.raises(al.ArchlearnError, match="hidden"):
        al.distill(_bert(), hidden=-1.0)
    with pytest.raises(al.ArchlearnError, match="similarity weight must be >= 0"):
        al.distill(_bert(), similarity=-0.5)
    with pytest.raises(al.ArchlearnError, match="similarity"):
        al.distill(_bert(), similarity=float("nan"))
    plain = torch.nn.Embedding(50, 4)
    with pytest.raises(al.ArchlearnError, match="hidden_states"):
        al.distill(lambda ids, attention_mask=None, output_hidden_states=False: plain(ids),
                   hidden=1.0)(lambda ids, attention_mask=None, output_hidden_states=False:
                               plain(ids), *_batch())
