"""Time the training grid alone: every train_run job of a config, on --cores N, nothing else.

    .venv/bin/python bench/grid_wall.py [--cores 2] [--configfile OVERLAY]

Needs the study tables of that config (run the workflow first). Forces every train_run job
(`--forcerun train_run --allowed-rules train_run`: upstream jobs are never run here) and writes
the wall time to <results>/benchmarks/grid.json, and prints it against the goal (bench/goals.py), as
`make bench` does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from goals import GRID_GOAL_S, met  # noqa: E402

from softdigits.config import check_files  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--configfile", type=Path, default=None)
    args = parser.parse_args()
    overlays = [args.configfile] if args.configfile else []
    config = check_files([REPO / "workflow_config.yaml", *overlays], REPO / "schemas" / "config.schema.yaml")
    training = config["training"]
    jobs = len(config["study"]["corpora"]) * len(training["models"]) * len(training["targets"])  # every seed per job
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(args.cores),
        "--forcerun",
        "train_run",
        "--allowed-rules",
        "train_run",
        "--until",
        "train_run",
        "--quiet",
        "progress",
    ]
    if args.configfile:
        cmd += ["--configfile", str(args.configfile)]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    wall = time.perf_counter() - started
    out = REPO / config["results"] / "benchmarks" / "grid.json"
    record = {
        "wall_s": round(wall, 1),
        "jobs": jobs,
        "cores": args.cores,
        "load_at_start": round(load, 2),
        "date": datetime.date.today().isoformat(),
        "command": " ".join(cmd[1:]),
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{jobs} train_run jobs on {args.cores} cores: {wall / 60:.1f} min wall, {met(wall, GRID_GOAL_S, 'min', 60)}"
        f" (load at start {load:.2f}: a loaded machine is slower); {out}"
    )


if __name__ == "__main__":
    main()
