"""One Snakemake run at a time per results folder.

Snakemake's own lock (.snakemake/locks) is looked at only after Snakemake has checked
for incomplete outputs, so a second run started while the first is still writing stopped
on the first run's unfinished files, with the advice to rerun them with
--rerun-incomplete: wrong while the first run is still going. The workflow takes this lock
when it loads (rules/common.smk), before any of that: an exclusive `flock` on
`<results>/.run.lock`, held by the Snakemake process until it exits. The kernel releases
it when that process ends in any way (kill -9 included), so it never needs unlocking, and
the file says which process holds it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path
from typing import IO

from softdigits.errors import KnownError

LOCK_NAME = ".run.lock"


class FolderInUse(KnownError):
    """Another Snakemake run holds the results folder."""


def hold(results: str | os.PathLike) -> IO:
    """Lock the results folder for this process (keep the returned file open), or raise
    FolderInUse naming the process that holds it."""
    path = Path(results) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that has not said which"
        handle.close()
        raise FolderInUse(
            f"{results}/ is in use by another snakemake run ({holder}); wait for it to end (or stop "
            "it) and start again: its outputs are still being written, so do not --unlock or "
            "--rerun-incomplete while it runs"
        ) from None
    handle.seek(0)
    handle.truncate()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    handle.write(f"pid {os.getpid()}, started {started}: snakemake {' '.join(sys.argv[1:])}\n")
    handle.flush()
    return handle
