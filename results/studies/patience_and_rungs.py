"""What patience and which rungs the 30-epoch study should use, read from the 12-epoch studies.

    python results/studies/patience_and_rungs.py > results/studies/patience_and_rungs.txt

1. Rungs: Spearman correlation between a trial's valid accuracy at each epoch and its best valid
   accuracy, over the trials that ran 6 epochs or more.
2. Patience: for every learning curve trained without early stopping (the studies' retrains and
   the 3-seed preset comparison), the longest run of epochs without a new best valid accuracy
   before the curve's best epoch. A patience no longer than that would have stopped the curve early.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from sentiment_core.tuning import make_storage  # noqa: E402
from sentiment_core.tuning.rungs import epoch_values  # noqa: E402


def longest_drought_before_best(curve: list[float]) -> int:
    best_at = int(np.argmax(curve))
    best, run, longest = -1.0, 0, 0
    for value in curve[: best_at + 1]:
        if value > best:
            best, run = value, 0
        else:
            run += 1
            longest = max(longest, run)
    return longest


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    curves = {}
    for name in ("lstm-basic-accuracy", "lstm-extended-accuracy-gap"):
        study = optuna.load_study(study_name=name, storage=make_storage(f"journal:{HERE / (name + '.journal')}"))
        trials = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED") and epoch_values(t)]
        print(f"{name}: Spearman of valid accuracy at epoch e vs best valid accuracy (trials that ran >= 6 epochs)")
        for epoch in range(1, 13):
            pairs = [(v[epoch], max(v.values())) for t in trials if epoch in (v := epoch_values(t)) and len(v) >= 6]
            if len(pairs) > 4:
                rho = spearmanr(*zip(*pairs))[0]
                print(f"  epoch {epoch:2d}: {rho:+.2f} over {len(pairs)}")
        for key, kept in study.user_attrs.items():
            if key.startswith("retrain:"):
                curves[f"{name} {key}"] = [h["valid_acc"] for h in kept["history"]]
    histories = pd.read_csv(HERE.parent / "presets" / "compare-20261129-123722" / "histories.csv")
    for (model, seed), group in histories.groupby(["model", "seed"]):
        curves[f"presets {model} seed {seed}"] = group.sort_values("epoch")["valid_acc"].tolist()
    print(f"\nlongest drought before the best epoch, {len(curves)} curves trained without early stopping:")
    droughts = {label: longest_drought_before_best(curve) for label, curve in curves.items()}
    for label, drought in droughts.items():
        print(f"  {drought}  {label} (best epoch {int(np.argmax(curves[label])) + 1} of {len(curves[label])})")
    print(f"longest: {max(droughts.values())}, in {sum(d == max(droughts.values()) for d in droughts.values())} "
          f"of {len(droughts)} curves")


if __name__ == "__main__":
    main()
