"""The study's report: optimization history, importances (for accuracy and for the gap), the
landscape, the Pareto front of two-objective studies, what pruning saved, and (after retraining)
the seed setting vs the recommended one over several seeds.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.trial import TrialState

from .. import reporting
from ..comparison.arms import predict_lines
from ..comparison.seeds import AutoSeeds, met_target, planning_line
from ..system.folders import private_folder
from ..tracking.runs import RunTracker
from ..tracking.store import browse_lines
from . import pareto
from .budget import budget_frame, budget_lines, plot_budget, seed_band
from .report_plots import plot_history, plot_importances, plot_landscape, plot_slices
from .retraining import retrain, retrain_until
from .rungs import REFERENCE_ATTR, RERUN_ATTR, RungPruner, epoch_values, judged_margin
from .space import config_values


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: the config values it trained (whichever space), its scores and epochs."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        intermediate = epoch_values(t)
        rows.append({
            "trial": t.number, "state": t.state.name, **config_values(t.params),
            "best_valid_acc": t.values[0] if t.values else (max(intermediate.values()) if intermediate else None),
            "gap_at_best_valid": t.user_attrs.get("gap_at_best_valid"),
            "epochs": len(intermediate),
            "test_acc_at_best_valid": t.user_attrs.get("test_acc_at_best_valid"),
            "seed_margin": judged_margin(t),  # None: judged before the margin existed
            "rerun_of": t.user_attrs.get(RERUN_ATTR),
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
        })
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["rerun_of"] = frame["rerun_of"].astype("Int64")
    if len(frame) and "embedding_dropout" in frame and "output_dropout" not in frame:
        frame = frame.rename(columns={"embedding_dropout": "dropout"})  # the basic space's one dropout
    return frame


def rung_check(study: optuna.Study, pruner: RungPruner, max_epochs: int, path: Path) -> list[str]:
    """Does a rung's valid accuracy predict where a trial ends? For each rung, the trials that
    went on past it and then completed or reached the next rung: valid accuracy at the rung
    against best valid accuracy, with Spearman's rank correlation; the seed setting is starred. A
    correlation near 0 means that ranking there prunes blindly (what the seed margin is for)."""
    rows = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        values = epoch_values(trial)
        if not values:
            continue
        last, best = max(values), max(values.values()) * 100
        for rung in pruner.rungs(max_epochs):
            went_on = last > rung and (trial.state == TrialState.COMPLETE or last >= rung * pruner.reduction)
            if rung in values and went_on:
                rows.append({"rung": rung, "at_rung": values[rung] * 100, "best": best,
                             "seed": REFERENCE_ATTR in trial.user_attrs})
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    groups = list(frame.groupby("rung"))
    fig = Figure(figsize=(4.5 * len(groups), 4))
    lines = []
    for ax, (rung, part) in zip(fig.subplots(1, len(groups), squeeze=False)[0], groups):
        rho = part.at_rung.corr(part.best, method="spearman") if len(part) >= 3 else float("nan")
        lines.append(f"rung check, epoch {rung}: valid accuracy there vs best valid accuracy, Spearman {rho:+.2f} "
                     f"over {len(part)} trial(s) that went on past it to the end or to the next rung")
        ax.scatter(part.at_rung[~part.seed], part.best[~part.seed], label="trials")
        ax.scatter(part.at_rung[part.seed], part.best[part.seed], marker="*", s=200, color="tab:red",
                   label="seed setting")
        ax.set_title(f"epoch {rung} (Spearman {rho:+.2f}, n={len(part)})")
        ax.set_xlabel(f"valid accuracy at epoch {rung} (%)")
        ax.set_ylabel("best valid accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return lines


# fANOVA fits a random forest to the trials: with fewer points its importances are noise (and
# importing scikit-learn for them costs a small study's report most of a second).
MIN_TRIALS_FOR_IMPORTANCES = 5


def importances_of(study: optuna.Study) -> dict[str, dict]:
    """Param importances for best valid accuracy and for the honest gap (whatever the objective:
    the gap is a user attr of every trial). Empty when fewer than MIN_TRIALS_FOR_IMPORTANCES
    trials completed."""
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < MIN_TRIALS_FOR_IMPORTANCES:
        return {}
    targets = {"best valid accuracy": lambda t: t.values[0],
               "honest gap": lambda t: t.user_attrs.get("gap_at_best_valid", float("nan"))}
    found = {}
    for name, target in targets.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found[name] = optuna.importance.get_param_importances(study, target=target)
        except (RuntimeError, ValueError, ZeroDivisionError):
            continue
    return found


def pruning_summary(frame: pd.DataFrame, max_epochs: int) -> tuple[str, dict]:
    """How many epochs trials trained, and how many pruning saved against running every pruned
    trial to the last epoch (an upper bound: early stopping might have ended some sooner)."""
    trained = int(frame.epochs.sum())
    pruned = frame[frame.state == "PRUNED"]
    saved = int((max_epochs - pruned.epochs).clip(lower=0).sum())
    at = pruned.epochs.value_counts().sort_index()
    where = ", ".join(f"{n} at epoch {e}" for e, n in at.items())
    line = (f"epochs trained: {trained}; pruned {len(pruned)} trial(s) ({where or 'none'}), saving up to {saved} "
            f"epochs ({saved / max(trained + saved, 1):.0%} of what running them to epoch {max_epochs} would cost)")
    return line, {"epochs_trained": trained, "epochs_saved_by_pruning": saved, "trials_pruned": len(pruned)}


def duration(seconds: float) -> str:
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{seconds / 60:.1f} min"


def time_summary(study: optuna.Study) -> tuple[str, dict]:
    """Time the complete and pruned trials took: the sum of their durations (the study's wall time
    when one worker ran it, however many sessions it spanned) and the epochs per hour that makes.
    Failed trials are left out: a killed worker's trial ends when the next command notices."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    epochs = sum(len(epoch_values(t)) for t in done)
    line = (f"time in trials: {duration(seconds)} for {len(done)} complete or pruned trial(s), {epochs} epochs "
            f"({epochs / max(seconds / 3600, 1e-9):.0f} epochs per hour)")
    return line, {"trial_hours": seconds / 3600}


def retrain_seconds(groups: dict[str, list]) -> float:
    return sum(sum(r["epoch_seconds"] for r in run.result.history) for runs in groups.values() for run in runs)


def seed_vs_tuned_table(groups: dict[str, list]) -> pd.DataFrame:
    rows = []
    for label, runs in groups.items():
        summaries = [r.result.summary for r in runs if r.result.summary]
        config = runs[0].config
        rows.append({
            "configuration": label, "embedding dropout": round(config.embedding_dropout, 4),
            "output dropout": round(config.output_dropout, 4), "word dropout": round(config.word_dropout, 4),
            "weight drop": round(config.weight_drop, 4), "weight_decay": f"{config.weight_decay:.2e}",
            "optimizer": config.optimizer,
            "seeds": len(summaries),
            "best valid acc %": reporting.mean_spread(s["best_valid_acc"] for s in summaries),
            "test acc at best valid %": reporting.mean_spread(s["test_acc_at_best_valid"] for s in summaries),
            "gap at best valid pts": reporting.mean_spread(s["gap_at_best_valid"] for s in summaries),
            "final gap (last epoch) pts": reporting.mean_spread(
                r.result.history[-1]["generalization_gap"] for r in runs if r.result.history),
            "test acc at last epoch %": reporting.mean_spread(s["final_test_acc"] for s in summaries),
            "best epoch per seed": " ".join(str(s["best_epoch"]) for s in summaries),
        })
    return pd.DataFrame(rows)


PAIRED_METRICS = {"best_valid_acc": "best valid acc", "test_acc_at_best_valid": "test acc at best valid",
                  "gap_at_best_valid": "train-valid gap at best valid",
                  "final_test_acc": "test acc at the last epoch", "final_gap": "train-valid gap at the last epoch"}


def paired_seed_differences(groups: dict[str, list], label: str, auto: AutoSeeds | None = None) -> list[str]:
    """``label``'s configuration minus the seed configuration, paired by training seed (both use
    the same seeds), with a 95% t-interval (3 or more seeds) and the planning line; ``auto``: the
    rule that stopped the seeds on its target, whose fixed-width interval is added."""
    diffs = {name: reporting.paired_by_seed(groups, label, "seed config", key) for key, name in PAIRED_METRICS.items()}
    test = diffs[PAIRED_METRICS["test_acc_at_best_valid"]]
    seeds = test["seeds"]
    per_seed = retrain_seconds(groups) / len(seeds) if seeds else None
    planning = [f"  {planning_line(test['diffs'], per_seed)} (test acc at best valid)"] if len(seeds) >= 2 else []
    if len(seeds) < 3:
        return [f"\n{label} - seed config: no paired interval from {len(seeds)} seed(s); --retrain-best 3 or more "
                "adds one", *planning]
    fixed = []
    if auto is not None:
        low, high = auto.interval(test, stopped_by_target=True)
        fixed = [f"  test acc at best valid, the auto rule's fixed-width 95% interval: {low * 100:+.2f} to "
                 f"{high * 100:+.2f} points (mean +- {auto.target:g})"]
    return [f"\n{label} - seed config, paired over seeds {', '.join(map(str, seeds))}:"] + [
        f"  {name}: {reporting.describe_difference(diff)}" for name, diff in diffs.items()] + fixed + planning


def challenger_of(study: optuna.Study, recommended: optuna.trial.FrozenTrial, seed_params: dict
                  ) -> tuple[str | None, optuna.trial.FrozenTrial | None, str | None]:
    """What the retrains set against the seed setting, as (label, trial, line for the report): the
    recommended trial ("tuned"), or, when that is the seed setting itself, the one the same rule
    picks from the other settings ("runner-up"). One seed's lead is within seed noise (about a
    point, NOTES.md): only the paired retrains say whether the seed setting really is the best
    found, or only the luckiest."""
    def is_seed(trial) -> bool:
        return config_values(trial.params) == config_values(seed_params)

    if not is_seed(recommended):
        return "tuned", recommended, None
    runner_up, why = pareto.recommend(study, leave_out=is_seed)
    if runner_up is None:
        return None, None, ("\nthe recommended trial is the seed setting itself, and no other setting completed: "
                            "nothing to set against it")
    return "runner-up", runner_up, (
        f"\nthe recommended trial is the seed setting itself; set against it: the runner-up, trial "
        f"{runner_up.number}, which the same rule picks from the other settings: {why}")


def report(spec, study: optuna.Study, client, experiment_id: str, parent_run_id: str) -> None:
    out = Path(spec.output_dir or spec.repo_root / "outputs") / f"study-{spec.study_name}"
    parent = RunTracker(client, parent_run_id)
    # Every worker of a study writes this report: each into a folder of its own, uploaded from
    # there, then moved into `out` file by file (system/folders.py says why).
    with private_folder(out) as folder:
        metrics = write_report(spec, study, client, experiment_id, parent_run_id, folder)
        for path in sorted(folder.iterdir()):
            parent.log_artifact(path, "report")
    parent.log_metrics(metrics, step=metrics["n_trials"])
    print(f"\nreport and plots: {out}")
    print(browse_lines(client.tracking_uri, experiment_id))


def write_report(spec, study: optuna.Study, client, experiment_id: str, parent_run_id: str, out: Path) -> dict:
    """The study's report, tables and plots written into ``out`` (and printed); its summary metrics."""
    frame = trials_frame(study)
    frame.to_csv(out / "trials.csv", index=False)
    counts = frame.state.value_counts().to_dict()
    print(f"\ntrials: {len(frame)} ({', '.join(f'{v} {k.lower()}' for k, v in counts.items())})")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruning_line, pruning_metrics = pruning_summary(frame, spec.config.epochs)
    time_line, time_metrics = time_summary(study)
    lines = [pruning_line, time_line] if len(frame) else []
    recommended = None
    if complete:
        plot_history(frame, out / "optimization_history.png")
        if spec.space.kind == "basic":
            plot_landscape(frame, out / "landscape_dropout_weight_decay.png", spec.space.weight_decay[0])
        else:
            plot_slices(frame, ["embedding_dropout", "output_dropout", "word_dropout", "weight_drop", "weight_decay",
                                "optimizer"], out / "landscape_slices.png")
        importances = importances_of(study)
        if importances:
            plot_importances(importances, out / "param_importances.png")
            for target, values in importances.items():
                lines.append(f"importances for {target}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
        elif len(complete) < MIN_TRIALS_FOR_IMPORTANCES:
            lines.append(f"parameter importances: not yet ({len(complete)} complete trial(s); they need "
                         f"{MIN_TRIALS_FOR_IMPORTANCES})")
        recommended, why = pareto.recommend(study)
        knobs = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in config_values(recommended.params).items())
        lines.append(f"recommended trial {recommended.number}: {why}; {knobs} "
                     f"(MLflow run {recommended.user_attrs.get('mlflow_run_id')})")
        if len(study.directions) > 1:
            front = pareto.front_frame(frame, study)
            front.drop(columns=["mlflow_run_id"]).to_csv(out / "pareto_front.csv", index=False)
            pareto.plot_front(frame, front, recommended.number, out / "pareto_front.png")
            lines.append("\nPareto front (max best valid accuracy, min honest gap):\n"
                         + reporting.markdown_table(front.drop(columns=["mlflow_run_id"]).dropna(axis=1, how="all")))
        if (rungs := spec.rungs()) is not None:
            lines.extend(rung_check(study, rungs, spec.config.epochs, out / "rung_check.png"))
        shown = frame[frame.state.isin(["COMPLETE", "PRUNED"])].sort_values("best_valid_acc", ascending=False).head(10)
        lines.append("\ntop trials (test accuracy is shown, never used to select):\n" + reporting.markdown_table(shown.drop(columns=["mlflow_run_id"]).dropna(axis=1, how="all")))
    if spec.retrain_best and recommended is not None:
        configurations = {"seed config": spec.space.seed_params}
        label, challenger, line = challenger_of(study, recommended, spec.space.seed_params)
        if line:
            lines.append(line)
        if challenger is not None:
            configurations[label] = challenger.params
        auto = spec.retrain_best if isinstance(spec.retrain_best, AutoSeeds) else None
        stop = None
        if auto is not None:
            groups, stop = retrain_until(spec, study, configurations, client, experiment_id, parent_run_id,
                                         label if challenger is not None else None)
        else:
            groups = retrain(spec, study, configurations, client, experiment_id, parent_run_id)
        title = f"seed config vs {label}" if challenger else "seed config"
        table = seed_vs_tuned_table(groups)
        table.to_csv(out / "seed_vs_tuned.csv", index=False)
        reporting.plot_groups({k: [r.result.history for r in v] for k, v in groups.items()},
                              out / "learning_curves_seed_vs_tuned.png", title=title)
        seeds_each = len(groups["seed config"])
        rule = f"; --retrain-best auto (target +-{auto.target:g} points, at most {auto.max_seeds}): {stop}" if auto else ""
        lines.append(f"\n{title}, {seeds_each} seed(s) each{rule}, "
                     f"{spec.retrain_epochs or spec.config.epochs} epochs ({duration(retrain_seconds(groups))} of "
                     f"training in all):\n" + reporting.markdown_table(table))
        if challenger is not None:
            lines.extend(paired_seed_differences(groups, label, auto if met_target(stop) else None))
        # The newcomer's next step: ask a retrained model (the best-valid seed of each configuration).
        lines.append(predict_lines([(name, run) for name, runs in groups.items() for run in runs if run.result.summary]))
    budget, band = budget_frame(study), seed_band(study)  # the band: the retrains just kept in the study
    lines.extend(budget_lines(budget, band))
    if len(budget):
        plot_budget(budget, band, out / "budget.png", f"what the budget bought: {spec.study_name}")
    text = "\n".join(lines)
    (out / "report.md").write_text(text + "\n")
    print(text)
    metrics = {**pruning_metrics, **time_metrics, "n_trials": len(frame)}
    if recommended is not None:
        metrics["best_valid_acc"] = recommended.values[0]
    return metrics
