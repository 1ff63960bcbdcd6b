"""Is a change to our C kernels faster, and does it keep their bits? This tree's against a revision's.

    .venv/bin/python bench/kernel_versions.py --against HEAD~1 [--rounds 5] [--study results/study/mnist.parquet] [--cell]

For each kernel (`conv_pool.c`, `ink_linear.c`) whose source at the git revision `--against`
differs from this tree's, both sources are built (`training.native`) and their calls timed in
one process, alternating `--rounds` times so that a change in the machine's load falls on both
alike, on one thread with denormals flushed as in train_run's jobs:
- conv_pool: each LeNet layer's forward and backward at batch 64, the kernel called directly
  (what autograd adds around it is the same for both);
- ink_linear: the first layer's forward and gradients for a job's 12 members at batch 64, at
  the FFNs' widths 128 and 256;
- with `--cell` (about a minute per round): a whole LeNet cell as train_run trains it (six
  seeds, both regimes, mnist/original of `--study`) on each conv_pool build.
Prints CPU microseconds (medians), the ratio, and whether the two builds gave the same bits on
every output timed (the cell: every table but its wall times). Images: the study table given
with `--study`, else synthetic digits a fifth ink.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

import torch  # noqa: E402
from ink_linear import images  # noqa: E402  (bench/ink_linear.py: the study's images or synthetic digits)
from kernel_fixture import digest, loaded  # noqa: E402

from softdigits.training import conv_pool, ink_linear, native  # noqa: E402
from softdigits.training.native import pointer as P  # noqa: E402

BATCH, MEMBERS, CALLS = 64, 12, 100


def build_at(kernel: native.Kernel, revision: str, directory: Path) -> Path | None:
    """The revision's build of the kernel, or None where its source is this tree's."""
    relative = kernel.source.relative_to(REPO)
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:{relative}"], capture_output=True, text=True, check=True
    ).stdout
    if source == kernel.source.read_text():
        return None
    path = directory / relative.name
    path.write_text(source)
    return native.Kernel(path, kernel.switch, kernel.declare, kernel.fallback).build()


def conv_pool_calls(x: torch.Tensor) -> dict:
    """LeNet's two layers' forward and backward as direct kernel calls: name -> (call, its outputs)."""
    g = torch.Generator().manual_seed(0)
    x = x[:BATCH].reshape(BATCH, 28, 28, 1).contiguous()
    w1, b1 = torch.randn(6, 1, 5, 5, generator=g) / 5, torch.randn(6, generator=g) / 5
    w2, b2 = torch.randn(16, 6, 5, 5, generator=g) / 12, torch.randn(16, generator=g) / 12
    o1, a1 = torch.empty(BATCH, 14, 14, 6), torch.empty(BATCH, 14, 14, 6, dtype=torch.uint8)
    o2, a2 = torch.empty(BATCH, 5, 5, 16), torch.empty(BATCH, 5, 5, 16, dtype=torch.uint8)
    g1, g2 = torch.randn(o1.shape, generator=g), torch.randn(o2.shape, generator=g)
    gx, gw1, gb1, gw2, gb2 = (
        torch.empty_like(o1),
        torch.empty_like(w1),
        torch.empty(6),
        torch.empty_like(w2),
        torch.empty(16),
    )
    lib = lambda: conv_pool.library()  # noqa: E731  (the build loaded when called)
    calls = {
        "LeNet layer 1 forward": (
            lambda: lib().conv_pool_relu_forward(P(x), BATCH, 28, 28, 1, P(w1), P(b1), 6, 5, 2, P(o1), P(a1)),
            [o1, a1],
        ),
        "LeNet layer 2 forward": (
            lambda: lib().conv_pool_relu_forward(P(o1), BATCH, 14, 14, 6, P(w2), P(b2), 16, 5, 0, P(o2), P(a2)),
            [o2, a2],
        ),
        "LeNet layer 1 backward": (
            lambda: lib().conv_pool_relu_backward(
                P(x), BATCH, 28, 28, 1, P(w1), 6, 5, 2, P(o1), P(a1), P(g1), None, P(gw1), P(gb1)
            ),
            [gw1, gb1],
        ),
        "LeNet layer 2 backward": (
            lambda: lib().conv_pool_relu_backward(
                P(o1), BATCH, 14, 14, 6, P(w2), 16, 5, 0, P(o2), P(a2), P(g2), P(gx), P(gw2), P(gb2)
            ),
            [gx, gw2, gb2],
        ),
    }
    return calls


def ink_linear_calls(x: torch.Tensor) -> dict:
    g = torch.Generator().manual_seed(0)
    calls = {}
    for width in (128, 256):
        weight_t = (torch.randn(MEMBERS, 784, width, generator=g) * 0.03).requires_grad_()
        bias = torch.zeros(MEMBERS, width).requires_grad_()
        h = torch.stack([x.index_select(0, i) for i in torch.randint(len(x), (MEMBERS, BATCH), generator=g)])
        result = []

        def step(h=h, weight_t=weight_t, bias=bias, result=result):
            y = ink_linear.linear(h, weight_t, bias)
            result[:] = [y.detach(), *torch.autograd.grad(y, (weight_t, bias), torch.ones_like(y))]

        calls[f"784 -> {width}, {MEMBERS} members, forward and gradients"] = (step, result)
    return calls


def compare(kernel: native.Kernel, theirs: Path, calls: dict, rounds: int) -> None:
    ours = kernel.build()
    for name, (call, outputs) in calls.items():
        times, bits = {ours: [], theirs: []}, {}
        for r in range(rounds):
            for path in (ours, theirs) if r % 2 == 0 else (theirs, ours):
                with loaded(kernel, path):
                    call()
                    bits[path] = digest(outputs)
                    started = time.process_time()
                    for _ in range(CALLS):
                        call()
                    times[path].append((time.process_time() - started) / CALLS * 1e6)
        a, b = statistics.median(times[ours]), statistics.median(times[theirs])
        same = "the same bits" if bits[ours] == bits[theirs] else "OTHER BITS (a new realisation)"
        print(f"  {name}: this tree {a:.0f} us, the revision {b:.0f} us: {b / a:.2f}x; {same}")


def column_bytes(column) -> bytes:
    """A table column's values as bytes: numbers as they are, a list column's flattened, strings joined."""
    import pyarrow as pa

    column = column.combine_chunks()
    if pa.types.is_string(column.type):
        return "\0".join(column.to_pylist()).encode()
    while pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        column = column.flatten()
    return column.to_numpy(zero_copy_only=False).tobytes()


def cell(study: str, theirs: Path, rounds: int) -> None:
    import yaml

    from softdigits.study_table import read_study
    from softdigits.training import train_run

    training = yaml.safe_load((REPO / "workflow_config.yaml").read_text())["training"]
    config = {k: v for k, v in training.items() if k not in ("models", "targets", "seeds")}
    data = train_run.prepare_cell(read_study(study), "original", config["not_a_digit"], torch.device("cpu"), config)
    ours = conv_pool.KERNEL.build()
    times, bits = {ours: [], theirs: []}, {}
    for r in range(rounds):
        for path in (ours, theirs) if r % 2 == 0 else (theirs, ours):
            with loaded(conv_pool.KERNEL, path):
                started = time.process_time()
                tables, _, _ = train_run.train_seeds(
                    data, train_run.REGIMES, model="lenet", seeds=list(range(6)), config=config
                )
                times[path].append(time.process_time() - started)
            h = hashlib.sha256()
            for seed in tables:
                for key in sorted(seed):
                    for column in [c for c in seed[key].column_names if "time" not in c]:
                        h.update(column_bytes(seed[key].column(column)))
            bits[path] = h.hexdigest()
    a, b = statistics.median(times[ours]), statistics.median(times[theirs])
    same = "the same tables" if bits[ours] == bits[theirs] else "OTHER TABLES (a new realisation)"
    print(f"  a whole LeNet cell: this tree {a:.1f} CPU-s, the revision {b:.1f}: {b / a:.2f}x; {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="a git revision, e.g. HEAD~1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--study", help="a study table (default: synthetic digits)")
    parser.add_argument("--cell", action="store_true", help="also a whole LeNet cell (needs --study)")
    args = parser.parse_args()
    if args.cell and not args.study:
        parser.error("--cell trains on a study table: give --study")
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as train_run's jobs
    x = images(args.study)
    print(f"{len(x)} images; one thread; medians of {args.rounds} alternating rounds of {CALLS} calls")
    with tempfile.TemporaryDirectory() as tmp:
        for kernel, calls in ((conv_pool.KERNEL, conv_pool_calls), (ink_linear.KERNEL, ink_linear_calls)):
            if kernel.library() is None:
                sys.exit(f"{kernel.name}: not built here (no C compiler?); nothing to compare")
            theirs = build_at(kernel, args.against, Path(tmp))
            if theirs is None:
                print(f"{kernel.name}: the same source at {args.against}")
                continue
            print(f"{kernel.name}: this tree against {args.against}")
            compare(kernel, theirs, calls(x), args.rounds)
            if kernel is conv_pool.KERNEL and args.cell:
                cell(args.study, theirs, args.rounds)


if __name__ == "__main__":
    main()
