"""The MLflow store and experiment a command logs to, and the link a person opens to see it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ..errors import UserError, first_line
from ..system.locks import file_lock
from .races import repeat_on_duplicate_key

DEFAULT_EXPERIMENT = "rnn-vs-lstm"
# MLflow 3 opens an experiment in its GenAI view (traces) unless told it holds model training:
# newer releases read this experiment tag; 3.17 reads the URL parameter of ui_link.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def resolve_tracking_uri(repo_root: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the repository's ``mlflow.db`` as an absolute path,
    so a run started from any directory writes the same store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path(repo_root).resolve() / 'mlflow.db'}"


def resolve_experiment_name(name: str | None, default: str = DEFAULT_EXPERIMENT) -> str:
    return name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or default


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _store_lock_path(uri: str) -> Path | None:
    """Serialise first-time schema creation of a SQLite store across processes.

    Several processes migrating a fresh mlflow.db at once crash ("table alembic_version already
    exists"); an exclusive lock on a file beside the database makes them take turns.
    """
    path = sqlite_path(uri)
    return path.with_name(path.name + ".lock") if path is not None else None


def open_experiment(uri: str, experiment_name: str) -> tuple[MlflowClient, str]:
    """A client on ``uri`` (creating the store if needed) and the experiment's id (created if needed)."""
    try:
        with file_lock(_store_lock_path(uri)):
            client = MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name(experiment_name)  # makes the schema of a new store
            db = sqlite_path(uri)
            if db is not None:
                use_write_ahead_log(db)
            if experiment is not None:
                if experiment.tags.get("mlflow.experimentKind") is None:
                    for key, value in EXPERIMENT_KIND.items():
                        repeat_on_duplicate_key(  # workers opening the experiment together
                            lambda k=key, v=value: client.set_experiment_tag(experiment.experiment_id, k, v))
                return client, experiment.experiment_id
            artifact_location = None
            if db is not None:
                # Beside the database, not in whatever directory the run was started from.
                artifact_location = (db.parent / "mlruns" / experiment_name).as_uri()
            try:
                return client, client.create_experiment(experiment_name, artifact_location=artifact_location,
                                                        tags=EXPERIMENT_KIND)
            except MlflowException:  # created meanwhile by another worker (non-SQLite stores)
                experiment = client.get_experiment_by_name(experiment_name)
                if experiment is None:
                    raise
                return client, experiment.experiment_id
    except MlflowException as exc:
        raise UserError(f"cannot open the MLflow store {uri}: {first_line(exc)}") from None
    except Exception as exc:  # sqlalchemy / requests errors for unreachable stores
        raise UserError(f"cannot reach the MLflow store {uri} ({type(exc).__name__}): "
                        f"{first_line(exc)}; check MLFLOW_TRACKING_URI") from None


def use_write_ahead_log(db: Path) -> None:
    """Put a SQLite store in WAL mode, a setting kept in the file (after that, a cheap check).

    In SQLite's default rollback journal, a read left unfinished blocks every write until it is
    gone: Ctrl-C or SIGTERM landing while SQLAlchemy reads rows can leave its cursor alive in the
    interrupted frames, and the run's KILLED status then waits out MLflow's 20 s busy timeout and is
    refused (CI saw it; benchmarks/interrupt_anywhere.py: after 5 and 10 of 300 interruptions). In
    WAL mode readers never block writers (none of 600), which also spares the workers of a study
    that log to one store. WAL needs the store on a local file system (as SQLite's locking does); a store that
    is busy or read-only stays as it is, and the next command tries again.
    """
    if not db.is_file():  # a URI with options (sqlite:///mlflow.db?...): not a path to open as is
        return
    connection = sqlite3.connect(db, timeout=5)
    try:
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        pass
    finally:
        connection.close()


def ui_link(uri: str, experiment_id: str) -> str:
    """Where a person sees the experiment's runs (the training view, not the GenAI overview): the
    tracking server itself, or `mlflow ui` started on this store."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def browse_lines(uri: str, experiment_id: str) -> str:
    """The end of every command: how to open what it logged."""
    start = "" if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}, then open "
    return f"browse: {start}{ui_link(uri, experiment_id)}"
