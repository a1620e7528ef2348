"""Renderers of the test tiers' times (benchmarks/test_tiers.sh): the tier table, where the CPU
goes, the slowest tests, and what the steadiness runs found."""

from __future__ import annotations

import json
import statistics

from rendering import REPO, Rendered, key_values, rows, table

# The latest runs (named by the commit measured: the processes' imports without the garbage
# collector's passes, and the cursor fix) and the two runs before that fix, which found the fault;
# the round before's (after the monitor, claim-lock and journal-lock fixes);
# the round before that's final runs (after the SIGTERM fix) and its earlier ones (with the stall
# fix; then with the PostgreSQL template); the first round's five runs and this work's start
# (before.csv); the loaded runs (latest commit; the two rounds before); the latest round's start,
# measured the same day as its runs.
TIERS = "results/benchmarks/test_tiers_zen5_eef8241"
FOUND_CURSOR = "results/benchmarks/test_tiers_zen5_734d959"
D498964 = "results/benchmarks/test_tiers_zen5_d498964"
SIGTERM_FIX = "results/benchmarks/test_tiers_zen5_918f8cd"
EARLIER = "results/benchmarks/test_tiers_zen5_726f3dc"
TEMPLATE = "results/benchmarks/test_tiers_zen5_a4875fd"
PREVIOUS = "results/benchmarks/test_tiers_zen5"
LOADED = "results/benchmarks/test_tiers_zen5_eef8241_loaded"
LOADED_D498964 = "results/benchmarks/test_tiers_zen5_d498964_loaded"
LOADED_918F8CD = "results/benchmarks/test_tiers_zen5_918f8cd_loaded"
START = "results/benchmarks/test_tiers_zen5_831c142"
WHAT = {
    "quick": ("`python -m pytest --quick`", "the inner loop: everything that runs in the test process (no script "
              "started as a process)"),
    "default": ("`python -m pytest`", "the suite: adds the tests marked `processes` (signals, workers, locks, crash "
                "recovery, what a user sees on the console)"),
    "integration": ("`python -m pytest -m integration`", "real servers (PostgreSQL, `mlflow server`, basic auth, "
                    "`mlflow models serve`), the browser, outages, the GPU check's CPU smoke in a fresh venv"),
    "alone": ("`python -m pytest -m alone -n 0`", "the two tests that measure the machine's CPU load, with nothing "
              "beside them"),
}


def spread(values: list[float], unit: str) -> str:
    """"a s" for one value, "a-b s (median m)" for several."""
    if len(values) == 1:
        return f"{values[0]:.0f} {unit}"
    return f"{min(values):.0f}-{max(values):.0f} {unit} (median {statistics.median(values):.0f})"


def tier_rows(folder: str = TIERS) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for row in rows(f"{folder}/tiers.csv"):
        found.setdefault(row["tier"], []).append(row)
    return found


def tiers_table(folder: str = TIERS) -> Rendered:
    """One row per tier: its command, tests, wall time and CPU over the runs recorded."""
    source = f"{folder}/tiers.csv"
    found = tier_rows(folder)
    body = []
    for tier, (command, what) in WHAT.items():
        runs = found[tier]
        tests = sorted({int(r["passed"]) + int(r["failed"]) for r in runs})
        body.append([command, what, "/".join(map(str, tests)), spread([float(r["wall_s"]) for r in runs], "s"),
                     spread([float(r["cpu_s"]) for r in runs], "s")])
    first = found["default"][0]
    rendered = table(["command", "what", "tests", f"wall time, {len(found['default'])} run(s)", "CPU (tests and "
                      "their processes)"], body, (source,))
    return Rendered(f"\n{first['machine']}, commit {first['commit']}, {first['date']}; one tier at a time, nothing "
                    f"else running:\n" + rendered.text, (source,))


def per_test(folder: str, tier: str, run: int = 1) -> list[dict]:
    return [json.loads(line) for line in (REPO / folder / f"run-{run}" / f"{tier}.jsonl").read_text().splitlines()]


def cpu_split(tier: str, folder: str = TIERS) -> Rendered:
    """How much of a tier's CPU its tests' child processes took (run 1)."""
    records = per_test(folder, tier)
    own, children = sum(r["own"] for r in records), sum(r["children"] for r in records)
    return Rendered(f"{len(records)} tests, {own + children:.0f} s of CPU, {children / (own + children):.0%} of it "
                    f"in the processes they start", (f"{folder}/run-1/{tier}.jsonl",))


def slowest_tests(tier: str, shown: int = 8, folder: str = TIERS) -> Rendered:
    """The tests of a tier that took the most CPU (run 1)."""
    source = f"{folder}/run-1/{tier}.jsonl"
    records = sorted(per_test(folder, tier), key=lambda r: -(r["own"] + r["children"]))[:shown]
    body = [[f"`{r['test'].split('::')[-1]}`", f"{r['own'] + r['children']:.1f}", f"{r['children']:.1f}",
             f"{r['wall']:.1f}"] for r in records]
    return table(["test", "CPU s", "in child processes", "wall s"], body, (source,))


def steadiness(folder: str = TIERS) -> Rendered:
    """What the consecutive runs found: every tier's failures, run by run."""
    source = f"{folder}/tiers.csv"
    found = tier_rows(folder)
    runs = len(found["default"])
    failed = [f"run {r['run']}, {tier} tier: {r['failed']} failed" for tier, rs in found.items() for r in rs
              if int(r["failed"])]
    verdict = "every tier passed in every run" if not failed else "; ".join(failed)
    return Rendered(f"{runs} runs of the four commands: {verdict}", (source,))


def loaded(folder: str = LOADED) -> Rendered:
    """The run beside a process that kept the other core busy: each tier's result (pytest's own
    last line, which counts skipped tests too) and time."""
    source = f"{folder}/tiers.csv"
    parts, sources = [], [source]
    for r in rows(source):
        summary = f"{folder}/run-{r['run']}/{r['tier']}.txt"
        last = (REPO / summary).read_text().strip().splitlines()[-1].strip("= ")
        parts.append(f"{r['tier']}: {last.split(' in ')[0]} in {float(r['wall_s']):.0f} s")
        sources.append(summary)
    return Rendered("; ".join(parts), tuple(sources))


def ci_run_time(source: str = TIERS + "/ci_run.txt") -> Rendered:
    """A fresh clone's `.ci/run` (installs included), as timed around it: a "key: value" file."""
    fields = key_values(source)
    seconds = float(fields["seconds"])
    return Rendered(f"{seconds:.0f} s ({seconds / 60:.1f} min; commit {fields['commit']}, {fields['date']}, exit "
                    f"{fields['exit']})", (source,))


def tiers_sentence(folder: str = TIERS) -> Rendered:
    """The README's line on the tests: each tier's test count and wall time over the runs."""
    found = tier_rows(folder)

    def part(tier):
        runs = found[tier]
        tests = max(int(r["passed"]) + int(r["failed"]) for r in runs)
        walls = [float(r["wall_s"]) for r in runs]
        time = f"{min(walls):.0f} s" if len(walls) == 1 or round(min(walls)) == round(max(walls)) else \
            f"{min(walls):.0f}-{max(walls):.0f} s"
        return tests, time

    (suite, suite_time), (integ, integ_time), (alone, alone_time), (quick, quick_time) = map(
        part, ("default", "integration", "alone", "quick"))
    return Rendered(f"the suite, {suite} tests, in {suite_time}; then {integ} integration tests (PostgreSQL, real MLflow "
                    f"servers, outages, a browser, the GPU check in a fresh venv) in {integ_time}; then {alone} that "
                    f"measure CPU load, alone, in {alone_time}; `python -m pytest --quick`, the inner loop: {quick} "
                    f"tests in {quick_time}", (f"{folder}/tiers.csv",))


def tier_spreads(folder: str) -> Rendered:
    """The suite's and the integration tier's wall times over a folder's runs, and its commit."""
    found = tier_rows(folder)
    parts = [f"{label} {spread([float(r['wall_s']) for r in found[tier]], 's')}"
             for tier, label in (("default", "the suite"), ("integration", "the integration tier"))]
    return Rendered(f"{' and '.join(parts)} over {len(found['default'])} runs of {found['default'][0]['commit']}",
                    (f"{folder}/tiers.csv",))


GOALS = {"default": 150, "integration": 180, "ci": 480}


def before_after(folder: str = TIERS, previous: str = D498964, start: str = START, origin: str = PREVIOUS) -> Rendered:
    """Each tier at this work's start (a recorded figure, its source named), the previous round's
    median, this round's start (one run, the same machine and day as now), now (the median of this
    round's runs), and the goal. Machines here differ by 10-20% from hour to hour, so only figures
    measured close together compare."""
    before = {r["tier"]: r for r in rows(f"{origin}/before.csv")}
    found, earlier = tier_rows(folder), tier_rows(previous)
    then = {r["tier"]: r for r in rows(f"{start}/tiers.csv")}
    ci = float(key_values(f"{folder}/ci_run.txt")["seconds"])
    ci_earlier = float(key_values(f"{previous}/ci_run.txt")["seconds"])

    def median_of(runs: list[dict]) -> str:
        wall = statistics.median(float(r["wall_s"]) for r in runs)
        cpu = statistics.median(float(r["cpu_s"]) for r in runs)
        return f"{runs[0]['passed']} tests, {wall:.0f} s, CPU {cpu:.0f} s"

    body = []
    for tier, label in (("default", "the suite"), ("integration", "integration tier"), ("ci", "fresh clone `.ci/run`")):
        was = before[tier]
        cells = [label, f"{(was['tests'] + ' tests, ') if was['tests'] else ''}{was['wall_s']} s ({was['how']})"]
        if tier == "ci":
            now = ci
            cells += [f"{ci_earlier:.0f} s (one run)", "", f"{ci:.0f} s (one run)"]
        else:
            now = statistics.median(float(r["wall_s"]) for r in found[tier])
            cells += [f"{median_of(earlier[tier])} ({earlier[tier][0]['commit']})",
                      f"{median_of([then[tier]])} ({then[tier]['commit']})", median_of(found[tier])]
        body.append(cells + [f"{GOALS[tier]} s", "met" if now <= GOALS[tier] else "**missed**"])
    sources = (f"{origin}/before.csv", f"{previous}/tiers.csv", f"{previous}/ci_run.txt", f"{start}/tiers.csv",
               f"{folder}/tiers.csv", f"{folder}/ci_run.txt")
    runs = len(found["default"])
    return table(["", "before (this work's start)", f"previous round, median of {len(earlier['default'])} runs",
                  "this round's start, same machine and day", f"now, median of {runs} runs", "goal", ""], body, sources)
