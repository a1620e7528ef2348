"""Worker processes: spawned with their threads and their GPU, interrupted like the main process."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from ..errors import UserError


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def visible_gpus(environ: dict | None = None, count: int | None = None) -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` as given, else every GPU torch sees."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    if count is None:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [str(i) for i in range(count)]


def gpu_for_worker(index: int, gpus: list[str]) -> str | None:
    """Worker ``index``'s one GPU (round robin over ``gpus``), or None on a machine without GPUs."""
    return gpus[index % len(gpus)] if gpus else None


def run_in_processes(target: Callable, argument_lists: list[tuple], threads: int) -> list[int]:
    """``target(*arguments)`` in one spawned process per entry, each with ``threads`` torch threads,
    its own GPU when there are several (``CUDA_VISIBLE_DEVICES``, round robin) and the conventions
    of ``run_main``; waits for all and returns the non-zero exit codes."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    gpus = visible_gpus()
    procs = [context.Process(target=_spawned, args=(target, arguments, threads, gpu_for_worker(i, gpus)))
             for i, arguments in enumerate(argument_lists)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return [proc.exitcode for proc in procs if proc.exitcode]


def _spawned(target: Callable, arguments: tuple, threads: int, gpu: str | None = None) -> None:
    if gpu is not None:  # before anything initializes CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    quiet_libraries()
    torch.set_num_threads(threads)
    try:
        target(*arguments)
    except KeyboardInterrupt:
        sys.exit(130)
    except UserError as exc:
        print(f"error (worker process {os.getpid()}): {exc}", file=sys.stderr)
        sys.exit(2)


def quiet_libraries() -> None:
    """MLflow's and alembic's INFO lines ("Creating initial MLflow database tables...") stay out of
    the console: what a command prints is its own progress, table and errors."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
