"""Search dropout and weight decay with Optuna to close the LSTM's train-valid gap.

Creates the study or resumes it: run the same command again to add --n-trials more trials.
Every trial is an MLflow child run of the study's parent run; the seed setting (dropout 0.6,
no weight decay) is always trial 0. Only validation accuracy selects; test is logged, not used.

    python experiments/tune_regularization.py --model lstm --n-trials 20
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

from sentiment_core import tuning  # noqa: E402
from sentiment_core.cli import add_config_arguments, add_run_arguments, config_overrides, run_main  # noqa: E402
from sentiment_core.config import TrainConfig  # noqa: E402
from sentiment_core.errors import UserError  # noqa: E402
from sentiment_core.model import CELLS  # noqa: E402
from sentiment_core.study import StudySpec, run_study  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lstm", help=f"cell to tune: {', '.join(CELLS)} (default: lstm)")
    parser.add_argument("--n-trials", type=int, default=20, help="trials to add in this run (default: 20)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes sharing the study on this machine (default: 1)")
    parser.add_argument("--study-name", help="default: derived from the model, data and fixed settings")
    parser.add_argument("--storage", help="Optuna storage: an RDB URL (postgresql://, mysql://) shared by "
                                          "several machines, or journal:PATH (default: studies/<study>.journal)")
    parser.add_argument("--pruner", default="median", choices=tuning.PRUNERS,
                        help="prune on per-epoch valid accuracy (default: median)")
    parser.add_argument("--dropout-range", type=float_pair, default=(0.0, 0.8), metavar="LOW,HIGH",
                        help="dropout search range (default: 0.0,0.8)")
    parser.add_argument("--weight-decay-range", type=float_pair, default=(1e-7, 1e-2), metavar="LOW,HIGH",
                        help="log-uniform weight-decay range; 'off' (0) is always a choice too (default: 1e-7,1e-2)")
    parser.add_argument("--retrain-best", type=int, default=0, metavar="K",
                        help="after the search, retrain the best and the seed configuration with K seeds")
    parser.add_argument("--retrain-epochs", type=int, help="epochs of those retrains (default: --epochs)")
    parser.add_argument("--heartbeat-interval", type=int, default=tuning.HEARTBEAT_INTERVAL_S, metavar="S",
                        help="RDB storages: seconds between a running trial's heartbeats (default: %(default)s)")
    parser.add_argument("--heartbeat-grace", type=int, default=tuning.GRACE_PERIOD_S, metavar="S",
                        help="RDB storages: a RUNNING trial without a heartbeat for this long belongs to a dead "
                             "worker and is failed, then retried once (default: %(default)s)")
    add_run_arguments(parser, REPO_ROOT, writes="the study report and plots")
    add_config_arguments(parser, skip=("cell", "embedding_dropout", "output_dropout", "weight_decay"), defaults=TrainConfig(**TUNING_DEFAULTS))
    args = parser.parse_args()

    if args.model not in CELLS:
        raise UserError(f"unknown model {args.model!r}: choose one of {', '.join(CELLS)}")
    if args.heartbeat_interval < 1 or args.heartbeat_grace <= args.heartbeat_interval:
        raise UserError("--heartbeat-interval must be >= 1 and --heartbeat-grace longer than it")
    if args.retrain_best < 0 or (args.retrain_epochs is not None and args.retrain_epochs < 1):
        raise UserError("--retrain-best must be >= 0 and --retrain-epochs >= 1")
    config = TrainConfig(cell=args.model, **TUNING_DEFAULTS).replace(**config_overrides(args))
    space = tuning.SearchSpace(args.dropout_range, args.weight_decay_range).validate()
    study_name = args.study_name or tuning.default_study_name(config, space)
    storage = args.storage or tuning.default_storage(REPO_ROOT / "studies", study_name)
    run_study(StudySpec(config, space, study_name, storage, REPO_ROOT, pruner=args.pruner, n_trials=args.n_trials,
                        workers=args.workers, experiment=args.experiment, cache_dir=args.cache_dir,
                        output_dir=args.output_dir, retrain_best=args.retrain_best,
                        retrain_epochs=args.retrain_epochs, progress=not args.quiet,
                        heartbeat_interval=args.heartbeat_interval, heartbeat_grace=args.heartbeat_grace,
                        register=args.register, system_metrics=args.system_metrics))
    print(f"resume or extend: run the same command again (study {study_name!r})")
    return 0


if __name__ == "__main__":
    run_main(main)
