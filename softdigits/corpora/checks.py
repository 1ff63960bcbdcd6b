"""The content check of a first download, before a file without a published checksum is pinned.

Its own module, imported by the download job alone: the released table's check needs pandas
and the annotation package, which no corpus job runs (a job's code inputs are the modules it
imports).
"""

from __future__ import annotations

import os

from softdigits.corpora import CORPORA
from softdigits.corpora.base import SourceFormatError


def check_download(path: str | os.PathLike, name: str, corpus: str | None = None, file_key: str = "") -> None:
    """Raise unless a downloaded file is intact and its reader parses it (the entry's `check`).

    Run before a file without a published checksum is pinned (trust on first use), so a
    truncated or damaged first download is never trusted. `name` is the file's name (the
    download sits under a temporary one); `corpus` and `file_key` say which corpus file it
    is (`download.content_check`); without a corpus it is the released soft-digits table.
    """
    if corpus is None:
        from softdigits.annotation.released import check_released

        check_released(path)
        return
    entry = CORPORA[corpus]
    if entry.check is None:
        raise SourceFormatError(f"{name}: no content check for the files of {corpus}; give its checksum in the config")
    entry.check(path, name, file_key)
