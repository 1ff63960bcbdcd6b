"""The explorer's table: one row per study image, everything its page shows about it.

`build_explorer` joins, by `image_id`, the study table, the raw answers and their QC, the
model data maps of the evaluation stage and the training runs' predictions. Rows come in
the study table's order (sorted by image_id). Columns:

- From the study table, as they are: `image_id`, `source`, `split`, `region` (the corpus data
  map's region, the selection stratum), `pixels` (784 uint8), `label`, `label_dist` (10),
  `soft_label`, `soft_label_yes_unc_equal`, `soft_label_yes_only` (11 each: digits 0-9 and
  not a digit), `soft_label_argmax`, `human_uncert_mean` (u_mean), `pct_ann_unsure` (u_prop),
  `n_annotators`, `hlv`.
- Answers (empty lists when the labels are the released aggregates): `annotators` (ids, sorted),
  `answers` (one string of ten letters per annotator, class 0 first: `y` yes, `u` unsure,
  `n` no) and `excluded` (the annotator failed an attention check, qc.json, so their answers
  are not in the soft labels). Attention-check answers are left out: they are not labels.
- Per (model, target), in columns named by `cell_column(model, target, quantity)`:
  - `probs` (10): the mean over seeds of the predicted distribution. Validation and test
    images: the `test_performance_predictions` (best validation-loss checkpoint); training
    images: the last epoch of the `dynamics_predictions` run (nothing else predicts them).
    None where no run predicted the image (e.g. a not-a-digit majority under
    `training.not_a_digit: exclude`).
  - `kl`: KL(human || probs) in nats, human = `evaluation.human_soft_label` with its ten
    digits renormalised and the model clipped at `evaluation.kl_epsilon`, as Table 3 computes
    it (`evaluation.runs.References`, `evaluation.metrics.kl_divergence`); NaN where the human
    label has no digit mass or there is no prediction.
  - `gold`, `confidence`, `variability`: the image's point on the model data map, copied from
    the evaluation stage's data_map.parquet (NO_GOLD / NaN where the image has no point: val
    and test images, training images without a gold digit); `map_region`: the region of that
    point under the corpus's cartography thresholds (`cartography.maps.assign_regions`), ""
    where none.
  - `p_gold` (one value per dynamics epoch): the mean over seeds of p(gold) after each epoch,
    gold the data map's; None where the image has no point. Its last `last_epochs` values
    average to `confidence` (the data map pools the same values): `build_explorer` checks
    that, so a data map joined to the wrong runs or images cannot pass.

Every join is checked: an id unknown to the study table, a prediction whose split is not the
image's, seeds of one cell holding different images, a data map point on a non-training
image, or answer counts that differ from `n_annotators` stop the build with a DataContractError
naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from softdigits import study_table
from softdigits.annotation.aggregation import LABEL_COLUMNS, answer_matrix
from softdigits.annotation.answers import read_raw_annotations
from softdigits.cartography.maps import Thresholds, assign_regions
from softdigits.constants import N_DIGITS, RESPONSES
from softdigits.evaluation.dynamics import NO_GOLD
from softdigits.evaluation.metrics import kl_divergence
from softdigits.evaluation.runs import References
from softdigits.io import DataContractError
from softdigits.training import run_outputs

STUDY_COLUMNS = [
    "image_id",
    "source",
    "split",
    "region",
    "pixels",
    "label",
    "label_dist",
    # The aggregated labels, as annotation.aggregation writes them (the origin is on the page).
    *(column for column in LABEL_COLUMNS if column not in ("image_id", "simulated")),
]
ANSWER_COLUMNS = ["annotators", "answers", "excluded"]
CELL_QUANTITIES = ("probs", "kl", "gold", "confidence", "variability", "map_region", "p_gold")
# One letter per response code of aggregation.response_codes (no, unsure, yes).
ANSWER_LETTERS = "".join({"no": "n", "unsure": "u", "yes": "y"}[r] for r in RESPONSES)
DATA_MAP_COLUMNS = ["target", "image_id", "gold", "confidence", "variability"]
# p(gold) averaged over the data map's window must give its confidence to float32 rounding.
CONFIDENCE_TOLERANCE = 1e-5


def cell_column(model: str, target: str, quantity: str) -> str:
    """The table column of one (model, target) quantity, e.g. 'lenet/original/kl'."""
    if quantity not in CELL_QUANTITIES:
        raise ValueError(f"unknown cell quantity {quantity!r} (one of {CELL_QUANTITIES})")
    return f"{model}/{target}/{quantity}"


@dataclass(frozen=True)
class Explorer:
    """The table (one row per study image) and what the page says about where it comes from."""

    corpus: str
    table: pd.DataFrame
    models: tuple[str, ...]
    targets: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: np.ndarray  # the dynamics epochs, 1..E
    labels_origin: str  # simulated / campaign / released
    labels_sentence: str  # study_table.labels_sentence
    thresholds: Thresholds | None  # the corpus's cartography thresholds (region boundaries)
    last_epochs: int  # epochs per seed the data maps pool
    data_map_gold: str  # evaluation.data_map_gold
    human_soft_label: str  # the study column KL(human || model) compares with
    n_excluded: int  # annotators excluded by the attention checks (qc.json)

    def cell(self, model: str, target: str, quantity: str) -> pd.Series:
        return self.table[cell_column(model, target, quantity)]

    @property
    def has_answers(self) -> bool:
        return self.labels_origin != "released"


def build_explorer(
    corpus: str,
    *,
    study: str | os.PathLike,
    data_maps: dict[str, str | os.PathLike],
    predictions: dict[tuple[str, str, int], str | os.PathLike],
    dynamics: dict[tuple[str, str, int], str | os.PathLike],
    raw_answers: str | os.PathLike | None = None,
    qc: str | os.PathLike | None = None,
    thresholds: dict | None = None,
    last_epochs: int,
    data_map_gold: str,
    human_soft_label: str,
    kl_epsilon: float,
    not_a_digit: str,
) -> Explorer:
    """The explorer of one corpus. `data_maps`: model -> data_map.parquet; `predictions` and
    `dynamics`: (model, target, seed) -> a run's file; `raw_answers` and `qc` are None when
    the labels are the released aggregates (no per-annotator answers)."""
    origin = study_table.labels_origin(study)
    checked, arrays = study_table.read_table(study, STUDY_COLUMNS)
    table = checked.select([c for c in STUDY_COLUMNS if c not in arrays]).to_pandas()
    for name, values in arrays.items():
        table[name] = list(values) if values.ndim > 1 else values
    table = table[STUDY_COLUMNS]
    position = pd.Series(np.arange(len(table)), index=pd.Index(table["image_id"]))
    if (raw_answers is None) != (origin == "released"):
        raise DataContractError(
            f"{study}: labels origin {origin!r} "
            + ("has no raw answers" if origin == "released" else "needs its raw answers")
        )
    excluded = _excluded_annotators(qc) if raw_answers is not None else []
    table = table.join(
        _answers(raw_answers, table, position, excluded) if raw_answers is not None else _no_answers(table)
    )
    runs = [*predictions, *dynamics]  # in the grid's order: the page lists models and targets so
    models = tuple(dict.fromkeys(m for m, _, _ in runs))
    targets = tuple(dict.fromkeys(t for _, t, _ in runs))
    seeds = tuple(sorted({s for *_, s in runs}))
    missing = [m for m in models if m not in data_maps]
    if missing:
        raise DataContractError(f"no data map given for model(s) {missing}")
    frame = study_table.read_study_frame(study)
    refs = References(frame, human_soft_label, not_a_digit)
    human = pd.DataFrame({"soft": list(refs.human_soft), "has": refs.has_soft}, index=refs.image_id)
    limits = Thresholds(**thresholds) if thresholds else None
    columns, epochs = {}, None
    for model in models:
        maps = _data_map(data_maps[model], table, position)
        for target in targets:
            cell = _cell(predictions, dynamics, maps, model, target, table, position)
            if epochs is None:
                epochs = cell.epochs
            elif not np.array_equal(epochs, cell.epochs):
                raise DataContractError(
                    f"{model}/{target}: dynamics epochs {cell.epochs.tolist()} differ from other cells' {epochs.tolist()}"
                )
            conf, var = cell.confidence, cell.variability
            _check_confidence(cell.p_gold, conf, last_epochs, data_maps[model], target, table)
            region = np.full(len(table), "", dtype=object)
            point = np.isfinite(conf)
            if limits is not None and point.any():
                region[point] = assign_regions(conf[point], var[point], limits)
            columns |= {
                cell_column(model, target, "probs"): [None if np.isnan(p).any() else p for p in cell.probs],
                cell_column(model, target, "kl"): _kl(cell.probs, human, table, kl_epsilon),
                cell_column(model, target, "gold"): cell.gold,
                cell_column(model, target, "confidence"): conf,
                cell_column(model, target, "variability"): var,
                cell_column(model, target, "map_region"): region,
                cell_column(model, target, "p_gold"): [
                    row if np.isfinite(c) else None for row, c in zip(cell.p_gold, conf)
                ],
            }
    table = pd.concat([table, pd.DataFrame(columns, index=table.index)], axis=1)
    return Explorer(
        corpus=corpus,
        table=table,
        models=models,
        targets=targets,
        seeds=seeds,
        epochs=epochs if epochs is not None else np.zeros(0, dtype=np.int64),
        labels_origin=origin,
        labels_sentence=study_table.labels_sentence({corpus: origin}),
        thresholds=limits,
        last_epochs=int(last_epochs),
        data_map_gold=data_map_gold,
        human_soft_label=human_soft_label,
        n_excluded=len(excluded),
    )


# ------------------------------------------------------------------ answers


def _excluded_annotators(qc: str | os.PathLike | None) -> list[str]:
    if qc is None:
        raise DataContractError("raw answers were given without their qc.json (who was excluded)")
    try:
        report = json.loads(Path(qc).read_text())
    except json.JSONDecodeError as err:
        raise DataContractError(f"{qc}: not JSON ({err})") from None
    if not isinstance(report.get("excluded_annotators"), list):
        raise DataContractError(f"{qc}: no list 'excluded_annotators' (the aggregate_labels QC report)")
    return [str(a) for a in report["excluded_annotators"]]


def _answers(path, table: pd.DataFrame, position: pd.Series, excluded: list[str]) -> pd.DataFrame:
    """annotators / answers / excluded per study image, from the raw answers file."""
    raw, _ = read_raw_annotations(path)
    raw = raw[~raw["is_attention_check"].to_numpy(dtype=bool)]
    unknown = ~raw["image_id"].isin(position.index)
    if unknown.any():
        raise DataContractError(f"{path}: image_id {raw['image_id'][unknown].iloc[0]!r} is not in the study table")
    keys, codes = answer_matrix(raw)
    letters = np.array(list(ANSWER_LETTERS))[codes]
    keys["answers"] = ["".join(row) for row in letters]
    keys["excluded"] = keys["annotator_id"].isin(set(excluded))
    grouped = keys.groupby("image_id", sort=False)
    out = pd.DataFrame(
        {
            "annotators": grouped["annotator_id"].agg(list),
            "answers": grouped["answers"].agg(list),
            "excluded": grouped["excluded"].agg(list),
        }
    ).reindex(table["image_id"])
    empty = out["annotators"].isna().to_numpy()
    if empty.any():
        raise DataContractError(f"{path}: no answers for study image {table['image_id'][empty].iloc[0]!r}")
    kept = np.array([len(e) - sum(e) for e in out["excluded"]])
    expected = table["n_annotators"].to_numpy(dtype=float)
    wrong = np.isfinite(expected) & (kept != expected)
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise DataContractError(
            f"{path}: image {table['image_id'].iloc[i]!r} has {kept[i]} kept annotators, "
            f"the study table says n_annotators = {int(expected[i])}"
        )
    out.index = table.index
    return out


def _no_answers(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: [[] for _ in range(len(table))] for c in ANSWER_COLUMNS}, index=table.index)


# ------------------------------------------------------------------ runs


def _rows(image_id: np.ndarray, position: pd.Series, path) -> np.ndarray:
    known = pd.Index(image_id).isin(position.index)
    if not known.all():
        raise DataContractError(f"{path}: image_id {image_id[~known][0]!r} is not in the study table")
    return position.loc[image_id].to_numpy()


def _mean_predictions(predictions, model, target, table, position) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(n, 10) sum over seeds of the val/test predictions, and per seed which rows it predicted."""
    split = table["split"].to_numpy()
    total = np.zeros((len(table), N_DIGITS))
    seen_by: dict[int, np.ndarray] = {}
    for (m, t, seed), path in sorted(predictions.items()):
        if (m, t) != (model, target):
            continue
        image_id, pred_split, probs = run_outputs.read_predictions(path)
        run_outputs.check_probs(probs.astype(np.float64), str(path))
        rows = _rows(image_id, position, path)
        wrong = split[rows] != pred_split
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise DataContractError(
                f"{path}: image {image_id[i]!r} is predicted as split {pred_split[i]!r}, "
                f"the study table has it in {split[rows[i]]!r}"
            )
        total[rows] += probs
        seen_by[seed] = np.isin(np.arange(len(table)), rows)
    return total, seen_by


def _data_map(path, table: pd.DataFrame, position: pd.Series) -> pd.DataFrame:
    """One model's data map rows, checked: every point a training image of the study."""
    maps = pd.read_parquet(path)
    missing = [c for c in DATA_MAP_COLUMNS if c not in maps.columns]
    if missing:
        raise DataContractError(f"{path}: data map lacks column(s) {missing}")
    rows = _rows(maps["image_id"].to_numpy(), position, path)
    not_train = table["split"].to_numpy()[rows] != "train"
    if not_train.any():
        raise DataContractError(
            f"{path}: data map point {maps['image_id'].iloc[int(np.flatnonzero(not_train)[0])]!r} is not a training image"
        )
    if maps.duplicated(["target", "image_id"]).any():
        raise DataContractError(f"{path}: an image has two points for one target")
    return maps.assign(row=rows)[DATA_MAP_COLUMNS + ["row"]]


@dataclass
class _Cell:
    probs: np.ndarray  # (n, 10) mean over seeds; NaN rows: no prediction
    p_gold: np.ndarray  # (n, E) mean over seeds; NaN rows: no data map point
    epochs: np.ndarray
    gold: np.ndarray
    confidence: np.ndarray
    variability: np.ndarray


def _cell(predictions, dynamics, maps: pd.DataFrame, model, target, table, position) -> _Cell:
    """One (model, target): predictions and per-epoch p(gold) averaged over seeds, its map points.

    Each dynamics file is read once: its last epoch predicts the training images, its every
    epoch gives p(gold) of the images with a data map point."""
    n = len(table)
    split = table["split"].to_numpy()
    gold = np.full(n, NO_GOLD, dtype=np.int64)
    conf = np.full(n, np.nan)
    var = np.full(n, np.nan)
    points = maps[maps["target"] == target]
    gold[points["row"]] = points["gold"].to_numpy()
    conf[points["row"]] = points["confidence"].to_numpy()
    var[points["row"]] = points["variability"].to_numpy()
    has_point = gold != NO_GOLD
    total, seen_by = _mean_predictions(predictions, model, target, table, position)
    runs = {s: p for (m, t, s), p in dynamics.items() if (m, t) == (model, target)}
    if len(points) and not runs:
        raise DataContractError(f"{model}/{target}: data map points but no dynamics runs")
    p_total, epochs = np.zeros((n, 0)), np.zeros(0, dtype=np.int64)
    for i, (seed, path) in enumerate(sorted(runs.items())):
        run_epochs, image_id, probs = run_outputs.read_dynamics(path)
        rows = _rows(image_id, position, path)
        if (split[rows] != "train").any():
            raise DataContractError(
                f"{path}: dynamics of a non-training image ({image_id[split[rows] != 'train'][0]!r})"
            )
        if i == 0:
            epochs, p_total = run_epochs, np.zeros((n, len(run_epochs)))
        elif not np.array_equal(epochs, run_epochs):
            raise DataContractError(f"{path}: epochs {run_epochs.tolist()} differ from seed runs of the same cell")
        lacking = has_point & ~np.isin(np.arange(n), rows)
        if lacking.any():
            raise DataContractError(
                f"{path}: data map point {table['image_id'].iloc[int(np.flatnonzero(lacking)[0])]!r} has no dynamics"
            )
        total[rows] += probs[-1]
        seen_by.setdefault(seed, np.zeros(n, bool))[rows] = True
        on_map = has_point[rows]
        p_total[rows[on_map]] += probs[:, on_map, :][:, np.arange(on_map.sum()), gold[rows[on_map]]].T
    probs = np.full((n, N_DIGITS), np.nan)
    if seen_by:
        seen = np.stack(list(seen_by.values()))
        differ = seen.any(axis=0) & ~seen.all(axis=0)
        if differ.any():
            raise DataContractError(
                f"{model}/{target}: image {table['image_id'].iloc[int(np.flatnonzero(differ)[0])]!r} "
                "is predicted by some seeds' runs and not by others"
            )
        probs[seen[0]] = total[seen[0]] / len(seen_by)
    p_gold = p_total / max(len(runs), 1)
    p_gold[~has_point] = np.nan
    return _Cell(probs, p_gold, epochs, gold, conf, var)


def _check_confidence(p_gold, conf, last_epochs, path, target, table) -> None:
    """The data map's confidence must be the mean of the last epochs' p(gold) (a join check)."""
    point = np.isfinite(conf)
    if not point.any():
        return
    window = p_gold[point, -last_epochs:].mean(axis=1)
    off = np.abs(window - conf[point]) > CONFIDENCE_TOLERANCE
    if off.any():
        i = int(np.flatnonzero(point)[np.flatnonzero(off)[0]])
        raise DataContractError(
            f"{path}: target {target!r}, image {table['image_id'].iloc[i]!r}: confidence {conf[i]:.6f}, but the runs' "
            f"p(gold) over the last {last_epochs} epochs averages {window[np.flatnonzero(off)[0]]:.6f} "
            "(data map and runs do not match)"
        )


def _kl(probs: np.ndarray, human: pd.DataFrame, table: pd.DataFrame, eps: float) -> np.ndarray:
    ref = human.reindex(table["image_id"])
    has = ref["has"].fillna(False).to_numpy(dtype=bool) & np.isfinite(probs).all(axis=1)
    out = np.full(len(table), np.nan)
    if has.any():
        out[has] = kl_divergence(np.stack(ref["soft"].to_numpy()[has]), probs[has], eps)
    return out
