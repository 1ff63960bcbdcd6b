"""The training targets: one registry entry per label regime (`TARGETS`), no torch.

A target turns the study table into a 10-class training distribution per image and says
which images can be trained on it (`Targets`). Every fact about a target lives in its
entry: the study-table column it is built from, its builder, its role in the study, and
the training config keys only it reads (a change of one retrains that target alone).
Training (`train_run`) and evaluation (temperature scaling fits on the val targets a run
was trained on; the data maps' gold is the argmax of the target a run was trained toward)
both build targets here, so the two cannot drift apart.

Roles: `synthetic` (the corpus's own label distribution: the paper's `original`), `human`
(the paper's human regimes) and `control` (beyond the paper: they separate the human
information in a soft label from its softness):
- `label_smoothing`: the one-hot human majority smoothed uniformly over the ten digits,
  epsilon chosen per corpus so that the mean entropy of the training targets equals that of
  `human_uncertainty` over the train images the run trains on (`matched_epsilon`): same
  mode, same average softness, no image-specific shape.
- `human_shuffled`: every train (and val) image gets the `human_uncertainty` target of a
  random image of the same split with the same human majority class, by a seeded uniform
  permutation (`permute_within_classes`): class balance and the multiset of soft labels per
  class kept, the image-specific pairing removed (its run manifest reports how many labels
  moved and `entropy_pairing`, which is near 0 for a neutral shuffle).

The not-a-digit rule: a 10-output model cannot predict the human not-a-digit class, so the
human targets drop its mass and renormalise over the ten digits; an image whose human label
has no digit mass (for `human_majority`: a not-a-digit majority) has no target and is not
usable. With `not_a_digit="exclude"` every image whose human majority is not a digit is
unusable for every human target as well. `original` uses every image.

To add a target: one `TARGETS` entry (and its builder here), plus its test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from softdigits.constants import N_DIGITS, N_HUMAN_CLASSES, NOT_A_DIGIT, NOT_A_DIGIT_MODES
from softdigits.evaluation.metrics import entropy, spearman_rho
from softdigits.io import DataContractError
from softdigits.study_table import Study

# The controls reshape training targets; the splits whose targets a run trains or
# early-stops on. Test images keep their own labels (evaluation never reads targets).
TARGET_SPLITS = ("train", "val")
# Uniform smoothing past 0.9 would move the mode off the majority class.
MAX_EPSILON = 1 - 1 / N_DIGITS
ROLES = ("synthetic", "human", "control")


@dataclass(frozen=True)
class Targets:
    values: np.ndarray  # (n, 10) float32; zero rows where not usable
    usable: np.ndarray  # (n,) bool
    details: dict = field(default_factory=dict)  # how a control was built, for the run manifest

    def gold(self) -> np.ndarray:
        """(n,) the digit each image is trained toward (argmax, ties to the lower digit); -1 where unusable."""
        return np.where(self.usable, self.values.argmax(axis=1), -1)


@dataclass(frozen=True)
class Target:
    """One label regime."""

    column: str  # the study-table column it is built from
    build: Callable[..., Targets]  # (study, not_a_digit, **params) -> Targets
    role: str  # one of ROLES
    soft: bool  # a distribution (True) or one-hot (False) per image
    params: tuple[str, ...] = ()  # training config keys only this target reads


def _distribution(study: Study, column: str, not_a_digit: str) -> Targets:
    """A label distribution of the study table as a 10-class target (the not-a-digit rule)."""
    if column == "soft_label_argmax":
        dist = np.eye(N_HUMAN_CLASSES)[study.soft_label_argmax][:, :N_DIGITS]
    else:
        dist = study.vectors[column][:, :N_DIGITS]
    mass = dist.sum(axis=1)
    usable = mass > 0
    if column == "label_dist":
        if not usable.all():
            row = int(np.flatnonzero(~usable)[0])
            raise DataContractError(f"{study.path}: row {row} ({study.image_id[row]}): label_dist is all zeros")
    elif not_a_digit == "exclude":
        usable &= study.soft_label_argmax != NOT_A_DIGIT
    targets = np.divide(dist, np.where(usable, mass, 1.0)[:, None])
    targets[~usable] = 0.0
    return Targets(targets.astype(np.float32), usable)


def distribution(column: str) -> Callable[..., Targets]:
    """The builder of a target that is one study-table column as it stands."""
    return lambda study, not_a_digit: _distribution(study, column, not_a_digit)


# --------------------------------------------------------- control: label smoothing


def smoothed_entropy(epsilon: float) -> float:
    """Entropy (nats) of a one-hot label smoothed uniformly over the ten digits by `epsilon`."""
    return float(entropy(smooth(np.eye(N_DIGITS)[:1], epsilon), axis=1)[0])


def smooth(one_hot: np.ndarray, epsilon: float) -> np.ndarray:
    """(1 - epsilon) * one-hot + epsilon / 10 on every digit."""
    return (1.0 - epsilon) * np.asarray(one_hot, dtype=np.float64) + epsilon / N_DIGITS


def matched_epsilon(mean_entropy: float) -> float:
    """The epsilon in [0, 0.9] whose smoothed one-hot label has this entropy (nats).

    The smoothed entropy rises strictly from 0 (epsilon 0) to log 10 (epsilon 0.9,
    uniform), so the root is unique; a mean entropy of 0 gives 0.
    """
    if not 0.0 <= mean_entropy <= np.log(N_DIGITS) + 1e-12:
        raise ValueError(f"a mean entropy over ten digits lies in [0, log 10], got {mean_entropy}")
    if mean_entropy == 0.0:
        return 0.0
    if mean_entropy >= np.log(N_DIGITS):
        return MAX_EPSILON
    from scipy.optimize import brentq  # here, not at the top: scipy costs a training job ~0.6 CPU-s to import

    return float(brentq(lambda e: smoothed_entropy(e) - mean_entropy, 0.0, MAX_EPSILON, xtol=1e-14, rtol=1e-14))


def label_smoothing(study: Study, not_a_digit: str) -> Targets:
    majority = _distribution(study, "soft_label_argmax", not_a_digit)
    soft = _distribution(study, "soft_label", not_a_digit)
    # the images this run trains on (a not-a-digit majority has no smoothed target)
    matched = study.rows("train") & soft.usable & majority.usable
    if not matched.any():
        raise DataContractError(f"{study.path}: no train image has a human_uncertainty target to match epsilon to")
    mean_entropy = float(entropy(soft.values[matched].astype(np.float64), axis=1).mean())
    epsilon = matched_epsilon(mean_entropy)
    values = np.where(majority.usable[:, None], smooth(majority.values, epsilon), 0.0)
    details = {"epsilon": epsilon, "matched_mean_entropy": mean_entropy, "n_matched_train_images": int(matched.sum())}
    return Targets(values.astype(np.float32), majority.usable, details)


# --------------------------------------------------------- control: shuffled labels


def permute_within_classes(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Source row of every row: a uniformly random permutation within each class.

    Uniform, so the pairing of label and image is removed rather than reversed: a permutation
    that changes as many labels as possible would give the common one-hot labels to the
    soft-labelled images and the reverse (an image's own label entropy and the entropy of the
    label it receives would then correlate negatively). A row may keep its own label."""
    source = np.arange(len(classes))
    for c in np.unique(classes):
        rows = np.flatnonzero(classes == c)
        source[rows] = rows[rng.permutation(len(rows))]
    return source


def human_shuffled(study: Study, not_a_digit: str, shuffle_seed: int) -> Targets:
    soft = _distribution(study, "soft_label", not_a_digit)
    shuffle_seed = int(shuffle_seed)
    rng = np.random.default_rng(shuffle_seed)
    source = np.arange(len(study.image_id))
    for split in TARGET_SPLITS:
        rows = np.flatnonzero(study.rows(split))
        source[rows] = rows[permute_within_classes(study.soft_label_argmax[rows], rng)]
    # The usable flag travels with the label it belongs to (a no-digit-mass label stays unusable).
    values, usable = soft.values[source], soft.usable[source]
    changed = (values != soft.values).any(axis=1)
    train = study.rows("train") & soft.usable & usable
    details = {
        "shuffle_seed": shuffle_seed,
        "n_changed": {s: int(changed[study.rows(s)].sum()) for s in TARGET_SPLITS},
        "n_images": {s: int(study.rows(s).sum()) for s in TARGET_SPLITS},
        # near 0 for a neutral shuffle: the image's own label entropy vs the received one's
        "entropy_spearman_train": entropy_pairing(soft.values[train], values[train]),
    }
    return Targets(values, usable, details)


def entropy_pairing(own: np.ndarray, received: np.ndarray) -> float:
    """Spearman rho between each image's own label entropy and the entropy of the label it
    trains on (NaN when either is constant): how a control pairs softness with images."""
    if len(own) < 3:
        return float("nan")
    return spearman_rho(entropy(own.astype(np.float64), axis=1), entropy(received.astype(np.float64), axis=1))


TARGETS = {
    "original": Target("label_dist", distribution("label_dist"), role="synthetic", soft=True),
    "human_equal": Target("soft_label_yes_unc_equal", distribution("soft_label_yes_unc_equal"), "human", soft=True),
    "human_uncertainty": Target("soft_label", distribution("soft_label"), role="human", soft=True),
    "human_majority": Target("soft_label_argmax", distribution("soft_label_argmax"), role="human", soft=False),
    "label_smoothing": Target("soft_label_argmax", label_smoothing, role="control", soft=True),
    "human_shuffled": Target("soft_label", human_shuffled, role="control", soft=True, params=("shuffle_seed",)),
}
PRIMARY_SOFT = "human_uncertainty"  # s_u, the paper's headline soft label
HUMAN_TARGETS = tuple(name for name, t in TARGETS.items() if t.role == "human")
CONTROL_TARGETS = tuple(name for name, t in TARGETS.items() if t.role == "control")
SOFT_TARGETS = tuple(name for name in HUMAN_TARGETS if TARGETS[name].soft)  # the paper's soft labels


def build_targets(study: Study, target: str, not_a_digit: str, params: dict | None = None) -> Targets:
    """The targets of one label regime, which images are usable, and how a control was built.

    `params`: the training settings; the keys a target declares (`Target.params`) are passed
    to its builder, and a missing one is an error naming the config key.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {sorted(TARGETS)}")
    if not_a_digit not in NOT_A_DIGIT_MODES:
        raise ValueError(f"not_a_digit must be one of {NOT_A_DIGIT_MODES}, got {not_a_digit!r}")
    spec, params = TARGETS[target], params or {}
    missing = [k for k in spec.params if params.get(k) is None]
    if missing:
        raise ValueError(f"target {target!r} needs {', '.join(missing)} (config training.{missing[0]})")
    return spec.build(study, not_a_digit, **{k: params[k] for k in spec.params})


# results/training/{corpus}/targets/{target}.parquet: what every image of a target trains toward
TARGETS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("split", pa.string()),
        ("usable", pa.bool_()),  # trained (train) or early-stopped (val) on; False: left out
        ("target", pa.list_(pa.float32(), N_DIGITS)),  # the 10-class training target (zeros where unusable)
    ]
)


def write_targets(study_path, target: str, not_a_digit: str, params: dict, path) -> Targets:
    """Rule training_targets: one target's labels of every study image, written where a reader
    can check them (a control's construction in the file's metadata); the runs build the same."""
    from softdigits import io
    from softdigits.study_table import read_study

    study = read_study(study_path)
    built = build_targets(study, target, not_a_digit, params)
    table = pa.table(
        {
            "image_id": pa.array(study.image_id, pa.string()),
            "split": pa.array(study.split, pa.string()),
            "usable": pa.array(built.usable, pa.bool_()),
            "target": io.vectors_column(built.values),
        },
        schema=TARGETS_SCHEMA,
    )
    meta = {"target": target, "not_a_digit": not_a_digit, "params": params, "details": built.details}
    io.write_table(table, path, metadata=meta | {"labels_origin": study.labels_origin})
    return built


def target_distributions(study: Study, target: str, not_a_digit: str, params: dict | None = None):
    """(targets (n, 10) float32, usable (n,) bool) of one label regime (see `build_targets`)."""
    built = build_targets(study, target, not_a_digit, params)
    return built.values, built.usable
