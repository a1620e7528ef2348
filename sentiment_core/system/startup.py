"""A command's start: importing torch, MLflow and Optuna without paying Python's garbage collector for it.

Those imports leave about 450,000 objects for CPython's cyclic collector to track. It runs every
few hundred allocations and, every so often, walks every object there is: about a thousand passes
during the imports (6 over everything), each over a larger heap, and again at exit; and the
objects it walked are the modules' own, which are never garbage. Switched off while they load,
and their objects then frozen (``gc.freeze``: left out of every later collection, the ones at exit
included), a process that only imports them spends 2.9 CPU-s instead of 5.4 (Zen 5, Python 3.11),
and a 2-worker study command of tiny trials 22 CPU-s instead of 31.5
(``results/benchmarks/startup_cost_zen5_study.txt``; ``benchmarks/startup_cost.py`` measures the
scripts both ways side by side). Every command and every worker process it spawns pays this
once, so quick commands gain the most.

Objects made after the imports are collected as before: runs, models, stores, connections.
"""

from __future__ import annotations

import contextlib
import gc
import sys


@contextlib.contextmanager
def heavy_imports():
    """Run the ``import`` statements of a command's script inside this block (its first heavy ones)."""
    # Only in a fresh process: where torch is imported already (a test runner or a notebook running
    # a script's main), the imports cost nothing, and freezing would keep that process's pending
    # garbage for good. A collector someone switched off stays off.
    fresh = "torch" not in sys.modules and gc.isenabled()
    if fresh:
        gc.disable()
    try:
        yield
    finally:
        if fresh:
            gc.freeze()
            gc.enable()
