"""Trained models the MLflow way: a pyfunc MLflow Model per run, the Model Registry, and
loading any of them back from a URI (``runs:/<id>/model``, ``models:/<name>@<alias>``).

The model is saved locally and logged as the run's ``model`` artifact through the explicit
client, so no process-global active run or tracking URI is touched.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from .errors import UserError, first_line

PACKAGE = Path(__file__).resolve().parent
MODEL_CODE = PACKAGE / "pyfunc_model.py"
ARTIFACT = "model"
BEST_ALIAS = "best"
EXAMPLE = ["A wonderful, moving film with a superb cast.", "Two hours I will never get back."]


def registered_name(cell: str) -> str:
    return f"sentiment-{cell}"


def save_model(directory: Path, checkpoint_dir: Path) -> Path:
    """A self-contained pyfunc model: the model code, this package (code_paths) and the checkpoint."""
    import pandas as pd
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                               outputs=Schema([ColSpec("string", "label"), ColSpec("double", "probability")]))
    # Requirements given, not inferred: inference imports the model in a subprocess (seconds).
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}",
                    f"pandas=={pd.__version__}", "numpy"]
    mlflow.pyfunc.save_model(str(directory), python_model=str(MODEL_CODE), artifacts={"checkpoint": str(checkpoint_dir)},
                             code_paths=[str(PACKAGE)], signature=signature,
                             input_example=pd.DataFrame({"text": EXAMPLE}), pip_requirements=requirements)
    return directory


def log_model(tracker, checkpoint_dir: Path) -> float:
    """Save and log the run's ``model``; returns the seconds it took."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tracker.log_artifacts(save_model(Path(tmp) / ARTIFACT, checkpoint_dir), ARTIFACT)
    return time.perf_counter() - started


def register(client: MlflowClient, run_id: str, cell: str, valid_acc: float, source_run_id: str) -> tuple[str, bool]:
    """A new version of ``sentiment-<cell>`` from the run's model; the alias ``best`` moves to
    the version with the highest valid accuracy so far. Returns (version, whether it is best)."""
    name = registered_name(cell)
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=f"IMDB sentiment, {cell} cell (sentiment-core)")
        except MlflowException:  # created meanwhile by another process
            pass
    version = client.create_model_version(name, source=f"runs:/{run_id}/{ARTIFACT}", run_id=run_id,
                                          tags={"valid_acc": f"{valid_acc:.6f}", "source_run_id": source_run_id})
    best = max(client.search_model_versions(f"name = '{name}'"),
               key=lambda v: (float(v.tags.get("valid_acc", "-1")), -int(v.version)))
    client.set_registered_model_alias(name, BEST_ALIAS, best.version)
    return str(version.version), str(best.version) == str(version.version)


def is_local_store(tracking_uri: str) -> bool:
    """A SQLite or file store on this machine (its artifacts are local files too)."""
    return tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri


@contextmanager
def quiet_download(tracking_uri: str):
    """MLflow draws a progress bar for every artifact download (39 files for one model): noise
    around a one-line answer when the files are only copied from this disk. Remote downloads (a
    tracking server) keep it. MLflow reads its switch from the environment at each download."""
    if not is_local_store(tracking_uri):
        yield
        return
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def download_model(uri: str, tracking_uri: str, destination: str | Path) -> Path:
    """A local copy of the MLflow Model at ``runs:/<id>/model`` or ``models:/<name>@<alias>`` /
    ``models:/<name>/<version>``, with one clear line when there is none."""
    client = MlflowClient(tracking_uri)
    if uri.startswith("models:/"):
        reference = uri[len("models:/"):]
        try:
            if "@" in reference:
                name, alias = reference.split("@", 1)
                version = client.get_model_version_by_alias(name, alias)
            else:
                name, number = reference.rsplit("/", 1)
                version = client.get_model_version(name, number)
        except (MlflowException, ValueError) as exc:
            raise UserError(f"no registered model version at {uri} in {tracking_uri}: {first_line(exc)}; "
                            "the 'Models' page of mlflow ui lists the names, versions and aliases") from None
        run_id, path = version.run_id, ARTIFACT
    elif uri.startswith("runs:/"):
        run_id, _, path = uri[len("runs:/"):].partition("/")
        path = path or ARTIFACT
    else:
        raise UserError(f"{uri!r} is not a model URI: use runs:/<run id>/model or models:/<name>@<alias>")
    try:
        with quiet_download(tracking_uri):
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(destination),
                                                       tracking_uri=tracking_uri)
    except MlflowException as exc:
        raise UserError(f"run {run_id} has no model at '{path}' in {tracking_uri}: {first_line(exc)}") from None
    if not (Path(local) / "MLmodel").is_file():
        raise UserError(f"{uri} is not an MLflow Model (no MLmodel file); a run's model is at runs:/<id>/model")
    return Path(local)


def checkpoint_of(model_dir: Path) -> Path:
    """The checkpoint folder inside a logged model."""
    return Path(model_dir) / "artifacts" / "checkpoint"
