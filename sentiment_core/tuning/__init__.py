"""Optuna studies of dropout and weight decay: what is searched and optimized (``space``), one
trial (``objective``), the rung pruner (``rungs``), the Pareto front (``pareto``), storages and
torn journals (``storage``, ``journal``), what a study is bound to (``fingerprint``), trials of dead
workers (``stale``), a study command (``spec``, ``study``), settings queued from another study
(``carry_over``), retrains over seeds (``retraining``) and the report (``report``)."""

from .fingerprint import default_study_name, fingerprint_differences, study_fingerprint
from .objective import PRUNERS
from .rungs import RungPruner
from .space import OBJECTIVES, SPACES, SearchSpace
from .spec import StudySpec
from .storage import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, default_storage, journal_path, make_storage
from .study import run_study

__all__ = ["default_study_name", "fingerprint_differences", "study_fingerprint", "PRUNERS", "RungPruner",
           "OBJECTIVES", "SPACES", "SearchSpace", "StudySpec", "GRACE_PERIOD_S", "HEARTBEAT_INTERVAL_S",
           "default_storage", "journal_path", "make_storage",
           "run_study"]
