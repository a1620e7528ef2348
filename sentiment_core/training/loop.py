"""The training loop, written once for every cell. It knows nothing of MLflow or Optuna.

Metrics are exact over all examples: loss is the mean per-example cross-entropy and accuracy
is correct argmax predictions over examples (the seed averaged per batch and used a
sigmoid/round rule on two-class logits). ``train_loss`` / ``train_acc`` are running values,
accumulated during the epoch in training mode (under dropout, while the weights still move), as
the seed reported them; they understate overfitting. ``train_eval_loss`` / ``train_eval_acc``
measure the epoch's final weights in eval mode on a fixed sample of the training split as
large as the valid split, and the honest ``generalization_gap`` is ``train_eval_acc - valid_acc``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.batching import Batch, batch_indices, eval_batches, make_batch, to_device
from ..data.corpus import Corpus, EncodedSplit
from ..data.text import Vocabulary
from .config import TrainConfig
from .model import RecurrentClassifier
from .resume import ResumeFile
from .runtime import Runtime, accumulator_dtype, runtime_of, seed_everything

METRIC_NAMES = ("train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "valid_loss", "valid_acc",
                "test_loss", "test_acc")
# Update the progress bar (and read the running loss back from the device) every this many batches.
PROGRESS_EVERY = 10
# On the padded path an evaluation batch holds at most this many tokens once padded (and at most
# eval_batch_size reviews). An epoch's evaluation, fp32, 2 threads, Zen 3: the LSTM's 1.32x and the
# RNN's 1.14x the real tokens/s of batches of 256 reviews (benchmarks/eval_batches.py,
# results/benchmarks/eval_batches_zen3.txt; docs/speed.md, "Evaluation batches").
EVAL_PADDED_TOKENS = 32768


@dataclass
class TrainResult:
    history: list[dict]
    status: str  # completed | early_stopped | stopped | diverged
    best_epoch: int | None
    model: RecurrentClassifier  # holds the best-valid weights
    runtime: Runtime
    message: str = ""
    summary: dict = field(default_factory=dict)
    resumed_epochs: int = 0  # epochs restored from an interrupted run's saved state
    kept_state: ResumeFile | None = None  # with keep_finished: the state saved, for the caller to discard


def build_model(config: TrainConfig, vocab: Vocabulary) -> RecurrentClassifier:
    """The config's model over ``vocab`` (its size, and where <pad> and <unk> sit)."""
    return RecurrentClassifier(config.cell, len(vocab), vocab.pad_index, config.embedding_dim, config.hidden_dim,
                               config.num_layers, config.bidirectional, config.embedding_dropout,
                               config.output_dropout, word_dropout=config.word_dropout,
                               weight_drop=config.weight_drop, unk_index=vocab.unk_index)


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    device = next(model.parameters()).device
    # The fused kernel is ~8x faster than the per-tensor loop on CPU (the dense embedding
    # gradient makes the step ~13% of a batch otherwise); it exists for CPU and CUDA only.
    fused = device.type in ("cpu", "cuda")
    return kind(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def train_eval_sample(train_split: EncodedSplit, size: int, seed: int) -> EncodedSplit:
    """A fixed random sample of ``size`` training reviews (all of them if fewer), drawn from
    ``seed``: the same reviews every epoch, so the eval-mode train curve is not sampling noise."""
    if size >= len(train_split):
        return train_split
    rng = np.random.default_rng([seed, 0x7EA1])  # a stream of its own, apart from the split's
    return train_split.subset(np.sort(rng.choice(len(train_split), size=size, replace=False)))


@torch.no_grad()
def evaluate_predictions(model: RecurrentClassifier, split: EncodedSplit, runtime: Runtime, batch_size: int = 256,
                         max_len: int | None = None, truncate: str = "head",
                         max_padded_tokens: int | None = EVAL_PADDED_TOKENS) -> tuple[float, np.ndarray]:
    """Mean loss over every example of ``split`` and the predicted labels, in the split's order.
    On the padded path a batch holds at most ``max_padded_tokens`` once padded (None: no budget)."""
    model.eval()
    total_loss = torch.zeros((), dtype=accumulator_dtype(runtime.device), device=runtime.device)
    predictions = torch.empty(len(split), dtype=torch.int64, device=runtime.device)
    packed = runtime.sequence_path == "packed"
    lengths = split.lengths if max_len is None else np.minimum(split.lengths, max_len)
    for indices in eval_batches(lengths, batch_size, None if packed else max_padded_tokens):
        batch = make_batch(split, indices, model.embedding.padding_idx, max_len, truncate, packed)
        rows = torch.from_numpy(batch.indices)
        batch = batch.to(runtime.device)
        loss_sum, logits = _forward(model, batch, runtime, reduction="sum")
        total_loss += loss_sum.to(total_loss.dtype)
        predictions[to_device(rows, runtime.device)] = logits.argmax(dim=1)
    return total_loss.item() / len(split), predictions.cpu().numpy()


def evaluate(model: RecurrentClassifier, split: EncodedSplit, runtime: Runtime, batch_size: int = 256,
             max_len: int | None = None, truncate: str = "head",
             max_padded_tokens: int | None = EVAL_PADDED_TOKENS) -> tuple[float, float]:
    """(mean loss, accuracy) over every example of ``split``."""
    loss, predictions = evaluate_predictions(model, split, runtime, batch_size, max_len, truncate, max_padded_tokens)
    return loss, int((predictions == split.labels).sum()) / len(split)


def confusion_counts(labels: np.ndarray, predictions: np.ndarray) -> list[list[int]]:
    """2x2 counts: rows = true label negative/positive, columns = predicted label."""
    return np.bincount(np.asarray(labels) * 2 + np.asarray(predictions), minlength=4).reshape(2, 2).tolist()


def _forward(model, batch: Batch, runtime: Runtime, reduction: str):
    lengths = batch.device_lengths if batch.device_lengths is not None else batch.lengths
    with runtime.autocast():
        logits = model(batch.tokens, lengths, path=runtime.sequence_path, lengths_cpu=batch.lengths,
                       recurrent_fp32=runtime.recurrent_fp32)
    # The loss in fp32 whatever the autocast precision.
    return nn.functional.cross_entropy(logits.float(), batch.labels, reduction=reduction), logits


def is_better(record: dict, best: dict | None) -> bool:
    """Higher valid accuracy wins; equal accuracy is broken by lower valid loss."""
    if best is None:
        return True
    return (record["valid_acc"], -record["valid_loss"]) > (best["valid_acc"], -best["valid_loss"])


def train(
    config: TrainConfig,
    corpus: Corpus,
    *,
    on_epoch_end: Callable[[dict], object] | None = None,
    progress: bool = True,
    runtime: Runtime | None = None,
    resume_dir: str | Path | None = None,
    keep_finished: bool = False,
    epoch_lines: bool | None = None,
    between_batches: Callable[[], object] | None = None,
) -> TrainResult:
    """Train ``config.cell`` on ``corpus``; call ``on_epoch_end(record)`` after every epoch.

    A truthy return from the hook (a reason string, e.g. "pruned") ends training with status
    "stopped". The returned model holds the best-valid weights.

    ``resume_dir``: save the training state there after every epoch, and go on from a state that
    an interrupted run of the same config and data left (see ``resume``). The restored epochs are
    passed to the hook again first, so a new tracking run or trial holds every epoch; a stop that
    the hook asks for during that replay ends the run after the restored epochs, which all ran.
    ``keep_finished``: keep the state of a finished run too (a comparison keeps its finished runs
    until all are done: run again after an interruption, it replays them instead of training them).
    ``epoch_lines``: print a line per epoch (default: with ``progress``; processes that train side
    by side print the lines without the bars). ``between_batches()`` is called after every training
    step (threads that follow a sibling process: ``CpuShare.between_batches``).
    """
    config.validate()
    runtime = runtime or runtime_of(config)
    runtime.apply()
    show = Show(progress, progress if epoch_lines is None else epoch_lines, between_batches)
    if resume_dir is None:
        return _train(config, corpus, on_epoch_end, show, runtime, None, keep_finished)
    with ResumeFile.of_run(resume_dir, config, runtime, corpus).claimed() as resume:
        return _train(config, corpus, on_epoch_end, show, runtime, resume, keep_finished)


@dataclass(frozen=True)
class Show:
    """What a training prints as it goes, and its call after each step."""
    bars: bool
    lines: bool
    between_batches: Callable[[], object] | None = None


def _train(config: TrainConfig, corpus: Corpus, on_epoch_end, show: Show, runtime: Runtime,
           resume: ResumeFile | None, keep_finished: bool) -> TrainResult:
    seed_everything(config.seed)
    model = build_model(config, corpus.vocab).to(runtime.device)
    optimizer = make_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", patience=config.scheduler_patience)
    scaler = runtime.grad_scaler()

    train_tokens = int(np.minimum(corpus.train.lengths, config.max_len or np.inf).sum())
    train_sample = train_eval_sample(corpus.train, len(corpus.valid), config.split_seed)

    def measure(split: EncodedSplit) -> tuple[float, float]:
        return evaluate(model, split, runtime, config.eval_batch_size, config.max_len, config.truncate)

    history: list[dict] = []
    best: dict | None = None
    best_state = None
    status, message = "completed", ""
    resumed = resume.load(model, optimizer, scheduler, scaler) if resume is not None else None
    restored = len(resumed.history) if resumed is not None else 0
    if resumed is not None:
        history, best, best_state = resumed.history, resumed.best, resumed.best_state
        print(f"{config.cell} seed {config.seed}: resuming after epoch {len(history)} of {config.epochs} "
              f"(state saved by an earlier command that was cut off: {resume.path})", flush=True)
        status, message = _replay(history, best, config, on_epoch_end, show.lines)
    epochs_left = range(len(history) + 1, config.epochs + 1) if status == "completed" else range(0)
    for epoch in epochs_left:
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = _train_epoch(model, optimizer, corpus.train, config, runtime, epoch, show, scaler)
        train_seconds = time.perf_counter() - start
        if not math.isfinite(train_loss):
            status = "diverged"
            message = f"training loss became {train_loss} in epoch {epoch}; lower --lr or keep --clip-grad-norm > 0"
            break
        train_eval_loss, train_eval_acc = measure(train_sample)
        valid_loss, valid_acc = measure(corpus.valid)
        test_loss, test_acc = measure(corpus.test)
        record = {
            "epoch": epoch,
            "train_loss": train_loss, "train_acc": train_acc,
            "train_eval_loss": train_eval_loss, "train_eval_acc": train_eval_acc,
            "valid_loss": valid_loss, "valid_acc": valid_acc,
            "test_loss": test_loss, "test_acc": test_acc,
            "lr": lr,
            "epoch_seconds": time.perf_counter() - start,
            "train_reviews_per_s": len(corpus.train) / train_seconds,
            "train_tokens_per_s": train_tokens / train_seconds,  # real tokens, not padding
            "generalization_gap": train_eval_acc - valid_acc,
        }
        history.append(record)
        scheduler.step(record[config.scheduler_metric])
        if is_better(record, best):
            best = record
            best_state = copy.deepcopy(model.state_dict())
        if resume is not None:  # before the hook: a kill inside it replays this epoch, not retrains it
            resume.save(model, optimizer, scheduler, scaler, history, best, best_state, last=epoch == config.epochs)
        if show.lines:
            tqdm.write(_epoch_line(config.cell, record, config.epochs))
        status, message = _epoch_end(record, best, config, on_epoch_end)
        if status != "completed":
            break

    if resume is not None and not keep_finished:  # finished, whichever way: the same command trains anew
        resume.discard()
    if best_state is not None:
        model.load_state_dict(best_state)
    result = TrainResult(history, status, best["epoch"] if best else None, model, runtime, message,
                         resumed_epochs=restored, kept_state=resume if keep_finished else None)
    result.summary = summarize(history, best)
    return result


def _epoch_end(record: dict, best: dict, config: TrainConfig, on_epoch_end) -> tuple[str, str]:
    """(status, message) after an epoch: "completed" goes on; the hook or early stopping may end the run."""
    if on_epoch_end is not None and (reason := on_epoch_end(record)):
        return "stopped", reason if isinstance(reason, str) else "stopped by the epoch hook"
    if config.early_stopping_patience and record["epoch"] - best["epoch"] >= config.early_stopping_patience:
        return "early_stopped", (f"no valid_acc gain for {config.early_stopping_patience} epochs after epoch "
                                 f"{best['epoch']}")
    return "completed", ""


def _replay(history: list[dict], best: dict, config: TrainConfig, on_epoch_end, lines: bool) -> tuple[str, str]:
    """Pass restored epochs to the hook as if they had just run. A stop that the hook asks for on
    the way (a pruner whose other trials moved on meanwhile) ends the run once every restored
    epoch is passed: they all ran. Early stopping can only be due at the last one."""
    stop = None
    for record in history:
        if lines:
            tqdm.write(_epoch_line(config.cell, record, config.epochs) + "  (restored)")
        if on_epoch_end is not None and (reason := on_epoch_end(record)) and stop is None:
            stop = reason if isinstance(reason, str) else "stopped by the epoch hook"
    if stop is not None:
        return "stopped", f"{stop} (while epochs 1-{len(history)}, restored from an interrupted run, were replayed)"
    return _epoch_end(history[-1], best, config, None)


def summarize(history: list[dict], best: dict | None) -> dict:
    if not history:
        return {}
    return {
        "best_epoch": best["epoch"],
        "best_valid_acc": best["valid_acc"],
        "test_acc_at_best_valid": best["test_acc"],
        "gap_at_best_valid": best["generalization_gap"],
        "final_test_acc": history[-1]["test_acc"],
        "final_train_acc": history[-1]["train_acc"],
        "final_train_eval_acc": history[-1]["train_eval_acc"],
        "final_gap": history[-1]["generalization_gap"],
        "final_valid_acc": history[-1]["valid_acc"],
        "epochs_run": len(history),
    }


def train_step(model: RecurrentClassifier, optimizer: torch.optim.Optimizer, batch: Batch, runtime: Runtime,
               clip_grad_norm: float = 0.0, scaler=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on ``batch``: (mean loss, logits), both detached. ``scaler``: fp16's
    loss scaling (``Runtime.grad_scaler``); the fused optimizer checks for inf on the device,
    so it adds no wait for the GPU."""
    optimizer.zero_grad(set_to_none=True)
    loss, logits = _forward(model, batch, runtime, reduction="mean")
    if scaler is None:
        loss.backward()
        if clip_grad_norm:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        if clip_grad_norm:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    return loss.detach(), logits.detach()


def _train_epoch(model, optimizer, split: EncodedSplit, config: TrainConfig, runtime: Runtime,
                 epoch: int, show: Show, scaler=None) -> tuple[float, float]:
    model.train()
    batches = batch_indices(split.lengths, config.batch_size, shuffle=True, seed=config.seed, epoch=epoch)
    total_loss = torch.zeros((), dtype=accumulator_dtype(runtime.device), device=runtime.device)
    correct = torch.zeros((), dtype=torch.int64, device=runtime.device)
    packed = runtime.sequence_path == "packed"
    seen = 0
    bar = tqdm(batches, desc=f"{config.cell} epoch {epoch}/{config.epochs}", unit="batch",
               disable=not show.bars, leave=False, dynamic_ncols=True)
    for step, indices in enumerate(bar, 1):
        batch = make_batch(split, indices, model.embedding.padding_idx, config.max_len, config.truncate,
                           packed).to(runtime.device)
        loss, logits = train_step(model, optimizer, batch, runtime, config.clip_grad_norm, scaler)
        if show.between_batches is not None:
            show.between_batches()
        total_loss += loss.to(total_loss.dtype) * len(batch)
        correct += (logits.argmax(dim=1) == batch.labels).sum()
        seen += len(batch)
        if step % PROGRESS_EVERY == 0 or step == len(batches):
            running_loss = total_loss.item() / seen
            if not math.isfinite(running_loss):
                return running_loss, correct.item() / seen  # diverged: stop now, not at epoch end
            bar.set_postfix(loss=f"{running_loss:.4f}", acc=f"{correct.item() / seen:.4f}")
    return total_loss.item() / seen, correct.item() / seen


def _epoch_line(cell: str, r: dict, epochs: int) -> str:
    return (f"{cell} epoch {r['epoch']:>2}/{epochs}: train {r['train_loss']:.4f} / {r['train_acc']:.2%}  "
            f"train(eval) {r['train_eval_acc']:.2%}  valid {r['valid_loss']:.4f} / {r['valid_acc']:.2%}  test {r['test_loss']:.4f} / {r['test_acc']:.2%}  "
            f"{r['epoch_seconds']:.0f}s ({r['train_reviews_per_s']:.0f} reviews/s)")
