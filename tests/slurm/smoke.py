"""SLURM smoke test: the tiny config through `--workflow-profile profiles/slurm` on a one-node cluster.

    .venv/bin/python tests/slurm/smoke.py        # run by .ci/run; needs root (or a skip)

What it does, in order:
1. Installs the Debian packages `slurmctld slurmd slurm-client munge` if they are missing.
2. Writes a one-node `slurm.conf` for 127.0.0.1 (no accounting) and a munge key into a
   scratch folder, starts munged, slurmctld and slurmd in the foreground, and records
   their PIDs.
3. Runs TARGET (every stage up to training, one train_run) of `config/test.yaml` twice, in
   two scratch copies of the workflow: once locally, once through the SLURM profile.
4. Checks that every Parquet output is byte-identical between the two runs, and that every
   SLURM job asked for its rule's threads (CPUs), mem_mb (memory) and runtime (time limit).
5. Cancels what is left on its cluster and stops exactly the three PIDs it started.

Exit status: 0 passed, 1 failed, 77 skipped (a prerequisite is missing: root, apt, the
packages or the executor plugin; the reason is printed). It never passes without running.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from conftest import copy_workflow  # noqa: E402  (the same scratch copy as the workflow tests)

SKIP = 77
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel"]
# One rule of each stage up to training, through one training run on the generated corpus (its
# chain holds the generator; MNIST's alone no longer does, since dedup is per corpus).
TARGET = "results-test/training/mukhoti/simple_ffn/original/seed0/manifest.json"
NODE = "localhost"
START_TIMEOUT_S = 60
# The default path: the plugin's job step drops SLURM_* variables (SLURM_CONF too) before
# its inner srun, so the config must be where SLURM looks without them.
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by softdigits tests/slurm/smoke.py; removed when it stops\n"


class Skip(Exception):
    """A prerequisite is missing: the test cannot run here (never a pass)."""


# ---------------------------------------------------------------- prerequisites


def ensure_packages() -> None:
    """Install the SLURM and munge packages if any binary is missing; Skip when impossible."""
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise Skip(f"{', '.join(missing)} not installed and not root (cannot apt-get install {' '.join(PACKAGES)})")
    if shutil.which("apt-get") is None:
        raise Skip(f"{', '.join(missing)} not installed and no apt-get on this machine")
    print(f"installing {' '.join(PACKAGES)} (missing: {', '.join(missing)})", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise Skip(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise Skip("slurmd must start as root, and this is not root")
    ensure_packages()
    running = [name for name in ("slurmctld", "slurmd") if process_running(name)]
    if running:
        raise Skip(f"{', '.join(running)} already running here: the smoke test only uses a cluster of its own")
    if SLURM_CONF.exists() and not SLURM_CONF.read_text().startswith(MARKER):
        raise Skip(f"{SLURM_CONF} exists (a SLURM of this machine): the smoke test does not touch it")
    proc = subprocess.run([sys.executable, "-c", "import snakemake_executor_plugin_slurm"], capture_output=True)
    if proc.returncode != 0:
        raise Skip(f"the executor plugin is not installed: {sys.executable} -m pip install -r requirements-slurm.txt")


def process_running(name: str) -> bool:
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == name:
                return True
        except OSError:  # the process ended meanwhile
            continue
    return False


# ---------------------------------------------------------------- the cluster


def node_size() -> tuple[int, int]:
    """CPUs and about 85% of the memory (MiB): what the one node offers to jobs."""
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return os.cpu_count() or 1, int(mem_kib / 1024 * 0.85)


def slurm_conf(folder: Path, cpus: int, mem_mb: int) -> str:
    """A one-node cluster on 127.0.0.1 without accounting; every path inside `folder`."""
    return (
        MARKER
        + f"""\
ClusterName=softdigits-smoke
SlurmctldHost={NODE}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
# cgroups are not usable in containers: plain process tracking, no task plugin
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no accounting: what makes the plugin's default status command (sacct) hang
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to scontrol for the request check
MinJobAge=3600
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=smoke Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
    )


class Cluster:
    """munged, slurmctld and slurmd of a one-node cluster; stops exactly the PIDs it started."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.conf = SLURM_CONF
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    def start(self) -> None:
        cpus, mem_mb = node_size()
        self.folder.mkdir(mode=0o700)
        for sub in ("munge", "state", "spool"):
            (self.folder / sub).mkdir(mode=0o700)
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(slurm_conf(self.folder, cpus, mem_mb))
        munge = self.folder / "munge"
        run(["mungekey", "--create", f"--keyfile={munge}/munge.key"])
        self.spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={munge}/munge.socket",
                f"--key-file={munge}/munge.key",
                f"--pid-file={munge}/munged.pid",
                f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/munged.seed",
            ],
        )
        self.wait_for("munge socket", lambda: (munge / "munge.socket").exists(), munge / "munged.log")
        self.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self.wait_for("slurmctld", lambda: "UP" in self.query(["scontrol", "ping"]), self.folder / "slurmctld.log")
        self.spawn("slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
        self.wait_for(
            "slurmd (node idle)",
            lambda: self.query(["sinfo", "-h", "-o", "%T"]).strip() == "idle",
            self.folder / "slurmd.log",
        )
        print(
            f"one-node SLURM up: {cpus} CPUs, {mem_mb} MiB; PIDs "
            + ", ".join(f"{name} {p.pid}" for name, p in self.procs.items()),
            flush=True,
        )

    def spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.folder / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def query(self, cmd: list[str]) -> str:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        return proc.stdout if proc.returncode == 0 else ""

    def wait_for(self, what: str, ready, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [name for name, p in self.procs.items() if p.poll() is not None]
            if dead:
                break
            time.sleep(0.5)
        out = "\n".join(tail(f) for f in (log, *(self.folder / f"{n}.out" for n in self.procs)))
        raise RuntimeError(f"{what} did not come up within {START_TIMEOUT_S} s:\n{out}")

    def stop(self) -> None:
        """Cancel the jobs left on this private cluster, then stop our daemons, newest first."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "--partition", "smoke"], env=self.env, capture_output=True)
            deadline = time.monotonic() + 20
            while self.query(["squeue", "-h"]).strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            print(f"stopped {name} (PID {proc.pid})", flush=True)
        if self.conf.exists() and self.conf.read_text().startswith(MARKER):
            self.conf.unlink()


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def tail(path: Path, n: int = 15) -> str:
    if not path.exists():
        return f"({path.name}: none)"
    return f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-n:])


# ---------------------------------------------------------------- resource requests


@dataclass(frozen=True)
class Request:
    cpus: int
    mem_mb: int
    minutes: int


def job_blocks(dry_run: str) -> list[tuple[str, str, str]]:
    """(rule or localrule, rule name, its indented lines) of every job a dry run lists."""
    # A job's lines are indented below its rule line (group members are themselves indented).
    pattern = r"^([ \t]*)(localrule|rule) (\w+):\n((?:\1[ \t]+.*\n?)*)"
    return [m.groups()[1:] for m in re.finditer(pattern, dry_run, re.M)]


def rule_requests(dry_run: str) -> dict[tuple[str, str], Request]:
    """(rule, wildcard values joined by '_') -> the rule's threads, mem_mb and runtime.

    Read from a dry run without the profile (`snakemake -n`): Snakemake's own evaluation
    of the rules. A job block lists `threads:` only when above 1.
    """
    requests = {}
    for kind, rule, block in job_blocks(dry_run):
        if kind == "localrule":  # runs in the main process, never submitted
            continue
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        res = dict(kv.split("=", 1) for kv in resources.group(1).split(", "))
        if "runtime" not in res:
            raise ValueError(f"rule {rule} has no runtime resource")
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        values = [kv.split("=", 1)[1] for kv in wildcards.group(1).split(", ")] if wildcards else []
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        requests[(rule, "_".join(values))] = Request(
            int(threads.group(1)) if threads else 1, int(res["mem_mb"]), int(res["runtime"])
        )
    return requests


def grouped(requests: dict, groups: dict[str, str]) -> dict:
    """Jobs of grouped rules (the profile's `groups`: rule -> group) keyed as their group job.

    A group job of one member asks for exactly that member's request; the smoke target
    keeps every group at one member, so the comparison stays exact.
    """
    out, members = {}, {}
    for (rule, wildcards), request in requests.items():
        if rule in groups:
            members.setdefault(groups[rule], []).append((rule, request))
        else:
            out[(rule, wildcards)] = request
    for group, jobs in members.items():
        if len(jobs) != 1:
            raise ValueError(
                f"group {group} has {len(jobs)} jobs in the smoke target: only one-member groups compare exactly"
            )
        out[(f"group {group}", jobs[0][0])] = jobs[0][1]
    return out


def slurm_requests(scontrol: str, groups: dict[str, str]) -> dict[tuple[str, str], Request]:
    """(rule, wildcards) -> what SLURM granted, from `scontrol show job --oneliner`.

    The plugin names a job's rule and wildcards in its comment,
    `rule_<rule>_wildcards_<values joined by _>`, and a group job `rule_<group>_<its rules>`.
    """
    group_names = {f"{group}_{rule}": (f"group {group}", rule) for rule, group in groups.items()}
    requests = {}
    for line in scontrol.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        comment = re.fullmatch(r"rule_(\w+?)(?:_wildcards_(.*))?", fields.get("Comment", ""))
        if not comment:
            continue
        key = (comment.group(1), comment.group(2) or "")
        key = group_names.get(key[0], key) if not key[1] else key
        if key in requests:
            raise ValueError(f"two SLURM jobs for {key}: each job must be submitted once")
        requests[key] = Request(
            int(fields["NumCPUs"]), memory_mb(fields["MinMemoryNode"]), time_minutes(fields["TimeLimit"])
        )
    return requests


def memory_mb(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([MGT]?)", value).groups()
    return int(number) * {"": 1, "M": 1, "G": 1024, "T": 1024**2}[unit]


def time_minutes(value: str) -> int:
    """SLURM's [days-]hours:minutes:seconds as whole minutes."""
    days, _, clock = value.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (1 if s else 0)


def compare_requests(expected: dict, granted: dict) -> list[str]:
    """Problems: a job missing on either side, or CPUs/memory/time that differ."""
    problems = [
        f"{rule} [{wc}]: in the dry run, never submitted to SLURM" for rule, wc in expected.keys() - granted.keys()
    ]
    problems += [
        f"{rule} [{wc}]: submitted to SLURM, not in the dry run" for rule, wc in granted.keys() - expected.keys()
    ]
    for key in sorted(expected.keys() & granted.keys()):
        if expected[key] != granted[key]:
            problems.append(f"{key[0]} [{key[1]}]: rule asks {expected[key]}, SLURM job got {granted[key]}")
    return sorted(problems)


def request_table(expected: dict, granted: dict) -> str:
    lines = [f"{'rule':<27} {'wildcards':<28} {'sbatch cpus/mem_mb/min':>23}   {'rule threads/mem_mb/runtime':>27}"]
    for key in sorted(expected.keys() | granted.keys()):
        fmt = lambda r: f"{r.cpus}/{r.mem_mb}/{r.minutes}" if r else "-"  # noqa: E731
        g, e = granted.get(key), expected.get(key)
        lines.append(f"{key[0]:<27} {key[1] or '-':<28} {fmt(g):>23}   {fmt(e):>27}  {'ok' if g == e else 'MISMATCH'}")
    return "\n".join(lines)


# ---------------------------------------------------------------- outputs


def compare_parquet(a: Path, b: Path) -> tuple[int, list[str]]:
    """Number of Parquet files compared, and the problems (missing on one side, bytes differ)."""
    files_a = {p.relative_to(a) for p in (a / "results-test").rglob("*.parquet")}
    files_b = {p.relative_to(b) for p in (b / "results-test").rglob("*.parquet")}
    problems = [f"{p}: only in the local run" for p in sorted(files_a - files_b)]
    problems += [f"{p}: only in the SLURM run" for p in sorted(files_b - files_a)]
    problems += [
        f"{p}: bytes differ" for p in sorted(files_a & files_b) if (a / p).read_bytes() != (b / p).read_bytes()
    ]
    if not files_a & files_b:
        problems.append("no Parquet output to compare")
    return len(files_a & files_b), problems


# ---------------------------------------------------------------- the runs


def snakemake(workdir: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    # Targets after `--`: `--configfile` would take them as config files.
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", *args, "--", TARGET]
    return run(cmd, cwd=workdir, env=env)


def run_local(workdir: Path) -> float:
    start = time.monotonic()
    snakemake(workdir, "--cores", "2")
    return time.monotonic() - start


def run_slurm(workdir: Path, cluster: Cluster) -> float:
    start = time.monotonic()
    try:
        snakemake(
            workdir,
            "--workflow-profile",
            "profiles/slurm",
            # quick status checks for a quick test (the profile keeps the plugin's 40 s)
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--latency-wait",
            "5",
            env=cluster.env,
        )
    except RuntimeError as err:
        logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
        raise RuntimeError("\n".join([str(err), *(tail(f, 30) for f in logs)])) from None
    return time.monotonic() - start


def smoke(scratch: Path) -> list[str]:
    local, slurm = copy_workflow(scratch / "local"), copy_workflow(scratch / "slurm")
    shutil.copytree(REPO / "profiles", slurm / "profiles")
    cluster = Cluster(scratch / "cluster")
    groups = yaml.safe_load((slurm / "profiles" / "slurm" / "config.yaml").read_text()).get("groups", {})
    expected = grouped(rule_requests(snakemake(local, "-n", "--cores", "2").stdout), groups)
    try:
        cluster.start()
        # The local run shares the 2 cores with the SLURM run, whose time is mostly waiting.
        with ThreadPoolExecutor(2) as pool:
            local_s, slurm_s = pool.submit(run_local, local), pool.submit(run_slurm, slurm, cluster)
            local_s, slurm_s = local_s.result(), slurm_s.result()
        granted = slurm_requests(cluster.query(["scontrol", "show", "job", "--oneliner"]), groups)
    finally:
        cluster.stop()
    print(f"local run {local_s:.0f} s, SLURM run {slurm_s:.0f} s ({len(granted)} SLURM jobs)")
    print("sbatch requests (scontrol) against the rules (dry run without the profile):")
    print(request_table(expected, granted))
    n_files, problems = compare_parquet(local, slurm)
    print(f"Parquet outputs compared byte for byte: {n_files}")
    return problems + compare_requests(expected, granted)


def main() -> int:
    start = time.monotonic()
    try:
        check_prerequisites()
    except Skip as why:
        print(f"SLURM smoke test SKIPPED: {why}")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="softdigits-slurm-") as scratch:
        problems = smoke(Path(scratch))
    for p in problems:
        print(f"FAIL {p}")
    verdict = "FAILED" if problems else "passed"
    print(f"SLURM smoke test {verdict} in {time.monotonic() - start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
