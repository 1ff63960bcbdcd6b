"""How fast is the pool (rule generator_pool)? Per-mixture time of two code versions, side by side.

    .venv/bin/python bench/pool_speed.py --results RESULTS [--mixtures 20000] [--old DIR] [--rounds 2]

Scores `--mixtures` mixtures with `pool.build_pool` of this checkout and, with `--old DIR` (a
package tree exported from another commit, e.g. `git archive 825e98c softdigits | tar -x -C DIR`),
of that one, each in a fresh process on the rule's 2 threads, alternating `--rounds` times so
that a change in the machine's load falls on both alike. The VAE, the MNIST training split and
the ensemble come from a finished run's RESULTS folder (the tiny config's will do: the time
depends on the architectures, not on the weights; members are repeated up to the default's
five). Prints the seconds per mixture of each, their ratio, and what the default pool and
DDU's 4M would take at that rate against the goal (bench/goals.py): generator_pool at 4M no
slower than the old code's 1,024,000-mixture pool.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench")]

from goals import POOL_SIZE_GOAL, met  # noqa: E402

OLD_POOL = 1_024_000  # the pool before DDU's size (workflow_config.yaml)
MEMBERS = 5  # the default ensemble

CHILD = """
import json, sys, time
import torch
from softdigits.generator import ensemble, inputs, pool, vae
results, n, threads, out, members = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
torch.set_num_threads(threads)  # as jobs.torch_threads(snakemake.threads)
paths = sorted(f"{results}/generator/ensemble/{p}" for p in __import__("os").listdir(f"{results}/generator/ensemble")
               if p.endswith(".pt"))
scorers = [ensemble.load_member(paths[i % len(paths)]) for i in range(members)]
mnist = inputs.read_mnist(f"{results}/corpora/mnist.parquet")
kwargs = {"threads": threads} if "threads" in pool.build_pool.__code__.co_varnames else {}
started = time.perf_counter()
summary = pool.build_pool(vae.load_vae(f"{results}/generator/vae.pt"), scorers, mnist,
                          pool.MixSettings(pool_size=n), pool.FilterSettings(), 0, out, **kwargs)
print(json.dumps({"mixtures": summary["mixtures"], "seconds": time.perf_counter() - started, "code": pool.__file__}))
"""


def time_pool(code: Path, results: Path, mixtures: int, threads: int, out: Path) -> float:
    """Seconds per mixture of build_pool from the package under `code`, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-c", CHILD, str(results.resolve()), str(mixtures), str(threads), str(out), str(MEMBERS)]
    # cwd: the output's folder, not the checkout (`-c` puts the working directory first on sys.path)
    proc = subprocess.run(cmd, env=env, cwd=out.parent, check=True, capture_output=True, text=True)
    run = json.loads(proc.stdout.splitlines()[-1])
    if not Path(run["code"]).is_relative_to(code):
        raise SystemExit(f"timed {run['code']}, not the package under {code}")
    return run["seconds"] / run["mixtures"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="a finished run's results folder")
    parser.add_argument("--mixtures", type=int, default=20_000)
    parser.add_argument("--old", type=Path, default=None, help="another version's package tree, timed alongside")
    parser.add_argument("--threads", type=int, default=2, help="the rule's threads (generator_pool: 2)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other processes slow every number)"
    )
    versions = {"this checkout": REPO} | ({"old": args.old} if args.old else {})
    times: dict[str, list[float]] = {name: [] for name in versions}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, code in versions.items():
                times[name].append(
                    time_pool(code, args.results, args.mixtures, args.threads, Path(tmp) / "pool.parquet")
                )
    per = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in per.items():
        print(
            f"{name:>13}: {1e6 * seconds:7.1f} us per mixture on {args.threads} threads "
            f"({', '.join(f'{1e6 * t:.0f}' for t in times[name])}); a {OLD_POOL:,} pool {OLD_POOL * seconds / 60:.1f} min,"
            f" {POOL_SIZE_GOAL:,} {POOL_SIZE_GOAL * seconds / 60:.1f} min"
        )
    if args.old:
        ratio = per["old"] / per["this checkout"]
        print(f"speed-up per mixture: {ratio:.2f}x (old / this checkout, same process layout, alternating)")
        new_4m, old_1m = POOL_SIZE_GOAL * per["this checkout"], OLD_POOL * per["old"]
        print(
            f"generator_pool at {POOL_SIZE_GOAL:,} with this checkout against the old code at {OLD_POOL:,}: "
            f"{new_4m / old_1m:.2f}x its time, {met(new_4m / old_1m, 1.0, 'x the old 1M pool')}"
        )


if __name__ == "__main__":
    main()
