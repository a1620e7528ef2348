"""Compare training recipes (presets) for one cell, paired by seed, on the same data.

Each preset is a named set of config values (see --help of compare_rnn_lstm.py); "default" is
the project's default config. Flags given here apply to every preset (e.g. --epochs 12). Every
(preset, seed) is a child MLflow run of one parent, which holds the table, the curves (with the
TF-IDF yardstick line), accuracy by review length and, with 3+ seeds, each preset minus the
first paired by seed with a 95% interval.

    python experiments/compare_presets.py --presets default,seed --seeds 1234,1235,1236 --epochs 12
    python experiments/compare_presets.py --presets default,seed --seeds auto --precision-target 0.5 --epochs 12
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
    from sentiment_core.errors import UserError
    from sentiment_core.training.config import PRESETS, TrainConfig

CHOICES = ("default", *PRESETS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="default,seed",
                        help=f"comma-separated presets, the first is the reference; from {', '.join(CHOICES)} "
                             "(default: default,seed)")
    add_seed_arguments(parser, [1234, 1235, 1236])
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the TF-IDF + logistic-regression yardstick")
    add_run_arguments(parser, REPO_ROOT, writes="the comparison table and plots")
    add_side_by_side_argument(parser)
    add_config_arguments(parser, skip=("seed",))
    args = parser.parse_args()

    names = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [n for n in names if n not in CHOICES]
    if unknown or len(set(names)) != len(names) or not names:
        raise UserError(f"--presets {args.presets!r}: give distinct names from {', '.join(CHOICES)}")
    seeds = seeds_from(args)
    cpu = share_cpu(args.threads)
    overrides = config_overrides(args)
    arms = {name: TrainConfig().replace(**PRESETS.get(name, {})).replace(**overrides) for name in names}
    comparison.run_arms(arms, seeds, repo_root=REPO_ROOT, experiment=args.experiment,
                        output_dir=args.output_dir, cache_dir=args.cache_dir, progress=not args.quiet,
                        baseline=args.baseline,
                        register=args.register, system_metrics=args.system_metrics, kind="preset-comparison",
                        cpu=cpu, workers=args.workers)
    return 0


if __name__ == "__main__":
    run_main(main)
