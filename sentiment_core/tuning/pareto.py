"""Two-objective studies: the Pareto front of (best valid accuracy, honest gap) and the trial we
recommend from it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

# Seed noise alone moves valid accuracy by about a point (NOTES.md): front trials closer than
# this to the most accurate one are treated as equally accurate, and the smallest gap decides.
ACCURACY_TOLERANCE = 0.005


def recommend(study: optuna.Study, leave_out: Callable[[FrozenTrial], bool] = lambda trial: False
              ) -> tuple[FrozenTrial | None, str]:
    """The trial to retrain and use, and why, among the complete trials that ``leave_out`` keeps
    (None when it keeps none). One objective: the best trial. Two: among the Pareto trials within
    ACCURACY_TOLERANCE of the front's best valid accuracy, the smallest gap."""
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if not leave_out(t)]
    if not trials:
        return None, "no complete trial"
    if len(study.directions) == 1:
        sign = 1 if study.direction == StudyDirection.MAXIMIZE else -1
        best = max(trials, key=lambda t: sign * t.value)  # the first of equals, as Study.best_trial
        return best, f"highest best valid accuracy ({best.value:.2%})"
    front = pareto_trials(trials, study.directions)
    top = max(t.values[0] for t in front)
    close = [t for t in front if t.values[0] >= top - ACCURACY_TOLERANCE]
    chosen = min(close, key=lambda t: (t.values[1], -t.values[0]))
    return chosen, (f"smallest honest gap ({chosen.values[1] * 100:.2f} pts) among the {len(close)} Pareto trial(s) "
                    f"within {ACCURACY_TOLERANCE * 100:.1f} points of the front's best valid accuracy ({top:.2%}); "
                    f"its valid accuracy {chosen.values[0]:.2%}")


def pareto_trials(trials: list[FrozenTrial], directions: list[StudyDirection]) -> list[FrozenTrial]:
    """The trials no other trial dominates (as ``Study.best_trials``, but of any subset: the
    runner-up's front is the front of the trials without the recommended setting)."""
    signs = [1 if d == StudyDirection.MAXIMIZE else -1 for d in directions]

    def dominates(a: FrozenTrial, b: FrozenTrial) -> bool:
        pairs = [(s * x, s * y) for s, x, y in zip(signs, a.values, b.values)]
        return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)

    return [t for t in trials if not any(dominates(o, t) for o in trials)]


def front_frame(frame: pd.DataFrame, study: optuna.Study) -> pd.DataFrame:
    numbers = {t.number for t in study.best_trials}
    return frame[frame.trial.isin(numbers)].sort_values("best_valid_acc", ascending=False)


def plot_front(frame: pd.DataFrame, front: pd.DataFrame, recommended: int, path: Path) -> Path:
    """Every finished trial as (gap, valid accuracy); the front joined; the recommended one ringed."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for state, marker, colour in (("COMPLETE", "o", "tab:blue"), ("PRUNED", "x", "tab:grey")):
        part = frame[(frame.state == state) & frame.gap_at_best_valid.notna()]
        ax.scatter(part.gap_at_best_valid * 100, part.best_valid_acc * 100, marker=marker, color=colour,
                   alpha=0.7, label=state.lower() + (" (at the epoch it stopped)" if state == "PRUNED" else ""))
    line = front.sort_values("gap_at_best_valid")
    ax.step(line.gap_at_best_valid * 100, line.best_valid_acc * 100, where="post", color="tab:red",
            marker="o", label="Pareto front")
    pick = frame[frame.trial == recommended]
    ax.scatter(pick.gap_at_best_valid * 100, pick.best_valid_acc * 100, s=220, facecolors="none",
               edgecolors="black", lw=1.5, label=f"recommended (trial {recommended})")
    ax.set_xlabel("honest gap at best valid: train (eval mode) - valid accuracy (points)")
    ax.set_ylabel("best valid accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
