"""The order the tests run in: the longest first on every xdist worker.

`--dist worksteal` gives each worker an equal count of consecutive tests and lets an idle
worker steal from the end of another's queue. So the collection is dealt into one lane per
worker (longest first, each to the lightest lane with room), by the seconds each test took last time
(tests/durations.json, written by ``pytest --store-durations``): a long test never starts last
while the other worker sits idle, and what is stolen at the end is short. A test the file does
not know counts as short. A fixture's users stay together in one lane (the fixture is built
once per worker).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DURATIONS = Path(__file__).with_name("durations.json")


def recorded() -> dict[str, float]:
    try:
        return json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        return {}


def order(items: list, group_of: dict, seconds: dict[str, float], workers: int) -> list:
    """``items`` dealt into ``workers`` lanes, longest first in each: each next-longest unit goes to
    the lightest lane with room, the lanes sized as worksteal splits a collection (equal counts,
    the larger ones last); items with the same non-empty ``group_of`` value move as one unit."""
    units: dict[object, list] = {}
    for index, item in enumerate(items):
        units.setdefault(group_of[item] or ("alone", index), []).append(item)

    def cost(unit):
        return sum(seconds.get(item.nodeid, 0.0) for item in unit)

    count = max(1, workers)
    sizes = [len(items) // count + (i >= count - len(items) % count) for i in range(count)]
    lanes: list[list] = [[] for _ in range(count)]
    loads = [0.0] * count
    for unit in sorted(units.values(), key=lambda unit: -cost(unit)):
        room = [i for i in range(count) if len(lanes[i]) + len(unit) <= sizes[i]]
        lane = min(room, key=lambda i: loads[i]) if room else max(range(count), key=lambda i: sizes[i] - len(lanes[i]))
        lanes[lane] += unit
        loads[lane] += cost(unit)
    return [item for lane in lanes for item in lane]


def worker_count() -> int:
    """How many xdist workers share the tests (1 without xdist); set in every worker."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


class Recorder:
    """``--store-durations``: each test's setup + call + teardown seconds, merged into the file
    (so each tier keeps the others' entries)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session) -> None:
        if os.environ.get("PYTEST_XDIST_WORKER") or not self.seconds:
            return  # the controller writes, once
        merged = {**recorded(), **{k: round(v, 1) for k, v in self.seconds.items()}}
        DURATIONS.write_text(json.dumps(dict(sorted(merged.items())), indent=0) + "\n")
