"""The study's report: optimization history, importances, the dropout x weight-decay landscape,
and (after retraining) seed vs tuned configuration over several seeds."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.trial import TrialState

from . import reporting, tuning
from .corpus import load_corpus
from .retraining import retrain
from .tracking import RunTracker


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        intermediate = t.intermediate_values
        rows.append({
            "trial": t.number, "state": t.state.name,
            "dropout": t.params.get("dropout"),
            "weight_decay": tuning.weight_decay_of(t.params),
            "best_valid_acc": t.value if t.value is not None else (max(intermediate.values()) if intermediate else None),
            "epochs": len(intermediate),
            "test_acc_at_best_valid": t.user_attrs.get("test_acc_at_best_valid"),
            "gap_at_best_valid": t.user_attrs.get("gap_at_best_valid"),
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
        })
    return pd.DataFrame(rows)


def plot_history(frame: pd.DataFrame, path: Path) -> Path:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        part = frame[frame.state == state]
        ax.scatter(part.trial, part.best_valid_acc * 100, marker=marker, label=state.lower())
    done = frame[frame.state == "COMPLETE"].sort_values("trial")
    if len(done):
        ax.step(done.trial, done.best_valid_acc.cummax() * 100, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("best valid accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_importances(importances: dict, path: Path) -> Path:
    fig = Figure(figsize=(6, 2.8))
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance for best valid accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_landscape(frame: pd.DataFrame, path: Path, low_decay: float) -> Path:
    """Dropout x weight decay, coloured by best valid accuracy. Zero decay has no place on a log
    axis: it is drawn as its own row a decade below the searched range."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    zero_row = low_decay / 10
    scored = frame.dropna(subset=["best_valid_acc"])
    y = scored.weight_decay.where(scored.weight_decay > 0, zero_row)
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        mask = scored.state == state
        points = ax.scatter(scored.dropout[mask], y[mask], c=scored.best_valid_acc[mask] * 100, marker=marker,
                            cmap="viridis", vmin=scored.best_valid_acc.min() * 100,
                            vmax=scored.best_valid_acc.max() * 100, s=50, label=state.lower())
    ax.set_yscale("log")
    ax.axhline(zero_row * 3, color="grey", lw=0.6, ls=":")
    ticks = [t for t in ax.get_yticks() if t > zero_row * 3]
    ax.set_yticks([zero_row] + ticks, ["0 (off)"] + [f"{t:.0e}" for t in ticks])
    ax.set_ylim(zero_row / 2, None)
    ax.set_xlabel("dropout")
    ax.set_ylabel("weight decay")
    if len(scored):
        fig.colorbar(points, ax=ax, label="best valid accuracy (%)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def importances_of(study: optuna.Study) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return {"error": str(exc)}


def seed_vs_tuned_table(groups: dict[str, list]) -> pd.DataFrame:
    rows = []
    for label, runs in groups.items():
        summaries = [r.result.summary for r in runs if r.result.summary]
        config = runs[0].config
        rows.append({
            "configuration": label, "embedding dropout": round(config.embedding_dropout, 4),
            "output dropout": round(config.output_dropout, 4), "weight_decay": f"{config.weight_decay:.2e}",
            "seeds": len(summaries),
            "best valid acc %": reporting.mean_spread(s["best_valid_acc"] for s in summaries),
            "test acc at best valid %": reporting.mean_spread(s["test_acc_at_best_valid"] for s in summaries),
            "gap at best valid pts": reporting.mean_spread(s["gap_at_best_valid"] for s in summaries),
            "final gap (last epoch) pts": reporting.mean_spread(
                r.result.history[-1]["generalization_gap"] for r in runs if r.result.history),
        })
    return pd.DataFrame(rows)


PAIRED_METRICS = {"best_valid_acc": "best valid acc", "test_acc_at_best_valid": "test acc at best valid",
                  "gap_at_best_valid": "train-valid gap at best valid"}


def paired_seed_differences(groups: dict[str, list]) -> list[str]:
    """Tuned minus seed configuration, paired by training seed (both use the same seeds), with a
    95% t-interval; needs 3 or more seeds."""
    diffs = {name: reporting.paired_by_seed(groups, "tuned", "seed config", key) for key, name in PAIRED_METRICS.items()}
    seeds = next(iter(diffs.values()))["seeds"]
    if len(seeds) < 3:
        return []
    return [f"\ntuned - seed config, paired over seeds {', '.join(map(str, seeds))}:"] + [
        f"  {name}: {reporting.describe_difference(diff)}" for name, diff in diffs.items()]


def report(spec, study: optuna.Study, client, experiment_id: str, parent_run_id: str) -> None:
    out = Path(spec.output_dir or spec.repo_root / "outputs") / f"study-{spec.study_name}"
    out.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    frame.to_csv(out / "trials.csv", index=False)
    counts = frame.state.value_counts().to_dict()
    print(f"\ntrials: {len(frame)} ({', '.join(f'{v} {k.lower()}' for k, v in counts.items())})")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    lines = []
    if complete:
        plot_history(frame, out / "optimization_history.png")
        plot_landscape(frame, out / "landscape_dropout_weight_decay.png", spec.space.weight_decay[0])
        importances = importances_of(study)
        if "error" not in importances:
            plot_importances(importances, out / "param_importances.png")
            lines.append("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
        best = study.best_trial
        lines.append(f"best trial {best.number}: valid acc {best.value:.2%}, dropout {best.params['dropout']:.3f}, "
                     f"weight decay {tuning.weight_decay_of(best.params):.2e} "
                     f"(MLflow run {best.user_attrs.get('mlflow_run_id')})")
        shown = frame[frame.state.isin(["COMPLETE", "PRUNED"])].sort_values("best_valid_acc", ascending=False).head(10)
        lines.append("\ntop trials (test accuracy is shown, never used to select):\n" + reporting.markdown_table(shown.drop(columns=["mlflow_run_id"])))
    if spec.retrain_best and complete:
        corpus = load_corpus(spec.config, cache_dir=spec.cache_dir)
        groups = {"seed config": retrain(spec, tuning.SEED_PARAMS, "seed config", client, experiment_id, parent_run_id, corpus)}
        if study.best_trial.params == tuning.SEED_PARAMS:
            # Training is deterministic per seed: retraining the same setting would repeat the runs.
            lines.append("\nthe best trial is the seed setting itself: no configuration beat it, nothing else to retrain")
        else:
            groups["tuned"] = retrain(spec, study.best_trial.params, "tuned", client, experiment_id, parent_run_id, corpus)
        table = seed_vs_tuned_table(groups)
        table.to_csv(out / "seed_vs_tuned.csv", index=False)
        reporting.plot_groups({k: [r.result.history for r in v] for k, v in groups.items()},
                              out / "learning_curves_seed_vs_tuned.png", title="seed config vs tuned")
        lines.append(f"\nseed vs tuned, {spec.retrain_best} seed(s) each, "
                     f"{spec.retrain_epochs or spec.config.epochs} epochs:\n" + reporting.markdown_table(table))
        lines.extend(paired_seed_differences(groups))
    text = "\n".join(lines)
    (out / "report.md").write_text(text + "\n")
    print(text)
    parent = RunTracker(client, parent_run_id)
    for path in sorted(out.iterdir()):
        parent.log_artifact(path, "report")
    if complete:
        parent.log_metrics({"best_valid_acc": study.best_value, "n_trials": len(frame)}, step=len(frame))
    print(f"\nreport and plots: {out}")
