"""How our C kernels are built and switched (softdigits.training.native), for each of them."""

from __future__ import annotations

import shutil

import pytest

from softdigits.training import conv_pool, ink_linear, native

KERNELS = [conv_pool.KERNEL, ink_linear.KERNEL]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_the_switch_takes_on_or_off_and_names_itself_otherwise(kernel, monkeypatch):
    for value, on in (("on", True), ("off", False)):
        monkeypatch.setenv(kernel.switch, value)
        assert kernel.switched_on() is on
    monkeypatch.setenv(kernel.switch, "0")
    with pytest.raises(native.SwitchError, match=f"environment variable {kernel.switch}='0': use on or off"):
        kernel.available()


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_switched_off_inside_a_block_only(kernel):
    if not kernel.available():
        pytest.skip("no C compiler here")
    with kernel.switched_off():
        assert not kernel.available()
    assert kernel.available()


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_the_build_is_cached_per_source_compiler_and_cpu(kernel, tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no cc")
    first = kernel.build(directory=tmp_path)
    assert first.name.startswith(f"{kernel.name}-")
    stamp = first.stat().st_mtime_ns
    assert kernel.build(directory=tmp_path) == first and first.stat().st_mtime_ns == stamp
    other = kernel.build(flags=native.FLAGS + ("-O2",), directory=tmp_path)
    assert other != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])  # no temporary left


def test_the_two_kernels_cache_apart(tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no cc")
    assert conv_pool.KERNEL.build(directory=tmp_path) != ink_linear.KERNEL.build(directory=tmp_path)
