#!/usr/bin/env bash
# A change's speed, measured side by side: a real quarter epoch of the main job's training loop
# (seed config, full-length reviews, the default precision; benchmarks/training_speed.py's
# real_epoch) in a checkout of REV and in this working tree, alternating, ROUNDS times each.
# Prints one JSON line per epoch and the mean tokens/s of each side with their ratio.
#
#   bash benchmarks/compare_revisions.sh REV [ROUNDS] [THREADS] [CELL]
#   bash benchmarks/compare_revisions.sh HEAD~1 3 2 lstm > results/benchmarks/some_change.txt
#
# Nothing else may run meanwhile (pause other jobs with SIGSTOP); the CPU is printed first.
set -euo pipefail
rev=${1:?usage: compare_revisions.sh REV [ROUNDS] [THREADS] [CELL]}
rounds=${2:-3}
threads=${3:-2}
cell=${4:-lstm}
here=$(cd "$(dirname "$0")/.." && pwd)
before=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$before" >/dev/null 2>&1 || true' EXIT
git -C "$here" worktree add -q --detach "$before" "$rev"
python -c "import sys; sys.path.insert(0, '$here'); from sentiment_core.training.runtime import cpu_name; \
import torch; print(f'{cpu_name()}; torch {torch.__version__}; {$threads} thread(s); cell $cell; $rev vs working tree')"
spec="{\"kind\": \"real_epoch\", \"fraction\": 0.25, \"threads\": $threads, \"cell\": \"$cell\"}"
for _ in $(seq "$rounds"); do
  for side in "$before" "$here"; do
    label=$([ "$side" = "$here" ] && echo "working tree" || echo "$rev")
    echo "$label $(cd "$side" && python benchmarks/training_speed.py --child "$spec" | tail -n 1)"
  done
done | python -c "
import json, sys, statistics
rows = {}
for line in sys.stdin:
    print(line, end='', flush=True)
    label, _, record = line.partition(' {')
    rows.setdefault(label, []).append(json.loads('{' + record)['tokens_per_s'])
(old, a), (new, b) = rows.items()
print(f'{old}: {statistics.mean(a):,.0f} tokens/s; {new}: {statistics.mean(b):,.0f} tokens/s; '
      f'ratio {statistics.mean(b) / statistics.mean(a):.2f}x ({len(a)} epochs each)')"
