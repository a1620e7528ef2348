"""Tokenized, numericalized splits, cached on disk so repeated runs skip tokenization."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from .splits import Splits
from .text import Vocabulary, get_tokenizer

CACHE_FORMAT = 1


@dataclass
class EncodedSplit:
    """Reviews as one flat token array plus offsets (compact, and saves without pickle)."""

    flat: np.ndarray  # int32 token ids of all reviews, back to back
    offsets: np.ndarray  # int64, len = n + 1
    labels: np.ndarray  # int64, 0 or 1

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def review(self, index: int) -> np.ndarray:
        return self.flat[self.offsets[index] : self.offsets[index + 1]]

    def subset(self, indices: np.ndarray) -> EncodedSplit:
        """The reviews at ``indices``, in that order."""
        parts = [self.review(i) for i in indices]
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        return EncodedSplit(flat, offsets, self.labels[np.asarray(indices, dtype=np.int64)])

    @classmethod
    def from_token_ids(cls, token_ids: list[list[int]], labels: list[int]) -> EncodedSplit:
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.fromiter((i for ids in token_ids for i in ids), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets, np.asarray(labels, dtype=np.int64))


@dataclass
class Corpus:
    vocab: Vocabulary
    train: EncodedSplit
    valid: EncodedSplit
    test: EncodedSplit
    notes: list[str] = field(default_factory=list)
    splits: Splits | None = None  # the raw texts, for dataset logging; not cached

    def items(self):
        return (("train", self.train), ("valid", self.valid), ("test", self.test))


def encode_splits(
    splits: Splits,
    tokenizer: str = "split",
    max_vocab_size: int = 25_000,
    min_freq: int = 1,
    cache_dir: str | Path | None = None,
) -> Corpus:
    """Tokenize, build the vocabulary on train only, numericalize; use the cache when it holds this."""
    key_fields = {
        "format": CACHE_FORMAT,
        "data": splits.digest(),
        "tokenizer": tokenizer,
        "max_vocab_size": max_vocab_size,
        "min_freq": min_freq,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:20]
    cache_path = Path(cache_dir) / f"corpus-{key}.npz" if cache_dir else None
    if cache_path is not None and cache_path.exists():
        corpus = _load(cache_path)
        if corpus is not None:
            corpus.notes = list(splits.notes) + corpus.notes
            corpus.splits = splits
            return corpus

    tokenize = get_tokenizer(tokenizer)
    tokenized = {name: [tokenize(text) for text in split.texts] for name, split in splits.items()}
    vocab = Vocabulary.build(tokenized["train"], max_size=max_vocab_size, min_freq=min_freq)
    encoded, notes = {}, []
    for name, split in splits.items():
        keep = [i for i, tokens in enumerate(tokenized[name]) if tokens]
        if len(keep) < len(split):
            notes.append(f"{name}: skipped {len(split) - len(keep)} review(s) that are empty after tokenization")
        if not keep:
            raise UserError(f"the {name} split has no review left after tokenization; check the data")
        encoded[name] = EncodedSplit.from_token_ids(
            [vocab.encode(tokenized[name][i]) for i in keep], [split.labels[i] for i in keep]
        )
    corpus = Corpus(vocab, encoded["train"], encoded["valid"], encoded["test"], notes)
    if cache_path is not None:
        _save(cache_path, corpus)
    corpus.notes = list(splits.notes) + notes
    corpus.splits = splits
    return corpus


def _save(path: Path, corpus: Corpus) -> None:
    arrays = {"itos": np.array(json.dumps(corpus.vocab.itos, ensure_ascii=False)),
              "notes": np.array(json.dumps(corpus.notes))}
    for name, split in corpus.items():
        arrays[f"{name}_flat"], arrays[f"{name}_offsets"], arrays[f"{name}_labels"] = (
            split.flat, split.offsets, split.labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a concurrent reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load(path: Path) -> Corpus | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            splits = {name: EncodedSplit(data[f"{name}_flat"], data[f"{name}_offsets"], data[f"{name}_labels"])
                      for name in ("train", "valid", "test")}
            vocab = Vocabulary(json.loads(str(data["itos"])))
            notes = json.loads(str(data["notes"]))
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is rebuilt, not fatal
    return Corpus(vocab, splits["train"], splits["valid"], splits["test"], notes)


def load_corpus(config, cache_dir: str | Path | None = None, download: bool = True) -> Corpus:
    """The corpus a :class:`~sentiment_core.training.config.TrainConfig` asks for (data, split, tokens, vocab)."""
    from .sources import load_splits
    from .splits import default_cache_dir

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    splits = load_splits(config.data, seed=config.split_seed, data_dir=config.data_dir, cache_dir=cache_dir,
                         max_examples=config.max_examples, download=download)
    return encode_splits(splits, config.tokenizer, config.max_vocab_size, config.min_freq, cache_dir)
