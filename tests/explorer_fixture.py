"""Everything an explorer page is built from, made small and coherent, in the workflow's layout.

The fixtures `inputs`, `explorer` and `page_path` (one set for the whole session; a test that
changes an input works on a copy): a test module imports `FIXTURES`' functions (named
*_fixture, so that the tests' arguments do not shadow an import).

The raw answers are made up (SIMULATED, marked so), the labels aggregated from them by
the project's own `aggregate`, the study table written by `study_table.to_arrow`; the runs'
predictions are random distributions in the run-output contracts, and the model data maps
come from the evaluation stage's own `evaluate_dynamics` on those runs. So every number the
explorer shows has one source a test can compare with.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from softdigits import io, study_table
from softdigits.annotation.aggregation import aggregate
from softdigits.annotation.answers import raw_table
from softdigits.evaluation.dynamics import evaluate_dynamics
from softdigits.explorer.data import build_explorer
from softdigits.explorer.page import write_page
from softdigits.training import run_outputs

MODELS = ("simple_ffn", "lenet")
TARGETS = ("original", "human_uncertainty", "human_majority")
SEEDS = (0, 1)
EPOCHS = 6
LAST_EPOCHS = 5
SIZES = {"train": 30, "val": 8, "test": 8}
THRESHOLDS = {"confidence_high": 0.6, "confidence_low": 0.3, "variability_low": 0.1, "variability_high": 0.2}
EXCLUDED = "sim-a07"  # fails its attention check


@dataclass
class Inputs:
    """Paths and parameters of one corpus's explorer (build_explorer's keywords)."""

    corpus: str
    results: Path
    study: Path
    raw_answers: Path
    qc: Path
    data_maps: dict[str, Path] = field(default_factory=dict)
    predictions: dict[tuple[str, str, int], Path] = field(default_factory=dict)
    dynamics: dict[tuple[str, str, int], Path] = field(default_factory=dict)

    def kwargs(self) -> dict:
        return dict(
            study=self.study,
            raw_answers=self.raw_answers,
            qc=self.qc,
            data_maps=self.data_maps,
            predictions=self.predictions,
            dynamics=self.dynamics,
            thresholds=THRESHOLDS,
            last_epochs=LAST_EPOCHS,
            data_map_gold="trained_target",
            human_soft_label="soft_label",
            kl_epsilon=1e-8,
            not_a_digit="renormalise",
        )


def _answers(rng, image_ids: list[str], digits: np.ndarray) -> pd.DataFrame:
    """Four of twelve annotators per image; answers near the digit; one check per annotator."""
    pool = [f"sim-a{k:02d}" for k in range(12)]
    rows = []

    def add(annotator, image, yes, unsure, check=False, gold=None):
        for c in range(10):
            rows.append(
                {
                    "annotator_id": annotator,
                    "image_id": image,
                    "class": c,
                    "response": "yes" if c in yes else "unsure" if c in unsure else "no",
                    "is_attention_check": check,
                    "reaction_time_ms": float(rng.uniform(300, 2000)),
                    "gold_label": gold,
                    "simulated": True,
                }
            )

    for image, digit in zip(image_ids, digits):
        other = int((digit + 1 + rng.integers(9)) % 10)
        for annotator in rng.choice(pool, size=4, replace=False):
            kind = rng.random()
            if kind < 0.6:
                add(annotator, image, {digit}, set())
            elif kind < 0.8:
                add(annotator, image, {digit}, {other})
            elif kind < 0.93:
                add(annotator, image, {other}, set())
            else:
                add(annotator, image, set(), set())  # not a digit
    for annotator in pool:
        add(annotator, "gold:check", {3} if annotator != EXCLUDED else {8}, set(), check=True, gold=3)
    return pd.DataFrame(rows)


def _probs(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def fabricate(
    results: Path,
    corpus: str = "mnist",
    seed: int = 0,
    *,
    sizes: dict[str, int] = SIZES,
    models=MODELS,
    targets=TARGETS,
    seeds=SEEDS,
    epochs: int = EPOCHS,
) -> Inputs:
    """Write the explorer's inputs for `corpus` under `results` (a config's results folder).

    Predictions drift smoothly toward the original label over the epochs, each image at its
    own pace, as trained models' do (bench/explorer_size.py measures a page of the default
    run's size on them)."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (10, 784))
    ids, splits, digits, pixels = [], [], [], []
    for split, n in sizes.items():
        for k in range(n):
            digit = int(rng.integers(10))
            ids.append(f"{corpus}:{split}:{k:04d}")
            splits.append(split)
            digits.append(digit)
            pixels.append(np.clip(templates[digit] * (rng.random(784) < 0.3), 0, 255).astype(np.uint8))
    digits = np.array(digits)
    raw = _answers(rng, ids, digits)
    labels, qc = aggregate(raw)
    frame = pd.DataFrame(
        {
            "image_id": ids,
            "source": corpus,
            "split": splits,
            "region": rng.choice(["easy", "ambiguous", "hard"], len(ids)),
            "pixels": pixels,
            "label": digits,
            "label_dist": list(np.eye(10, dtype=np.float32)[digits]),
        }
    ).merge(labels, on="image_id", validate="one_to_one")
    study = results / "study" / f"{corpus}.parquet"
    study_table.write_study(study_table.to_arrow(frame), study, origin="simulated", info={})
    inputs = Inputs(
        corpus,
        results,
        study,
        results / "annotation" / corpus / "raw_annotations.parquet",
        results / "annotation" / corpus / "qc.json",
    )
    io.write_table(raw_table(raw), inputs.raw_answers)
    io.write_json(qc.as_dict(), inputs.qc)
    frame = frame.sort_values("image_id").reset_index(drop=True)
    train = frame["split"].to_numpy() == "train"
    evaluated = ~train
    favour = np.eye(10)[frame["label"].to_numpy()]
    n_train = int(train.sum())
    steps = np.arange(1, epochs + 1)
    for model, target, s in itertools.product(models, targets, seeds):
        folder = results / "training" / corpus / model / target / f"seed{s}"
        files = run_outputs.cell_files(folder)
        logits = rng.normal(0, 1, (int(evaluated.sum()), 10)) + 2.0 * favour[evaluated]
        io.write_table(
            run_outputs.predictions_table(
                frame.loc[evaluated, "image_id"].to_numpy(), frame.loc[evaluated, "split"].to_numpy(), _probs(logits)
            ),
            files["test_performance_predictions"],
        )
        pace = rng.uniform(0.5, 4.0, (n_train, 1))
        start = rng.normal(0, 1, (n_train, 10))
        per_epoch = np.concatenate(
            [
                _probs(start + pace * (e / epochs) * favour[train] + 0.15 * rng.normal(0, 1, (n_train, 10)))
                for e in steps
            ]
        )
        io.write_table(
            pa.table(
                {
                    "epoch": pa.array(np.repeat(steps, n_train), pa.int32()),
                    "image_id": np.tile(frame.loc[train, "image_id"].to_numpy(), epochs),
                    "probs": io.vectors_column(per_epoch),
                }
            ),
            files["dynamics_predictions"],
        )
        inputs.predictions[(model, target, s)] = Path(files["test_performance_predictions"])
        inputs.dynamics[(model, target, s)] = Path(files["dynamics_predictions"])
    for model in models:
        runs = {(t, s): inputs.dynamics[(model, t, s)] for t in targets for s in seeds}
        _, maps, _, _ = evaluate_dynamics(
            study,
            runs,
            last_epochs=LAST_EPOCHS,
            n_permutations=19,
            seed=0,
            gold="trained_target",
            not_a_digit="renormalise",
            target_params={"human_shuffled": {"shuffle_seed": 0}},  # its gold: the argmax of its shuffled label
        )
        path = results / "evaluation" / corpus / model / "data_map.parquet"
        io.write_table(maps.assign(corpus=corpus, model=model), path, metadata={"labels_origin": "simulated"})
        inputs.data_maps[model] = path
    return inputs


# ------------------------------------------------------------------ session fixtures


@pytest.fixture(scope="session", name="inputs")
def inputs_fixture(tmp_path_factory) -> Inputs:
    return fabricate(tmp_path_factory.mktemp("explorer") / "results-test")


@pytest.fixture(scope="session", name="explorer")
def explorer_fixture(inputs):
    return build_explorer(inputs.corpus, **inputs.kwargs())


@pytest.fixture(scope="session", name="page_path")
def page_path_fixture(inputs, explorer) -> Path:
    path = inputs.results / "explorer" / f"{inputs.corpus}.html"
    write_page(explorer, path)
    return path


FIXTURES = (inputs_fixture, explorer_fixture, page_path_fixture)
