"""What every renderer of results/render.py shares: the repository, a rendered text with the data
files it comes from, CSV rows, a Markdown table that names its sources, and the committed study
journals (read only)."""

from __future__ import annotations

import csv
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Some tables come from the package's own code (the precision table, study budgets, the auto seed
# rule), imported where they are rendered: the others need no torch.
sys.path.insert(0, str(REPO))
NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "tfidf-logreg": "TF-IDF + logistic regression (yardstick)"}

@dataclass(frozen=True)
class Rendered:
    text: str
    sources: tuple[str, ...]  # repository-relative data files the text comes from


def rows(path: str) -> list[dict[str, str]]:
    with open(REPO / path, newline="") as handle:
        return list(csv.DictReader(handle))


def table(header: list[str], body: list[list[str]], sources: tuple[str, ...]) -> Rendered:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    cited = ", ".join(f"`{source}`" for source in sources)
    lines.append(f"\n(Rendered by `python results/render.py` from {cited}.)")
    return Rendered("\n" + "\n".join(lines) + "\n", sources)


def number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"

STUDIES = "results/studies"


@functools.cache  # several regions read the same journal
def load_study(study_name: str):
    """A committed study journal, read (loading writes nothing)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(REPO / STUDIES / f"{study_name}.journal")))
    return optuna.load_study(study_name=study_name, storage=storage)


def retrains(study_name: str) -> dict[tuple[str, int], dict]:
    """The retrains a committed study journal keeps, by (group, seed)."""
    kept = {}
    for key, record in load_study(study_name).user_attrs.items():
        if key.startswith("retrain:"):
            _, group, seed = key.split(":")
            kept[(group, int(seed.split()[-1]))] = record
    return kept


def key_values(path: str) -> dict[str, str]:
    """A "key: value" file (a timing written around a command) as a dict."""
    return dict(line.split(": ", 1) for line in (REPO / path).read_text().splitlines() if ": " in line)
