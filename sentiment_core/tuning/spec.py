"""Everything one study command asks for (settings, storage, workers, retrains), in one object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..comparison.seeds import AutoSeeds
from ..system.cpu_share import CpuShare, usable_cpus
from ..system.outages import OUTAGE_WAIT_S
from ..training.config import TrainConfig
from .objective import rung_pruner
from .rungs import RungPruner
from .space import SearchSpace
from .storage import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, make_storage


@dataclass
class StudySpec:
    config: TrainConfig
    space: SearchSpace
    study_name: str
    storage_url: str
    repo_root: Path
    pruner: str = "auto"
    seed_margin: float = RungPruner.seed_margin  # asha: a fraction of accuracy (0.03 = 3 points)
    first_rung: int = RungPruner.min_epoch  # asha: the first epoch judged (then x3)
    rerun_spared: bool = False  # asha: run again trials pruned under another rule that this one spares
    enqueue_best_of: str | None = None  # STORAGE[#STUDY]: queue that study's best settings once, at the start
    enqueue_best: int = 5  # how many of them
    objective: str = "accuracy"
    n_trials: int = 20
    total_trials: int | None = None  # instead of n_trials: run until the study holds this many finished trials
    workers: int = 1
    experiment: str | None = None
    cache_dir: Path | None = None
    output_dir: Path | None = None
    retrain_best: int | AutoSeeds = 0  # seeds per retrained configuration, or the auto rule (comparison/seeds.py)
    retrain_epochs: int | None = None
    progress: bool = True
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S
    heartbeat_grace: int = GRACE_PERIOD_S
    outage_wait: float = OUTAGE_WAIT_S  # RDB storages: seconds a call waits for a database that is away
    register: bool | None = None  # register the tuned retrains' models (None: unless --max-examples)
    system_metrics: bool = True
    threads: int | None = None  # torch threads per worker (default: the cores divided among the workers)
    cpu: CpuShare | None = None  # this process's threads, re-decided after each epoch (spawned workers: fixed)
    reap_only: bool = False  # only fail the trials of dead workers and end their runs

    def reads_only(self) -> bool:
        """--n-trials 0: a report, which leaves the storage as it was."""
        return self.n_trials == 0 and self.total_trials is None and not self.reap_only

    def worker_threads(self, workers: int | None = None) -> int:
        """Torch threads of each of ``workers`` (default --workers) spawned processes: --threads,
        or the cores shared out."""
        return self.threads or max(1, len(usable_cpus()) // (workers or self.workers))

    def rungs(self) -> RungPruner | None:
        """The asha rule this command judges trials by (None under another pruner)."""
        return rung_pruner(self.pruner, self.seed_margin, self.first_rung)

    def storage(self):
        return make_storage(self.storage_url, self.heartbeat_interval, self.heartbeat_grace, self.outage_wait)
