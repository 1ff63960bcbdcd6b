"""The FFNs' first layer in our kernel (softdigits.training.ink_linear): F.linear's function within
float32 rounding, the same bits from every build and in a stack, torch's matmul where it is not built."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from kernel_fixture import assert_every_build_gives_the_same_bits, digest, lattice, without_a_compiler

from softdigits.training import ink_linear
from softdigits.training.ink_linear import InkLinear
from softdigits.training.loop import TrainSettings
from softdigits.training.models import build_model
from softdigits.training.stack import StackedNet, fit_stacked, member_losses

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not ink_linear.available(), reason="no C compiler here: the FFNs run torch's matmul")


def digits(n: int, seed: int = 0, ink: float = 0.2) -> torch.Tensor:
    """Normalised digit-like rows: a background value on about 1 - ink of the pixels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 784, generator=g)
    x[torch.rand(n, 784, generator=g) > ink] = 0.0
    return (x - 0.13) / 0.31


def layer(out: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    module = InkLinear(784, out)
    return module.weight_t.detach().requires_grad_(), module.bias.detach().requires_grad_()


@pytest.mark.parametrize("n, out, ink", [(64, 128, 0.2), (64, 256, 0.2), (7, 128, 1.0), (1, 256, 0.05), (33, 8, 0.2)])
def test_the_kernel_is_f_linear_within_float32_rounding(n, out, ink):
    x = digits(n, ink=ink)
    weight_t, bias = layer(out)
    got = ink_linear.linear(x, weight_t.unsqueeze(0), bias.unsqueeze(0))[0]
    expected = F.linear(x, weight_t.t(), bias)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)  # sums of up to 784 terms
    grad = torch.randn(got.shape, generator=torch.Generator().manual_seed(1))
    ours = torch.autograd.grad(got, (weight_t, bias), grad)
    theirs = torch.autograd.grad(expected, (weight_t, bias), grad)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_it_is_a_realisation_of_its_own():
    """Not torch's bits: the check can tell the two apart."""
    x = digits(64)
    weight_t, bias = layer(128)
    assert not torch.equal(ink_linear.linear(x, weight_t[None], bias[None])[0], F.linear(x, weight_t.t(), bias))


def test_a_nan_or_an_infinity_comes_out_as_f_linear_gives_it():
    x = digits(6)
    x[1, 300] = float("nan")
    x[2, 5] = float("inf")
    x[3, :] = float("-inf")
    weight_t, bias = layer(128)
    got = ink_linear.linear(x, weight_t[None], bias[None])[0]
    expected = F.linear(x, weight_t.t(), bias)
    assert torch.equal(got.isnan(), expected.isnan()) and got[1].isnan().all()
    assert torch.equal(got.isinf(), expected.isinf()) and got[2].isinf().any()
    torch.testing.assert_close(got[[0, 4, 5]], expected[[0, 4, 5]], rtol=1e-5, atol=2e-5)


def test_a_row_without_background_is_still_the_layer():
    """Every pixel different (no value repeats): nothing is skipped, the function is the same."""
    x = torch.linspace(-1, 2, 784).repeat(3, 1)
    weight_t, bias = layer(128)
    torch.testing.assert_close(
        ink_linear.linear(x, weight_t[None], bias[None])[0], F.linear(x, weight_t.t(), bias), rtol=1e-5, atol=2e-5
    )


def test_the_module_is_torchs_linear_layer_initialised_alike():
    """The same draws as nn.Linear, so a seed gives the same initial weights and leaves the
    generator where nn.Linear leaves it (the model's next layers draw the same)."""
    torch.manual_seed(3)
    theirs, after_theirs = torch.nn.Linear(784, 128), torch.randn(5)
    torch.manual_seed(3)
    ours, after_ours = InkLinear(784, 128), torch.randn(5)
    assert torch.equal(ours.weight_t, theirs.weight.t()) and torch.equal(ours.bias, theirs.bias)
    assert torch.equal(after_ours, after_theirs)


def outputs():
    """The forward and both gradients on FFN shapes, from one build."""
    out = []
    for n, width in ((64, 128), (64, 256), (5, 8)):
        x = digits(n, seed=2)
        weight_t, bias = layer(width, seed=2)
        y = ink_linear.linear(x, weight_t[None], bias[None])
        out += [y, *torch.autograd.grad(y.square().sum(), (weight_t, bias))]
    return out


def test_every_build_gives_the_same_bits(tmp_path):
    assert_every_build_gives_the_same_bits(ink_linear.KERNEL, outputs, tmp_path)


# The kernel's bits on fixed inputs (machine-independent: see kernel_fixture.lattice), recorded
# from the kernel's first realisation. A change to ink_linear.c that moves one bit is a new
# realisation of every FFN: it fails here and has to say so (docs/results.md).
PINNED = "98276db1ef6c906d256518f5ba494c3ac1cda5515c4cb36964270eff66a1aa8f"


def pinned_outputs():
    out = []
    for n, width, seed in ((64, 128, 0), (64, 256, 1), (5, 8, 2)):
        x = lattice(n, 784, seed=seed)
        x[x < 0.6] = -0.42  # the background: four-fifths of the pixels
        weight_t = (lattice(1, 784, width, seed=seed + 10) / 20).requires_grad_()
        bias = (lattice(1, width, seed=seed + 20) / 20).requires_grad_()
        y = ink_linear.linear(x, weight_t, bias)
        out += [y, *torch.autograd.grad(y, (weight_t, bias), lattice(*y.shape, seed=seed + 30))]
    return out


def test_the_kernels_bits_are_the_recorded_ones():
    outputs = pinned_outputs()
    assert digest(outputs) == PINNED
    outputs[0] = torch.nextafter(outputs[0], torch.full_like(outputs[0], 1e9))  # one ulp on every output
    assert digest(outputs) != PINNED


@pytest.mark.parametrize("model", ["simple_ffn", "deeper_ffn"])
def test_a_stack_member_gets_its_modules_bits(model):
    models = [build_model(model, s) for s in range(3)]
    net = StackedNet(models)
    x = torch.stack([digits(40, seed=s) for s in range(3)])
    y = torch.softmax(torch.randn(3, 40, 10), dim=2)
    logits = net(x)
    grads = torch.autograd.grad(member_losses(logits, y).sum(), net.params)
    for m, module in enumerate(models):
        own = module(x[m])
        assert torch.equal(own, logits[m])
        own_grads = torch.autograd.grad(-(y[m] * F.log_softmax(own, 1)).sum(1).mean(), list(module.parameters()))
        assert all(torch.equal(a, b[m]) for a, b in zip(own_grads, grads))
    shared = digits(30, seed=9)  # evaluation: one set of images for every member
    with torch.no_grad():
        assert torch.equal(net(shared)[1], models[1](shared))


def test_a_training_records_which_kernel_ran():
    """The manifest's `stack.ink_linear` (fit_stacked's record): true on our kernel, false on torch's."""
    x = digits(40)
    y = torch.softmax(torch.randn(40, 10), dim=1)
    settings = TrainSettings(max_epochs=1, batch_size=16)
    for on in (True, False):
        record = {}
        with contextlib.nullcontext() if on else ink_linear.switched_off():
            fit_stacked([build_model("simple_ffn", 0)], [0], x, y, [settings], record=record)
        assert record["ink_linear"] is on and record["alone_bits"]


def test_widths_the_kernel_does_not_cover_run_on_torch():
    x = digits(4)
    weight_t, bias = torch.randn(1, 784, 10), torch.randn(1, 10)  # 10 outputs: not a multiple of 8
    assert not ink_linear.runs(x, weight_t)
    torch.testing.assert_close(ink_linear.linear(x, weight_t, bias)[0], F.linear(x, weight_t[0].t(), bias[0]))
    with pytest.raises(RuntimeError, match="ink_linear forward: a shape the kernel does not cover"):
        ink_linear._InkLinear.apply(x, weight_t, bias)


def test_it_must_be_a_models_first_layer():
    from torch import nn

    with pytest.raises(ValueError, match="InkLinear.*must come first"):
        StackedNet([nn.Sequential(nn.Linear(784, 784), InkLinear(784, 16))])


def test_without_a_compiler_the_ffns_run_torchs_matmul(monkeypatch, caplog, tmp_path):
    without_a_compiler(ink_linear.KERNEL, monkeypatch, tmp_path)
    with caplog.at_level(logging.WARNING):
        assert not ink_linear.available()
    assert "ink_linear: not built" in caplog.text and "the FFNs' first layer runs torch's matmul" in caplog.text
    model = build_model("simple_ffn", 0)
    x = digits(4)
    with ink_linear.switched_off():
        expected = model(x)
    assert torch.equal(model(x), expected)


def test_the_kernels_source_is_code_of_every_job_that_trains_an_ffn():
    """Editing ink_linear.c reruns the jobs that ran it, and their manifests fingerprint it."""
    from softdigits import provenance

    for script in ("train_run", "cartography_train"):
        files = {Path(f).name for f in provenance.script_code(REPO / "scripts" / f"{script}.py")}
        assert {"ink_linear.py", "ink_linear.c", "native.py"} <= files


def test_a_bad_shape_is_a_one_line_error_and_the_module_takes_any_leading_dims():
    weight_t, bias = layer(16)
    with pytest.raises(ValueError, match=r"ink_linear: images of shape \(4, 783\) for 1 layers of 784 inputs"):
        ink_linear.linear(torch.zeros(4, 783), weight_t[None], bias[None])
    with pytest.raises(ValueError, match=r"images of shape \(2, 4, 784\) for 1 layers"):
        ink_linear.linear(torch.zeros(2, 4, 784), weight_t[None], bias[None])
    with pytest.raises(ValueError, match="need no gradient"):
        ink_linear.linear(digits(4).requires_grad_(), weight_t[None], bias[None])
    torch.manual_seed(0)
    module = InkLinear(784, 16)
    x = digits(6).reshape(2, 3, 784)
    assert module(x).shape == (2, 3, 16) and torch.equal(module(x)[1], module(x[1]))
    assert torch.equal(module(x[0, 0]), module(x[0, :1])[0])


def test_one_batch_expanded_to_every_member_is_the_shared_batch():
    x = digits(20)
    weight_t = torch.stack([layer(16, seed=s)[0] for s in range(3)]).detach()
    bias = torch.zeros(3, 16)
    assert torch.equal(ink_linear.linear(x.expand(3, -1, -1), weight_t, bias), ink_linear.linear(x, weight_t, bias))
