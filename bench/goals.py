"""The speed goals, each in one place, and how a measurement is printed against one.

Goals are for 2 idle cores (`make bench` and `make bench-grid` print each beside what they
measured, with "met" or "NOT MET" and by how much). Times in seconds; a goal with
`at_least` is a floor (a speed-up, a share of the arithmetic limit), the others ceilings.
"""

from __future__ import annotations

GRID_GOAL_S = 4.5 * 60  # the default training grid alone (half of the 9.4 min measured before stacking)
REPORT_GOAL_S = 12 * 60  # `make report` from a fresh clone, venv excluded
REPLICATES_GOAL_S = 30 * 60  # three whole-study replicates from a fresh clone
REPLICATES = 3
STARTUP_GOAL_S = 1.5  # CPU seconds a training job spends before its first step
LOOP_SPEEDUP_GOAL = 5.0  # the pipeline's loop per cell-epoch, against a plain PyTorch loop
LENET_PEAK_GOAL = 0.5  # LeNet's training GFLOP/s as a share of a 512x512 GEMM in the same process
POOL_SIZE_GOAL = 4_000_000  # DDU's pool: mixtures scored
POOL_GOAL_S = 370  # generator_pool at the old 1,024,000-mixture pool (benchmark file, 2 cores, before stacking)
PAPER_DEDUP_REMOVED = 1392  # the DDU release's images removed by dedup (of 12,000; paper)


def met(value: float, goal: float, unit: str, scale: float = 1.0, at_least: bool = False) -> str:
    """'goal G unit: met', or 'NOT MET' with by how much (value and goal divided by `scale`)."""
    ok = value >= goal if at_least else value <= goal
    if ok:
        verdict = "met"
    elif at_least:
        verdict = f"NOT MET, short by {(goal - value) / scale:.1f} {unit} ({1 - value / goal:.0%})"
    else:
        verdict = f"NOT MET, over by {(value - goal) / scale:.1f} {unit} ({value / goal - 1:.0%})"
    return f"goal {'at least ' if at_least else ''}{goal / scale:g} {unit}: {verdict}"
