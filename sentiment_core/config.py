"""Every knob of a run, with the seed notebook's LSTM settings as defaults.

A run is repeatable from this object alone: scripts print it at start and log it whole as
MLflow params.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .data import SOURCES
from .errors import UserError
from .model import CELLS
from .text import TOKENIZERS

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
SEQUENCE_PATHS = ("auto", "packed", "padded")
OPTIMIZERS = ("adam", "adamw")
SCHEDULER_METRICS = ("valid_loss", "train_loss")


@dataclass
class TrainConfig:
    # model
    cell: str = "lstm"
    embedding_dim: int = 100
    hidden_dim: int = 256
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.6
    # data
    data: str = "embedded"
    data_dir: str | None = None
    split_seed: int = 1234  # fixed across training seeds: every seed sees the same split
    max_examples: int | None = None
    tokenizer: str = "split"
    max_vocab_size: int = 25_000
    min_freq: int = 1
    max_len: int | None = None  # truncate reviews to this many tokens; None = full reviews
    # optimisation
    optimizer: str = "adam"  # adam: weight decay is an L2 term in the gradient; adamw: decoupled
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    eval_batch_size: int = 256
    epochs: int = 30
    clip_grad_norm: float = 1.0
    scheduler_patience: int = 3
    scheduler_metric: str = "valid_loss"  # the seed stepped on train_loss, which hides overfitting
    early_stopping_patience: int = 0  # 0 = train every epoch; the best-valid weights are kept either way
    seed: int = 1234
    # execution
    device: str = "auto"
    precision: str = "auto"
    sequence_path: str = "auto"

    def validate(self) -> "TrainConfig":
        choices = {"cell": CELLS, "data": SOURCES, "tokenizer": TOKENIZERS, "device": DEVICES,
                   "precision": PRECISIONS, "sequence_path": SEQUENCE_PATHS, "optimizer": OPTIMIZERS,
                   "scheduler_metric": SCHEDULER_METRICS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"{name} = {getattr(self, name)!r} is not one of: {', '.join(allowed)}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.weight_decay < 0:
            raise UserError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        positive = ("embedding_dim", "hidden_dim", "num_layers", "batch_size", "eval_batch_size",
                    "epochs", "max_vocab_size", "min_freq")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("scheduler_patience", "early_stopping_patience"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_len is not None and self.max_len < 1:
            raise UserError(f"max_len must be >= 1 (or unset for full reviews), got {self.max_len}")
        if self.max_examples is not None and self.max_examples < 2:
            raise UserError(f"max_examples must be >= 2, got {self.max_examples}")
        if self.clip_grad_norm < 0:
            raise UserError(f"clip_grad_norm must be >= 0 (0 = off), got {self.clip_grad_norm}")
        return self

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known}).validate()
