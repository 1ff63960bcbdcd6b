"""Step 2 of the generator (rules generator_ensemble_member, generator_ensemble): the
labelling ensemble.

Each member is a LeNet-5 without padding (softdigits.training.models.lenet(padding=0)), trained
on MNIST with the shared training loop, one rule job per member. The ensemble's mean
softmax labels the pool's images (step 3); the members' disagreement (mutual
information) filters them.

Scoring (`Ensemble`) runs the members as one stacked network (training.stack.StackedNet):
each member's image layers in our CPU kernel (training.conv_pool), as its module alone runs
them, and one batched matmul per linear layer. Without that kernel, members trained on the
same pixels share their normalisation, so an image is normalised once and the first
convolution runs once for every member's filters; the rest is one grouped convolution per
layer, where the stack's kernel check (training.stack.kernels_agree) says those give each
member its own bits on this CPU; where not, the convolutions run member by member (and if
even that check fails, each member's own module scores). In blocks of `SCORE_BATCH` images,
whose intermediate maps stay in the CPU's caches. Every member's softmax is bit for bit the
one its own module gives (tests/generator/test_generator.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from softdigits import io
from softdigits.evaluation import metrics
from softdigits.generator.inputs import MnistSplits, load_checkpoint
from softdigits.training import loop
from softdigits.training.models import lenet
from softdigits.training.stack import BatchShapes, StackedNet, batch_sizes, kernels_agree

log = logging.getLogger(__name__)


def member_seed(seed: int, member: int) -> int:
    """Distinct for every (seed, member) with fewer than 900 members."""
    return 1000 * seed + 100 + member


@dataclass(frozen=True)
class MemberSettings:
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    # Keep the epoch with the lowest MNIST test loss (as the DDU notebook did).
    best_test_loss_checkpoint: bool = True


@dataclass
class Member:
    model: torch.nn.Module  # LeNet-5 without padding
    mean: float  # normalisation statistics of its training pixels
    std: float

    @torch.no_grad()
    def probs(self, pixels: np.ndarray) -> torch.Tensor:
        return loop.predict(self.model, loop.normalise(pixels, self.mean, self.std))


def train_member(mnist: MnistSplits, member_settings: MemberSettings, seed: int) -> tuple[Member, dict]:
    """One ensemble member (LeNet-5 without padding) and a summary with its MNIST test accuracy."""
    s = member_settings
    mean, std = loop.pixel_stats(mnist.train_pixels)
    x = loop.normalise(mnist.train_pixels, mean, std)
    y = F.one_hot(torch.from_numpy(mnist.train_labels), 10).float()
    x_test = loop.normalise(mnist.test_pixels, mean, std)
    y_test = F.one_hot(torch.from_numpy(mnist.test_labels), 10).float()
    torch.manual_seed(seed)
    model = lenet(padding=0).to(memory_format=torch.channels_last)
    # Patience = all epochs: never stops early, but ends on the best test-loss weights.
    fit_settings = loop.TrainSettings(
        lr=s.lr,
        batch_size=s.batch_size,
        max_epochs=s.epochs,
        early_stopping_patience=s.epochs if s.best_test_loss_checkpoint else None,
    )
    result = loop.fit(model, x, y, fit_settings, seed=seed, x_val=x_test, y_val=y_test)
    test_loss, test_acc = loop.evaluate(model, x_test, y_test)
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
    state = load_checkpoint(path, ("state_dict", "mean", "std"))
    model = lenet(padding=0).to(memory_format=torch.channels_last)
    model.load_state_dict(state["state_dict"])
    return Member(model, float(state["mean"]), float(state["std"]))


# Images per stacked forward pass: a few MB of feature maps, cache-sized (measured, bench/README.md).
SCORE_BATCH = 256


class Ensemble:
    """The members as one stacked network, for scoring many images."""

    def __init__(self, members: list[Member]):
        self.members = members
        self.net = StackedNet([m.model for m in members])
        self.stats = [(m.mean, m.std) for m in members]
        self.shared = len(set(self.stats)) == 1  # one normalisation: one input for every member

    @torch.no_grad()
    def probs(self, pixels: np.ndarray, batch: int = SCORE_BATCH) -> np.ndarray:
        """(members, n, 10) float64 softmax of every member (as `Member.probs`, bit for bit)."""
        shapes = BatchShapes(train=(), evaluate=batch_sizes(len(pixels), batch))
        self.net.grouped = kernels_agree(self.net, self.net.size, shapes, grouped=True)
        if not self.net.grouped and not kernels_agree(self.net, self.net.size, shapes, grouped=False):
            return (
                np.stack([m.probs(pixels).double().numpy() for m in self.members])
                if len(pixels)
                else np.zeros((self.net.size, 0, 10))
            )
        out = []
        for start in range(0, len(pixels), batch):
            block = pixels[start : start + batch]
            if self.shared:
                x = loop.normalise(block, *self.stats[0])
            else:
                x = torch.stack([loop.normalise(block, mean, std) for mean, std in self.stats])
            out.append(torch.softmax(self.net(x), dim=2).double().numpy())
        return np.concatenate(out, axis=1) if out else np.zeros((self.net.size, 0, 10))


def ensemble_probs(members: list[Member], pixels: np.ndarray) -> np.ndarray:
    """(members, n, 10) float64 softmax of every member."""
    return Ensemble(members).probs(pixels)


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
