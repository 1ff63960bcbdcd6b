"""The models: one registry entry per classifier (`MODELS`), each taking flat (n, 784) normalised images.

- simple_ffn (SimpleFFN): one hidden layer, 784-128-10 (also the cartography network).
- deeper_ffn (DeeperFFN): two hidden layers, 784-256-128-10.
- lenet (LeNet): LeNet-5 (LeCun et al. 1998): conv 6@5x5, max-pool, conv 16@5x5, max-pool,
  fc 120-84-10, ReLU (after each max-pool: the same function as before it).
  `padding=2` is the classic 32x32 input geometry on 28x28 digits (the default);
  `padding=0` is the DDU labelling-ensemble variant (fc 256-120).
  Its image layers run our CPU kernel (`training.conv_pool`) where it is built, else torch's.
The FFNs' first layer sums over each image's ink only (`training.ink_linear.InkLinear`, our
CPU kernel where it is built, else torch's matmul): the function of nn.Linear.

An entry holds the model's display name (tables, figures), its job priority (the longest
training jobs start first, so the grid does not end waiting on a few started last) and its
builder. The registry is read by the workflow and by evaluation jobs, which never import
torch (about 1.5 s per process), so each builder imports torch itself.

To add a model: one builder and one `MODELS` entry here, plus its test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    display: str  # its name in tables and figures
    build: Callable  # () -> torch.nn.Module, freshly initialised from torch's global generator
    priority: int = 0  # higher starts first (rules/common.smk)
    channels_last: bool = False  # convolutions run faster on CPU in channels-last memory


def simple_ffn(hidden: int = 128, n_classes: int = 10):
    from torch import nn

    from softdigits.training.ink_linear import InkLinear

    return nn.Sequential(InkLinear(784, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def deeper_ffn(hidden: tuple[int, int] = (256, 128), n_classes: int = 10):
    from torch import nn

    from softdigits.training.ink_linear import InkLinear

    h1, h2 = hidden
    return nn.Sequential(InkLinear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, n_classes))


def lenet(padding: int = 2, n_classes: int = 10):
    import torch
    from torch import nn

    from softdigits.training import conv_pool

    side = ((28 + 2 * padding - 4) // 2 - 4) // 2  # 5 with padding 2, 4 without

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            # Max-pooling before ReLU computes exactly the same function and gradients
            # as ReLU before max-pooling (ReLU is monotone), on a quarter of the values:
            # a LeNet training step is about 40% faster on CPU.
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=padding),
                nn.MaxPool2d(2),
                nn.ReLU(),
                nn.Conv2d(6, 16, 5),
                nn.MaxPool2d(2),
                nn.ReLU(),
            )
            self.classifier = nn.Sequential(
                nn.Linear(16 * side * side, 120),
                nn.ReLU(),
                nn.Linear(120, 84),
                nn.ReLU(),
                nn.Linear(84, n_classes),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if conv_pool.runs(x):
                if not hasattr(self, "_fused"):  # the layers are fixed: decided on the first call
                    self._fused = conv_pool.fused_convs(list(self.features))
                if self._fused is not None:
                    convs = [(c.weight, c.bias, c.padding[0]) for c in self._fused]
                    return self.classifier(conv_pool.features(x, convs))
            # torch's kernels: channels_last makes CPU convolution and max-pooling about 25% faster.
            image = x.view(-1, 1, 28, 28).contiguous(memory_format=torch.channels_last)
            return self.classifier(self.features(image).flatten(1))

    return LeNet()


MODELS = {
    "simple_ffn": Model("SimpleFFN", simple_ffn, priority=0),
    "deeper_ffn": Model("DeeperFFN", deeper_ffn, priority=1),
    "lenet": Model("LeNet", lenet, priority=2, channels_last=True),  # about 3x an FFN's training time
}


def model_name(name: str) -> str:
    """A model's display name (the name itself for one the registry does not hold)."""
    return MODELS[name].display if name in MODELS else name


def build_model(name: str, seed: int):
    """A freshly initialised model of the registry; the seed fixes its initial weights."""
    import torch

    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    torch.manual_seed(seed)
    model = MODELS[name].build()
    return model.to(memory_format=torch.channels_last) if MODELS[name].channels_last else model


def n_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
