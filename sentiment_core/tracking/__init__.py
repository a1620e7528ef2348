"""MLflow: the store and experiment a command logs to (``store``), runs with their tags, metrics and
reaping (``runs``), one tracked training run (``tracked_run``), LoggedModels, the registry and
loading models back (``models``, with the pyfunc model's code in ``pyfunc_model``)."""

from .models import download_checkpoint, download_model, register, registered_name
from .runs import RunTracker
from .store import open_experiment, resolve_experiment_name, resolve_tracking_uri, ui_link
from .tracked_run import TrackedRun, run_training

__all__ = ["download_checkpoint", "download_model", "register", "registered_name", "RunTracker", "open_experiment",
           "resolve_experiment_name", "resolve_tracking_uri", "ui_link", "TrackedRun", "run_training"]
