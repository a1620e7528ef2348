"""Does stronger regularization pay off with a longer budget? Best valid accuracy against dropout
in the 12-epoch and the 30-epoch basic studies, side by side (complete trials; pruned ones hollow).

    python results/studies/budget_12_vs_30.py     # writes docs/study_basic_12_vs_30_epochs.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
from matplotlib.figure import Figure

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from sentiment_core.tuning import make_storage  # noqa: E402
from sentiment_core.tuning.rungs import REFERENCE_ATTR, epoch_values  # noqa: E402

STUDIES = {"12 epochs (bf16, Intel AMX)": "lstm-basic-accuracy",
           "30 epochs (fp32, AMD EPYC)": "lstm-basic-accuracy-30-epochs"}


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True, sharex=True)
    for ax, (title, name) in zip(axes, STUDIES.items()):
        study = optuna.load_study(study_name=name, storage=make_storage(f"journal:{HERE / (name + '.journal')}"))
        finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED") and epoch_values(t)]
        for state in ("COMPLETE", "PRUNED"):
            trials = [t for t in finished if t.state.name == state]
            colors = ["tab:orange" if t.params.get("weight_decay_on") else "tab:blue" for t in trials]
            ax.scatter([t.params["dropout"] for t in trials], [max(epoch_values(t).values()) * 100 for t in trials],
                       facecolors=colors if state == "COMPLETE" else "none", edgecolors=colors,
                       label=f"{state.lower()} ({len(trials)})")
        seed = [t for t in finished if REFERENCE_ATTR in t.user_attrs]
        if seed:
            ax.scatter([0.6], [max(epoch_values(seed[0]).values()) * 100], marker="*", s=250, color="tab:red",
                       label="seed setting", zorder=3)
        ax.set_title(f"{title}: {len(finished)} finished trials")
        ax.set_xlabel("embedding dropout")
        ax.set_xlim(-0.02, 0.82)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("best valid accuracy (%)  [orange: with weight decay]")
    axes[0].set_ylim(bottom=max(50, axes[0].get_ylim()[0]))
    out = HERE.parents[1] / "docs" / "study_basic_12_vs_30_epochs.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
