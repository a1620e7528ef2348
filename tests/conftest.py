"""Shared fixtures: small slices of the real IMDB reviews, temporary caches and stores.

Nothing here writes into the repository's mlflow.db or studies/: every test that tracks gets
a temporary MLflow store and Optuna storage.
"""

from __future__ import annotations

import gc
import os

import ordering
import pytest

from sentiment_core.system.startup import heavy_imports

with heavy_imports():  # as the scripts do (sentiment_core/system/startup.py)
    import torch

    from sentiment_core.data.corpus import load_corpus
    from sentiment_core.training.config import TrainConfig

# Keep test runs off the user's real store even if a test forgets its own URI.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
# One torch thread per test process and per script it starts: pytest runs two test processes
# on two cores (-n 2), and tiny models gain nothing from a second thread anyway.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


# Fixtures that run a script in a process of its own: a test that uses one starts processes too.
PROCESS_FIXTURES = {"compared", "learned"}


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true",
                     help="the inner loop: leave out the tests that start the scripts as processes (marked "
                          "processes; its time: docs/development.md); the full tiers before a submission")
    parser.addoption("--store-durations", action="store_true",
                     help="write each test's seconds into tests/durations.json, which orders the tests (longest "
                          "first on every worker; see tests/ordering.py)")


@pytest.hookimpl(wrapper=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: xdist's count (one test process per core), and one more for the integration
    tier alone. Its tests spend much of their time waiting (a tracking server away for 20 s,
    MLflow's 20 s busy timeout, a PostgreSQL restart) and a third process on two cores fills those
    waits: 201 s and 201 s with two, 174 s and 166 s with three (Zen 5, 2 cores). The default tier
    keeps its cores busy and was slower with three (162 s against 169 s and 184 s).
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides where it is set."""
    count = yield
    if config.getoption("markexpr", "") == "integration" and not os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return count + 1
    return count


def pytest_configure(config):
    config.pluginmanager.register(Ordering(), "ordering")
    if config.getoption("--store-durations"):
        config.pluginmanager.register(ordering.Recorder(), "store-durations")


def fixture_used(item) -> str:
    """The process fixture ``item`` uses ('' for none)."""
    return min(PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())), default="")


def pytest_collection_finish(session):
    # The test modules have imported MLflow, Optuna and the rest by now: their objects are never
    # garbage, so they leave the collector's passes (as the scripts' do after their imports).
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if fixture_used(item):
            item.add_marker(pytest.mark.processes)


class Ordering:
    """Last of all collection hooks, after -m and --quick left the tier's own tests: deal only
    those into the workers' lanes (lanes dealt from every test were emptied unevenly by -m)."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        if config.getoption("--quick"):
            slow = [item for item in items if item.get_closest_marker("processes")]
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("processes")]
        # A fixture's users side by side: xdist hands each worker a run of consecutive tests and
        # steals from the end of a run, so one worker builds the fixture once (the integration tier
        # built `compared` two or three times, 10-18 s each, when its users were spread out).
        used = {item: fixture_used(item) for item in items}
        items[:] = ordering.order(items, used, ordering.recorded(), ordering.worker_count())


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("token-cache")


@pytest.fixture(scope="session")
def tiny_config():
    """A few hundred real reviews, cut to 80 tokens: seconds per epoch on 2 cores."""
    return TrainConfig(max_examples=300, max_len=80, epochs=2, batch_size=32, hidden_dim=64,
                       embedding_dim=32, max_vocab_size=5000, device="cpu")


@pytest.fixture(scope="session")
def tiny_corpus(tiny_config, cache_dir):
    return load_corpus(tiny_config, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def compared(tmp_path_factory):
    """One tiny comparison (RNN, LSTM and the yardstick), 2 epochs, into a temporary SQLite store:
    shared by every test that only reads what a comparison leaves behind."""
    from helpers import TINY, run_script, store

    tmp = tmp_path_factory.mktemp("compare")
    uri = store(tmp)
    # --register: a --max-examples run is a smoke run, registered only when asked.
    proc = run_script([*TINY, "--epochs", "2", "--register", "--output-dir", str(tmp / "out")], uri, tmp, tmp / "cache")
    assert proc.returncode == 0, proc.stderr
    return uri, proc, tmp


@pytest.fixture
def run_inprocess(monkeypatch, capsys):
    """Run one of the experiments/ scripts' main in this test process, as ``python script args``
    would (same argv, environment, exit code, stdout and stderr), minus the 3-4 s an interpreter
    spends importing torch and MLflow: for tests of what a script prints and how it exits."""
    import runpy
    import signal
    import subprocess
    import sys

    def run(script, args, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, str(value))
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", [str(script), *map(str, args)])
        monkeypatch.setattr(sys, "path", list(sys.path))  # the script prepends the repository root
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}  # run_main installs its own
        capsys.readouterr()
        try:
            runpy.run_path(str(script), run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        out = capsys.readouterr()
        return subprocess.CompletedProcess([str(script), *args], code, out.out, out.err)

    return run
