"""One small, fast training loop for every model in the pipeline.

The data are a few thousand 784-pixel images, so they live as tensors in memory:
each epoch draws one permutation from a seeded generator and slices mini-batches
from it. No DataLoader, no worker processes, and no evaluation pass the caller
did not ask for: validation loss only when early stopping or the scheduler need
it, and training dynamics recorded from the training forward pass itself (as
allenai/cartography does: each image's prediction in an epoch is the one made
when its mini-batch was trained on), not from a second pass over the data.

Targets are always distributions (n, classes): one-hot for hard labels, so a
single soft-target cross-entropy serves every label regime.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn


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
    history: pd.DataFrame  # epoch, train_loss, train_acc, val_loss, val_acc, lr
    best_epoch: int  # 1-based epoch whose weights the model holds after fit()
    # (epochs, n_train, classes) float32 when fit(track_dynamics=True), else None
    train_probs: np.ndarray | None = None


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


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Softmax probabilities for every row of `x`, in eval mode, in large batches."""
    model.eval()
    out = [F.softmax(model(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096):
    """(loss, accuracy) of soft targets `y`; accuracy compares argmaxes."""
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        loss += float(soft_cross_entropy(logits, yb)) * len(yb)
        correct += int((logits.argmax(1) == yb.argmax(1)).sum())
    return loss / len(x), correct / len(x)


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
    """
    needs_val = settings.early_stopping_patience is not None or settings.plateau_factor is not None
    if needs_val and x_val is None:
        raise ValueError("early stopping and the LR scheduler need a validation set")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    # The fused kernel does the same Adam update with far less per-step overhead.
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr, fused=True)
    scheduler = None
    if settings.plateau_factor is not None:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode="min", factor=settings.plateau_factor, patience=settings.plateau_patience
        )
    n = len(x_train)
    rows = []
    dynamics = [] if track_dynamics else None
    best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum, correct = 0.0, 0
        epoch_probs = torch.empty(n, y_train.shape[1]) if track_dynamics else None
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = soft_cross_entropy(logits, yb)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == yb.argmax(1)).sum())
            if track_dynamics:
                epoch_probs[idx.cpu()] = F.softmax(logits.detach(), dim=1).cpu()
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / n,
            "train_acc": correct / n,
            "val_loss": math.nan,
            "val_acc": math.nan,
            "lr": optimiser.param_groups[0]["lr"],
        }
        if x_val is not None:
            row["val_loss"], row["val_acc"] = evaluate(model, x_val, y_val)
        rows.append(row)
        if track_dynamics:
            dynamics.append(epoch_probs.numpy())
        if scheduler is not None:
            scheduler.step(row["val_loss"])
        if settings.early_stopping_patience is not None:
            if row["val_loss"] < best_loss - settings.min_delta:
                best_loss, best_epoch, stale = row["val_loss"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= settings.early_stopping_patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(rows)
    return FitResult(
        history=pd.DataFrame(rows),
        best_epoch=best_epoch,
        train_probs=np.stack(dynamics) if track_dynamics else None,
    )
