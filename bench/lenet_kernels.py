"""Where a LeNet training step's time goes on this CPU, and what was tried instead.

One training step of the pipeline's LeNet (batch 64, soft cross-entropy, forward and
backward, one thread, random images), timed side by side in CPU milliseconds, the
variants taking turns in every round:

1. the pipeline's module (its image layers in our kernel, softdigits.training.conv_pool),
   the same module on torch's kernels (oneDNN convolutions in channels-last memory: the
   pipeline before that kernel, and where it is not built) and three other library
   settings (contiguous memory; oneDNN off, in each memory format);
2. every convolution as im2col plus one GEMM (the backward: two GEMMs and a col2im), the
   logits and gradients checked against the module's (float tolerance: other kernels);
3. each 2x2 max-pooling as four strided maxima that keep max_pool2d's choice among tied
   maxima (the uniform background ties often), checked to give the module's very bits;
4. each GEMM of variant 2 alone at its shape, in GFLOP/s beside a 512x512 GEMM: the most
   an im2col LeNet could reach;
5. the step by operator (torch.profiler), on our kernel and on torch's;
6. six LeNets in one stack (softdigits.training.stack): on torch's kernels, their
   convolutions grouped against member by member, and whether the grouped ones give each
   member its bits alone here (`kernels_agree`); and member by member on our kernel.

Variants 2-4 and 6's first two run on torch's kernels (conv_pool switched off).

Run: .venv/bin/python bench/lenet_kernels.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from training_speed import forward_flops, gemm_gflops, gemm_peak_gflops  # noqa: E402

from softdigits.training import conv_pool  # noqa: E402
from softdigits.training.models import build_model  # noqa: E402

BATCH = 64


def soft_loss(logits, y):
    return -(y * F.log_softmax(logits, 1)).sum(1).mean()


# ---------------------------------------------------------------- variant 2: im2col


class Im2colConv(torch.autograd.Function):
    """A stride-1 zero-padded convolution on channel-major (C, b, H, W) images as one GEMM."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        channels, b, height, width = x.shape
        out_channels, _, k, _ = weight.shape
        xp = F.pad(x, (padding,) * 4) if padding else x
        ho, wo = xp.shape[2] - k + 1, xp.shape[3] - k + 1
        cols = xp.unfold(2, k, 1).unfold(3, k, 1).permute(0, 4, 5, 1, 2, 3).reshape(channels * k * k, b * ho * wo)
        w = weight.reshape(out_channels, -1)
        ctx.save_for_backward(cols, w)
        ctx.geometry = (channels, b, height, width, k, padding, ho, wo, weight.shape)
        return torch.addmm(bias[:, None], w, cols).view(out_channels, b, ho, wo)

    @staticmethod
    def backward(ctx, grad):
        cols, w = ctx.saved_tensors
        channels, b, height, width, k, p, ho, wo, weight_shape = ctx.geometry
        g = grad.reshape(grad.shape[0], -1)
        grad_x = None
        if ctx.needs_input_grad[0]:
            dcols = (w.t() @ g).view(channels, k, k, b, ho, wo)
            grad_xp = torch.zeros(channels, b, height + 2 * p, width + 2 * p)
            for i in range(k):
                for j in range(k):
                    grad_xp[:, :, i : i + ho, j : j + wo] += dcols[:, i, j]
            grad_x = grad_xp[:, :, p : p + height, p : p + width]
        return grad_x, (g @ cols.t()).view(weight_shape), g.sum(1), None


def im2col_lenet(model: nn.Module):
    """The module's function with its convolutions as im2col GEMMs (its own pooling)."""
    conv1, conv2 = model.features[0], model.features[3]
    fc = model.classifier

    def forward(x):
        b = x.shape[0]
        h = Im2colConv.apply(x.view(1, b, 28, 28), conv1.weight, conv1.bias, conv1.padding[0])
        h = F.relu(F.max_pool2d(h.transpose(0, 1), 2)).transpose(0, 1).contiguous()
        h = Im2colConv.apply(h, conv2.weight, conv2.bias, 0)
        h = F.relu(F.max_pool2d(h.transpose(0, 1), 2))
        return fc(h.flatten(1))

    return forward


# ---------------------------------------------------------- variant 3: four maxima


class FourMaxima(torch.autograd.Function):
    """2x2 max-pooling as strided maxima; among tied values the first in scan order wins, as in max_pool2d."""

    @staticmethod
    def forward(ctx, x):
        v0, v1, v2, v3 = x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]
        right_top, right_bottom = v1 > v0, v3 > v2
        top, bottom = torch.where(right_top, v1, v0), torch.where(right_bottom, v3, v2)
        lower = bottom > top
        ctx.save_for_backward(right_top, right_bottom, lower)
        ctx.shape = x.shape
        return torch.where(lower, bottom, top)

    @staticmethod
    def backward(ctx, grad):
        right_top, right_bottom, lower = ctx.saved_tensors
        zero = grad.new_zeros(())
        top, bottom = torch.where(lower, zero, grad), torch.where(lower, grad, zero)
        grad_x = torch.empty(ctx.shape, memory_format=torch.channels_last)
        grad_x[..., 0::2, 0::2] = torch.where(right_top, zero, top)
        grad_x[..., 0::2, 1::2] = torch.where(right_top, top, zero)
        grad_x[..., 1::2, 0::2] = torch.where(right_bottom, zero, bottom)
        grad_x[..., 1::2, 1::2] = torch.where(right_bottom, bottom, zero)
        return grad_x


class FourMaximaPool(nn.Module):
    def forward(self, x):
        return FourMaxima.apply(x)


# ------------------------------------------------------------------------ timing


def step_of(forward, params, x, y):
    def step():
        torch.autograd.grad(soft_loss(forward(x), y), params)

    return step


def on_torch(step):
    """The step with our kernel switched off: torch's convolutions and pooling."""

    def run():
        with conv_pool.switched_off():
            step()

    return run


def cpu_ms(step, steps: int) -> float:
    started = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - started) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per variant and round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as every training job (train_run.configure_torch)
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other processes slow every number)"
    )
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 784, generator=generator)
    y = torch.softmax(torch.randn(BATCH, 10, generator=generator), 1)
    x[:, :200] = 0.0  # a uniform band of rows, as the digits' background: tied maxima in the pooling

    pipeline = build_model("lenet", 0)
    contiguous = build_model("lenet", 0).to(memory_format=torch.contiguous_format)
    four = build_model("lenet", 0)
    four.features[1], four.features[4] = FourMaximaPool(), FourMaximaPool()

    def contiguous_forward(images):
        return contiguous.classifier(contiguous.features(images.view(-1, 1, 28, 28)).flatten(1))

    def without_onednn(step):
        def run():
            with torch.backends.mkldnn.flags(enabled=False):
                step()

        return run

    if not conv_pool.available():
        print("our kernel is not built here (see the warning above): the pipeline runs torch's kernels")
    variants = {
        "pipeline: our conv_pool kernel": step_of(pipeline, list(pipeline.parameters()), x, y),
        "torch: oneDNN, channels-last": on_torch(step_of(pipeline, list(pipeline.parameters()), x, y)),
        "oneDNN, contiguous": on_torch(step_of(contiguous_forward, list(contiguous.parameters()), x, y)),
        "oneDNN off, channels-last": on_torch(without_onednn(step_of(pipeline, list(pipeline.parameters()), x, y))),
        "oneDNN off, contiguous": on_torch(
            without_onednn(step_of(contiguous_forward, list(contiguous.parameters()), x, y))
        ),
        "im2col + GEMM convolutions": on_torch(step_of(im2col_lenet(pipeline), list(pipeline.parameters()), x, y)),
        "max-pooling as four maxima": on_torch(step_of(four, list(four.parameters()), x, y)),
    }

    params = list(pipeline.parameters())
    ours = pipeline(x)
    ours_grads = torch.autograd.grad(soft_loss(ours, y), params)
    with conv_pool.switched_off():
        reference = pipeline(x)
    reference_grads = torch.autograd.grad(soft_loss(reference, y), params)
    worst = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours_grads, reference_grads))
    print(
        f"our kernel against torch's: logits differ by at most {float((ours - reference).abs().max().detach()):.1e}, "
        f"gradients by at most {worst:.1e} of their largest value"
    )
    logits = im2col_lenet(pipeline)(x)
    grads = torch.autograd.grad(soft_loss(logits, y), params)
    worst = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(grads, reference_grads))
    print(
        f"im2col against the module: logits differ by at most {float((logits - reference).abs().max().detach()):.1e}, "
        f"gradients by at most {worst:.1e} of their largest value"
    )
    with conv_pool.switched_off():
        logits = four(x)
    grads = torch.autograd.grad(soft_loss(logits, y), list(four.parameters()))
    same = torch.equal(logits, reference) and all(torch.equal(a, b) for a, b in zip(grads, reference_grads))
    print(f"four maxima against max_pool2d: {'the same bits' if same else 'OTHER BITS'} (logits and gradients)")

    for step in variants.values():  # warm every kernel up before timing
        step()
        step()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            times[name].append(cpu_ms(step, args.steps))
    base = statistics.median(times["pipeline: our conv_pool kernel"])
    print(f"\nLeNet training step, batch {BATCH}, one thread: CPU ms, median of {args.rounds} rounds")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"  {name:34s} {ms:6.2f} ms  {ms / base:5.2f}x the pipeline's")
    step_mflop = 3 * forward_flops(pipeline) * BATCH / 1e6
    peak = gemm_peak_gflops()
    for name in ("pipeline: our conv_pool kernel", "torch: oneDNN, channels-last"):
        rate = step_mflop / statistics.median(times[name])
        print(
            f"  {name}: {rate:.1f} GFLOP/s, {rate / peak:.0%} of a 512x512 GEMM's {peak:.1f} (3x the forward's FLOPs)"
        )

    print(f"\nthe GEMMs of an im2col LeNet step, GFLOP/s (a 512x512 GEMM: {peak:.1f})")
    shapes = {
        "conv1 forward (6x25 @ 25x50176)": (6, 25, BATCH * 784),
        "conv1 weight gradient (6x50176 @ 50176x25)": (6, BATCH * 784, 25),
        "conv2 forward (16x150 @ 150x6400)": (16, 150, BATCH * 100),
        "conv2 weight gradient (16x6400 @ 6400x150)": (16, BATCH * 100, 150),
        "conv2 input gradient (150x16 @ 16x6400)": (150, 16, BATCH * 100),
    }
    for name, (m, k, n) in shapes.items():
        rate = gemm_gflops(m, k, n)
        print(f"  {name:44s} {rate:5.1f}  ({rate / peak:.0%})")

    from torch.profiler import ProfilerActivity, profile

    for variant in ("pipeline: our conv_pool kernel", "torch: oneDNN, channels-last"):
        step = variants[variant]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        groups = {
            "conv_pool": 0.0,
            "convolution": 0.0,
            "max-pooling": 0.0,
            "linear layers": 0.0,
            "everything else": 0.0,
        }
        for event in prof.key_averages():
            name = event.key
            group = (
                "conv_pool"
                if "ConvPoolReLU" in name
                else "convolution"
                if "convolution" in name
                else "max-pooling"
                if "max_pool" in name
                else "linear layers"
                if name in ("aten::addmm", "aten::mm")
                else "everything else"
            )
            groups[group] += event.self_cpu_time_total
        total = sum(groups.values())
        print(f"\n{variant}: the step by operator (self CPU time)")
        for name, value in groups.items():
            if value:
                print(f"  {name:16s} {value / total:4.0%}")

    stacked_lenets(args.rounds, args.steps)


def stacked_lenets(rounds: int, steps: int, members: int = 6) -> None:
    from softdigits.training.stack import BatchShapes, StackedNet, kernels_agree, member_losses

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(members, BATCH, 784, generator=generator)
    y = torch.softmax(torch.randn(members, BATCH, 10, generator=generator), 2)
    nets = {}
    for grouped in (False, True):
        nets[grouped] = StackedNet([build_model("lenet", seed) for seed in range(members)])
        nets[grouped].grouped = grouped

    def step_of_stack(net):
        def step():
            torch.autograd.grad(member_losses(net(x), y).sum(), net.params)

        return step

    stack_steps = {
        "torch's convolutions, member by member": on_torch(step_of_stack(nets[False])),
        "torch's convolutions, grouped": on_torch(step_of_stack(nets[True])),
        "our conv_pool kernel, member by member": step_of_stack(nets[False]),
    }
    for step in stack_steps.values():
        step()
    times = {name: [] for name in stack_steps}
    for _ in range(rounds):
        for name, step in stack_steps.items():
            times[name].append(cpu_ms(step, steps))
    with conv_pool.switched_off():
        agree = kernels_agree(nets[True], members, BatchShapes(train=(BATCH,), evaluate=()), grouped=True)
    print(f"\n{members} LeNets in one stack, a training step, batch {BATCH} each: CPU ms, median of {rounds} rounds")
    base = statistics.median(times["torch's convolutions, member by member"])
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"  {name:40s} {ms:6.2f} ms  {base / ms:4.2f}x torch's member by member")
    verdict = "yes" if agree else "NO (so torch's kernels run member by member)"
    print(f"  torch's grouped convolutions: each member's bits as alone on this CPU: {verdict}")


if __name__ == "__main__":
    main()
