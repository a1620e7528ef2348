#!/usr/bin/env bash
# The mutants the suite must catch (issue 34): each is applied with sed to a throwaway clone of
# HEAD, and the tests that should catch it run there; a mutant is caught when they fail.
#
#   bash benchmarks/mutants.sh        # with the project's venv active
#
# A mutant whose sed no longer changes its file is reported as "not applied" (the code moved):
# update its line here rather than counting it caught.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$here" "$work/clone"
cd "$work/clone"
missed=0
mutant() {  # name, sed expression, file, tests (pytest arguments)
  git checkout -q -- .
  sed -i "$2" "$3"
  if git diff --quiet; then
    echo "$1: not applied (its line in $3 changed)"; missed=1; return
  fi
  # shellcheck disable=SC2086  # the tests are words
  if python -m pytest -q -n 0 -p no:cacheprovider $4 > "$work/$1.txt" 2>&1; then
    echo "$1: MISSED (the tests passed)"; missed=1
  else
    echo "$1: caught ($(tail -1 "$work/$1.txt" | sed 's/ in [0-9.]*s.*//'))"
  fi
}
mutant label-swap 's/^LABELS = ("negative", "positive")/LABELS = ("positive", "negative")/' \
  sentiment_core/training/checkpoint.py tests/test_predictions.py
mutant scheduler-on-train-loss 's/scheduler.step(record\[config.scheduler_metric\])/scheduler.step(record["train_loss"])/' \
  sentiment_core/training/loop.py tests/test_training.py
mutant alias-on-newest 's/best = max(same_split, key=lambda v: (float(v.tags.get("valid_acc", "-1")), -int(v.version)))/best = max(same_split, key=lambda v: int(v.version))/' \
  sentiment_core/tracking/models.py "tests/test_mlflow_models.py -k best_alias"
exit $missed
