"""Our C kernels (softdigits.training.native.Kernel) in their tests: another build loaded for a
block, every build's bits compared, and a machine without a compiler."""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable

import torch

from softdigits.training import native


@contextlib.contextmanager
def loaded(kernel: native.Kernel, path):
    """The kernel's calls run this build inside the block."""
    before, kernel._lib = kernel._lib, kernel.load(path)
    try:
        yield
    finally:
        kernel._lib = before


def assert_every_build_gives_the_same_bits(kernel: native.Kernel, outputs: Callable[[], list], directory) -> None:
    """The native build against a plain x86-64 / generic one (no AVX, no FMA): one sequence of
    IEEE operations per output, whatever the vector width. A one-ulp change is told apart.
    `outputs()`: every output of the kernel's calls on fixed inputs, from the build loaded."""
    with loaded(kernel, kernel.build()):
        ours = outputs()
    plain_flags = tuple(f for f in native.FLAGS if f != "-march=native") + ("-O1",)
    with loaded(kernel, kernel.build(flags=plain_flags, directory=directory)):
        plain = outputs()
    assert all(torch.equal(a, b) for a, b in zip(ours, plain, strict=True))
    nudged = torch.nextafter(plain[0], torch.full_like(plain[0], 1e9))
    assert not torch.equal(ours[0], nudged)


def without_a_compiler(kernel: native.Kernel, monkeypatch, tmp_path) -> None:
    """The kernel as on a machine without a C compiler (and an empty cache): built afresh, and failing."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(kernel, "_built", False)
    monkeypatch.setattr(kernel, "_lib", None)


def lattice(*shape: int, seed: int = 0) -> torch.Tensor:
    """Pseudo-random float32 values in [-1, 1] from integer arithmetic and one correctly rounded
    division: the same bits on every machine (torch's samplers may pick vector code per CPU)."""
    i = torch.arange(math.prod(shape), dtype=torch.int64)
    v = (i * 2654435761 + seed * 40503) % 2001 - 1000
    return (v.to(torch.float32) / 1000).reshape(shape)


def digest(tensors: list[torch.Tensor]) -> str:
    """The SHA-256 of the tensors' shapes and bytes, in order."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()
