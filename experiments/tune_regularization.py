"""Search dropout and weight decay with Optuna to close the LSTM's train-valid gap.

Creates the study or resumes it: run the same command again to add --n-trials more trials.
Every trial is an MLflow child run of the study's parent run; the seed setting (embedding
dropout 0.6, nothing else) is always trial 0. Only validation data selects; test is logged, not used.

Spaces: basic = the seed's dropout (on the embeddings) x weight decay; extended = embedding,
output and word dropout, DropConnect on the hidden-to-hidden weights, weight decay and its kind.
Objectives: accuracy (best valid accuracy) or accuracy-gap (also minimize the honest gap,
train in eval mode - valid, at that epoch: the report draws the Pareto front).

    python experiments/tune_regularization.py --model lstm --n-trials 20
    python experiments/tune_regularization.py --space extended --objective accuracy-gap --n-trials 30
    python experiments/tune_regularization.py --model lstm --n-trials 20 --workers 2
    python experiments/tune_regularization.py --model lstm --n-trials 0 --retrain-best 3
    python experiments/tune_regularization.py --storage postgresql://user:pw@host/optuna ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sentiment_core.system.cpu_allocator import use_huge_pages  # noqa: E402
from sentiment_core.system.startup import heavy_imports  # noqa: E402

use_huge_pages()  # before torch allocates anything
with heavy_imports():  # torch's, MLflow's and Optuna's imports without the garbage collector's passes
    from sentiment_core import tuning
    from sentiment_core.cli import (
        add_auto_seed_arguments,
        add_config_arguments,
        add_run_arguments,
        config_overrides,
        run_main,
        seeds_from,
        share_cpu,
    )
    from sentiment_core.errors import UserError
    from sentiment_core.system.outages import OUTAGE_WAIT_S
    from sentiment_core.training.config import TrainConfig
    from sentiment_core.training.model import CELLS
    from sentiment_core.tuning.rungs import RungPruner
    from sentiment_core.tuning.space import OBJECTIVES, SEARCHED_FIELDS, SPACES, SearchSpace
    from sentiment_core.tuning.spec import StudySpec
    from sentiment_core.tuning.study import run_study

# Tuning trains with AdamW (decoupled decay: the same shrinkage for every weight, however large
# its gradients; with weight decay 0 it is exactly the seed's Adam) and stops a trial early
# after 3 epochs without a valid-accuracy gain.
TUNING_DEFAULTS = {"optimizer": "adamw", "early_stopping_patience": 3}


def float_pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    return low, high


def count_or_auto(text: str):
    if text.strip() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or 'auto', got {text!r}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lstm", help=f"cell to tune: {', '.join(CELLS)} (default: lstm)")
    parser.add_argument("--n-trials", type=int, default=20,
                        help="trials to add in this run (default: 20); 0 only writes the report, reading the study "
                             "without changing it (with --retrain-best, the missing retrains are trained and kept)")
    parser.add_argument("--total-trials", type=int, metavar="N",
                        help="instead of --n-trials: add trials until the study holds N complete or pruned ones "
                             "(counted over every command working on the study), so the same command resumes a "
                             "study cut off midway and several commands stop together at N")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes sharing the study on this machine (default: 1)")
    parser.add_argument("--study-name", help="default: derived from the model, data and fixed settings")
    parser.add_argument("--storage", help="Optuna storage: an RDB URL (postgresql://, mysql://) shared by "
                                          "several machines, or journal:PATH (default: studies/<study>.journal)")
    parser.add_argument("--space", default="basic", choices=SPACES,
                        help="basic: dropout x weight decay; extended: the whole dropout family (default: basic)")
    parser.add_argument("--objective", default="accuracy", choices=list(OBJECTIVES),
                        help="accuracy: maximize best valid accuracy; accuracy-gap: also minimize the honest "
                             "train-valid gap at that epoch (default: accuracy)")
    parser.add_argument("--pruner", default="auto", choices=tuning.PRUNERS,
                        help="stop bad trials on per-epoch valid accuracy. asha: successive halving over epochs "
                             "(judged at epochs 2, 6, 18: the best third goes on, and see --seed-margin); median; "
                             "hyperband; none. "
                             "auto: asha on the full data or with two objectives, else median (default: auto)")
    parser.add_argument("--seed-margin", type=float, default=RungPruner.seed_margin * 100, metavar="POINTS",
                        help="asha: a trial ranked out at a rung still goes on while its valid accuracy is within "
                             "this many points of the seed setting's at the same epoch, so settings that learn "
                             "slower but track the seed recipe are not cut by their first epochs; 0 = plain "
                             "successive halving (default: %(default)g)")
    parser.add_argument("--rerun-spared", action="store_true",
                        help="asha: before adding trials, queue once more each trial that another rule (another "
                             "--seed-margin, or none) pruned and that this --seed-margin spares at the epoch it "
                             "stopped; the rerun records rerun_of")
    parser.add_argument("--first-rung", type=int, default=RungPruner.min_epoch, metavar="EPOCH",
                        help="asha: the first epoch at which trials are judged; later rungs at 3x, 9x it "
                             "(default: %(default)s; with 30 epochs: 2, 6, 18). The committed 12-epoch studies "
                             "found valid accuracy at epoch 2 unrelated to the best (Spearman -0.02 and +0.12), "
                             "at epoch 6 related (+0.44, +0.56)")
    parser.add_argument("--enqueue-best-of", metavar="STORAGE[#STUDY]",
                        help="when the study starts, queue the best settings of another study (a journal file "
                             "or an RDB URL; #STUDY when it holds several) after the seed setting, so this "
                             "study's budget judges them again; done once, a resumed study queues nothing new")
    parser.add_argument("--enqueue-best", type=int, default=5, metavar="K",
                        help="with --enqueue-best-of: how many of its complete trials, best valid accuracy "
                             "first, settings already in this study left out (default: %(default)s)")
    parser.add_argument("--dropout-range", type=float_pair, default=(0.0, 0.8), metavar="LOW,HIGH",
                        help="range of each dropout searched: basic's dropout, extended's embedding and output "
                             "dropout (default: 0.0,0.8)")
    parser.add_argument("--word-dropout-range", type=float_pair, default=(0.0, 0.3), metavar="LOW,HIGH",
                        help="extended space: word dropout range (default: 0.0,0.3)")
    parser.add_argument("--weight-drop-range", type=float_pair, default=(0.0, 0.6), metavar="LOW,HIGH",
                        help="extended space: DropConnect range on the hidden-to-hidden weights (default: 0.0,0.6)")
    parser.add_argument("--weight-decay-range", type=float_pair, default=(1e-7, 1e-2), metavar="LOW,HIGH",
                        help="log-uniform weight-decay range; 'off' (0) is always a choice too (default: 1e-7,1e-2)")
    parser.add_argument("--retrain-best", type=count_or_auto, default=0, metavar="K|auto",
                        help="after the search, retrain the best and the seed configuration with K seeds; 'auto': "
                             "seeds one at a time until their paired interval is within --precision-target")
    add_auto_seed_arguments(parser, "--retrain-best auto")
    parser.add_argument("--retrain-epochs", type=int, help="epochs of those retrains (default: --epochs)")
    parser.add_argument("--heartbeat-interval", type=int, default=tuning.HEARTBEAT_INTERVAL_S, metavar="S",
                        help="RDB storages: seconds between a running trial's heartbeats (default: %(default)s)")
    parser.add_argument("--heartbeat-grace", type=int, default=tuning.GRACE_PERIOD_S, metavar="S",
                        help="RDB storages: a RUNNING trial without a heartbeat for this long belongs to a dead "
                             "worker and is failed, then retried once (default: %(default)s)")
    parser.add_argument("--outage-wait", type=float, default=OUTAGE_WAIT_S, metavar="S",
                        help="RDB storages: how long a worker waits for a study database that is away (restarting, "
                             "failing over) before its trial fails; the tracking server is waited for by MLflow's own "
                             "retries, MLFLOW_HTTP_REQUEST_MAX_RETRIES (default: %(default)s)")
    parser.add_argument("--reap-only", action="store_true",
                        help="only fail the RUNNING trials whose worker died on this host (their parameters are "
                             "retried once by the next command that adds trials), end their MLflow runs and any other "
                             "run of the experiment whose process is gone, then exit")
    add_run_arguments(parser, REPO_ROOT, writes="the study report and plots")
    add_config_arguments(parser, skip=("cell", "embedding_dropout", "weight_decay"), defaults=TrainConfig(**TUNING_DEFAULTS))
    args = parser.parse_args()

    if args.model not in CELLS:
        raise UserError(f"unknown model {args.model!r}: choose one of {', '.join(CELLS)}")
    if args.total_trials is not None and args.total_trials < 0:
        raise UserError("--total-trials must be >= 0")
    if args.heartbeat_interval < 1 or args.heartbeat_grace <= args.heartbeat_interval:
        raise UserError("--heartbeat-interval must be >= 1 and --heartbeat-grace longer than it")
    if args.outage_wait < 0:
        raise UserError(f"--outage-wait must be >= 0 seconds (got {args.outage_wait})")
    if not 0 <= args.seed_margin <= 100:
        raise UserError(f"--seed-margin is in accuracy points, 0 to 100 (got {args.seed_margin})")
    if args.first_rung < 1 or args.enqueue_best < 1:
        raise UserError(f"--first-rung and --enqueue-best must be >= 1 (got {args.first_rung}, {args.enqueue_best})")
    retrain_rule = seeds_from(args, args.retrain_best, "--retrain-best")
    if (isinstance(retrain_rule, int) and retrain_rule < 0) or (args.retrain_epochs is not None and args.retrain_epochs < 1):
        raise UserError("--retrain-best must be >= 0 (or auto) and --retrain-epochs >= 1")
    overrides = config_overrides(args)
    searched = sorted(set(overrides) & set(SEARCHED_FIELDS + ("dropout",)))
    if args.space == "extended" and searched:
        raise UserError(f"--space extended searches {', '.join(searched)}: drop "
                        f"{' '.join('--' + name.replace('_', '-') for name in searched)}")
    if "dropout" in overrides:
        raise UserError("--dropout is what the basic space searches (the embeddings' dropout); set the range "
                        "with --dropout-range, or fix --output-dropout")
    config = TrainConfig(cell=args.model, **TUNING_DEFAULTS).replace(**overrides)
    space = SearchSpace(args.dropout_range, args.weight_decay_range, args.space, args.word_dropout_range,
                        args.weight_drop_range).validate()
    cpu = share_cpu(args.threads)
    study_name = args.study_name or tuning.default_study_name(config, space, args.objective)
    storage = args.storage or tuning.default_storage(REPO_ROOT / "studies", study_name)
    run_study(StudySpec(config, space, study_name, storage, REPO_ROOT, pruner=args.pruner, objective=args.objective,
                        seed_margin=args.seed_margin / 100, first_rung=args.first_rung,
                        rerun_spared=args.rerun_spared, enqueue_best_of=args.enqueue_best_of,
                        enqueue_best=args.enqueue_best,
                        n_trials=args.n_trials, total_trials=args.total_trials,
                        workers=args.workers, experiment=args.experiment, cache_dir=args.cache_dir,
                        output_dir=args.output_dir, retrain_best=retrain_rule,
                        retrain_epochs=args.retrain_epochs, progress=not args.quiet,
                        heartbeat_interval=args.heartbeat_interval, heartbeat_grace=args.heartbeat_grace,
                        outage_wait=args.outage_wait, register=args.register, system_metrics=args.system_metrics,
                        threads=args.threads, cpu=cpu, reap_only=args.reap_only))
    if not args.reap_only:
        print(f"resume or extend: run the same command again (study {study_name!r})")
    return 0


if __name__ == "__main__":
    run_main(main)
