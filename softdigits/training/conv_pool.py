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
- `stacked_features(x, convs)`: the same for every member of a stack at once (weights stacked
  (M, ...)), one autograd node making each member's kernel calls: the bits `features` gives
  member by member, without a node, a copy and a gradient slice per member and layer.
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


class StackedFeatures(torch.autograd.Function):
    """Every member's image layers as one autograd node: member m's kernel calls are the ones
    `features` makes for it alone (the same bits), without a node, an output copy and a
    gradient slice per member and layer."""

    @staticmethod
    def forward(ctx, x, paddings: tuple[int, ...], side: int, *params):
        lib = library()
        if lib is None:
            raise RuntimeError("conv_pool: the kernel is not built here (see the warning logged)")
        members, n = params[0].shape[0], x.shape[-2]
        h, h_stride, shape = x, x.stride(0) if x.dim() == 3 else 0, (side, side, 1)
        saved, meta = [x], []
        for weight, bias, padding in zip(params[::2], params[1::2], paddings):
            weight, bias = weight.detach().contiguous(), bias.detach().contiguous()
            co, ci, k, _ = weight.shape[1:]
            hq, wq = (shape[0] + 2 * padding - k + 1) // POOL, (shape[1] + 2 * padding - k + 1) // POOL
            out = torch.empty(members, n, hq, wq, co, dtype=torch.float32)
            arg = torch.empty(members, n, hq, wq, co, dtype=torch.uint8)
            for m in range(members):
                status = lib.conv_pool_relu_forward(
                    _at(h, m, h_stride), n, shape[0], shape[1], ci, pointer(weight[m]), pointer(bias[m]), co, k,
                    padding, pointer(out[m]), pointer(arg[m]),
                )  # fmt: skip
                check(status, "conv_pool forward")
            saved += [weight, out, arg]
            meta.append((h_stride, shape, padding))
            h, h_stride, shape = out, out.stride(0), (hq, wq, co)
        ctx.save_for_backward(*saved)
        ctx.meta = meta
        return h.permute(0, 1, 4, 2, 3).reshape(members, n, -1)  # each member's maps in (channel, row, column) order

    @staticmethod
    def backward(ctx, grad):
        lib = library()
        saved = ctx.saved_tensors
        inputs = [saved[0], *saved[2::3][:-1]]  # each layer's input: the images, then the maps before
        members, n, hq, wq, co = saved[-2].shape
        g = grad.reshape(members, n, co, hq, wq).permute(0, 1, 3, 4, 2).contiguous()
        grads = []
        for i in range(len(ctx.meta) - 1, -1, -1):
            (h_stride, (height, width, ci), padding), h = ctx.meta[i], inputs[i]
            weight, out, arg = saved[1 + 3 * i : 4 + 3 * i]
            co, _, k, _ = weight.shape[1:]
            grad_x = torch.empty(members, n, height, width, ci, dtype=torch.float32) if i else None
            grad_weight, grad_bias = torch.empty_like(weight), torch.empty(members, co, dtype=torch.float32)
            for m in range(members):
                status = lib.conv_pool_relu_backward(
                    _at(h, m, h_stride), n, height, width, ci, pointer(weight[m]), co, k, padding,
                    pointer(out[m]), pointer(arg[m]), pointer(g[m]), None if grad_x is None else pointer(grad_x[m]),
                    pointer(grad_weight[m]), pointer(grad_bias[m]),
                )  # fmt: skip
                check(status, "conv_pool backward")
            grads[:0] = [grad_weight, grad_bias]
            g = grad_x
        return (None, None, None, *grads)


def _at(t: torch.Tensor, m: int, stride: int) -> ctypes.c_void_p:
    """Member m's (n, H, W, C) maps in t: at m * stride floats (stride 0: shared by every member)."""
    return ctypes.c_void_p(t.data_ptr() + m * stride * t.element_size())


def stacked_features(
    x: torch.Tensor, convs: list[tuple[torch.Tensor, torch.Tensor, int]], side: int = 28
) -> torch.Tensor:
    """`features` of every member at once: x (M, n, side*side), or (n, side*side) shared by every
    member; convs: (weight (M, Co, Ci, K, K), bias (M, Co), padding) per layer. Returns (M, n,
    C*H*W), member m's rows the bits `features(x[m], [(w[m], b[m], p), ...])` gives. The images
    take no gradient (they are data): where x needs one, use `features` member by member."""
    if x.requires_grad:
        raise ValueError("conv_pool.stacked_features: the images take no gradient here; use features")
    if x.dim() not in (2, 3) or x.shape[-1] != side * side:
        raise ValueError(f"conv_pool.stacked_features: images of shape {tuple(x.shape)}, not (M, n, {side * side})")
    if x.stride(-1) != 1 or x.stride(-2) != side * side:  # each member's images one block (stride 0: shared)
        x = x.contiguous()
    params = [t for weight, bias, _ in convs for t in (weight, bias)]
    return StackedFeatures.apply(x, tuple(p for _, _, p in convs), side, *params)


def features(x: torch.Tensor, convs: list[tuple[torch.Tensor, torch.Tensor, int]], side: int = 28) -> torch.Tensor:
    """Flat (n, side*side) images through each (weight, bias, padding): (n, C*H*W), flattened
    in (channel, row, column) order, as nn.Flatten flattens the module's NCHW maps."""
    h = x.reshape(-1, side, side, 1)
    for weight, bias, padding in convs:
        h = conv_pool_relu(h, weight, bias, padding)
    return h.permute(0, 3, 1, 2).flatten(1)
