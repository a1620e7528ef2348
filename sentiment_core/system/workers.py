"""Worker processes: spawned with their threads and their GPU, interrupted like the main process."""

from __future__ import annotations

import _thread
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from ..errors import UserError, was_interrupted


def raise_keyboard_interrupt(signum, frame):
    mark_interrupted()
    raise KeyboardInterrupt(f"signal {signum}")


def mark_interrupted() -> None:
    """Note on this process's unraisable hook (:func:`redeliver_lost_interrupts`) that it has been
    interrupted: from now on it drops the ORM's clean-up errors that an interruption leaves."""
    if getattr(sys.unraisablehook, "redelivers_interrupts", False):
        sys.unraisablehook.interrupted = True


def interruption_aftermath(unraisable) -> bool:
    """SQLAlchemy's ``InstanceState._cleanup`` failing ``assert key is not None``: a weakref callback
    on an object whose identity-map entry an interruption cut off half made (seen when Ctrl-C
    landed in a side-by-side worker's MLflow write). Harmless, and Python ignores it anyway; printed,
    it is a screen of tracebacks under "interrupted"."""
    function = getattr(unraisable.object, "__func__", None)
    return (isinstance(unraisable.exc_value, AssertionError) and function is not None
            and function.__qualname__ == "InstanceState._cleanup" and function.__module__ == "sqlalchemy.orm.state")


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


def run_in_processes(target: Callable, argument_lists: list[tuple], threads: int, share_cores: bool = False) -> list[int]:
    """``target(*arguments)`` in one spawned process per entry, each with ``threads`` torch threads,
    its own GPU when there are several (``CUDA_VISIBLE_DEVICES``, round robin) and the conventions
    of ``run_main``; waits for all and returns the non-zero exit codes. ``share_cores``: the target
    also gets ``siblings=``, a count of the processes still running that this one lowers as each
    ends (``CpuShare.siblings``: the others take the cores it leaves)."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    gpus = visible_gpus()
    # Lowered here, once a process has exited, not by the process as it finishes: until it exits
    # (its model logged, its interpreter torn down) it still uses a core.
    siblings = context.RawValue("i", len(argument_lists)) if share_cores else None
    procs = [context.Process(target=_spawned, args=(target, arguments, threads, gpu_for_worker(i, gpus), siblings))
             for i, arguments in enumerate(argument_lists)]
    for proc in procs:
        proc.start()
    try:
        running = {proc.sentinel: proc for proc in procs}
        while running:
            for ended in wait(list(running)):
                running.pop(ended).join()
                if siblings is not None:
                    siblings.value -= 1
    except KeyboardInterrupt:
        # Ctrl-C reaches the whole process group, but SIGTERM (`kill PID`, a batch scheduler) only
        # this process: pass it on, so that the workers end their trials and runs and save their
        # state, and wait for them, instead of leaving them training unseen.
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join()
        raise
    return [proc.exitcode for proc in procs if proc.exitcode]


def stop_once(signum, frame):
    """A worker's Ctrl-C or SIGTERM: one interruption. On Ctrl-C the worker gets SIGINT from the
    terminal and SIGTERM from its parent; a second KeyboardInterrupt would cut its clean-up short
    (ending its runs, queueing its trial again, saving its state). The later signals go to a
    handler that does nothing, not to SIG_IGN: the parent's SIGTERM often arrives while a long
    torch op runs, before this handler has; Python then finds it pending under SIG_IGN and raises
    "OSError: Signal 15 ignored due to race condition" in the middle of the clean-up."""
    signal.signal(signal.SIGINT, _after_the_first)
    signal.signal(signal.SIGTERM, _after_the_first)
    mark_interrupted()
    raise KeyboardInterrupt(f"signal {signum}")


def _after_the_first(signum, frame) -> None:
    """A worker's signals after its first interruption: already stopping."""


def redeliver_lost_interrupts() -> None:
    """Raise again an interruption that Python dropped, once, in the main thread.

    A signal's handler runs at whatever bytecode the main thread is at; when that is a
    garbage-collection callback or a ``__del__`` (SQLAlchemy has weakref callbacks on its hot
    path), the handler's KeyboardInterrupt is raised there, where Python only prints "Exception
    ignored" and goes on: the command trained on as if never signalled, until SIGKILL
    (benchmarks/interrupt_anywhere.py). The hook hands the interruption to a one-shot SIGINT
    handler and has another thread trip it 10 ms later, when the hook has returned (tripped from
    inside the hook, the handler runs at once, still inside, and is dropped again); if it lands in
    such a place again, the hook sees it again. The handler puts back the one it replaced (a worker's
    do-nothing handler after its first interruption stays). Once the process has been interrupted
    (:func:`mark_interrupted`), the hook drops :func:`interruption_aftermath`. Installed once per
    process; other unraisable errors are printed as before.
    """
    if getattr(sys.unraisablehook, "redelivers_interrupts", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if hook.interrupted and interruption_aftermath(unraisable):
            return
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt)
                and threading.current_thread() is threading.main_thread()):
            previous(unraisable)
            return
        mark_interrupted()
        replaced = signal.getsignal(signal.SIGINT)
        if getattr(replaced, "redelivers", False):  # one is on its way already: one interruption
            return
        args = unraisable.exc_value.args

        def once(signum, frame):
            signal.signal(signal.SIGINT, replaced if replaced is not None else signal.default_int_handler)
            raise KeyboardInterrupt(*args)

        once.redelivers = True
        signal.signal(signal.SIGINT, once)
        trip = threading.Timer(0.01, _thread.interrupt_main, args=(signal.SIGINT,))
        trip.daemon = True
        trip.start()

    hook.redelivers_interrupts = True
    hook.interrupted = False
    sys.unraisablehook = hook


def _spawned(target: Callable, arguments: tuple, threads: int, gpu: str | None = None, siblings=None) -> None:
    signal.signal(signal.SIGTERM, stop_once)
    # A command started with SIGINT ignored (in the background of a script: `cmd &`) is deaf to
    # Ctrl-C, and its workers inherit that: a Ctrl-C for the terminal's foreground job would
    # otherwise stop the workers under a parent that trains on.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, stop_once)
    redeliver_lost_interrupts()
    if gpu is not None:  # before anything initializes CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    quiet_libraries()
    torch.set_num_threads(threads)
    try:
        target(*arguments, **({"siblings": siblings} if siblings is not None else {}))
    except UserError as exc:
        print(f"error (worker process {os.getpid()}): {exc}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, Exception) as exc:
        if not was_interrupted(exc):  # as run_main: an error that took an interruption's place is one
            raise
        sys.exit(130)


def quiet_libraries() -> None:
    """MLflow's and alembic's INFO lines ("Creating initial MLflow database tables...") stay out of
    the console: what a command prints is its own progress, table and errors."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
