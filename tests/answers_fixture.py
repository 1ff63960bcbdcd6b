"""Raw-answer rows and files for the answers, aggregation and CLI tests."""

from __future__ import annotations

import pandas as pd


def answers(annotator, image, yes=(), unsure=(), check=False, gold=""):
    return [
        {
            "annotator_id": annotator,
            "image_id": image,
            "class": c,
            "response": "yes" if c in yes else "unsure" if c in unsure else "no",
            "is_attention_check": check,
            "reaction_time_ms": 800.0,
            "gold_label": gold,
        }
        for c in range(10)
    ]


def write_answers(rows, path, fmt):
    df = pd.DataFrame(rows)
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df["gold_label"] = pd.to_numeric(df["gold_label"], errors="coerce").astype("Int64")
        df.to_parquet(path, index=False)
    return path


GOOD = (
    answers("a1", "img1", yes=[3])
    + answers("a1", "g1", yes=[0], check=True, gold=0)
    + answers("a2", "img1", yes=[3], unsure=[5])
)


def bad_variants():
    unknown_class = [dict(r) for r in GOOD]
    unknown_class[4]["class"] = 12
    bad_response = [dict(r) for r in GOOD]
    bad_response[2]["response"] = "maybe"
    duplicate = [dict(r) for r in GOOD] + [dict(GOOD[1])]
    missing_class = [r for r in GOOD if not (r["annotator_id"] == "a2" and r["class"] == 7)]
    unknown_image = [dict(r) for r in GOOD] + answers("a3", "imgX", yes=[1])
    return {
        "unknown_class": (unknown_class, "row 5", "class '12' is not a digit 0-9"),
        "bad_response": (bad_response, "row 3", "response 'maybe' is not yes/no/unsure"),
        "duplicate": (
            duplicate,
            "row 31",
            "duplicate answer of annotator 'a1' to image 'img1' " "class 1 (first in row 2)",
        ),
        "missing_class": (missing_class, "row 21", "annotator 'a2' did not answer class(es) [7] " "for image 'img1'"),
        "unknown_image": (unknown_image, "row 31", "unknown image_id 'imgX'"),
    }
