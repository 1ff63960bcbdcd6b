"""Evaluation of trained runs: every metric of a run's predictions, per evaluation set and
human-agreement stratum, and the post-hoc views (temperature scaling, selective prediction,
disagreement detection). The metric functions themselves are in `metrics`.

Evaluation sets (`EVAL_SETS`): `orig` (the original label and distribution), `human` (the
human majority), `human_soft` (the human soft label, ten digits renormalised). Strata: all,
HLV, NoHLV. Each metric of `metrics.METRICS` is scored on the evaluation sets its entry names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from softdigits import study_table
from softdigits.constants import N_DIGITS, N_HUMAN_CLASSES, NOT_A_DIGIT, NOT_A_DIGIT_MODES
from softdigits.evaluation import selective, temperature
from softdigits.evaluation.metrics import METRICS, Reference, correct, entropy, one_hot, reliability_bins
from softdigits.io import DataContractError
from softdigits.training import run_outputs, targets

# ------------------------------------------------------------ references and a run

EVAL_SETS = ("orig", "human", "human_soft")


class References:
    """The reference labels of one study table, in the form every metric needs.

    - `orig`: the corpus's original label (`label`) and distribution (`label_dist`:
      one-hot for MNIST, the synthetic distribution for Ambiguous-MNIST).
    - `human`: the human majority class `soft_label_argmax` (0-10, 10 = not a digit).
    - `human_soft`: the chosen human soft label with its not-a-digit mass dropped
      and the ten digits renormalised, as a 10-output model is trained on it;
      images without any digit mass have no soft reference (`has_soft` False).

    `not_a_digit` follows the training setting: "renormalise" keeps every image
    (a not-a-digit majority counts as wrong for the human evaluation set);
    "exclude" drops images whose human majority is not a digit from every
    evaluation set, as training drops them.
    """

    def __init__(self, study: pd.DataFrame, human_column: str, not_a_digit: str):
        if not_a_digit not in NOT_A_DIGIT_MODES:
            raise ValueError(f"not_a_digit must be one of {NOT_A_DIGIT_MODES}, got {not_a_digit!r}")
        dropped = (study["soft_label_argmax"] == NOT_A_DIGIT) & (not_a_digit == "exclude")
        self.excluded_ids = set(study.loc[dropped, "image_id"])
        study = study[~dropped]
        self.image_id = study["image_id"].to_numpy()
        self.hlv = study["hlv"].to_numpy(dtype=bool)
        self.orig_class = study["label"].to_numpy(dtype=np.int64)
        self.orig_dist = np.stack(study["label_dist"].to_numpy()).astype(np.float64)
        self.human_class = study["soft_label_argmax"].to_numpy(dtype=np.int64)
        soft = np.stack(study[human_column].to_numpy()).astype(np.float64)[:, :N_DIGITS]
        mass = soft.sum(axis=1)
        self.has_soft = mass > 0
        self.human_soft = soft / np.where(self.has_soft, mass, 1.0)[:, None]
        self.position = pd.Series(np.arange(len(self.image_id)), index=self.image_id)

    def __len__(self) -> int:
        return len(self.image_id)

    def eval_sets(self, at: np.ndarray) -> dict[str, tuple[np.ndarray, Reference]]:
        """Per evaluation set (EVAL_SETS), for the references at positions `at`: which of
        those images it scores (`human_soft` only those with digit mass) and its Reference."""
        human = self.human_class[at]
        soft = self.has_soft[at]
        every = np.ones(len(at), bool)
        return {
            "orig": (every, Reference(self.orig_class[at], self.orig_dist[at])),
            "human": (every, Reference(human, one_hot(human, N_HUMAN_CLASSES))),
            "human_soft": (soft, Reference(None, self.human_soft[at][soft])),
        }

    def strata(self) -> dict[str, np.ndarray]:
        return {"all": np.ones(len(self), bool), "HLV": self.hlv, "NoHLV": ~self.hlv}

    def align(self, image_id: np.ndarray, where: str) -> np.ndarray:
        """Row positions of `image_id` in the references; error naming the unknown id."""
        image_id = pd.Index(image_id)
        missing = ~image_id.isin(self.position.index)
        if missing.any():
            raise ValueError(f"{where}: image_id {image_id[missing][0]!r} is not in the study table")
        return self.position.loc[image_id].to_numpy()


def aligned(refs: References, image_id: np.ndarray, probs: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(reference positions, probs as float64) of checked predictions, less the images
    the references exclude (not-a-digit majority under "exclude")."""
    probs = np.asarray(probs, dtype=np.float64)
    run_outputs.check_probs(probs, where)
    kept = ~pd.Index(image_id).isin(list(refs.excluded_ids))
    return refs.align(np.asarray(image_id)[kept], where), probs[kept]


def aligned_strata(
    refs: References, image_id: np.ndarray, probs: np.ndarray, where: str
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """`aligned` predictions split by stratum: (stratum, reference positions, probs) for each
    stratum that holds at least one of them."""
    pos, probs = aligned(refs, image_id, probs, where)
    for stratum, mask in refs.strata().items():
        keep = mask[pos]
        if keep.any():
            yield stratum, pos[keep], probs[keep]


def evaluate_predictions(
    refs: References, image_id: np.ndarray, probs: np.ndarray, *, n_bins: int, eps: float, where: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every metric of one run on one split, per evaluation set and stratum.

    Returns (metrics: eval_set, stratum, metric, value, n_images) and
    (reliability bins against the human majority, per stratum). Predictions of
    images that the references exclude (not-a-digit majority under "exclude")
    are dropped here.
    """
    rows, bins = [], []
    settings = {"eps": eps, "n_bins": n_bins}
    for stratum, at, q in aligned_strata(refs, image_id, probs, where):
        for eval_set, (keep, reference) in refs.eval_sets(at).items():
            for name, metric in METRICS.items():
                if eval_set in metric.eval_sets and keep.any():
                    rows.append((eval_set, stratum, name, metric.score(q[keep], reference, settings), int(keep.sum())))
        bins.append(reliability_bins(q, refs.human_class[at], n_bins).assign(stratum=stratum, eval_set="human"))
    metrics = pd.DataFrame(rows, columns=["eval_set", "stratum", "metric", "value", "n_images"])
    return metrics, pd.concat(bins, ignore_index=True)


def evaluate_runs(
    study_path: str | os.PathLike,
    runs: list[tuple[str, str, int, str | os.PathLike]],
    *,
    human_column: str,
    not_a_digit: str,
    splits: list[str],
    n_bins: int,
    eps: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics and reliability bins of every (model, target, seed, predictions file) run of a corpus."""
    refs = References(study_table.read_study_frame(study_path), human_column, not_a_digit)
    metric_frames, bin_frames = [], []
    for model, target, seed, path in runs:
        image_id, split, probs = run_outputs.read_predictions(path)
        keys = {"model": model, "target": target, "seed": int(seed)}
        for name in splits:
            rows = split == name
            if not rows.any():
                raise DataContractError(f"{path}: no predictions for split {name!r}")
            m, b = evaluate_predictions(
                refs, image_id[rows], probs[rows], n_bins=n_bins, eps=eps, where=f"{path} ({name})"
            )
            metric_frames.append(m.assign(split=name, **keys))
            bin_frames.append(b.assign(split=name, **keys))
    order = ["model", "target", "seed", "split", "eval_set", "stratum", "metric", "value", "n_images"]
    return pd.concat(metric_frames, ignore_index=True)[order], pd.concat(bin_frames, ignore_index=True)


# ------------------------------------------------- post-hoc calibration and selective views

CALIBRATIONS = ("none", "temperature")


def posthoc_evaluation(
    study_path: str | os.PathLike,
    runs: list[tuple[str, str, int, str | os.PathLike]],
    *,
    human_column: str,
    not_a_digit: str,
    target_params: dict[str, dict],
    splits: list[str],
    n_bins: int,
    eps: float,
) -> dict[str, pd.DataFrame]:
    """Temperature scaling, selective prediction and disagreement detection of every run.

    Per run: T fitted on the usable val images against the targets the run was
    trained on (targets.build_targets with `target_params[target]`, the same code as training); then, per
    split, the metrics of the scaled predictions (the layout of `evaluate_runs`'
    metrics) and, for the raw ("none") and scaled ("temperature") predictions,
    the selective and disagreement views. Returns the frames `temperature`,
    `metrics_temperature`, `selective`, `risk_coverage` and `disagreement`.
    """
    refs = References(study_table.read_study_frame(study_path), human_column, not_a_digit)
    study = study_table.read_study(study_path)
    position = pd.Index(study.image_id)
    frames: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("temperature", "metrics_temperature", "selective", "risk_coverage", "disagreement")
    }
    for model, target, seed, path in runs:
        image_id, split, probs = run_outputs.read_predictions(path)
        run_outputs.check_probs(probs, str(path))
        logits = temperature.logits_from_probs(probs)
        fit = fit_run_temperature(
            study, position, target, not_a_digit, target_params.get(target, {}), image_id, split, logits, path
        )
        keys = {"model": model, "target": target, "seed": int(seed)}
        frames["temperature"].append(
            pd.DataFrame(
                [
                    {
                        **keys,
                        "temperature": fit.temperature,
                        "val_nll_before": fit.nll_before,
                        "val_nll_after": fit.nll_after,
                        "at_bound": fit.at_bound,
                        "n_images": fit.n_images,
                    }
                ]
            )
        )
        scaled = temperature.scaled_probs(logits, fit.temperature)
        for name in splits:
            rows = split == name
            if not rows.any():
                raise DataContractError(f"{path}: no predictions for split {name!r}")
            where = f"{path} ({name})"
            m, _ = evaluate_predictions(refs, image_id[rows], scaled[rows], n_bins=n_bins, eps=eps, where=where)
            frames["metrics_temperature"].append(m.assign(split=name, **keys))
            for calibration, q in zip(CALIBRATIONS, (probs[rows], scaled[rows])):
                tags = {**keys, "split": name, "calibration": calibration}
                sel, curve = selective_views(refs, image_id[rows], q, where)
                frames["selective"].append(sel.assign(**tags))
                frames["risk_coverage"].append(curve.assign(**tags))
                frames["disagreement"].append(disagreement_views(refs, image_id[rows], q, where).assign(**tags))
    run_keys = ["model", "target", "seed"]
    order = {
        "temperature": run_keys + ["temperature", "val_nll_before", "val_nll_after", "at_bound", "n_images"],
        "metrics_temperature": run_keys + ["split", "eval_set", "stratum", "metric", "value", "n_images"],
        "selective": run_keys + ["split", "calibration", "stratum", "metric", "value", "n_images"],
        "risk_coverage": run_keys + ["split", "calibration", "stratum", "coverage", "risk"],
        "disagreement": run_keys + ["split", "calibration", "metric", "value", "n_images"],
    }
    return {name: pd.concat(parts, ignore_index=True)[order[name]] for name, parts in frames.items()}


def fit_run_temperature(
    study,
    position: pd.Index,
    target: str,
    not_a_digit: str,
    params: dict,
    image_id: np.ndarray,
    split: np.ndarray,
    logits: np.ndarray,
    path,
) -> temperature.TemperatureFit:
    """T of one run: its val predictions against the val targets it was trained on (usable images only)."""
    built = targets.build_targets(study, target, not_a_digit, params)
    val = split == "val"
    at = position.get_indexer(image_id[val])
    if (at < 0).any():
        raise DataContractError(f"{path}: image_id {image_id[val][at < 0][0]!r} is not in the study table")
    usable = built.usable[at]
    if not usable.any():
        raise DataContractError(f"{path}: no val prediction has a {target!r} target to fit the temperature on")
    return temperature.fit_temperature(logits[val][usable], built.values[at][usable])


def selective_views(
    refs: References, image_id: np.ndarray, probs: np.ndarray, where: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per stratum: AURC and E-AURC (max probability vs errors against the human majority;
    a not-a-digit majority is an error, as for accuracy), and the risk-coverage curve."""
    rows, curves = [], []
    for stratum, at, q in aligned_strata(refs, image_id, probs, where):
        confidence = q.max(axis=1)
        error = ~correct(q, refs.human_class[at])
        area = selective.aurc(confidence, error)
        rows += [
            (stratum, "aurc", area, len(q)),
            (stratum, "eaurc", area - selective.optimal_aurc(error), len(q)),
        ]
        coverage, risk = selective.risk_coverage(confidence, error)
        curves.append(pd.DataFrame({"stratum": stratum, "coverage": coverage, "risk": risk}))
    return (
        pd.DataFrame(rows, columns=["stratum", "metric", "value", "n_images"]),
        pd.concat(curves, ignore_index=True),
    )


def disagreement_views(refs: References, image_id: np.ndarray, probs: np.ndarray, where: str) -> pd.DataFrame:
    """hlv_auroc: AUROC of the predictive entropy for HLV vs NoHLV images;
    entropy_spearman: Spearman rho between the predictive entropy and the entropy of
    the human soft reference (the ten digits renormalised, as KL uses it; images
    without digit mass left out). A view that is undefined here (one class only,
    or a constant entropy) is left out rather than written as a number."""
    pos, q = aligned(refs, image_id, probs, where)
    predictive = entropy(q / q.sum(axis=1, keepdims=True), axis=1)
    rows = []
    hlv = refs.hlv[pos]
    if hlv.any() and not hlv.all():
        rows.append(("hlv_auroc", selective.auroc(predictive, hlv), len(pos)))
    soft = refs.has_soft[pos]
    # human_soft is renormalised once already (References): again would split equal entropies by rounding
    human = entropy(refs.human_soft[pos[soft]], axis=1)
    if soft.sum() > 2 and np.ptp(human) > 0 and np.ptp(predictive[soft]) > 0:
        rows.append(("entropy_spearman", float(spearmanr(predictive[soft], human).statistic), int(soft.sum())))
    return pd.DataFrame(rows, columns=["metric", "value", "n_images"])
