"""A simulated annotator panel: SIMULATED answers, never to be presented as human data.

It answers an exported campaign (`annotation.design_campaign`) the way the paper's
Yes/No/Unsure task is answered, and writes the same raw table as a real campaign
with `simulated = True`.

Generative model
----------------
Perceptual signal per image (10 class strengths summing to one), never a model of
the kind the study trains, so that human-model alignment is not built in:

- k-NN: the class distribution of the image's k nearest neighbours in pixel space
  (Euclidean, uniform votes) among the labelled images of its de-duplicated corpus,
  the image itself excluded.
- with a generation record (generated Ambiguous-MNIST): the parents' classes weighted
  by their mixing weights (raised to `record_sharpness`, renormalised), blended
  with the k-NN distribution (`record_weight`).
- without one (e.g. MNIST): the original label blended with the k-NN distribution
  (`label_weight`; a human sees the digit the writer meant on most images).

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

Limits: the signal is a proxy for perception (pixel distance is not how people see
digits); annotators are independent given the image; lapses are uniform; gold checks
are treated like any other image. The defaults were calibrated so that the paper's
Table 1 statistics are roughly matched, which makes those statistics an input of
the simulation, not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from softdigits.io import N_DIGITS

RESPONSE_NAMES = np.array(["no", "unsure", "yes"], dtype=object)


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
    def from_config(cls, cfg: dict) -> "PanelParams":
        return cls(**{f.name: float(cfg[f.name]) for f in fields(cls)})


# ------------------------------------------------------------------ signal


def knn_class_distribution(
    query: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    k: int,
    query_rows: np.ndarray | None = None,
    chunk: int = 512,
) -> np.ndarray:
    """(n, 10) class distribution of each query's k nearest reference images.

    `query_rows[i]` is the row of query i in `reference` (or -1), which is skipped so
    that an image is not its own neighbour. Squared Euclidean distance on pixels.
    """
    ref = reference.astype(np.float32)
    ref_sq = (ref**2).sum(axis=1)
    q = query.astype(np.float32)
    out = np.zeros((len(q), N_DIGITS))
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        dist = ref_sq[None, :] - 2.0 * block @ ref.T
        if query_rows is not None:
            rows = np.asarray(query_rows[start:start + chunk])
            own = rows >= 0
            dist[np.flatnonzero(own), rows[own]] = np.inf
        nearest = np.argpartition(dist, k, axis=1)[:, :k]
        votes = reference_labels[nearest]
        for c in range(N_DIGITS):
            out[start:start + len(block), c] = (votes == c).mean(axis=1)
    return out


def record_class_distribution(parent_labels, mix_weights, sharpness: float = 1.0) -> np.ndarray:
    """(n, 10): each image's parents' classes weighted by their mixing weights.

    The class weights are raised to `sharpness` and renormalised: with a power
    above 1 the dominant parent stands out more, as it does in the decoded image
    (the latent mixture is not a pixel blend, and the filter keeps images the
    ensemble finds fairly clear).
    """
    out = np.zeros((len(parent_labels), N_DIGITS))
    for i, (labels, weights) in enumerate(zip(parent_labels, mix_weights)):
        np.add.at(out[i], np.asarray(labels, dtype=int), np.asarray(weights, dtype=float))
    out = out ** float(sharpness)
    return out / out.sum(axis=1, keepdims=True)


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
        [0, 1, 2], size=len(task_ids),
        p=[params.returned_rate, 1 - params.returned_rate - params.duplicate_rate,
           params.duplicate_rate],
    )
    frames = []
    n_participants = 0
    by_task = {tid: t.sort_values("trial") for tid, t in tasks.groupby("task_id")}
    for task_id, n_done in zip(task_ids, completions):
        for _ in range(n_done):
            n_participants += 1
            annotator_id = f"{annotator_prefix}-{n_participants:05d}"
            frames.append(_answer_task(by_task[task_id], signal, params, rng, annotator_id))
    columns = ["annotator_id", "image_id", "class", "response", "is_attention_check",
               "reaction_time_ms", "gold_label", "simulated"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _answer_task(task: pd.DataFrame, signal: dict[str, np.ndarray], p: PanelParams,
                 rng: np.random.Generator, annotator_id: str) -> pd.DataFrame:
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


def image_signal(
    images: pd.DataFrame,
    pixels: np.ndarray,
    image_ids: list[str],
    *,
    k: int,
    label_weight: float,
    record_weight: float,
    record_sharpness: float = 1.0,
    records: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """The perceptual signal (10 class strengths) of each of `image_ids`.

    `images` (image_id, label) and `pixels` (n, 784) are the whole de-duplicated
    corpus, which is also the k-NN reference (its labelled images). `records`
    (image_id, parent_labels, mix_weights), when given, is the primary signal of the
    images it covers; the others use their original label.
    """
    row_of = pd.Series(np.arange(len(images)), index=images["image_id"].to_numpy())
    missing = [i for i in image_ids if i not in row_of.index]
    if missing:
        raise ValueError(f"images to simulate missing from the corpus: {missing[:5]}")
    labels = images["label"].to_numpy()
    labelled = np.flatnonzero(labels >= 0)
    position_in_ref = np.full(len(images), -1)
    position_in_ref[labelled] = np.arange(len(labelled))
    rows = row_of.loc[list(image_ids)].to_numpy()
    knn = knn_class_distribution(pixels[rows], pixels[labelled], labels[labelled], k,
                                 query_rows=position_in_ref[rows])
    primary = np.zeros_like(knn)
    weight = np.full(len(rows), label_weight)
    has_label = labels[rows] >= 0
    primary[np.flatnonzero(has_label), labels[rows][has_label]] = 1.0
    weight[~has_label] = 0.0
    if records is not None and len(records):
        rec = records.set_index("image_id")
        covered = np.array([i in rec.index for i in image_ids])
        if covered.any():
            ids = [i for i, c in zip(image_ids, covered) if c]
            primary[covered] = record_class_distribution(rec.loc[ids, "parent_labels"],
                                                         rec.loc[ids, "mix_weights"], record_sharpness)
            weight[covered] = record_weight
    signal = weight[:, None] * primary + (1.0 - weight[:, None]) * knn
    return dict(zip(image_ids, signal))


def run(*, corpus: str, campaign_dir, images_path, gold_images_path, raw_out,
        simulation: dict, seed: int, records_path=None) -> None:
    """Rule annotation_simulate: the simulated panel answers the exported campaign."""
    import logging

    from softdigits import io
    from softdigits.annotation import raw_table, read_campaign

    log = logging.getLogger(__name__)
    tasks, gold = read_campaign(campaign_dir)
    records = None
    if records_path is not None:
        records = pd.read_parquet(records_path, columns=["image_id", "parent_labels", "mix_weights"])
    signal = {}
    for path, ids, recs in (
        (images_path, sorted(set(tasks.loc[~tasks["is_attention_check"], "image_id"])), records),
        (gold_images_path, sorted(set(gold["image_id"])), None),
    ):
        table = io.read_images(path)
        meta = table.select(["image_id", "label"]).to_pandas()
        signal.update(image_signal(meta, io.pixels_array(table), ids, k=int(simulation["knn_k"]),
                                   label_weight=float(simulation["label_weight"]),
                                   record_weight=float(simulation["record_weight"]),
                                   record_sharpness=float(simulation["record_sharpness"]), records=recs))
    params = PanelParams.from_config(simulation["panel"])
    raw = simulate_panel(tasks, signal, params, seed=int(seed), annotator_prefix=f"sim-{corpus}")
    io.write_table(raw_table(raw), raw_out,
                   metadata={"origin": "simulated", "simulated": True,
                             "signal": "generation records + k-NN" if records is not None
                             else "original label + k-NN", "seed": int(seed)})
    log.info("%s: SIMULATED panel: %d participants, %d answers", corpus,
             raw["annotator_id"].nunique(), len(raw))
