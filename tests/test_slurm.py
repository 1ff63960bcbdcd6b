"""The SLURM profiles dry-run on every config; the smoke test's checks can fail.

The smoke test itself (a one-node cluster, tests/slurm/smoke.py) runs from .ci/run, not here.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_workflow

sys.path.insert(0, str(REPO / "tests" / "slurm"))
import smoke  # noqa: E402

needs_plugin = pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="executor plugin missing: pip install -r requirements-slurm.txt",
)


def profile_dry_run(tmp_path: Path, *args: str) -> str:
    workdir = copy_workflow(tmp_path / "workflow")
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args, "-n"], cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


@needs_plugin
@pytest.mark.workflow
@pytest.mark.parametrize("config", [[], ["--configfile", "config/paper.yaml"]], ids=["default", "paper"])
def test_profile_dry_run(tmp_path, config):
    # Every job the SLURM profile would submit carries a time limit set by its rule.
    out = profile_dry_run(tmp_path, "--workflow-profile", "profiles/slurm", *config)
    requests = smoke.rule_requests(out)  # raises if a job has no runtime
    assert ("train_run", "mnist_simple_ffn_original") in requests
    assert len(requests) > 90  # every job of the study: 36 of them train_run


@needs_plugin
@pytest.mark.workflow
def test_gpu_profile_gives_training_one_gpu(tmp_path):
    out = profile_dry_run(
        tmp_path,
        "--profile",
        "profiles/slurm",
        "--workflow-profile",
        "profiles/slurm-gpu",
        "--configfile",
        "config/test.yaml",
    )
    jobs = smoke.job_blocks(out)
    train = [block for _, rule, block in jobs if rule == "train_run"]
    others = [block for _, rule, block in jobs if rule != "train_run" and "resources:" in block]
    assert train and all("gpu=1" in block for block in train)
    assert others and not any("gpu=" in block for block in others)


DRY_RUN = """\
[Mon Nov 30 00:13:54 2026]
rule annotation_simulate:
    input: results/annotation/mnist/campaign
    output: results/annotation/mnist/raw_annotations.parquet
    jobid: 15
    wildcards: corpus=mnist
    threads: 2
    resources: tmpdir=/tmp, mem_mb=6000, mem=6 GB, mem_mib=5723, runtime=15
[Mon Nov 30 00:13:54 2026]
rule train_run:
    wildcards: corpus=mnist, model=simple_ffn, target=original
    resources: tmpdir=/tmp, mem_mb=1500, mem=1.5 GB, mem_mib=1431, runtime=20
[Mon Nov 30 00:13:54 2026]
localrule download_file:
    resources: tmpdir=/tmp, mem_mb=256, runtime=15
"""

SCONTROL = (
    "JobId=1 JobName=abc NumCPUs=2 MinMemoryNode=6000M TimeLimit=00:15:00 "
    "Comment=rule_annotation_simulate_wildcards_mnist StdOut=x\n"
    "JobId=2 JobName=abc NumCPUs=1 MinMemoryNode=1500M TimeLimit=00:20:00 Comment=rule_train_train_run\n"
)


def test_requests_match_when_slurm_got_what_the_rules_ask():
    groups = {"train_run": "train"}
    expected = smoke.grouped(smoke.rule_requests(DRY_RUN), groups)
    assert expected == {
        ("annotation_simulate", "mnist"): smoke.Request(2, 6000, 15),
        ("group train", "train_run"): smoke.Request(1, 1500, 20),
    }
    assert smoke.compare_requests(expected, smoke.slurm_requests(SCONTROL, groups)) == []


def test_request_check_fails_on_a_wrong_or_missing_request():
    groups = {"train_run": "train"}
    expected = smoke.grouped(smoke.rule_requests(DRY_RUN), groups)
    wrong_time = SCONTROL.replace("TimeLimit=00:20:00", "TimeLimit=01:00:00")
    problems = smoke.compare_requests(expected, smoke.slurm_requests(wrong_time, groups))
    assert len(problems) == 1 and "train_run" in problems[0] and "minutes=60" in problems[0]
    first_only = SCONTROL.splitlines()[0]
    problems = smoke.compare_requests(expected, smoke.slurm_requests(first_only, groups))
    assert problems == ["group train [train_run]: in the dry run, never submitted to SLURM"]


def test_a_rule_without_runtime_fails_the_check():
    with pytest.raises(ValueError, match="annotation_simulate has no runtime"):
        smoke.rule_requests(DRY_RUN.replace(", runtime=15\n[", "\n[", 1))


def test_slurm_time_and_memory_units():
    assert smoke.time_minutes("00:15:00") == 15
    assert smoke.time_minutes("1-02:03:00") == 1563
    assert smoke.time_minutes("00:00:30") == 1
    assert smoke.memory_mb("2G") == 2048 and smoke.memory_mb("1500M") == 1500


def test_parquet_comparison_names_differing_and_missing_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, data in ((a, b"same"), (b, b"same")):
        (root / "results-test" / "x").mkdir(parents=True)
        (root / "results-test" / "x" / "t.parquet").write_bytes(data)
    assert smoke.compare_parquet(a, b) == (1, [])
    (b / "results-test" / "x" / "t.parquet").write_bytes(b"other")
    (a / "results-test" / "only.parquet").write_bytes(b"")
    n, problems = smoke.compare_parquet(a, b)
    assert n == 1 and problems == [
        "results-test/only.parquet: only in the local run",
        "results-test/x/t.parquet: bytes differ",
    ]
    assert smoke.compare_parquet(tmp_path / "none", tmp_path / "none2")[1] == ["no Parquet output to compare"]


def test_slurm_conf_is_one_node_on_localhost_without_accounting(tmp_path):
    conf = smoke.slurm_conf(tmp_path, 2, 1000)
    assert conf.startswith(smoke.MARKER)
    assert "NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000" in conf
    assert "AccountingStorageType=accounting_storage/none" in conf
