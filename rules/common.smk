# Shared by every stage: config validation, code fingerprints, target lists.
import os
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)
from softdigits.config import validate_config

validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")

# Scripts import the package from the repository (also inside per-rule conda envs).
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
)

PACKAGE = Path(workflow.basedir) / "softdigits"
RESULTS = "results"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"

STUDY_CORPORA = config["study"]["corpora"]
CORPORA = [name for name, spec in config["corpora"].items() if spec["origin"] != "off"]


wildcard_constraints:
    corpus="[a-z_]+",
    model="[a-z_]+",
    target="[a-z_]+",
    seed=r"\d+",


def code(*modules):
    """The package modules a rule runs, as inputs: editing one reruns its jobs.

    Snakemake tracks a `script:` by its own mtime only, so every rule lists the
    modules behind it (plus the shared io/jobs plumbing) here.
    """
    names = ("io", "jobs") + modules
    return [str(PACKAGE / f"{name}.py") for name in dict.fromkeys(names)]


def all_targets():
    return (
        corpora_targets()
        + dedup_targets()
        + generator_targets()
        + cartography_targets()
        + selection_targets()
        + annotation_targets()
        + training_targets()
        + evaluation_targets()
    )
