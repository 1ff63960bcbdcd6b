"""The per-rule conda envs parse, agree with the pip pins, and every rule uses one.

The rule directives are read from the workflow as Snakemake parses it (one subprocess per
config, through snakemake.api), not from the rule files' text: a rule defined under an
`if` exists only for some configs, so each config's rules are checked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow

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


# The directives every rule that runs a job must have; resources it must set.
DIRECTIVES = ("log", "benchmark", "threads", "resources", "conda")
RESOURCES = ("mem_mb", "runtime")
# Target rules: they gather the outputs and run nothing.
TARGET_RULES = {"all"}
# The rules of these are defined only under an `if` in rules/annotation.smk (the
# annotation origin picks one of simulated, campaign, released): each must be checked.
RULES_UNDER_IF = {"annotation_simulate", "annotation_import", "aggregate_labels"}

# Run as `python -c DUMP_RULES WORKDIR [CONFIGFILE...]`: loads the workflow the way the
# CLI does (the Snakefile's configfile, then each CONFIGFILE over it) and prints, as
# JSON, each rule's parsed directives. A subprocess, because Snakemake changes the
# working directory and imports the workflow's own softdigits package.
DUMP_RULES = """
import json, os, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.iocontainers import Wildcards
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

workdir = Path(sys.argv[1]).resolve()
configfiles = [Path(c).resolve() for c in sys.argv[2:]]
rules = {}
with SnakemakeApi(OutputSettings(enable_file_logging=False)) as api:  # no .snakemake/log file
    workflow = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=configfiles),
        snakefile=workdir / "Snakefile",
        workdir=workdir,
    )._workflow
    for rule in workflow.rules:
        info = rule.ruleinfo  # the directives as written, before Snakemake's defaults
        rule_file = Path(rule.snakefile)
        envs = [info.conda_env] if info.conda_env and not callable(info.conda_env) else []
        if callable(info.conda_env):  # a function of {corpus} (rule corpus): each registered corpus's env
            from softdigits.corpora import CORPORA

            envs = sorted({info.conda_env(Wildcards(fromdict={"corpus": c})) for c in CORPORA})
        env = [os.path.relpath((rule_file.parent / str(e)).resolve(), workdir) for e in envs] or None
        rules[rule.name] = {
            "file": str(rule_file.relative_to(workdir)),
            "norun": bool(rule.norun),
            "log": bool(info.log and (info.log.paths or info.log.kwpaths)),
            "benchmark": bool(info.benchmark and info.benchmark.paths),
            "threads": info.threads is not None,
            "resources": sorted(info.resources[1]) if info.resources else [],
            "conda": env,
        }
print("RULES-JSON " + json.dumps(rules))
"""


def parsed_rules(workdir: Path, *configfiles: Path) -> dict[str, dict]:
    """Rule name -> its parsed directives, for the workflow in `workdir` under these configs."""
    cmd = [sys.executable, "-c", DUMP_RULES, str(workdir), *map(str, configfiles)]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RULES-JSON ")]
    assert proc.returncode == 0 and lines, (
        f"loading the workflow with {[str(c) for c in configfiles]} failed ({proc.returncode}):\n"
        f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    )
    return json.loads(lines[-1].removeprefix("RULES-JSON "))


def campaign_config(workdir: Path, dest: Path) -> Path:
    """A config overlay for annotation.origin campaign (its answers files need not exist to parse)."""
    default = yaml.safe_load((workdir / "workflow_config.yaml").read_text())
    corpora = default["study"]["corpora"]
    overlay = {"annotation": {"origin": "campaign", "answers": {c: f"data/answers/{c}.csv" for c in corpora}}}
    dest.write_text(yaml.safe_dump(overlay))
    return dest


def workflow_rules(workdir: Path, scratch: Path) -> dict[str, dict[str, dict]]:
    """Config name -> its rules, for the default config, config/paper.yaml and a campaign overlay."""
    return {
        "default": parsed_rules(workdir),
        "paper": parsed_rules(workdir, workdir / "config" / "paper.yaml"),
        "campaign": parsed_rules(workdir, campaign_config(workdir, scratch / "campaign.yaml")),
    }


def directive_problems(rules: dict[str, dict], workdir: Path) -> list[str]:
    """One line per rule directive missing (or env not in envs/); empty when all is well."""
    env_names = {f"envs/{p.name}" for p in (workdir / "envs").glob("*.yaml")}
    problems = []
    for name, rule in sorted(rules.items()):
        where = f"{rule['file']}: rule {name}"
        if name in TARGET_RULES:
            if not rule["norun"]:
                problems.append(f"{where} is a target rule but runs a job")
            continue
        problems += [f"{where} lacks {d}:" for d in DIRECTIVES if not rule[d]]
        problems += [
            f"{where} lacks resources {r}" for r in RESOURCES if rule["resources"] and r not in rule["resources"]
        ]
        problems += [
            f"{where} uses {env}, which is not in envs/" for env in rule["conda"] or [] if env not in env_names
        ]
    return problems


@pytest.fixture(scope="module")
def repo_rules(tmp_path_factory) -> dict[str, dict[str, dict]]:
    return workflow_rules(REPO, tmp_path_factory.mktemp("configs"))


def test_every_rule_has_log_benchmark_threads_resources_and_env(repo_rules):
    checked: dict[str, dict] = {}
    for config, rules in repo_rules.items():
        assert rules, f"config {config}: no rules parsed"
        checked.update(rules)
    # The rules of the default config and config/paper.yaml are all among those checked,
    # the rules defined under an `if` included.
    assert set(repo_rules["default"]) | set(repo_rules["paper"]) <= set(checked)
    assert RULES_UNDER_IF <= set(checked), RULES_UNDER_IF - set(checked)
    problems = directive_problems(checked, REPO)
    assert not problems, "\n".join(problems)
    jobs = sorted(set(checked) - TARGET_RULES)
    counts = {config: len(set(rules) - TARGET_RULES) for config, rules in repo_rules.items()}
    print(f"checked {len(jobs)} rules (per config: {counts}): {', '.join(jobs)}")


def drop_directive(rule_file: Path, rule: str, directive: str) -> None:
    """Remove `directive:` and its indented value from `rule` in `rule_file`."""
    lines = rule_file.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.match(rf"\s*rule {rule}:", line))
    rule_indent = len(lines[start]) - len(lines[start].lstrip())
    for i in range(start + 1, len(lines)):
        indent = len(lines[i]) - len(lines[i].lstrip())
        if lines[i].strip() and indent <= rule_indent:
            break  # past the rule's body
        if lines[i].strip() == f"{directive}:":
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
                end += 1
            del lines[i:end]
            rule_file.write_text("".join(lines))
            return
    raise AssertionError(f"{rule_file}: rule {rule} has no {directive}:")


@pytest.mark.parametrize("rule", ["aggregate_labels", "dedup"])
def test_a_rule_without_benchmark_fails_the_check(tmp_path, rule):
    """aggregate_labels sits under an `if` (the rule files' text never showed it); dedup does not."""
    workdir = copy_workflow(tmp_path / "workflow")
    rule_file = next(p for p in sorted((workdir / "rules").glob("*.smk")) if f"rule {rule}:" in p.read_text())
    drop_directive(rule_file, rule, "benchmark")
    rules = parsed_rules(workdir)  # the default config defines both rules
    assert not rules[rule]["benchmark"]
    problems = directive_problems(rules, workdir)
    assert problems == [f"rules/{rule_file.name}: rule {rule} lacks benchmark:"]
