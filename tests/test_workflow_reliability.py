"""Right answers or a clear stop, through the Snakemake CLI on the tiny config.

The cases of docs/troubleshooting.md that need the workflow itself: a moved checkout, a
job at 1 and 2 threads, two runs on one results folder, a switch of annotation origin,
download faults, a truncated intermediate file, a full disk and a budget no data map can
meet. Most work on a copy of the session's tiny run (`tiny_run`, with its .snakemake
records), so that each needs only the jobs it is about. A job that fails on a known error prints one
line, `rule <rule>: <what>: <file, row or key>`, and no traceback (softdigits.jobs).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, dry_run_jobs, skip_without_mount_namespace, snakemake

from softdigits import io
from softdigits.run_lock import LOCK_NAME

pytestmark = pytest.mark.workflow

RESULTS = "results-test"


def copy_run(run: Path, dest: Path) -> Path:
    """The whole checkout of a finished run, its .snakemake records and mtimes included."""
    shutil.copytree(run, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def snapshot_tree(folder: Path) -> dict[Path, tuple[str, int]]:
    """sha256 and mtime of every file under `folder` (to show that nothing was lost)."""
    return {p: digest(p) for p in sorted(folder.rglob("*")) if p.is_file() and LOCK_NAME not in p.name}


def job_lines(proc: subprocess.CompletedProcess, rule: str) -> list[str]:
    """The lines the jobs of `rule` printed for a known failure."""
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(f"rule {rule}: ")]


def job_exit_statuses(proc: subprocess.CompletedProcess, rule: str) -> dict[str, int | None]:
    """{output: exit status} of each failed job of `rule`, from Snakemake's console: the
    script's `returned non-zero exit status N.` comes just before that job's `Error in rule`
    block, which names its output."""
    statuses: dict[str, int | None] = {}
    status, block = None, False
    for line in (proc.stdout + proc.stderr).splitlines():
        found = re.search(r"returned non-zero exit status (\d+)\.$", line)
        if found:
            status = int(found.group(1))
        elif line == f"Error in rule {rule}:":
            block = True
        elif block and line.startswith("    output: "):
            statuses[line.removeprefix("    output: ")] = status
            status, block = None, False
    return statuses


def assert_no_traceback(proc: subprocess.CompletedProcess) -> None:
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and 'File "' not in text, text[-3000:]


# ------------------------------------------------------------------ where the checkout lives


def test_a_moved_checkout_reruns_nothing_and_no_output_names_it(tiny_run, tmp_path):
    """The code inputs were absolute paths: a copy elsewhere reran every job."""
    moved = copy_run(tiny_run, tmp_path / "elsewhere" / "checkout")
    proc = snakemake(moved, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]
    named = [
        p.relative_to(tiny_run)
        for p in (tiny_run / RESULTS).rglob("*")
        if p.is_file() and str(tiny_run).encode() in p.read_bytes()
    ]
    assert named == [], f"outputs that record the checkout's absolute path: {named}"


# ------------------------------------------------------------------ threads, and two runs at once


def threaded_jobs(workdir: Path) -> dict[str, list[str]]:
    """rule -> the outputs of its first job, for each rule whose jobs take more than one thread."""
    proc = snakemake(workdir, "-n", "--forceall", "--cores", "64")  # a dry run prints threads above 1
    found: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=rule \w+:)", proc.stdout):
        head = re.match(r"rule (\w+):", block)
        threads = re.search(r"\n\s+threads: (\d+)", block)
        output = re.search(r"\n\s+output: (.+)", block)
        if head and threads and output and int(threads.group(1)) > 1:
            found.setdefault(head.group(1), [p.strip() for p in output.group(1).split(",")])
    return found


def test_a_job_writes_the_same_bytes_at_one_and_two_threads_and_a_second_run_waits(tiny_run, tmp_path):
    """`--cores 1` and `--cores 2` gave 2 of 6,440 reaction times that differed (321.4 vs
    321.5). The tiny run ran every job at the threads its rule asks for (2 at most); here
    each multi-threaded rule's job runs again on one thread. While that run goes, a second
    snakemake on the same results folder stops and says the folder is in use (it used to
    stop on the first run's unfinished files and advise --rerun-incomplete)."""
    work = copy_run(tiny_run, tmp_path / "threads")
    jobs = threaded_jobs(work)
    assert "annotation_simulate" in jobs, jobs  # the case reported; generator_pool takes 2 as well
    outputs = [out for outs in jobs.values() for out in outs]
    before = {out: digest(work / out) for out in outputs}
    one_thread = [f"{rule}=1" for rule in jobs]
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "--cores", "2"]
    first = subprocess.Popen(
        [*cmd, "--set-threads", *one_thread, "--forcerun", *jobs, "--", *outputs],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lock = work / RESULTS / LOCK_NAME
        deadline = time.monotonic() + 120
        while not (lock.exists() and f"pid {first.pid}," in lock.read_text()) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()[0][-3000:]
            time.sleep(0.1)
        second = subprocess.run([*cmd, "--", outputs[0]], cwd=work, capture_output=True, text=True)
        assert first.poll() is None, "the first run ended before the second started: no overlap tested"
    finally:
        log = first.communicate(timeout=900)[0]
    assert first.returncode == 0, log[-3000:]
    for out in outputs:  # rewritten (new mtime), same bytes
        assert digest(work / out)[0] == before[out][0], f"{out} differs at 1 thread"
        assert digest(work / out)[1] != before[out][1], f"{out} was not rewritten"
    assert second.returncode == 2, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.startswith("softdigits: error:")]
    assert len(lines) == 1 and f"{RESULTS}/ is in use by another snakemake run (pid {first.pid}," in lines[0]
    assert "IncompleteFilesException" not in second.stderr and "--rerun-incomplete while it runs" in lines[0]


# ------------------------------------------------------------------ annotation origin


def answers_from_panel(run: Path, dest: Path, corpus: str, extra: pd.DataFrame | None = None) -> Path:
    """A campaign answers file holding the tiny run's panel answers (as if people gave them)."""
    raw = pd.read_parquet(run / RESULTS / "annotation" / corpus / "raw_annotations.parquet")
    raw = raw.drop(columns=["simulated"])
    if extra is not None:
        raw = pd.concat([raw, extra], ignore_index=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    raw.to_csv(dest, index=False)
    os.utime(dest, (1_600_000_000, 1_600_000_000))  # older than every output
    return dest


def test_a_switch_of_origin_reruns_import_and_aggregation(tiny_run, tmp_path):
    """simulated -> campaign with answers older than the outputs reran study_table only: the
    labels stayed the panel's while the study table said labels_origin=campaign."""
    work = copy_run(tiny_run, tmp_path / "origin")
    answers = {c: answers_from_panel(work, work / "data" / "answers" / f"{c}.csv", c) for c in ("mnist", "mukhoti")}
    overlay = {
        "annotation": {"origin": "campaign", "answers": {c: str(p.relative_to(work)) for c, p in answers.items()}}
    }
    (work / "campaign.yaml").write_text(yaml.safe_dump(overlay))
    planned = dry_run_jobs(work, "--configfile", "config/test.yaml", "campaign.yaml")
    assert planned.get("annotation_import") == 2 and planned.get("aggregate_labels") == 2, planned
    assert "annotation_export" not in planned and "selection_solve" not in planned, planned  # only what follows

    study = work / RESULTS / "study" / "mnist.parquet"
    upstream = [work / RESULTS / "selection" / "mnist.parquet", work / RESULTS / "dedup" / "mnist.parquet"]
    kept = {p: digest(p) for p in [*answers.values(), *upstream]}
    snakemake(
        work, "--configfile", "config/test.yaml", "campaign.yaml", "--cores", "2", "--", str(study.relative_to(work))
    )
    labels = work / RESULTS / "annotation" / "mnist" / "labels.parquet"
    assert io.read_metadata(labels)["origin"] == "campaign" and not io.read_metadata(labels)["simulated"]
    assert io.read_metadata(study)["labels_origin"] == "campaign"
    assert {p: digest(p) for p in kept} == kept

    # New answers in a file that kept an old date: their content reruns the import.
    changed = answers_from_panel(work, answers["mnist"], "mnist")
    frame = pd.read_csv(changed)
    frame.loc[frame.index[:10], "response"] = "unsure"
    frame.to_csv(changed, index=False)
    os.utime(changed, (1_600_000_000, 1_600_000_000))
    planned = dry_run_jobs(
        work, "--configfile", "config/test.yaml", "campaign.yaml", "--", str(study.relative_to(work))
    )
    assert planned.get("annotation_import") == 1 and planned.get("aggregate_labels") == 1, planned


def test_an_unknown_image_in_campaign_answers_is_one_line(tiny_run, tmp_path):
    work = copy_run(tiny_run, tmp_path / "unknown")
    raw = pd.read_parquet(work / RESULTS / "annotation" / "mnist" / "raw_annotations.parquet").drop(
        columns=["simulated"]
    )
    extra = raw.iloc[:10].assign(image_id="mnist:train:999999", annotator_id="p-extra")
    answers = answers_from_panel(work, work / "data" / "mnist.csv", "mnist", extra=extra)
    (work / "campaign.yaml").write_text(
        yaml.safe_dump(
            {"annotation": {"origin": "campaign", "answers": {"mnist": "data/mnist.csv", "mukhoti": "data/x.csv"}}}
        )
    )
    kept = {answers: digest(answers), **snapshot_tree(work / RESULTS / "annotation" / "mnist" / "campaign")}
    target = f"{RESULTS}/annotation/mnist/labels.parquet"
    proc = snakemake(
        work, "--configfile", "config/test.yaml", "campaign.yaml", "--cores", "1", "--", target, check=False
    )
    assert proc.returncode != 0
    assert_no_traceback(proc)
    row = len(raw) + 1
    assert job_lines(proc, "annotation_import") == [
        f"rule annotation_import: data/mnist.csv: row {row} (line {row + 1}): unknown image_id "
        "'mnist:train:999999' (10 bad row(s) in all: 10 unknown image_id; to drop bad rows instead, set config "
        "annotation.on_bad_rows: drop (softdigits aggregate: --on-bad-rows drop))"
    ]
    log = (work / RESULTS / "logs" / "annotation_import" / "mnist.log").read_text()
    assert "unknown image_id" in log and "Traceback" not in log
    assert {p: digest(p) for p in kept} == kept


# ------------------------------------------------------------------ errors inside jobs


class FaultyServer(http.server.BaseHTTPRequestHandler):
    """Each path a way for a download to go wrong; /good.bin is the file the config expects."""

    good = b"softdigits test payload\n" * 100
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = self.good
        if self.path == "/missing.gz":
            self.send_error(404, "Not Found")
            return
        if self.path == "/broken.gz":
            self.send_error(500, "Internal Server Error")
            return
        if self.path == "/loop.rar":
            self.send_response(302)
            self.send_header("Location", "/loop.rar")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/stall.csv":
            time.sleep(5)  # longer than the 1 s time limit of the test's config
            return
        if self.path == "/page.gz":
            body = b"<!doctype html><html><body>Please log in</body></html>"
        elif self.path == "/same-size.pt":
            body = b"X" * len(self.good)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.good) if self.path == "/short.gz" else len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path == "/short.gz" else body)
        if self.path == "/short.gz":
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FaultyServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_download_faults_each_end_in_one_line(faulty_server, tmp_path):
    """404, 500, an HTML page with status 200, a truncated body, a redirect loop, a stalled
    server and the right size with the wrong content: each was detected, but its message
    was buried in a traceback. Now each job prints one line and exits with status 2."""
    work = copy_workflow(tmp_path / "downloads")
    good = "sha256:" + hashlib.sha256(FaultyServer.good).hexdigest()
    url = faulty_server

    def spec(path):
        return {"url": f"{url}/{path}", "checksum": good}

    overlay = {
        "downloads": {"timeout_s": 1},
        "corpora": {
            "mnist": {
                "origin": "download",
                "files": {
                    "train_images": spec("missing.gz"),
                    "train_labels": spec("broken.gz"),
                    "test_images": spec("page.gz"),
                    "test_labels": spec("short.gz"),
                },
            },
            "mukhoti": {
                "origin": "download",
                "files": {"samples": spec("same-size.pt"), "labels": spec("l.pt"), "predictions": spec("p.pt")},
            },
            "ardis": {"origin": "download", "files": {"archive": spec("loop.rar")}},
            "weiss": {"origin": "download", "files": {"csv": spec("stall.csv")}},
        },
    }
    (work / "faults.yaml").write_text(yaml.safe_dump(overlay))
    expected = {
        "mnist/missing.gz": "failed: HTTP 404 Not Found",
        "mnist/broken.gz": "failed: HTTP 500 Internal Server Error",
        "mnist/page.gz": f"sha256 is {hashlib.sha256(b'<!doctype html><html><body>Please log in</body></html>').hexdigest()}",
        "mnist/short.gz": f"is truncated: got {len(FaultyServer.good) // 2} bytes, server announced {len(FaultyServer.good)}",
        "mukhoti/same-size.pt": f"sha256 is {hashlib.sha256(b'X' * len(FaultyServer.good)).hexdigest()}",
        "ardis/loop.rar": "failed: HTTP 302 The HTTP server returned a redirect error that would lead to an infinite loop.",
        "weiss/stall.csv": "failed: the server sent nothing for 1 s, the time limit of config downloads.timeout_s",
    }
    targets = [f"resources/downloads/{name}" for name in expected]
    resources = snapshot_tree(work / "resources")
    proc = snakemake(
        work,
        "--configfile",
        "config/test.yaml",
        "faults.yaml",
        "--cores",
        "2",
        "--keep-going",
        "--",
        *targets,
        check=False,
    )
    assert proc.returncode != 0
    assert_no_traceback(proc)
    lines = job_lines(proc, "download_file")
    assert len(lines) == len(expected), "\n".join(lines)
    # each job ended on a known error (exit status 2, softdigits.jobs), none on a bug (1)
    assert job_exit_statuses(proc, "download_file") == dict.fromkeys(targets, 2), proc.stderr[-3000:]
    for name, reason in expected.items():
        mine = [
            line
            for line in lines
            if f"download of {url}/{name.split('/')[1]} " in line or f"download of {url}/{name.split('/')[1]}:" in line
        ]
        assert len(mine) == 1 and reason in mine[0], (name, lines)
    assert snapshot_tree(work / "resources") == resources  # nothing written, nothing lost
    assert not (work / "resources" / "downloads").exists() or not any((work / "resources" / "downloads").rglob("*.*"))


def test_a_truncated_intermediate_stops_the_run_before_any_job_and_names_the_rule_that_rebuilds_it(tiny_run, tmp_path):
    """A selection cut short (with a new mtime) failed the next job with `ArrowInvalid`, and
    Snakemake had deleted that job's earlier outputs (the campaign folder) first. Now the run
    stops before it starts any job, and the command it names rebuilds the file."""
    work = copy_run(tiny_run, tmp_path / "truncated")
    selection = work / RESULTS / "selection" / "mnist.parquet"
    good = selection.read_bytes()
    selection.write_bytes(good[: len(good) // 2])
    campaign = work / RESULTS / "annotation" / "mnist" / "campaign"
    kept = {p: digest(p) for p in [selection, work / RESULTS / "dedup" / "mnist.parquet"]} | snapshot_tree(campaign)
    target = f"{RESULTS}/annotation/mnist/campaign"
    proc = snakemake(work, "--cores", "1", "--", target, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert_no_traceback(proc)
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("softdigits: error: ")]
    assert line.startswith(
        f"softdigits: error: rule annotation_export: {RESULTS}/selection/mnist.parquet: not a readable Parquet file ("
    )
    assert line.endswith("; rebuild it: snakemake --forcerun selection_solve; no job was started")
    assert {p: digest(p) for p in kept} == kept  # the campaign's earlier outputs too
    # the advice works: the selection is rebuilt (the same bytes) and the campaign from it
    snakemake(work, "--cores", "1", "--forcerun", "selection_solve", "--", target)
    assert selection.read_bytes() == good
    assert {p: sha for p, (sha, _) in snapshot_tree(campaign).items()} == {
        p: sha for p, (sha, _) in kept.items() if campaign in p.parents
    }


def test_a_full_disk_ends_a_snakemake_job_in_one_line(tiny_run, tmp_path):
    """A real job on a full disk (tests/test_bad_inputs.py has the torch and Parquet writers
    alone): the corpus job writes MNIST's table onto a 16 KiB file system mounted over the
    corpora folder, in a mount namespace of its own (`unshare -rm`)."""
    skip_without_mount_namespace()
    work = copy_run(tiny_run, tmp_path / "disk")
    corpora = work / RESULTS / "corpora"
    kept = snapshot_tree(corpora)
    assert (corpora / "mnist.parquet").stat().st_size > 64 * 1024  # more than the disk holds
    target = f"{RESULTS}/corpora/mnist.parquet"
    command = (
        # a file of its own on the small disk: Snakemake removes an empty output folder (here a mount point)
        f"mount -t tmpfs -o size=16k tmpfs {corpora} && echo earlier > {corpora}/earlier.txt && "
        f"{sys.executable} -m snakemake --configfile config/test.yaml "
        f"--cores 1 -- {target}; status=$?; echo left: $(ls -A {corpora}); exit $status"
    )
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, cwd=work)
    assert proc.returncode == 1, proc.stderr[-3000:]  # Snakemake's status for a failed job
    assert_no_traceback(proc)
    (line,) = job_lines(proc, "corpus")
    assert line.startswith(f"rule corpus: {target}: disk full, the file could not be written"), line
    assert job_exit_statuses(proc, "corpus") == {target: 2}
    (left,) = [line for line in proc.stdout.splitlines() if line.startswith("left:")]
    assert left == "left: earlier.txt"  # no half-written file on the full disk
    assert snapshot_tree(corpora) == kept  # the table under the mount, untouched


def test_a_budget_the_data_map_cannot_meet_keeps_the_earlier_selection(tiny_run, tmp_path):
    """Feasible for the corpus's size (so the config passes), not for its data map: the job
    fails in one line, and the earlier selection is kept instead of deleted (the outputs are
    flagged update())."""
    work = copy_run(tiny_run, tmp_path / "budget")
    (work / "budget.yaml").write_text(
        "selection:\n  corpora:\n    mnist: {budget: {train: 800, val: 90, test: 90}, min_easy_per_digit_train: 3}\n"
    )
    outputs = [work / RESULTS / "selection" / f"mnist{suffix}" for suffix in (".parquet", "_strata.csv", "_strata.md")]
    kept = {p: digest(p) for p in outputs}
    proc = snakemake(
        work,
        "--configfile",
        "config/test.yaml",
        "budget.yaml",
        "--cores",
        "1",
        "--",
        f"{RESULTS}/selection/mnist.parquet",
        check=False,
    )
    assert proc.returncode != 0
    assert_no_traceback(proc)
    (line,) = job_lines(proc, "selection_solve")
    assert line.startswith("rule selection_solve: mnist: budget 980 images"), line
    # never deleted: Snakemake copies its backup back (the same bytes, a new mtime) and says so
    assert {p: digest(p)[0] for p in kept} == {p: sha for p, (sha, _) in kept.items()}
    restored = [line for line in proc.stderr.splitlines() if line.startswith("Restored previous version of")]
    assert len(restored) == len(outputs), proc.stderr[-3000:]
