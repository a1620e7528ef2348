"""The --seeds auto rule on synthetic paired differences: coverage and seeds used, per spread and
target, written to results/seeds/auto_rule.csv (docs/statistics.md renders it).

    python results/seeds/simulate.py     # about a minute
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sentiment_core.comparison.seeds import AutoSeeds, simulate  # noqa: E402

SPREADS = (0.3, 0.56, 1.2)  # points; 0.56: the 30-epoch study's 5-seed verdict
TARGETS = (1.0, 0.5, 0.25)


def main() -> None:
    rows = []
    for spread in SPREADS:
        for target in TARGETS:
            found = simulate(AutoSeeds(target=target, max_seeds=40), spread)
            rows.append({"spread_points": spread, "target_points": target, **found})
            print(rows[-1], flush=True)
    with open(Path(__file__).with_name("auto_rule.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
