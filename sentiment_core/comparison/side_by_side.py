"""A seed's arms trained side by side on a CPU, one process each, each on its share of the cores.

At the seed config's shapes one training does not use two cores fully (its per-step products have
32 rows): on a 2-core Zen 3, 2 threads run a cell well under 2x as fast as 1 thread, while two
cells trained at once with 1 thread each keep most of their 1-thread speed. So the arms of a seed
finish sooner side by side than one after the other: the main job 11-22% sooner there
(benchmarks/side_by_side.py, benchmarks/main_job_revisions.sh; docs/speed.md, "A seed's arms side
by side"). When one ends, the other takes its cores at its next batch (``CpuShare.siblings``). On a
GPU the arms train one after the other, as before.

Each process opens the store, reads the token cache, and trains its arm as a child run of the
comparison, exactly as the command's own process does one after the other (:func:`train_arm`);
what the comparison reads back is the ``TrackedRun`` without its model. A process that ends
early leaves its run FAILED or KILLED and its saved state, which the same command resumes.
"""

from __future__ import annotations

import dataclasses
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..data.corpus import Corpus, load_corpus
from ..errors import UserError
from ..system.cpu_share import CpuShare
from ..system.workers import run_in_processes
from ..tracking.runs import RunTracker
from ..tracking.store import open_experiment
from ..tracking.tracked_run import TrackedRun, run_training
from ..training.config import TrainConfig
from ..training.resume import resume_dir_of


@dataclass(frozen=True)
class ArmJob:
    """One arm with one seed."""
    label: str
    config: TrainConfig  # the seed set
    data_source: str


@dataclass(frozen=True)
class Setting:
    """What every arm's run of one comparison shares."""
    repo_root: Path
    uri: str
    experiment_name: str
    experiment_id: str
    parent_run_id: str
    cache_dir: Path | None
    progress: bool
    system_metrics: bool
    cpu: CpuShare | None


def workers_for(requested: int | None, arms: int, device_type: str, cpu: CpuShare | None) -> int:
    """How many of a seed's ``arms`` train at once: ``requested`` (--workers N, at most the arms),
    else as many as the cores that other processes leave idle on a CPU, and one at a time on a
    GPU or with --threads fixed (its user divides the cores)."""
    if requested is not None:
        if requested < 1:
            raise UserError(f"--workers must be >= 1, got {requested}")
        return min(requested, arms)
    if device_type != "cpu" or cpu is None or cpu.fixed is not None:
        return 1
    return max(1, min(arms, cpu.threads or 1))


def train_arm(client, setting: Setting, job: ArmJob, corpus: Corpus, cpu: CpuShare | None,
              bars: bool | None = None) -> TrackedRun:
    """``job`` as a child run of the comparison, resumable and kept until the comparison ends."""
    child = RunTracker.create(client, setting.experiment_id, run_name=f"{job.label} seed {job.config.seed}",
                              parent_run_id=setting.parent_run_id, tags={"arm": job.label})
    return run_training(child, job.config, corpus, repo_root=setting.repo_root, data_source=job.data_source,
                        progress=setting.progress if bars is None else bars, system_metrics=setting.system_metrics,
                        cpu=cpu, resume_dir=resume_dir_of(setting.cache_dir), keep_finished=True,
                        epoch_lines=setting.progress)


def train_side_by_side(jobs: list[ArmJob], setting: Setting) -> list[TrackedRun]:
    """Every job at once, one spawned process each; their runs in the order of ``jobs``."""
    cpu = setting.cpu or CpuShare()
    threads = cpu.divided(len(jobs))  # what each worker's CpuShare starts with
    print(f"side by side: {', '.join(f'{job.label} seed {job.config.seed}' for job in jobs)}, one process each "
          f"with {threads} torch thread(s) (one that ends leaves its cores to the others)"
          + ("; a line per epoch, no progress bars" if setting.progress else ""), flush=True)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as folder:
        outs = [Path(folder) / f"run-{i}.pickle" for i in range(len(jobs))]
        bad = run_in_processes(_train_in_worker, [(setting, job, out) for job, out in zip(jobs, outs)], threads,
                               share_cores=True)
        if bad:
            raise UserError(f"{len(bad)} of {len(jobs)} side-by-side run(s) failed (exit codes {bad}); the runs "
                            "that finished keep their state: the same command replays them and trains the rest")
        return [pickle.loads(out.read_bytes()) for out in outs]


def _train_in_worker(setting: Setting, job: ArmJob, out: Path, siblings=None) -> None:
    client, _ = open_experiment(setting.uri, setting.experiment_name)
    corpus = load_corpus(job.config, cache_dir=setting.cache_dir)
    cpu = dataclasses.replace(setting.cpu or CpuShare(), threads=None, siblings=siblings)
    cpu.start()
    run = train_arm(client, setting, job, corpus, cpu, bars=False)
    run.result.model = None  # the comparison reads metrics and predictions; the model is logged in MLflow
    out.write_bytes(pickle.dumps(run))
