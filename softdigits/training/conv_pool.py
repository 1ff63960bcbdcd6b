"""LeNet's image layers (convolution, 2x2 max-pooling, ReLU) as one CPU kernel of our own.

torch's CPU kernels (oneDNN) run LeNet's 6- and 16-channel convolutions and its pooling at a
quarter of the GEMM rate: a training step at batch 64 was 5.5-6.5 CPU-ms, 60% convolutions
and 20% max-pooling. `conv_pool.c` does the three layers in one pass per output row while
it is in cache, and its backward visits only the pooling winners (a quarter of the conv
outputs): about twice as fast a step (`bench/lenet_kernels.py`).

Conventions:
- `conv_pool_relu(x, weight, bias, padding)`: x (n, H, W, Ci) float32 in HWC memory, weight
  and bias as nn.Conv2d holds them; returns (n, Ho/2, Wo/2, Co) in HWC memory. Autograd
  gives the gradients of x (when it needs them), weight and bias.
- `features(x, convs)`: flat (n, 784) images through every (weight, bias, padding) layer, as
  (n, C*H*W) in the module's flatten order (channel, row, column), as `models.lenet` and a
  stack's member (`training.stack`) both call it, so a member gets its module's bits.
- The kernel's bits do not depend on the machine's vector width: each output is one fixed
  sequence of IEEE float32 multiplies and adds (conv_pool.c says how), so two machines with
  this kernel compute LeNet's image layers alike, where oneDNN picks kernels per CPU. They
  are not torch's bits: the kernel is a realisation of its own (tests/training/test_conv_pool.py
  checks it against torch within float32 rounding, forward and backward).
- Where it runs (`runs`): float32 CPU tensors, the shapes conv_pool.c covers, once a C
  compiler (`$CC`, else `cc`) has built it. It is built on first use into
  `$XDG_CACHE_HOME/softdigits` (else ~/.cache/softdigits), one file per source, compiler and
  CPU (`-march=native`), written atomically so that parallel jobs may race. Without a
  compiler, or with SOFTDIGITS_CONV_POOL=off, LeNet runs torch's kernels: another
  realisation, named in each training manifest (`stack.conv_pool`).
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
from pathlib import Path

import torch

from softdigits.errors import KnownError

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_suffix(".c")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fPIC", "-shared", "-Wno-psabi")
POOL = 2  # the pooling window and stride the kernel fuses

_lib: ctypes.CDLL | None = None
_built = False
SWITCH = "SOFTDIGITS_CONV_POOL"  # on (the default) or off
_off = False  # switched_off()


class SwitchError(KnownError, ValueError):
    """SOFTDIGITS_CONV_POOL is neither on nor off."""


def _switch() -> bool:
    value = os.environ.get(SWITCH, "on")
    if value not in ("on", "off"):
        raise SwitchError(f"environment variable {SWITCH}={value!r}: use on or off")
    return value == "on"


def _cpu() -> str:
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


def build(compiler: str | None = None, flags: tuple[str, ...] = FLAGS, directory: Path | None = None) -> Path:
    """The kernel's shared library for this source, compiler, flags and CPU, compiled if absent."""
    compiler = compiler or os.environ.get("CC", "cc")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, version, *flags, _cpu()]).encode()).hexdigest()
    directory = directory or cache_dir()
    path = directory / f"conv_pool-{key[:16]}.so"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".so.tmp")
        os.close(fd)
        try:
            subprocess.run([compiler, *flags, "-o", tmp, str(SOURCE)], capture_output=True, text=True, check=True)
            os.replace(tmp, path)  # atomic: a job racing this one loads a whole file or builds its own
        finally:
            Path(tmp).unlink(missing_ok=True)
    return path


def load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.conv_pool_supported.argtypes = [i] * 5
    lib.conv_pool_relu_forward.argtypes = [p, i, i, i, i, p, p, i, i, i, p, p]
    lib.conv_pool_relu_backward.argtypes = [p, i, i, i, i, p, i, i, i, p, p, p, p, p, p]
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded kernel, or None where it cannot be built (the reason logged once)."""
    global _lib, _built
    if not _built:
        _built = True
        try:
            _lib = load(build())
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or error
            log.warning("conv_pool: not built (%s); LeNet runs torch's kernels", str(detail).strip()[:300])
    return _lib


def available() -> bool:
    """Is the kernel switched on (SWITCH, read on every call) and built?"""
    return not _off and _switch() and library() is not None


@contextlib.contextmanager
def switched_off():
    """torch's kernels inside the block (benchmarks and tests compare the two)."""
    global _off
    before, _off = _off, True
    try:
        yield
    finally:
        _off = before


def fused_convs(modules: list[torch.nn.Module], side: int = 28) -> list[torch.nn.Conv2d] | None:
    """The convolutions of image layers that are (Conv2d, 2x2 MaxPool2d, ReLU) blocks the kernel
    covers, on (side x side) one-channel images; None for any other chain, or without the kernel."""
    lib = library()
    if lib is None or not modules or len(modules) % 3:
        return None
    convs, channels = [], 1
    for conv, pool, relu in zip(modules[::3], modules[1::3], modules[2::3]):
        if not (
            isinstance(conv, torch.nn.Conv2d)
            and conv.stride == (1, 1)
            and conv.dilation == (1, 1)
            and conv.groups == 1
            and conv.padding_mode == "zeros"
            and conv.bias is not None
            and conv.in_channels == channels
            and conv.kernel_size[0] == conv.kernel_size[1]
            and isinstance(conv.padding, tuple)
            and conv.padding[0] == conv.padding[1]
            and isinstance(pool, torch.nn.MaxPool2d)
            and _pair(pool.kernel_size) == _pair(pool.stride) == (POOL, POOL)
            and _pair(pool.padding) == (0, 0)
            and _pair(pool.dilation) == (1, 1)
            and not pool.ceil_mode
            and isinstance(relu, torch.nn.ReLU)
        ):
            return None
        out = side + 2 * conv.padding[0] - conv.kernel_size[0] + 1
        if not lib.conv_pool_supported(channels, conv.out_channels, conv.kernel_size[0], out, out):
            return None
        convs.append(conv)
        side, channels = out // POOL, conv.out_channels
    return convs


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


def runs(x: torch.Tensor) -> bool:
    """Does the kernel run on this input (float32, CPU) here?"""
    return x.dtype == torch.float32 and x.device.type == "cpu" and available()


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p | None:
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _check(status: int, what: str) -> None:
    if status:
        reason = "out of memory" if status == -1 else "a shape the kernel does not cover"
        raise RuntimeError(f"conv_pool {what}: {reason}")


class ConvPoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding: int):
        n, h, w, ci = x.shape
        co, _, k, _ = weight.shape
        x, weight, bias = x.contiguous(), weight.detach().contiguous(), bias.detach().contiguous()
        hq, wq = (h + 2 * padding - k + 1) // POOL, (w + 2 * padding - k + 1) // POOL
        out = torch.empty(n, hq, wq, co, dtype=torch.float32)
        arg = torch.empty(n, hq, wq, co, dtype=torch.uint8)
        lib = library()
        if lib is None:
            raise RuntimeError("conv_pool: the kernel is not built here (see the warning logged)")
        status = lib.conv_pool_relu_forward(
            _ptr(x), n, h, w, ci, _ptr(weight), _ptr(bias), co, k, padding, _ptr(out), _ptr(arg)
        )
        _check(status, "forward")
        ctx.save_for_backward(x, weight, out, arg)
        ctx.padding = padding
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, out, arg = ctx.saved_tensors
        n, h, w, ci = x.shape
        co, _, k, _ = weight.shape
        grad = grad.contiguous()
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grad_weight, grad_bias = torch.empty_like(weight), torch.empty(co, dtype=torch.float32)
        status = _lib.conv_pool_relu_backward(
            _ptr(x), n, h, w, ci, _ptr(weight), co, k, ctx.padding,
            _ptr(out), _ptr(arg), _ptr(grad), _ptr(grad_x), _ptr(grad_weight), _ptr(grad_bias),
        )  # fmt: skip
        _check(status, "backward")
        return grad_x, grad_weight, grad_bias, None


def conv_pool_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> torch.Tensor:
    return ConvPoolReLU.apply(x, weight, bias, padding)


def features(x: torch.Tensor, convs: list[tuple[torch.Tensor, torch.Tensor, int]], side: int = 28) -> torch.Tensor:
    """Flat (n, side*side) images through each (weight, bias, padding): (n, C*H*W), flattened
    in (channel, row, column) order, as nn.Flatten flattens the module's NCHW maps."""
    h = x.reshape(-1, side, side, 1)
    for weight, bias, padding in convs:
        h = conv_pool_relu(h, weight, bias, padding)
    return h.permute(0, 3, 1, 2).flatten(1)
