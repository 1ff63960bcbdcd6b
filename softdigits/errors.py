"""The errors a user can act on, apart from bugs: one home for what counts as known.

A `KnownError` says on its first line what is wrong and where (the file, row or config
key); a job that fails with one prints that line, prefixed by its rule, instead of a
traceback (softdigits.jobs), and `softdigits` commands print it with exit code 2. Every
other exception is a bug and keeps its traceback. Each stage's error class (a bad
download, a bad answers file, an infeasible selection, ...) subclasses `KnownError`
beside the built-in class it always was (ValueError, RuntimeError), so callers that
catch those still do.

`disk_full` tells a write that failed because the file system is full from other
failures (torch says only "basic_ios::clear: iostream error"), so that the message
can say so.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

# A write that fails while less than this is free on its file system failed for lack of space.
DISK_FULL_BYTES = 1 << 20


class KnownError(Exception):
    """A failure with a message that is complete on its first line (file, row or key)."""


class DiskFullError(KnownError, OSError):
    """A file could not be written because its file system is full."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


def first_line(err: BaseException) -> str:
    """The message's first line (the rest lists further problems)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def disk_full(err: BaseException, path: str | os.PathLike) -> bool:
    """True when `err`, raised while writing `path`, comes from a full file system: ENOSPC
    (or a quota) anywhere in its chain, or any write error while less than
    DISK_FULL_BYTES are free there."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    if not isinstance(err, OSError | RuntimeError):
        return False
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < DISK_FULL_BYTES
    except OSError:
        return False


def disk_full_error(path: str | os.PathLike) -> DiskFullError:
    folder = Path(path).parent
    try:
        free = f"{shutil.disk_usage(folder).free // 1024} KiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        f"{path}: disk full, the file could not be written ({free} on the file system of {folder}); "
        "free some space and rerun (nothing was written)",
    )
