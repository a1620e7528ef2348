"""How many seeds a comparison takes: the --seeds auto rule, planning, the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

from helpers import REPO, TINY, store
from sentiment_core.comparison.intervals import paired_bootstrap
from sentiment_core.comparison.seeds import AutoSeeds, half_width, planning_line, seeds_for, simulate

PRESETS = REPO / "experiments" / "compare_presets.py"
SPREAD = 0.56  # points: the 5-seed 30-epoch verdict's spread of paired differences


@pytest.mark.parametrize("target, seeds_at_most", [(1.0, 4.5), (0.5, 7.5)])
def test_the_auto_rule_covers_the_truth_at_the_spread_measured(target, seeds_at_most):
    # 10,000 sequences spread like the measured 0.56 points: the interval the rule reports covers
    # the true difference in >= 93% of them (a t interval taken at the stop covers 92% at D 0.5).
    found = simulate(AutoSeeds(target=target, max_seeds=40), SPREAD)
    print(f"D {target}: {found}")
    assert found["coverage"] >= 0.93
    assert 3 <= found["mean_seeds"] <= seeds_at_most  # measured: 3.94 for D 1, 6.81 for D 0.5


def test_the_rule_stops_on_width_never_on_sign():
    rule = AutoSeeds(target=1.0, max_seeds=5)
    far_from_zero = [0.05, 0.09, 0.02]  # +5.3 points, interval far from zero but 8.6 points wide
    assert rule.stop({"b": far_from_zero}) is None
    assert rule.stop({"b": [0.001, 0.002]}) is None  # fewer than 3 seeds: no interval yet
    assert rule.stop({"b": [0.001, 0.002, 0.0015]}).startswith("precision target met")
    assert rule.stop({"b": far_from_zero + [0.0, 0.07]}).startswith("--max-seeds 5 reached")
    # Every compared arm must meet it: the widest one decides.
    assert rule.stop({"b": [0.001, 0.002, 0.0015], "c": far_from_zero}) is None
    for bad in ({"target": 0}, {"max_seeds": 2}):
        with pytest.raises(ValueError):
            AutoSeeds(**bad)


def test_planning_says_seeds_and_time_at_the_measured_spread():
    # t(n-1) x 0.56 / sqrt(n): n = 4 gives 0.89 <= 1 (n = 3: 1.39); n = 8 gives 0.47 <= 0.5 (n = 7: 0.52).
    assert seeds_for(SPREAD, 1.0) == 4 and seeds_for(SPREAD, 0.5) == 8
    diffs = [0.010, 0.016, 0.004, 0.012, 0.008]  # spread 0.447 points: +-0.5 at n = 6 (0.47; n = 5: 0.56),
    line = planning_line(diffs, seconds_per_seed=3600)  # +-1 at n = 4 (0.71; n = 3: 1.11)
    assert line == ("planning (spread 0.45 points over 5 seeds): +-0.5 pt: about 6 seeds, about 6.0 h here; "
                    "+-1 pt: about 4 seeds, about 4.0 h here")
    assert "needs 2 seeds" in planning_line([0.01], 60)


def test_the_paired_bootstrap_adds_the_test_sets_own_noise():
    rng = np.random.default_rng(1)
    reviews = 3736
    a = rng.random((3, reviews)) < 0.87
    b = a.copy()
    flip = rng.random((3, reviews)) < 0.06  # each seed: B differs from A on ~6% of the reviews
    b[flip] = ~b[flip]
    boot = paired_bootstrap(a, b, resamples=2000)
    d = a.astype(float) - b.astype(float)
    assert boot["mean"] == pytest.approx(d.mean())
    # The reviews alone make the mean difference vary by about sd(d) / sqrt(N): the interval sees it.
    review_se = d.mean(axis=0).std() / np.sqrt(reviews)
    assert 0.7 < (boot["high"] - boot["low"]) / (2 * 1.96 * review_se) < 1.6
    same = paired_bootstrap(a, a.copy(), resamples=200)
    assert same["low"] == same["high"] == 0.0  # identical arms: no difference, whatever is drawn


def test_compare_presets_with_auto_seeds_stops_by_its_rule(tmp_path, run_inprocess):
    uri = store(tmp_path)
    target, most = 3.0, 4
    proc = run_inprocess(PRESETS, [*TINY, "--epochs", "1", "--presets", "default,previous-default", "--seeds", "auto",
                                   "--precision-target", target, "--max-seeds", most, "--no-baseline",
                                   "--output-dir", tmp_path / "out"],
                         {"MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": tmp_path / "cache"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("rnn-vs-lstm").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    acc = {(r.data.tags["arm"], int(r.data.params["seed"])): r.data.metrics["test_acc_at_best_valid"]
           for r in runs if "arm" in r.data.tags}
    seeds = sorted({seed for _, seed in acc})
    assert seeds == list(range(1234, 1234 + len(seeds))) and 3 <= len(seeds) <= most
    diffs = [(acc[("previous-default", s)] - acc[("default", s)]) * 100 for s in seeds]

    def width(n):
        return half_width(float(np.std(diffs[:n], ddof=1)), n)

    reason = parent.data.tags["seeds_stop"]
    assert f"--seeds auto (target +-{target:g} points, at most {most} seeds): {reason}" in proc.stdout
    if reason.startswith("precision target met"):
        assert width(len(seeds)) <= target and all(width(n) > target for n in range(3, len(seeds)))
        assert "the auto rule's fixed-width 95% interval" in proc.stdout
    else:
        assert reason.startswith(f"--max-seeds {most} reached") and len(seeds) == most and width(most) > target
    assert parent.data.params["seeds"] == "auto" and parent.data.metrics["seeds_used"] == len(seeds)
    assert "planning (spread" in proc.stdout and "paired bootstrap over seeds and test reviews" in proc.stdout
    for run in (r for r in runs if "arm" in r.data.tags):  # what the bootstrap resamples, kept with each run
        assert "test_predictions.npy" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_auto_flags_need_auto(tmp_path, run_inprocess):
    proc = run_inprocess(PRESETS, ["--seeds", "1,2,3", "--precision-target", "0.5"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --precision-target and --max-seeds apply to --seeds auto only"
    proc = run_inprocess(PRESETS, ["--seeds", "auto", "--max-seeds", "2"], cwd=tmp_path)
    assert proc.returncode == 2 and "--max-seeds must be >= 3" in proc.stderr
