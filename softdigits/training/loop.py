"""One small, fast training loop for every model in the pipeline.

The data are a few thousand 784-pixel images, so they live as tensors in memory:
each epoch draws one permutation from a seeded generator and slices mini-batches
from it. No DataLoader, no worker processes, and no evaluation pass the caller
did not ask for: validation loss only when early stopping or the scheduler need
it, and training dynamics recorded from the training forward pass itself (as
allenai/cartography does: each image's prediction in an epoch is the one made
when its mini-batch was trained on), not from a second pass over the data.
Adam is one fused kernel call per step and ReduceLROnPlateau a few lines here,
both equal to torch.optim's (tests check it), because the first torch.optim
optimiser a process builds imports torch._dynamo: ~2 s more start-up per job.

Targets are always distributions (n, classes): one-hot for hard labels, so a
single soft-target cross-entropy serves every label regime.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TrainSettings:
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 60
    # Early stopping on validation loss: stop after this many epochs without
    # improvement and restore the best epoch's weights. None: train max_epochs.
    early_stopping_patience: int | None = None
    # ReduceLROnPlateau on validation loss; None: constant learning rate.
    plateau_factor: float | None = None
    plateau_patience: int = 5
    min_delta: float = 0.0


@dataclass
class FitResult:
    rows: list[dict]  # one per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr
    best_epoch: int  # 1-based epoch whose weights the model holds after fit()
    # (epochs, n_train, classes) float32 when fit(track_dynamics=True), else None
    train_probs: np.ndarray | None = None

    @property
    def history(self) -> pd.DataFrame:
        """The rows as a DataFrame (pandas is imported here, not by every training job)."""
        import pandas as pd

        return pd.DataFrame(self.rows)


class FusedAdam:
    """Adam with torch's defaults (betas 0.9/0.999, eps 1e-8, no weight decay), one fused kernel per step.

    The update of `torch.optim.Adam(fused=True)` bit for bit (tests check it),
    without torch.optim: its first use imports torch._dynamo, which costs about
    as much as importing torch itself (~2 s) in every training job.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        torch._foreach_add_(self.steps, 1)
        fused_adam(
            self.params,
            [p.grad for p in self.params],
            self.exp_avgs,
            self.exp_avg_sqs,
            self.steps,
            self.lr,
            self.betas,
            self.eps,
        )


def fused_adam(params, grads, exp_avgs, exp_avg_sqs, steps, lr: float, betas: tuple[float, float], eps: float) -> None:
    """One Adam step with torch's fused kernel, no weight decay: the one update rule of every
    model here, alone (`Adam`) or in a stack (`training.stack`)."""
    torch._fused_adam_(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        steps,
        lr=lr,
        beta1=betas[0],
        beta2=betas[1],
        weight_decay=0.0,
        eps=eps,
        amsgrad=False,
        maximize=False,
    )


class Plateau:
    """ReduceLROnPlateau (torch's defaults: mode min, relative threshold 1e-4, no cooldown).

    After more than `patience` epochs without a loss below best * (1 - 1e-4),
    the learning rate is multiplied by `factor`. Tests check it against torch's.
    """

    def __init__(self, optimiser: FusedAdam, factor: float, patience: int, threshold: float = 1e-4):
        self.optimiser, self.factor, self.patience, self.threshold = optimiser, factor, patience, threshold
        self.best, self.bad_epochs = math.inf, 0

    def step(self, loss: float) -> None:
        if loss < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = loss, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            reduced = self.optimiser.lr * self.factor
            if self.optimiser.lr - reduced > 1e-8:  # torch's eps: tiny rates stay
                self.optimiser.lr = reduced
            self.bad_epochs = 0


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k t_k log softmax(z)_k (equals CE for one-hot t)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def resolve_device(device: str) -> torch.device:
    """`auto` uses a GPU when one is present; the pipeline never needs one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def normalise(pixels: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """uint8 pixels (n, 784) -> float32 tensor standardised with the given statistics."""
    return (torch.from_numpy(np.asarray(pixels, dtype=np.float32)) / 255.0 - mean) / std


def pixel_stats(pixels: np.ndarray) -> tuple[float, float]:
    """Global mean and std of pixel/255 (the training subset's, by convention)."""
    x = np.asarray(pixels, dtype=np.float64) / 255.0
    return float(x.mean()), float(x.std())


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Softmax probabilities for every row of `x`, in eval mode, in large batches."""
    model.eval()
    out = [F.softmax(model(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096):
    """(loss, accuracy) of soft targets `y`; accuracy compares argmaxes."""
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        loss += soft_cross_entropy(logits, yb) * len(yb)
        correct += (logits.argmax(1) == yb.argmax(1)).sum()
    return float(loss) / len(x), int(correct) / len(x)


def fit(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    settings: TrainSettings,
    seed: int,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    track_dynamics: bool = False,
) -> FitResult:
    """Train `model` in place with Adam and soft-target cross-entropy.

    Train loss/accuracy per epoch are running means over the epoch's batches
    (no extra pass). With early stopping the model ends holding its best
    validation-loss weights. With `track_dynamics` every training image's
    predicted distribution is kept for every epoch, from its training batch.
    `x_*`/`y_*` must already be on the model's device.
    """
    [(result, _)] = fit_shared(model, x_train, y_train, [settings], seed, x_val, y_val, [track_dynamics])
    return result


def fit_shared(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    regimes: list[TrainSettings],
    seed: int,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    track_dynamics: list[bool] | None = None,
    on_done: Callable[[int, FitResult, nn.Module], None] | None = None,
) -> list[tuple[FitResult, nn.Module]]:
    """Several regimes from the same seeded start, each as `fit` would train it alone.

    Same initial weights, seed and learning rate mean the same trajectory: the regimes
    share one model until their learning rates differ (a plateau reduction) or one of
    them stops, and only then does a regime go on from a copy of the weights, the Adam
    moments and the batch-order generator. Every regime gets the history, dynamics,
    best epoch and final weights it would get alone, bit for bit (a test checks it), for
    the training cost of the epochs that are not shared. Returns (result, model) per
    regime; `model` itself is one of them. `on_done(i, result, model)` is called as
    soon as regime i ends (so that its outputs can be written before the others end).
    """
    track_dynamics = track_dynamics or [False] * len(regimes)
    for settings in regimes:
        needs_val = settings.early_stopping_patience is not None or settings.plateau_factor is not None
        if needs_val and x_val is None:
            raise ValueError("early stopping and the LR scheduler need a validation set")
    runs = [_Regime(settings, track) for settings, track in zip(regimes, track_dynamics)]
    labels_train = y_train.argmax(1)  # for the running accuracy
    # Regimes that start with the same rate and batch size share one trajectory.
    groups = []
    for k, (key, sharing) in enumerate(_grouped(runs).items()):
        weights = _Weights(model if k == 0 else copy.deepcopy(model), key[0], seed)
        groups.append((weights, sharing))
    while groups:
        weights, sharing = groups.pop(0)
        track = any(r.track_dynamics for r in sharing)
        row, probs = weights.epoch(x_train, y_train, labels_train, x_val, y_val, sharing[0].settings.batch_size, track)
        for run in sharing:
            run.end_epoch(row, probs, weights.model)
        going = [r for r in sharing if not r.done]
        ending = [r for r in sharing if r.done]
        for k, run in enumerate(ending):  # the last to end keeps the weights unless others go on
            last = k == len(ending) - 1 and not going
            run.model = weights.model if last else copy.deepcopy(weights.model)
            run.final = (run.result(), run.finish())
            if on_done is not None:
                on_done(runs.index(run), *run.final)
        for k, (key, same) in enumerate(_grouped(going).items()):
            branch = weights if k == 0 else weights.copy()
            branch.optimiser.lr = key[0]
            groups.append((branch, same))
    return [run.final for run in runs]


def _grouped(runs: list[_Regime]) -> dict[tuple[float, int], list[_Regime]]:
    """Regimes by (learning rate now, batch size), in the order given."""
    groups: dict[tuple[float, int], list[_Regime]] = {}
    for run in runs:
        groups.setdefault((run.lr, run.settings.batch_size), []).append(run)
    return groups


class _Weights:
    """One training trajectory: the model, its Adam state and its batch-order generator."""

    def __init__(self, model: nn.Module, lr: float, seed: int | None):
        self.model = model
        self.optimiser = FusedAdam(model.parameters(), lr=lr)
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(seed)

    def copy(self) -> _Weights:
        twin = _Weights(copy.deepcopy(self.model), self.optimiser.lr, None)
        for mine, theirs in (
            (self.optimiser.exp_avgs, twin.optimiser.exp_avgs),
            (self.optimiser.exp_avg_sqs, twin.optimiser.exp_avg_sqs),
            (self.optimiser.steps, twin.optimiser.steps),
        ):
            for a, b in zip(mine, theirs):
                b.copy_(a)
        twin.generator.set_state(self.generator.get_state())
        return twin

    def epoch(self, x_train, y_train, labels_train, x_val, y_val, batch_size: int, track_dynamics: bool):
        """One epoch over the training images; (history row, every image's probabilities or None)."""
        model, optimiser, n = self.model, self.optimiser, len(x_train)
        device = x_train.device
        model.train()
        # The permutation comes from a CPU generator, so a seed gives the same
        # batches on every device. One gather per epoch; batches are then slices.
        order = torch.randperm(n, generator=self.generator).to(device)
        x_epoch, y_epoch, labels_epoch = x_train[order], y_train[order], labels_train[order]
        # Sums stay on the device: no host sync per step (it matters on a GPU).
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        batch_probs = []
        for start in range(0, n, batch_size):
            xb = x_epoch[start : start + batch_size]
            yb = y_epoch[start : start + batch_size]
            labels = labels_epoch[start : start + batch_size]
            logits = model(xb)
            loss = soft_cross_entropy(logits, yb)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            logits = logits.detach()
            loss_sum += loss.detach() * len(xb)
            correct += (logits.argmax(1) == labels).sum()
            if track_dynamics:
                batch_probs.append(F.softmax(logits, dim=1))
        row = {
            "train_loss": float(loss_sum) / n,
            "train_acc": int(correct) / n,
            "val_loss": math.nan,
            "val_acc": math.nan,
            "lr": optimiser.lr,
        }
        if x_val is not None:
            row["val_loss"], row["val_acc"] = evaluate(model, x_val, y_val)
        probs = None
        if track_dynamics:
            probs = torch.empty_like(y_epoch)
            probs[order] = torch.cat(batch_probs)  # back to the images' own order
            probs = probs.cpu().numpy()
        return row, probs


class _Regime:
    """What one regime keeps of a trajectory: its history, dynamics, LR schedule and stopping."""

    def __init__(self, settings: TrainSettings, track_dynamics: bool):
        self.settings, self.track_dynamics, self.lr = settings, track_dynamics, settings.lr
        self.scheduler = None
        if settings.plateau_factor is not None:
            # Plateau reads and sets `.lr` of what it is given: this regime's own rate.
            self.scheduler = Plateau(self, factor=settings.plateau_factor, patience=settings.plateau_patience)
        self.rows, self.dynamics = [], []
        self.best_loss, self.best_epoch, self.best_state, self.stale = math.inf, 0, None, 0
        self.done, self.model, self.final = False, None, None

    def end_epoch(self, row: dict, probs, model: nn.Module) -> None:
        epoch = len(self.rows) + 1
        self.rows.append({"epoch": epoch, **row})
        if self.track_dynamics:
            self.dynamics.append(probs)
        if self.scheduler is not None:
            self.scheduler.step(row["val_loss"])
        settings = self.settings
        if settings.early_stopping_patience is not None:
            if row["val_loss"] < self.best_loss - settings.min_delta:
                self.best_loss, self.best_epoch, self.stale = row["val_loss"], epoch, 0
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                self.stale += 1
                if self.stale >= settings.early_stopping_patience:
                    self.done = True
        if epoch >= settings.max_epochs:
            self.done = True

    def finish(self) -> nn.Module:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.model

    def result(self) -> FitResult:
        return FitResult(
            rows=self.rows,
            best_epoch=self.best_epoch if self.best_state is not None else len(self.rows),
            train_probs=np.stack(self.dynamics) if self.track_dynamics else None,
        )
