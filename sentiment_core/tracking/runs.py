"""The MLflow adapter: turns the training core's per-epoch records into MLflow runs.

Uses an explicit :class:`mlflow.MlflowClient` and run ids rather than the fluent API's
process-global "active run", so several runs (a parent and its children, or Optuna trials in
threads) can be open at once without stepping on each other.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag

from ..data.corpus import Corpus
from ..errors import causes, first_line, interruption, root_cause, was_interrupted
from ..system.processes import is_alive, process_identity
from .races import repeat_on_duplicate_key, upload_again_if_cut
from .store import open_experiment, resolve_experiment_name, resolve_tracking_uri

# MLflow caps a param value at 6000 characters and a batch at 100 params / 1000 metrics.
_BATCH = 100


def environment_tags(repo_root: str | Path, device_name: str) -> dict[str, str]:
    import torch

    tags = {"torch_version": torch.__version__, "mlflow_version": mlflow.__version__, "device_name": device_name,
            "torch_threads": str(torch.get_num_threads())}
    if device_name.startswith("cuda"):  # which GPU of the machine (workers get one each)
        tags["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "all")
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True,  # noqa: E731
                                           check=True, timeout=10).stdout.strip()
        tags["mlflow.source.git.commit"] = run("rev-parse", "HEAD")
        tags["git_commit"] = tags["mlflow.source.git.commit"]
        tags["git_dirty"] = str(bool(run("status", "--porcelain", "--untracked-files=no")))
    except (OSError, subprocess.SubprocessError):
        tags["git_commit"] = "unknown"
    return tags


def context_tags() -> dict[str, str]:
    """What MLflow's fluent API tags a run with (``mlflow.source.name`` = the script,
    ``mlflow.source.type``, ``mlflow.source.git.commit`` / ``.branch`` / ``.repoURL``,
    ``mlflow.user``), resolved for this process."""
    from mlflow.tracking.context.registry import resolve_tags

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {k: str(v) for k, v in resolve_tags().items()}


class TrackingOutageNotice(logging.Handler):
    """MLflow's REST client retries a tracking server that does not answer (connection refused,
    HTTP 5xx) with backoff, for MLFLOW_HTTP_REQUEST_MAX_RETRIES tries; urllib3 logs each retry.
    This turns them into one line when the wait starts and one when a write goes through again."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.since: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.since is None and record.getMessage().startswith("Retrying"):
            from mlflow.environment_variables import (
                MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
                MLFLOW_HTTP_REQUEST_MAX_RETRIES,
            )

            retries, factor = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()
            bound = sum(min(factor * 2**k, 120) for k in range(retries))  # urllib3 caps one wait at 120 s
            self.since = time.monotonic()
            print(f"the tracking server does not answer: MLflow retries for up to about {bound:.0f} s "
                  f"(MLFLOW_HTTP_REQUEST_MAX_RETRIES={retries})", file=sys.stderr, flush=True)

    def back(self) -> None:
        if self.since is not None:
            print(f"the tracking server answered again after {time.monotonic() - self.since:.0f} s: going on",
                  file=sys.stderr, flush=True)
            self.since = None


@functools.cache
def tracking_outage_notice() -> TrackingOutageNotice:
    """The process's notice (urllib3's logger is the process's too), installed once."""
    notice = TrackingOutageNotice()
    logger = logging.getLogger("urllib3.connectionpool")
    logger.addHandler(notice)
    logger.propagate = False  # its raw retry lines would repeat ours, once per retry
    return notice


class RunTracker:
    """One MLflow run: params, tags, per-epoch metrics, artifacts, and a terminal status."""

    def __init__(self, client: MlflowClient, run_id: str):
        """Attach to an existing run."""
        self.client, self.run_id = client, run_id
        self.outage = tracking_outage_notice()

    @classmethod
    def create(cls, client: MlflowClient, experiment_id: str, run_name: str, parent_run_id: str | None = None,
               tags: dict[str, str] | None = None) -> RunTracker:
        # The process that owns the run: if it dies without a word (SIGKILL, out of memory), the
        # next command on this store finds the run RUNNING with a dead owner and ends it KILLED.
        # MLflow's own context (script, source type, git commit and branch, user), which its fluent
        # API adds and create_run does not: the UI's Source column and run page show it.
        all_tags = {**context_tags(), **process_tags(), **{k: str(v) for k, v in (tags or {}).items()}}  # REST: strings
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        return cls(client, client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id)

    def log_params(self, params: dict) -> None:
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def set_tags(self, tags: dict) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict, step: int = 0, model_id: str | None = None) -> None:
        """``model_id``: the metrics belong to that LoggedModel too (its page shows them)."""
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step, model_id=model_id)
                                                    for k, v in metrics.items()])
        self.outage.back()

    def log_epoch(self, record: dict) -> None:
        """The ``on_epoch_end`` hook: every metric of the record at ``step`` = epoch (from 1)."""
        self.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=record["epoch"])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        upload_again_if_cut(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        upload_again_if_cut(lambda: self.client.log_artifacts(self.run_id, str(directory), artifact_path))

    def log_datasets(self, corpus: Corpus, data_source: str) -> None:
        """The three splits as MLflow dataset inputs, with this project's content digests."""
        import pandas as pd

        if corpus.splits is None:
            return
        inputs = []
        for name, split in corpus.splits.items():
            frame = pd.DataFrame({"text": split.texts, "label": split.labels})
            with warnings.catch_warnings():  # schema hints about integer columns: not actionable here
                warnings.simplefilter("ignore")
                dataset = mlflow.data.from_pandas(frame, source=data_source, targets="label",
                                                  name=f"{corpus.splits.source}-{name}", digest=split.digest())
                entity = dataset._to_mlflow_entity()
            inputs.append(DatasetInput(entity, [InputTag("mlflow.data.context", name)]))
        # Workers starting together on one experiment race to insert the same dataset rows.
        repeat_on_duplicate_key(lambda: self.client.log_inputs(self.run_id, datasets=inputs))

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)

    def fail_on_exit(self) -> None:
        """Make :meth:`terminating` end the run FAILED although no exception escaped."""
        self._failed = True

    @contextlib.contextmanager
    def terminating(self) -> Iterator[RunTracker]:
        """End the run FINISHED, or KILLED on Ctrl-C / SIGTERM, or FAILED on an error; re-raise.

        A run is never left RUNNING by an exception that Python can see.
        """
        self._failed = False
        with ending(self.end, self.client, finished=lambda: "FAILED" if self._failed else "FINISHED"):
            yield self


@contextlib.contextmanager
def ending(end: Callable[[str], object], client: MlflowClient,
           finished: Callable[[], str] = lambda: "FINISHED") -> Iterator[None]:
    """Run the block, then ``end`` with how it ended: ``finished()`` (FINISHED), KILLED (Ctrl-C,
    SIGTERM) or FAILED on an error; re-raise. ``client``: the store ``end`` writes to.

    An interruption stays one even when the store refuses the status (another process holds its
    lock): an error raised here would turn Ctrl-C into a crash, and callers would not do what they
    do on Ctrl-C (a study queues its trial again). The run then stays RUNNING until the next
    command on the store ends it KILLED (:func:`reap_dead_runs`). For the same reason an
    interruption leaves as a KeyboardInterrupt even when an error raised while a library handled
    it took its place.
    """
    engine = store_engine(client)
    if engine is not None:
        # A signal landing inside a read: SQLAlchemy invalidates the connection, then fails to close
        # its cursor and logs that, with a traceback, before any of this runs (seen in 1 of 2 full
        # test runs): noise of the interruption, dropped where it is logged.
        engine.pool.logger.addFilter(DROP_INTERRUPTED)
    try:
        yield
    except BaseException as stopped:
        # A signal landing inside a store write can surface as the write's own error, raised
        # while handling the KeyboardInterrupt: still an interruption, not a failure.
        if not was_interrupted(stopped):
            end("FAILED")
            raise
        release_cut_off_writes(client, stopped)
        try:
            with _quiet("mlflow.store.db.utils"):  # MLflow logs a refused write with a traceback; one line is ours
                end("KILLED")
        except Exception as error:  # noqa: BLE001 -- whatever the store says, this was an interruption
            error = root_cause(error)  # the driver's words ("database is locked"), not the wrappers'
            print(f"could not mark the run KILLED now ({type(error).__name__}: {first_line(error)}); the next "
                  "command on this store will", file=sys.stderr, flush=True)
        if not isinstance(stopped, KeyboardInterrupt):
            # An error raised while SQLAlchemy handled the interruption took its place (a commit cut
            # off raises AssertionError, which MLflow wraps): callers, down to the script's exit
            # 130, handle KeyboardInterrupt, not the wrapper (benchmarks/interrupt_anywhere.py).
            raise KeyboardInterrupt(*interruption(stopped).args) from stopped
        raise
    end(finished())


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """``logger_name``'s records dropped while the block runs."""
    logger = logging.getLogger(logger_name)
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


def release_cut_off_writes(client: MlflowClient, interrupt: BaseException) -> None:
    """Free the SQLite write lock that a write cut off by ``interrupt`` may still hold.

    Ctrl-C or SIGTERM landing inside a SQLite write can leave its connection in a transaction:
    kept alive by the interrupted frames, or returned to the engine's pool without a rollback.
    Every later write of any connection then waits out MLflow's 20 s busy timeout and fails with
    "database is locked" (seen on CI: the run could not be marked KILLED, nor the trial queued
    again). Clearing the frames closes the first kind; disposing the pool rolls back the second
    (the store opens new connections as it needs them).
    """
    # Closing a cursor whose read the signal cut off can fail ("Cannot operate on a closed
    # database"); SQLAlchemy's pool logs that with a traceback on the console (seen once in five
    # full test runs): noise on the way out of an interrupted command, not a problem to report.
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    # Every error of the chain: an error raised while handling the KeyboardInterrupt has its own
    # traceback, and the write's frames may sit in the interrupt's.
    for error in causes(interrupt):
        traceback.clear_frames(error.__traceback__)  # finished frames only; the traceback stays printable
    gc.collect()
    engine = store_engine(client)
    if engine is not None:
        engine.dispose()


def store_engine(client: MlflowClient):
    """The SQLAlchemy engine of ``client``'s store, or None (a tracking server, a file store)."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)  # no public way to the engine
    return getattr(store, "engine", None)


class _DropInterrupted(logging.Filter):
    """Drops a record whose error came of Ctrl-C or SIGTERM (a KeyboardInterrupt in its chain)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or not was_interrupted(error)


DROP_INTERRUPTED = _DropInterrupted()  # one object: adding it to a logger again adds nothing


PROCESS_TAGS = {"worker_host": "process_host", "worker_pid": "process_pid", "worker_start": "process_start"}
KILLED_REASON_TAG = "killed_reason"


def process_tags(identity: dict | None = None) -> dict[str, str]:
    """Owner tags for a run: this process, or the process ``identity`` names."""
    identity = identity or process_identity()
    return {tag: str(value) for key, tag in PROCESS_TAGS.items() if (value := identity.get(key)) is not None}


def reap_dead_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """End as KILLED every RUNNING run of the experiment whose owning process is gone from this
    host, with a tag saying why and when. Runs of other hosts, or without an owner, are left."""
    reaped = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000):
        tags = run.data.tags
        if not all(tag in tags for tag in PROCESS_TAGS.values()):
            continue
        identity = {"worker_host": tags["process_host"], "worker_start": tags["process_start"]}
        try:
            identity["worker_pid"] = int(tags["process_pid"])
        except ValueError:
            continue
        if is_alive(identity):
            continue
        found = datetime.now(timezone.utc).isoformat(timespec="seconds")
        client.set_tag(run.info.run_id, KILLED_REASON_TAG,
                       f"its process (pid {identity['worker_pid']} on {identity['worker_host']}) was gone when "
                       f"pid {os.getpid()} checked at {found}: killed without a chance to end the run")
        client.set_terminated(run.info.run_id, "KILLED")
        reaped.append(run.info.run_id)
    return reaped


def reap_and_report(client: MlflowClient, experiment_id: str, experiment_name: str) -> list[str]:
    reaped = reap_dead_runs(client, experiment_id)
    if reaped:
        print(f"ended {len(reaped)} run(s) in experiment '{experiment_name}' as KILLED: their processes on this "
              f"host are gone (tag {KILLED_REASON_TAG} says when)", flush=True)
    return reaped


@contextlib.contextmanager
def monitor_system(tracker: RunTracker, enabled: bool = True, gpu: bool = False) -> Iterator[None]:
    """Log MLflow system metrics (CPU, memory, disk, network; GPU with nvidia-ml-py) for the
    run while the block runs, when ``enabled`` and psutil is installed (the last, partial
    interval too; after Ctrl-C / SIGTERM, samples not yet written are dropped). On a GPU without
    nvidia-ml-py, one line says that the GPU's metrics are missing and how to get them."""
    monitor = None
    if enabled and gpu:
        try:
            import pynvml  # noqa: F401  (nvidia-ml-py)
        except ImportError:
            print("note: no GPU system metrics for this run: they need nvidia-ml-py (pip install -e '.[gpu]')",
                  flush=True)
    if enabled:
        try:
            import psutil  # noqa: F401  (MLflow's monitor needs it)
            from mlflow.system_metrics.system_metrics_monitor import (
                SystemMetricsMonitor,
            )

            # Its start/stop lines at INFO would interleave with the epoch lines of every run.
            logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
            monitor = SystemMetricsMonitor(tracker.run_id, tracking_uri=tracker.client.tracking_uri)
            monitor.start()
        except ImportError:
            monitor = None
    interrupted = False
    try:
        yield
    except BaseException as stopped:
        interrupted = was_interrupted(stopped)  # as ending() judges it: a cut-off write's error counts too
        raise
    finally:
        if monitor is not None:
            if interrupted:
                _stop_dropping_samples(monitor)
            else:
                monitor.finish()
                _log_last_window(monitor)


class _DroppedSamples:
    """Where an interrupted run's monitor sends the samples it still has: nowhere (the interface
    of MLflow's ``BatchMetricsLogger`` that the monitor uses)."""

    def __init__(self):
        self.data: list = []

    def record_metrics(self, metrics, step=None) -> None:
        pass

    def flush(self) -> None:
        pass


def _stop_dropping_samples(monitor) -> None:
    """Stop ``monitor`` after Ctrl-C / SIGTERM without writing the samples it still holds.

    On a store that another process locks every write waits out MLflow's 20 s busy timeout, then
    fails. ``finish()`` writes what its thread could not: another 20 s, MLflow's traceback and an
    ERROR line, all before the run's KILLED status waits out its own timeout (a CI run failed on
    that traceback). A sample the thread is writing right now still ends, silently, at worst after
    that timeout; the last window's samples are not worth a wait on the way out.
    """
    monitor.mlflow_logger = _DroppedSamples()
    with _quiet("mlflow.store.db.utils"), _quiet("mlflow.system_metrics.system_metrics_monitor"):
        monitor.finish()


def _log_last_window(monitor) -> None:
    """MLflow's monitor drops the samples of its last, unfinished interval, so a run shorter
    than the interval (10 s by default) would have no system metrics at all; log that window."""
    try:
        metrics = monitor.aggregate_metrics()
        if not metrics:  # stopped before its first sample
            monitor.collect_metrics()
            metrics = monitor.aggregate_metrics()
        if metrics:
            monitor.publish_metrics(metrics)
            monitor.mlflow_logger.flush()
    except Exception as error:  # metrics of the machine must never fail a training run
        logging.getLogger(__name__).warning("last system-metrics sample not logged: %s", error)


def reap_store(repo_root: str | Path, experiment: str | None) -> list[str]:
    """``--reap-only``: end the runs of dead processes in one experiment of the store, and say how many."""
    uri, name = resolve_tracking_uri(repo_root), resolve_experiment_name(experiment)
    client, experiment_id = open_experiment(uri, name)
    reaped = reap_dead_runs(client, experiment_id)
    print(f"ended {len(reaped)} run(s) of dead processes as KILLED in experiment '{name}' at {uri}")
    return reaped


def _param_value(value) -> str:
    text = "None" if value is None else str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."
