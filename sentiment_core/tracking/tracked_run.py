"""One tracked training run: the piece that the comparison and the Optuna trials share."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.corpus import Corpus
from ..system.cpu_share import CpuShare
from ..training.checkpoint import save_checkpoint
from ..training.config import TrainConfig
from ..training.loop import TrainResult, confusion_counts, evaluate_predictions, train
from ..training.runtime import resolved_config, runtime_of
from .runs import RunTracker, environment_tags, monitor_system


@dataclass
class TrackedRun:
    run_id: str
    config: TrainConfig
    result: TrainResult
    test_predictions: np.ndarray | None = None  # the best-valid model's test labels, in corpus order


def data_params(corpus: Corpus) -> dict:
    params = {"vocab_size": len(corpus.vocab)}
    params.update({f"{name}_size": len(split) for name, split in corpus.items()})
    if corpus.splits is not None:
        params["data_digest"] = corpus.splits.digest()
        params["valid_digest"] = corpus.splits.valid.digest()  # what the registry's alias compares within
    return params


def run_training(
    tracker: RunTracker,
    config: TrainConfig,
    corpus: Corpus,
    *,
    repo_root: str | Path,
    data_source: str,
    on_epoch_end: Callable[[dict], object] | None = None,
    progress: bool = True,
    system_metrics: bool = True,
    cpu: CpuShare | None = None,
    resume_dir: Path | None = None,
    keep_finished: bool = False,
    epoch_lines: bool | None = None,
) -> TrackedRun:
    """Train ``config`` into the (already created) run of ``tracker`` and end the run.

    The run ends FINISHED (also when ``on_epoch_end`` stopped it, e.g. a pruned trial), FAILED
    when the loss diverged or an error escaped, KILLED on Ctrl-C / SIGTERM. ``cpu`` (threads that
    follow the machine's load) decides again after every epoch. ``resume_dir``: the run saves its
    state there every epoch and goes on from one an interrupted run of it left (``training.resume``);
    ``keep_finished`` keeps it after the run finishes (the caller discards ``run.result.kept_state``).
    ``epoch_lines``: a line per epoch (default: with ``progress``).
    """
    runtime = runtime_of(config)
    config = resolved_config(config, runtime)
    with tracker.terminating() as run:
        run.set_tags({**environment_tags(repo_root, runtime.describe(config.cell)), "cell": config.cell, "seed": config.seed})
        run.log_params({**config.to_dict(), "rnn_dtype": runtime.rnn_dtype(config.cell), **data_params(corpus)})
        run.log_datasets(corpus, data_source)

        def hook(record: dict):
            run.log_epoch(record)
            if cpu is not None:
                cpu.epoch_boundary()
            return on_epoch_end(record) if on_epoch_end is not None else None

        with monitor_system(run, system_metrics, gpu=runtime.device.type == "cuda"):
            result = train(config, corpus, on_epoch_end=hook, progress=progress, runtime=runtime,
                           resume_dir=resume_dir, keep_finished=True, epoch_lines=epoch_lines,
                           between_batches=cpu.between_batches if cpu is not None else None)
        confusion = predictions = None
        if result.best_epoch is not None:
            _, predictions = evaluate_predictions(result.model, corpus.test, runtime, config.eval_batch_size,
                                                  config.max_len, config.truncate)
            confusion = confusion_counts(corpus.test.labels, predictions)
        log_training_outcome(run, config, corpus, result, confusion, predictions)
        if result.status == "diverged":
            run.fail_on_exit()
    if result.kept_state is not None and not keep_finished:
        # Only now that the run is logged: one cut off between its last epoch and here (test
        # predictions, artifacts, checkpoint: tens of seconds) replays its epochs on the next
        # command instead of training them all again.
        result.kept_state.discard()
    return TrackedRun(tracker.run_id, config, result, predictions)


def log_training_outcome(tracker: RunTracker, config: TrainConfig, corpus: Corpus, result, confusion,
                         predictions: np.ndarray | None = None) -> None:
    """Summary metrics, history CSV, learning curves, confusion matrix, the best-valid model's test
    predictions (``test_predictions.npy``: one uint8 label per test review in corpus order, 4 KB,
    what a paired bootstrap over reviews needs) and the checkpoint."""
    from .. import reporting

    tracker.set_tags({"training_status": result.status, **({"training_message": result.message} if result.message else {}),
                      **({"resumed_epochs": result.resumed_epochs} if result.resumed_epochs else {}),
                      # what the training state is saved under: the same for a replay of this run
                      **({"run_key": result.kept_state.key} if result.kept_state is not None else {})})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if result.history:
            reporting.history_frame(result.history).to_csv(tmp / "history.csv", index=False)
            reporting.plot_learning_curves(result.history, tmp / "learning_curves.png",
                                           title=f"{config.cell} seed {config.seed}", best_epoch=result.best_epoch)
            tracker.log_artifact(tmp / "history.csv")
            tracker.log_artifact(tmp / "learning_curves.png")
        if confusion is not None:
            reporting.plot_confusion(confusion, tmp / "test_confusion_matrix.png",
                                     title=f"{config.cell} seed {config.seed}: test, best-valid weights")
            reporting.confusion_frame(confusion).to_csv(tmp / "test_confusion_matrix.csv")
            tracker.log_artifact(tmp / "test_confusion_matrix.png")
            tracker.log_artifact(tmp / "test_confusion_matrix.csv")
        if predictions is not None:
            np.save(tmp / "test_predictions.npy", np.asarray(predictions, dtype=np.uint8))
            tracker.log_artifact(tmp / "test_predictions.npy")
        model_id = None
        try:
            if result.best_epoch is not None:
                from .models import log_model

                save_checkpoint(tmp / "checkpoint", result.model, corpus.vocab, config,
                                extra={"best_epoch": result.best_epoch, "summary": result.summary})
                # The checkpoint travels inside the MLflow Model (model/artifacts/checkpoint): one copy.
                model_id, seconds = log_model(tracker.client, tracker.run_id, tmp / "checkpoint", config.to_dict())
                tracker.log_metrics({"model_log_seconds": seconds}, step=result.summary["epochs_run"])
        finally:  # the summary is logged even if the model could not be
            if result.summary:
                tracker.log_metrics({k: v for k, v in result.summary.items() if k in SUMMARY_METRICS},
                                    step=result.summary["epochs_run"], model_id=model_id)


SUMMARY_METRICS = ("best_epoch", "best_valid_acc", "test_acc_at_best_valid", "final_test_acc", "gap_at_best_valid")
