"""The FFNs' first layer: nn.Linear's function on digit images, summed over each image's ink only.

About four pixels in five of a digit are background, one value after normalisation. A dense
matmul multiplies them all; `ink_linear.c` computes each row as b + c * colsum(W) + W (x - c),
c the row's smallest value, so the background's zeros of x - c are skipped: the same function
(for finite weights, and inputs whose x - c does not overflow float32; a NaN or an infinity in
x comes out where F.linear puts it), with about a fifth of the multiplies on digits: on one thread at batch 64 its
forward and weight gradient take well under half the time of torch's matmuls
(`bench/ink_linear.py` measures both side by side).

Conventions:
- `InkLinear(in_features, out_features)`: an nn.Linear initialised as torch's (from the global
  generator), its weight stored transposed as `weight_t` (in_features, out_features), the
  kernel's layout, so neither the module nor a stack copies it per step.
- `linear(x, weight_t, bias)`: the layer for M members at once: x (M, n, in) or (n, in) shared
  by every member, weight_t (M, in, out), bias (M, out); returns (M, n, out). The module alone
  and a stack's member (`training.stack`) both call it, member by member in the kernel, so a
  member gets its module's bits. One batch expanded to every member is compacted once. No
  gradient for x: it takes the images (an x that requires one is an error).
- The kernel's bits do not depend on the machine's vector width (each output is one fixed
  sequence of IEEE float32 operations, ink_linear.c says which), and they are not torch's: a
  realisation of its own, within float32 rounding of F.linear (tests/training/test_ink_linear.py).
- Where it runs (`runs`): float32 CPU tensors, out_features a multiple of 8, once the machine's
  C compiler has built it (`training.native`). Without one, or with SOFTDIGITS_INK_LINEAR=off,
  the layer is torch's batched matmul: another realisation, named in each training manifest
  (`stack.ink_linear`).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch import nn

from softdigits.training import native
from softdigits.training.native import check, pointer


def _declare(lib: ctypes.CDLL) -> None:
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.ink_linear_supported.argtypes = [i]
    lib.ink_linear_compact.argtypes = [p, i, i, p, p, p, p]
    lib.ink_linear_compact.restype = None
    lib.ink_linear_forward.argtypes = [i, i, i, p, p, p, p, p, p, p]
    lib.ink_linear_backward.argtypes = [i, i, i, p, p, p, p, p, p, p]


KERNEL = native.Kernel(
    Path(__file__).with_suffix(".c"), "SOFTDIGITS_INK_LINEAR", _declare, "the FFNs' first layer runs torch's matmul"
)
available, switched_off = KERNEL.available, KERNEL.switched_off


class InkLinear(nn.Module):
    """nn.Linear(in_features, out_features) on images, its weight held transposed (see the module docstring)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        torch_layer = nn.Linear(in_features, out_features)  # torch's initialisation, same draws
        self.in_features, self.out_features = in_features, out_features
        self.weight_t = nn.Parameter(torch_layer.weight.detach().t().contiguous())
        self.bias = nn.Parameter(torch_layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., out_features), as nn.Linear."""
        y = linear(x.reshape(-1, x.shape[-1]), self.weight_t.unsqueeze(0), self.bias.unsqueeze(0))[0]
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def runs(x: torch.Tensor, weight_t: torch.Tensor) -> bool:
    """Does the kernel run on this input and weight (float32, CPU, a width it covers) here?"""
    return (
        x.dtype == weight_t.dtype == torch.float32
        and x.device.type == weight_t.device.type == "cpu"
        and available()
        and bool(KERNEL.library().ink_linear_supported(weight_t.shape[-1]))
    )


def linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(M, n, out): member m's images (x[m], or x shared) through member m's layer."""
    members, width, _ = weight_t.shape
    if x.dim() not in (2, 3) or x.shape[-1] != width or (x.dim() == 3 and x.shape[0] != members):
        raise ValueError(f"ink_linear: images of shape {tuple(x.shape)} for {members} layers of {width} inputs")
    if x.dim() == 3 and x.stride(0) == 0:  # one batch expanded to every member: compacted once
        x = x[0]
    if runs(x, weight_t):
        if x.requires_grad:
            raise ValueError("ink_linear: it takes images, which need no gradient; use nn.Linear inside a model")
        return _InkLinear.apply(x, weight_t, bias)
    return torch.baddbmm(bias.unsqueeze(1), x.expand(members, -1, -1) if x.dim() == 2 else x, weight_t)


def _compact(lib: ctypes.CDLL, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One member's images compacted: each row's nonzero (column, x - c) and background c (ink_linear.c)."""
    n, width = x.shape
    c, offsets = torch.empty(n, dtype=torch.float32), torch.empty(n + 1, dtype=torch.int32)
    cols, vals = torch.empty(n * width, dtype=torch.int32), torch.empty(n * width, dtype=torch.float32)
    lib.ink_linear_compact(pointer(x), n, width, pointer(c), pointer(offsets), pointer(cols), pointer(vals))
    return offsets, cols, vals, c


class _InkLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight_t, bias):
        lib = KERNEL.library()
        members, width, out = weight_t.shape
        x, weight_t, bias = x.detach().contiguous(), weight_t.detach().contiguous(), bias.detach().contiguous()
        n = x.shape[-2]
        y = torch.empty(members, n, out, dtype=torch.float32)
        shared = _compact(lib, x) if x.dim() == 2 else None  # gathered once for every member
        ctx.rows = []
        for m in range(members):
            rows = shared or _compact(lib, x[m])
            status = lib.ink_linear_forward(
                n, width, out, *map(pointer, rows), pointer(weight_t[m]), pointer(bias[m]), pointer(y[m])
            )
            check(status, "ink_linear forward")
            ctx.rows.append(rows)
        ctx.shape = (n, width, out)
        return y

    @staticmethod
    def backward(ctx, grad):
        lib = KERNEL.library()
        n, width, out = ctx.shape
        grad = grad.contiguous()
        members = grad.shape[0]
        grad_weight = torch.empty(members, width, out, dtype=torch.float32)
        grad_bias = torch.empty(members, out, dtype=torch.float32)
        for m, rows in enumerate(ctx.rows):
            status = lib.ink_linear_backward(
                n, width, out, *map(pointer, rows), pointer(grad[m]), pointer(grad_weight[m]), pointer(grad_bias[m])
            )
            check(status, "ink_linear backward")
        return None, grad_weight, grad_bias
