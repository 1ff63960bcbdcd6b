"""Step 1 of the generator (rule generator_vae): the DDU recipe's VAE on MNIST training images.

An MLP VAE (784-512-256-z32, BCE + KL), plus the decoded-MNIST pixel statistics the
re-standardisation of decoded mixtures needs. The pool (step 3) encodes MNIST with it,
mixes the latents and decodes them to uint8 images.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from softdigits import io
from softdigits.constants import N_PIXELS
from softdigits.generator.inputs import load_checkpoint, settings
from softdigits.training import loop

log = logging.getLogger(__name__)


def vae_seed(seed: int) -> int:
    return 1000 * seed


@dataclass(frozen=True)
class VaeSettings:
    hidden: tuple[int, ...] = (512, 256)
    latent_dim: int = 32
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_milestones: tuple[int, ...] = ()  # epochs after which the lr is multiplied by lr_decay
    lr_decay: float = 0.2


def _unit(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(pixels, dtype=np.float32) / 255.0)


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
    mean, std = loop.pixel_stats(train_pixels)
    target = _unit(train_pixels)
    x = (target - mean) / std
    torch.manual_seed(seed)
    model = VAE(tuple(s.hidden), s.latent_dim)
    # The shared Adam (torch.optim's update without its ~2 s torch._dynamo import).
    optimiser = loop.FusedAdam(model.parameters(), lr=s.lr)
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
    state = load_checkpoint(path, ("state_dict", "settings", "stats"))
    s = settings(VaeSettings, state["settings"])
    model = VAE(tuple(s.hidden), s.latent_dim)
    model.load_state_dict(state["state_dict"])
    return TrainedVae(model, s, **state["stats"])


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
