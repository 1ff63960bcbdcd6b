"""Config validation: every shipped config is valid; a typo or wrong type names the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from softdigits.config import ConfigError, validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "schemas" / "config.schema.yaml"


def merged(*overlays: Path) -> dict:
    """The default config with overlays merged in the way Snakemake merges --configfile."""

    def update(base: dict, over: dict) -> None:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value

    config = yaml.safe_load((REPO / "workflow_config.yaml").read_text())
    for overlay in overlays:
        update(config, yaml.safe_load(overlay.read_text()) or {})
    return config


@pytest.mark.parametrize("overlay", [None, "config/test.yaml", "config/paper.yaml"])
def test_shipped_configs_are_valid(overlay):
    validate_config(merged(*([REPO / overlay] if overlay else [])), SCHEMA)


def test_unknown_top_level_key_is_named():
    config = merged()
    config["trainng"] = {}
    with pytest.raises(ConfigError, match="unknown config key 'trainng'"):
        validate_config(config, SCHEMA)


def test_unknown_nested_key_is_named_with_its_path():
    config = merged()
    config["study"]["corpra"] = ["mnist"]
    with pytest.raises(ConfigError, match=r"unknown config key 'study\.corpra'"):
        validate_config(config, SCHEMA)


def test_wrong_value_names_the_key():
    config = copy.deepcopy(merged())
    config["study"]["corpora"] = ["mnsit"]
    with pytest.raises(ConfigError, match=r"config key 'study\.corpora\.0'"):
        validate_config(config, SCHEMA)


def test_every_section_forbids_unknown_keys():
    """Each stage section rejects a made-up key (the schema sections are closed)."""
    config = merged()
    for section in config:
        bad = copy.deepcopy(config)
        bad[section]["no_such_key"] = 1
        with pytest.raises(ConfigError, match=rf"unknown config key '{section}\.no_such_key'"):
            validate_config(bad, SCHEMA)


@pytest.mark.workflow
def test_snakemake_stops_on_a_config_typo_naming_the_key(workflow_copy):
    from conftest import snakemake

    (workflow_copy / "typo.yaml").write_text("study:\n  corpra: [mnist]\n")
    proc = snakemake(workflow_copy, "-n", "--configfile", "typo.yaml", check=False)
    assert proc.returncode != 0
    assert "unknown config key 'study.corpra'" in proc.stdout + proc.stderr
