"""What the scripts in experiments/ share: config flags, error handling, signals."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from .data.sources import SOURCES
from .data.text import TOKENIZERS
from .errors import UserError, was_interrupted
from .system.cpu_share import CpuShare
from .system.workers import quiet_libraries, raise_keyboard_interrupt, redeliver_lost_interrupts
from .training.config import (
    DEVICES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULER_METRICS,
    SEQUENCE_PATHS,
    TRUNCATIONS,
    TrainConfig,
)
from .training.model import CELLS
from .training.runtime import set_cublas_workspace

HELP = {
    "cell": "recurrent cell", "embedding_dim": "embedding size", "hidden_dim": "hidden state size",
    "num_layers": "recurrent layers", "bidirectional": "read reviews in both directions",
    "embedding_dropout": "dropout on the word embeddings (the seed's only dropout)",
    "output_dropout": "dropout on the recurrent outputs: between layers and before the classifier",
    "word_dropout": "replace each training token by <unk> with this probability",
    "weight_drop": "DropConnect on the hidden-to-hidden weights (AWD-LSTM's weight drop)",
    "data": "data source", "data_dir": "aclImdb folder or aclImdb_v1.tar.gz (for --data imdb)",
    "split_seed": "seed of the train/valid/test split (kept fixed across training seeds)",
    "max_examples": "cap every split at N reviews, stratified (smoke runs)",
    "tokenizer": "split: the seed's lowercase split on spaces; basic: also drops <br /> and splits punctuation",
    "max_vocab_size": "most frequent training words kept (plus <unk>, <pad>)",
    "min_freq": "minimum count of a vocabulary word", "max_len": "truncate reviews to N tokens (default: full reviews)",
    "truncate": "with --max-len: keep a review's first (head) or last (tail) N tokens; a verdict often comes last",
    "optimizer": "adam (weight decay as L2 in the gradient, as the seed) or adamw (decoupled)",
    "lr": "learning rate", "weight_decay": "weight decay", "batch_size": "training batch size",
    "eval_batch_size": "most reviews per evaluation batch (padded sequences: also at most 32,768 tokens "
                       "once padded, so long reviews go in smaller batches)",
    "epochs": "epochs", "clip_grad_norm": "gradient-norm clip (0 = off)",
    "scheduler_patience": "ReduceLROnPlateau patience",
    "scheduler_metric": "what ReduceLROnPlateau follows (the seed used train_loss)",
    "early_stopping_patience": "stop after N epochs without a valid-accuracy gain (0 = off)",
    "seed": "training seed", "device": "auto = cuda, then mps, then cpu",
    "precision": "fp32, tf32 (CUDA), bf16 (CPUs with AVX512-BF16/AMX; on CUDA the recurrent layers stay TF32), "
                 "fp16 (CUDA, with loss scaling); auto = bf16 on such CPUs, fp16 on tensor-core GPUs, else fp32",
    "deterministic": "deterministic cuDNN/cuBLAS kernels on GPUs (slower; CPU training is deterministic anyway)",
    "sequence_path": "auto = packed on CUDA (cuDNN), padded elsewhere (CPU bf16 kernels)",
}
CHOICES = {"cell": CELLS, "data": SOURCES, "tokenizer": TOKENIZERS, "optimizer": OPTIMIZERS, "device": DEVICES,
           "precision": PRECISIONS, "sequence_path": SEQUENCE_PATHS, "scheduler_metric": SCHEDULER_METRICS,
           "truncate": TRUNCATIONS}
OPTIONAL_INT = {"max_examples", "max_len"}


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (),
                         defaults: TrainConfig | None = None) -> None:
    """One flag per TrainConfig field (``--batch-size``...). Only flags given on the command line
    land in the namespace, so a preset (``--quick``) can fill in the rest. ``defaults`` is what
    the command starts from, so that ``--help`` shows the values it really uses."""
    defaults = defaults or TrainConfig()
    seed = TrainConfig()
    changed = ", ".join(f"{f.name}={getattr(defaults, f.name)}" for f in dataclasses.fields(TrainConfig)
                        if f.name not in skip and getattr(defaults, f.name) != getattr(seed, f.name))
    group = parser.add_argument_group("training configuration (defaults: the seed notebook's LSTM"
                                      + (f", but {changed})" if changed else ")"))
    for field in dataclasses.fields(TrainConfig):
        if field.name in skip:
            continue
        default = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        kwargs = {"dest": field.name, "default": argparse.SUPPRESS,
                  "help": f"{HELP.get(field.name, field.name)} (default: {default})"}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.name in OPTIONAL_INT:
            kwargs.update(type=int, metavar="N")
        elif field.name == "data_dir":
            kwargs.update(type=str, metavar="PATH")
        else:
            kwargs["type"] = type(default)
        if field.name in CHOICES:
            kwargs["choices"] = list(CHOICES[field.name])
        group.add_argument(flag, **kwargs)
        if field.name == "embedding_dropout" and "output_dropout" not in skip:
            group.add_argument("--dropout", dest="dropout", type=float, default=argparse.SUPPRESS, metavar="P",
                               help="set --embedding-dropout and --output-dropout both to P "
                                    "(a knob given by its own name wins)")


def add_side_by_side_argument(parser: argparse.ArgumentParser) -> None:
    """``--workers N``: a comparison's arms of one seed at a time (comparison/side_by_side.py)."""
    parser.add_argument("--workers", type=int, metavar="N",
                        help="train up to N arms of a seed at once, side by side, one process each with its share "
                             "of the cores (default: on a CPU as many as the idle cores, since one training does "
                             "not use two cores fully; one at a time on a GPU or with --threads)")


def add_run_arguments(parser: argparse.ArgumentParser, repo_root: Path, writes: str) -> None:
    """Where a command logs and writes, and how much it prints: the same flags for every script."""
    parser.add_argument("--experiment", help="MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME, else rnn-vs-lstm)")
    parser.add_argument("--output-dir", type=Path, default=repo_root / "outputs",
                        help=f"where {writes} are written (default: outputs/)")
    parser.add_argument("--cache-dir", type=Path, help="token cache (default: ~/.cache/sentiment_core)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    parser.add_argument("--register", action=argparse.BooleanOptionalAction, default=None,
                        help="register the trained models in the MLflow Model Registry as sentiment-<data>-<cell> "
                             "(default: yes, except runs capped with --max-examples, whose valid accuracy does "
                             "not compare with full runs)")
    parser.add_argument("--no-system-metrics", dest="system_metrics", action="store_false",
                        help="do not log MLflow system metrics (CPU, memory; GPU with nvidia-ml-py) for each run")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: the cores that other processes leave idle, "
                             "measured at start and again after every epoch; study workers divide the cores)")


def share_cpu(threads: int | None) -> CpuShare:
    """``--threads N`` fixed, or threads that follow what other processes use now, decided here
    and again after every epoch (cpu_share.py says why and what was measured)."""
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    cpu = CpuShare(fixed=threads)
    cpu.start()
    return cpu


def config_overrides(args: argparse.Namespace) -> dict:
    """The config fields the command line set. Every script calls this right after parsing, before
    any CUDA work: so ``--deterministic`` sets cuBLAS's workspace variable here, in time for the
    process's first cuBLAS handle (and its study workers inherit it)."""
    if getattr(args, "deterministic", False):
        set_cublas_workspace(os.environ)
    names = {field.name for field in dataclasses.fields(TrainConfig)} | {"dropout"}
    return {k: v for k, v in vars(args).items() if k in names}


def add_seed_arguments(parser: argparse.ArgumentParser, default: list[int], more: str = "") -> None:
    """``--seeds LIST|auto`` with the auto rule's two knobs: the same flags for every comparison."""
    parser.add_argument("--seeds", type=parse_seeds, default=default,
                        help=f"comma-separated training seeds{more} (default: {','.join(map(str, default))}); or "
                             "'auto': add paired seeds 1234, 1235, ... one at a time until the 95%% interval of "
                             "each paired difference is within --precision-target (at least 3 seeds, at most "
                             "--max-seeds); it stops on the interval's width, never on its sign")
    add_auto_seed_arguments(parser, "--seeds auto")


def add_auto_seed_arguments(parser: argparse.ArgumentParser, flag: str) -> None:
    """The auto seed rule's two knobs (comparison/seeds.py), for ``flag`` ('--seeds auto', ...)."""
    from .comparison.seeds import DEFAULT_MAX_SEEDS, DEFAULT_TARGET

    parser.add_argument("--precision-target", type=float, default=DEFAULT_TARGET, metavar="D",
                        help=f"{flag}: the paired interval's half-width to reach, in accuracy points (default: "
                             f"{DEFAULT_TARGET:g})")
    parser.add_argument("--max-seeds", type=int, default=DEFAULT_MAX_SEEDS, metavar="K",
                        help=f"{flag}: stop after K seeds even if the target is not met (default: "
                             f"{DEFAULT_MAX_SEEDS})")


def seeds_from(args: argparse.Namespace, given=None, flag: str = "--seeds"):
    """The seeds (``given``, else ``args.seeds``), or the :class:`AutoSeeds` rule that
    ``FLAG auto`` asks for."""
    from .comparison.seeds import DEFAULT_MAX_SEEDS, DEFAULT_TARGET, AutoSeeds

    given = args.seeds if given is None else given
    if given != "auto":
        if (args.precision_target, args.max_seeds) != (DEFAULT_TARGET, DEFAULT_MAX_SEEDS):
            raise UserError(f"--precision-target and --max-seeds apply to {flag} auto only")
        return given
    try:
        return AutoSeeds(args.precision_target, args.max_seeds)
    except ValueError as error:
        raise UserError(str(error)) from None


def parse_seeds(text: str):
    return "auto" if text.strip() == "auto" else parse_int_list(text)


def parse_int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main: SIGTERM behaves like Ctrl-C; a UserError is one line and exit 2;
    an interruption is exit 130 after the runs were marked KILLED."""
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    redeliver_lost_interrupts()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Ctrl-C, the same, and marked
        signal.signal(signal.SIGINT, raise_keyboard_interrupt)
    quiet_libraries()
    try:
        code = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, Exception) as exc:
        # Also an error raised while a library handled the interruption (one that took its place).
        if not was_interrupted(exc):
            raise
        print("\ninterrupted: active runs were ended as KILLED; every epoch finished so far is logged.",
              file=sys.stderr)
        code = 130
    sys.exit(code or 0)
