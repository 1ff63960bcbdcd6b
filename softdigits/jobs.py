"""Plumbing for the `script:` entry points: logging to the rule's log, how a job fails,
thread caps.

A job that fails on a known error (softdigits.errors.KnownError: a bad input, config,
download, an infeasible selection, a full disk) or on an input file it cannot read
prints one line, `rule <rule>: <what>: <file, row or key>`, to stderr and to its log,
and exits with status 2; the rest of a long message (further bad rows) goes to the log
only. Any other exception is a bug and is logged with its traceback (exit status 1).
SOFTDIGITS_TRACEBACK=1 logs the traceback of known errors too.

An input Parquet or torch file that cannot be read (a truncated copy, say) is named
with the rule that writes it, so that the line says how to rebuild it: the workflow
puts the rules' output patterns in SOFTDIGITS_RULE_OUTPUTS when it starts
(rules/common.smk). The workflow also looks at every such input of the run's jobs
before it starts any (`unreadable_run_inputs`), because Snakemake deletes a job's
earlier outputs when it starts the job: a run that would read a damaged file stops
with nothing deleted.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import sys
import zipfile
from pathlib import Path

from softdigits.errors import KnownError, disk_full, disk_full_error, first_line

TRACEBACK_ENV = "SOFTDIGITS_TRACEBACK"
RULE_OUTPUTS_ENV = "SOFTDIGITS_RULE_OUTPUTS"
KNOWN_EXIT_STATUS = 2


def start(snakemake) -> logging.Logger:
    """Send logging and uncaught errors of a job to its `log:` file (and stderr).

    Every script calls this first. Thread caps need nothing here: Snakemake
    starts a script with OMP/OpenBLAS/MKL_NUM_THREADS set to the rule's
    `threads:`, before numpy loads; torch jobs also call `torch_threads`.
    """
    freeze_imports()
    log_path = Path(str(snakemake.log[0]))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)
    rule = snakemake.rule
    inputs = [str(p) for p in snakemake.input]
    outputs = [str(p) for p in snakemake.output]

    def excepthook(kind, value, tb):
        line = known_failure(value, inputs, outputs)
        if line is None:  # a bug: its traceback
            root.error("job failed", exc_info=(kind, value, tb))
            return
        shown = (kind, value, tb) if os.environ.get(TRACEBACK_ENV) == "1" else None
        root.error("rule %s: %s", rule, line, exc_info=shown)
        rest = str(value).strip().splitlines()[1:] if isinstance(value, KnownError) else []
        if rest:  # further problems (bad rows): the log only
            handler.handle(root.makeRecord(root.name, logging.ERROR, __file__, 0, "\n".join(rest), (), None))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(KNOWN_EXIT_STATUS)

    sys.excepthook = excepthook
    return logging.getLogger(f"softdigits.{rule}")


def freeze_imports() -> None:
    """Keep what the job has imported so far (torch's modules above all) out of the garbage
    collector: none of it is garbage, and the collector's passes over it, the last one at
    exit most of all, cost a torch job about 0.4 CPU-s (`make bench`, section 2)."""
    gc.freeze()


def known_failure(err: BaseException, inputs: list[str], outputs: list[str]) -> str | None:
    """The one line that says why a job failed, or None when the failure is a bug."""
    if isinstance(err, KnownError):
        return first_line(err)
    for path in outputs:  # a full disk, whatever the library said
        if disk_full(err, path):
            return str(disk_full_error(path))
    unreadable = unreadable_inputs(inputs)
    if unreadable:
        return unreadable_line(*unreadable[0])
    return None


def unreadable_line(path: str, why: str) -> str:
    """`<file>: <why>; rebuild it: <command>`, with the rule that writes the file."""
    producer = producing_rule(path)
    how = f"snakemake --forcerun {producer}" if producer else f"snakemake --forcerun {path}"
    return f"{path}: {why}; rebuild it: {how}"


def unreadable_run_inputs(dag, results: str | os.PathLike) -> list[str]:
    """A line per Parquet or torch file in the results folder (the workflow's own
    intermediates; raw downloads are checked by their checksums) that the jobs of a run
    (Snakemake's DAG, before any job starts) would read but cannot, and that no job of the
    run rewrites: `rule <reader>: <file>: <why>; rebuild it: <command>`. Only each file's
    footer or zip directory is read, so that the look costs milliseconds for a whole study."""
    jobs = [member for job in dag.needrun_jobs() for member in getattr(job, "jobs", [job])]
    rewritten = {str(path) for job in jobs for path in job.output}
    folder = Path(results).resolve()
    readers: dict[str, str] = {}
    for job in jobs:
        for path in map(str, job.input):
            if path not in rewritten and Path(path).resolve().is_relative_to(folder):
                readers.setdefault(path, job.rule.name)
    return [
        f"rule {readers[path]}: {unreadable_line(path, why)}"
        for path, why in unreadable_inputs(sorted(readers), members=False)
    ]


def unreadable_inputs(inputs: list[str], members: bool = True) -> list[tuple[str, str]]:
    """(path, why) for each input Parquet or torch file whose container cannot be read
    (a truncated or damaged copy): its footer (Parquet) or zip directory (torch), and with
    `members` every torch member's checksum too."""
    found = []
    for path in inputs:
        if not os.path.isfile(path):
            continue
        if path.endswith(".parquet"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                pq.read_metadata(path)
            except (pa.ArrowException, OSError) as err:
                found.append((path, f"not a readable Parquet file ({first_line(err)})"))
        elif path.endswith(".pt"):
            try:
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip() if members else None
            except (zipfile.BadZipFile, OSError) as err:
                found.append((path, f"not a readable torch file ({first_line(err)})"))
            else:
                if bad is not None:
                    found.append((path, f"not a readable torch file (member {bad} is damaged)"))
    return found


def producing_rule(path: str) -> str | None:
    """The rule whose output pattern matches `path` (SOFTDIGITS_RULE_OUTPUTS), if known;
    of several, the one with the fewest wildcards (the most specific pattern)."""
    try:
        patterns = json.loads(os.environ.get(RULE_OUTPUTS_ENV, "{}"))
    except ValueError:
        return None
    matches = [
        (pattern.count("{"), rule)
        for rule, outputs in patterns.items()
        for pattern in outputs
        if re.fullmatch(pattern_regex(pattern), path)
    ]
    return min(matches)[1] if matches else None


def pattern_regex(pattern: str) -> str:
    """A Snakemake output pattern as a regex: each {wildcard} (or {wildcard,regex}) one
    path part or more."""
    parts, last = [], 0
    for match in re.finditer(r"\{\s*(\w+)\s*(?:,\s*((?:[^{}]|\{[^{}]*\})+))?\s*\}", pattern):
        parts.append(re.escape(pattern[last : match.start()]))
        parts.append(f"(?:{match.group(2)})" if match.group(2) else "[^/]+?")
        last = match.end()
    parts.append(re.escape(pattern[last:]))
    return "".join(parts)


def rule_outputs(rules) -> str:
    """SOFTDIGITS_RULE_OUTPUTS for the workflow's rules: {rule: [output patterns]} as JSON."""
    return json.dumps({rule.name: [str(p) for p in rule.output] for rule in rules if rule.output})


def torch_threads(threads: int) -> None:
    """Cap torch's intra-op threads (import deferred: not every job needs torch)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
