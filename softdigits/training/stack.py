"""Stacked training: many members of one architecture trained as one network, each as it would be alone.

A training job holds many small trainings of one model: every seed, and per seed the two
regimes until they part (`loop.fit_shared`). Trained one after the other at batch 64, each
step is a handful of small GEMMs and convolutions, and on a CPU the fixed cost of every
kernel call is a large part of it. Here the members' weights are stacked on a leading
member dimension and a step is one call per layer for all of them:

- `Linear` layers: one batched matmul (`torch.baddbmm`) over the members;
- an FFN's first layer (`InkLinear`): each member's in our ink kernel, as its module alone
  calls it (`ink_linear.linear`);
- `Conv2d` layers: one grouped convolution, member m's channels in group m (channels-last),
  where the kernel check says it gives each member its own bits (see below); otherwise each
  member's convolutions, pooling and ReLUs are its own calls, the kernels its module alone runs;
- `MaxPool2d` and `ReLU` act on every member's channels at once (grouped) or on each member's;
- Adam (`StackedAdam`): torch's fused Adam kernel over every member's weights, one call per
  learning rate (members may have lowered theirs: per-member rates).

Every member keeps its own seeded initial weights and batch order (its own CPU generator:
each epoch a permutation, then mini-batch slices), its own Adam state, learning-rate
schedule, early stopping, best checkpoint and training dynamics (`loop._Regime`): the same
bookkeeping `fit_shared` does for one seed. The gradient of the sum of the members' losses
is each member's own gradient, so nothing couples the members but their memory layout.

What is exactly equal (tests/training/test_stack.py):
- A linear layer's batched matmul gives each member the bits of its own `F.linear`, and
  those bits do not depend on how many members share the stack: an FFN member trains bit
  for bit as it does alone (`loop.fit`).
- A grouped convolution's kernels are chosen by the library from the channel count and the
  CPU: on some (oneDNN in torch 2.13 on an Intel AVX2 CPU) a LeNet member's bits are its
  own at most stack sizes; on others (the same build on an AMD EPYC) at none, in the first
  layer's output already. So a stack checks first (`kernels_agree`: one probe step at the
  job's batch shapes) and uses grouped convolutions only at a size where they agree, adding
  up to MAX_SPARES spare members to reach one; elsewhere its convolutions run member by
  member. Either way each member trains bit for bit as alone; only the speed differs by CPU.
- If even that check fails (a linear layer's batched matmul rounding otherwise on some
  library), the stack trains as it is, records `alone_bits: false`, and gives the same bits
  on every rerun on that machine: a new realisation of the training, not a change of it.

Members leave the stack when their last regime ends, and a seed's regimes that part (a
plateau reduction) become two members from a copy of the weights, Adam moments and batch
generator, so the stack computes exactly the epochs `fit_shared` would, for every seed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from softdigits.training import conv_pool, ink_linear
from softdigits.training.ink_linear import InkLinear
from softdigits.training.loop import FitResult, TrainSettings, _Regime, fused_adam

IMAGE_SIDE = 28  # the models take flat (n, 784) images: one channel, 28 x 28


class StackedNet:
    """M members of one architecture (a chain of Conv2d, MaxPool2d, ReLU and Linear layers).

    Parameters are leaf tensors of shape (M, *the module's parameter shape), so member m's
    slice `p[m]` is its parameter, contiguous. `forward` maps (M, b, 784) to (M, b, classes):
    member m's images through member m's weights. The layer chain is read from the module
    (its leaf modules in order, an image view before the first convolution and a flatten
    before the first linear layer after one); the constructor checks that this chain
    computes what the module's own forward does, so a model it cannot follow is an error,
    not a silent difference. `grouped` (off until a caller's kernel check allows it) runs
    the convolutions as grouped ones for every member at once; off, each member's image
    layers are its own calls.
    """

    def __init__(self, models: list[nn.Module]):
        if not models:
            raise ValueError("a stack needs at least one member")
        self.template = copy.deepcopy(models[0])
        self.layers = _chain(self.template)
        self.names = [name for name, _ in self.template.named_parameters()]
        self.params = [
            torch.stack([dict(m.named_parameters())[name].detach() for m in models]).contiguous().requires_grad_()
            for name in self.names
        ]
        self.grouped = False
        kinds = [kind for kind, _ in self.layers]
        image_layers = [module for _, module in self.layers[: kinds.index("linear")]] if "linear" in kinds else []
        # the convolutions our kernel runs (training.conv_pool), as each member's module does alone
        self.fused = conv_pool.fused_convs(image_layers) if self.has_convolution else None
        self._check_chain(models[0])

    @property
    def size(self) -> int:
        return self.params[0].shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, b, 784) images, member m's through member m's weights, or (b, 784) shared by every
        member (the first convolution then runs once, on every member's filters together)."""
        members = self.size
        shared = x.dim() == 2
        batch = x.shape[0] if shared else x.shape[1]
        params = iter(self.params)
        h, image, layers = x, False, self.layers
        if (not self.grouped or self.runs_conv_pool(x)) and self.has_convolution:
            first_linear = next(i for i, (kind, _) in enumerate(layers) if kind == "linear")
            h, layers = self._image_layers_alone(x, shared, batch, params, layers[:first_linear]), layers[first_linear:]
        for kind, module in layers:
            if kind == "conv":
                groups = members * module.groups
                if not image and shared:  # one channel shared: member m's filters are output channels m*oc...
                    h = h.reshape(batch, 1, IMAGE_SIDE, IMAGE_SIDE).to(memory_format=torch.channels_last)
                    groups = module.groups
                elif not image:  # (M, b, 784) -> (b, M, 28, 28) in channels-last memory: member m is channel m
                    side = IMAGE_SIDE
                    h = h.permute(1, 2, 0).reshape(batch, side, side, members).contiguous().permute(0, 3, 1, 2)
                image = True
                weight, bias = next(params), next(params)
                h = F.conv2d(
                    h,
                    # .to(), not .contiguous(): a one-channel weight must get channels-last strides too,
                    # as the module's own (models.build_model) have, or oneDNN picks other kernels
                    weight.reshape(-1, *weight.shape[2:]).to(memory_format=torch.channels_last),
                    bias.reshape(-1),
                    module.stride,
                    module.padding,
                    module.dilation,
                    groups=groups,
                )
            elif kind == "pool":
                h = F.max_pool2d(h, module.kernel_size, module.stride, module.padding, module.dilation)
            elif kind == "relu":
                h = F.relu(h)
            elif kind == "ink":  # the first layer, member by member in our kernel (training.ink_linear)
                h = ink_linear.linear(h, next(params), next(params))
            else:  # linear
                if image:  # (b, M*C, H, W) -> (M, b, C*H*W), each member's features in the module's flatten order
                    h = h.reshape(batch, members, -1).transpose(0, 1)
                    image = False
                elif h.dim() == 2:
                    h = h.expand(members, -1, -1)
                h = _StackedLinear.apply(h, next(params), next(params))
        return h

    def _image_layers_alone(self, x, shared, batch, params, layers) -> torch.Tensor:
        """Each member's layers before the first linear one as its module alone calls them
        (models.lenet's forward): (M, b, features), each member's in the module's flatten order."""
        convs = [(next(params), next(params)) for kind, _ in layers if kind == "conv"]
        if self.runs_conv_pool(x):
            paddings = [conv.padding[0] for conv in self.fused]
            if not x.requires_grad:  # every member's kernel calls in one autograd node (the same bits)
                return conv_pool.stacked_features(x, [(w, b, p) for (w, b), p in zip(convs, paddings)])
            return torch.stack(
                [
                    conv_pool.features(x if shared else x[m], [(w[m], b[m], p) for (w, b), p in zip(convs, paddings)])
                    for m in range(self.size)
                ]
            )
        out = []
        for m in range(self.size):
            h = (x if shared else x[m]).reshape(batch, 1, IMAGE_SIDE, IMAGE_SIDE)
            h = h.contiguous(memory_format=torch.channels_last)
            weights = iter(convs)
            for kind, module in layers:
                if kind == "conv":
                    weight, bias = next(weights)
                    # channels-last strides, as the module's own weight has (see forward)
                    weight = weight[m].to(memory_format=torch.channels_last)
                    h = F.conv2d(h, weight, bias[m], module.stride, module.padding, module.dilation, module.groups)
                elif kind == "pool":
                    h = F.max_pool2d(h, module.kernel_size, module.stride, module.padding, module.dilation)
                else:
                    h = F.relu(h)
            out.append(h.flatten(1))
        return torch.stack(out)

    def runs_conv_pool(self, x: torch.Tensor) -> bool:
        """Do its image layers run our kernel on this input (then member by member, never grouped)?"""
        return self.fused is not None and conv_pool.runs(x)

    def runs_ink_linear(self, x: torch.Tensor) -> bool:
        """Does its first layer run our ink kernel (training.ink_linear) on this input?"""
        return self.layers[0][0] == "ink" and ink_linear.runs(x, self.params[0])

    @property
    def has_convolution(self) -> bool:
        return any(kind == "conv" for kind, _ in self.layers)

    def select(self, members: list[int]) -> None:
        """Keep these members in this order (an index twice: a copy of that member)."""
        index = torch.tensor(members, dtype=torch.long, device=self.params[0].device)
        self.params = [p.detach().index_select(0, index).requires_grad_() for p in self.params]

    def state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member `member`'s parameters as the module's state dict (copies)."""
        return {name: p[member].detach().clone() for name, p in zip(self.names, self.params)}

    def load_state_dict(self, member: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, p in zip(self.names, self.params):
                p[member].copy_(state[name])

    def module(self, member: int) -> nn.Module:
        """A module of the architecture holding member `member`'s weights."""
        net = copy.deepcopy(self.template)
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(self.params[self.names.index(name)][member])
        return net

    def _check_chain(self, model: nn.Module) -> None:
        x = torch.randn(3, IMAGE_SIDE * IMAGE_SIDE, generator=torch.Generator().manual_seed(0)).to(self.params[0])
        with torch.no_grad():
            expected = model(x)
            got = StackedNet.forward(_first_member(self), x.unsqueeze(0))[0]
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise ValueError(
                f"{type(model).__name__}: its forward is not the chain of its layers {[k for k, _ in self.layers]}; "
                "a stack cannot train it"
            )


class _StackedLinear(torch.autograd.Function):
    """Every member's `F.linear` as one batched matmul, forward and backward.

    Each GEMM has the orientation of the one `F.linear` and its backward run for one
    member (out = x W^T + b; dx = g W; dW = g^T x; db = sum of g over the batch), so a
    member's bits are those of its own linear layer, whatever the stack around it.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        return grad_x, torch.bmm(grad.transpose(1, 2), x), grad.sum(1)


def _first_member(net: StackedNet) -> StackedNet:
    view = copy.copy(net)
    view.params = [p[:1] for p in net.params]
    return view


def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    kinds = {nn.Conv2d: "conv", nn.MaxPool2d: "pool", nn.ReLU: "relu", nn.Linear: "linear", InkLinear: "ink"}
    chain = []
    for name, module in model.named_modules():
        if len(list(module.children())):
            continue
        kind = kinds.get(type(module))
        if kind is None:
            raise ValueError(f"{type(model).__name__}: layer {name} ({type(module).__name__}) cannot be stacked")
        if kind == "conv" and module.padding_mode != "zeros":
            raise ValueError(f"{type(model).__name__}: layer {name}: only zero padding can be stacked")
        if kind == "ink" and chain:
            raise ValueError(f"{type(model).__name__}: layer {name} (InkLinear) takes the images: it must come first")
        if kind in ("conv", "linear") and module.bias is None:
            raise ValueError(f"{type(model).__name__}: layer {name} has no bias; a stack expects one")
        chain.append((kind, module))
    return chain


class StackedAdam:
    """Adam (torch's defaults, as `loop.FusedAdam`) over a stack, with a learning rate per member.

    Each member's update is torch's fused Adam kernel on its own slice of every parameter,
    one kernel call per distinct learning rate: the update `loop.FusedAdam` makes to that
    member alone, bit for bit. (Not one call on the whole stacked tensor: the kernel runs
    the last elements of each tensor it is given through its scalar tail, so a member's
    elements would round as they do alone only where the vector boundaries fall alike.)
    Every member has made as many steps as every other (they start together, and a member
    that parts from another copies its state), so one step count serves them all.
    """

    def __init__(self, net: StackedNet, lrs: list[float], betas=(0.9, 0.999), eps: float = 1e-8):
        self.net, self.betas, self.eps = net, betas, eps
        self.exp_avgs = [torch.zeros_like(p) for p in net.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in net.params]
        self.step_count = torch.zeros((), dtype=torch.float32, device=net.params[0].device)
        self.lrs = list(lrs)
        self._views()

    def _views(self) -> None:
        # one view per (parameter, member), parameter-major; rebuilt when the stack changes
        self.param_views = [p.detach().unbind(0) for p in self.net.params]
        self.avg_views = [s.unbind(0) for s in self.exp_avgs]
        self.sq_views = [s.unbind(0) for s in self.exp_avg_sqs]

    def zero_grad(self) -> None:
        for p in self.net.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        grads = [p.grad.unbind(0) for p in self.net.params]
        by_lr: dict[float, list[int]] = {}
        for member, lr in enumerate(self.lrs):
            by_lr.setdefault(lr, []).append(member)
        for lr, members in by_lr.items():
            fused_adam(
                _pick(self.param_views, members),
                _pick(grads, members),
                _pick(self.avg_views, members),
                _pick(self.sq_views, members),
                [self.step_count] * (len(members) * len(grads)),
                lr,
                self.betas,
                self.eps,
            )

    def select(self, members: list[int]) -> None:
        """Follow `StackedNet.select` (call it first): the moments of these members."""
        index = torch.tensor(members, dtype=torch.long, device=self.exp_avgs[0].device)
        self.exp_avgs = [s.index_select(0, index) for s in self.exp_avgs]
        self.exp_avg_sqs = [s.index_select(0, index) for s in self.exp_avg_sqs]
        self.lrs = [self.lrs[m] for m in members]
        self._views()


def _pick(views: list[tuple[torch.Tensor, ...]], members: list[int]) -> list[torch.Tensor]:
    """These members' views of every parameter, parameter-major."""
    return [v[m] for v in views for m in members]


def member_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each member's mean soft cross-entropy (`loop.soft_cross_entropy` per member): logits
    (members, n, classes), targets the same or (n, classes) shared by every member."""
    return -(targets * F.log_softmax(logits, dim=2)).sum(dim=2).mean(dim=1)


# ------------------------------------------------------------------ the kernel check

EVAL_BATCH = 4096  # images per forward pass when evaluating (loop.evaluate's batch)
MAX_SPARES = 3
_AGREEMENT: dict[tuple, bool] = {}


@dataclass(frozen=True)
class BatchShapes:
    train: tuple[int, ...]  # the training batch sizes (the full batch and the epoch's last, shorter one)
    evaluate: tuple[int, ...]  # the evaluation batch sizes


def batch_sizes(n: int, batch: int) -> tuple[int, ...]:
    """The batch sizes n images in batches of `batch` run at: the full batch and the last, shorter one."""
    return tuple(sorted({min(batch, n), n % batch} - {0}))


def stack_layout(net: StackedNet, members: int, shapes: BatchShapes) -> tuple[int, bool]:
    """(spares, grouped): how a stack of `members` runs so that each gets its bits alone.

    A library may pick a kernel by the channel count, and so round a grouped convolution's
    reductions differently for some stack sizes or on some CPUs (see the module docstring).
    `kernels_agree` checks a size before it is used; where grouped convolutions fail it, the
    stack trains up to MAX_SPARES spare copies of its last member (computed, never read) so
    that its size is one where they agree, and with none, runs its convolutions member by
    member (no spares). A model without convolutions tries the spares for its linear layers
    and otherwise trains as it is.
    """
    grouped = net.has_convolution
    for spares in range(MAX_SPARES + 1):
        if kernels_agree(net, members + spares, shapes, grouped):
            return spares, grouped
    return 0, False


def kernels_agree(net: StackedNet, size: int, shapes: BatchShapes, grouped: bool) -> bool:
    """Does a stack of `size` (its convolutions `grouped` or not) give its first and last
    member the bits they get alone?

    One training step (forward, soft cross-entropy, backward) at every training batch size
    and a forward pass at every evaluation batch size (images per member and shared), on
    random images, against the module alone (`loop.fit`'s computation). Kernels are chosen
    by shapes, not values, so the answer holds for the training; it is cached per
    architecture, size, layout, kernel (ours or torch's) and shapes.
    """
    if grouped and net.runs_conv_pool(net.params[0]):
        return False  # each member's image layers run our kernel, as alone: there is no grouped layout
    device = net.params[0].device
    probe = net.params[0].detach()
    kernel = (net.runs_conv_pool(probe), net.runs_ink_linear(probe))  # ours or torch's: each its own answer
    key = (tuple((kind, repr(module)) for kind, module in net.layers), size, grouped, kernel, shapes, str(device))
    if key not in _AGREEMENT:
        _AGREEMENT[key] = _probe(net.template, size, shapes, device, grouped)
    return _AGREEMENT[key]


def _probe(template: nn.Module, size: int, shapes: BatchShapes, device: torch.device, grouped: bool) -> bool:
    from softdigits.training.loop import soft_cross_entropy

    generator = torch.Generator().manual_seed(size)
    stack = StackedNet([template] * size)
    stack.grouped = grouped
    alone = copy.deepcopy(template)
    with torch.no_grad():
        classes = alone(torch.zeros(1, IMAGE_SIDE * IMAGE_SIDE, device=device)).shape[-1]
    for batch in shapes.train:
        x = torch.randn(size, batch, IMAGE_SIDE * IMAGE_SIDE, generator=generator).to(device)
        y = torch.softmax(torch.randn(size, batch, classes, generator=generator), dim=2).to(device)
        logits = stack(x)
        losses = member_losses(logits, y)
        grads = torch.autograd.grad(losses.sum(), stack.params)
        for m in {0, size - 1}:
            own = alone(x[m])
            own_grads = torch.autograd.grad(soft_cross_entropy(own, y[m]), list(alone.parameters()))
            if not torch.equal(own, logits[m]) or not all(torch.equal(a, b[m]) for a, b in zip(own_grads, grads)):
                return False
    with torch.no_grad():
        for batch in shapes.evaluate:
            x = torch.randn(batch, IMAGE_SIDE * IMAGE_SIDE, generator=generator).to(device)
            own = alone(x)
            if not torch.equal(stack(x.expand(size, -1, -1))[-1], own) or not torch.equal(stack(x)[-1], own):
                return False
    return True


# ------------------------------------------------------------------ training


@dataclass
class _Member:
    """One trajectory in the stack: its seed's batch generator and the regimes it still serves."""

    seed_index: int  # which of the job's seeds (and, for per-seed data, whose images)
    generator: torch.Generator
    regimes: list[_Regime]
    lr: float  # the rate of every regime it serves


class _MemberWeights:
    """What `_Regime.end_epoch` reads of a member: its state dict (for the best checkpoint)."""

    def __init__(self, net: StackedNet, member: int):
        self.net, self.member = net, member

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict(self.member)


OnDone = Callable[[int, int, FitResult, nn.Module], None]


def fit_stacked(
    models: list[nn.Module],
    seeds: list[int],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    regimes: list[TrainSettings],
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    track_dynamics: list[bool] | None = None,
    on_done: OnDone | None = None,
    record: dict | None = None,
) -> list[list[tuple[FitResult, nn.Module]]]:
    """Train every seed's regimes in one stack: [seed][regime] -> (result, final module).

    `models[s]` is seed `seeds[s]`'s freshly initialised model (every one the same
    architecture). `x_train`/`y_train` are shared, (n, 784) and (n, classes), or per seed,
    (seeds, n, 784) and (seeds, n, classes); the validation set is shared. Each seed is
    trained as `loop.fit_shared(models[s], ..., regimes, seeds[s], ...)` trains it: its
    generator seeded with its seed, its regimes on one trajectory until they part.
    `on_done(s, r, result, module)` is called as soon as seed s's regime r ends.
    `record`, when given, receives what the stack did: `members` (trajectories trained),
    `member_epochs` (epochs summed over them), `spare_member_epochs` (epochs of spare members,
    see `stack_layout`), `grouped` (whether every stack size used ran grouped convolutions;
    false for a model without any), `conv_pool` (whether the image layers ran our kernel,
    `training.conv_pool`, rather than torch's), `ink_linear` (whether an FFN's first layer ran
    our kernel, `training.ink_linear`, rather than torch's matmul) and `alone_bits` (whether the kernel check passed
    at every stack size used: every result is then bit for bit the one `loop.fit_shared` gives
    the seed).
    """
    if len(models) != len(seeds):
        raise ValueError(f"{len(models)} models for {len(seeds)} seeds")
    track_dynamics = track_dynamics or [False] * len(regimes)
    for settings in regimes:
        if (settings.early_stopping_patience is not None or settings.plateau_factor is not None) and x_val is None:
            raise ValueError("early stopping and the LR scheduler need a validation set")
    sizes = {s.batch_size for s in regimes}
    if len(sizes) != 1:
        raise ValueError(f"the regimes of a stack share one batch size; got {sorted(sizes)}")
    batch_size = sizes.pop()
    per_seed = x_train.dim() == 3
    if per_seed and x_train.shape[0] != len(seeds):
        raise ValueError(f"per-seed training images for {x_train.shape[0]} seeds, not {len(seeds)}")

    runs = [[_Regime(settings, track) for settings, track in zip(regimes, track_dynamics)] for _ in seeds]
    members = []
    for s, seed in enumerate(seeds):
        for lr, same in _grouped(runs[s]).items():  # regimes that start at one rate share a trajectory
            generator = torch.Generator()
            generator.manual_seed(seed)  # the batches fit_shared draws for this seed
            members.append(_Member(s, generator, same, lr))
    n = x_train.shape[-2]
    shapes = BatchShapes(
        train=batch_sizes(n, batch_size),
        evaluate=() if x_val is None else batch_sizes(len(x_val), EVAL_BATCH),
    )
    net = StackedNet([models[m.seed_index] for m in members])
    stats = {"members": len(members), "member_epochs": 0, "spare_member_epochs": 0}
    stats.update(
        grouped=net.has_convolution,
        conv_pool=net.runs_conv_pool(x_train),
        ink_linear=net.runs_ink_linear(x_train),
        alone_bits=True,
    )

    def spare_members_for(real: int) -> int:
        spares, net.grouped = stack_layout(net, real, shapes)
        stats["grouped"] &= net.grouped
        stats["alone_bits"] &= kernels_agree(net, real + spares, shapes, net.grouped)
        return spares

    spares = spare_members_for(len(members))
    keep = list(range(len(members)))
    net.select(keep + keep[-1:] * spares)
    optimiser = StackedAdam(net, [m.lr for m in members] + [members[-1].lr] * spares)
    results: list[list] = [[None] * len(regimes) for _ in seeds]
    labels_train = y_train.argmax(-1)
    while members:
        rows, probs = _epoch(net, optimiser, members, x_train, y_train, labels_train, per_seed, batch_size, n)
        stats["member_epochs"] += len(members)
        stats["spare_member_epochs"] += spares
        if x_val is not None:
            for row, (loss, acc) in zip(rows, _evaluate(net, x_val, y_val)):
                row["val_loss"], row["val_acc"] = loss, acc
        keep, going_members = [], []
        for i, member in enumerate(members):
            for run in member.regimes:
                run.end_epoch(rows[i], None if probs is None else probs[i], _MemberWeights(net, i))
            for run in (r for r in member.regimes if r.done):
                run.model = net.module(i)
                run.final = (run.result(), run.finish())
                r = runs[member.seed_index].index(run)
                results[member.seed_index][r] = run.final
                if on_done is not None:
                    on_done(member.seed_index, r, *run.final)
            going = [r for r in member.regimes if not r.done]
            for k, (lr, same) in enumerate(_grouped(going).items()):
                generator = member.generator
                if k:  # the regimes part: these go on from a copy of the trajectory
                    generator = torch.Generator()
                    generator.set_state(member.generator.get_state())
                keep.append(i)
                going_members.append(_Member(member.seed_index, generator, same, lr))
                stats["members"] += k > 0
        members = going_members
        if members and (keep != list(range(len(keep))) or len(keep) + spares != net.size):
            spares = spare_members_for(len(keep))
            net.select(keep + keep[-1:] * spares)
            optimiser.select(keep + keep[-1:] * spares)
        optimiser.lrs = [m.lr for m in members] + [members[-1].lr] * spares if members else []
    if record is not None:
        record.update(stats)
    return results


def _grouped(runs: list[_Regime]) -> dict[float, list[_Regime]]:
    """Regimes by their learning rate now, in the order given (one trajectory per rate)."""
    groups: dict[float, list[_Regime]] = {}
    for run in runs:
        groups.setdefault(run.lr, []).append(run)
    return groups


def _epoch(net, optimiser, members, x_train, y_train, labels_train, per_seed, batch_size, n):
    """One epoch of every member over its own permutation of the training images.

    Returns one history row per member and, when any member tracks dynamics, every
    member's (n, classes) probabilities from its training batches, in image order.
    """
    device, size, real = x_train.device, net.size, len(members)
    orders = torch.stack([torch.randperm(n, generator=m.generator) for m in members]).to(device)
    orders = torch.cat([orders, orders[-1:].expand(size - real, n)])  # spares repeat the last member's batches
    rows_of = orders
    if per_seed:  # member m reads its own seed's images: rows of the (seeds * n) flattened set
        owners = [m.seed_index for m in members] + [members[-1].seed_index] * (size - real)
        rows_of = orders + torch.tensor(owners, device=device)[:, None] * n
    x_flat = x_train.reshape(-1, x_train.shape[-1])
    y_flat = y_train.reshape(-1, y_train.shape[-1])
    labels_flat = labels_train.reshape(-1)
    track = any(r.track_dynamics for m in members for r in m.regimes)
    loss_sum = torch.zeros(size, device=device)
    correct = torch.zeros(size, dtype=torch.long, device=device)
    batch_probs = []
    for start in range(0, n, batch_size):
        # Each step gathers its own rows (a few MB that stay in cache), not the epoch's
        # (members x n x 784, tens of MB, written out and read back once per epoch).
        index = rows_of[:, start : start + batch_size].reshape(-1)
        xb = x_flat.index_select(0, index).view(size, -1, x_flat.shape[-1])
        yb = y_flat.index_select(0, index).view(size, -1, y_flat.shape[-1])
        labels = labels_flat.index_select(0, index).view(size, -1)
        logits = net(xb)
        losses = member_losses(logits, yb)
        optimiser.zero_grad()
        losses.sum().backward()
        optimiser.step()
        logits = logits.detach()
        loss_sum += losses.detach() * xb.shape[1]
        correct += (logits.argmax(2) == labels).sum(1)
        if track:
            batch_probs.append(F.softmax(logits, dim=2))
    rows = [
        {
            "train_loss": float(loss) / n,
            "train_acc": int(right) / n,
            "val_loss": math.nan,
            "val_acc": math.nan,
            "lr": lr,
        }
        for loss, right, lr in zip(loss_sum[:real].tolist(), correct[:real].tolist(), optimiser.lrs)
    ]
    probs = None
    if track:
        by_position = torch.cat(batch_probs, dim=1)[:real]
        probs = torch.empty_like(by_position)
        probs.scatter_(1, orders[:real, :, None].expand_as(by_position), by_position)  # back to image order
        probs = probs.cpu().numpy()
    return rows, probs


@torch.inference_mode()
def _evaluate(
    net: StackedNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH
) -> list[tuple[float, float]]:
    """Every member's (loss, accuracy) of soft targets `y` on the shared images `x` (as `loop.evaluate`)."""
    members = net.size
    loss = torch.zeros(members, device=x.device)
    correct = torch.zeros(members, dtype=torch.long, device=x.device)
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits = net(xb.expand(members, -1, -1))
        loss += member_losses(logits, yb) * len(yb)
        correct += (logits.argmax(2) == yb.argmax(1)).sum(1)
    return [(float(v) / len(x), int(c) / len(x)) for v, c in zip(loss.tolist(), correct.tolist())]
