"""A simulated annotator panel: SIMULATED answers, never to be presented as human data.

It answers an exported campaign (`annotation.campaign.design_campaign`) the way the paper's
Yes/No/Unsure task is answered, and writes the same raw table as a real campaign
with `simulated = True`.

Generative model
----------------
Perceptual signal per image (10 class strengths summing to one). It comes from what
the image shows, never from a model the study trains (SimpleFFN, DeeperFFN, LeNet-5)
nor from the generator's labelling ensemble (which made the synthetic labels):

- k-NN over real digits, an exemplar model of categorisation: the class make-up of
  the image's `knn_k` nearest MNIST *training* images (their labels are the writers'
  own; the image itself excluded when it is one of them), each neighbour voting
  exp(-(d^2 / d_1^2 - 1) / `knn_tau`) (uniform at 0), d_1 the nearest distance. The
  distance is squared Euclidean on a coarse view of the digit: `knn_pool` x
  `knn_pool` block means of the 0-255 pixels (people judge a digit's overall shape,
  not the stroke-level detail a pixel classifier uses). With many neighbours (a few
  hundred of 60,000) a clear digit is surrounded by its own class, while a blend of
  two digits sits between both parents' classes and draws votes from each, so
  people split on it and some of them read the other parent.
- with a generation record (generated Ambiguous-MNIST): a weak prior, the parents'
  classes weighted by their mixing weights, with weight `record_weight` (small; the
  k-NN has the rest). The latent mixture is not a pixel blend, so the record is a
  poor guide to what the decoded image shows; the image is the main signal.
- without one (e.g. MNIST): the original label, with weight `label_weight`, blended
  with the k-NN (a human sees the digit the writer meant on most images).

`annotation.panel_check` checks the result: the panel's majority labels must be
learnable from the pixels far better than from the generation records.

Annotators: each participant has a yes threshold, an unsure threshold (below it
"no"), a perception noise and a speed, drawn once. On an image, the perceived
strength of class c is `signal_c + noise * N(0, 1)`. The strongest perceived class
gets "yes" above `sure` and "unsure" above `floor` (below it: "no", so an image can
be rejected as not a digit); every other class gets "yes" above the annotator's yes
threshold, "unsure" above their unsure threshold, else "no". A lapse replaces an
answer by a random one. An inattentive participant answers at random throughout,
and so fails attention checks. Recruitment: each task list is completed by one
participant, or by none (returned) or two (over-recruited), which spreads the
annotations per image around the configured number. Reaction time per answer:
the participant's speed, slower when the two strongest perceived classes are
close, with log-normal noise.

Limits: the signal is a proxy for perception (distance between coarse views is not
how people see digits); annotators are independent given
the image; lapses are uniform; gold checks are treated like any other image. The
defaults were calibrated (bench/annotation_calibration.py) so that the paper's
Table 1 statistics are roughly matched, which makes those statistics an input of
the simulation, not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from softdigits import io
from softdigits.constants import N_DIGITS, RESPONSES

RESPONSE_NAMES = np.array(RESPONSES, dtype=object)  # answer codes 0, 1, 2


@dataclass(frozen=True)
class PanelParams:
    """Population parameters of the simulated panel (config `annotation.simulation`)."""

    sure: float  # the strongest class is a "yes" above this perceived strength
    floor: float  # ... "unsure" above this, else "no"
    yes_mean: float  # other classes: mean of the per-annotator yes threshold
    unsure_mean: float  # other classes: mean of the per-annotator unsure threshold
    yes_sd: float  # between-annotator sd of the yes threshold
    unsure_sd: float  # between-annotator sd of the unsure threshold (unsure propensity)
    noise_mean: float  # mean perception noise (sd of the perceived strength)
    noise_sd: float  # between-annotator sd of the perception noise
    lapse_rate: float  # per answer: a random response instead
    inattentive_rate: float  # per participant: answers everything at random
    returned_rate: float  # per task list: nobody completes it
    duplicate_rate: float  # per task list: two participants complete it
    rt_base_ms: float  # median reaction time per answer
    rt_speed_sd: float  # between-annotator log-sd of speed
    rt_conflict: float  # log-slowdown when the two strongest classes tie
    rt_noise_sd: float  # per answer log-sd

    @classmethod
    def from_config(cls, cfg: dict) -> PanelParams:
        return cls(**{f.name: float(cfg[f.name]) for f in fields(cls)})


# ------------------------------------------------------------------ signal


def nearest_digits(
    query: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    k: int,
    query_rows: np.ndarray | None = None,
    chunk: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest reference images of each query: (labels, squared distances), (n, k)
    each, nearest first (all the others when the reference holds fewer than k).

    `query_rows[i]` is the row of query i in `reference` (or -1), which is skipped so
    that an image is not its own neighbour. Squared Euclidean distance on pixels.

    In float64: on whole-number inputs (pixels, block sums) every product and partial
    sum is an exact integer, so the matrix product gives the same bits however BLAS
    splits it over threads (in float32 two of 6,440 reaction times differed between
    1 and 2 threads).
    """
    ref = np.asarray(reference, dtype=np.float64)
    ref_sq = (ref**2).sum(axis=1)
    q = np.asarray(query, dtype=np.float64)
    # a small reference (a tiny test run) has fewer than k other images: take them all
    k = min(int(k), len(ref) - (1 if query_rows is not None else 0))
    labels = np.zeros((len(q), k), dtype=np.int64)
    dist2 = np.zeros((len(q), k))
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        dist = ref_sq[None, :] - 2.0 * block @ ref.T + (block**2).sum(axis=1)[:, None]
        if query_rows is not None:
            rows = np.asarray(query_rows[start : start + chunk])
            own = rows >= 0
            dist[np.flatnonzero(own), rows[own]] = np.inf
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        d = np.take_along_axis(dist, nearest, axis=1)
        order = np.argsort(d, axis=1, kind="stable")
        labels[start : start + len(block)] = reference_labels[np.take_along_axis(nearest, order, axis=1)]
        dist2[start : start + len(block)] = np.maximum(np.take_along_axis(d, order, axis=1), 0.0)
    return labels, dist2


def pooled(pixels: np.ndarray, pool: int) -> np.ndarray:
    """(n, (28 / pool)^2): each pool x pool block of the 28 x 28 image summed (pool 1: as is).

    A coarse view of the digit: its overall shape without the stroke-level detail
    that a pixel classifier relies on. Sums, not means, so that the values stay whole
    numbers and `nearest_digits` exact (the means' squared distances are the sums'
    divided by pool^4).
    """
    if pool == 1:
        return np.asarray(pixels, dtype=np.float64)
    if 28 % pool:
        raise ValueError(f"knn_pool must divide 28, got {pool}")
    side = 28 // pool
    blocks = np.asarray(pixels, dtype=np.int64).reshape(-1, side, pool, side, pool)
    return blocks.sum(axis=(2, 4)).reshape(len(pixels), side * side).astype(np.float64)


def kernel_class_distribution(labels: np.ndarray, dist2: np.ndarray, tau: float) -> np.ndarray:
    """(n, 10): the neighbours' votes, each weighted by exp(-(d^2 / d_1^2 - 1) / tau).

    d_1 is the image's nearest-neighbour distance, so the kernel's width is relative
    to how close the image is to any real digit. A blend of two digits has
    neighbours of both parents' classes at similar distances, and both get votes;
    a clear digit's nearest neighbours dominate. tau = 0 means uniform votes.
    """
    if tau <= 0:
        weights = np.ones_like(dist2)
    else:
        ratio = dist2 / np.maximum(dist2[:, :1], 1e-9)
        weights = np.exp(-(ratio - 1.0) / tau)
    out = np.zeros((len(labels), N_DIGITS))
    for c in range(N_DIGITS):
        out[:, c] = np.where(labels == c, weights, 0.0).sum(axis=1)
    return out / out.sum(axis=1, keepdims=True)


def knn_class_distribution(query, reference, reference_labels, k: int, query_rows=None, tau: float = 0.0) -> np.ndarray:
    """(n, 10) class distribution of each query's k nearest reference images
    (`nearest_digits` voted by `kernel_class_distribution`)."""
    labels, dist2 = nearest_digits(query, reference, reference_labels, k, query_rows)
    return kernel_class_distribution(labels, dist2, tau)


def record_class_distribution(parent_labels, mix_weights) -> np.ndarray:
    """(n, 10): each image's parents' classes weighted by their mixing weights."""
    out = np.zeros((len(parent_labels), N_DIGITS))
    for i, (labels, weights) in enumerate(zip(parent_labels, mix_weights)):
        np.add.at(out[i], np.asarray(labels, dtype=int), np.asarray(weights, dtype=float))
    return out / out.sum(axis=1, keepdims=True)


def reference_digits(table) -> tuple[pd.DataFrame, np.ndarray]:
    """The k-NN reference: the labelled *training* images of an MNIST images table.

    Returns (image_id, label) and their (n, 784) pixels. Training images only, so
    that the test images a panel may be asked about are never their own reference.
    """
    meta = table.select(["image_id", "source_split", "label"]).to_pandas()
    keep = np.flatnonzero((meta["source_split"] == "train").to_numpy() & (meta["label"] >= 0).to_numpy())
    if not len(keep):
        raise ValueError("the k-NN reference has no labelled training images")
    return meta.iloc[keep][["image_id", "label"]].reset_index(drop=True), io.pixels_array(table)[keep]


# ------------------------------------------------------------------ panel


def simulate_panel(
    tasks: pd.DataFrame,
    signal: dict[str, np.ndarray],
    params: PanelParams,
    seed: int,
    annotator_prefix: str = "sim",
) -> pd.DataFrame:
    """Answers to every task list (raw annotations contract, `simulated` = True).

    `tasks`: task_id, trial, image_id, is_attention_check, gold_label (as exported).
    `signal`: image_id -> 10 class strengths, for every image in the tasks.
    """
    rng = np.random.default_rng(seed)
    task_ids = sorted(tasks["task_id"].unique())
    completions = rng.choice(
        [0, 1, 2],
        size=len(task_ids),
        p=[params.returned_rate, 1 - params.returned_rate - params.duplicate_rate, params.duplicate_rate],
    )
    frames = []
    n_participants = 0
    by_task = {tid: t.sort_values("trial") for tid, t in tasks.groupby("task_id")}
    for task_id, n_done in zip(task_ids, completions):
        for _ in range(n_done):
            n_participants += 1
            annotator_id = f"{annotator_prefix}-{n_participants:05d}"
            frames.append(_answer_task(by_task[task_id], signal, params, rng, annotator_id))
    columns = [
        "annotator_id",
        "image_id",
        "class",
        "response",
        "is_attention_check",
        "reaction_time_ms",
        "gold_label",
        "simulated",
    ]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _answer_task(
    task: pd.DataFrame, signal: dict[str, np.ndarray], p: PanelParams, rng: np.random.Generator, annotator_id: str
) -> pd.DataFrame:
    """One participant answers one task list: rows for every (image, class)."""
    n = len(task)
    strength = np.stack([signal[i] for i in task["image_id"]])  # (n, 10)
    yes_t = p.yes_mean + p.yes_sd * rng.standard_normal()
    unsure_t = min(p.unsure_mean + p.unsure_sd * rng.standard_normal(), yes_t)
    noise = max(0.0, p.noise_mean + p.noise_sd * rng.standard_normal())
    speed = p.rt_base_ms * np.exp(p.rt_speed_sd * rng.standard_normal())
    inattentive = rng.random() < p.inattentive_rate

    perceived = strength + noise * rng.standard_normal((n, N_DIGITS))
    order = np.argsort(-perceived, axis=1)
    top = order[:, 0]
    rows = np.arange(n)
    codes = np.where(perceived >= yes_t, 2, np.where(perceived >= unsure_t, 1, 0))
    top_value = perceived[rows, top]
    codes[rows, top] = np.where(top_value >= p.sure, 2, np.where(top_value >= p.floor, 1, 0))
    random_codes = rng.choice(3, size=(n, N_DIGITS), p=[0.7, 0.1, 0.2])
    lapse = np.full((n, N_DIGITS), inattentive) | (rng.random((n, N_DIGITS)) < p.lapse_rate)
    codes = np.where(lapse, random_codes, codes)

    gap = np.clip(top_value - perceived[rows, order[:, 1]], 0.0, 1.0)
    conflict = np.repeat((1.0 - gap)[:, None], N_DIGITS, axis=1)
    rt = speed * np.exp(p.rt_conflict * conflict + p.rt_noise_sd * rng.standard_normal((n, N_DIGITS)))

    image_ids = np.repeat(task["image_id"].to_numpy(dtype=object), N_DIGITS)
    is_check = np.repeat(task["is_attention_check"].to_numpy(dtype=bool), N_DIGITS)
    gold = np.repeat(task["gold_label"].to_numpy(), N_DIGITS)
    return pd.DataFrame(
        {
            "annotator_id": annotator_id,
            "image_id": image_ids,
            "class": np.tile(np.arange(N_DIGITS, dtype=np.int64), n),
            "response": RESPONSE_NAMES[codes.reshape(-1)],
            "is_attention_check": is_check,
            "reaction_time_ms": np.round(rt.reshape(-1), 1),
            "gold_label": pd.Series(gold, dtype="Int64").where(is_check),
            "simulated": True,
        }
    )


@dataclass(frozen=True)
class SignalParts:
    """The parts of the perceptual signal, before they are voted and blended."""

    image_ids: list[str]
    neighbour_labels: np.ndarray  # (n, k) classes of the nearest real digits, nearest first
    neighbour_dist2: np.ndarray  # (n, k) their squared pixel distances
    prior: np.ndarray  # (n, 10) the generation record, or the one-hot original label, or zeros
    from_record: np.ndarray  # (n,) the prior is a generation record

    def blend(self, *, label_weight: float, record_weight: float, knn_tau: float) -> dict[str, np.ndarray]:
        """image_id -> w * prior + (1 - w) * k-NN kernel, w by the kind of prior (0 without one)."""
        knn = kernel_class_distribution(self.neighbour_labels, self.neighbour_dist2, float(knn_tau))
        weight = np.where(self.from_record, float(record_weight), float(label_weight))
        weight = np.where(self.prior.sum(axis=1) > 0, weight, 0.0)
        signal = weight[:, None] * self.prior + (1.0 - weight[:, None]) * knn
        return dict(zip(self.image_ids, signal))


def signal_parts(
    images: pd.DataFrame,
    pixels: np.ndarray,
    image_ids: list[str],
    reference: pd.DataFrame,
    reference_pixels: np.ndarray,
    *,
    k: int,
    pool: int = 1,
    records: pd.DataFrame | None = None,
) -> SignalParts:
    """The k-NN and the prior of each of `image_ids`.

    `images` (image_id, label) and `pixels` (n, 784) hold the images to simulate;
    `reference` (image_id, label) and `reference_pixels` are the real digits of the
    k-NN (`reference_digits`). `records` (image_id, parent_labels, mix_weights), when
    given, is the prior of the images it covers; the others have their original label.
    """
    row_of = pd.Series(np.arange(len(images)), index=images["image_id"].to_numpy())
    missing = [i for i in image_ids if i not in row_of.index]
    if missing:
        raise ValueError(f"images to simulate missing from the corpus: {missing[:5]}")
    image_ids = list(image_ids)
    rows = row_of.loc[image_ids].to_numpy()
    in_reference = pd.Series(np.arange(len(reference)), index=reference["image_id"].to_numpy())
    own_rows = in_reference.reindex(image_ids).fillna(-1).to_numpy(dtype=np.int64)
    neighbour_labels, block_dist2 = nearest_digits(
        pooled(pixels[rows], pool),
        pooled(reference_pixels, pool),
        reference["label"].to_numpy(),
        k,
        query_rows=own_rows,
    )
    neighbour_dist2 = block_dist2 / float(pool) ** 4  # of the block means
    labels = images["label"].to_numpy()[rows]
    prior = np.zeros((len(rows), N_DIGITS))
    has_label = labels >= 0
    prior[np.flatnonzero(has_label), labels[has_label]] = 1.0
    covered = np.zeros(len(rows), dtype=bool)
    if records is not None and len(records):
        rec = records.set_index("image_id")
        covered = np.array([i in rec.index for i in image_ids])
        if covered.any():
            ids = [i for i, c in zip(image_ids, covered) if c]
            # The label of a generated image is the labelling ensemble's: never used.
            prior[covered] = record_class_distribution(rec.loc[ids, "parent_labels"], rec.loc[ids, "mix_weights"])
    return SignalParts(image_ids, neighbour_labels, neighbour_dist2, prior, covered)


def image_signal(
    images,
    pixels,
    image_ids,
    reference,
    reference_pixels,
    *,
    k: int,
    knn_tau: float,
    pool: int = 1,
    label_weight: float,
    record_weight: float,
    records: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """The perceptual signal (10 class strengths) of each of `image_ids` (`signal_parts`
    blended: the record with `record_weight`, an original label with `label_weight`)."""
    parts = signal_parts(images, pixels, image_ids, reference, reference_pixels, k=k, pool=pool, records=records)
    return parts.blend(label_weight=label_weight, record_weight=record_weight, knn_tau=knn_tau)


def run(
    *,
    corpus: str,
    campaign_dir,
    images_path,
    gold_images_path,
    reference_path,
    raw_out,
    simulation: dict,
    seed: int,
    records_path=None,
) -> None:
    """Rule annotation_simulate: the simulated panel answers the exported campaign."""
    import logging

    from softdigits.annotation.answers import raw_table
    from softdigits.annotation.campaign import read_campaign

    log = logging.getLogger(__name__)
    tasks, gold = read_campaign(campaign_dir)
    records = None
    if records_path is not None:
        records = pd.read_parquet(records_path, columns=["image_id", "parent_labels", "mix_weights"])
    reference, reference_pixels = reference_digits(io.read_images(reference_path))
    signal = {}
    for path, ids, recs in (
        (images_path, sorted(set(tasks.loc[~tasks["is_attention_check"], "image_id"])), records),
        (gold_images_path, sorted(set(gold["image_id"])), None),
    ):
        table = io.read_images(path)
        meta = table.select(["image_id", "label"]).to_pandas()
        signal.update(
            image_signal(
                meta,
                io.pixels_array(table),
                ids,
                reference,
                reference_pixels,
                k=int(simulation["knn_k"]),
                knn_tau=float(simulation["knn_tau"]),
                pool=int(simulation["knn_pool"]),
                label_weight=float(simulation["label_weight"]),
                record_weight=float(simulation["record_weight"]),
                records=recs,
            )
        )
    params = PanelParams.from_config(simulation["panel"])
    raw = simulate_panel(tasks, signal, params, seed=int(seed), annotator_prefix=f"sim-{corpus}")
    what = (
        f"k-NN over {len(reference)} MNIST training images + generation record as a weak prior"
        if records is not None
        else f"k-NN over {len(reference)} MNIST training images + original label"
    )
    io.write_table(
        raw_table(raw), raw_out, metadata={"origin": "simulated", "simulated": True, "signal": what, "seed": int(seed)}
    )
    log.info(
        "%s: SIMULATED panel (signal: %s): %d participants, %d answers",
        corpus,
        what,
        raw["annotator_id"].nunique(),
        len(raw),
    )
