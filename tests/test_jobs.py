"""softdigits.jobs: how a job starts (its failures are tested in test_bad_inputs.py)."""

from __future__ import annotations

import json
import subprocess
import sys

# A job as a `script:` runs it: torch imported, then jobs.start. It reports how many objects
# the collector skips, before and after start, and whether garbage made later is collected.
JOB = """
import gc, json, sys, types, weakref
import torch
from softdigits import jobs
before = gc.get_freeze_count()
jobs.start(types.SimpleNamespace(log=[sys.argv[1]], rule="demo", input=[], output=[]))
after = gc.get_freeze_count()
class Node: pass
node = Node(); node.self = node; ref = weakref.ref(node); del node
gc.collect()
print(json.dumps({"before": before, "after": after, "later_garbage_collected": ref() is None}))
"""


def test_a_job_keeps_its_imports_out_of_the_collector_and_still_collects_later_garbage(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", JOB, str(tmp_path / "job.log")], capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout)
    assert seen["before"] == 0  # nothing is frozen until the job starts: the check can fail
    assert seen["after"] > 100_000  # torch's modules, classes and functions
    assert seen["later_garbage_collected"]
