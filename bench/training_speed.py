"""How fast is the training grid? Prints ratios measured side by side, and the goals.

1. The same runs trained two ways in this process: the pipeline's loop
   (softdigits.training.train_run and .loop: in-memory batches, fused Adam, dynamics from the
   training pass, validation loss only) versus a plain reference loop written the
   way such code usually is (DataLoader over a TensorDataset, torch.optim.Adam,
   a full evaluation pass over train and val every epoch, textbook LeNet layer
   order, one run at a time).
2. Per-job start-up: a subprocess that only imports what a training job imports
   (Snakemake's script support, torch, the package) versus a whole measured job.
3. The full default grid (corpora x models x targets x seeds; one job per corpus, model
   and target, every seed and both regimes in it) extrapolated from the measured cells:
   total CPU time, the start-up share, and the wall time on --cores N, against the
   10-minute goal; and the start-up at three job granularities.
   Section 1 also gives each model's achieved GFLOP/s next to a 512x512 float32 GEMM
   timed in the same process on one thread (the machine's arithmetic limit for one job).
4. The measured grid: `make bench-grid` times the train_run jobs alone on
   --cores 2 (results/benchmarks/grid.json); and the default run's critical path,
   from the benchmark file of every job on the longest chain of the last run's DAG.
   Each is printed next to its goal with "met" or "not met".

Times are CPU seconds (one thread per run: the wall time of an idle machine;
a busy machine distorts them far less than wall times). The study tables are synthetic (the paper's split sizes, random digit templates, a fifth of
each image ink as in the study's digits):
training cost depends on the sizes, not on the labels. The early-stopping epoch
count does depend on the data, so regime 1 is an estimate; the measured epoch
counts are printed. Run: .venv/bin/python bench/training_speed.py [--cores 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

import torch  # noqa: E402
import yaml  # noqa: E402
from goals import (  # noqa: E402
    GRID_GOAL_S,
    LENET_PEAK_GOAL,
    LOOP_SPEEDUP_GOAL,
    PAPER_DEDUP_REMOVED,
    POOL_GOAL_S,
    POOL_SIZE_GOAL,
    REPLICATES,
    REPLICATES_GOAL_S,
    REPORT_GOAL_S,
    STARTUP_GOAL_S,
    met,
)
from study_fixture import study_frame, write_study  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from softdigits import study_table  # noqa: E402
from softdigits.training import conv_pool, run_outputs, train_run  # noqa: E402
from softdigits.training.ink_linear import InkLinear  # noqa: E402
from softdigits.training.models import build_model  # noqa: E402

REPLICATES_CONFIG = REPO / "config" / "replicates.yaml"  # the overlay `make report` runs the replicates with

# The paper's split sizes (section 2.3).
PAPER_SIZES = {"mnist": {"train": 2131, "val": 457, "test": 457}, "mukhoti": {"train": 1738, "val": 373, "test": 373}}
# The share of a study image's pixels that are ink (not background): 0.19 in the default run's
# MNIST study table, 0.22 in Ambiguous-MNIST's. The FFNs' first layer skips the background.
DIGIT_INK = 0.2


def default_config() -> tuple[list[str], dict, dict]:
    """(study corpora, training section, its settings without the grid lists) of the default run."""
    config = yaml.safe_load((REPO / "workflow_config.yaml").read_text())
    training = config["training"]
    settings = {k: v for k, v in training.items() if k not in ("models", "targets", "seeds")}
    return config["study"]["corpora"], training, settings


# ------------------------------------------------------------ the reference loop


class TextbookLeNet(nn.Module):
    """LeNet-5 as usually written: conv, ReLU, pool; default memory format."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.classifier = nn.Sequential(
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)
        )

    def forward(self, x):
        return self.classifier(self.features(x.view(-1, 1, 28, 28)).flatten(1))


def reference_model(name: str, seed: int) -> nn.Module:
    if name == "lenet":
        torch.manual_seed(seed)
        return TextbookLeNet()
    return textbook_ffn(build_model(name, seed))


def textbook_ffn(model: nn.Sequential) -> nn.Sequential:
    """The FFN as usually written: its first layer an nn.Linear holding the same weights."""
    layers = list(model)
    ink = layers[0]
    if isinstance(ink, InkLinear):
        plain = nn.Linear(ink.in_features, ink.out_features)
        with torch.no_grad():
            plain.weight.copy_(ink.weight_t.t())
            plain.bias.copy_(ink.bias)
        layers[0] = plain
    return nn.Sequential(*layers)


def reference_fit(name, cell, settings, seed, track_dynamics):
    """A plain loop: DataLoader, per-epoch evaluation of train and val, deepcopy of the best state."""
    model = reference_model(name, seed)
    loader = DataLoader(
        TensorDataset(cell.x_train, cell.y_train),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = None
    if settings.plateau_factor is not None:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, factor=settings.plateau_factor, patience=settings.plateau_patience
        )

    def evaluate(x, y):
        model.eval()
        losses, probs = [], []
        with torch.no_grad():
            for xb, yb in DataLoader(TensorDataset(x, y), batch_size=256):
                logits = model(xb)
                losses.append(float(-(yb * torch.log_softmax(logits, 1)).sum(1).mean()) * len(xb))
                probs.append(torch.softmax(logits, 1))
        return sum(losses) / len(x), torch.cat(probs)

    best, best_state, stale, epochs, dynamics = float("inf"), None, 0, 0, []
    for _epoch in range(settings.max_epochs):
        model.train()
        for xb, yb in loader:
            optimiser.zero_grad()
            loss = -(yb * torch.log_softmax(model(xb), 1)).sum(1).mean()
            loss.backward()
            optimiser.step()
            loss.item()  # the usual running-loss bookkeeping
        epochs += 1
        _, train_probs = evaluate(cell.x_train, cell.y_train)
        val_loss, _ = evaluate(cell.x_val, cell.y_val)
        if track_dynamics:
            dynamics.append(train_probs.numpy())
        if scheduler is not None:
            scheduler.step(val_loss)
        if settings.early_stopping_patience is not None:
            if val_loss < best:
                best, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= settings.early_stopping_patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return epochs


# ---------------------------------------------------------------------- timing


# CPU seconds, not wall seconds: with one thread per run they are the same on an
# idle machine, and far less distorted by whatever else the machine is running.


def gemm_peak_gflops(size: int = 512, seconds: float = 1.0) -> float:
    """GFLOP/s of a float32 size x size matmul on this process's threads (1)."""
    return gemm_gflops(size, size, size, seconds)


def gemm_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """GFLOP/s of a float32 (m x k) @ (k x n) matmul on this process's threads, timed for `seconds` of CPU."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    count, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.process_time() - started) / 1e9


def forward_flops(model: nn.Module) -> int:
    """FLOPs of one image's forward pass through the Linear and Conv2d layers (2 per multiply-add)."""
    macs = []

    def count(module, inputs, output):
        if isinstance(module, nn.Linear | InkLinear):  # InkLinear: the dense layer's arithmetic, which it skips
            macs.append(module.in_features * module.out_features)
        else:  # Conv2d: every output value costs in_channels/groups x kernel multiply-adds
            k = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            macs.append(output[0].numel() * k)

    hooks = [
        m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Linear | InkLinear | nn.Conv2d)
    ]
    with torch.no_grad(), conv_pool.switched_off():  # our kernel calls no Conv2d module: count on torch's
        model(torch.zeros(1, 784))
    for h in hooks:
        h.remove()
    return 2 * sum(macs)


def training_flops(model_name: str, cell, regime: str, epochs: int) -> float:
    """Arithmetic of a regime: forward + backward (about 3 forwards) over the training images
    every epoch, plus regime 1's validation forward pass."""
    per_image = forward_flops(build_model(model_name, 0))
    val = len(cell.x_val) if regime == "test_performance" else 0
    return per_image * epochs * (3 * len(cell.x_train) + val)


def time_ours(cell, model, regime, settings_config, seed=0):
    started = time.process_time()
    _, entries = train_run.train_regimes(cell, (regime,), model=model, seed=seed, config=settings_config)
    return time.process_time() - started, entries[regime]["epochs_trained"]


def time_shared(cell, model, settings_config, seed=0):
    """CPU seconds of a job's training (both regimes, as train_run runs them) and the epochs they shared."""
    started = time.process_time()
    tables, entries = train_run.train_regimes(cell, train_run.REGIMES, model=model, seed=seed, config=settings_config)
    seconds = time.process_time() - started
    # shared: the epochs before regime 1 first lowered its rate, stopped, or regime 2 ended
    lr = tables["test_performance_history"].column("lr").to_numpy()
    lowered = int((lr < lr[0]).argmax()) if (lr < lr[0]).any() else len(lr)
    shared = min(lowered, *(e["epochs_trained"] for e in entries.values()))
    return seconds, f"{shared} of {sum(e['epochs_trained'] for e in entries.values())}"


def time_job(cell, model, settings_config, seeds):
    """CPU seconds of a whole job (every seed, both regimes, in one stack as train_run trains them),
    the regime-epochs it delivered (summed over seeds and regimes) and the member-epochs it computed."""
    started = time.process_time()
    _, entries, record = train_run.train_seeds(
        cell, train_run.REGIMES, model=model, seeds=seeds, config=settings_config
    )
    seconds = time.process_time() - started
    regime_epochs = sum(e[r]["epochs_trained"] for e in entries for r in train_run.REGIMES)
    return seconds, regime_epochs, record["member_epochs"] + record["spare_member_epochs"]


def time_reference(cell, model, regime, settings_config, seed=0):
    settings = train_run.regime_settings(settings_config, regime)
    started = time.process_time()
    epochs = reference_fit(model, cell, settings, seed, track_dynamics=regime == "dynamics")
    return time.process_time() - started, epochs


def child_cpu_seconds(cmd: list[str]) -> float:
    """User + system CPU seconds of a subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def startup_seconds(repeats: int = 5) -> tuple[float, float]:
    """Median CPU time of a process that imports what a training job imports, starts as a
    job does (`jobs.freeze_imports`), and stops; and of the same process without the
    freeze, the two alternating."""
    code = "import snakemake.script, torch, softdigits.training.train_run, softdigits.jobs"
    job, unfrozen = [], []
    for _ in range(repeats):
        job.append(child_cpu_seconds([sys.executable, "-c", code + "; softdigits.jobs.freeze_imports()"]))
        unfrozen.append(child_cpu_seconds([sys.executable, "-c", code]))
    return statistics.median(job), statistics.median(unfrozen)


def job_seconds(study: Path, settings: dict, model: str, seeds: list[int], out: Path) -> float:
    """CPU time of one whole training job (every seed, both regimes) in a fresh process,
    started as a job starts (`jobs.freeze_imports` after its imports)."""
    import json

    outputs = {seed: run_outputs.cell_files(out / f"seed{seed}") for seed in seeds}
    code = (
        "import sys, json, snakemake.script\n"
        "from softdigits import jobs\n"
        "from softdigits.training import train_run\n"
        "jobs.freeze_imports()\n"
        "outputs = {int(k): v for k, v in json.loads(sys.argv[2]).items()}\n"
        "train_run.run(study_path=sys.argv[1], outputs=outputs, model=sys.argv[3], target='human_uncertainty',"
        " config=json.loads(sys.argv[4]), threads=1, code_files=[])\n"
    )
    return child_cpu_seconds([sys.executable, "-c", code, str(study), json.dumps(outputs), model, json.dumps(settings)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cores", type=int, default=2, help="cores of the extrapolated grid run")
    parser.add_argument("--skip-reference", action="store_true", help="only time the pipeline's loop")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="a finished run's results folder (default: the config's `results`), for section 4",
    )
    parser.add_argument(
        "--config", type=Path, nargs="*", default=[], help="config overlays of the run whose critical path to print"
    )
    args = parser.parse_args()

    train_run.configure_torch(1)
    corpora, training, settings = default_config()
    settings = {**settings, "device": "cpu"}
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other processes slow every number)"
    )
    print(
        f"torch {torch.__version__}, 1 thread per run; synthetic study tables of the paper's split sizes, "
        f"{DIGIT_INK:.0%} of each image ink, as the study's digits\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        studies = {
            c: write_study(tmp / f"{c}.parquet", frame=study_frame(1, s, ink=DIGIT_INK)) for c, s in PAPER_SIZES.items()
        }
        cells = {
            c: train_run.prepare_cell(
                study_table.read_study(p), "human_uncertainty", "renormalise", torch.device("cpu")
            )
            for c, p in studies.items()
        }

        # 1. our loop vs the reference loop, same runs, MNIST size.
        peak = gemm_peak_gflops()
        print("1. Training loop, MNIST-size runs (2131 train images), target human_uncertainty, seed 0")
        print(f"   arithmetic limit: 512x512 float32 GEMM, 1 thread, this process: {peak:.1f} GFLOP/s")
        print(
            f"   {'model':<11} {'regime':<17} {'ours s':>7} {'ep':>3} {'GFLOP/s':>8} {'of peak':>7}"
            f" {'ref s':>7} {'ep':>3} {'s/epoch ratio':>13}   (CPU seconds; ratio = reference / ours)"
        )
        cell_seconds: dict[tuple[str, str], float] = {}
        ratios, shared_lines, job_lines, job_ratios = [], [], [], []
        seeds = training["seeds"]
        for model in training["models"]:
            separate, reference = 0.0, [0.0, 0]
            for regime in train_run.REGIMES:
                ours, ours_epochs = time_ours(cells["mnist"], model, regime, settings)
                separate += ours
                gflops = training_flops(model, cells["mnist"], regime, ours_epochs) / ours / 1e9
                line = f"   {model:<11} {regime:<17} {ours:7.2f} {ours_epochs:3d} {gflops:8.1f} {gflops / peak:7.0%}"
                if not args.skip_reference:
                    ref, ref_epochs = time_reference(cells["mnist"], model, regime, settings)
                    ratio = (ref / ref_epochs) / (ours / ours_epochs)
                    ratios.append(ratio)
                    reference[0] += ref
                    reference[1] += ref_epochs
                    line += f" {ref:7.2f} {ref_epochs:3d} {ratio:12.1f}x"
                print(line)
            both, shared_epochs = time_shared(cells["mnist"], model, settings)
            shared_lines.append(
                f"   {model:<11} both regimes, one trajectory until they part: {both:6.2f} s vs {separate:6.2f} s "
                f"trained apart ({separate / both:.2f}x; {shared_epochs} epochs shared)"
            )
            # the whole job: every seed, both regimes, in one stack (training.stack), as train_run runs it
            job, regime_epochs, member_epochs = time_job(cells["mnist"], model, settings, seeds)
            cell_seconds["mnist", model] = job / len(seeds)
            cell = cells["mnist"]
            gflops = forward_flops(build_model(model, 0)) * member_epochs * (3 * len(cell.x_train) + len(cell.x_val))
            gflops /= job * 1e9
            line = (
                f"   {model:<11} {len(seeds)} seeds x both regimes in one stack: {job:6.2f} s, "
                f"{job / len(seeds):5.2f} s per cell, {gflops:5.1f} GFLOP/s ({gflops / peak:.0%} of the GEMM)"
            )
            if model == "lenet":
                share = 100 * gflops / peak
                line += f"; {met(share, 100 * LENET_PEAK_GOAL, '% of the GEMM rate', at_least=True)}"
            if reference[1]:
                speedup = (reference[0] / reference[1]) / (job / regime_epochs)
                job_ratios.append(speedup)
                line += f"; per cell-epoch {speedup:.1f}x the reference loop"
            job_lines.append(line)
        if ratios:
            print(
                f"   per-epoch speed-up of our loop, one seed alone, geometric mean: {statistics.geometric_mean(ratios):.1f}x"
            )
        print("\n".join(shared_lines))
        print("\n".join(job_lines))
        if job_ratios:
            speedup = statistics.geometric_mean(job_ratios)
            print(
                f"   the pipeline's loop (a job's seeds stacked) per cell-epoch against the reference, geometric mean: "
                f"{speedup:.1f}x, {met(speedup, LOOP_SPEEDUP_GOAL, 'x', at_least=True)}"
            )

        for model in training["models"]:  # the second corpus: its own sizes
            cell_seconds["mukhoti", model] = time_job(cells["mukhoti"], model, settings, seeds)[0] / len(seeds)

        # 2. start-up per job.
        print("\n2. Per-job start-up (Python + Snakemake script support + torch + package)")
        startup, unfrozen = startup_seconds()
        job = job_seconds(studies["mnist"], settings, "simple_ffn", seeds, tmp / "job")
        print(
            f"   import-only process: {startup:.2f} CPU s; a whole simple_ffn job ({len(seeds)} seeds, both regimes):"
            f" {job:.2f} s (start-up {startup / job:.0%} of it)"
        )
        print(
            f"   per-job start-up {startup:.2f} CPU s ({startup / len(seeds):.2f} per cell), "
            f"{met(startup, STARTUP_GOAL_S, 'CPU s')}"
        )
        print(f"   the same process without jobs.freeze_imports: {unfrozen:.2f} CPU s ({unfrozen - startup:+.2f})")

        # 3. the full default grid.
        n_runs_per_cell = len(training["targets"]) * len(seeds)
        n_cells = len(corpora) * len(training["models"]) * n_runs_per_cell
        n_jobs = n_cells // len(seeds)
        train_total = sum(cell_seconds[c, m] * n_runs_per_cell for c in corpora for m in training["models"])
        startup_total = startup * n_jobs
        total = train_total + startup_total
        wall = total / args.cores
        print(
            f"\n3. Full default grid: {len(corpora)} corpora x {len(training['models'])} models x "
            f"{len(training['targets'])} targets x {len(seeds)} seeds = {n_cells} cells in {n_jobs} jobs "
            f"(one per corpus, model and target: every seed, both regimes)"
        )
        for c in corpora:
            print("   " + ", ".join(f"{c}/{m}: {cell_seconds[c, m]:.1f} s per cell" for m in training["models"]))
        print(
            f"   extrapolated CPU time: training {train_total / 60:.1f} min + start-up {startup_total / 60:.1f} min "
            f"= {total / 60:.1f} min (start-up share {startup_total / total:.0%})"
        )
        print(
            f"   wall time on {args.cores} idle cores (CPU time / cores): {wall / 60:.1f} min; "
            f"{met(wall, GRID_GOAL_S, 'min', 60)} (extrapolated)"
        )
        print("   job granularity, same training, start-up measured above:")
        for label, jobs in (
            (f"one job per run and regime: {2 * n_cells} jobs", 2 * n_cells),
            (f"one job per cell, both regimes: {n_cells} jobs", n_cells),
            (f"one job per corpus/model/target, every seed (ours): {n_jobs} jobs", n_jobs),
        ):
            print(
                f"     {label:<52} start-up {startup * jobs / 60:5.1f} min CPU, "
                f"wall {(train_total + startup * jobs) / args.cores / 60:5.1f} min"
            )
        print(
            "   caveats: one target and seed measured per model (early stopping varies with the labels);"
            " two parallel jobs on two cores run somewhat slower than one alone."
        )

    from softdigits.config import check_files

    def config_of(overlays: list[Path]) -> dict:
        return check_files([REPO / "workflow_config.yaml", *overlays], REPO / "schemas" / "config.schema.yaml")

    replicates = config_of([REPLICATES_CONFIG])
    measured_grid(
        args.results or REPO / config_of(args.config)["results"],
        args.cores,
        (REPO / replicates["results"], len(replicates["replicates"])),
    )
    critical_path(args.config)


def measured_grid(results: Path, cores: int, replicates: tuple[Path, int] | None = None) -> None:
    """Section 4a: the grid timed alone by `make bench-grid`, `make report`, the replicates (their
    own `make report`: `replicates` is its results folder and replicate count; else estimated from
    the single one), the pool and its dedup, and what each training job took."""
    import json

    import pandas as pd

    print(f"\n4. Measured, from {results}")
    recorded(
        results / "benchmarks" / "grid.json",
        GRID_GOAL_S,
        lambda run: f"the grid alone ({run['jobs']} train_run jobs, `make bench-grid`, --cores {run['cores']}, {run['date']})",
        "the grid alone: not measured yet; run `make bench-grid` (goal 4.5 minutes on 2 idle cores)",
    )
    recorded(
        results / "benchmarks" / "make_report.json",
        REPORT_GOAL_S,
        lambda run: f"`make report` (CORES={run['cores']}, {run['date']}, venv excluded; from a fresh clone only if "
        "that run started from one)",
        "`make report`: no timed run yet (it records its wall time when it ends)",
    )
    report = results / "benchmarks" / "make_report.json"
    replicates_report = None if replicates is None else replicates[0] / "benchmarks" / "make_report.json"
    if replicates_report is not None and replicates_report.exists():
        recorded(
            replicates_report,
            REPLICATES_GOAL_S,
            lambda run: f"{replicates[1]} whole-study replicates (`make report CONFIG="
            f"{REPLICATES_CONFIG.relative_to(REPO)}`, CORES={run['cores']}, {run['date']})",
            "",
        )
    elif report.exists():
        wall = REPLICATES * json.loads(report.read_text())["wall_s"]
        print(
            f"   {REPLICATES} whole-study replicates, estimated as {REPLICATES} x `make report` (not measured here): "
            f"{wall / 60:.1f} min, {met(wall, REPLICATES_GOAL_S, 'min', 60)} (estimate)"
        )
    pool_tsv, pool_summary = results / "benchmarks" / "generator_pool.tsv", results / "generator" / "pool_summary.json"
    if pool_tsv.exists() and pool_summary.exists():
        mixtures = json.loads(pool_summary.read_text())["mixtures"]
        seconds = float(pd.read_csv(pool_tsv, sep="\t")["s"].iloc[-1])
        print(
            f"   generator_pool: {mixtures:,} mixtures scored, {met(mixtures, POOL_SIZE_GOAL, 'M mixtures', 1e6, at_least=True)};"
            f" {seconds:.0f} s wall, {met(seconds, POOL_GOAL_S, 's')} (the old code's 1,024,000-mixture pool)"
        )
    else:
        print("   generator_pool: no benchmark file yet (run the workflow with corpora.mukhoti.origin generate)")
    dedup = results / "dedup" / "duplicates_vs_paper.csv"
    if dedup.exists():
        rows = pd.read_csv(dedup).set_index("corpus")
        if "mukhoti" in rows.index:
            row = rows.loc["mukhoti"]
            print(
                f"   dedup of the generated Ambiguous-MNIST: {int(row['n_removed']):,} of {int(row['n_images']):,} removed "
                f"({row['share_removed']:.1%}); the paper's release: {PAPER_DEDUP_REMOVED:,} of 12,000 (11.6%)"
            )
    tsvs = sorted((results / "benchmarks" / "train_run").glob("*/*/*.tsv"))  # corpus/model/target.tsv
    if not tsvs:
        return
    seconds = pd.Series({t: pd.read_csv(t, sep="\t")["s"].iloc[-1] for t in tsvs})
    cpu = pd.Series({t: pd.read_csv(t, sep="\t")["cpu_time"].iloc[-1] for t in tsvs})
    by_model = seconds.groupby([t.parts[-2] for t in tsvs]).sum()
    print(
        f"   {len(tsvs)} train_run jobs, sum of job wall times {seconds.sum() / 60:.1f} min "
        f"(CPU {cpu.sum() / 60:.1f} min); / {cores} cores = {seconds.sum() / cores / 60:.1f} min; by model: "
        + ", ".join(f"{m} {v / 60:.1f} min ({v / seconds.sum():.0%})" for m, v in by_model.items())
    )
    epochs = {}
    for t in tsvs:
        job = t.relative_to(results / "benchmarks" / "train_run").with_suffix("")  # corpus/model/target
        for history in sorted((results / "training" / job).glob("seed*/test_performance_history.parquet")):
            epochs.setdefault(f"{job.parts[0]}/{job.parts[1]}", []).append(
                len(pd.read_parquet(history, columns=["epoch"]))
            )
    if epochs:
        print(
            "   regime 1 epochs before early stopping, mean (min-max): "
            + ", ".join(f"{k} {statistics.mean(v):.0f} ({min(v)}-{max(v)})" for k, v in sorted(epochs.items()))
        )


def recorded(path: Path, goal_s: float, describe, missing: str) -> None:
    """One recorded wall time ({"wall_s": ...} JSON) against its goal, or what to run to record it."""
    import json

    if not path.exists():
        print(f"   {missing}")
        return
    run = json.loads(path.read_text())
    print(f"   {describe(run)}: {run['wall_s'] / 60:.1f} min wall, {met(run['wall_s'], goal_s, 'min', 60)}")


def critical_path(configfiles: list[Path]) -> None:
    """Section 4b: the longest chain of jobs in the config's DAG, each weighted by the wall time
    in its benchmark file from the last run (the least time any schedule can take)."""
    import pandas as pd
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=configfiles),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )
        # Snakemake has no public call that returns the job DAG; these are its own internals (9.x).
        workflow = workflow_api.dag(dag_settings=DAGSettings(forceall=True)).workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        dag = workflow.dag
        jobs = list(dag.jobs)
        missing, seconds = [], {}
        for job in jobs:
            bench = Path(REPO / job.benchmark) if job.benchmark else None
            if bench is not None and bench.exists():
                seconds[job] = float(pd.read_csv(bench, sep="\t")["s"].iloc[-1])
            else:
                seconds[job] = 0.0
                if job.rule.name != "all":
                    missing.append(job)
        longest: dict = {}

        def finish(job):  # earliest finish with unlimited cores: the longest chain ending at this job
            if job not in longest:
                before = max((finish(d) for d in dag.dependencies[job]), default=(0.0, []))
                longest[job] = (before[0] + seconds[job], before[1] + [job])
            return longest[job]

        total, chain = max(finish(job) for job in jobs)
    name = " + ".join(["workflow_config.yaml", *map(str, configfiles)])
    print(f"\n   critical path of {name} ({len(jobs)} jobs), from the last run's benchmark files:")
    if len(missing) == len(jobs) - 1:
        print("   no benchmark files yet: run the workflow first")
        return
    if missing:
        print(f"   ({len(missing)} jobs have no benchmark file and count 0 s, e.g. {missing[0].rule.name})")
    for job in chain:
        if job.rule.name != "all":
            wildcards = ",".join(str(v) for v in job.wildcards)
            print(f"     {seconds[job]:7.1f} s  {job.rule.name}{f' [{wildcards}]' if wildcards else ''}")
    print(
        f"   = {total / 60:.1f} min: no schedule on any number of cores finishes the run sooner "
        f"(`make report` {met(total, REPORT_GOAL_S, 'min', 60)} for this chain alone)"
    )


if __name__ == "__main__":
    main()
