"""Our CPU kernels in C (`conv_pool.c`, `ink_linear.c`): how one is built, cached, loaded and switched off.

Conventions:
- `Kernel(source, switch, declare, fallback)`: one C file beside its Python module. `library()`
  builds it on first use with the machine's C compiler (`$CC`, else `cc`) and FLAGS into
  `$XDG_CACHE_HOME/softdigits` (else ~/.cache/softdigits), one file per source, compiler,
  flags and CPU (`-march=native`), written atomically so that parallel jobs may race; the
  build takes under a second. Where it cannot be built, the reason is logged once and the
  module runs torch's kernels (`fallback` says what runs instead).
- FLAGS keep each output one fixed sequence of IEEE float32 operations (`-ffp-contract=off`:
  no fused multiply-adds), so builds for any vector width give the same bits.
- The environment variable `switch` (on, the default, or off) is read on every `available()`
  call; any other value is a one-line error (SwitchError). `switched_off()` turns a kernel
  off inside a block, for benchmarks and tests that compare it with torch's.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from softdigits.errors import KnownError

log = logging.getLogger(__name__)

FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fPIC", "-shared", "-Wno-psabi")


class SwitchError(KnownError, ValueError):
    """A kernel's environment switch is neither on nor off."""


def cpu() -> str:
    """What -march=native depends on: the machine and its CPU's feature flags."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    return f"{platform.machine()} {platform.processor()} {flags}"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "softdigits"


class Kernel:
    """One C kernel: built once per process (or found in the cache), or None without a compiler."""

    def __init__(self, source: Path, switch: str, declare: Callable[[ctypes.CDLL], None], fallback: str):
        self.source, self.switch, self.declare, self.fallback = source, switch, declare, fallback
        self._lib: ctypes.CDLL | None = None
        self._built = False
        self._off = False  # inside switched_off()

    @property
    def name(self) -> str:
        return self.source.stem

    def switched_on(self) -> bool:
        value = os.environ.get(self.switch, "on")
        if value not in ("on", "off"):
            raise SwitchError(f"environment variable {self.switch}={value!r}: use on or off")
        return value == "on"

    def build(self, compiler: str | None = None, flags: tuple[str, ...] = FLAGS, directory: Path | None = None) -> Path:
        """The shared library for this source, compiler, flags and CPU, compiled if absent."""
        compiler = compiler or os.environ.get("CC", "cc")
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
        key = hashlib.sha256("\0".join([self.source.read_text(), compiler, version, *flags, cpu()]).encode())
        directory = directory or cache_dir()
        path = directory / f"{self.name}-{key.hexdigest()[:16]}.so"
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".so.tmp")
            os.close(fd)
            try:
                subprocess.run(
                    [compiler, *flags, "-o", tmp, str(self.source)], capture_output=True, text=True, check=True
                )
                os.replace(tmp, path)  # atomic: a job racing this one loads a whole file or builds its own
            finally:
                Path(tmp).unlink(missing_ok=True)
        return path

    def load(self, path: Path) -> ctypes.CDLL:
        lib = ctypes.CDLL(str(path))
        self.declare(lib)
        return lib

    def library(self) -> ctypes.CDLL | None:
        """The loaded kernel, or None where it cannot be built (the reason logged once)."""
        if not self._built:
            self._built = True
            try:
                self._lib = self.load(self.build())
            except (OSError, subprocess.CalledProcessError) as error:
                detail = getattr(error, "stderr", "") or error
                log.warning("%s: not built (%s); %s", self.name, str(detail).strip()[:300], self.fallback)
        return self._lib

    def available(self) -> bool:
        """Is the kernel switched on (its environment switch, read on every call) and built?"""
        return not self._off and self.switched_on() and self.library() is not None

    @contextlib.contextmanager
    def switched_off(self):
        """torch's kernels inside the block (benchmarks and tests compare the two)."""
        before, self._off = self._off, True
        try:
            yield
        finally:
            self._off = before


def pointer(t) -> ctypes.c_void_p | None:
    """A tensor's data pointer for a kernel call (None for None)."""
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def check(status: int, what: str) -> None:
    if status:
        reason = "out of memory" if status == -1 else "a shape the kernel does not cover"
        raise RuntimeError(f"{what}: {reason}")
