"""The main job's curves in the README, redrawn from its committed data (every epoch of both
models, and the TF-IDF yardstick's accuracies), with today's plotting: the honest-gap column too.

    python results/main-default/draw_curves.py     # writes docs/main_job_curves.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from sentiment_core import reporting  # noqa: E402

RUN = HERE / "compare-20261202-193843"


def main() -> None:
    histories = pd.read_csv(RUN / "histories.csv")
    groups = {model: [runs.drop(columns=["model", "seed", "run_id"]).to_dict("records")
                      for _, runs in frame.groupby("seed")]
              for model, frame in histories.groupby("model", sort=False)}
    table = pd.read_csv(RUN / "comparison.csv").set_index("model")
    yardstick = table.loc["tfidf-logreg"]  # accuracies only: its log-losses are in the MLflow run, not here
    references = {"tfidf-logreg": {"train_acc": yardstick["final train acc (eval mode) %"] / 100,
                                   "valid_acc": yardstick["best valid acc %"] / 100,
                                   "test_acc": yardstick["test acc at best valid %"] / 100}}
    out = HERE.parents[1] / "docs" / "main_job_curves.png"
    reporting.plot_groups(groups, out, title="rnn vs lstm, 30 epochs, default recipe (AMD EPYC Zen 2, fp32, seed 1234)",
                          references=references)
    print(out)


if __name__ == "__main__":
    main()
