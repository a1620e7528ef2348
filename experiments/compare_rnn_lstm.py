"""Train the RNN baseline and the LSTM variant with identical settings and compare them.

Every (model, seed) is a child MLflow run under one parent run per invocation; the parent holds
the comparison table and plots. Browse with:  mlflow ui --backend-store-uri sqlite:///mlflow.db

    python experiments/compare_rnn_lstm.py                       # seed config, 30 epochs, 1 seed
    python experiments/compare_rnn_lstm.py --quick               # 1-3 minutes on a 2-core CPU
    python experiments/compare_rnn_lstm.py --seeds 1234,1235,1236 --epochs 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing

from sentiment_core.system.cpu_allocator import use_huge_pages  # noqa: E402
from sentiment_core.system.startup import heavy_imports  # noqa: E402

use_huge_pages()  # before torch allocates anything
with heavy_imports():  # torch's, MLflow's and Optuna's imports without the garbage collector's passes
    from sentiment_core import comparison
    from sentiment_core.cli import (
        add_config_arguments,
        add_run_arguments,
        add_seed_arguments,
        add_side_by_side_argument,
        config_overrides,
        run_main,
        seeds_from,
        share_cpu,
    )
    from sentiment_core.tracking.runs import reap_store
    from sentiment_core.training.config import PRESETS, TrainConfig
    from sentiment_core.training.model import CELLS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="rnn,lstm",
                        help=f"comma-separated cells to compare, from {', '.join(CELLS)} (default: rnn,lstm)")
    add_seed_arguments(parser, [1234], more="; 3+ seeds add a paired LSTM - RNN interval")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from a named recipe; flags given here still override it. "
                             + "; ".join(f"{name}: {values}" for name, values in PRESETS.items()))
    parser.add_argument("--quick", action="store_true",
                        help=f"a small run, 1-3 minutes on a 2-core CPU (75 s on a Zen 5): {comparison.QUICK_PRESET}")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the TF-IDF + logistic-regression yardstick (on by default)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    parser.add_argument("--reap-only", action="store_true",
                        help="only end the RUNNING runs whose process died on this host (SIGKILL, out of memory) as "
                             "KILLED, then exit (every comparison and study does this at start anyway)")
    add_run_arguments(parser, REPO_ROOT, writes="the comparison table and plots")
    add_side_by_side_argument(parser)
    add_config_arguments(parser, skip=("cell", "seed"))
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.reap_only:
        reap_store(REPO_ROOT, args.experiment)
        return 0
    config = TrainConfig().replace(**PRESETS.get(args.preset, {}))
    if args.quick:
        config = config.replace(**comparison.QUICK_PRESET)
    config = config.replace(**config_overrides(args))
    if args.print_config:
        print(config.to_json())
        return 0
    seeds = seeds_from(args)
    cpu = share_cpu(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    comparison.run_comparison(config, models, seeds, repo_root=REPO_ROOT, experiment=args.experiment,
                              output_dir=args.output_dir, cache_dir=args.cache_dir, progress=not args.quiet,
                              baseline=args.baseline,
                              register=args.register, system_metrics=args.system_metrics, cpu=cpu,
                              workers=args.workers)
    return 0


if __name__ == "__main__":
    run_main(main)
