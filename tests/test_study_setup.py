"""What a study is bound to when it starts: its fingerprint (settings and where trials run), the
settings it queues from another study, and the epochs its rung rule judges."""

from __future__ import annotations

import hashlib
import shutil

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from helpers import REPO, TUNE, store, tune
from helpers import load_study as load
from sentiment_core import tuning
from sentiment_core.training.config import TrainConfig
from sentiment_core.training.runtime import resolved_config
from sentiment_core.tuning.rungs import FROM_ATTR, REFERENCE_ATTR, RungPruner
from sentiment_core.tuning.space import SearchSpace

COMMITTED = REPO / "results" / "studies"


@pytest.mark.parametrize("name, space, objective", [
    ("lstm-basic-accuracy", "basic", "accuracy"),
    ("lstm-extended-accuracy-gap", "extended", "accuracy-gap"),
])
def test_the_committed_studies_still_match_their_commands(name, space, objective):
    # Their fingerprints were stored before the runtime joined it: the README's commands (12
    # epochs, first 400 tokens, batch 64, the tuning defaults) must still resume them.
    storage = tuning.make_storage(f"journal:{COMMITTED / (name + '.journal')}")
    stored = optuna.load_study(study_name=name, storage=storage).user_attrs["fingerprint"]
    config = resolved_config(TrainConfig(optimizer="adamw", early_stopping_patience=3, epochs=12, max_len=400,
                                         batch_size=64))
    wanted = tuning.study_fingerprint(config, SearchSpace(kind=space), objective)
    assert "runtime" not in stored and wanted["runtime"]["device"] == "cpu"
    assert tuning.fingerprint_differences(stored, wanted) == []
    # ...while any real setting still counts.
    other = tuning.study_fingerprint(config.replace(epochs=30), SearchSpace(kind=space), objective)
    assert tuning.fingerprint_differences(stored, other) == ["epochs"]


def test_the_default_name_does_not_depend_on_the_runtime():
    config = TrainConfig()
    names = {tuning.default_study_name(config.replace(device=device, precision=precision), SearchSpace())
             for device, precision in (("auto", "auto"), ("cpu", "fp32"), ("cuda", "bf16"))}
    assert len(names) == 1


def test_a_study_runs_on_one_runtime(tmp_path, run_inprocess):
    assert tune(tmp_path, "--n-trials", "1", runner=run_inprocess).returncode == 0
    fingerprint = load(tmp_path).user_attrs["fingerprint"]
    assert fingerprint["runtime"] == {"device": "cpu", "precision": "fp32" if not _native_bf16() else "bf16",
                                      "sequence_path": "padded", "deterministic": False}
    proc = tune(tmp_path, "--n-trials", "1", "--sequence-path", "packed", runner=run_inprocess)
    assert proc.returncode == 2
    assert "created with other settings (sequence_path (the study runs on padded))" in proc.stderr


def _native_bf16() -> bool:
    from sentiment_core.training.runtime import cpu_has_native_bf16

    return cpu_has_native_bf16()


def _source_study(path, values: dict[float, float]) -> None:
    """A finished basic-space study "source" whose trials (dropout -> best valid accuracy) are given."""
    study = optuna.create_study(study_name="source", direction="maximize",
                                storage=tuning.make_storage(f"journal:{path}"))
    distributions = {"dropout": FloatDistribution(0.0, 0.8), "weight_decay_on": CategoricalDistribution([False, True])}
    for dropout, value in values.items():
        study.add_trial(create_trial(params={"dropout": dropout, "weight_decay_on": False},
                                     distributions=distributions, value=value))
    study.add_trial(create_trial(params={"dropout": 0.1, "weight_decay_on": False}, distributions=distributions,
                                 state=TrialState.PRUNED))


def test_a_new_study_queues_the_best_settings_of_another_once(tmp_path, run_inprocess):
    source = tmp_path / "source.journal"
    # The seed setting (0.6) is among the best: it is trial 0 here already, so the next ones come.
    _source_study(source, {0.6: 0.886, 0.603: 0.887, 0.568: 0.885, 0.2: 0.80, 0.55: 0.883})
    before = source.read_bytes()
    proc = tune(tmp_path, "--total-trials", "0", "--enqueue-best-of", f"journal:{source}", "--enqueue-best", "3",
                runner=run_inprocess)
    assert proc.returncode == 0, proc.stderr
    assert "queued the 3 best setting(s) of study 'source' (its trials 1, 2, 4)" in proc.stdout
    assert source.read_bytes() == before  # reading the source writes nothing there
    waiting = load(tmp_path).get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"]["dropout"] for t in waiting] == [0.6, 0.603, 0.568, 0.55]
    assert REFERENCE_ATTR in waiting[0].user_attrs
    assert [t.user_attrs.get(FROM_ATTR) for t in waiting[1:]] == [
        "source trial 1", "source trial 2", "source trial 4"]
    # The same command resumes: nothing queued twice, and the queued settings run first.
    again = tune(tmp_path, "--n-trials", "2", "--enqueue-best-of", f"journal:{source}", "--enqueue-best", "3",
                 runner=run_inprocess)
    assert again.returncode == 0, again.stderr
    assert "queued" not in again.stdout
    trials = load(tmp_path).get_trials()
    assert len(trials) == 4 and [t.params["dropout"] for t in trials[:2]] == [0.6, 0.603]
    assert trials[1].state in (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.mark.parametrize("source, message", [
    ("journal:{tmp}/missing.journal", "no journal file at"),
    ("journal:{tmp}/source.journal#other", "no study 'other' there (it holds: source)"),
])
def test_a_wrong_source_study_is_one_line(tmp_path, run_inprocess, source, message):
    _source_study(tmp_path / "source.journal", {0.5: 0.8})
    proc = tune(tmp_path, "--total-trials", "0", "--enqueue-best-of", source.format(tmp=tmp_path), runner=run_inprocess)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]


def test_another_space_cannot_be_queued(tmp_path, run_inprocess):
    _source_study(tmp_path / "source.journal", {0.5: 0.8})
    proc = tune(tmp_path, "--total-trials", "0", "--space", "extended", "--enqueue-best-of",
                f"journal:{tmp_path / 'source.journal'}", runner=run_inprocess)
    assert proc.returncode == 2 and "searched other knobs (dropout, weight_decay_on)" in proc.stderr


def test_rungs_start_where_asked():
    assert RungPruner().rungs(30) == [2, 6, 18]
    assert RungPruner(min_epoch=6).rungs(30) == [6, 18]
    assert "rungs from epoch 6 x3" in RungPruner(min_epoch=6).describe()


def test_trials_are_judged_from_the_first_rung_asked_for(tmp_path, run_inprocess):
    proc = tune(tmp_path, "--n-trials", "3", "--pruner", "asha", "--first-rung", "1", runner=run_inprocess)
    assert proc.returncode == 0, proc.stderr
    for trial in load(tmp_path).get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        assert "rungs from epoch 1 x3" in trial.user_attrs["pruner"]
        assert trial.user_attrs["rung_epoch_1"] in ("bootstrap", "ranked in", "seed margin", "pruned")
        assert "rung_epoch_2" not in trial.user_attrs  # 2 epochs: rungs 1 (and 3, past the end)


def test_copies_of_committed_journals_load(tmp_path):
    # The committed journals are the data of the README's results: they must load with this code.
    for journal in COMMITTED.glob("*.journal"):
        copy = tmp_path / journal.name
        shutil.copyfile(journal, copy)
        summaries = optuna.get_all_study_summaries(tuning.make_storage(f"journal:{copy}"))
        assert len(summaries) == 1 and summaries[0].n_trials >= 1


def test_a_report_leaves_a_committed_journal_byte_identical(tmp_path, run_inprocess):
    # The README's report command on a copy of the committed 12-epoch basic study (its retrains are
    # all kept in the journal, so nothing needs training): the file must not change at all.
    journal = tmp_path / "lstm-basic-accuracy.journal"
    shutil.copyfile(COMMITTED / journal.name, journal)
    before = hashlib.sha256(journal.read_bytes()).hexdigest()
    proc = run_inprocess(TUNE, ["--space", "basic", "--n-trials", "0", "--epochs", "12", "--max-len", "400",
                                "--batch-size", "64", "--study-name", "lstm-basic-accuracy",
                                "--storage", f"journal:{journal}", "--retrain-best", "3",
                                "--output-dir", tmp_path / "out", "--quiet", "--threads", "1"],
                         {"MLFLOW_TRACKING_URI": store(tmp_path), "XDG_CACHE_HOME": tmp_path / "cache"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "read only" in proc.stdout and "finished before" in proc.stdout
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before
    # Nothing beside it either (no lock, no backup).
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(journal.name)] == [journal.name]
    assert (tmp_path / "out" / "study-lstm-basic-accuracy" / "seed_vs_tuned.csv").is_file()
