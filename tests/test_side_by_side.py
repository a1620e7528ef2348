"""A comparison's arms trained side by side: the cores divided and handed on, the same numbers as
one after the other, and a Ctrl-C that ends every run KILLED and resumes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from sibling_targets import report_siblings, report_sigint, wait_for

from helpers import COMPARE, TINY, store
from sentiment_core.comparison.side_by_side import workers_for
from sentiment_core.errors import UserError
from sentiment_core.system.cpu_share import CpuShare
from sentiment_core.system.workers import run_in_processes


def test_side_by_side_runs_divide_the_cores_and_take_an_ended_ones_at_the_next_batch():
    siblings = multiprocessing.get_context("spawn").RawValue("i", 2)
    lines: list[str] = []
    cpu = CpuShare(cores=2, siblings=siblings, say=lines.append)
    try:
        assert cpu.start() == 1 and torch.get_num_threads() == 1
        started = time.monotonic()
        # No measuring while a sibling runs: it would count as another job and both would shrink.
        assert cpu.epoch_boundary() == 1 and time.monotonic() - started < cpu.window
        assert cpu.between_batches() == 1 and not lines
        siblings.value = 1
        assert cpu.between_batches() == 2 and torch.get_num_threads() == 2
        assert lines == ["note: the run(s) beside this one ended: 1 -> 2 torch thread(s)"]
        # Four cores, one of them kept busy by another job when the command started: 3 // 2 each.
        assert CpuShare(cores=4, others=1.0, siblings=multiprocessing.RawValue("i", 2)).start() == 1
        assert CpuShare(cores=8, others=1.0, siblings=multiprocessing.RawValue("i", 2)).start() == 3
    finally:
        torch.set_num_threads(1)  # conftest's choice for the test processes


def test_fixed_threads_stay_fixed_side_by_side():
    cpu = CpuShare(fixed=2, siblings=multiprocessing.RawValue("i", 2))
    assert cpu.start() == 2 and cpu.between_batches() == 2 and cpu.epoch_boundary() == 2
    torch.set_num_threads(1)


def test_how_many_arms_train_at_once():
    idle_two_cores = CpuShare(cores=2, threads=2)
    assert workers_for(None, 2, "cpu", idle_two_cores) == 2
    assert workers_for(None, 3, "cpu", CpuShare(cores=8, threads=8)) == 3  # at most the arms
    assert workers_for(None, 2, "cpu", CpuShare(cores=2, threads=1)) == 1  # another job keeps a core busy
    assert workers_for(None, 2, "cpu", CpuShare(fixed=1)) == 1  # --threads: the user divides the cores
    assert workers_for(None, 2, "cuda", idle_two_cores) == 1
    assert workers_for(None, 2, "cpu", None) == 1  # a library caller that follows no CPU share
    assert workers_for(4, 2, "cpu", CpuShare(fixed=1)) == 2
    with pytest.raises(UserError, match="--workers must be >= 1"):
        workers_for(0, 2, "cpu", idle_two_cores)


@pytest.mark.processes
def test_the_count_of_side_by_side_processes_falls_as_each_ends(tmp_path):
    assert run_in_processes(report_siblings, [(str(tmp_path), 0), (str(tmp_path), 1)], 1, share_cores=True) == []
    assert (tmp_path / "seen-1").read_text() == "2" and (tmp_path / "seen-2").read_text() == "1"


@pytest.mark.processes
def test_workers_of_a_command_deaf_to_ctrl_c_stay_deaf(tmp_path):
    # A command started with SIGINT ignored (`cmd &` in a script): a Ctrl-C meant for the
    # terminal's foreground job must not stop its workers under it.
    # (This test process may itself run with SIGINT ignored: both cases are set here.)
    previous = signal.getsignal(signal.SIGINT)
    try:
        for handler, seen in ((signal.SIG_IGN, "ignored"), (signal.default_int_handler, "stops")):
            signal.signal(signal.SIGINT, handler)
            assert run_in_processes(report_sigint, [(str(tmp_path),)], 1) == []
            assert (tmp_path / "sigint").read_text() == seen
    finally:
        signal.signal(signal.SIGINT, previous)


AFTERMATH = """
import sys
from sqlalchemy.orm.state import InstanceState
from sentiment_core.system.workers import mark_interrupted, redeliver_lost_interrupts

class Dropped:
    def __del__(self):
        raise AssertionError("an unraisable error")

captured = []
sys.unraisablehook = captured.append
Dropped()  # its error reaches the hook as Python's own UnraisableHookArgs
sys.unraisablehook = sys.__unraisablehook__
redeliver_lost_interrupts()
real = captured[0]
aftermath = type(real)((AssertionError, AssertionError(), None, None, InstanceState.__new__(InstanceState)._cleanup))
sys.unraisablehook(aftermath)
print("-- interrupted --", file=sys.stderr, flush=True)
mark_interrupted()
sys.unraisablehook(aftermath)
sys.unraisablehook(real)  # any other error is still printed
"""


def test_after_an_interruption_the_orms_half_made_entries_clean_up_without_a_word():
    proc = subprocess.run([sys.executable, "-c", AFTERMATH], cwd=COMPARE.parents[1], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stderr.split("-- interrupted --")
    assert "InstanceState._cleanup" in before and "AssertionError" in before
    assert "InstanceState" not in after and "an unraisable error" in after


def _histories(out: Path) -> pd.DataFrame:
    (csv,) = out.glob("compare-*/histories.csv")
    return pd.read_csv(csv).drop(columns=["run_id", "epoch_seconds", "train_reviews_per_s", "train_tokens_per_s"])


@pytest.mark.processes
def test_arms_side_by_side_learn_what_they_learn_one_after_the_other(tmp_path, run_inprocess):
    # One thread each way: the same seeds and data give the same numbers, bit for bit.
    outputs = {}
    for name, extra in (("one after the other", []), ("side by side", ["--workers", "2"])):
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        proc = run_inprocess(COMPARE, [*TINY, "--epochs", "2", "--no-baseline", "--output-dir", folder / "out", *extra],
                             {"MLFLOW_TRACKING_URI": store(folder), "XDG_CACHE_HOME": tmp_path / "cache"}, cwd=folder)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert ("side by side: rnn seed 1234, lstm seed 1234" in proc.stdout) == bool(extra)
        outputs[name] = folder
    pd.testing.assert_frame_equal(*(_histories(folder / "out") for folder in outputs.values()))
    (by_length,) = (outputs["side by side"] / "out").glob("compare-*/accuracy_by_length.csv")
    (before,) = (outputs["one after the other"] / "out").glob("compare-*/accuracy_by_length.csv")
    assert by_length.read_text() == before.read_text()
    client = MlflowClient(store(outputs["side by side"]))
    runs = client.search_runs([client.get_experiment_by_name("rnn-vs-lstm").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "comparison"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["arm"] for r in children) == ["lstm", "rnn"]
    assert all(r.info.status == "FINISHED" for r in runs) and parent.data.params["side_by_side"] == "2"
    for run in children:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_acc")] == [1, 2]
        assert run.data.tags["process_pid"] != parent.data.tags["process_pid"]  # each in a process of its own


@pytest.mark.processes
def test_ctrl_c_ends_side_by_side_runs_killed_and_the_same_command_resumes_them(tmp_path, run_inprocess):
    uri = store(tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = [*TINY, "--epochs", "12", "--no-baseline", "--workers", "2", "--output-dir", tmp_path / "out"]
    command = [sys.executable, str(COMPARE), *map(str, args)]
    states = tmp_path / "cache" / "sentiment_core" / "interrupted-runs"
    # As a terminal's foreground job: SIGINT at its default (a test run started in the background of
    # a script, `cmd &`, ignores it, and its children inherit that), in a process group of its own.
    victim = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: len(list(states.glob("*.pt"))) >= 2 or victim.poll() is not None, timeout=240)
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        os.killpg(victim.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole process group
        _, stderr = victim.communicate(timeout=120)
    finally:
        victim.kill()
    assert victim.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("rnn-vs-lstm").experiment_id
    runs = client.search_runs([experiment_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"KILLED"}, [(r.info.run_name, r.info.status) for r in runs]

    # The workers print their "resuming" lines where this process cannot read them: their runs say it.
    again = run_inprocess(COMPARE, args, {"MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": tmp_path / "cache"},
                          cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    (parent,) = [r for r in client.search_runs([experiment_id]) if r.info.status == "FINISHED"
                 and r.data.tags.get("kind") == "comparison"]
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags["arm"] for r in children) == ["lstm", "rnn"]
    for run in children:
        assert run.info.status == "FINISHED" and 1 <= int(run.data.tags["resumed_epochs"]) <= 12
        assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_acc")] == list(range(1, 13))
    assert not list(states.glob("*.pt")), "a finished comparison keeps no state"
