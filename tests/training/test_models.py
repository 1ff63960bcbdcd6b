"""The model registry: output shapes, parameter counts, seeded initialisation, a torch-free registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from softdigits.training import conv_pool
from softdigits.training.models import MODELS, build_model, lenet, model_name, n_parameters


@pytest.mark.parametrize(
    "name, expected",
    # 784*128+128 + 128*10+10; 784*256+256 + 256*128+128 + 128*10+10;
    # (6*25+6) + (16*6*25+16) + (400*120+120) + (120*84+84) + (84*10+10)
    [("simple_ffn", 101_770), ("deeper_ffn", 235_146), ("lenet", 61_706)],
)
def test_output_shape_and_parameter_count(name, expected):
    model = build_model(name, seed=0)
    assert n_parameters(model) == expected
    assert model(torch.randn(5, 784)).shape == (5, 10)


def test_lenet_without_padding_is_the_ddu_variant():
    model = lenet(padding=0)
    assert model.classifier[0].in_features == 16 * 4 * 4
    assert n_parameters(model) == 156 + 2_416 + (256 * 120 + 120) + 10_164 + 850
    assert model(torch.randn(3, 784)).shape == (3, 10)


def test_lenet_pooling_before_relu_is_the_textbook_function():
    """Our layer order (pool, then ReLU) gives the same outputs and gradients as ReLU, then pool,
    on torch's kernels (our own kernel is held to torch's layers in test_conv_pool.py)."""
    ours = build_model("lenet", seed=3)
    f = ours.features
    textbook = nn.Sequential(f[0], nn.ReLU(), nn.MaxPool2d(2), f[3], nn.ReLU(), nn.MaxPool2d(2))
    x = torch.randn(8, 784)
    image = x.view(-1, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    expected = ours.classifier(textbook(image).flatten(1))
    with conv_pool.switched_off():
        got = ours(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    grad_got = torch.autograd.grad(got.sum(), f[0].weight)[0]
    grad_expected = torch.autograd.grad(expected.sum(), f[0].weight)[0]
    torch.testing.assert_close(grad_got, grad_expected)


def test_seed_fixes_initial_weights():
    for name in MODELS:
        a, b, c = build_model(name, 1), build_model(name, 1), build_model(name, 2)
        pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_unknown_model_is_named():
    with pytest.raises(KeyError, match="resnet"):
        build_model("resnet", 0)


def test_the_registry_is_read_without_torch():
    """The workflow and the evaluation jobs read names and priorities; none of them imports torch."""
    import subprocess
    import sys

    code = "import sys; from softdigits.training import models; assert 'torch' not in sys.modules, 'torch'; print(models.MODELS['lenet'].display)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "LeNet"
    assert model_name("lenet") == "LeNet" and model_name("no_such_model") == "no_such_model"
