"""Two-objective studies, the extended space, the epoch-rung pruner and the study's parent run
when several commands share a study: real Optuna studies, real training, real MLflow stores."""

from __future__ import annotations

import time

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from helpers import ENDLESS, load_study, store, tune
from sentiment_core import reporting
from sentiment_core.tracking.store import open_experiment
from sentiment_core.tuning import pareto
from sentiment_core.tuning.objective import Objective
from sentiment_core.tuning.report import MIN_TRIALS_FOR_IMPORTANCES, challenger_of, importances_of, rung_check
from sentiment_core.tuning.rungs import (
    EPOCH_VALUES_ATTR,
    REFERENCE_ATTR,
    RERUN_ATTR,
    RungPruner,
    epoch_values,
    rerun_spared,
)
from sentiment_core.tuning.space import SEED_PARAMS, SearchSpace, config_values

EXTENDED = {"embedding_dropout", "output_dropout", "word_dropout", "weight_drop", "weight_decay_on", "weight_decay_kind"}


def test_accuracy_gap_study_over_the_extended_space(tmp_path, run_inprocess):
    proc = tune(tmp_path, "--objective", "accuracy-gap", "--space", "extended", "--n-trials", "3", runner=run_inprocess)
    assert proc.returncode == 0, proc.stderr
    study = load_study(tmp_path)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["best_valid_acc", "gap_at_best_valid"]
    trials = study.get_trials()
    assert len(trials) == 3 and trials[0].params == SEED_PARAMS["extended"]
    client = MlflowClient(store(tmp_path))
    for trial in trials:
        assert EXTENDED <= set(trial.params)
        assert ("weight_decay" in trial.params) == trial.params["weight_decay_on"]
        assert trial.state == TrialState.COMPLETE and len(trial.values) == 2
        assert trial.values[1] == pytest.approx(trial.user_attrs["gap_at_best_valid"])
        assert trial.user_attrs["seed_margin"] == 0.03  # the rule that judged it, kept with it
        params = client.get_run(trial.user_attrs["mlflow_run_id"]).data.params
        for name, value in config_values(trial.params).items():  # what trained is what was suggested
            assert params[name] == str(value)
    out = tmp_path / "out" / "study-s"
    assert {"pareto_front.png", "pareto_front.csv", "landscape_slices.png", "trials.csv"} <= {p.name for p in out.iterdir()}
    assert "Pareto front (max best valid accuracy, min honest gap)" in (out / "report.md").read_text()
    assert "recommended trial" in proc.stdout and "pruner asha" in proc.stdout


def test_two_objectives_refuse_a_single_objective_pruner(tmp_path, run_inprocess):
    proc = tune(tmp_path, "--objective", "accuracy-gap", "--pruner", "median", "--n-trials", "1", runner=run_inprocess)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--pruner median needs a single objective" in proc.stderr


def _study_with_rivals(directions: list[str], rung_values=(0.80, 0.82, 0.85), seed_value=None) -> optuna.Study:
    """A real in-memory study holding finished trials that reached 80-85% valid accuracy at epoch 2
    (and, with ``seed_value``, the seed-setting trial first, at that accuracy)."""
    study = optuna.create_study(directions=directions)
    values = ([seed_value] if seed_value is not None else []) + list(rung_values)
    for i, value in enumerate(values):
        per_epoch = {1: value - 0.1, 2: value}
        attrs = {REFERENCE_ATTR: "seed notebook setting"} if seed_value is not None and i == 0 else {}
        if len(directions) == 1:
            trial = optuna.trial.create_trial(values=[value + 0.01], intermediate_values=per_epoch, user_attrs=attrs)
        else:  # as the objective stores them in two-objective studies
            attrs[EPOCH_VALUES_ATTR] = {str(k): v for k, v in per_epoch.items()}
            trial = optuna.trial.create_trial(values=[value + 0.01, 0.05], user_attrs=attrs)
        study.add_trial(trial)
    return study


def test_rung_rule_keeps_the_best_third_from_epoch_2():
    pruner = RungPruner()
    assert pruner.rungs(12) == [2, 6] and pruner.rungs(30) == [2, 6, 18] and pruner.rungs(2) == []
    study = _study_with_rivals(["maximize"])
    assert pruner.judge(study, 99, 2, 0.84, max_epochs=12) == "pruned"  # 4 values at the rung: only the best goes on
    assert pruner.judge(study, 99, 2, 0.86, max_epochs=12) == "ranked in"
    assert pruner.judge(study, 99, 1, 0.10, max_epochs=12) is None  # epoch 1 is never judged
    assert pruner.judge(study, 99, 3, 0.10, max_epochs=12) is None  # nor epochs between rungs
    # Too few trials at the rung to judge (the bootstrap): nobody is stopped there.
    assert pruner.judge(_study_with_rivals(["maximize"], (0.85,)), 99, 2, 0.5, max_epochs=12) == "bootstrap"
    two = _study_with_rivals(["maximize", "minimize"])  # two objectives: the values sit in a user attr
    assert pruner.judge(two, 99, 2, 0.84, max_epochs=12) == "pruned"
    assert pruner.judge(two, 99, 2, 0.86, max_epochs=12) == "ranked in"


@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize"]])
def test_rung_rule_spares_trials_that_track_the_seed_setting(directions):
    # The seed setting learns slowly (78% at epoch 2 against rivals' 80-85%): a trial ranked out
    # there goes on while it is within 3 points of the seed's accuracy at that epoch.
    study = _study_with_rivals(directions, seed_value=0.78)
    pruner = RungPruner()
    assert pruner.judge(study, 99, 2, 0.86, max_epochs=12) == "ranked in"
    assert pruner.judge(study, 99, 2, 0.76, max_epochs=12) == "seed margin"
    assert pruner.judge(study, 99, 2, 0.74, max_epochs=12) == "pruned"
    assert RungPruner(seed_margin=0).judge(study, 99, 2, 0.76, max_epochs=12) == "pruned"  # plain halving
    assert pruner.judge(study, 99, 3, 0.10, max_epochs=12) is None


def _trial_adder(study: optuna.Study):
    """add(dropout, state, {epoch: valid acc}, **user attrs): a finished trial as a two-objective
    study stores it."""
    space = {"embedding_dropout": optuna.distributions.FloatDistribution(0.0, 0.8)}

    def add(dropout, state, per_epoch, **attrs):
        attrs[EPOCH_VALUES_ATTR] = {str(k): v for k, v in per_epoch.items()}
        study.add_trial(optuna.trial.create_trial(
            state=state, params={"embedding_dropout": dropout}, distributions=space, user_attrs=attrs,
            values=[max(per_epoch.values()), 0.05] if state == TrialState.COMPLETE else None))
    return add


def test_trials_pruned_under_another_rule_are_rerun_once_if_the_margin_spares_them():
    study = optuna.create_study(directions=["maximize", "minimize"])
    add = _trial_adder(study)
    add(0.6, TrialState.COMPLETE, {2: 0.74, 6: 0.854, 12: 0.886}, **{REFERENCE_ATTR: "seed notebook setting"})
    add(0.1, TrialState.PRUNED, {2: 0.79, 6: 0.847})  # plain halving cut it at 6; 3 points spare it
    add(0.7, TrialState.PRUNED, {2: 0.60})  # far behind the seed setting: stays pruned
    add(0.5, TrialState.PRUNED, {2: 0.73}, seed_margin=0.03)  # judged by this very rule already
    add(0.2, TrialState.PRUNED, {2: 0.80, 6: 0.85})
    add(0.2, TrialState.COMPLETE, {2: 0.80, 6: 0.85, 12: 0.87}, rerun_of=4)  # rerun before
    add(0.3, TrialState.PRUNED, {2: 0.73}, pruner="asha: ..., seed margin 3 pts")  # the margin, told in words
    assert rerun_spared(study, RungPruner()) == [1]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [(t.system_attrs["fixed_params"], t.user_attrs[RERUN_ATTR]) for t in waiting] == [
        ({"embedding_dropout": 0.1}, 1)]
    assert rerun_spared(study, RungPruner()) == []  # once only
    assert rerun_spared(study, RungPruner(seed_margin=0)) == []  # plain halving spares nobody


def _basic_trial(dropout: float, values: list[float]) -> optuna.trial.FrozenTrial:
    distributions = {"dropout": optuna.distributions.FloatDistribution(0.0, 0.8),
                     "weight_decay_on": optuna.distributions.CategoricalDistribution([False, True])}
    return optuna.trial.create_trial(params={"dropout": dropout, "weight_decay_on": False},
                                     distributions=distributions, values=values)


@pytest.mark.parametrize("directions, scores, expected", [
    # One objective: the seed setting is best; the runner-up is the best of the others.
    (["maximize"], {0.6: [0.886], 0.5: [0.880], 0.3: [0.884], 0.1: [0.870]}, ("runner-up", 0.3)),
    # Two: among the others' front (0.3, 0.2; 0.1 is dominated by 0.2), within half a point of its
    # best accuracy, the smallest gap.
    (["maximize", "minimize"], {0.6: [0.886, 0.08], 0.3: [0.884, 0.10], 0.2: [0.880, 0.09], 0.1: [0.879, 0.095]},
     ("runner-up", 0.2)),
    # A better setting than the seed's is itself the challenger.
    (["maximize", "minimize"], {0.6: [0.880, 0.08], 0.3: [0.886, 0.07]}, ("tuned", 0.3)),
])
def test_retrains_set_the_runner_up_against_the_seed_setting_when_it_wins(directions, scores, expected):
    study = optuna.create_study(directions=directions)
    for dropout, values in scores.items():
        study.add_trial(_basic_trial(dropout, values))
    recommended, _ = pareto.recommend(study)
    assert recommended.number == (0 if expected[0] == "runner-up" else 1)
    label, trial, line = challenger_of(study, recommended, SEED_PARAMS["basic"])
    assert (label, trial.params["dropout"]) == expected
    assert (line is not None) == (label == "runner-up")
    if len(directions) == 2:  # the front of every trial is Optuna's own
        front = pareto.pareto_trials(study.get_trials(), study.directions)
        assert {t.number for t in front} == {t.number for t in study.best_trials}


def test_every_retrained_group_has_a_colour_of_its_own():
    # A group without a named colour once took matplotlib's next colour for each line and band,
    # so the runner-up was orange in one panel and blue in the next.
    colors = reporting.group_colors(["seed config", "runner-up", "preset b", "tuned"])
    assert colors["seed config"] == reporting.COLORS["seed config"] and colors["tuned"] == reporting.COLORS["tuned"]
    assert len(set(colors.values())) == 4 and "black" not in colors.values()


def test_the_curves_draw_the_honest_gap_where_it_was_measured(tmp_path):
    from PIL import Image

    def history(gap: float, eval_mode: bool) -> list[dict]:
        rows = [{"epoch": e, "train_loss": 0.5, "train_acc": 0.8, "valid_loss": 0.5 + gap, "valid_acc": 0.8 - gap,
                 "test_loss": 0.5, "test_acc": 0.8} for e in (1, 2, 3)]
        return [{**r, "train_eval_loss": 0.5, "train_eval_acc": 0.8} if eval_mode else r for r in rows]

    widths = {}
    for eval_mode in (True, False):
        path = reporting.plot_groups({"seed config": [history(0.1, eval_mode), history(0.12, eval_mode)],
                                      "tuned": [history(0.05, eval_mode)]}, tmp_path / f"{eval_mode}.png")
        widths[eval_mode] = Image.open(path).size[0]
    # Four columns (train, valid, test, gap) against three for runs logged before eval-mode train metrics.
    assert widths[True] / widths[False] == pytest.approx(19 / 15, rel=0.01)


def test_a_lone_seed_setting_has_no_challenger():
    study = optuna.create_study(direction="maximize")
    study.add_trial(_basic_trial(0.6, [0.886]))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, params={"dropout": 0.3},
                                              distributions={"dropout": optuna.distributions.FloatDistribution(0, 0.8)}))
    label, challenger, line = challenger_of(study, study.best_trial, SEED_PARAMS["basic"])
    assert label is None and challenger is None and "no other setting completed" in line


def test_rung_check_relates_each_rung_to_the_best_valid_accuracy(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    add = _trial_adder(study)
    # Slow starters end best: epoch 2 ranks them backwards.
    add(0.6, TrialState.COMPLETE, {2: 0.70, 6: 0.85, 9: 0.89}, **{REFERENCE_ATTR: "seed notebook setting"})
    add(0.4, TrialState.COMPLETE, {2: 0.75, 6: 0.86, 9: 0.88})
    add(0.2, TrialState.PRUNED, {2: 0.80, 6: 0.84})  # reached the next rung: counts for epoch 2 only
    add(0.1, TrialState.PRUNED, {2: 0.82})  # stopped at the rung: tells nothing about it
    lines = rung_check(study, RungPruner(), 12, tmp_path / "rung_check.png")
    assert lines[0].startswith("rung check, epoch 2: valid accuracy there vs best valid accuracy, Spearman -1.00 over 3")
    assert "epoch 6" in lines[1] and "over 2 trial(s)" in lines[1]  # too few for a correlation
    assert (tmp_path / "rung_check.png").stat().st_size > 0


@pytest.fixture(scope="module")
def rung_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rungs")
    client, experiment_id = open_experiment(store(tmp), "rungs")
    return tmp, client, experiment_id


@pytest.mark.parametrize("objective", ["accuracy", "accuracy-gap"])
def test_asha_prunes_a_hopeless_trial_at_epoch_2(objective, rung_store, tiny_config, tiny_corpus):
    tmp, client, experiment_id = rung_store
    directions = ["maximize"] if objective == "accuracy" else ["maximize", "minimize"]
    study = _study_with_rivals(directions)
    parent = client.create_run(experiment_id).info.run_id
    # A learning rate of 1e-9 leaves the model at chance: hopeless.
    hopeless = tiny_config.replace(epochs=8, lr=1e-9, early_stopping_patience=0)
    objective_fn = Objective(hopeless, SearchSpace(), tiny_corpus, client, experiment_id, parent,
                                    repo_root=tmp, data_source="test", study_name="rungs", progress=False,
                                    system_metrics=False, objective=objective, rungs=RungPruner())
    study.enqueue_trial(SEED_PARAMS["basic"])
    study.optimize(objective_fn, n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert sorted(epoch_values(trial)) == [1, 2]  # judged after epoch 2, not later
    assert trial.user_attrs["rung_epoch_2"] == "pruned" and trial.user_attrs["pruner"].startswith("asha")
    # Two-objective trials keep them out of intermediate_values, where TPE would call study.direction.
    assert bool(trial.intermediate_values) == (objective == "accuracy")
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.tags["trial_state"] == "PRUNED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_acc")] == [1, 2]


@pytest.mark.processes
def test_the_parent_run_ends_with_the_last_command_on_the_study(tmp_path, run_inprocess):
    long = tune(tmp_path, "--n-trials", "1", *ENDLESS, background=True)
    try:
        deadline = time.time() + 240
        while not (tmp_path / "study.journal").exists() or not [
                t for t in load_study(tmp_path).get_trials(states=(TrialState.RUNNING,)) if t.intermediate_values]:
            assert long.poll() is None, long.communicate()[1]
            assert time.time() < deadline, "the long command never reported an epoch"
            time.sleep(0.5)
        # A second command on the same study that adds nothing (the study holds one trial, running):
        # it finishes while the first works (in this process: the promise is about the study's
        # parent run, and the long command is the other process).
        short = tune(tmp_path, "--total-trials", "1", *ENDLESS, runner=run_inprocess)
        assert short.returncode == 0, short.stderr
        assert "stays RUNNING: 1 other command(s) still work on this study" in short.stdout
        assert long.poll() is None, "the long command ended before the check: the test proves nothing"
        client = MlflowClient(store(tmp_path))
        parent_id = load_study(tmp_path).user_attrs["mlflow_parent_run_id"]
        parent = client.get_run(parent_id)
        assert parent.info.status == "RUNNING"
        assert parent.data.tags["process_pid"] == str(long.pid)  # handed to the command still at work
    finally:
        long.terminate()
        long.communicate(timeout=120)
    # The last command to finish (here by SIGTERM) ends the parent run, with its own status.
    assert client.get_run(parent_id).info.status == "KILLED"



@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_optunas_pruners_stop_a_hopeless_trial(pruner, rung_store, tiny_config, tiny_corpus):
    from sentiment_core.tuning.objective import make_pruner

    tmp, client, experiment_id = rung_store
    # A fixed name: Hyperband puts a trial in a bracket by a hash of the study's name and its number.
    study = optuna.create_study(study_name="pruners", direction="maximize", pruner=make_pruner(pruner, 8))

    def rival(trial):  # 80-84% valid accuracy from epoch 1 on, reported through the pruner as a real trial would
        SearchSpace().suggest(trial)
        for epoch in range(1, 9):
            trial.report(0.80 + 0.005 * epoch, epoch)
            trial.should_prune()  # the successive-halving rungs record each trial's value here
        return 0.84

    study.optimize(rival, n_trials=16)
    hopeless = tiny_config.replace(epochs=8, lr=1e-9, early_stopping_patience=0)
    objective_fn = Objective(hopeless, SearchSpace(), tiny_corpus, client, experiment_id,
                             client.create_run(experiment_id).info.run_id, repo_root=tmp, data_source="test",
                             study_name="optuna-pruners", progress=False, system_metrics=False)
    study.enqueue_trial(SEED_PARAMS["basic"])
    study.optimize(objective_fn, n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED and len(trial.intermediate_values) < 8


def test_importances_wait_for_enough_complete_trials():
    # Dropout decides valid accuracy here and weight decay nothing: fANOVA must say so, once enough
    # trials completed for a forest to mean anything.
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    study = optuna.create_study(direction="maximize")
    distributions = {"dropout": FloatDistribution(0.0, 0.8), "weight_decay": FloatDistribution(0.0, 1e-3)}
    for i in range(MIN_TRIALS_FOR_IMPORTANCES + 3):
        if i == MIN_TRIALS_FOR_IMPORTANCES - 1:
            assert importances_of(study) == {}  # one trial short
        dropout, decay = i / 10, (i * 7 % 5) * 1e-4
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.7 + dropout / 4, distributions=distributions,
                                     params={"dropout": dropout, "weight_decay": decay},
                                     user_attrs={"gap_at_best_valid": 10 - 10 * dropout}))
    found = importances_of(study)
    assert set(found) == {"best valid accuracy", "honest gap"}
    for importances in found.values():
        assert importances["dropout"] > 0.5 > importances["weight_decay"]
