"""What makes a study's trials comparable: its fixed settings, where trials run, the search
space and the objective. Stored on the study; a command with other settings is refused.
"""

from __future__ import annotations

import hashlib
import json

from ..training.config import EXECUTION_FIELDS, TrainConfig
from .space import SEARCHED_FIELDS, SearchSpace

# Where trials run: part of what makes them comparable (bf16 and fp32, CPU and cuDNN kernels
# drift apart epoch by epoch as two seeds do), so a study runs on one of these only.
WHERE_IT_RUNS = EXECUTION_FIELDS


def study_fingerprint(config: TrainConfig, space: SearchSpace, objective: str = "accuracy") -> dict:
    """Everything that makes trials comparable: the fixed config (minus what the space searches),
    where trials run (``config`` resolved: cpu / fp32 / padded, ...), the search space and the
    objective."""
    fingerprint = _settings_fingerprint(config, space, objective)
    fingerprint["runtime"] = {k: getattr(config, k) for k in WHERE_IT_RUNS}
    return fingerprint


def _settings_fingerprint(config: TrainConfig, space: SearchSpace, objective: str) -> dict:
    searched = SEARCHED_FIELDS if space.kind == "extended" else ("embedding_dropout", "weight_decay")
    fixed = {k: v for k, v in config.to_dict().items() if k not in searched and k not in WHERE_IT_RUNS + ("seed",)}
    fingerprint = {"config": fixed, "space": space.fingerprint()}
    if objective != "accuracy":
        fingerprint["objective"] = objective
    return fingerprint


def fingerprint_differences(stored: dict, wanted: dict) -> list[str]:
    """What differs between a study's stored fingerprint and the one a command asks for.

    Fingerprints gain fields as the config does: a field missing from a stored one had its
    default value then (the knob did not exist), so it matches the default. Studies created
    before the fingerprint named the runtime have none stored: those match any runtime."""
    defaults = TrainConfig().to_dict()
    changed = sorted(k for k in set(stored["config"]) | set(wanted["config"])
                     if stored["config"].get(k, defaults.get(k)) != wanted["config"].get(k, defaults.get(k)))
    if "runtime" in stored:
        changed += [f"{k} (the study runs on {stored['runtime'].get(k, defaults[k])})" for k in WHERE_IT_RUNS
                    if stored["runtime"].get(k, defaults[k]) != wanted["runtime"][k]]
    if stored["space"] != wanted["space"]:
        changed.append("search space")
    if stored.get("objective") != wanted.get("objective"):
        changed.append("objective")
    return changed


def default_study_name(config: TrainConfig, space: SearchSpace, objective: str = "accuracy") -> str:
    # The name hashes the settings only, not the runtime: the names of studies made before the
    # runtime joined the fingerprint stay the same, and the same flags on another device find the
    # study and are refused with the reason, not silently given a second study.
    digest = hashlib.sha256(json.dumps(_settings_fingerprint(config, space, objective), sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.cell}-{config.data}-regularization-{digest}"
