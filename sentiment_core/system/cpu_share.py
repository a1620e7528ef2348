"""Torch threads for a job on a shared CPU: every core when nothing else runs, the cores other
processes leave when they run, decided again at every epoch boundary.

The signal is the CPU time that *other* processes used over a short window just now (all CPU
time on the machine minus this process's own, from psutil), not the 1-minute load average: that
average still carries a command that ended a minute ago (an install, a finished benchmark) and
made a job that started alone train on one of two cores for hours. Measured on 2 cores
(benchmarks/cpu_sharing.py): two trainings with 2 threads each run 4.1x slower than one alone,
with 1 thread each 1.4x, and one job alone with 1 thread 1.28x. A choice lasts one epoch, so a
job that started beside another takes the cores back after the other ends, and one that started
alone gives a core up when a second job appears.

The cores are the ones this process may run on (its affinity: ``taskset``, a container's
cpuset), and the others' use is read on those cores only: a job pinned to 4 of 16 cores takes 4
threads, and what runs on the other 12 is none of its business.

Two jobs that measure in the same half second see each other idle (both are between epochs) and
may both take every core for one epoch; their next boundaries rarely coincide.

Processes of one command that train side by side (a comparison's arms, comparison/side_by_side.py)
do not measure each other: they share a count of those still running (``siblings``) and divide the
cores that others left when the command started; when one ends, the others take its cores at
their next batch, not their next epoch (an LSTM epoch of the seed config is minutes long).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 0.5  # a sleep this long at start and at each epoch boundary (under 1% of an epoch)


@dataclass(frozen=True)
class CpuSample:
    busy: float  # CPU seconds every process on the machine has used (idle, iowait and steal left out)
    own: float  # CPU seconds this process has used, all its threads
    at: float  # monotonic seconds


def usable_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on: its affinity where the OS has one (Linux), else all."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def sample(cpus: tuple[int, ...] | None = None) -> CpuSample:
    """CPU time used so far, on ``cpus`` only when given (None: the whole machine)."""
    import psutil

    if cpus is None:
        times = [psutil.cpu_times()]
    else:  # per-CPU rows in CPU number order (an offline CPU's row is missing: skip what is not there)
        rows = psutil.cpu_times(percpu=True)
        times = [rows[i] for i in cpus if i < len(rows)]
    busy = sum(getattr(t, name, 0.0) for t in times for name in ("user", "nice", "system", "irq", "softirq"))
    own = psutil.Process().cpu_times()
    return CpuSample(busy, own.user + own.system, time.monotonic())


def others_busy_cores(before: CpuSample, after: CpuSample) -> float:
    """Cores that other processes kept busy between two samples, on average."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        return 0.0
    return max(0.0, ((after.busy - before.busy) - (after.own - before.own)) / elapsed)


def threads_for(others_busy: float, cores: int) -> int:
    """The cores that others leave, at least one. A core counts as taken once others use more
    than half of it: a process that keeps one core busy shows as 0.9-1.0 here."""
    return max(1, cores - math.floor(others_busy + 0.5))


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class CpuShare:
    """``--threads N`` fixed (``fixed``), or the threads that follow what other processes use now."""

    fixed: int | None = None
    cpus: tuple[int, ...] = field(default_factory=usable_cpus)
    cores: int | None = None  # default: len(cpus)
    window: float = WINDOW_S
    say: Callable[[str], None] = field(default=_to_stderr, repr=False)  # module-level: picklable
    threads: int | None = None  # what this process runs with now
    others: float = 0.0  # other processes' busy cores at the last decision
    # A count shared with this command's other processes that train side by side, this one
    # included (a multiprocessing RawValue that the parent lowers as each ends); None: alone.
    siblings: object | None = field(default=None, repr=False)
    sharing: int = 1  # the siblings' count at the last decision

    def __post_init__(self):
        self.cores = self.cores or len(self.cpus)

    def start(self) -> int:
        """Decide before the first epoch; one line when this job does not take every core."""
        if self.fixed is not None:
            return self._set(self.fixed)
        if self._shared():
            return self._divide()
        threads = self._decide()
        if threads < self.cores:
            self.say(f"note: other processes keep {self.others:.1f} of {self.cores} core(s) busy: this job uses "
                     f"{threads} torch thread(s) and looks again after each epoch (--threads N fixes it)")
        return threads

    def epoch_boundary(self) -> int:
        """Decide again; one line when the choice changes."""
        if self.fixed is not None:
            return self.threads or self.fixed
        if self._shared():
            return self.between_batches()
        before = self.threads
        threads = self._decide()
        if before is not None and threads != before:
            self.say(f"note: other processes now keep {self.others:.1f} of {self.cores} core(s) busy: "
                     f"{before} -> {threads} torch thread(s)")
        return threads

    def between_batches(self) -> int:
        """Side by side: take the cores of a sibling that ended (one read of a shared integer; alone
        or with fixed threads, nothing to do)."""
        if self.fixed is None and self.siblings is not None and self.siblings.value != self.sharing:
            before = self.threads
            threads = self._divide()
            if threads != before:
                now = ("the run(s) beside this one ended" if self.sharing == 1
                       else f"this command trains {self.sharing} runs side by side now")
                self.say(f"note: {now}: {before} -> {threads} torch thread(s)")
        return self.threads

    def _shared(self) -> bool:
        return self.siblings is not None and self.siblings.value > 1

    def _divide(self) -> int:
        self.sharing = max(1, self.siblings.value)
        return self._set(self.divided(self.sharing))

    def divided(self, processes: int) -> int:
        """Each of ``processes``' threads: the cores that others left at the last measurement,
        divided among them (fixed threads stay fixed)."""
        if self.fixed is not None:
            return self.fixed
        return max(1, threads_for(self.others, self.cores) // processes)

    def _decide(self) -> int:
        # The whole machine's counters when every CPU is ours (one row, not one per CPU).
        cpus = None if len(self.cpus) == (os.cpu_count() or 1) else self.cpus
        first = sample(cpus)
        time.sleep(self.window)
        self.others = others_busy_cores(first, sample(cpus))
        return self._set(threads_for(self.others, self.cores))

    def _set(self, threads: int) -> int:
        import torch

        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads
        return threads
