"""Tokenizers and the vocabulary (what torchtext's Field and build_vocab used to do)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

UNK, PAD = "<unk>", "<pad>"

_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Words (with inner apostrophes: don't, it's) or single punctuation marks.
_BASIC_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")


def split_tokenizer(text: str) -> list[str]:
    """The seed's tokenizer: lowercase, split on single spaces (empty strings dropped)."""
    return [token for token in text.lower().split(" ") if token]


def strip_markup(text: str) -> str:
    """Lowercase and drop the ``<br />`` markup of IMDB reviews."""
    return _BREAK_TAG.sub(" ", text.lower())


def basic_tokenizer(text: str) -> list[str]:
    """Lowercase, drop ``<br />`` markup, separate punctuation from words."""
    return _BASIC_TOKEN.findall(strip_markup(text))


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {"split": split_tokenizer, "basic": basic_tokenizer}


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise UserError(f"unknown tokenizer {name!r}: choose one of {', '.join(TOKENIZERS)}") from None


@dataclass
class Vocabulary:
    """Index <-> token. Index 0 is ``<unk>`` and 1 is ``<pad>``, as in the seed's torchtext vocab."""

    itos: list[str]

    def __post_init__(self):
        if self.itos[:2] != [UNK, PAD]:
            raise UserError("a vocabulary must start with <unk>, <pad>")
        self.stoi = {token: index for index, token in enumerate(self.itos)}

    @property
    def unk_index(self) -> int:
        return 0

    @property
    def pad_index(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], max_size: int = 25_000, min_freq: int = 1) -> Vocabulary:
        """The ``max_size`` most frequent tokens seen at least ``min_freq`` times, plus specials.

        Ties are broken alphabetically so the vocabulary does not depend on iteration order.
        """
        if max_size < 1 or min_freq < 1:
            raise UserError(f"max_vocab_size and min_freq must be >= 1, got {max_size} and {min_freq}")
        counts = Counter(token for tokens in token_lists for token in tokens)
        ranked = sorted((item for item in counts.items() if item[1] >= min_freq), key=lambda kv: (-kv[1], kv[0]))
        return cls([UNK, PAD] + [token for token, _ in ranked[:max_size]])

    def encode(self, tokens: list[str]) -> list[int]:
        get = self.stoi.get
        return [get(token, 0) for token in tokens]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"itos": self.itos}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            return cls(json.loads(Path(path).read_text())["itos"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot read vocabulary {path}: {exc}") from None
