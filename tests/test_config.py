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
    for section in (name for name, value in config.items() if isinstance(value, dict)):
        bad = copy.deepcopy(config)
        bad[section]["no_such_key"] = 1
        with pytest.raises(ConfigError, match=rf"unknown config key '{section}\.no_such_key'"):
            validate_config(bad, SCHEMA)


@pytest.mark.parametrize("results", ["", "../elsewhere", "/tmp/results", "results/../x", 3])
def test_the_results_folder_is_a_relative_path_of_plain_folder_names(results):
    """Each config writes under its own folder (a replicate's: results/replicate<N>), never
    outside the project."""
    bad = {**merged(), "results": results}
    with pytest.raises(ConfigError, match="results"):
        validate_config(bad, SCHEMA)


def test_the_overlays_set_their_own_results_folder():
    folders = {
        name: merged(*([REPO / name] if name else []))["results"]
        for name in (None, "config/paper.yaml", "config/test.yaml")
    }
    assert len(set(folders.values())) == 3, folders


@pytest.mark.workflow
def test_snakemake_stops_on_a_config_typo_naming_the_key(workflow_copy):
    from conftest import snakemake

    (workflow_copy / "typo.yaml").write_text("study:\n  corpra: [mnist]\n")
    proc = snakemake(workflow_copy, "-n", "--configfile", "typo.yaml", check=False)
    assert proc.returncode != 0
    assert "unknown config key 'study.corpra'" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_snakemake_stops_on_a_cross_field_error_before_touching_outputs(workflow_copy):
    """Inverted thresholds used to fail inside the job, after Snakemake had
    deleted that job's earlier outputs; now the config is rejected when it is loaded."""
    from conftest import snakemake

    earlier = workflow_copy / "results-test/cartography/mnist/data_map.parquet"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier good data map")
    before = (earlier.read_bytes(), earlier.stat().st_mtime_ns)
    (workflow_copy / "inverted.yaml").write_text(
        "cartography:\n  corpora:\n    mnist:\n      epochs: 10\n      thresholds: "
        "{confidence_high: 0.3, confidence_low: 0.6, variability_low: 0.25, variability_high: 0.3}\n"
    )
    proc = snakemake(
        workflow_copy,
        "--configfile",
        "config/test.yaml",
        "inverted.yaml",
        "--cores",
        "1",
        "results-test/cartography/mnist/data_map.parquet",
        check=False,
    )
    assert proc.returncode != 0
    assert (
        "config key 'cartography.corpora.mnist.thresholds': confidence_low 0.6 must be below " "confidence_high 0.3"
    ) in proc.stdout + proc.stderr
    assert (earlier.read_bytes(), earlier.stat().st_mtime_ns) == before
