"""The per-rule conda envs parse, agree with the pip pins, and every rule uses one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
# conda-forge names of packages whose PyPI name differs.
CONDA_TO_PIP = {"pytorch": "torch"}


def pip_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt: {line!r} is not pinned with =="
            pins[name.lower()] = version
    return pins


def env_pins(env: dict) -> dict[str, str]:
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                name, _, version = pip_dep.partition("==")
                pins[name.lower()] = version
        elif dep not in ("pip",):
            name, _, version = dep.partition("=")
            pins[CONDA_TO_PIP.get(name.lower(), name.lower())] = version
    return pins


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_parses_and_pins_agree_with_requirements(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"][0] == "conda-forge"
    pins = env_pins(env)
    requirements = pip_pins()
    for name, version in pins.items():
        if name == "python":
            assert version == "3.11", f"{path.name}: python {version}"
            continue
        assert version, f"{path.name}: {name} is not pinned"
        assert name in requirements, f"{path.name}: {name} is not in requirements.txt"
        assert (
            version == requirements[name]
        ), f"{path.name}: {name}={version} but requirements.txt pins {requirements[name]}"


def rule_blocks():
    """(file, rule name, body) for every rule in rules/*.smk."""
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M):
            yield smk.name, match.group(1), match.group(2)


def test_every_rule_has_log_benchmark_threads_resources_and_env():
    blocks = list(rule_blocks())
    assert blocks, "no rules found"
    env_names = {p.name for p in ENVS}
    for smk, rule, body in blocks:
        for directive in ("log:", "benchmark:", "threads:", "resources:", "conda:"):
            assert re.search(rf"^\s+{directive}", body, re.M), f"{smk}: rule {rule} lacks {directive}"
        env = re.search(r"conda:\s*\n?\s*\"(?:\.\./)?envs/([\w.-]+)\"", body)
        assert env and env.group(1) in env_names, f"{smk}: rule {rule} names no env in envs/"
