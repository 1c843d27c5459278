"""English sentences that exist on every machine: the running Python's own documentation.

:func:`stdlib_sentences` reads the docstrings of the standard library's source files (modules,
classes, functions) and the language reference text that ``help()`` shows
(``pydoc_data/topics.py``), keeps their prose paragraphs, splits them into sentences and removes
duplicates. The files are *parsed* with :mod:`ast`, never imported: importing every stdlib module
has side effects (``antigravity`` opens a web browser, ``this`` prints) and is slow. With Python
3.11 this gives about 13,700 sentences of 13 words on average ("Return the height of the turtle
window."); the exact count depends on the Python version, which :meth:`TextSplits.record`
records with a hash of every split.

:func:`read_sentences` takes a user's own text file instead (one sentence per line, or running
prose split the same way). :func:`split_sentences` assigns each sentence to train, validation or
test by a hash of its text: the split of a sentence never depends on which other sentences are
there, so it is the same on every machine that has that sentence.

>>> rows = [f"Sentence number {i} is a short one." for i in range(60)]
>>> s = split_sentences(rows + rows[:5], name="toy")   # duplicates removed
>>> len(s.train) + len(s.valid) + len(s.test), len(s.test)
(60, 5)
"""

from __future__ import annotations

import ast
import hashlib
import re
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archlearn.errors import ArchlearnError

if TYPE_CHECKING:
    import torch

__all__ = ["TextSplits", "dedupe", "digest", "length_batches", "length_chunks", "load_text",
           "package_sentences", "pad", "prose_sentences", "read_sentences", "split_sentences",
           "stdlib_sentences"]

# a sentence ends at . ! or ? followed by white space and a capital letter
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_SKIP_DIRS = {"site-packages", "test", "tests", "idle_test"}
MIN_WORDS, MAX_WORDS = 5, 60


@dataclass(frozen=True)
class TextSplits:
    """A fixed train/validation/test split of sentences, and how it was made.

    >>> s = TextSplits("toy", ["a b"], ["c d"], ["e f"], "toy sentences")
    >>> s.record()["sizes"]
    {'train': 1, 'valid': 1, 'test': 1}
    """

    name: str
    train: list[str]
    valid: list[str]
    test: list[str]
    description: str

    def record(self) -> dict:
        """What a results file records: the source, the sizes and a hash of each split."""
        return {
            "name": self.name,
            "split": self.description,
            "sizes": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
            "sha256": {"train": digest(self.train), "valid": digest(self.valid),
                       "test": digest(self.test)},
        }


def digest(rows: Sequence[str]) -> str:
    """The first 16 hex digits of the SHA-256 of ``rows`` joined by newlines: how a results
    file names a set of sentences.

    >>> digest(["One sentence.", "Another one."])
    'd0819a6c0d4b15c3'
    """
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def prose_sentences(text: str) -> list[str]:
    """The sentences of the prose paragraphs of ``text`` (a docstring or documentation page).

    Paragraphs (separated by blank lines) with an indented line or a ``>>>`` prompt are code or
    argument lists, not prose, and are skipped. A sentence is kept when it has 5 to 60 words,
    starts with a capital letter, ends with ``.``, ``!`` or ``?`` and is at least 85% letters
    and spaces (no code fragments).

    >>> prose_sentences("Return the sum. It adds the numbers given.\\n\\n    >>> f(1)\\n")
    ['It adds the numbers given.']
    """
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = para.strip("\n").split("\n")
        if ">>>" in para or any(line.startswith((" ", "\t")) for line in lines):
            continue
        for sentence in _BOUNDARY.split(" ".join(line.strip() for line in lines)):
            if _is_sentence(sentence.strip()):
                out.append(sentence.strip())
    return out


def _is_sentence(s: str) -> bool:
    words = len(s.split())
    if not (MIN_WORDS <= words <= MAX_WORDS) or not s[0].isupper() or s[-1] not in ".!?":
        return False
    return sum(c.isalpha() or c == " " for c in s) >= 0.85 * len(s)


def _docstrings(path: Path) -> Iterable[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return  # a few stdlib files are test fixtures in other encodings or syntax
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def _reference_topics(root: Path) -> Iterable[str]:
    """The language reference pages ``help("topic")`` shows (a dict literal, read by ast)."""
    path = root / "pydoc_data" / "topics.py"
    if not path.is_file():
        return
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            yield from ast.literal_eval(node.value).values()


def dedupe(sentences: Iterable[str]) -> list[str]:
    """Unique sentences (white space normalised), sorted, so the result is order-free.

    >>> dedupe(["b  c.", "a.", "b c."])
    ['a.', 'b c.']
    """
    return sorted({_normal(s) for s in sentences})


def stdlib_sentences(root: str | Path | None = None) -> list[str]:
    """Unique English sentences from the docstrings and reference text of the standard library.

    ``root`` defaults to the running Python's stdlib folder; tests and site-packages are left
    out.
    """
    base = Path(root) if root is not None else Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    for path in sorted(base.rglob("*.py")):
        if not _SKIP_DIRS & set(path.relative_to(base).parts):
            texts.extend(_docstrings(path))
    texts.extend(_reference_topics(base))
    return dedupe(s for text in texts for s in prose_sentences(text))


def package_sentences(count: int, *, exclude: Iterable[str] = (),
                      root: str | Path | None = None) -> list[str]:
    """Up to ``count`` unique English sentences from the docstrings of the installed packages.

    More unlabelled text for distillation, where a student of a pre-trained encoder otherwise
    overfits its few thousand sentences. The ``.py`` files of ``root`` (default: the running
    Python's site-packages; tests left out) are read in the order of a SHA-256 hash of their
    path, until ``count`` sentences are found, so the same packages give the same sentences on
    every machine; sentences in ``exclude`` (a corpus's validation and test splits) are never
    taken. Which packages are installed decides the text: a job records the count and a hash.

    >>> len(package_sentences(50))                        # doctest: +SKIP
    50
    """
    base = Path(root) if root is not None else Path(sysconfig.get_paths()["purelib"])
    files = [p for p in base.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(base).parts)]
    files.sort(key=lambda p: hashlib.sha256(p.relative_to(base).as_posix().encode()).digest())
    held = {_normal(s) for s in exclude}
    found: set[str] = set()
    for path in files:
        if len(found) >= count:
            break
        for doc in _docstrings(path):
            found.update(s for s in map(_normal, prose_sentences(doc)) if s not in held)
    # the last file may overshoot: the cut is by hash, not by where a sentence was found
    return sorted(sorted(found, key=lambda s: hashlib.sha256(s.encode()).digest())[:count])


def _normal(sentence: str) -> str:
    return " ".join(sentence.split())


def read_sentences(path: str | Path) -> list[str]:
    """Unique sentences of a user's UTF-8 text file.

    A file whose non-empty lines all look like sentences is read one sentence per line; any
    other file is read as prose (paragraphs split into sentences as :func:`prose_sentences`
    does, without its code filters). Lines shorter than 5 or longer than 60 words are dropped.
    """
    p = Path(path)
    if not p.is_file():
        raise ArchlearnError(f"text file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArchlearnError(f"text file {p} is not UTF-8: {exc}") from None
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    pieces = lines if all(line[-1] in ".!?" for line in lines) else [
        s for para in re.split(r"\n\s*\n", text)
        for s in _BOUNDARY.split(" ".join(para.split()))]
    sentences = dedupe(s for s in pieces if MIN_WORDS <= len(s.split()) <= MAX_WORDS)
    if not sentences:
        raise ArchlearnError(f"text file {p} has no sentence of {MIN_WORDS} to {MAX_WORDS} words")
    return sentences


def _bucket(sentence: str) -> int:
    return int.from_bytes(hashlib.sha256(sentence.encode()).digest()[:8], "big") % 100


def split_sentences(sentences: Iterable[str], *, name: str, valid: int = 10, test: int = 10,
                    source: str = "") -> TextSplits:
    """Deduplicate and split: ``valid`` and ``test`` percent by a SHA-256 bucket of each text.

    A sentence lands in bucket ``sha256(text) mod 100``: buckets below ``test`` are the test
    split, the next ``valid`` the validation split, the rest train. Each split is sorted.
    """
    if not (0 < valid and 0 < test and valid + test < 100):
        raise ArchlearnError(f"valid and test percentages must be positive and sum below 100, "
                             f"got {valid} and {test}")
    parts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for s in dedupe(sentences):
        b = _bucket(s)
        parts["test" if b < test else "valid" if b < test + valid else "train"].append(s)
    if not all(parts.values()):
        sizes = {k: len(v) for k, v in parts.items()}
        raise ArchlearnError(f"{name}: too few sentences for a train/valid/test split ({sizes})")
    description = (f"{source}{'; ' if source else ''}unique sentences, split by sha256(text) mod "
                   f"100: < {test} test, < {test + valid} validation, the rest train")
    return TextSplits(name, parts["train"], parts["valid"], parts["test"], description)


def load_text(path: str | Path | None = None) -> TextSplits:
    """The stdlib corpus (``path=None``) or a user's text file, split train/valid/test.

    >>> s = load_text()                                   # doctest: +SKIP
    >>> len(s.train), len(s.valid), len(s.test)           # doctest: +SKIP
    (10978, 1368, 1348)
    """
    if path is None:
        version = ".".join(map(str, sys.version_info[:3]))
        return split_sentences(
            stdlib_sentences(), name=f"python-{version}-stdlib-docs",
            source=f"docstrings and reference topics of the Python {version} standard library")
    return split_sentences(read_sentences(path), name=Path(path).name,
                           source=f"the text file {Path(path).name}")


def length_groups(lengths: Sequence[int], batch_size: int, steps: int, seed: int, *,
                  pool: int = 50) -> list[list[int]]:
    """``steps`` batches of row indices, grouped by length, seeded.

    Each epoch shuffles the rows (``random.Random(seed + epoch)``), sorts each run of
    ``pool * batch_size`` rows by length and cuts it into batches, then shuffles the batches:
    sentences of similar length share a batch, so little compute goes to padding, and the
    order is still random. Epochs follow one another until there are ``steps`` batches.

    >>> length_groups([2, 1, 3], batch_size=2, steps=3, seed=0)
    [[2], [1, 0], [1, 0]]
    """
    import random

    if batch_size < 1 or steps < 1 or not lengths:
        raise ArchlearnError(f"need rows, batch_size >= 1 and steps >= 1 (got {len(lengths)} "
                             f"rows, batch_size={batch_size}, steps={steps})")
    out: list[list[int]] = []
    epoch = 0
    while len(out) < steps:
        rng = random.Random(seed * 1_000_003 + epoch)
        order = list(range(len(lengths)))
        rng.shuffle(order)
        cut: list[list[int]] = []
        for start in range(0, len(order), batch_size * pool):
            run = sorted(order[start:start + batch_size * pool], key=lambda i: lengths[i])
            cut += [run[i:i + batch_size] for i in range(0, len(run), batch_size)]
        rng.shuffle(cut)
        out += cut[:steps - len(out)]
        epoch += 1
    return out


def length_batches(rows: Sequence[Sequence[int]], batch_size: int, steps: int, seed: int,
                   *, pad_id: int = 0, pool: int = 50) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` padded batches ``(input_ids, attention_mask)`` of token-id rows, seeded: the
    batches of :func:`length_groups`, padded.

    >>> b = length_batches([[1, 2], [3], [4, 5, 6]], batch_size=2, steps=3, seed=0)
    >>> len(b), sorted(tuple(ids.shape) for ids, _ in b)[0]
    (3, (1, 3))
    """
    groups = length_groups([len(r) for r in rows], batch_size, steps, seed, pool=pool)
    return [pad([rows[i] for i in g], pad_id) for g in groups]


def length_chunks(rows: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Row indices sorted by length and cut into chunks of ``batch_size``: batches for a pass
    over every row (an evaluation, a teacher's outputs) that pad as little as possible.

    >>> length_chunks([[1, 2, 3], [4], [5, 6]], batch_size=2)
    [[1, 2], [0]]
    """
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad(rows: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of rows padded on the right to the longest.

    >>> pad([[5, 6], [7]])
    (tensor([[5, 6],
            [7, 0]]), tensor([[1, 1],
            [1, 0]]))
    """
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask
