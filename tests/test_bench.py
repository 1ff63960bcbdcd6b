"""The benchmark's verdicts against the goals can say "NOT MET" (speed is measured in bench/, never in tests)."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import training_speed as bench  # noqa: E402


def test_a_goal_is_met_at_or_under_it_and_missed_above_it_by_how_much():
    assert bench.met(9 * 60, bench.GRID_GOAL_S, "min", 60) == "goal 10 min: met"
    assert bench.met(10 * 60, bench.GRID_GOAL_S, "min", 60) == "goal 10 min: met"
    assert bench.met(13 * 60, bench.GRID_GOAL_S, "min", 60) == "goal 10 min: NOT MET, over by 3.0 min (30%)"
    assert bench.met(1.6, bench.STARTUP_GOAL_S, "CPU s").startswith("goal 1.5 CPU s: NOT MET, over by 0.1")


def test_a_recorded_wall_time_is_printed_against_its_goal(tmp_path, capsys):
    path = tmp_path / "grid.json"
    bench.recorded(path, bench.GRID_GOAL_S, lambda run: "the grid", "not measured yet")
    path.write_text(json.dumps({"wall_s": 780}))
    bench.recorded(path, bench.GRID_GOAL_S, lambda run: "the grid", "not measured yet")
    assert capsys.readouterr().out.splitlines() == [
        "   not measured yet",
        "   the grid: 13.0 min wall, goal 10 min: NOT MET, over by 3.0 min (30%)",
    ]
