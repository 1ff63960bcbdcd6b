"""Ambiguous-MNIST regenerated offline: the DDU recipe (Mukhoti et al.) in steps.

Each step is one function behind one rule, with its output cached on disk:

1. `train_vae`: an MLP VAE (784-512-256-z32, BCE + KL) on MNIST training images,
   plus the decoded-MNIST pixel statistics the re-standardisation needs.
2. `train_member`: one labelling-ensemble member, LeNet-5 without padding
   (softdigits.models.LeNet(padding=0)), trained with the shared training loop.
3. `build_pool`: groups of 2-4 training images of different classes, their encoder
   means mixed with Dirichlet weightings, decoded, re-standardised, quantised to
   uint8 and scored by the ensemble; only the candidates passing the
   mutual-information / entropy filter are kept (written chunk by chunk).
4. `select_corpus`: entropy-stratified subsampling of the pool, with replacement by
   default as DDU did (so thin high-entropy bins are filled by exact repeats, as in
   the release), or without; a train/test split, label draws from the ensemble's
   mean softmax, and one generation record per image.

The ensemble scores the uint8 image that is stored, so every label distribution
belongs exactly to the pixels of its image. Randomness comes from
`numpy.random.default_rng([seed, STEP])` and torch seeds derived from `seed`:
the same config and seed give the same corpus.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn

from softdigits import io, metrics, training
from softdigits.constants import N_DIGITS, N_PIXELS
from softdigits.models import LeNet

log = logging.getLogger(__name__)

# Sub-streams of the generator's seed, one per random step.
POOL_STREAM, SELECT_STREAM = 1, 2


def vae_seed(seed: int) -> int:
    return 1000 * seed


def member_seed(seed: int, member: int) -> int:
    """Distinct for every (seed, member) with fewer than 900 members."""
    return 1000 * seed + 100 + member


class GeneratorError(ValueError):
    """Bad input to the generator; the message names the file or the setting."""


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class VaeSettings:
    hidden: tuple[int, ...] = (512, 256)
    latent_dim: int = 32
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_milestones: tuple[int, ...] = ()  # epochs after which the lr is multiplied by lr_decay
    lr_decay: float = 0.2


@dataclass(frozen=True)
class MemberSettings:
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    # Keep the epoch with the lowest MNIST test loss (as the DDU notebook did).
    best_test_loss_checkpoint: bool = True


@dataclass(frozen=True)
class MixSettings:
    group_sizes: tuple[int, ...] = (2, 3, 4)
    weightings_per_group: int = 64
    dirichlet_alpha: float = 1.0
    pool_size: int = 300_000  # mixtures scored; rounded up to whole groups
    chunk_size: int = 50_000  # mixtures decoded and scored at a time (bounds memory)
    contrast: float = 1.2  # final image: clamp(contrast * x - offset, 0, 1)
    offset: float = 0.15


@dataclass(frozen=True)
class FilterSettings:
    max_mutual_information: float = 0.05
    min_entropy: float = 0.05
    max_entropy: float = 3.0  # exclusive


@dataclass(frozen=True)
class StratifySettings:
    n_images: int = 12_000
    n_bins: int = 50
    low: float = 0.05
    high: float = 1.6
    power: float = 0.2  # target count of a bin ~ (its pool count) ** power
    n_label_draws: int = 10
    # Draw with replacement (DDU): every non-empty bin meets its target, thin bins by
    # repeating images. False: no image twice, thin bins give their share to the others.
    replace: bool = True


def settings(cls, values: dict):
    """A settings dataclass from a config dict (lists become tuples)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ---------------------------------------------------------------- MNIST input


@dataclass
class MnistSplits:
    train_ids: list[str]
    train_pixels: np.ndarray  # (n, 784) uint8
    train_labels: np.ndarray  # (n,) int64
    test_pixels: np.ndarray
    test_labels: np.ndarray


def read_mnist(path: str | Path) -> MnistSplits:
    """The train and test splits of the canonical MNIST table."""
    table = io.read_images(path)
    split = np.asarray(table.column("source_split").to_pylist(), dtype=object)
    labels = table.column("label").to_numpy()
    pixels = io.pixels_array(table)
    ids = table.column("image_id").to_pylist()
    train, test = split == "train", split == "test"
    for name, mask in (("train", train), ("test", test)):
        if not mask.any():
            raise GeneratorError(f"{path}: no MNIST images with source_split {name!r}")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if len(bad):
        raise GeneratorError(f"{path}: row {bad[0]} ({ids[bad[0]]}) has label {labels[bad[0]]}, not a digit")
    return MnistSplits(
        train_ids=[i for i, keep in zip(ids, train) if keep],
        train_pixels=pixels[train],
        train_labels=labels[train].astype(np.int64),
        test_pixels=pixels[test],
        test_labels=labels[test].astype(np.int64),
    )


def _unit(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(pixels, dtype=np.float32) / 255.0)


# ------------------------------------------------------------------ 1. the VAE


class VAE(nn.Module):
    """MLP VAE: encoder 784-512-256 -> (mu, log-variance), decoder mirrored, Bernoulli pixels."""

    def __init__(self, hidden: tuple[int, ...] = (512, 256), latent_dim: int = 32):
        super().__init__()
        sizes = [N_PIXELS, *hidden]
        self.encoder = _mlp(sizes)
        self.mu = nn.Linear(sizes[-1], latent_dim)
        self.log_var = nn.Linear(sizes[-1], latent_dim)
        back = [latent_dim, *reversed(hidden)]
        self.decoder = nn.Sequential(_mlp(back), nn.Linear(back[-1], N_PIXELS))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.log_var(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel intensities in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def loss(self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Negative ELBO per image (BCE summed over pixels + KL), averaged over the batch."""
        mu, log_var = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator)
        logits = self.decoder(mu + eps * torch.exp(0.5 * log_var))
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
        kl = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp())
        return (bce + kl) / len(x)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


@dataclass
class TrainedVae:
    model: VAE
    settings: VaeSettings
    # pixel/255 statistics: MNIST training images (also the encoder's whitening)
    # and their decoded reconstructions (the re-standardisation's source statistics)
    mnist_mean: float
    mnist_std: float
    decoded_mean: float
    decoded_std: float
    history: pd.DataFrame | None = None

    def whiten(self, pixels: np.ndarray) -> torch.Tensor:
        return (_unit(pixels) - self.mnist_mean) / self.mnist_std

    @torch.no_grad()
    def encode_means(self, pixels: np.ndarray, batch_size: int = 8192) -> torch.Tensor:
        self.model.eval()
        x = self.whiten(pixels)
        return torch.cat([self.model.encode(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def decode_images(self, z: torch.Tensor, contrast: float, offset: float) -> np.ndarray:
        """Decoded latents as uint8 images: re-standardised to MNIST's statistics, then
        clamp(contrast * x - offset, 0, 1) (the DDU recipe's sharpening), then round(x * 255)."""
        self.model.eval()
        x = self.model.decode(z)
        x = (x - self.decoded_mean) / self.decoded_std * self.mnist_std + self.mnist_mean
        x = torch.clamp(contrast * x - offset, 0.0, 1.0)
        return torch.round(x * 255).to(torch.uint8).numpy()


def train_vae(train_pixels: np.ndarray, vae_settings: VaeSettings, seed: int) -> TrainedVae:
    """Train the VAE on MNIST training images.

    "Whitened MNIST" of the recipe: the encoder sees pixels standardised with the
    training set's mean/std; the Bernoulli decoder's BCE target is pixel/255 in [0, 1].
    """
    s = vae_settings
    mean, std = training.pixel_stats(train_pixels)
    target = _unit(train_pixels)
    x = (target - mean) / std
    torch.manual_seed(seed)
    model = VAE(tuple(s.hidden), s.latent_dim)
    # The shared Adam (torch.optim's update without its ~2 s torch._dynamo import).
    optimiser = training.FusedAdam(model.parameters(), lr=s.lr)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for epoch in range(1, s.epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), s.batch_size):
            idx = order[start : start + s.batch_size]
            loss = model.loss(x[idx], target[idx], generator)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        rows.append({"epoch": epoch, "neg_elbo": total / len(x), "lr": optimiser.lr})
        log.info("VAE epoch %d: negative ELBO %.2f nats per image", epoch, rows[-1]["neg_elbo"])
        if epoch in s.lr_milestones:  # step decay, as torch's MultiStepLR
            optimiser.lr *= s.lr_decay
    trained = TrainedVae(model, s, mean, std, 0.0, 1.0, pd.DataFrame(rows))
    with torch.no_grad():
        decoded = model.eval().decode(trained.encode_means(train_pixels))
    trained.decoded_mean, trained.decoded_std = float(decoded.mean()), float(decoded.std())
    return trained


def save_vae(vae: TrainedVae, path: str | Path) -> None:
    state = {
        "state_dict": vae.model.state_dict(),
        "settings": _plain(asdict(vae.settings)),
        "stats": {k: getattr(vae, k) for k in ("mnist_mean", "mnist_std", "decoded_mean", "decoded_std")},
    }
    with io.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_vae(path: str | Path) -> TrainedVae:
    state = _load_checkpoint(path, ("state_dict", "settings", "stats"))
    s = settings(VaeSettings, state["settings"])
    model = VAE(tuple(s.hidden), s.latent_dim)
    model.load_state_dict(state["state_dict"])
    return TrainedVae(model, s, **state["stats"])


# ------------------------------------------------------ 2. the labelling ensemble


@dataclass
class Member:
    model: LeNet
    mean: float  # normalisation statistics of its training pixels
    std: float

    @torch.no_grad()
    def probs(self, pixels: np.ndarray) -> torch.Tensor:
        return training.predict(self.model, training.normalise(pixels, self.mean, self.std))


def train_member(mnist: MnistSplits, member_settings: MemberSettings, seed: int) -> tuple[Member, dict]:
    """One ensemble member (LeNet-5 without padding) and a summary with its MNIST test accuracy."""
    s = member_settings
    mean, std = training.pixel_stats(mnist.train_pixels)
    x = training.normalise(mnist.train_pixels, mean, std)
    y = F.one_hot(torch.from_numpy(mnist.train_labels), 10).float()
    x_test = training.normalise(mnist.test_pixels, mean, std)
    y_test = F.one_hot(torch.from_numpy(mnist.test_labels), 10).float()
    torch.manual_seed(seed)
    model = LeNet(padding=0).to(memory_format=torch.channels_last)
    # Patience = all epochs: never stops early, but ends on the best test-loss weights.
    fit_settings = training.TrainSettings(
        lr=s.lr,
        batch_size=s.batch_size,
        max_epochs=s.epochs,
        early_stopping_patience=s.epochs if s.best_test_loss_checkpoint else None,
    )
    result = training.fit(model, x, y, fit_settings, seed=seed, x_val=x_test, y_val=y_test)
    test_loss, test_acc = training.evaluate(model, x_test, y_test)
    summary = {
        "seed": seed,
        "best_epoch": result.best_epoch,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "n_train": len(x),
        "n_test": len(x_test),
        "history": result.history.to_dict(orient="records"),
    }
    log.info("member seed %d: test accuracy %.4f (epoch %d)", seed, test_acc, result.best_epoch)
    return Member(model, mean, std), summary


def save_member(member: Member, path: str | Path) -> None:
    state = {"state_dict": member.model.state_dict(), "mean": member.mean, "std": member.std}
    with io.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_member(path: str | Path) -> Member:
    state = _load_checkpoint(path, ("state_dict", "mean", "std"))
    model = LeNet(padding=0).to(memory_format=torch.channels_last)
    model.load_state_dict(state["state_dict"])
    return Member(model, float(state["mean"]), float(state["std"]))


def ensemble_probs(members: list[Member], pixels: np.ndarray) -> np.ndarray:
    """(members, n, 10) float64 softmax of every member."""
    return np.stack([m.probs(pixels).double().numpy() for m in members])


def uncertainty(member_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean softmax, its entropy (predictive entropy) and the mutual information, in nats.

    MI = H(mean_m p_m) - mean_m H(p_m): the members' disagreement.
    """
    mean = member_probs.mean(axis=0)
    entropy = metrics.entropy(mean)
    mi = entropy - metrics.entropy(member_probs).mean(axis=0)
    return mean, entropy, np.maximum(mi, 0.0)  # tiny negative values are rounding


def ensemble_accuracy(members: list[Member], summaries: list[dict], mnist: MnistSplits) -> pd.DataFrame:
    """MNIST test accuracy of each member and of the ensemble's mean softmax."""
    mean = ensemble_probs(members, mnist.test_pixels).mean(axis=0)
    rows = [
        {
            "model": f"member{i}",
            "seed": s["seed"],
            "best_epoch": s["best_epoch"],
            "test_loss": s["test_loss"],
            "test_accuracy": s["test_accuracy"],
        }
        for i, s in enumerate(summaries)
    ]
    nll = -np.mean(np.log(np.clip(mean[np.arange(len(mean)), mnist.test_labels], 1e-12, None)))
    rows.append(
        {
            "model": "ensemble",
            "seed": -1,
            "best_epoch": -1,
            "test_loss": float(nll),
            "test_accuracy": float((mean.argmax(axis=1) == mnist.test_labels).mean()),
        }
    )
    return pd.DataFrame(rows)


# ------------------------------------------------------------ 3. candidate pool


@dataclass
class MixingPlan:
    """Every mixture of the pool: group g's parents mixed with weights[g, j]."""

    parents: np.ndarray  # (groups, max_k) int64 positions in the training split, -1 = none
    weights: np.ndarray  # (groups, weightings, max_k) float32, 0 where no parent

    @property
    def n_mixtures(self) -> int:
        return self.weights.shape[0] * self.weights.shape[1]


def mixing_plan(train_labels: np.ndarray, mix: MixSettings, seed: int) -> MixingPlan:
    """Groups of k training images of k different classes (k drawn from group_sizes),
    each with `weightings_per_group` Dirichlet(alpha) weightings. Drawn up front, so the
    chunk size changes memory only, never which mixtures are made."""
    classes_present = np.unique(train_labels)
    max_k = max(mix.group_sizes)
    if max_k > len(classes_present):
        raise GeneratorError(
            f"generator.mixing.group_sizes: groups of {max_k} different classes need {max_k} "
            f"digit classes; the MNIST training split has {len(classes_present)}"
        )
    rng = np.random.default_rng([seed, POOL_STREAM])
    n_groups = math.ceil(mix.pool_size / mix.weightings_per_group)
    by_class = {c: np.flatnonzero(train_labels == c) for c in classes_present}
    sizes = rng.choice(np.asarray(mix.group_sizes), size=n_groups)
    parents = np.full((n_groups, max_k), -1, dtype=np.int64)
    weights = np.zeros((n_groups, mix.weightings_per_group, max_k), dtype=np.float32)
    for g, k in enumerate(sizes):
        for j, c in enumerate(rng.choice(classes_present, size=k, replace=False)):
            parents[g, j] = rng.choice(by_class[c])
        weights[g, :, :k] = rng.dirichlet(np.full(k, mix.dirichlet_alpha), size=mix.weightings_per_group)
    return MixingPlan(parents, weights)


POOL_SCHEMA = pa.schema(
    [
        ("mixture", pa.int64()),  # index of the mixture in the mixing plan
        ("pixels", pa.list_(pa.uint8(), N_PIXELS)),
        ("probs", pa.list_(pa.float32(), N_DIGITS)),  # ensemble mean softmax
        ("entropy", pa.float64()),
        ("mutual_information", pa.float64()),
        ("parents", pa.list_(pa.int64())),  # positions in the MNIST training split
        ("mix_weights", pa.list_(pa.float32())),
    ]
)


def build_pool(
    vae: TrainedVae,
    members: list[Member],
    mnist: MnistSplits,
    mix: MixSettings,
    keep: FilterSettings,
    seed: int,
    path: str | Path,
) -> dict:
    """Score the whole mixing plan chunk by chunk; write the candidates passing the
    filter to the Parquet `path` (atomically); return counts for the summary."""
    plan = mixing_plan(mnist.train_labels, mix, seed)
    latents = vae.encode_means(mnist.train_pixels)  # (n_train, z)
    per_group = mix.weightings_per_group
    counts = {"mixtures": 0, "kept": 0, "mi_too_high": 0, "entropy_too_low": 0, "entropy_too_high": 0}
    entropy_hist = np.zeros(60, dtype=np.int64)  # all scored candidates, 0.05-nat bins on [0, 3)
    with io.atomic_path(path) as tmp, pq.ParquetWriter(tmp, POOL_SCHEMA) as writer:
        for start in range(0, plan.n_mixtures, mix.chunk_size):
            mixture = np.arange(start, min(start + mix.chunk_size, plan.n_mixtures))
            group, weighting = mixture // per_group, mixture % per_group
            parents, w = plan.parents[group], plan.weights[group, weighting]
            z = torch.einsum("nk,nkd->nd", torch.from_numpy(w), latents[np.maximum(parents, 0)])
            pixels = vae.decode_images(z, mix.contrast, mix.offset)
            mean, entropy, mi = uncertainty(ensemble_probs(members, pixels))
            passed = _tally(entropy, mi, keep, counts)
            entropy_hist += np.histogram(entropy, bins=60, range=(0.0, 3.0))[0]
            counts["mixtures"] += len(mixture)
            idx = np.flatnonzero(passed)
            writer.write_table(
                _pool_chunk(mixture[idx], pixels[idx], mean[idx], entropy[idx], mi[idx], parents[idx], w[idx])
            )
            log.info("pool: %d/%d mixtures scored, %d kept", counts["mixtures"], plan.n_mixtures, counts["kept"])
    return {**counts, "entropy_histogram_all": {"edges": np.linspace(0, 3, 61), "counts": entropy_hist}}


def _tally(entropy, mi, keep: FilterSettings, counts: dict) -> np.ndarray:
    mi_ok = mi <= keep.max_mutual_information
    low = entropy < keep.min_entropy
    high = entropy >= keep.max_entropy
    passed = mi_ok & ~low & ~high
    counts["kept"] += int(passed.sum())
    counts["mi_too_high"] += int((~mi_ok).sum())
    counts["entropy_too_low"] += int((mi_ok & low).sum())
    counts["entropy_too_high"] += int((mi_ok & high).sum())
    return passed


def _pool_chunk(mixture, pixels, mean, entropy, mi, parents, weights) -> pa.Table:
    has = parents >= 0
    return pa.table(
        {
            "mixture": pa.array(mixture, pa.int64()),
            "pixels": io.vectors_column(pixels, pa.uint8()),
            "probs": io.vectors_column(mean.astype(np.float32)),
            "entropy": pa.array(entropy, pa.float64()),
            "mutual_information": pa.array(mi, pa.float64()),
            "parents": pa.array([p[h].tolist() for p, h in zip(parents, has)], pa.list_(pa.int64())),
            "mix_weights": pa.array([w[h].tolist() for w, h in zip(weights, has)], pa.list_(pa.float32())),
        },
        schema=POOL_SCHEMA,
    )


def read_pool(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise GeneratorError(f"{path}: not a readable candidate pool ({err})") from None
    missing = [f.name for f in POOL_SCHEMA if f.name not in schema.names]
    if missing:
        raise GeneratorError(f"{path}: candidate pool lacks column(s) {missing}")
    return pq.read_table(path, columns=columns)


# ------------------------------------------------------------- 4. the selection


def allocate(capacity: np.ndarray, weight: np.ndarray, total: int) -> np.ndarray:
    """Integer counts as close to `total * weight / sum(weight)` as the capacities allow.

    Water-filling: a bin that cannot fill its share gives all it has and the rest is
    shared among the others in proportion to their weights (largest remainders
    round the shares to integers). No bin gets more than its capacity; the result
    sums to min(total, capacity of weighted bins).
    """
    capacity = np.asarray(capacity, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    alloc = np.zeros_like(capacity)
    open_ = (capacity > 0) & (weight > 0)
    remaining = int(min(total, capacity[open_].sum()))
    while remaining > 0:
        share = remaining * weight[open_] / weight[open_].sum()
        want = np.floor(share).astype(np.int64)
        extra = remaining - int(want.sum())
        # stable order: largest fractional part first, ties to the lower bin
        want[np.argsort(-(share - want), kind="stable")[:extra]] += 1
        bins = np.flatnonzero(open_)
        give = np.minimum(want, capacity[bins] - alloc[bins])
        alloc[bins] += give
        remaining -= int(give.sum())
        open_ &= alloc < capacity
    return alloc


def bin_targets(pool: np.ndarray, strat: StratifySettings) -> np.ndarray:
    """Images to draw from each entropy bin, given its distinct pool candidates.

    The shape is the DDU recipe's: a bin's share is proportional to its pool count to
    the power `power` (0.2 flattens the pool's steep fall-off, so the high-entropy tail
    gets far more than its pool share but still less than the low-entropy bulk).
    With replacement a bin is no longer capped by its distinct candidates, so the
    shape is met exactly in every non-empty bin: a tail bin holding 3 candidates gets
    its full share as repeats of those 3, which is how the release came to carry exact
    duplicates. We keep the shape rather than, say, a flat target over the bins: a flat
    target would fill 1-candidate bins with hundreds of copies of one image, whereas
    the power rule ties each bin's share to the evidence the pool holds for it. Empty
    bins get nothing (there is nothing to repeat). Without replacement a bin gives at
    most its distinct candidates and its unmet share goes to the others.
    """
    pool = np.asarray(pool, dtype=np.int64)
    weight = np.where(pool > 0, pool.astype(np.float64) ** strat.power, 0.0)
    capacity = np.where(pool > 0, strat.n_images, 0) if strat.replace else pool
    return allocate(capacity, weight, strat.n_images)


@dataclass
class Selection:
    rows: np.ndarray  # pool rows, in corpus order (train half first); repeats when drawn with replacement
    n_train: int
    bin_edges: np.ndarray
    available: np.ndarray  # distinct pool images per bin
    target: np.ndarray  # counts per bin
    drawn: np.ndarray  # rows drawn per bin (counted from `rows`)
    unique: np.ndarray  # distinct images among them

    def bins(self) -> pd.DataFrame:
        """The per-bin table: edges, target, pool (distinct candidates), drawn, unique drawn."""
        return pd.DataFrame(
            {
                "low": self.bin_edges[:-1],
                "high": self.bin_edges[1:],
                "target": self.target,
                "pool": self.available,
                "drawn": self.drawn,
                "unique": self.unique,
            }
        )


def select(entropy: np.ndarray, sha256: list[str], strat: StratifySettings, seed: int) -> Selection:
    """Entropy-stratified subsample of the pool's distinct images, first half train.

    With `strat.replace` an image may be drawn several times (exact repeats);
    without, no image twice.
    """
    rng = np.random.default_rng([seed, SELECT_STREAM])
    entropy = np.asarray(entropy)
    first_copy = ~pd.Series(sha256).duplicated().to_numpy()  # identical pixels count once
    edges = np.linspace(strat.low, strat.high, strat.n_bins + 1)
    in_range = first_copy & (entropy >= strat.low) & (entropy <= strat.high)
    # bin b holds edges[b] <= H < edges[b+1]; the last bin also holds H == high
    which = np.clip(np.searchsorted(edges, entropy, side="right") - 1, 0, strat.n_bins - 1)
    available = np.bincount(which[in_range], minlength=strat.n_bins)
    target = bin_targets(available, strat)
    chosen = [
        rng.choice(np.flatnonzero(in_range & (which == b)), size=target[b], replace=strat.replace)
        for b in range(strat.n_bins)
        if target[b]
    ]
    rows = rng.permutation(np.concatenate(chosen)) if chosen else np.empty(0, np.int64)
    if len(rows) < strat.n_images:
        log.warning(
            "the filtered pool holds %d distinct images in [%.2f, %.2f] nats: " "the corpus has %d images, not %d",
            available.sum(),
            strat.low,
            strat.high,
            len(rows),
            strat.n_images,
        )
    drawn = np.bincount(which[rows], minlength=strat.n_bins)
    unique = np.bincount(which[np.unique(rows)], minlength=strat.n_bins)
    return Selection(rows, (len(rows) + 1) // 2, edges, available, target, drawn, unique)


def draw_labels(probs: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """(n, n_draws) int64 labels drawn from each row's distribution."""
    rng = np.random.default_rng([seed, SELECT_STREAM, 1])
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random((len(probs), n_draws))
    return np.minimum((cdf[:, None, :] < u[:, :, None]).sum(axis=2), probs.shape[1] - 1).astype(np.int64)


def select_corpus(
    pool_path: str | Path, mnist: MnistSplits, strat: StratifySettings, seed: int
) -> tuple[pa.Table, pa.Table, dict]:
    """The corpus (images contract + `sampled_labels`), its generation records, and a summary."""
    stats = read_pool(pool_path, ["entropy", "pixels"])
    if stats.num_rows == 0:
        raise GeneratorError(f"{pool_path}: the candidate pool is empty: no mixture passed the filter")
    sha = io.pixel_sha256(io.pixels_array(stats))
    sel = select(stats.column("entropy").to_numpy(), sha, strat, seed)
    if len(sel.rows) == 0:
        raise GeneratorError(f"{pool_path}: no candidate has entropy in [{strat.low}, {strat.high}] nats")
    pool = read_pool(pool_path).take(pa.array(sel.rows))
    n = pool.num_rows
    probs = io.vectors_array(pool, "probs").astype(np.float64)
    probs /= probs.sum(axis=1, keepdims=True)
    split = np.where(np.arange(n) < sel.n_train, "train", "test").astype(object)
    index = np.where(np.arange(n) < sel.n_train, np.arange(n), np.arange(n) - sel.n_train)
    corpus = io.images_table(
        source="mukhoti",
        source_split=split,
        source_index=index,
        pixels=io.pixels_array(pool),
        label=probs.argmax(axis=1),
        label_dist=probs,
    )
    sampled = draw_labels(probs, strat.n_label_draws, seed)
    corpus = corpus.append_column("sampled_labels", io.vectors_column(sampled, pa.int64()))
    parents = pool.column("parents").to_pylist()
    records = pa.table(
        {
            "image_id": corpus.column("image_id"),
            "parent_image_ids": pa.array([[mnist.train_ids[p] for p in ps] for ps in parents], pa.list_(pa.string())),
            "parent_labels": pa.array(
                [[int(mnist.train_labels[p]) for p in ps] for ps in parents], pa.list_(pa.int64())
            ),
            "mix_weights": pool.column("mix_weights"),
            "entropy": pool.column("entropy"),
            "mutual_information": pool.column("mutual_information"),
        }
    )
    bins = sel.bins()
    log.info(
        "entropy-stratified draw %s replacement, per bin (pool = distinct candidates):\n%s\n"
        "total: target %d, pool %d, drawn %d, unique %d (%d exact repeats)",
        "with" if strat.replace else "without",
        bins.to_string(index=False, float_format="%.3f"),
        bins["target"].sum(),
        bins["pool"].sum(),
        bins["drawn"].sum(),
        bins["unique"].sum(),
        bins["drawn"].sum() - bins["unique"].sum(),
    )
    summary = {
        "n_images": n,
        "n_train": sel.n_train,
        "n_test": n - sel.n_train,
        "n_requested": strat.n_images,
        "replace": strat.replace,
        "n_distinct": int(sel.unique.sum()),
        "n_repeats": int(n - sel.unique.sum()),
        "pool_candidates": stats.num_rows,
        "pool_distinct_in_range": int(sel.available.sum()),
        "bins": bins,
    }
    return corpus, records, summary


# ------------------------------------------------------------------- helpers


def _load_checkpoint(path, keys: tuple[str, ...]) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise GeneratorError(f"{path}: not a readable checkpoint ({err})") from None
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise GeneratorError(f"{path}: checkpoint lacks {missing}")
    return state


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
