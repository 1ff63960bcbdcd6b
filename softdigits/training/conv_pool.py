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
- Where it runs (`runs`): float32 CPU tensors, the shapes conv_pool.c covers, once the
  machine's C compiler has built it (`training.native`: built on first use, cached per
  source, compiler and CPU). Without a compiler, or with SOFTDIGITS_CONV_POOL=off, LeNet runs
  torch's kernels: another realisation, named in each training manifest (`stack.conv_pool`).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from softdigits.training import native
from softdigits.training.native import check, pointer

POOL = 2  # the pooling window and stride the kernel fuses


def _declare(lib: ctypes.CDLL) -> None:
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.conv_pool_supported.argtypes = [i] * 5
    lib.conv_pool_relu_forward.argtypes = [p, i, i, i, i, p, p, i, i, i, p, p]
    lib.conv_pool_relu_backward.argtypes = [p, i, i, i, i, p, i, i, i, p, p, p, p, p, p]


KERNEL = native.Kernel(Path(__file__).with_suffix(".c"), "SOFTDIGITS_CONV_POOL", _declare, "LeNet runs torch's kernels")
library, available, switched_off = KERNEL.library, KERNEL.available, KERNEL.switched_off


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
            pointer(x), n, h, w, ci, pointer(weight), pointer(bias), co, k, padding, pointer(out), pointer(arg)
        )
        check(status, "conv_pool forward")
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
        status = library().conv_pool_relu_backward(
            pointer(x), n, h, w, ci, pointer(weight), co, k, ctx.padding,
            pointer(out), pointer(arg), pointer(grad), pointer(grad_x), pointer(grad_weight), pointer(grad_bias),
        )  # fmt: skip
        check(status, "conv_pool backward")
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
