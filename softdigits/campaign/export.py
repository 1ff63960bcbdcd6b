"""`softdigits campaign answers`: the campaign database's answers as files the workflow imports.

- RAW.parquet: the raw-answers contract exactly (softdigits.annotation.answers.RAW_SCHEMA,
  written by its `raw_table`), every answered trial of every participant (returned and
  doubled lists included; `--finished-only` keeps the participants who finished their list).
  `annotation.origin: campaign` + `annotation.answers: {corpus: RAW.parquet}` imports it.
- RAW.participants.parquet beside it: one row per participant (softdigits.campaign.records
  PARTICIPANT_COLUMNS: platform ids, list, returned, doubled, attention checks failed).

The database is opened read-only. Neither output is written over an existing file unless
`overwrite` is given, and never over the database (or its -wal / -shm files), whatever
the flag.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from softdigits import io
from softdigits.annotation.answers import RawAnnotationError, raw_table, refuse_overwrite
from softdigits.campaign import records
from softdigits.campaign.settings import CampaignError
from softdigits.campaign.store import read_tables


def participants_path(out: str | os.PathLike) -> Path:
    """Where the per-participant file goes: beside `out`, RAW.parquet -> RAW.participants.parquet."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".parquet") + ".participants.parquet")


def export_answers(db, out, *, overwrite: bool = False, finished_only: bool = False, now: float | None = None) -> dict:
    """Write RAW.parquet and RAW.participants.parquet from the database; returns a summary."""
    db, out = Path(db), Path(out)
    if out.suffix != ".parquet":
        raise CampaignError(f"{out}: --out must be a .parquet file (the raw answers contract)")
    meta_out = participants_path(out)
    database = [("campaign database", db), ("database's WAL", Path(f"{db}-wal")), ("database's SHM", Path(f"{db}-shm"))]
    try:
        refuse_overwrite(database, [("--out", out), ("participants", meta_out)])
    except RawAnnotationError as err:
        raise CampaignError(str(err)) from None
    if not overwrite:
        for path in (out, meta_out):
            if path.exists():
                raise CampaignError(
                    f"{path}: exists; raw answers are not written over (pass --overwrite to replace it)"
                )
    tables = read_tables(db)
    now = time.time() if now is None else now
    people = records.participants(tables, now)
    raw = records.raw_answers(tables)
    if finished_only:
        keep = set(people.loc[people["finished"], "participant_id"])
        raw = raw[raw["annotator_id"].isin(keep)]
        people = people[people["participant_id"].isin(keep)]
    meta = dict(tables["meta"].itertuples(index=False))
    summary = {
        "database": str(db),
        "corpus": meta.get("corpus"),
        "tasks_sha256": meta.get("tasks_sha256"),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
        "finished_only": finished_only,
        "participants": int(people["participant_id"].nunique()),
        "finished": int(people["finished"].sum()),
        "returned": int(people["returned"].sum()),
        "doubled": int(people["doubled"].sum()),
        "failed_attention_check": int(people["failed_attention_check"].sum()),
        "rows": int(len(raw)),
    }
    io.write_table(raw_table(raw), out, metadata={"origin": "campaign", "simulated": False, "export": summary})
    io.write_table(people, meta_out, metadata={"export": summary})
    return {**summary, "out": str(out), "participants_file": str(meta_out)}
