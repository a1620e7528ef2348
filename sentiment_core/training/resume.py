"""Resuming a run that was cut off: the training state saved after every epoch.

A 30-epoch run on two CPU cores takes over an hour, and a study or a session can end in the
middle of one. After every epoch (at most once in 30 s, and after the last) the loop saves what
the next epoch depends on (weights, optimizer, scheduler, loss scaler, random state, the history
so far, the best epoch and its weights) to one file named by a hash of what decides the run: the
whole config and the encoded data. The same run started again (the same command, a study's retry
of a failed trial, a retrain cut off midway) finds the file and goes on from the next epoch;
training is deterministic per seed on a given runtime, so the result equals an uninterrupted
run's. A finished run deletes its file (a tracked run once it is logged), so running a finished
command again trains anew.

The file holds tensors and plain values only (``torch.load(weights_only=True)``), is replaced
atomically (a kill mid-write leaves the previous epoch's file), and is locked while a process
trains the run: a second process with the same run trains without saving rather than racing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.splits import default_cache_dir
from ..errors import first_line
from ..system.locks import file_lock
from .config import TrainConfig
from .runtime import resolved_config

FORMAT = 1
SUFFIX = ".pt"


def resume_dir_of(cache_dir: str | Path | None) -> Path:
    """Where runs keep their state: beside the token cache (``--cache-dir``), a machine's, not a
    repository's (tens of MB per run in progress)."""
    return Path(cache_dir or default_cache_dir()) / "interrupted-runs"


def corpus_digest(corpus) -> str:
    """A content hash of the encoded data (vocabulary, token ids, labels) the run trains on."""
    h = hashlib.sha256("\n".join(corpus.vocab.itos).encode("utf-8", "surrogatepass"))
    for name, split in corpus.items():
        h.update(name.encode())
        for array in (split.flat, split.offsets, split.labels):
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def run_key(config: TrainConfig, data_digest: str) -> str:
    """What identifies a run for resuming: the config with device and precision resolved (a state
    saved on one runtime does not continue on another) and the data (:func:`corpus_digest`)."""
    text = json.dumps({"format": FORMAT, "config": config.to_dict(), "data": data_digest}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class Resumed:
    """What a saved state gives back to the loop."""
    history: list[dict]
    best: dict | None
    best_state: dict | None


class ResumeFile:
    """The saved state of one run in ``directory``; ``None`` where a run saves nothing."""

    # At most one save per this many seconds, and always after the last epoch. A full-data CPU
    # epoch takes minutes (every epoch is saved); on a GPU an epoch can take seconds, and writing
    # tens of MB after each would cost several percent. A cut-off run loses at most this much.
    every_s = 30.0

    def __init__(self, directory: str | Path, config: TrainConfig, data_digest: str):
        """``config`` resolved (:func:`runtime.resolved_config`); ``data_digest``: :func:`corpus_digest`
        (hashing a full corpus takes ~0.05 s: callers with many runs on one corpus hash it once)."""
        self.directory = Path(directory)
        self.config = config
        self.key = run_key(config, data_digest)
        self.path = self.directory / (self.key + SUFFIX)
        self.saved_at = -math.inf

    @classmethod
    def of_run(cls, directory: str | Path, config: TrainConfig, runtime, corpus) -> ResumeFile:
        """The file of ``config`` as it runs on ``runtime`` on ``corpus``."""
        return cls(directory, resolved_config(config, runtime), corpus_digest(corpus))

    @contextlib.contextmanager
    def claimed(self) -> Iterator[ResumeFile | None]:
        """This file while this process holds its lock, or None if another process trains the same run."""
        lock = self.path.with_suffix(".lock")
        with file_lock(lock, wait=False) as held:
            if not held:
                print(f"another process is training this same run (lock {lock}): this one starts "
                      "from epoch 1 and saves no state to resume from", flush=True)
                yield None
                return
            try:
                yield self
            finally:
                if not self.path.exists():  # nothing left to resume: no lock file either (one per run would pile up)
                    lock.unlink(missing_ok=True)

    def save(self, model, optimizer, scheduler, scaler, history: list[dict], best: dict | None,
             best_state: dict | None, last: bool = False) -> None:
        if not last and time.monotonic() - self.saved_at < self.every_s:
            return
        state = {
            "format": FORMAT, "config": self.config.to_dict(), "history": history, "best": best,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            # The best epoch's weights, unless they are the current ones (the common case early on).
            "best_state": None if best is history[-1] else best_state,
            "rng": random_state(),
        }
        partial = self.path.with_suffix(".partial")
        torch.save(state, partial)
        os.replace(partial, self.path)  # atomic: a kill mid-write leaves the previous epoch's file
        self.saved_at = time.monotonic()

    def load(self, model, optimizer, scheduler, scaler) -> Resumed | None:
        """Restore the saved state into the given objects; None (training starts at epoch 1) when
        there is none, or it cannot be read (said in one line, and the file is set aside)."""
        if not self.path.exists():
            return None
        try:  # read and check it whole before anything is restored: a half-restored model would not start afresh
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                raise ValueError(f"not a format-{FORMAT} training state")
            if state.get("config") != self.config.to_dict():
                raise ValueError("it was saved for another config")
        except Exception as error:  # noqa: BLE001 -- any unreadable file: train from scratch, keep it for a look
            aside = self.path.with_suffix(".unreadable")
            os.replace(self.path, aside)
            print(f"could not resume from {self.path} ({first_line(error)}); moved it to {aside.name} "
                  "and training starts from epoch 1", flush=True)
            return None
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        set_random_state(state["rng"])
        history = state["history"]
        best = next(r for r in history if r["epoch"] == state["best"]["epoch"]) if state["best"] else None
        best_state = state["best_state"] if state["best_state"] is not None else clone_state(model)
        return Resumed(history, best, best_state)

    def discard(self) -> None:
        """Delete the state, and its lock file unless a process holds it (this one, while it trains)."""
        self.path.unlink(missing_ok=True)
        lock = self.path.with_suffix(".lock")
        if not lock.exists():
            return
        with file_lock(lock, wait=False) as held:
            if held:
                lock.unlink(missing_ok=True)


def clone_state(model) -> dict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def random_state() -> dict:
    """The random streams training draws from: torch's (dropout, word dropout) on CPU and every
    GPU. Batches are shuffled from (seed, epoch) alone and need none."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # The current GPU's only (a run trains on one): a state of every visible GPU made the run
        # fail to resume where fewer are visible (a study worker sees one), an IndexError.
        state["cuda"] = torch.cuda.get_rng_state()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def cuda_state_for(saved, device_index: int) -> torch.Tensor | None:
    """The saved CUDA generator state for GPU ``device_index``: files from before held a list, one
    per GPU visible then; now one tensor. None where the list has no entry for this GPU."""
    if isinstance(saved, (list, tuple)):
        return saved[device_index] if device_index < len(saved) else None
    return saved


def set_random_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = cuda_state_for(state["cuda"], torch.cuda.current_device())
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)
    if "mps" in state:
        torch.mps.set_rng_state(state["mps"])
