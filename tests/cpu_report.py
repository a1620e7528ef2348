"""pytest plugin: CPU seconds per test, its own and its child processes' (waited for), so a slow
test says whether it computes, starts processes, or waits.

    PYTHONPATH=tests python -m pytest -p cpu_report [tier options]

prints the tests that took the most CPU and the tier's total, and keeps one JSON line per test in
``$CPU_REPORT_LOG`` (default: .pytest-cpu.jsonl in the current folder; it is replaced on
each run). Works with xdist: every worker appends to the same file, the controller prints.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

SHOWN = 15


def _log() -> Path:
    return Path(os.environ.get("CPU_REPORT_LOG", ".pytest-cpu.jsonl"))


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        _log().unlink(missing_ok=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before, started = os.times(), time.perf_counter()
    yield
    after = os.times()
    record = {"test": item.nodeid, "wall": time.perf_counter() - started,
              "own": after.user - before.user + after.system - before.system,
              "children": (after.children_user - before.children_user
                           + after.children_system - before.children_system)}
    with _log().open("a") as handle:  # one short line per write: appends from workers do not interleave
        handle.write(json.dumps(record) + "\n")


def pytest_terminal_summary(terminalreporter):
    if hasattr(terminalreporter.config, "workerinput") or not _log().exists():
        return
    records = [json.loads(line) for line in _log().read_text().splitlines()]
    records.sort(key=lambda r: -(r["own"] + r["children"]))
    write = terminalreporter.write_line
    write(f"\nCPU per test (s): own + child processes; {len(records)} tests, "
          f"{sum(r['own'] for r in records):.0f} own + {sum(r['children'] for r in records):.0f} children")
    write(f"{'cpu':>6} {'own':>6} {'kids':>6} {'wall':>6}  test")
    for r in records[:SHOWN]:
        write(f"{r['own'] + r['children']:6.1f} {r['own']:6.1f} {r['children']:6.1f} {r['wall']:6.1f}  {r['test']}")
