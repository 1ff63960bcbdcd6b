"""Stacked training: every member of a stack trains as it would alone (training.stack)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softdigits.training import stack
from softdigits.training.loop import TrainSettings, evaluate, fit_shared, soft_cross_entropy
from softdigits.training.models import build_model
from softdigits.training.stack import StackedNet, fit_stacked, kernels_agree


def data(n: int, seed: int, classes: int = 10):
    """Images with a class signal (each class its own mean pattern) and soft targets."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(classes, 784, generator=torch.Generator().manual_seed(99))
    labels = torch.arange(n) % classes
    x = torch.randn(n, 784, generator=g) + 1.5 * patterns[labels]
    y = 0.8 * torch.nn.functional.one_hot(labels, classes).float() + 0.2 * torch.softmax(
        torch.randn(n, classes, generator=g), 1
    )
    return x, y


X, Y = data(200, 0)
# An uninformative validation set: its loss soon rises, so regime 1 lowers its rate and stops
XV = torch.randn(60, 784, generator=torch.Generator().manual_seed(1))
YV = torch.softmax(2 * torch.randn(60, 10, generator=torch.Generator().manual_seed(2)), 1)
FIRST = TrainSettings(max_epochs=25, early_stopping_patience=4, plateau_factor=0.5, plateau_patience=1, batch_size=32)
SECOND = TrainSettings(max_epochs=9, batch_size=32)


def same_fit(a, b) -> bool:
    (ra, ma), (rb, mb) = a, b
    return (
        ra.history.equals(rb.history)
        and ra.best_epoch == rb.best_epoch
        and (ra.train_probs is None) == (rb.train_probs is None)
        and (ra.train_probs is None or np.array_equal(ra.train_probs, rb.train_probs))
        and all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))
    )


@pytest.mark.parametrize("name", ["simple_ffn", "lenet"])
def test_every_seed_of_a_stack_trains_bit_for_bit_as_alone(name):
    """Three seeds, both regimes (a plateau, an early stop, a parting of the regimes): every
    history, dynamics array, best epoch and final weight equals loop.fit_shared's for that seed
    alone. A LeNet stack runs grouped convolutions at a size where the kernel check passes
    (adding spare members to reach one) and its convolutions member by member where none
    does (CPUs differ: tests/training/test_stack.py forces that case below)."""
    seeds = [3, 4, 5]
    record = {}
    done = []
    stacked = fit_stacked(
        [build_model(name, s) for s in seeds],
        seeds,
        X,
        Y,
        [FIRST, SECOND],
        XV,
        YV,
        [False, True],
        on_done=lambda s, r, result, net: done.append((s, r)),
        record=record,
    )
    assert record["alone_bits"] and record["members"] > len(seeds)  # the regimes did part
    assert sorted(done) == [(s, r) for s in range(3) for r in range(2)]
    for s, seed in enumerate(seeds):
        alone = fit_shared(build_model(name, seed), X, Y, [FIRST, SECOND], seed, XV, YV, [False, True])
        lr = alone[0][0].history["lr"].to_numpy()
        assert (lr < lr[0]).any() or len(alone[0][0].history) < 25
        assert same_fit(stacked[s][0], alone[0]) and same_fit(stacked[s][1], alone[1]), (name, seed)
    # and the comparison can fail: seed 3's results are not seed 4's
    assert not same_fit(stacked[0][1], stacked[1][1])


def test_per_seed_training_sets():
    """Each seed may train on images of its own (Table 5's subsets): member s reads only x[s]."""
    seeds = [0, 1]
    xs, ys = torch.stack([X, data(200, 7)[0]]), torch.stack([Y, data(200, 7)[1]])
    stacked = fit_stacked([build_model("simple_ffn", s) for s in seeds], seeds, xs, ys, [SECOND])
    for s, seed in enumerate(seeds):
        [alone] = fit_shared(build_model("simple_ffn", seed), xs[s], ys[s], [SECOND], seed)
        assert same_fit(stacked[s][0], alone)
    [other] = fit_shared(build_model("simple_ffn", 1), xs[0], ys[0], [SECOND], 1)
    assert not same_fit(stacked[1][0], other)


def test_a_stack_is_the_chain_of_the_modules_layers():
    """Member by member (the default) each member's logits are its module's bits; grouped,
    the same to float rounding (whether bit for bit depends on the CPU's kernels)."""
    models = [build_model("lenet", s) for s in range(4)]
    net = StackedNet(models)
    x = torch.randn(4, 5, 784)
    with torch.no_grad():
        got = net(x)
        net.grouped = True
        grouped = net(x)
    for m, model in enumerate(models):
        with torch.no_grad():
            own = model(x[m])
        torch.testing.assert_close(got[m], own, rtol=0, atol=0)
        torch.testing.assert_close(grouped[m], own)
        assert all(torch.equal(a, b) for a, b in zip(net.module(m).state_dict().values(), model.state_dict().values()))


def test_where_grouped_convolutions_disagree_a_lenet_stack_runs_them_member_by_member(monkeypatch):
    """A CPU whose grouped kernels round otherwise at every size: the stack records that it
    ran no grouped convolution, adds no spare, and still trains each seed bit for bit as alone."""
    real = stack.kernels_agree
    monkeypatch.setattr(
        stack, "kernels_agree", lambda net, size, shapes, grouped: not grouped and real(net, size, shapes, grouped)
    )
    seeds, record = [3, 4], {}
    stacked = fit_stacked([build_model("lenet", s) for s in seeds], seeds, X, Y, [SECOND], XV, YV, record=record)
    assert record["grouped"] is False and record["alone_bits"] and record["spare_member_epochs"] == 0
    for s, seed in enumerate(seeds):
        [alone] = fit_shared(build_model("lenet", seed), X, Y, [SECOND], seed, XV, YV)
        assert same_fit(stacked[s][0], alone)


def test_a_model_whose_forward_is_not_its_chain_is_refused():
    class Doubled(torch.nn.Sequential):
        def forward(self, x):
            return 2 * super().forward(x)

    torch.manual_seed(0)
    model = Doubled(torch.nn.Linear(784, 10))
    with pytest.raises(ValueError, match="Doubled: its forward is not the chain of its layers"):
        StackedNet([model])
    with pytest.raises(ValueError, match="layer 1 \\(Dropout\\) cannot be stacked"):
        StackedNet([torch.nn.Sequential(torch.nn.Linear(784, 10), torch.nn.Dropout())])


def test_the_kernel_check_says_no_when_a_member_would_round_otherwise(monkeypatch):
    """kernels_agree compares a stack's members with the module alone; a stack that rounds
    one sum otherwise must fail it. Here the last member's weight gradients are one float
    step (1 ulp) off: the smallest difference there is, and one every machine makes alike
    (another kernel orientation, tried first, gives the same bits on some CPUs)."""
    shapes = stack.BatchShapes(train=(32,), evaluate=(60,))
    net = StackedNet([build_model("simple_ffn", 0)] * 2)
    stack._AGREEMENT.clear()
    assert kernels_agree(net, 2, shapes, grouped=False)

    exact = stack._StackedLinear.backward

    def one_step_off(ctx, grad):
        grad_x, grad_weight, grad_bias = exact(ctx, grad)
        last = grad_weight[-1]
        grad_weight = torch.cat([grad_weight[:-1], torch.nextafter(last, torch.full_like(last, math.inf)).unsqueeze(0)])
        return grad_x, grad_weight, grad_bias

    monkeypatch.setattr(stack._StackedLinear, "backward", staticmethod(one_step_off))
    stack._AGREEMENT.clear()
    assert not kernels_agree(net, 2, shapes, grouped=False)
    stack._AGREEMENT.clear()


def test_a_member_one_rounding_away_trains_alike_and_ends_alike_in_distribution():
    """Where no stack layout passes the kernel check (`alone_bits: false`), members round
    differently from alone (the last bit of some sums). What that does: a member whose initial weights are one
    float step (1 ulp) from alone's. Stated tolerance: its first epoch's training and
    validation losses within 1e-3 (relative) of alone's (one rounding can change a max-pooling
    window's winner: 4.4e-4 seen on the validation loss of one seed in six); at the end, over 6 seeds, the paired
    differences of the final validation accuracy have a mean within 2 standard errors of 0 (and
    within 0.05), while a genuinely different training (10x the learning rate) is not."""
    seeds = list(range(6))
    settings = TrainSettings(max_epochs=5, batch_size=32)
    xv, yv = data(120, 2)

    def nudged(seed):
        model = build_model("lenet", seed)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))
        return model

    stacked = fit_stacked([nudged(s) for s in seeds], seeds, X, Y, [settings], xv, yv)
    alone, faster = [], []
    for seed in seeds:
        model = build_model("lenet", seed)
        alone.append((fit_shared(model, X, Y, [settings], seed, xv, yv)[0][0], model))
        model = build_model("lenet", seed)
        fit_shared(model, X, Y, [TrainSettings(lr=1e-2, max_epochs=5, batch_size=32)], seed, xv, yv)
        faster.append(model)
    for (result, _), (own, _) in zip((s[0] for s in stacked), alone):
        first, mine = result.rows[0], own.rows[0]
        assert first["train_loss"] == pytest.approx(mine["train_loss"], rel=1e-3)
        assert first["val_loss"] == pytest.approx(mine["val_loss"], rel=1e-3)
    assert any(not same_fit(s[0], a) for s, a in zip(stacked, alone))  # they did round differently

    def accuracy(models):
        return np.array([evaluate(m, xv, yv)[1] for m in models])

    base = accuracy([m for _, m in alone])
    for other, alike in ((accuracy([s[0][1] for s in stacked]), True), (accuracy(faster), False)):
        diff = other - base
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if diff.std() > 0 else 0.0
        indistinguishable = abs(diff.mean()) <= max(2 * se, 1e-12) and abs(diff.mean()) <= 0.05
        assert indistinguishable == alike, (diff, se)


def test_stacked_loss_is_each_members_soft_cross_entropy():
    x, y = torch.randn(3, 16, 784), torch.softmax(torch.randn(3, 16, 10), 2)
    models = [build_model("deeper_ffn", s) for s in range(3)]
    logits = StackedNet(models)(x)
    losses = -(y * torch.log_softmax(logits, 2)).sum(2).mean(1)
    for m, model in enumerate(models):
        assert torch.equal(losses[m], soft_cross_entropy(model(x[m]), y[m]))
