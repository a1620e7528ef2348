"""A command's imports without the garbage collector's passes (sentiment_core/system/startup.py)."""

from __future__ import annotations

import ast
import gc
import json
import subprocess
import sys

from helpers import REPO
from sentiment_core.system.startup import heavy_imports

# A fresh interpreter (torch not imported): what the block does to the collector, and whether
# garbage made after it is still collected. Light imports only: the block does not care which.
FRESH = """
import gc, json, sys
from sentiment_core.system.startup import heavy_imports
seen = {}
with heavy_imports():
    seen["enabled_inside"] = gc.isenabled()
    import argparse, decimal, email.parser, xml.dom.minidom
seen["enabled_after"] = gc.isenabled()
seen["frozen"] = gc.get_freeze_count()

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: only the collector frees it
del a, b
seen["collected"] = gc.collect()
print(json.dumps(seen))
"""


def test_a_fresh_process_imports_with_the_collector_off_then_freezes_the_imports_and_collects_the_rest():
    out = subprocess.run([sys.executable, "-c", FRESH], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    seen = json.loads(out)
    assert seen["enabled_inside"] is False and seen["enabled_after"] is True
    assert seen["frozen"] > 10_000, seen  # the modules' objects, out of every later pass
    assert seen["collected"] >= 2, seen  # a cycle made after the block is still freed


def test_a_process_that_imported_torch_already_is_left_as_it_was():
    # This test process (a notebook, a test runner running a script's main): nothing is frozen,
    # so no pending garbage is kept for good, and the collector stays on throughout.
    frozen = gc.get_freeze_count()
    with heavy_imports():
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_a_collector_switched_off_stays_off():
    gc.disable()
    try:
        with heavy_imports():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_every_script_that_trains_or_predicts_imports_inside_the_block():
    # Each of these processes (and each worker it spawns, which runs the script's top level again)
    # imports torch and MLflow: the block is where the start-up's CPU is saved.
    for name in ("compare_rnn_lstm", "compare_presets", "tune_regularization", "predict"):
        tree = ast.parse((REPO / "experiments" / f"{name}.py").read_text())
        blocks = [node for node in tree.body if isinstance(node, ast.With)
                  and ast.unparse(node.items[0].context_expr) == "heavy_imports()"]
        assert len(blocks) == 1, name
        inside = {alias.name for node in ast.walk(blocks[0]) if isinstance(node, ast.ImportFrom)
                  for alias in node.names}
        outside = [node.module for node in tree.body if isinstance(node, ast.ImportFrom)
                   and (node.module or "").startswith("sentiment_core")]
        assert "run_main" in inside, name
        assert set(outside) <= {"sentiment_core.system.cpu_allocator", "sentiment_core.system.startup"}, (name, outside)
