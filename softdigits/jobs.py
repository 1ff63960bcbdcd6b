"""Plumbing for the `script:` entry points: logging to the rule's log, thread caps."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def start(snakemake) -> logging.Logger:
    """Send logging and uncaught errors of a job to its `log:` file.

    Every script calls this first. Thread caps need nothing here: Snakemake
    starts a script with OMP/OpenBLAS/MKL_NUM_THREADS set to the rule's
    `threads:`, before numpy loads; torch jobs also call `torch_threads`.
    """
    log_path = Path(str(snakemake.log[0]))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)

    def excepthook(kind, value, tb):
        root.error("job failed", exc_info=(kind, value, tb))

    sys.excepthook = excepthook
    return logging.getLogger(f"softdigits.{snakemake.rule}")


def torch_threads(threads: int) -> None:
    """Cap torch's intra-op threads (import deferred: not every job needs torch)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
