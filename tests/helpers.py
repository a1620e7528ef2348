"""Helpers shared by the tests that start real servers and worker processes."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
COMPARE = REPO / "experiments" / "compare_rnn_lstm.py"
PREDICT = REPO / "experiments" / "predict.py"
TUNE = REPO / "experiments" / "tune_regularization.py"

# A model and data slice small enough for a whole run in seconds (every training script takes these
# flags). One thread, fixed: two test processes share two cores, and the threads that follow the
# load (cpu_share) measure for half a second per epoch; tests/test_cpu_share.py covers those.
TINY = ["--max-examples", "200", "--max-len", "60", "--hidden-dim", "32", "--embedding-dim", "16",
        "--max-vocab-size", "3000", "--quiet", "--threads", "1"]
# A trial that is still running when a test kills it: many epochs, no early stop.
ENDLESS = ["--epochs", "500", "--early-stopping-patience", "0"]


def run_script(args, env_uri, cwd, cache_dir, timeout=300, script=COMPARE, **popen):
    """Run one of the experiments/ scripts (the comparison by default) against the store ``env_uri``."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_dir)}
    if env_uri:
        env["MLFLOW_TRACKING_URI"] = env_uri
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, **popen)


def module_from_file(path: Path):
    """A script outside the package (benchmarks/, results/) as a module, to test its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = sys.modules[path.stem] = importlib.util.module_from_spec(spec)  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, cwd, *extra: str, timeout: float = 120, env: dict | None = None,
                  port: int | None = None) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (a free port unless given; ``env``: added to this
    process's environment); yields its URL once /health answers. Its output goes to
    ``cwd/mlflow-server-PORT.log`` (``server_log``), for a test to show when a request failed."""
    port = port or free_port()
    with open(server_log(cwd, port), "a") as log:  # the server keeps its own copy of the descriptor
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri,
                                   "--host", "127.0.0.1", "--port", str(port), *extra],
                                  cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                  # MLflow's job runner (eight more processes: a runner and huey
                                  # consumers for GenAI jobs) serves nothing this project uses.
                                  env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    tail = server_log(cwd, port).read_text()[-3000:]
                    raise RuntimeError(f"mlflow server did not start; its log ends:\n{tail}") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def server_log(cwd, port: int) -> Path:
    """Where ``mlflow_server`` on ``port`` writes its output."""
    return Path(cwd) / f"mlflow-server-{port}.log"


def kill_mid_trial(worker: subprocess.Popen, load_study: Callable[[], optuna.Study], timeout: float = 240,
                   sig: int = signal.SIGKILL, before: Callable[[], object] | None = None,
                   after: Callable[[], object] | None = None) -> tuple[str, str]:
    """Send ``sig`` (SIGKILL) to ``worker`` once its running trial has reported an epoch (calling
    ``before`` just before and ``after`` just after), and wait for it to exit (never leave it
    behind); the rest of its (stdout, stderr).

    Fails loudly when that moment never comes (the worker exited, or the timeout passed), so a
    test cannot mistake "killed too early or too late" for "the kill left nothing RUNNING"."""
    try:
        wait_for_an_epoch(worker, load_study, timeout)
        if before is not None:
            before()
        worker.send_signal(sig)
        if after is not None:
            after()
        return worker.communicate(timeout=180)  # SIGTERM: the worker ends its runs first
    finally:
        worker.kill()


def wait_for_an_epoch(worker: subprocess.Popen, load_study: Callable[[], optuna.Study], timeout: float = 240) -> None:
    """Until ``worker``'s running trial has reported an epoch; fails loudly if the worker exits
    first (with its stderr) or the timeout passes."""
    deadline = time.time() + timeout
    while True:
        if worker.poll() is not None:
            _, err = worker.communicate()
            raise AssertionError(f"the worker exited ({worker.returncode}) before a trial reported an epoch:\n"
                                 f"{err[-3000:]}")
        if time.time() > deadline:
            raise AssertionError(f"no running trial reported an epoch within {timeout:.0f} s")
        try:
            running = load_study().get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # the study does not exist yet
            running = []
        if running and running[0].intermediate_values:
            return
        time.sleep(0.5)


def read_until(stream, words: str) -> str:
    """What ``stream`` (a worker's stdout or stderr) says up to and including the first line with
    ``words``; everything, should it end first (the caller then finds the words missing)."""
    said = []
    while (line := stream.readline()) and words not in line:
        said.append(line)
    said.append(line)
    return "".join(said)


@functools.cache
def _empty_store_template() -> Path:
    """An MLflow SQLite store with its schema, made once per machine and MLflow version (in the
    temporary folder, so every tier and run after the first reuses it): creating one runs MLflow's
    migrations (3.5-5 s of CPU), copying it takes a millisecond. Made under a lock and moved into
    place whole: test processes that start together make it once and never read half of it."""
    import mlflow
    import sqlalchemy
    from mlflow import MlflowClient

    template = Path(tempfile.gettempdir()) / (f"sentiment-core-empty-store-mlflow-{mlflow.__version__}"
                                              f"-sqlalchemy-{sqlalchemy.__version__}.db")
    if template.exists():
        return template
    with open(template.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
            MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
            os.replace(folder / "mlflow.db", template)
            shutil.rmtree(folder, True)
    return template


def store(folder: Path, name: str = "mlflow.db") -> str:
    """The URI of a fresh (empty, schema made) SQLite MLflow store ``folder/name``. Experiments
    created in it put their artifacts next to it (tracking.open_experiment)."""
    target = Path(folder) / name
    if not target.exists():
        shutil.copyfile(_empty_store_template(), target)
    return f"sqlite:///{target}"


def tune(tmp_path, *args, timeout=600, background=False, runner=None):
    """The tuning command on a tiny slice, study "s" in a journal and a store under ``tmp_path``
    (in this process when ``runner`` is the run_inprocess fixture)."""
    variables = {"MLFLOW_TRACKING_URI": store(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    arguments = [*TINY, "--epochs", "2", "--storage", f"journal:{tmp_path / 'study.journal'}",
                 "--study-name", "s", "--output-dir", str(tmp_path / "out"), *args]
    if runner is not None:
        return runner(TUNE, arguments, variables, cwd=tmp_path)
    env = {**os.environ, **variables}
    command = [sys.executable, str(TUNE), *arguments]
    if background:
        return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def load_study(tmp_path) -> optuna.Study:
    """The study that ``tune`` made under ``tmp_path``."""
    from sentiment_core.tuning.storage import make_storage

    return optuna.load_study(study_name="s", storage=make_storage(f"journal:{tmp_path / 'study.journal'}"))


def log_same_datasets(tracking_uri: str, experiment_id: str, rounds: int, start, results) -> None:
    """A race test's worker (a process of its own): each round, a new run of its own that logs
    the round's datasets, the same datasets that every other worker logs, all set off together
    by ``start`` (a multiprocessing barrier). Puts the list of its failures on ``results``."""
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from sentiment_core.data.splits import Split, Splits
    from sentiment_core.errors import first_line
    from sentiment_core.tracking.runs import RunTracker

    client, failures = MlflowClient(tracking_uri), []
    for round_number in range(rounds):
        def split(name, n=round_number):
            return Split([f"round {n}, {name} review {i}" for i in range(4)], [0, 1, 0, 1])

        corpus = SimpleNamespace(splits=Splits("race", split("train"), split("valid"), split("test")))
        run = RunTracker(client, client.create_run(experiment_id).info.run_id)
        start.wait(timeout=300)
        try:
            run.log_datasets(corpus, "race-test")
        except Exception as error:  # noqa: BLE001 -- every failure is reported, none stops the rounds
            failures.append(f"round {round_number}: {type(error).__name__}: {first_line(error)}")
        run.end("FINISHED")
    results.put(failures)
