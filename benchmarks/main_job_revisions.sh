#!/usr/bin/env bash
# The main job (both cells, seed config, full data) for EPOCHS epochs in a checkout of REV and in
# this working tree, one after the other, each with a store, token cache and outputs of its own:
# wall time of the command, training seconds per cell, and the per-epoch valid accuracy of both
# (same seed), so a speed change is seen on the real job and its curves can be overlaid.
#
#   bash benchmarks/main_job_revisions.sh REV [EPOCHS] [OUT]
#   bash benchmarks/main_job_revisions.sh 5b814fb 5 results/benchmarks/main_job_before_after_zen5
#
# The command runs as a user runs it: its threads (and, since comparison/side_by_side.py, how many
# arms train at once) follow the machine, so nothing else may run meanwhile (pause other jobs with
# SIGSTOP); the CPU is printed first. (Before 4b8e51d this script passed --threads 2: the same
# threads as the default on an idle 2-core machine.)
set -euo pipefail
rev=${1:?usage: main_job_revisions.sh REV [EPOCHS] [OUT]}
epochs=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${3:-$here/outputs/main-job-revisions}")
before=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$before" >/dev/null 2>&1 || true' EXIT
git -C "$here" worktree add -q --detach "$before" "$rev"
mkdir -p "$out"
python -c "import sys; sys.path.insert(0, '$here'); from sentiment_core.training.runtime import cpu_name; \
import torch; print(f'{cpu_name()}; torch {torch.__version__}; main job, {$epochs} epochs; $rev vs working tree')" \
  | tee "$out/machine.txt"
for side in before after; do
  tree=$([ $side = after ] && echo "$here" || echo "$before")
  work=$(mktemp -d)
  # The token cache is made first, outside the timing: both sides read the same reviews.
  (cd "$tree" && XDG_CACHE_HOME="$work/cache" python -c "import sys; sys.path.insert(0, '.'); \
from sentiment_core.data.corpus import load_corpus; from sentiment_core.training.config import TrainConfig; \
load_corpus(TrainConfig())")
  start=$(date +%s.%N)
  (cd "$tree" && MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db" XDG_CACHE_HOME="$work/cache" \
    python experiments/compare_rnn_lstm.py --epochs "$epochs" --no-baseline --no-register --quiet \
    --no-system-metrics --output-dir "$work/out") > "$out/$side.log" 2>&1
  end=$(date +%s.%N)
  cp "$work"/out/compare-*/histories.csv "$out/$side-histories.csv"
  echo "$side $(python -c "print(f'{$end - $start:.1f}')")" >> "$out/wall_seconds.txt"
  rm -rf "$work"
done
python - "$out" <<'PY'
import sys
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

out = Path(sys.argv[1])
wall = dict(line.split() for line in (out / "wall_seconds.txt").read_text().splitlines()[-2:])
frames = {side: pd.read_csv(out / f"{side}-histories.csv") for side in ("before", "after")}
rows = []
for cell in ("rnn", "lstm"):
    row = {"cell": cell}
    for side, frame in frames.items():
        mine = frame[frame.model == cell]
        row[f"{side} train+eval s"] = round(mine.epoch_seconds.sum(), 1)
        row[f"{side} valid acc by epoch %"] = " ".join(f"{v * 100:.2f}" for v in mine.valid_acc)
    rows.append(row)
table = pd.DataFrame(rows)
table.to_csv(out / "per_cell.csv", index=False)
print(table.to_string(index=False))
b, a = float(wall["before"]), float(wall["after"])
print(f"wall time of the command: before {b:.0f} s, after {a:.0f} s: {(1 - a / b) * 100:.1f}% less ({b / a:.2f}x)")
fig = Figure(figsize=(7, 4))
ax = fig.subplots()
for cell, color in (("rnn", "tab:orange"), ("lstm", "tab:blue")):
    for side, style in (("before", "--"), ("after", "-")):
        mine = frames[side][frames[side].model == cell]
        ax.plot(mine.epoch, mine.valid_acc * 100, style, color=color, marker="o", ms=3, label=f"{cell} {side}")
ax.set_xlabel("epoch")
ax.set_ylabel("valid accuracy (%)")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(out / "valid_curves_before_after.png", dpi=110)
PY
