"""Render the results quoted in README.md and docs/ from the committed data under results/.

    python results/render.py           # rewrite every marked region from the data
    python results/render.py --check   # exit 1 if a page differs from what the data gives,
                                       # or a region's data file is not committed

A region is ``<!-- results:NAME -->...<!-- /results -->`` in a page: a table (then a line under it
names this command and the data file) or a number inside a sentence. A number typed by hand
drifts from its data; a rendered one cannot, because tests/test_render.py runs --check.
"""
import argparse
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# The renderers sit beside this script (it is run as a file, not imported from a package).
sys.path.insert(0, str(Path(__file__).resolve().parent))

import render_runs as runs  # noqa: E402
import render_studies as studies  # noqa: E402
import render_tiers as tiers  # noqa: E402
from rendering import REPO, Rendered  # noqa: E402

PAGES = ["README.md", "docs/results.md", "docs/speed.md", "docs/statistics.md", "docs/development.md"]
REGION = re.compile(r"<!-- results:(?P<name>[a-z0-9-]+) -->(?P<body>.*?)<!-- /results -->", re.S)


PAIRED_12 = {"valid": "best_valid_acc", "test at best valid": "test_acc_at_best_valid",
             "gap at best valid": "gap_at_best_valid"}
REVISIONS = {"rnn": "results/benchmarks/rnn_fast_path_and_dropout_zen5.txt",
             "lstm": "results/benchmarks/lstm_dropout_mask_zen5.txt"}
REVISIONS_ZEN3 = {"rnn": "results/benchmarks/rnn_before_after_zen3.txt",
                  "lstm": "results/benchmarks/lstm_before_after_zen3.txt"}
RENDERERS: dict[str, Callable[[], Rendered]] = {
    "speed-zen5": lambda: runs.speed_table("results/benchmarks/training_speed_zen5.json"),
    "quick-time": runs.quick_time,
    "history-basic-30": lambda: studies.study_history("lstm-basic-accuracy-30-epochs"),
    "retrain-epoch-seconds-30": lambda: studies.retrain_epoch_seconds("lstm-basic-accuracy-30-epochs"),
    "budget-30-minus-12": studies.budget_30_minus_12,
    "data-package-lines": runs.data_package_lines,
    "precision-table": runs.precision_table,
    "study-budget": studies.study_budget,
    "auto-rule": studies.auto_rule_table,
    "auto-cost-30": studies.auto_cost_30,
    "main-job-before-after": runs.main_job_before_after,
    "main-job-before-after-zen3": lambda: runs.main_job_before_after(runs.MAIN_JOB_ZEN3),
    "speed-zen3": lambda: runs.speed_table("results/benchmarks/training_speed_zen3.json"),
    "revisions-zen3": lambda: runs.revisions_table(REVISIONS_ZEN3),
    "rnn-over-lstm-zen3": lambda: runs.rnn_over_lstm(REVISIONS_ZEN3),
    "eval-batches-zen3": lambda: runs.eval_batches_table("results/benchmarks/eval_batches_zen3.txt"),
    "side-by-side-threads-zen3": runs.side_by_side_threads,
    "side-by-side-epoch-zen3": runs.side_by_side_epoch,
    "side-by-side-job-zen3": runs.side_by_side_job,
    "main-job-side-by-side-zen3": lambda: runs.main_job_before_after(runs.MAIN_JOB_SIDE_BY_SIDE_ZEN3),
    "main-job-hours": runs.training_time,
    "main-job-table": lambda: runs.main_job_table(digits=1, final_test=False),
    "main-job-table-full": lambda: runs.main_job_table(digits=2, final_test=True),
    "main-job-lstm-minus-rnn": runs.lstm_minus_rnn,
    "main-job-valid-from-epoch-8": lambda: runs.valid_range_from(8),
    "main-job-by-length": runs.accuracy_by_length,
    "presets-table": lambda: runs.comparison_table(
        runs.PRESETS, {"default": "previous default", "seed": "seed recipe (**now the default**)",
                       "tfidf-logreg": "tfidf-logreg (yardstick)"}, "recipe", list(runs.COMPARISON_COLUMNS)),
    "presets-by-length": lambda: runs.length_table(
        runs.PRESETS, {"default": "previous default", "seed": "seed recipe", "tfidf-logreg": "tfidf-logreg"}),
    "presets-paired": lambda: runs.paired_runs(runs.PRESETS, "seed", "default"),
    "presets-below-yardstick": lambda: runs.below_yardstick(runs.PRESETS, ["default", "seed"]),
    "quick-table": lambda: runs.comparison_table(
        runs.QUICK_AMX, {"rnn": "RNN", "lstm": "LSTM", "tfidf-logreg": "tfidf-logreg"}, "model",
        list(runs.COMPARISON_COLUMNS)[:4]),
    "quick-by-length": lambda: runs.length_table(
        runs.QUICK_AMX, {"rnn": "RNN", "lstm": "LSTM", "tfidf-logreg": "tfidf-logreg"}),
    "quick-zen2": lambda: runs.quick_sentence(runs.QUICK_ZEN2),
    "retrain-seeds-30": lambda: studies.retrain_seeds_table("lstm-basic-accuracy-30-epochs"),
    "paired-30": lambda: studies.paired_sentence("lstm-basic-accuracy-30-epochs", {
        "test accuracy at best valid": "test_acc_at_best_valid", "best valid accuracy": "best_valid_acc",
        "gap at best valid": "gap_at_best_valid", "test accuracy at epoch 30": "final_test_acc",
        "gap at epoch 30": "final_gap"}),
    "paired-30-half-width": lambda: studies.paired_half_width("lstm-basic-accuracy-30-epochs", "test_acc_at_best_valid"),
    "speed-zen2": lambda: runs.copied_table("results/benchmarks/training_speed_amd_epyc_zen2.md"),
    "cpu-sharing": lambda: runs.copied_table("results/benchmarks/cpu_sharing_policy_amd_epyc_zen2.md"),
    "rnn-step-floor": lambda: runs.copied_table("results/benchmarks/rnn_step_floor_zen5.txt"),
    "startup-cost": runs.startup_table,
    "startup-ratios": runs.startup_ratios,
    "revisions-zen5": lambda: runs.revisions_table(REVISIONS),
    "rnn-over-lstm-zen5": lambda: runs.rnn_over_lstm(REVISIONS),
    "studies-12-table": studies.studies_12_table,
    "test-tiers": tiers.tiers_table,
    "test-cpu-split-default": lambda: tiers.cpu_split("default"),
    "test-cpu-split-integration": lambda: tiers.cpu_split("integration"),
    "test-slowest-default": lambda: tiers.slowest_tests("default"),
    "test-slowest-integration": lambda: tiers.slowest_tests("integration", shown=6),
    "test-steadiness": tiers.steadiness,
    "test-steadiness-previous": lambda: tiers.steadiness(tiers.PREVIOUS),
    "test-steadiness-earlier": lambda: tiers.steadiness(tiers.EARLIER),
    "test-steadiness-template": lambda: tiers.steadiness(tiers.TEMPLATE),
    "test-steadiness-sigterm-fix": lambda: tiers.steadiness(tiers.SIGTERM_FIX),
    "test-loaded-918f8cd": lambda: tiers.loaded(tiers.LOADED_918F8CD),
    "test-steadiness-d498964": lambda: tiers.steadiness(tiers.D498964),
    "test-steadiness-734d959": lambda: tiers.steadiness(tiers.FOUND_CURSOR),
    "test-loaded-d498964": lambda: tiers.loaded(tiers.LOADED_D498964),
    "test-spreads-earlier": lambda: tiers.tier_spreads(tiers.EARLIER),
    "test-loaded": tiers.loaded,
    "ci-run-time": tiers.ci_run_time,
    "test-tiers-sentence": tiers.tiers_sentence,
    "test-before-after": tiers.before_after,
    "retrains-extended-12": lambda: studies.retrain_groups_table("lstm-extended-accuracy-gap", extended=True),
    "retrains-basic-12": lambda: studies.retrain_groups_table("lstm-basic-accuracy", extended=False),
    "paired-extended-12": lambda: studies.paired_sentence("lstm-extended-accuracy-gap", PAIRED_12),
    "paired-basic-12": lambda: studies.paired_sentence("lstm-basic-accuracy", PAIRED_12),
}


def committed(paths: set[str]) -> set[str]:
    """Those of ``paths`` that git tracks."""
    listed = subprocess.run(["git", "ls-files", "--", *sorted(paths)], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    return set(listed)


def render_page(text: str, page: str, problems: list[str]) -> tuple[str, set[str]]:
    """The page with every region rendered; the data files it cites. Unknown names are problems."""
    sources: set[str] = set()

    def one(match: re.Match) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            problems.append(f"{page}: no renderer for region {name!r} (known: {', '.join(RENDERERS)})")
            return match.group(0)
        rendered = RENDERERS[name]()
        sources.update(rendered.sources)
        return f"<!-- results:{name} -->{rendered.text}<!-- /results -->"

    return REGION.sub(one, text), sources


def run(check: bool) -> list[str]:
    """Render (or, with ``check``, compare) every page; the problems found."""
    problems: list[str] = []
    cited: set[str] = set()
    for page in PAGES:
        path = REPO / page
        before = path.read_text()
        after, sources = render_page(before, page, problems)
        cited |= sources
        if after == before:
            continue
        if check:
            changed = [m.group("name") for m, n in zip(REGION.finditer(before), REGION.finditer(after))
                       if m.group(0) != n.group(0)]
            problems.append(f"{page}: region(s) {', '.join(changed)} differ from the data: "
                            "run python results/render.py")
        else:
            path.write_text(after)
    missing = cited - committed(cited)
    problems += [f"{source}: cited by a page but not committed" for source in sorted(missing)]
    figures = [studies.budget_figure(name) for name in studies.BUDGET_STUDIES.values()]
    if not check:
        studies.draw_budget_figures()
    problems += [f"{figure}: not drawn (run python results/render.py)" for figure in figures if not (REPO / figure).exists()]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page differs from the data")
    problems = run(parser.parse_args().check)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
