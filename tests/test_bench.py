"""The benchmark's verdicts against the goals can say "NOT MET" (speed is measured in bench/, never in tests)."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import training_speed as bench  # noqa: E402


def test_a_goal_is_met_at_or_under_it_and_missed_above_it_by_how_much():
    assert bench.met(4 * 60, bench.GRID_GOAL_S, "min", 60) == "goal 4.5 min: met"
    assert bench.met(4.5 * 60, bench.GRID_GOAL_S, "min", 60) == "goal 4.5 min: met"
    assert bench.met(6 * 60, bench.GRID_GOAL_S, "min", 60) == "goal 4.5 min: NOT MET, over by 1.5 min (33%)"
    assert bench.met(1.6, bench.STARTUP_GOAL_S, "CPU s").startswith("goal 1.5 CPU s: NOT MET, over by 0.1")


def test_a_floor_goal_is_met_at_or_above_it_and_missed_below_it_by_how_much():
    assert bench.met(5.0, bench.LOOP_SPEEDUP_GOAL, "x", at_least=True) == "goal at least 5 x: met"
    assert bench.met(6.2, bench.LOOP_SPEEDUP_GOAL, "x", at_least=True) == "goal at least 5 x: met"
    assert (
        bench.met(4.0, bench.LOOP_SPEEDUP_GOAL, "x", at_least=True)
        == "goal at least 5 x: NOT MET, short by 1.0 x (20%)"
    )


def test_a_recorded_wall_time_is_printed_against_its_goal(tmp_path, capsys):
    path = tmp_path / "grid.json"
    bench.recorded(path, bench.GRID_GOAL_S, lambda run: "the grid", "not measured yet")
    path.write_text(json.dumps({"wall_s": 360}))
    bench.recorded(path, bench.GRID_GOAL_S, lambda run: "the grid", "not measured yet")
    assert capsys.readouterr().out.splitlines() == [
        "   not measured yet",
        "   the grid: 6.0 min wall, goal 4.5 min: NOT MET, over by 1.5 min (33%)",
    ]


def test_the_measured_section_prints_the_pool_dedup_and_replicates_against_their_goals(tmp_path, capsys):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "generator").mkdir()
    (tmp_path / "dedup").mkdir()
    (tmp_path / "benchmarks" / "make_report.json").write_text(json.dumps({"wall_s": 660, "cores": 2, "date": "d"}))
    (tmp_path / "benchmarks" / "generator_pool.tsv").write_text("s\tcpu_time\n500.0\t900\n")
    (tmp_path / "generator" / "pool_summary.json").write_text(json.dumps({"mixtures": 4_000_000}))
    (tmp_path / "dedup" / "duplicates_vs_paper.csv").write_text(
        "corpus,n_images,n_removed,share_removed\nmukhoti,12000,2000,0.1667\n"
    )
    bench.measured_grid(tmp_path, 2)
    out = capsys.readouterr().out
    assert "`make report` (CORES=2, d" in out and "11.0 min wall, goal 12 min: met" in out
    assert "33.0 min, goal 30 min: NOT MET, over by 3.0 min (10%) (estimate)" in out
    assert "4,000,000 mixtures scored, goal at least 4 M mixtures: met" in out
    assert "500 s wall, goal 370 s: NOT MET, over by 130.0 s (35%)" in out
    assert "2,000 of 12,000 removed (16.7%); the paper's release: 1,392 of 12,000 (11.6%)" in out


def test_a_measured_replicates_run_is_printed_against_its_goal_in_place_of_the_estimate(tmp_path, capsys):
    single, replicates = tmp_path / "results", tmp_path / "results-replicates"
    for folder, wall in ((single, 660), (replicates, 5461)):
        (folder / "benchmarks").mkdir(parents=True)
        (folder / "benchmarks" / "make_report.json").write_text(json.dumps({"wall_s": wall, "cores": 2, "date": "d"}))
    bench.measured_grid(single, 2, (replicates, 3))
    out = capsys.readouterr().out
    assert "3 whole-study replicates (`make report CONFIG=config/replicates.yaml`, CORES=2, d)" in out
    assert "91.0 min wall, goal 30 min: NOT MET, over by 61.0 min (203%)" in out
    assert "estimate" not in out
    (replicates / "benchmarks" / "make_report.json").write_text(json.dumps({"wall_s": 1700, "cores": 2, "date": "d"}))
    bench.measured_grid(single, 2, (replicates, 3))
    assert "28.3 min wall, goal 30 min: met" in capsys.readouterr().out


def test_the_four_maxima_pooling_of_the_kernel_bench_keeps_max_pool2d_s_bits_and_its_choice_among_ties():
    import torch
    import torch.nn.functional as F
    from lenet_kernels import FourMaxima

    x = torch.randn(4, 6, 28, 28, generator=torch.Generator().manual_seed(0)).contiguous(
        memory_format=torch.channels_last
    )
    x[:, :, :8] = 0.5  # tied maxima, as on a digit's uniform background
    grad = torch.randn(4, 6, 14, 14, generator=torch.Generator().manual_seed(1))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    assert torch.equal(FourMaxima.apply(a), F.max_pool2d(b, 2))
    ours, theirs = (
        torch.autograd.grad(FourMaxima.apply(a), a, grad)[0],
        torch.autograd.grad(F.max_pool2d(b, 2), b, grad)[0],
    )
    assert torch.equal(ours, theirs)
    # the negative case: a pooling that splits the gradient among tied maxima gives other bits
    c = x.clone().requires_grad_()
    amax = c.unflatten(2, (14, 2)).unflatten(4, (14, 2)).amax((3, 5))
    assert torch.equal(amax, F.max_pool2d(x, 2))
    assert not torch.equal(torch.autograd.grad(amax, c, grad)[0], theirs)
