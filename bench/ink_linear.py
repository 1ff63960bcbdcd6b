"""How fast is the FFNs' first layer in our ink kernel? It and torch's matmul side by side.

    .venv/bin/python bench/ink_linear.py [--study results/study/mnist.parquet] [--rounds 5]

One training step of the first layer (forward, then the weight and bias gradients) for a stack
of 12 members (a training job's six seeds, both regimes) at batch 64 on one thread, each member
its own batch of the study's training images: `ink_linear.linear` on our kernel, and with it
switched off (torch's batched matmul), alternating `--rounds` times so that a change in the
machine's load falls on both alike. The images are the study table's given with `--study`,
else synthetic ones with a fifth of their pixels ink, as the study's digits. Prints the CPU
microseconds per member and step of each, at the FFNs' two widths (128 and 256), and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from softdigits.training import ink_linear  # noqa: E402
from softdigits.training.loop import normalise, pixel_stats  # noqa: E402

MEMBERS, BATCH, STEPS = 12, 64, 60


def images(study: str | None) -> torch.Tensor:
    if study:
        from softdigits.study_table import read_study

        pixels = np.asarray(read_study(study).pixels)
    else:
        from study_fixture import study_frame

        pixels = np.stack(study_frame(1, {"train": 2131, "val": 0, "test": 0}, ink=0.2).pixels)
    return normalise(pixels, *pixel_stats(pixels))


def step_time(x: torch.Tensor, width: int, ours: bool) -> float:
    """CPU microseconds per member and step."""
    g = torch.Generator().manual_seed(0)
    weight_t = (torch.randn(MEMBERS, 784, width, generator=g) * 0.03).requires_grad_()
    bias = torch.zeros(MEMBERS, width).requires_grad_()
    batches = [torch.randint(len(x), (MEMBERS, BATCH), generator=g) for _ in range(STEPS)]

    def run(index):
        h = torch.stack([x.index_select(0, i) for i in index])
        y = ink_linear.linear(h, weight_t, bias)
        return torch.autograd.grad(y, (weight_t, bias), torch.ones_like(y))

    with contextlib.nullcontext() if ours else ink_linear.switched_off():
        run(batches[0])
        started = time.process_time()
        for index in batches:
            run(index)
        return (time.process_time() - started) / STEPS / MEMBERS * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", help="a study table (default: synthetic digits)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as train_run's jobs
    if not ink_linear.available():
        sys.exit("ink_linear: the kernel is not built here (no C compiler?); nothing to compare")
    x = images(args.study)
    ink = float((x != x.min(dim=1, keepdim=True).values).float().mean())
    print(f"{len(x)} images, {ink:.0%} of their pixels ink; {MEMBERS} members x batch {BATCH}, one thread")
    for width in (128, 256):
        times = {True: [], False: []}
        for _ in range(args.rounds):
            for ours in (True, False):
                times[ours].append(step_time(x, width, ours))
        a, b = statistics.median(times[True]), statistics.median(times[False])
        print(f"784 -> {width}: ours {a:.0f} us, torch's matmul {b:.0f} us per member-step (medians): {b / a:.2f}x")


if __name__ == "__main__":
    main()
