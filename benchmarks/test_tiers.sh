#!/usr/bin/env bash
# The four test commands README.md gives (the inner loop, the suite, the integration tier, the
# load-measuring tests), timed one after the other, every test's CPU logged (tests/cpu_report.py):
# the raw data behind docs/development.md's tier table, and the steadiness runs.
#
#   bash benchmarks/test_tiers.sh OUT [RUNS]
#   bash benchmarks/test_tiers.sh results/benchmarks/test_tiers_zen5 5
#
# Runs the tests of the repository it sits in with the active Python; the integration tier needs
# SENTIMENT_POSTGRES_URL (bash .ci/postgres.sh). A failing tier is recorded and the next one runs.
# Writes OUT/run-N/TIER.txt (pytest's output) and OUT/run-N/TIER.jsonl (CPU per test), and one
# line per tier and run to OUT/tiers.csv; runs into an OUT that has some go on from the next
# number. Nothing else may run meanwhile: the times are the point.
set -uo pipefail
out=$(realpath -m "${1:?usage: test_tiers.sh OUT [RUNS]}")
runs=${2:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
mkdir -p "$out"
machine=$(python -c "from sentiment_core.training.runtime import cpu_name; import os, torch; \
print(f'{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}')")
[ -f "$out/tiers.csv" ] || echo "run,tier,passed,failed,wall_s,cpu_s,commit,machine,date" > "$out/tiers.csv"
declare -A args=([quick]="--quick" [default]="" [integration]="-m integration" [alone]="-m alone -n 0")
first=$(( $(find "$out" -maxdepth 1 -name 'run-*' -type d | wc -l) + 1 ))
for run in $(seq "$first" $(( first + runs - 1 ))); do
  mkdir -p "$out/run-$run"
  for tier in quick default integration alone; do
    log="$out/run-$run/$tier"
    start=$(date +%s.%N)
    # shellcheck disable=SC2086  # the tier's options are words
    PYTHONPATH=tests CPU_REPORT_LOG="$log.jsonl" python -m pytest -p cpu_report ${args[$tier]} >"$log.txt" 2>&1
    wall=$(python -c "print(f'{$(date +%s.%N) - $start:.1f}')")
    python - "$log" "$run" "$tier" "$wall" "$(git rev-parse --short HEAD)" "$machine" >>"$out/tiers.csv" <<'EOF'
import csv, datetime, json, re, sys
log, run, tier, wall, commit, machine = sys.argv[1:]
text = open(log + ".txt").read()
counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|error)", text.splitlines()[-1])}
cpu = sum(r["own"] + r["children"] for r in map(json.loads, open(log + ".jsonl")))
csv.writer(sys.stdout).writerow([run, tier, counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0),
                                 wall, f"{cpu:.0f}", commit, machine, datetime.date.today().isoformat()])
EOF
    tail -n 1 "$out/tiers.csv"
  done
done
