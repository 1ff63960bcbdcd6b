"""Training dynamics (regime 2): epoch-to-epoch JSD, model data maps, Spearman tests.

Conventions:
- JSD between the predictions of successive epochs t-1 and t, in bits (a
  divergence in [0, 1]; see `metrics.js_divergence`), per image, then averaged
  over the images of a stratum. It is reported at epoch t.
- Model data maps (Swayamdipta et al. 2020) pool the last `last_epochs` epochs
  of every seed: confidence = mean of p(gold) over the pooled (epoch, seed)
  values, variability = their population standard deviation (ddof 0, as in
  dataset cartography). Gold is chosen by `evaluation.data_map_gold`:
  "trained_target" (default, as in dataset cartography: the label the model is
  trained toward) is the argmax of each run's own training target, built by the same
  code as training (`training.targets`; `original`: the corpus's original label);
  "human_majority" uses the human majority class for every target. An image without a
  gold digit (a not-a-digit majority, a soft label with no digit mass) is left out of
  the maps.
- Spearman correlations carry a two-sided permutation p-value for every test
  (ranks permuted, ties kept as average ranks): human uncertainty has many
  ties (u_prop takes a handful of values, u_mean is 0 for most NoHLV images),
  where the t-approximation is unreliable. The t-approximation p-value is
  reported beside it for reference.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import stats as sps

from softdigits import study_table
from softdigits.cartography.maps import pooled_map
from softdigits.constants import N_DIGITS
from softdigits.evaluation.metrics import js_divergence
from softdigits.io import DataContractError
from softdigits.training import run_outputs, targets


def successive_jsd(probs: np.ndarray) -> np.ndarray:
    """(E-1, n) JSD in bits between epoch t-1 and epoch t for every image."""
    e, n, k = probs.shape
    if e < 2:
        return np.zeros((0, n))
    return js_divergence(probs[:-1].reshape(-1, k), probs[1:].reshape(-1, k)).reshape(e - 1, n)


def jsd_by_stratum(epochs: np.ndarray, jsd: np.ndarray, strata: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean JSD per later epoch and stratum (strata: name -> boolean mask over images)."""
    frames = []
    for name, mask in strata.items():
        if mask.any():
            frames.append(
                pd.DataFrame(
                    {
                        "epoch": epochs[1:],
                        "stratum": name,
                        "jsd": jsd[:, mask].mean(axis=1),
                        "n_images": int(mask.sum()),
                    }
                )
            )
    columns = ["epoch", "stratum", "jsd", "n_images"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def gold_probabilities(probs: np.ndarray, gold: np.ndarray, last_epochs: int) -> np.ndarray:
    """(k, n) p(gold) over the last `last_epochs` epochs (fewer if the run had fewer)."""
    last = probs[-last_epochs:]
    return last[:, np.arange(last.shape[1]), gold]


def tie_share(x: np.ndarray) -> float:
    """Share of values that repeat an earlier value (0: all distinct)."""
    return 1.0 - len(np.unique(x)) / len(x) if len(x) else 0.0


def spearman(x: np.ndarray, ys: dict[str, np.ndarray], *, n_permutations: int, seed: int) -> pd.DataFrame:
    """Spearman rho of `x` with each of `ys`, with permutation and t-approximation p-values.

    Images with a NaN in x or in any y are dropped, so every y is tested on the
    same images against the same permutations of x's ranks. Two-sided
    permutation p = (1 + #{|rho*| >= |rho|}) / (1 + n_permutations).
    """
    names = list(ys)
    y = np.column_stack([np.asarray(ys[k], dtype=np.float64) for k in names])
    ok = np.isfinite(x) & np.isfinite(y).all(axis=1)
    xs, y = np.asarray(x, dtype=np.float64)[ok], y[ok]
    base = {"n": int(ok.sum()), "tie_share_x": tie_share(xs)}
    testable = [ok.sum() >= 3 and np.ptp(xs) > 0 and np.ptp(y[:, j]) > 0 for j in range(len(names))]
    rho = np.full(len(names), np.nan)
    hits = np.zeros(len(names))
    cols = [j for j, t in enumerate(testable) if t]
    if cols:
        rx = _standardised_ranks(xs)
        ry = np.column_stack([_standardised_ranks(y[:, j]) for j in cols])
        rho[cols] = rx @ ry
        rng = np.random.default_rng(seed)
        done = 0
        while done < n_permutations:
            chunk = min(1000, n_permutations - done)
            perms = rng.permuted(np.tile(rx, (chunk, 1)), axis=1)
            hits[cols] += np.sum(np.abs(perms @ ry) >= np.abs(rho[cols]) - 1e-12, axis=0)
            done += chunk
    rows = []
    for j, name in enumerate(names):
        tested = testable[j]
        rows.append(
            base
            | {
                "variable": name,
                "tie_share_y": tie_share(y[:, j]),
                "rho": rho[j],
                "p_permutation": (1 + hits[j]) / (1 + n_permutations) if tested else np.nan,
                "p_asymptotic": float(sps.spearmanr(xs, y[:, j]).pvalue) if tested else np.nan,
            }
        )
    return pd.DataFrame(rows)


def _standardised_ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks, centred and scaled to unit norm (their dot product is Pearson's r)."""
    r = sps.rankdata(v)
    r = r - r.mean()
    return r / np.sqrt(r @ r)


UNCERTAINTIES = {"u_mean": "human_uncert_mean", "u_prop": "pct_ann_unsure"}
DATA_MAP_GOLDS = ("trained_target", "human_majority")
GOLD_NOTES = {  # the sentence tables, captions and findings use to say which gold a data map has
    "trained_target": "gold = the argmax of the target each model was trained on (original: the corpus's "
    "original label)",
    "human_majority": "gold = the human majority class for every target (evaluation.data_map_gold: " "human_majority)",
}
NO_GOLD = -1


def gold_labels(study: study_table.Study, target: str, mode: str, not_a_digit: str, params: dict) -> np.ndarray:
    """(n,) gold digit of every study row for the data map of `target` runs; NO_GOLD where none.

    mode "trained_target": the argmax of the target the runs were trained on (built by the
    same code as training, `targets.build_targets`; ties go to the lower digit);
    mode "human_majority": the human majority class whatever the target.
    """
    if mode not in DATA_MAP_GOLDS:
        raise ValueError(f"evaluation.data_map_gold must be one of {DATA_MAP_GOLDS}, got {mode!r}")
    if mode == "human_majority":
        gold = study.soft_label_argmax
        return np.where(gold < N_DIGITS, gold, NO_GOLD)
    return targets.build_targets(study, target, not_a_digit, params).gold()


def evaluate_dynamics(
    study_path: str | os.PathLike,
    runs: dict[tuple[str, int], str | os.PathLike],
    *,
    last_epochs: int,
    n_permutations: int,
    seed: int,
    gold: str,
    not_a_digit: str,
    target_params: dict[str, dict],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """JSD curves, data maps and Spearman tests of one model's runs.

    `runs` maps (target, seed) to a dynamics_predictions file; `gold` is the
    data-map gold rule (DATA_MAP_GOLDS); `target_params[target]` the training settings a
    target's builder reads (its gold is the argmax of what it was trained toward). Returns
    (jsd: target, seed, epoch, stratum, jsd, n_images),
    (data maps: target, image_id, gold, confidence, variability, n_values, hlv, u_mean, u_prop) and
    (spearman: target, stratum, uncertainty, variable, rho, p_permutation, ...) and
    (per-seed moments of the maps: target, seed, image_id, p_mean, p_sq_mean, n_epochs).
    """
    arrays = study_table.read_study(study_path)
    info = study_table.read_study_frame(study_path).set_index("image_id")
    jsd_frames, map_frames, seed_frames = [], [], []
    for target in sorted({t for t, _ in runs}):
        gold_of = pd.Series(
            gold_labels(arrays, target, gold, not_a_digit, target_params.get(target, {})), index=arrays.image_id
        )
        p_gold, seeds, ids_of_target = [], [], None
        for (t, s), path in sorted(runs.items()):
            if t != target:
                continue
            epochs, image_id, probs = run_outputs.read_dynamics(path)
            unknown = ~pd.Index(image_id).isin(info.index)
            if unknown.any():
                raise DataContractError(f"{path}: image_id {image_id[unknown][0]!r} is not in the study table")
            if ids_of_target is None:
                ids_of_target = image_id
            elif not np.array_equal(ids_of_target, image_id):
                raise DataContractError(f"{path}: holds other images than seed runs of the same target")
            hlv = info.loc[image_id, "hlv"].to_numpy(dtype=bool)
            strata = {"all": np.ones(len(hlv), bool), "HLV": hlv, "NoHLV": ~hlv}
            jsd_frames.append(jsd_by_stratum(epochs, successive_jsd(probs), strata).assign(target=target, seed=s))
            gold_ids = gold_of.loc[image_id].to_numpy()
            has_gold = gold_ids != NO_GOLD
            p_gold.append(gold_probabilities(probs[:, has_gold], gold_ids[has_gold], last_epochs))
            seeds.append(s)
        ids = ids_of_target[gold_of.loc[ids_of_target].to_numpy() != NO_GOLD]
        for s, values in zip(seeds, p_gold):
            seed_frames.append(seed_moments(target, s, ids, values))
        pooled = np.concatenate(p_gold, axis=0)
        confidence, variability = pooled_map(pooled)
        n_values = pooled.shape[0]
        rows = info.loc[ids]
        map_frames.append(
            pd.DataFrame(
                {
                    "target": target,
                    "image_id": ids,
                    "gold": gold_of.loc[ids].to_numpy(),
                    "confidence": confidence,
                    "variability": variability,
                    "n_values": n_values,
                    "hlv": rows["hlv"].to_numpy(dtype=bool),
                    "u_mean": rows["human_uncert_mean"].to_numpy(dtype=float),
                    "u_prop": rows["pct_ann_unsure"].to_numpy(dtype=float),
                }
            )
        )
    maps = pd.concat(map_frames, ignore_index=True)
    jsd = pd.concat(jsd_frames, ignore_index=True)[["target", "seed", "epoch", "stratum", "jsd", "n_images"]]
    moments = pd.concat(seed_frames, ignore_index=True)
    return jsd, maps, spearman_table(maps, n_permutations=n_permutations, seed=seed), moments


def seed_moments(target: str, seed: int, ids: np.ndarray, p_gold: np.ndarray) -> pd.DataFrame:
    """One seed's share of a data map: per image, the mean and the mean square of p(gold) over
    its last epochs. Any resample of the seeds gives back its pooled map exactly
    (`pooled_from_moments`): the findings' stability resamples seeds this way."""
    p_gold = np.asarray(p_gold, dtype=np.float64)
    return pd.DataFrame(
        {
            "target": target,
            "seed": int(seed),
            "image_id": ids,
            "p_mean": p_gold.mean(axis=0),
            "p_sq_mean": (p_gold**2).mean(axis=0),
            "n_epochs": p_gold.shape[0],
        }
    )


def pooled_from_moments(p_mean: np.ndarray, p_sq_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, variability) of the map pooled over the seeds along axis 0 (equal epochs per
    seed): the mean, and the population std from the mean square."""
    confidence = p_mean.mean(axis=0)
    return confidence, np.sqrt(np.maximum(p_sq_mean.mean(axis=0) - confidence**2, 0.0))


def spearman_table(maps: pd.DataFrame, *, n_permutations: int, seed: int) -> pd.DataFrame:
    """Spearman of u_mean and u_prop with confidence and variability, per target and stratum."""
    frames = []
    for target, m in maps.groupby("target", sort=True):
        for stratum, mask in {
            "all": np.ones(len(m), bool),
            "HLV": m["hlv"].to_numpy(),
            "NoHLV": ~m["hlv"].to_numpy(),
        }.items():
            sub = m[mask]
            for u in UNCERTAINTIES:
                ys = {v: sub[v].to_numpy() for v in ("confidence", "variability")}
                res = spearman(sub[u].to_numpy(), ys, n_permutations=n_permutations, seed=seed)
                frames.append(res.assign(target=target, stratum=stratum, uncertainty=u))
    cols = [
        "target",
        "stratum",
        "uncertainty",
        "variable",
        "rho",
        "p_permutation",
        "p_asymptotic",
        "n",
        "tie_share_x",
        "tie_share_y",
    ]
    return pd.concat(frames, ignore_index=True)[cols]
