"""The tests' order (tests/ordering.py): longest first in every worker's lane, lanes as worksteal
splits a collection, a fixture's users kept together."""

from __future__ import annotations

from dataclasses import dataclass

from ordering import order


@dataclass(frozen=True)
class Item:
    nodeid: str


def test_the_longest_tests_lead_each_lane_and_the_lanes_balance_their_seconds():
    items = [Item(name) for name in "abcdefgh"]
    seconds = {"a": 1, "b": 30, "c": 2, "d": 25, "e": 3, "g": 10}  # f and h unknown: short
    ordered = order(items, {item: "" for item in items}, seconds, workers=2)
    first, second = ordered[:4], ordered[4:]  # what worksteal hands each worker
    # Each next-longest test goes to the lighter lane with room: b e c a (36 s), d g f h (35 s).
    assert [i.nodeid for i in first] == ["b", "e", "c", "a"] and [i.nodeid for i in second] == ["d", "g", "f", "h"]


def test_a_fixtures_users_stay_together_and_one_worker_keeps_everything_longest_first():
    items = [Item(name) for name in "abcde"]
    group = {items[0]: "compared", items[3]: "compared", items[1]: "", items[2]: "", items[4]: ""}
    ordered = order(items, group, {"a": 5, "d": 6, "b": 8, "c": 1}, workers=1)
    assert [i.nodeid for i in ordered] == ["a", "d", "b", "c", "e"]  # the pair's 11 s ranks it first
    two = [i.nodeid for i in order(items, group, {"a": 5, "d": 6, "b": 8, "c": 1}, workers=2)]
    assert two[:2] == ["a", "d"]  # lanes of 2 and 3 tests: the pair fills the first, not split
    odd = [i.nodeid for i in order(items[:3], {i: "" for i in items[:3]}, {"c": 9}, workers=2)]
    assert odd == ["c", "a", "b"]  # worksteal hands the first worker 1 test (c, the long one), the second 2
