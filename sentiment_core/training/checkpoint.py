"""Checkpoints in safe formats: weights as a tensor-only state dict (loaded with
``weights_only=True``), vocabulary and config as JSON. No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.batching import truncate_ids
from ..data.text import Vocabulary, get_tokenizer
from ..errors import UserError, first_line
from .config import TrainConfig
from .loop import build_model
from .model import RecurrentClassifier

WEIGHTS, VOCAB, CONFIG = "weights.pt", "vocab.json", "config.json"
LABELS = ("negative", "positive")


def save_checkpoint(directory: str | Path, model: RecurrentClassifier, vocab: Vocabulary, config: TrainConfig,
                    extra: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    torch.save(state, directory / WEIGHTS)
    vocab.save(directory / VOCAB)
    (directory / CONFIG).write_text(json.dumps({"config": config.to_dict(), **(extra or {})}, indent=2))
    return directory


@dataclass
class Checkpoint:
    model: RecurrentClassifier
    vocab: Vocabulary
    config: TrainConfig
    extra: dict


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    directory = Path(directory)
    missing = [name for name in (WEIGHTS, VOCAB, CONFIG) if not (directory / name).is_file()]
    if missing:
        raise UserError(f"{directory} is not a checkpoint: missing {', '.join(missing)}")
    try:
        meta = json.loads((directory / CONFIG).read_text())
        config = TrainConfig.from_dict(meta.pop("config"))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read {directory / CONFIG}: {exc}") from None
    vocab = Vocabulary.load(directory / VOCAB)
    model = build_model(config, vocab)
    try:
        state = torch.load(directory / WEIGHTS, map_location=device, weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, EOFError) as exc:
        raise UserError(f"cannot load weights from {directory / WEIGHTS}: {first_line(exc)}") from None
    return Checkpoint(model.to(device).eval(), vocab, config, meta)


@torch.no_grad()
def predict(checkpoint: Checkpoint, texts: list[str]) -> list[tuple[str, float]]:
    """(label, probability of that label) for each text, with the checkpoint's tokenizer."""
    tokenize = get_tokenizer(checkpoint.config.tokenizer)
    encoded = []
    for number, text in enumerate(texts, 1):
        ids = checkpoint.vocab.encode(tokenize(text))
        if not ids:
            raise UserError(f"review {number} is empty after tokenization: give some words to score")
        encoded.append(truncate_ids(ids, checkpoint.config.max_len, checkpoint.config.truncate))
    device = next(checkpoint.model.parameters()).device
    results = []
    for ids in encoded:
        tokens = torch.tensor([ids], device=device)
        logits = checkpoint.model(tokens, torch.tensor([len(ids)]), path="padded")
        probabilities = logits.float().softmax(dim=1)[0]
        label = int(probabilities.argmax())
        results.append((LABELS[label], float(probabilities[label])))
    return results
