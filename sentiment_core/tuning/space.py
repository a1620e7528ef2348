"""What a regularization study searches (its space) and what it optimizes (its objectives).

``basic`` is the mission's space: the seed's dropout (on the embeddings) x weight decay.
``extended`` searches the whole dropout family of AWD-LSTM separately: embedding dropout,
output dropout, word dropout, DropConnect on the hidden-to-hidden weights, and weight decay with
its kind (an L2 term inside Adam, or AdamW's decoupled decay).

A trial's Optuna params are turned into config values by ``config_values`` whichever space made
them, so reports and retrains read every study the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from ..errors import UserError
from ..training.config import TrainConfig

SPACES = ("basic", "extended")
# Objective name -> (metric names, directions). Names are what optuna-dashboard shows.
OBJECTIVES = {
    "accuracy": (("best_valid_acc",), ("maximize",)),
    "accuracy-gap": (("best_valid_acc", "gap_at_best_valid"), ("maximize", "minimize")),
}
# The seed notebook's recipe in each space's params: embedding dropout 0.6, nothing else.
SEED_PARAMS = {
    "basic": {"dropout": 0.6, "weight_decay_on": False},
    "extended": {"embedding_dropout": 0.6, "output_dropout": 0.0, "word_dropout": 0.0, "weight_drop": 0.0,
                 "weight_decay_on": False, "weight_decay_kind": "adam"},
}
# Config fields a space may set: a study's fingerprint leaves them out.
SEARCHED_FIELDS = ("embedding_dropout", "output_dropout", "word_dropout", "weight_drop", "weight_decay", "optimizer")


def _check_range(flag: str, pair: tuple[float, float], low_bound: float = 0.0) -> None:
    low, high = pair
    if not low_bound <= low < high < 1.0:
        raise UserError(f"{flag} {low},{high}: need {low_bound:g} <= low < high < 1")


@dataclass
class SearchSpace:
    dropout: tuple[float, float] = (0.0, 0.8)
    weight_decay: tuple[float, float] = (1e-7, 1e-2)  # log-uniform; "off" (exactly 0) is its own choice
    kind: str = "basic"
    word_dropout: tuple[float, float] = (0.0, 0.3)  # extended only
    weight_drop: tuple[float, float] = (0.0, 0.6)  # extended only

    def validate(self) -> SearchSpace:
        if self.kind not in SPACES:
            raise UserError(f"unknown search space {self.kind!r}: choose one of {', '.join(SPACES)}")
        _check_range("--dropout-range", self.dropout)
        _check_range("--word-dropout-range", self.word_dropout)
        _check_range("--weight-drop-range", self.weight_drop)
        low, high = self.weight_decay
        if not 0.0 < low < high:
            raise UserError(f"--weight-decay-range {low},{high}: need 0 < low < high (log scale; "
                            "zero decay is searched separately)")
        return self

    @property
    def seed_params(self) -> dict:
        return SEED_PARAMS[self.kind]

    def param_names(self) -> tuple[str, ...]:
        """The Optuna params a trial of this space may have."""
        knobs = ("dropout",) if self.kind == "basic" else ("embedding_dropout", "output_dropout", "word_dropout",
                                                           "weight_drop", "weight_decay_kind")
        return knobs + ("weight_decay_on", "weight_decay")

    def fingerprint(self) -> dict:
        # The basic space's entry keeps the shape it had before spaces had kinds.
        described = {"dropout": list(self.dropout), "weight_decay": list(self.weight_decay)}
        if self.kind != "basic":
            described.update(kind=self.kind, word_dropout=list(self.word_dropout), weight_drop=list(self.weight_drop))
        return described

    def suggest(self, trial: optuna.Trial) -> dict:
        """Suggest a trial's params; returns the config values they stand for.

        Weight decay is a switch plus a log-uniform value: zero cannot sit on a log scale, and
        "no decay" (the seed) deserves to be proposed as often as any decade."""
        if self.kind == "basic":
            trial.suggest_float("dropout", *self.dropout)
        else:
            trial.suggest_float("embedding_dropout", *self.dropout)
            trial.suggest_float("output_dropout", *self.dropout)
            trial.suggest_float("word_dropout", *self.word_dropout)
            trial.suggest_float("weight_drop", *self.weight_drop)
        if trial.suggest_categorical("weight_decay_on", [False, True]):
            trial.suggest_float("weight_decay", *self.weight_decay, log=True)
        if self.kind == "extended":
            trial.suggest_categorical("weight_decay_kind", ["adam", "adamw"])
        return config_values(trial.params)


def weight_decay_of(params: dict) -> float:
    """A trial's weight decay: 0 when the switch is off (the trial then has no weight_decay param)."""
    return params.get("weight_decay", 0.0) if params.get("weight_decay_on") else 0.0


def config_values(params: dict) -> dict:
    """The TrainConfig values a trial's params stand for (in either space). The basic space's
    ``dropout`` is the seed's dropout: the embeddings'."""
    values = {"weight_decay": weight_decay_of(params)}
    if "dropout" in params:
        values["embedding_dropout"] = params["dropout"]
    for name in ("embedding_dropout", "output_dropout", "word_dropout", "weight_drop"):
        if name in params:
            values[name] = params[name]
    if "weight_decay_kind" in params:
        values["optimizer"] = params["weight_decay_kind"]
    return values


def params_to_config(params: dict, base: TrainConfig) -> TrainConfig:
    return base.replace(**config_values(params))
