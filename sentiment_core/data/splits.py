"""Train / valid / test splits of labelled reviews: de-duplication, seeded stratified splits, caps;
and the folder where data and token caches are kept.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class Split:
    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def digest(self) -> str:
        """A content hash: equal digests mean identical texts and labels in the same order."""
        h = hashlib.sha256()
        for text, label in zip(self.texts, self.labels):
            h.update(f"{label}\t{len(text)}\t".encode())
            h.update(text.encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:16]

    def subset(self, indices) -> Split:
        return Split([self.texts[i] for i in indices], [self.labels[i] for i in indices])


@dataclass
class Splits:
    source: str
    train: Split
    valid: Split
    test: Split
    # Things a user should know about the data (skipped files, replaced bytes, ...).
    notes: list[str] = field(default_factory=list)

    def items(self):
        return (("train", self.train), ("valid", self.valid), ("test", self.test))

    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.items()}

    def digest(self) -> str:
        h = hashlib.sha256(self.source.encode())
        for _, split in self.items():
            h.update(split.digest().encode())
        return h.hexdigest()[:16]


# --- splitting -----------------------------------------------------------------------------


def deduplicate(split: Split) -> tuple[Split, int, int]:
    """Drop exact duplicate texts; a text seen with both labels is dropped entirely.

    Returns (split, duplicates_dropped, conflicting_texts_dropped).
    """
    first_label: dict[str, int] = {}
    conflicting: set[str] = set()
    for text, label in zip(split.texts, split.labels):
        previous = first_label.setdefault(text, label)
        if previous != label:
            conflicting.add(text)
    kept = Split([], [])
    seen: set[str] = set()
    for text, label in zip(split.texts, split.labels):
        if text in seen or text in conflicting:
            continue
        seen.add(text)
        kept.texts.append(text)
        kept.labels.append(label)
    conflicting_rows = sum(text in conflicting for text in split.texts)
    return kept, len(split) - len(kept) - conflicting_rows, len(conflicting)


def stratified_partition(labels: list[int], fractions: tuple[float, ...], seed: int) -> list[list[int]]:
    """Shuffle each label's indices with ``seed`` and cut them by ``fractions``."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    labels_array = np.asarray(labels)
    for label in sorted(set(labels)):
        idx = np.flatnonzero(labels_array == label)
        rng.shuffle(idx)
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.extend(chunk.tolist())
    # Sorted so a split's order does not depend on the label loop; batching shuffles anyway.
    return [sorted(part) for part in parts]


def split_three_ways(data: Split, source: str, seed: int) -> Splits:
    data, dupes, conflicts = deduplicate(data)
    train, valid, test = (data.subset(p) for p in stratified_partition(data.labels, (0.7, 0.15, 0.15), seed))
    notes = [f"{source}: removed {dupes} duplicate review(s)"] if dupes else []
    if conflicts:
        notes.append(f"{source}: dropped {conflicts} text(s) that appear with both labels")
    return Splits(source, train, valid, test, notes)


def cap_stratified(split: Split, max_examples: int, seed: int) -> Split:
    """At most ``max_examples`` examples, keeping the label balance."""
    if len(split) <= max_examples:
        return split
    fraction = max_examples / len(split)
    (kept, _) = stratified_partition(split.labels, (fraction, 1 - fraction), seed)
    return split.subset(kept)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sentiment_core"
