"""Shared fixtures: a scratch copy of the workflow, a runner for the Snakemake CLI, and the
figure checks (the figures a test saves, and the pixels of a written PNG)."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from http_fixture import GOOD, Handler

REPO = Path(__file__).resolve().parents[1]
# What a workflow run needs; results and caches are left behind.
WORKFLOW_PARTS = [
    "Snakefile",
    "workflow_config.yaml",
    "config",
    "rules",
    "scripts",
    "schemas",
    "envs",
    "resources",
    "report",
    "softdigits",
]


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not its results) into `dest` and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "downloads", "verified", "*.pyc", "node_modules")
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real Snakemake CLI in `workdir` with the tiny test config.

    `--configfile` takes every following word as a file, so targets must come
    after another option (callers put options first, targets last).
    """
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n" f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def skip_without_mount_namespace() -> None:
    """The full-disk tests mount a small tmpfs in a mount namespace of their own."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs `unshare -rm` (a mount namespace) to mount a small file system")


def dry_run_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule name -> number of jobs that a dry run would execute."""
    proc = snakemake(workdir, "-n", "--quiet", "rules", *args)
    jobs: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            jobs[parts[0]] = int(parts[1])
    return jobs


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Unit tests train tiny models: one thread avoids oversubscribing CI's 2 cores."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture
def seeds_alone(monkeypatch):
    """`training.stack.fit_stacked` replaced by what it stands for: `loop.fit_shared` per seed, one
    seed after the other (the code before the stack). Call it to install; a module that imports
    `fit_stacked` when it runs then trains its seeds alone, so a test can compare the two."""

    def install() -> None:
        from softdigits.training import loop, stack

        def alone(models, seeds, x_train, y_train, regimes, x_val=None, y_val=None, track_dynamics=None, **_):
            per_seed = x_train.dim() == 3
            return [
                loop.fit_shared(
                    model,
                    x_train[s] if per_seed else x_train,
                    y_train[s] if per_seed else y_train,
                    regimes,
                    seed,
                    x_val,
                    y_val,
                    track_dynamics,
                )
                for s, (model, seed) in enumerate(zip(models, seeds))
            ]

        monkeypatch.setattr(stack, "fit_stacked", alone)

    return install


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "workflow")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole tiny-config workflow, run once per test session; returns its folder."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny") / "workflow")
    snakemake(workdir, "--cores", "2")
    return workdir


# ------------------------------------------------------------------------------- figures


@pytest.fixture
def saved_figures(monkeypatch) -> list:
    """The (figure, path) of every softdigits.io.save_figure call during the test.

    The figures are still written (the real save_figure runs), so a test can read the
    plotted data back from the very figure that went into the PNG. Modules that imported
    save_figure by name are patched too."""
    import softdigits.io

    real = softdigits.io.save_figure
    saved = []

    def save_figure(fig, path):
        saved.append((fig, Path(path)))
        real(fig, path)

    for module in [m for name, m in sys.modules.items() if name.split(".")[0] == "softdigits"]:
        if getattr(module, "save_figure", None) is real:
            monkeypatch.setattr(module, "save_figure", save_figure)
    return saved


def png_rgb(path: Path) -> np.ndarray:
    """The PNG's pixels, (height, width, 3) floats in [0, 1]; checks the PNG signature first."""
    from matplotlib import image

    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return np.asarray(image.imread(path), float)[..., :3]


def ink_share(rgb: np.ndarray) -> float:
    """Share of the pixels that are not white: a blank figure has almost none."""
    return float(np.mean(rgb.min(axis=-1) < 0.95))


def colour_pixels(rgb: np.ndarray, colour, tol: float = 0.03) -> int:
    """How many pixels are within `tol` (per channel) of `colour` (any matplotlib colour)."""
    from matplotlib.colors import to_rgb

    return int(np.sum(np.abs(rgb - np.asarray(to_rgb(colour))).max(axis=-1) <= tol))


@pytest.fixture
def server():
    """Serves /good.bin, /corrupt.bin (the same name's content damaged) and 404 elsewhere."""
    Handler.files = {"/good.bin": GOOD, "/corrupt.bin": GOOD[:-1] + b"?"}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler.files
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# ------------------------------------------------------------------------------- workers


def pytest_collection_modifyitems(config, items):
    """`make test` runs two pytest-xdist workers (`--dist loadgroup`), and each worker builds a
    session or module fixture it needs for itself: so every test of one module stays on one
    worker, and every test of the whole tiny run (or of the explorer's session fixtures) on one.
    The tiny run's tests come first: they are the longest group, and started last they would
    leave the other worker idle at the end.

    The scheduler reads a test's group from its id ("<id>@<group>"). pytest-xdist 3.8 writes
    that suffix from `xdist_group` markers into `item._nodeid`, which pytest 9 no longer reads
    (its ids live in `item._id`), so a marker would leave every test scheduled alone and the
    tiny run built once per worker: the suffix is written here instead."""
    from _pytest.nodeid import coerce_node_id

    groups = {}
    for item in items:
        if "tiny_run" in item.fixturenames:
            group = "tiny_run"
        elif {"inputs", "explorer", "page_path"} & set(item.fixturenames):
            group = "explorer"
        else:
            group = item.nodeid.split("::")[0]
        groups[item.nodeid] = group
    items.sort(key=lambda item: groups[item.nodeid] != "tiny_run")  # stable: each group keeps its order
    if getattr(config.option, "loadgroup", False):  # on a worker of `--dist loadgroup`
        for item in items:
            item._id = coerce_node_id(f"{item.nodeid}@{groups[item.nodeid]}")
