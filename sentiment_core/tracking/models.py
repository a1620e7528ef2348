"""Trained models the MLflow way: each trained run's best-valid model as an MLflow 3 LoggedModel
(a pyfunc model from code, with the run's params and its summary metrics), the Model Registry,
and loading any of them back from a URI (``runs:/<id>/model``, ``models:/<name>@<alias>``).

Everything goes through an explicit client: no process-global active run or tracking URI.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

from ..errors import UserError, first_line
from .races import repeat_on_duplicate_key, upload_again_if_cut

PACKAGE = Path(__file__).resolve().parents[1]  # the whole sentiment_core package travels with a model
MODEL_CODE = Path(__file__).resolve().parent / "pyfunc_model.py"
ARTIFACT = "model"
BEST_ALIAS = "best"
EXAMPLE = ["A wonderful, moving film with a superb cast.", "Two hours I will never get back."]


# What a model was trained on, as its registered name says: versions under one name compare.
DATA_NAMES = {"embedded": "imdb", "imdb": "aclimdb", "rotten-tomatoes": "rotten-tomatoes"}


def should_register(register: bool | None, max_examples: int | None) -> bool:
    """--register / --no-register, else every run but a --max-examples smoke run (its valid
    accuracy, over a few hundred reviews, does not compare with a full run's)."""
    return max_examples is None if register is None else register


def registered_name(data: str, cell: str) -> str:
    """``sentiment-imdb-lstm``: the data (the embedded IMDB reviews; ``aclimdb`` for the official
    archive and its own split; ``rotten-tomatoes``) and the cell."""
    return f"sentiment-{DATA_NAMES.get(data, data)}-{cell}"


def save_model(directory: Path, checkpoint_dir: Path, model_id: str | None = None) -> Path:
    """A self-contained pyfunc model: the model code, this package (code_paths) and the checkpoint."""
    import pandas as pd
    import torch
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                               outputs=Schema([ColSpec("string", "label"), ColSpec("double", "probability")]))
    # Requirements given, not inferred: inference imports the model in a subprocess (seconds).
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}",
                    f"pandas=={pd.__version__}", "numpy"]
    # Saving loads the model once to check the input example: it copies the checkpoint with a
    # progress bar.
    with _environment("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
        mlflow.pyfunc.save_model(str(directory), python_model=str(MODEL_CODE),
                                 artifacts={"checkpoint": str(checkpoint_dir)}, code_paths=[str(PACKAGE)],
                                 signature=signature, mlflow_model=Model(model_id=model_id),
                                 input_example=pd.DataFrame({"text": EXAMPLE}), pip_requirements=requirements)
    return directory


def log_model(client: MlflowClient, run_id: str, checkpoint_dir: Path, params: dict) -> tuple[str, float]:
    """The run's best-valid model as an MLflow 3 LoggedModel named ``model`` (its source run:
    ``run_id``; its params: the run's config), READY once its files are in. ``runs:/<run>/model``
    resolves to it. Returns (model id, seconds it took)."""
    started = time.perf_counter()
    experiment_id = client.get_run(run_id).info.experiment_id
    model = client.create_logged_model(experiment_id, name=ARTIFACT, source_run_id=run_id,
                                       params={k: str(v) for k, v in params.items()})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            saved = str(save_model(Path(tmp) / ARTIFACT, checkpoint_dir, model.model_id))
            upload_again_if_cut(lambda: client.log_model_artifacts(model.model_id, saved))
    except BaseException:
        client.finalize_logged_model(model.model_id, "FAILED")
        raise
    client.finalize_logged_model(model.model_id, "READY")
    return model.model_id, time.perf_counter() - started


def logged_model_of(client: MlflowClient, run_id: str):
    """The READY LoggedModel named ``model`` that ``run_id`` produced, or None (runs logged before
    models were LoggedModels keep theirs as plain run artifacts, which runs:/ URIs still find)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    page_token = None
    while True:
        page = client.search_logged_models([experiment_id], filter_string=f"name = '{ARTIFACT}'", page_token=page_token)
        for model in page:
            if model.source_run_id == run_id and model.status == LoggedModelStatus.READY:
                return model
        if not page.token:
            return None
        page_token = page.token


@contextmanager
def _environment(name: str, value: str):
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def using_store(tracking_uri: str):
    """MLflow resolves ``models:/<model id>`` (a LoggedModel, also behind ``runs:/<run>/model``)
    through the *global* tracking URI, whatever client asked: the SQL registry's
    ``create_model_version`` and the artifact repository both call ``MlflowClient()``. This
    points the global one (its environment variable) at ``tracking_uri`` meanwhile."""
    return _environment("MLFLOW_TRACKING_URI", tracking_uri)


def register(client: MlflowClient, run_id: str, name: str, valid_acc: float, valid_digest: str | None,
             source_run_id: str) -> tuple[str, bool]:
    """A new version of ``name`` from the run's model (``models:/<model id>`` for a LoggedModel);
    then the alias ``best`` settles (``settle_best``). Returns (version, whether it holds best)."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=f"IMDB-style sentiment ({name}), sentiment-core")
        except MlflowException:  # created meanwhile by another process
            pass
    model = logged_model_of(client, run_id)
    tags = {"valid_acc": f"{valid_acc:.6f}", "source_run_id": source_run_id,
            **({"valid_digest": valid_digest} if valid_digest else {}),
            **({"model_id": model.model_id} if model else {})}
    if model is None:
        version = client.create_model_version(name, source=f"runs:/{run_id}/{ARTIFACT}", run_id=run_id, tags=tags)
    else:
        with using_store(client.tracking_uri):
            version = client.create_model_version(name, source=f"models:/{model.model_id}", run_id=run_id, tags=tags,
                                                  model_id=model.model_id)
    if model is not None:  # the model's page lists its registered versions from this tag
        listed = json.loads(client.get_logged_model(model.model_id).tags.get("mlflow.modelVersions", "[]"))
        client.set_logged_model_tags(model.model_id, {"mlflow.modelVersions": json.dumps(
            listed + [{"name": name, "version": str(version.version)}])})
    best = settle_best(client, name)
    return str(version.version), best == str(version.version)


def settle_best(client: MlflowClient, name: str, rounds: int = 10) -> str:
    """Point ``best`` at the version with the highest valid accuracy among those validated on the
    same split (tag ``valid_digest``) as the version holding it (none holds it yet: the newest's
    split). Accuracies on other splits do not compare, so such versions never take it. Read again
    after each change until the alias stands: two processes registering at once both end on the
    better version, whichever writes last."""
    for _ in range(rounds):
        versions = client.search_model_versions(f"name = '{name}'")
        try:
            holder = client.get_model_version_by_alias(name, BEST_ALIAS)
        except MlflowException:
            holder = None
        reference = holder or max(versions, key=lambda v: int(v.version))
        same_split = [v for v in versions if v.tags.get("valid_digest") == reference.tags.get("valid_digest")]
        best = max(same_split, key=lambda v: (float(v.tags.get("valid_acc", "-1")), -int(v.version)))
        if holder is not None and str(holder.version) == str(best.version):
            return str(best.version)
        # Two processes setting the alias first at once both insert its row: the loser writes again.
        repeat_on_duplicate_key(lambda v=best.version: client.set_registered_model_alias(name, BEST_ALIAS, v))
    return str(best.version)


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
    with _environment("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
        yield


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
        with quiet_download(tracking_uri), using_store(tracking_uri):
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


def download_checkpoint(uri: str, run_id: str, destination: str | Path) -> Path:
    """The checkpoint of a run: inside its MLflow Model, or (runs logged before models were) the
    run's own ``checkpoint`` folder."""
    for path in ("model/artifacts/checkpoint", "checkpoint"):
        try:
            with quiet_download(uri), using_store(uri):
                return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                                                dst_path=str(destination), tracking_uri=uri))
        except (MlflowException, OSError) as exc:
            error = exc
    raise UserError(f"run {run_id} has no model or checkpoint in {uri}: {first_line(error)}")
