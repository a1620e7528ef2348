"""Threads from what other processes use now, decided at start and again after every epoch."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from helpers import REPO, store
from sentiment_core.system.cpu_share import CpuSample, CpuShare, others_busy_cores, threads_for
from sentiment_core.tracking.runs import RunTracker
from sentiment_core.tracking.store import open_experiment
from sentiment_core.tracking.tracked_run import run_training


def test_the_cores_others_leave():
    assert threads_for(0.0, 2) == 2 and threads_for(0.4, 2) == 2  # idle, or a shell command's blip
    assert threads_for(0.97, 2) == 1  # another training on one core
    assert threads_for(1.9, 2) == 1 and threads_for(7.0, 2) == 1  # never fewer than one
    assert threads_for(4.2, 16) == 12


def test_others_are_the_machine_minus_this_process():
    # Over 2 s the machine was busy 3.0 CPU-seconds, 1.1 of them this process's: others used 0.95 cores.
    before, after = CpuSample(busy=100.0, own=10.0, at=50.0), CpuSample(busy=103.0, own=11.1, at=52.0)
    assert others_busy_cores(before, after) == pytest.approx(0.95)
    assert others_busy_cores(after, after) == 0.0
    assert others_busy_cores(before, CpuSample(busy=100.5, own=11.0, at=51.0)) == 0.0  # rounding in the counters


class ScriptedShare(CpuShare):
    """Our own policy with the measurement replaced by a list of what other processes used."""

    def __init__(self, others: list[float], **kwargs):
        super().__init__(**kwargs)
        self.script = list(others)

    def _decide(self) -> int:
        self.others = self.script.pop(0)
        return self._set(threads_for(self.others, self.cores))


def test_a_run_decides_again_after_every_epoch(tmp_path, tiny_config, tiny_corpus):
    # Alone at start, another job from epoch 1 on, gone after epoch 2: 2, then 1, then 2 threads,
    # one line for each change.
    lines: list[str] = []
    cpu = ScriptedShare([0.0, 1.0, 0.1, 0.0], cores=2, say=lines.append)
    client, experiment_id = open_experiment(store(tmp_path), "threads")
    try:
        assert cpu.start() == 2 and torch.get_num_threads() == 2 and not lines
        threads_seen = []
        run_training(RunTracker.create(client, experiment_id, run_name="r"), tiny_config.replace(epochs=3), tiny_corpus,
                     repo_root=REPO, data_source="test", progress=False, system_metrics=False, cpu=cpu,
                     on_epoch_end=lambda record: threads_seen.append(torch.get_num_threads()))
    finally:
        torch.set_num_threads(1)  # conftest's choice for the test processes
    assert threads_seen == [1, 2, 2]
    assert lines == ["note: other processes now keep 1.0 of 2 core(s) busy: 2 -> 1 torch thread(s)",
                     "note: other processes now keep 0.1 of 2 core(s) busy: 1 -> 2 torch thread(s)"]


def test_fixed_threads_are_never_changed():
    lines: list[str] = []
    cpu = CpuShare(fixed=1, say=lines.append)
    assert cpu.start() == 1 and cpu.epoch_boundary() == 1 and not lines


PINNED = """import os, sys
sys.path.insert(0, sys.argv[1])
os.sched_setaffinity(0, {int(sys.argv[2])})
from sentiment_core.system.cpu_share import CpuShare, sample
from sentiment_core.training.config import TrainConfig
from sentiment_core.tuning.space import SearchSpace
from sentiment_core.tuning.spec import StudySpec
spec = StudySpec(TrainConfig(), SearchSpace(), "s", "journal:x", REPO := sys.argv[1], workers=1)
share = CpuShare(window=float(sys.argv[3]))
share.start()
print(share.cores, spec.worker_threads(), f"{share.others:.2f}")
"""


def run_pinned(cpu: int, window: float = 0.05) -> list[str]:
    """CpuShare and a study's worker threads in a process pinned to ``cpu`` (as taskset would)."""
    proc = subprocess.run([sys.executable, "-c", PINNED, str(REPO), str(cpu), str(window)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two CPUs")
@pytest.mark.processes
def test_a_job_pinned_to_some_cores_takes_those_and_no_more():
    cores, worker_threads, _ = run_pinned(min(os.sched_getaffinity(0)))
    assert (cores, worker_threads) == ("1", "1"), "os.cpu_count() would say every core of the machine"


def others_now() -> float:
    from sentiment_core.system.cpu_share import sample

    first = sample()
    time.sleep(0.5)
    return others_busy_cores(first, sample())


@pytest.mark.alone
def test_a_busy_core_is_seen_and_given_back(tmp_path):
    # A real process burning one core: measured by the real policy while it runs and after it ends.
    # (Marked alone: run with -n 0 after the other tiers, so no other test process spoils the measurement.)
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("one core: nothing to give up")
    # Servers of earlier tests may still be shutting down: wait until nothing else runs.
    deadline = time.time() + 120
    while others_now() > 0.3:
        if time.time() > deadline:
            pytest.skip("other processes kept the CPU busy for 2 minutes: nothing to measure against")
    lines: list[str] = []
    cpu = CpuShare(cores=cores, say=lines.append)
    try:
        assert cpu.start() == cores, cpu.others
        burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"])
        try:
            time.sleep(0.5)  # let it start burning
            assert cpu.epoch_boundary() == cores - 1, cpu.others
            assert 0.7 < cpu.others < 1.5
        finally:
            burner.kill()
            burner.wait()
        assert cpu.epoch_boundary() == cores, cpu.others
    finally:
        torch.set_num_threads(1)
    assert [line.split(": ")[-1] for line in lines] == [f"{cores} -> {cores - 1} torch thread(s)",
                                                         f"{cores - 1} -> {cores} torch thread(s)"]


@pytest.mark.alone
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two CPUs")
def test_a_pinned_job_reads_only_its_own_cores():
    # A core burnt on CPU b is the machine's business, not that of a job pinned to CPU a.
    a, b = sorted(os.sched_getaffinity(0))[:2]
    deadline = time.time() + 120
    while others_now() > 0.3:
        if time.time() > deadline:
            pytest.skip("other processes kept the CPU busy for 2 minutes: nothing to measure against")
    burner = subprocess.Popen([sys.executable, "-c", f"import os, time\nos.sched_setaffinity(0, {{{b}}})\n"
                               "print('burning', flush=True)\nend = time.time() + 60\nwhile time.time() < end: pass"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert burner.stdout.readline().strip() == "burning"
        assert others_now() > 0.7, "the whole machine shows the burner"
        cores, _, others = run_pinned(a, window=0.5)
        assert cores == "1" and float(others) < 0.3
    finally:
        burner.kill()
        burner.wait()
