"""How long the answers validator takes to reject a file of a million bad rows.

    .venv/bin/python bench/bad_rows_speed.py [N_ROWS]

Writes, in a temporary folder, a CSV of N_ROWS (default 1e6) rows in which every
(annotator, image) pair lacks one class (the systematic case: each row
is bad), one in which every response is bad, and a good file of the same size, then times `read_raw_annotations` on
each. Prints the seconds and the first line of the error. Goal: under 30 s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from softdigits.annotation.answers import RawAnnotationError, read_raw_annotations


def answers_csv(path: Path, n_rows: int, classes_per_pair: int, responses=("yes", "no", "unsure")) -> None:
    pairs = int(np.ceil(n_rows / classes_per_pair))
    pair = np.repeat(np.arange(pairs), classes_per_pair)[:n_rows]
    cls = np.tile(np.arange(classes_per_pair), pairs)[:n_rows]
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "annotator_id": "a" + (pair % 997).astype(str),
            "image_id": "img" + (pair // 997).astype(str),
            "class": cls,
            "response": rng.choice(list(responses), n_rows),
            "is_attention_check": "false",
            "reaction_time_ms": rng.integers(300, 3000, n_rows),
        }
    ).to_csv(path, index=False)


def timed(path: Path) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        _, report = read_raw_annotations(path)
        outcome = f"accepted, {report['rows_kept']} rows"
    except RawAnnotationError as err:
        outcome = str(err).splitlines()[0]
    return time.perf_counter() - start, outcome


def main() -> None:
    n_rows = int(float(sys.argv[1])) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        cases = (
            ("bad (every pair lacks class 9)", 9, ("yes", "no", "unsure")),
            ("bad (every response is 'maybe')", 10, ("maybe",)),
            ("good", 10, ("yes", "no", "unsure")),
        )
        for name, classes, responses in cases:
            path = Path(tmp) / "answers.csv"
            answers_csv(path, n_rows, classes, responses)
            seconds, outcome = timed(path)
            print(f"{name}: {n_rows} rows, {seconds:.1f} s: {outcome[:300]}")


if __name__ == "__main__":
    main()
