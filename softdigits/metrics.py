"""Test-set metrics of a model's predicted distributions against reference labels.

Conventions, stated once and applied by every function here:
- KL(p || q) is in nats, p the reference (human) distribution, q the model's.
  Terms with p_k = 0 contribute 0 (0 log 0 = 0). q is clipped below at `eps`
  and renormalised, so a class the model gives numerically zero probability
  costs a large but finite penalty instead of an infinite one.
- Brier score is the multiclass one, summed over classes: sum_k (q_k - t_k)^2,
  in [0, 2] per image, averaged over images.
- ECE uses equal-width bins of the top-class probability (right-closed, the
  first bin also holds 0): sum_b n_b / N * |accuracy_b - mean confidence_b|.
- The model has 10 outputs; a reference class 10 ("not a digit") can never be
  predicted, so it counts as wrong for accuracy and ECE, and for Brier the
  model's output is padded with a zero not-a-digit probability.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import entropy, spearmanr  # entropy in nats, 0 log 0 = 0

from softdigits import selective, targets, temperature
from softdigits.io import (
    NOT_A_DIGIT, N_DIGITS, N_HUMAN_CLASSES, DataContractError, read_metadata, vectors_array,
)

DEFAULT_EPS = 1e-8


def clip_probs(q: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Model probabilities clipped below at `eps` and renormalised per row."""
    q = np.maximum(np.asarray(q, dtype=np.float64), eps)
    return q / q.sum(axis=1, keepdims=True)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Per-row KL(p || q) in nats, with 0 log 0 = 0 and q clipped at `eps`."""
    p = np.asarray(p, dtype=np.float64)
    q = clip_probs(q, eps)
    safe_p = np.where(p > 0, p, 1.0)  # log(1) = 0 where p_k = 0: the term vanishes
    return np.sum(np.where(p > 0, p * (np.log(safe_p) - np.log(q)), 0.0), axis=1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen-Shannon divergence in bits (base 2): a divergence in [0, 1].

    JSD = KL(p || m)/2 + KL(q || m)/2 with m = (p + q)/2; not scipy's
    `jensenshannon`, which returns the square root (a distance). No clipping
    is needed: m_k > 0 wherever p_k > 0 or q_k > 0.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl2(a):
        ratio = np.where(a > 0, a / np.where(m > 0, m, 1.0), 1.0)
        return np.sum(np.where(a > 0, a * np.log2(ratio), 0.0), axis=1)

    return np.clip((kl2(p) + kl2(q)) / 2, 0.0, 1.0)


def pad_classes(q: np.ndarray, width: int) -> np.ndarray:
    """Append zero-probability columns to `q` up to `width` classes."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[1] > width:
        raise ValueError(f"cannot pad {q.shape[1]} classes down to {width}")
    return np.pad(q, ((0, 0), (0, width - q.shape[1])))


def one_hot(labels: np.ndarray, width: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    out = np.zeros((len(labels), width))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def brier(q: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-row multiclass Brier score, summed over classes (q padded to the target's width)."""
    target = np.asarray(target, dtype=np.float64)
    q = pad_classes(q, target.shape[1])
    return np.sum((q - target) ** 2, axis=1)


def correct(q: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row top-1 correctness; a label the model cannot output (e.g. 10) is wrong."""
    return np.argmax(q, axis=1) == np.asarray(labels)


def reliability_bins(q: np.ndarray, labels: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Equal-width bins of top-class probability: count, mean confidence, accuracy per bin."""
    q = np.asarray(q, dtype=np.float64)
    confidence = q.max(axis=1)
    hit = correct(q, labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=hit, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": np.arange(n_bins) / n_bins,
            "upper": np.arange(1, n_bins + 1) / n_bins,
            "count": count,
            "mean_confidence": mean_conf,
            "accuracy": accuracy,
        }
    )


def expected_calibration_error(q: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    bins = reliability_bins(q, labels, n_bins)
    filled = bins[bins["count"] > 0]
    gap = (filled["accuracy"] - filled["mean_confidence"]).abs()
    return float((filled["count"] * gap).sum() / max(len(q), 1))


# ------------------------------------------------------------ the study table

STUDY_VECTORS = {
    "label_dist": N_DIGITS,
    "soft_label": N_HUMAN_CLASSES,
    "soft_label_yes_unc_equal": N_HUMAN_CLASSES,
}
STUDY_SCALARS = ["image_id", "split", "label", "soft_label_argmax", "human_uncert_mean",
                 "pct_ann_unsure", "hlv", "simulated"]
LABELS_ORIGINS = ("simulated", "campaign", "released")


def read_study(path: str | os.PathLike) -> pd.DataFrame:
    """The study-table columns evaluation needs (no pixels), checked; errors name file and column."""
    columns = STUDY_SCALARS + list(STUDY_VECTORS)
    present = set(pq.read_schema(path).names)
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataContractError(f"{path}: study table lacks column(s) {missing}")
    study = pq.read_table(path, columns=columns).to_pandas()
    for column, width in STUDY_VECTORS.items():
        lengths = study[column].map(len)
        if (lengths != width).any():
            row = int(np.flatnonzero(lengths != width)[0])
            raise DataContractError(f"{path}: row {row}: {column} has {lengths.iloc[row]} values, expected {width}")
    bad = ~study["soft_label_argmax"].between(0, NOT_A_DIGIT)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataContractError(f"{path}: row {row}: soft_label_argmax {study['soft_label_argmax'].iloc[row]} not in 0-10")
    if study["image_id"].duplicated().any():
        dup = study.loc[study["image_id"].duplicated(), "image_id"].iloc[0]
        raise DataContractError(f"{path}: image_id {dup!r} occurs more than once")
    return study


def labels_origin(path: str | os.PathLike) -> str:
    """Where a study table's human labels come from: simulated, campaign or released.

    The metadata `labels_origin` and the per-row `simulated` flags must agree;
    a table that mixes them, or says nothing, is an error (a caption must
    never call simulated labels human).
    """
    origin = read_metadata(path).get("labels_origin")
    if origin not in LABELS_ORIGINS:
        raise DataContractError(f"{path}: metadata labels_origin is {origin!r}, expected one of {LABELS_ORIGINS}")
    flags = pq.read_table(path, columns=["simulated"]).column("simulated").to_numpy()
    if flags.any() != (origin == "simulated") or (origin == "simulated" and not flags.all()):
        raise DataContractError(
            f"{path}: metadata labels_origin={origin!r} disagrees with the 'simulated' column"
        )
    return origin


def labels_sentence(origins: dict[str, str]) -> str:
    """One sentence for captions and reports: are the human labels real or simulated?"""
    words = {
        "simulated": "SIMULATED (a simulated annotator panel, not human data)",
        "campaign": "real human annotations (imported annotation campaign)",
        "released": "real human annotations (the released soft-digits labels)",
    }
    if not origins:
        return "Human labels: not yet known (the study tables have not been built)."
    kinds = set(origins.values())
    if len(kinds) == 1:
        return f"Human labels: {words[kinds.pop()]}."
    parts = "; ".join(f"{corpus}: {words[o]}" for corpus, o in sorted(origins.items()))
    return f"Human labels: {parts}."


def study_origins(paths: dict[str, str | os.PathLike]) -> dict[str, str]:
    """Corpus -> labels origin, for the study tables that exist (empty before they are built)."""
    return {corpus: labels_origin(p) for corpus, p in paths.items() if Path(p).exists()}


# ------------------------------------------------------------ references and a run

NOT_A_DIGIT_MODES = targets.NOT_A_DIGIT_MODES
STRATA = ("all", "HLV", "NoHLV")


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

    def strata(self) -> dict[str, np.ndarray]:
        return {"all": np.ones(len(self), bool), "HLV": self.hlv, "NoHLV": ~self.hlv}

    def align(self, image_id: np.ndarray, where: str) -> np.ndarray:
        """Row positions of `image_id` in the references; error naming the unknown id."""
        image_id = pd.Index(image_id)
        missing = ~image_id.isin(self.position.index)
        if missing.any():
            raise ValueError(f"{where}: image_id {image_id[missing][0]!r} is not in the study table")
        return self.position.loc[image_id].to_numpy()


def check_probs(probs: np.ndarray, where: str, tol: float = 1e-3) -> None:
    """Model outputs must be finite, non-negative rows of 10 that sum to 1."""
    if probs.ndim != 2 or probs.shape[1] != N_DIGITS:
        raise ValueError(f"{where}: probs must have {N_DIGITS} columns, got shape {probs.shape}")
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
    bad |= np.abs(probs.sum(axis=1) - 1) > tol
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: row {row} is not a probability vector: {probs[row].tolist()}")


def aligned(refs: References, image_id: np.ndarray, probs: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(reference positions, probs as float64) of checked predictions, less the images
    the references exclude (not-a-digit majority under "exclude")."""
    probs = np.asarray(probs, dtype=np.float64)
    check_probs(probs, where)
    kept = ~pd.Index(image_id).isin(list(refs.excluded_ids))
    return refs.align(np.asarray(image_id)[kept], where), probs[kept]


def evaluate_predictions(
    refs: References, image_id: np.ndarray, probs: np.ndarray, *, n_bins: int, eps: float, where: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every metric of one run on one split, per evaluation set and stratum.

    Returns (metrics: eval_set, stratum, metric, value, n_images) and
    (reliability bins against the human majority, per stratum). Predictions of
    images that the references exclude (not-a-digit majority under "exclude")
    are dropped here.
    """
    pos, probs = aligned(refs, image_id, probs, where)
    rows, bins = [], []
    for stratum, mask in refs.strata().items():
        keep = mask[pos]
        if not keep.any():
            continue
        q, at = probs[keep], pos[keep]

        def add(eval_set, metric, values):
            rows.append((eval_set, stratum, metric, float(np.mean(values)), len(values)))

        add("orig", "accuracy", correct(q, refs.orig_class[at]))
        add("orig", "kl", kl_divergence(refs.orig_dist[at], q, eps))
        add("orig", "brier", brier(q, refs.orig_dist[at]))
        rows.append(("orig", stratum, "ece", expected_calibration_error(q, refs.orig_class[at], n_bins), len(q)))
        human = refs.human_class[at]
        add("human", "accuracy", correct(q, human))
        add("human", "brier", brier(q, one_hot(human, N_HUMAN_CLASSES)))
        rows.append(("human", stratum, "ece", expected_calibration_error(q, human, n_bins), len(q)))
        soft = refs.has_soft[at]
        if soft.any():
            add("human_soft", "kl", kl_divergence(refs.human_soft[at][soft], q[soft], eps))
            add("human_soft", "brier", brier(q[soft], refs.human_soft[at][soft]))
        bins.append(reliability_bins(q, human, n_bins).assign(stratum=stratum, eval_set="human"))
    metrics = pd.DataFrame(rows, columns=["eval_set", "stratum", "metric", "value", "n_images"])
    return metrics, pd.concat(bins, ignore_index=True)


def read_predictions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image_id, split, probs (n, 10)) of a run's test_performance_predictions file."""
    table = pq.read_table(path, columns=["image_id", "split", "probs"])
    return (table.column("image_id").to_numpy(zero_copy_only=False),
            table.column("split").to_numpy(zero_copy_only=False), vectors_array(table, "probs"))


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
    refs = References(read_study(study_path), human_column, not_a_digit)
    metric_frames, bin_frames = [], []
    for model, target, seed, path in runs:
        image_id, split, probs = read_predictions(path)
        keys = {"model": model, "target": target, "seed": int(seed)}
        for name in splits:
            rows = split == name
            if not rows.any():
                raise DataContractError(f"{path}: no predictions for split {name!r}")
            m, b = evaluate_predictions(refs, image_id[rows], probs[rows], n_bins=n_bins, eps=eps,
                                        where=f"{path} ({name})")
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
    shuffle_seed: int,
    splits: list[str],
    n_bins: int,
    eps: float,
) -> dict[str, pd.DataFrame]:
    """Temperature scaling, selective prediction and disagreement detection of every run.

    Per run: T fitted on the usable val images against the targets the run was
    trained on (targets.build_targets, the same code as training); then, per
    split, the metrics of the scaled predictions (the layout of `evaluate_runs`'
    metrics) and, for the raw ("none") and scaled ("temperature") predictions,
    the selective and disagreement views. Returns the frames `temperature`,
    `metrics_temperature`, `selective`, `risk_coverage` and `disagreement`.
    """
    refs = References(read_study(study_path), human_column, not_a_digit)
    study = targets.read_study(study_path)
    position = pd.Index(study.image_id)
    frames: dict[str, list[pd.DataFrame]] = {k: [] for k in ("temperature", "metrics_temperature", "selective",
                                                             "risk_coverage", "disagreement")}
    for model, target, seed, path in runs:
        image_id, split, probs = read_predictions(path)
        check_probs(probs, str(path))
        logits = temperature.logits_from_probs(probs)
        fit = fit_run_temperature(study, position, target, not_a_digit, shuffle_seed, image_id, split, logits, path)
        keys = {"model": model, "target": target, "seed": int(seed)}
        frames["temperature"].append(pd.DataFrame([{**keys, "temperature": fit.temperature,
                                                    "val_nll_before": fit.nll_before, "val_nll_after": fit.nll_after,
                                                    "at_bound": fit.at_bound, "n_images": fit.n_images}]))
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


def fit_run_temperature(study, position: pd.Index, target: str, not_a_digit: str, shuffle_seed: int,
                        image_id: np.ndarray, split: np.ndarray, logits: np.ndarray, path) -> temperature.TemperatureFit:
    """T of one run: its val predictions against the val targets it was trained on (usable images only)."""
    built = targets.build_targets(study, target, not_a_digit, shuffle_seed=shuffle_seed)
    val = split == "val"
    at = position.get_indexer(image_id[val])
    if (at < 0).any():
        raise DataContractError(f"{path}: image_id {image_id[val][at < 0][0]!r} is not in the study table")
    usable = built.usable[at]
    if not usable.any():
        raise DataContractError(f"{path}: no val prediction has a {target!r} target to fit the temperature on")
    return temperature.fit_temperature(logits[val][usable], built.values[at][usable])


def selective_views(refs: References, image_id: np.ndarray, probs: np.ndarray, where: str
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per stratum: AURC and E-AURC (max probability vs errors against the human majority;
    a not-a-digit majority is an error, as for accuracy), and the risk-coverage curve."""
    pos, q = aligned(refs, image_id, probs, where)
    rows, curves = [], []
    for stratum, mask in refs.strata().items():
        keep = mask[pos]
        if not keep.any():
            continue
        confidence = q[keep].max(axis=1)
        error = ~correct(q[keep], refs.human_class[pos[keep]])
        area = selective.aurc(confidence, error)
        rows += [(stratum, "aurc", area, int(keep.sum())),
                 (stratum, "eaurc", area - selective.optimal_aurc(error), int(keep.sum()))]
        coverage, risk = selective.risk_coverage(confidence, error)
        curves.append(pd.DataFrame({"stratum": stratum, "coverage": coverage, "risk": risk}))
    return (pd.DataFrame(rows, columns=["stratum", "metric", "value", "n_images"]),
            pd.concat(curves, ignore_index=True))


def disagreement_views(refs: References, image_id: np.ndarray, probs: np.ndarray, where: str) -> pd.DataFrame:
    """hlv_auroc: AUROC of the predictive entropy for HLV vs NoHLV images;
    entropy_spearman: Spearman rho between the predictive entropy and the entropy of
    the human soft reference (the ten digits renormalised, as KL uses it; images
    without digit mass left out). A view that is undefined here (one class only,
    or a constant entropy) is left out rather than written as a number."""
    pos, q = aligned(refs, image_id, probs, where)
    predictive = entropy(q, axis=1)
    rows = []
    hlv = refs.hlv[pos]
    if hlv.any() and not hlv.all():
        rows.append(("hlv_auroc", selective.auroc(predictive, hlv), len(pos)))
    soft = refs.has_soft[pos]
    human = entropy(refs.human_soft[pos[soft]], axis=1)
    if soft.sum() > 2 and np.ptp(human) > 0 and np.ptp(predictive[soft]) > 0:
        rows.append(("entropy_spearman", float(spearmanr(predictive[soft], human).statistic), int(soft.sum())))
    return pd.DataFrame(rows, columns=["metric", "value", "n_images"])
