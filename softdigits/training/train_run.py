"""Rule train_run: one (corpus, model, target) of the training grid, every seed, both regimes.

- the study table (`study_table.read_study`) and the regime's targets (`targets.build_targets`).
- `prepare_cell`: those images as normalised tensors on the device.
- `train_seeds`: regime 1 (test-set performance: early stopping, ReduceLROnPlateau,
  best checkpoint, predictions for every val and test image) and regime 2 (training
  dynamics: fixed epochs, every training image's prediction per epoch), for every seed.
- `run`: the job: every seed and regime, each output written atomically as soon as its
  regime ends, then each seed's manifest.

A job trains every seed's two regimes in one process, so it pays the Python + torch
start-up and the study table's read once for twelve trainings, and in one stack
(`training.stack.fit_stacked`): the seeds' weights stacked on a member dimension, one
batched matmul per linear layer and step for all of them (LeNet's image layers member by
member in our CPU kernel, `training.conv_pool`; without it, torch's convolutions, grouped where
the CPU's kernels allow it), each seed with its
own initial weights, batch order, Adam state, schedule and stopping. Each seed's two regimes
train on one trajectory until regime 1 first lowers its learning rate or stops (the same
seed, weights and rate make the same epochs, so those are trained once). Every seed's
results are bit for bit those of its regimes trained alone (`loop.fit`) wherever the stack's
kernel check passes (the manifest's `stack.alone_bits`; `stack.conv_pool` and `stack.grouped`
say which convolutions ran; tests/training/test_stack.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import torch

from softdigits import io, jobs, provenance
from softdigits.io import DataContractError
from softdigits.study_table import Study, read_study
from softdigits.training.loop import TrainSettings, normalise, pixel_stats, predict, resolve_device
from softdigits.training.models import build_model
from softdigits.training.run_outputs import dynamics_table, history_table, predictions_table, write_output
from softdigits.training.stack import fit_stacked
from softdigits.training.targets import build_targets

REGIMES = ("test_performance", "dynamics")
# ------------------------------------------------------------------- settings


def regime_settings(config: dict, regime: str) -> TrainSettings:
    """The TrainSettings of a regime from the `training` config section."""
    if regime == "test_performance":
        r = config["test_performance"]
        return TrainSettings(
            lr=config["lr"],
            batch_size=config["batch_size"],
            max_epochs=r["max_epochs"],
            early_stopping_patience=r["early_stopping_patience"],
            plateau_factor=r["plateau_factor"],
            plateau_patience=r["plateau_patience"],
            min_delta=r["min_delta"],
        )
    if regime == "dynamics":
        return TrainSettings(lr=config["lr"], batch_size=config["batch_size"], max_epochs=config["dynamics"]["epochs"])
    raise ValueError(f"unknown regime {regime!r}; known: {REGIMES}")


def configure_torch(threads: int) -> None:
    """Per-process torch settings every training run uses (before any tensor work)."""
    jobs.torch_threads(threads)
    # Denormal floats are very slow on x86 CPUs and too small to matter here.
    torch.set_flush_denormal(True)
    # On a GPU, the same seed must still give the same outputs.
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


# -------------------------------------------------------------------- one cell


@dataclass
class Cell:
    """The tensors of one (corpus, target) on one device: what every regime trains on."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_scored: torch.Tensor  # every val and test image, for regime 1's predictions
    train_ids: np.ndarray
    scored_ids: np.ndarray
    scored_split: np.ndarray
    info: dict  # counts and normalisation statistics, for the manifest


def prepare_cell(study: Study, target: str, not_a_digit: str, device: torch.device, params: dict | None = None) -> Cell:
    """Targets, the usable train/val images and the normalised tensors of one target.

    Validation targets are of the same kind as the training targets and follow
    the same not-a-digit rule; predictions cover every val and test image.
    Images are standardised with the mean and std of the usable training images.
    """
    built = build_targets(study, target, not_a_digit, params)
    targets, usable = built.values, built.usable
    train = study.rows("train") & usable
    val = study.rows("val") & usable
    if not train.any() or not val.any():
        raise DataContractError(
            f"{study.path}: target {target!r} leaves {int(train.sum())} train and {int(val.sum())} val images"
        )
    scored = study.rows("val") | study.rows("test")
    mean, std = pixel_stats(study.pixels[train])

    def images(rows: np.ndarray) -> torch.Tensor:
        return normalise(study.pixels[rows], mean, std).to(device)

    def labels(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(targets[rows]).to(device)

    info = {
        "labels_origin": study.labels_origin,
        "n_train": int(train.sum()),
        "n_val": int(val.sum()),
        "n_scored": int(scored.sum()),
        "n_left_out": {split: int((study.rows(split) & ~usable).sum()) for split in ("train", "val")},
        "normalisation": {"mean": mean, "std": std},
        "target_details": built.details,  # a control's epsilon or shuffle; {} for the paper's targets
    }
    return Cell(
        images(train),
        labels(train),
        images(val),
        labels(val),
        images(scored),
        study.image_id[train],
        study.image_id[scored],
        study.split[scored],
        info,
    )


def train_seeds(
    cell: Cell,
    regimes: tuple[str, ...],
    *,
    model: str,
    seeds: list[int],
    config: dict,
    on_done: Callable[[int, dict[str, pa.Table]], None] | None = None,
) -> tuple[list[dict[str, pa.Table]], list[dict[str, dict]], dict]:
    """Train the regimes of every seed in one stack, each seed from its own fresh seeded weights.

    Returns, per seed, ({output name: table}, {regime: manifest entry}), and the stack's
    record (`fit_stacked`'s `record`). `on_done(seed, tables)` receives each regime's tables
    as soon as that regime ends.
    """
    started = time.perf_counter()
    device = cell.x_train.device
    settings = [regime_settings(config, regime) for regime in regimes]
    tables = [{} for _ in seeds]
    entries = [{} for _ in seeds]

    def done(s: int, i: int, result, net) -> None:
        regime = regimes[i]
        if regime == "test_performance":
            probs = predict(net, cell.x_scored).cpu().numpy()
            predictions = predictions_table(cell.scored_ids, cell.scored_split, probs)
        else:
            predictions = dynamics_table(cell.train_ids, result.train_probs)
        mine = {f"{regime}_history": history_table(result.rows), f"{regime}_predictions": predictions}
        tables[s].update(mine)
        entries[s][regime] = {
            "settings": asdict(settings[i]),
            "epochs_trained": len(result.rows),
            "best_epoch": result.best_epoch,
            "wall_time_s": round(time.perf_counter() - started, 3),  # from the stack's first epoch
        }
        if on_done is not None:
            on_done(seeds[s], mine)

    record: dict = {}
    fit_stacked(
        [build_model(model, seed).to(device) for seed in seeds],
        list(seeds),
        cell.x_train,
        cell.y_train,
        settings,
        cell.x_val,
        cell.y_val,
        [regime == "dynamics" for regime in regimes],
        on_done=done,
        record=record,
    )
    return tables, [{regime: e[regime] for regime in regimes} for e in entries], record


def train_regimes(
    cell: Cell, regimes: tuple[str, ...], *, model: str, seed: int, config: dict
) -> tuple[dict[str, pa.Table], dict[str, dict]]:
    """One seed's regimes (`train_seeds` with one seed): ({output name: table}, {regime: manifest entry})."""
    tables, entries, _ = train_seeds(cell, regimes, model=model, seeds=[seed], config=config)
    return tables[0], entries[0]


def run(
    *,
    study_path,
    outputs: dict[int, dict[str, str]],
    model: str,
    target: str,
    config: dict,
    threads: int,
    code_files: list[str],
) -> list[dict]:
    """The training job of one (corpus, model, target): every seed's cell, then its manifest.

    `outputs` maps each seed to its cell's {output name: path}. `config` is the
    `training` section without the grid lists (models, targets, seeds). The study table
    is read and the tensors are built once; the seeds then train in one stack, each from
    its own seeded weights and batch order, as it would in a process of its own (bit for
    bit where the stack's kernel check passes; a test checks it). Each regime's files are
    written, atomically, as soon as it ends; the manifests come last, so a cell without
    one did not finish. Returns the manifests.
    """
    configure_torch(threads)
    device = resolve_device(config["device"])
    # training_settings() in rules/common.smk passes a target's own keys (Target.params) to its jobs only.
    cell = prepare_cell(read_study(study_path), target, config["not_a_digit"], device, config)
    libraries, fingerprint = provenance.library_versions(), provenance.code_fingerprint(code_files)
    seeds = list(outputs)
    started = time.perf_counter()

    def write(seed: int, tables: dict[str, pa.Table]) -> None:  # each regime's files as soon as it ends
        for name, table in tables.items():
            write_output(name, table, outputs[seed][name])

    _, entries, record = train_seeds(cell, REGIMES, model=model, seeds=seeds, config=config, on_done=write)
    manifests = []
    for seed, regimes in zip(seeds, entries):
        manifest = {
            "corpus_study": str(study_path),
            "model": model,
            "target": target,
            "seed": int(seed),
            "config": config,
            "regimes": regimes,
            "data": cell.info,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "libraries": libraries,
            "code_fingerprint": fingerprint,
            "stack": {"seeds": [int(s) for s in seeds], **record},
            "wall_time_s": round(time.perf_counter() - started, 3),  # the job's training and writing
        }
        io.write_json(manifest, outputs[seed]["manifest"])
        manifests.append(manifest)
    return manifests
