"""A report folder that several commands may write at the same moment.

Workers of one study (and comparisons started side by side) write their report into the same
``outputs/`` folder and then upload each file to their MLflow run. Written in place, one command's
``savefig`` truncates a file that another command is uploading: MLflow's HTTP upload sends the size
it read from ``fstat`` and then a shorter body, and the tracking server waits for the missing bytes
until the client's 120 s read timeout; urllib3's retry then resends a file body already read and
waits again (seen as a hung three-worker test, diagnosed with py-spy while it hung). So each
command writes into a folder of its own, uploads from there (nobody else writes those files), and
then moves each file into the shared folder with one atomic rename: a reader of ``outputs/`` sees
a whole file from one command or another, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def private_folder(out: Path) -> Iterator[Path]:
    """A new, empty folder beside ``out`` (same file system, so the final moves are renames).
    On leaving without an error, every file in it replaces its namesake in ``out``; on an error,
    ``out`` is left as it was. The private folder is removed either way."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-writing-"))
    try:
        yield private
        for path in sorted(private.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(private, ignore_errors=True)
