"""The plain (non-embedded) Reber grammar task of Darji's thesis / Stier et al.

Automaton (state 0 reads ``B``; state 7 accepts and reads nothing more)::

    0 -B-> 1      1 -T-> 2, -P-> 3      2 -S-> 2, -X-> 4      3 -T-> 3, -V-> 5
    4 -X-> 3, -S-> 6      5 -P-> 4, -V-> 6      6 -E-> 7

Valid strings are uniform random walks through it. Invalid strings use letters A-Z and have the
same length distribution as valid ones (so length alone says nothing): half are valid strings with
1-3 letters substituted (by a Reber letter or any letter, half each), half are random letters.
"""

from __future__ import annotations

import random
import string

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

__all__ = [
    "REBER_LETTERS",
    "generate_valid",
    "generate_invalid",
    "is_valid",
    "encode",
    "reber_dataset",
    "ReberClassifier",
]

_TRANSITIONS: dict[int, dict[str, int]] = {
    0: {"B": 1},
    1: {"T": 2, "P": 3},
    2: {"S": 2, "X": 4},
    3: {"T": 3, "V": 5},
    4: {"X": 3, "S": 6},
    5: {"P": 4, "V": 6},
    6: {"E": 7},
}
_ACCEPT = 7
# Tuples for rng.choice: indexing a tuple is much faster than building a list per step.
_CHOICES = {s: tuple(t.items()) for s, t in _TRANSITIONS.items()}

#: The seven letters of the grammar.
REBER_LETTERS = "BEPSTVX"
_ALL_LETTERS = string.ascii_uppercase


def is_valid(s: str) -> bool:
    """Whether the automaton accepts ``s`` (it must end right after ``E``).

    >>> is_valid("BTSSXXTVVE"), is_valid("BPE")
    (True, False)
    """
    state = 0
    for ch in s:
        nxt = _TRANSITIONS.get(state, {}).get(ch)  # the accept state has no transitions
        if nxt is None:
            return False
        state = nxt
    return state == _ACCEPT


def generate_valid(rng: random.Random, min_len: int = 11, max_len: int = 53) -> str:
    """A random valid string with ``min_len <= len <= max_len`` (rejection sampling of walks).

    >>> s = generate_valid(random.Random(0))
    >>> is_valid(s) and 11 <= len(s) <= 53
    True
    """
    if min_len > max_len or max_len < 5:  # BTXSE is the shortest valid string
        raise ValueError(f"no valid string has length in [{min_len}, {max_len}]")
    choice = rng.choice
    while True:
        out, state = [], 0
        while state != _ACCEPT and len(out) <= max_len:
            ch, state = choice(_CHOICES[state])
            out.append(ch)
        if state == _ACCEPT and min_len <= len(out) <= max_len:
            return "".join(out)


def generate_invalid(rng: random.Random, min_len: int = 11, max_len: int = 53) -> str:
    """A random string over A-Z that :func:`is_valid` rejects, length in ``[min_len, max_len]``.

    >>> s = generate_invalid(random.Random(0))
    >>> is_valid(s), 11 <= len(s) <= 53
    (False, True)
    """
    while True:
        chars = list(generate_valid(rng, min_len, max_len))
        if rng.random() < 0.5:
            # Corrupt a valid string: these are the hard negatives.
            for _ in range(rng.randint(1, 3)):
                pos = rng.randrange(len(chars))
                alphabet = REBER_LETTERS if rng.random() < 0.5 else _ALL_LETTERS
                chars[pos] = rng.choice(alphabet.replace(chars[pos], ""))
        else:
            chars = rng.choices(_ALL_LETTERS, k=len(chars))
        s = "".join(chars)
        if not is_valid(s):
            return s


def encode(strings: list[str], max_len: int) -> tuple[Tensor, Tensor]:
    """ASCII codes right-padded with 0 to ``max_len``, and the true lengths.

    >>> codes, lengths = encode(["BTXSE"], 7)
    >>> codes.tolist(), lengths.tolist()
    ([[66, 84, 88, 83, 69, 0, 0]], [5])
    """
    codes = np.zeros((len(strings), max_len), dtype=np.int64)
    for k, s in enumerate(strings):
        codes[k, : len(s)] = np.frombuffer(s.encode("ascii"), dtype=np.uint8)
    lengths = torch.tensor([len(s) for s in strings], dtype=torch.long)
    return torch.from_numpy(codes), lengths


def reber_dataset(
    n: int = 25000, seed: int = 0, split: float = 0.75, min_len: int = 11, max_len: int = 53
) -> tuple[TensorDataset, TensorDataset]:
    """Train/test ``TensorDataset(codes, lengths, labels)``: half valid (label 1), half invalid (0).

    ``codes`` is ``(N, max_len)`` int64 ASCII, padded with 0 (no letter has code 0) after each
    string; ``lengths`` holds the true lengths so a model reads the state at the last letter.
    Strings are shuffled before the split; duplicates (common for short valid strings) are kept,
    as in the original task. The default gives Darji's 18,750 / 6,250 split.

    >>> train, test = reber_dataset(n=100, seed=0)
    >>> len(train), len(test), train.tensors[0].shape[1]
    (75, 25, 53)
    """
    rng = random.Random(seed)
    n_valid = n // 2
    strings = [generate_valid(rng, min_len, max_len) for _ in range(n_valid)]
    strings += [generate_invalid(rng, min_len, max_len) for _ in range(n - n_valid)]
    labels = [1] * n_valid + [0] * (n - n_valid)
    order = list(range(n))
    rng.shuffle(order)
    codes, lengths = encode([strings[k] for k in order], max_len)
    y = torch.tensor([labels[k] for k in order], dtype=torch.long)
    cut = int(round(split * n))
    return (
        TensorDataset(codes[:cut], lengths[:cut], y[:cut]),
        TensorDataset(codes[cut:], lengths[cut:], y[cut:]),
    )


_RNNS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class ReberClassifier(nn.Module):
    """Embedding(128, 50) -> stacked ``cell`` layers -> Linear(hidden, 2), read at the last letter.

    ``forward(codes, lengths)`` takes the tensors of :func:`reber_dataset`; the recurrence is
    unidirectional and padding comes after the string, so the output at position
    ``length - 1`` is unaffected by padding and can be gathered directly (no packing needed).
    ``lengths=None`` reads the last position.

    >>> model = ReberClassifier("gru", hidden=8, layers=1)
    >>> codes, lengths = encode(["BTXSE", "BPVVE"], 6)
    >>> model(codes, lengths).shape
    torch.Size([2, 2])
    """

    def __init__(
        self, cell: str = "lstm", hidden: int = 50, layers: int = 3, embedding_dim: int = 50
    ) -> None:
        super().__init__()
        if cell not in _RNNS:
            raise ValueError(f"cell must be one of {sorted(_RNNS)}, got {cell!r}")
        self.embed = nn.Embedding(128, embedding_dim, padding_idx=0)
        self.rnn = _RNNS[cell](embedding_dim, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, codes: Tensor, lengths: Tensor | None = None) -> Tensor:
        out, _ = self.rnn(self.embed(codes))
        if lengths is None:
            return self.head(out[:, -1])
        last = (lengths.to(out.device) - 1).clamp(min=0)
        return self.head(out[torch.arange(out.shape[0], device=out.device), last])
