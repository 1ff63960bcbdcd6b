"""QC and aggregation of Yes/No/Unsure answers into image-level soft labels.

Paper section 2.3 and Appendix C, on a validated raw table (see
`softdigits.annotation.answers.read_raw_annotations`):

1. QC: an annotator who fails any attention check is excluded entirely (all of
   their answers). A check is passed when the annotator says "yes" to the gold
   digit and "yes" to no other digit ("unsure" elsewhere is tolerated).
2. Per annotator and image, three weightings of the ten answers: equal
   (yes=1, unsure=1), uncertainty weighted (yes=1, unsure=0.5) and yes-only
   (yes=1, unsure=0). A vector of zeros puts all its mass on the not-a-digit
   class (index 10); each vector is normalised to sum to one.
3. Per image, the mean over annotators of each vector; `human_uncert_mean` is the
   mean of (number of unsure answers / 10); `pct_ann_unsure` the fraction of
   annotators with at least one unsure answer.
4. `soft_label_argmax`: the argmax of the uncertainty-weighted label. Ties are
   broken by the yes-only label (more confident "yes" mass wins), then by the
   lowest class index (so a digit beats the not-a-digit class).
5. `hlv` (human label variation): the uncertainty-weighted label is not one-hot,
   i.e. NoHLV means every annotator gave the same single "yes" and no "unsure"
   (or every annotator rejected every digit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits.constants import N_DIGITS, N_HUMAN_CLASSES, NOT_A_DIGIT, RESPONSES
from softdigits.errors import KnownError
from softdigits.io import vectors_array, vectors_column

# Weight of (no, unsure, yes) in each soft label, keyed by the released column name.
WEIGHTINGS = {
    "soft_label": (0.0, 0.5, 1.0),
    "soft_label_yes_unc_equal": (0.0, 1.0, 1.0),
    "soft_label_yes_only": (0.0, 0.0, 1.0),
}
TIE_TOLERANCE = 1e-9
LABEL_COLUMNS = [
    "image_id",
    "soft_label",
    "soft_label_yes_unc_equal",
    "soft_label_yes_only",
    "soft_label_argmax",
    "human_uncert_mean",
    "pct_ann_unsure",
    "n_annotators",
    "hlv",
    "simulated",
]


class AggregationError(KnownError, ValueError):
    """Nothing is left to aggregate (e.g. every annotator failed an attention check)."""


@dataclass(frozen=True)
class QCReport:
    """Who was excluded by the attention checks."""

    n_annotators: int
    failed_annotators: tuple[str, ...]
    n_attention_rows: int

    @property
    def n_excluded(self) -> int:
        return len(self.failed_annotators)

    def as_dict(self) -> dict:
        return {
            "n_annotators": self.n_annotators,
            "n_excluded_attention": self.n_excluded,
            "excluded_annotators": list(self.failed_annotators),
        }


def response_codes(responses: pd.Series) -> np.ndarray:
    """'no'/'unsure'/'yes' as 0/1/2 (responses are validated on import)."""
    return pd.Categorical(responses, categories=RESPONSES).codes.astype(np.int8)


def attention_checks(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (annotator, attention-check image) answered: columns annotator_id,
    image_id, passed (a "yes" to the gold digit and a "yes" to no other digit)."""
    checks = raw[raw["is_attention_check"]]
    if not len(checks):
        return pd.DataFrame({"annotator_id": [], "image_id": [], "passed": pd.Series([], dtype=bool)})
    codes = response_codes(checks["response"])
    is_gold = checks["class"].to_numpy() == checks["gold_label"].to_numpy()
    yes = codes == 2
    per_item = (
        pd.DataFrame(
            {
                "annotator_id": checks["annotator_id"].to_numpy(),
                "image_id": checks["image_id"].to_numpy(),
                "gold_yes": yes & is_gold,
                "other_yes": yes & ~is_gold,
            }
        )
        .groupby(["annotator_id", "image_id"], sort=False)
        .agg(gold_yes=("gold_yes", "any"), other_yes=("other_yes", "any"))
    )
    per_item["passed"] = per_item["gold_yes"] & ~per_item["other_yes"]
    return per_item.reset_index()[["annotator_id", "image_id", "passed"]]


def attention_failures(raw: pd.DataFrame) -> QCReport:
    """The annotators who failed at least one attention check."""
    checks = attention_checks(raw)
    failed = set(checks.loc[~checks["passed"], "annotator_id"])
    return QCReport(
        n_annotators=int(raw["annotator_id"].nunique()),
        failed_annotators=tuple(sorted(failed)),
        n_attention_rows=int(raw["is_attention_check"].sum()),
    )


def answer_matrix(raw: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (annotator, image): the keys and an (n, 10) matrix of response codes.

    Assumes a validated table: every (annotator, image) answered each class once.
    """
    table = raw[["annotator_id", "image_id", "class"]].copy()
    table["code"] = response_codes(raw["response"])
    wide = table.pivot(index=["image_id", "annotator_id"], columns="class", values="code")
    wide = wide.reindex(columns=range(N_DIGITS)).sort_index()
    keys = wide.index.to_frame(index=False)
    return keys, wide.to_numpy(dtype=np.int8)


def annotator_soft_labels(codes: np.ndarray, weights: tuple[float, float, float]) -> np.ndarray:
    """(n, 10) response codes -> (n, 11) normalised distributions (zeros -> not a digit)."""
    digit_mass = np.asarray(weights, dtype=np.float64)[codes]
    vectors = np.zeros((len(codes), N_HUMAN_CLASSES))
    vectors[:, :N_DIGITS] = digit_mass
    empty = digit_mass.sum(axis=1) == 0
    vectors[empty, NOT_A_DIGIT] = 1.0
    return vectors / vectors.sum(axis=1, keepdims=True)


def soft_label_argmax(soft_label: np.ndarray, yes_only: np.ndarray) -> np.ndarray:
    """Argmax of `soft_label`; ties -> higher yes-only mass, then the lowest class index."""
    top = soft_label.max(axis=1, keepdims=True)
    tied = soft_label >= top - TIE_TOLERANCE
    tie_break = np.where(tied, yes_only, -np.inf)
    best = tie_break.max(axis=1, keepdims=True)
    return np.argmax(tied & (tie_break >= best - TIE_TOLERANCE), axis=1)


def is_one_hot(vectors: np.ndarray) -> np.ndarray:
    return vectors.max(axis=1) >= 1.0 - TIE_TOLERANCE


def aggregate(raw: pd.DataFrame) -> tuple[pd.DataFrame, QCReport]:
    """QC then aggregation: one row per non-check image, columns `LABEL_COLUMNS`."""
    qc = attention_failures(raw)
    kept = raw[~raw["is_attention_check"] & ~raw["annotator_id"].isin(qc.failed_annotators)]
    if kept.empty:
        if qc.n_excluded and qc.n_excluded == qc.n_annotators:
            raise AggregationError(
                f"all {qc.n_annotators} annotator(s) failed an attention check "
                f"({', '.join(qc.failed_annotators[:5])}{', ...' if qc.n_excluded > 5 else ''}): "
                "no answers are left to aggregate; check the gold_label column"
            )
        raise AggregationError("the file holds only attention-check answers: no study images to aggregate")
    keys, codes = answer_matrix(kept)
    image_ids = keys["image_id"].to_numpy()
    images, group = np.unique(image_ids, return_inverse=True)
    counts = np.bincount(group, minlength=len(images))

    def image_mean(per_annotator: np.ndarray) -> np.ndarray:
        sums = np.zeros((len(images),) + per_annotator.shape[1:])
        np.add.at(sums, group, per_annotator)
        return sums / counts.reshape((-1,) + (1,) * (per_annotator.ndim - 1))

    labels = {name: image_mean(annotator_soft_labels(codes, w)) for name, w in WEIGHTINGS.items()}
    n_unsure = (codes == 1).sum(axis=1)
    simulated = _simulated_per_image(kept, images)
    out = pd.DataFrame(
        {
            "image_id": images.astype(object),
            **{name: list(v.astype(np.float32)) for name, v in labels.items()},
            "soft_label_argmax": soft_label_argmax(labels["soft_label"], labels["soft_label_yes_only"]).astype(
                np.int64
            ),
            "human_uncert_mean": image_mean(n_unsure / N_DIGITS),
            "pct_ann_unsure": image_mean((n_unsure > 0).astype(float)),
            "n_annotators": counts.astype(np.int64),
            "hlv": ~is_one_hot(labels["soft_label"]),
            "simulated": simulated,
        }
    )
    return out[LABEL_COLUMNS], qc


def _simulated_per_image(raw: pd.DataFrame, images: np.ndarray) -> np.ndarray:
    """True for an image when any of its kept answers came from a simulated annotator."""
    if "simulated" not in raw.columns:
        return np.zeros(len(images), dtype=bool)
    flag = raw.groupby("image_id")["simulated"].any()
    return flag.reindex(images).fillna(False).to_numpy(dtype=bool)


def labels_table(labels: pd.DataFrame) -> pa.Table:
    """Aggregated labels (`LABEL_COLUMNS`) as Arrow, with fixed-size (11) vector columns."""
    vectors = {
        name: vectors_column(np.stack(labels[name].to_numpy()).reshape(-1, N_HUMAN_CLASSES).astype(np.float32))
        for name in WEIGHTINGS
    }
    return pa.table(
        {
            "image_id": pa.array(labels["image_id"], pa.string()),
            **vectors,
            "soft_label_argmax": pa.array(labels["soft_label_argmax"], pa.int64()),
            "human_uncert_mean": pa.array(labels["human_uncert_mean"], pa.float64()),
            "pct_ann_unsure": pa.array(labels["pct_ann_unsure"], pa.float64()),
            "n_annotators": pa.array(labels["n_annotators"], pa.int64()),
            "hlv": pa.array(labels["hlv"], pa.bool_()),
            "simulated": pa.array(labels["simulated"], pa.bool_()),
        }
    )


def read_labels(path) -> pd.DataFrame:
    """A labels Parquet file as a DataFrame whose vector cells are numpy arrays."""
    table = pq.read_table(path)
    missing = [c for c in LABEL_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: labels table lacks column(s) {missing}")
    df = table.select(LABEL_COLUMNS).to_pandas()
    for name in WEIGHTINGS:
        df[name] = list(vectors_array(table, name).astype(np.float32))
    return df
