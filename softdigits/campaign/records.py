"""What the campaign database's rows mean: raw answers, participants and task lists.

All functions read the dict of tables that `softdigits.campaign.store.read_tables` (or
`Store.tables`) returns, and a time `now` (seconds since the epoch) that decides which
unfinished lists have expired.

- `raw_answers`: one row per participant x answered trial x digit, in the raw-answers
  contract (softdigits.annotation.answers.RAW_SCHEMA; `reaction_time_ms` is the trial's
  time from display to submit, the same on its ten rows; `simulated` is False: people).
- `participants`: one row per participant: platform ids, list, progress, `returned`
  (the list expired unfinished), `doubled` (their list was finished by two or more
  participants and they are one of them), attention checks answered and failed (the rule
  of softdigits.annotation.aggregation.attention_checks).
- `task_lists`: one row per list: done / in progress / returned / not started, finishers.
- `status`: the counts the admin view shows.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from softdigits.annotation.aggregation import attention_checks
from softdigits.constants import N_DIGITS

LIST_STATES = ("done", "in progress", "returned", "not started")
PARTICIPANT_COLUMNS = [
    "participant_id",
    "id_source",
    "prolific_pid",
    "study_id",
    "session_id",
    "first_seen",
    "consented",
    "task_id",
    "assigned_at",
    "expires_at",
    "n_trials",
    "n_answered",
    "finished",
    "completed_at",
    "completion_code",
    "returned",
    "doubled",
    "checks_answered",
    "checks_failed",
    "failed_attention_check",
]


def raw_answers(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The answers in the raw-answers contract's columns (participant, trial, digit order)."""
    answers = tables["answers"].merge(tables["trials"], on=["task_id", "trial"], how="left", validate="many_to_one")
    answers = answers.sort_values(["participant_id", "trial"], kind="stable")
    n = len(answers)
    responses = [json.loads(r) for r in answers["responses"]]
    if any(len(r) != N_DIGITS for r in responses):
        raise ValueError("an answers row does not hold ten responses")
    is_check = answers["is_attention_check"].astype(bool).to_numpy()
    gold = pd.Series(np.repeat(answers["gold_label"].to_numpy(), N_DIGITS), dtype="Int64")
    return pd.DataFrame(
        {
            "annotator_id": np.repeat(answers["participant_id"].to_numpy(dtype=object), N_DIGITS),
            "image_id": np.repeat(answers["image_id"].to_numpy(dtype=object), N_DIGITS),
            "class": np.tile(np.arange(N_DIGITS, dtype=np.int64), n),
            "response": np.asarray([x for r in responses for x in r], dtype=object),
            "is_attention_check": np.repeat(is_check, N_DIGITS),
            "reaction_time_ms": np.repeat(answers["reaction_time_ms"].to_numpy(dtype=float), N_DIGITS),
            "gold_label": gold.where(np.repeat(is_check, N_DIGITS)),
            "simulated": False,
        }
    )


def participants(tables: dict[str, pd.DataFrame], now: float) -> pd.DataFrame:
    """One row per participant (columns PARTICIPANT_COLUMNS), by first visit."""
    people = tables["participants"].copy()
    people["consented"] = people["participant_id"].isin(tables["consents"]["participant_id"])
    people = people.merge(tables["assignments"], on="participant_id", how="left")
    n_trials = tables["trials"].groupby("task_id").size().rename("n_trials")
    people = people.merge(n_trials, left_on="task_id", right_index=True, how="left")
    n_answered = tables["answers"].groupby("participant_id").size().rename("n_answered")
    people = people.merge(n_answered, left_on="participant_id", right_index=True, how="left")
    people["n_answered"] = people["n_answered"].fillna(0).astype("int64")
    people["n_trials"] = people["n_trials"].astype("Int64")
    done = tables["completions"][["participant_id", "completed_at", "completion_code"]]
    people = people.merge(done, on="participant_id", how="left")
    people["finished"] = people["completed_at"].notna()
    assigned = people["task_id"].notna()
    people["returned"] = assigned & ~people["finished"] & (people["expires_at"] <= now)
    finishers = tables["completions"].groupby("task_id").size()
    doubled_lists = set(finishers[finishers >= 2].index)
    people["doubled"] = people["finished"] & people["task_id"].isin(doubled_lists)
    checks = attention_checks(raw_answers(tables))
    per_person = checks.groupby("annotator_id")["passed"].agg(
        checks_answered="size", checks_failed=lambda p: (~p).sum()
    )
    people = people.merge(per_person, left_on="participant_id", right_index=True, how="left")
    people["checks_answered"] = people["checks_answered"].fillna(0).astype("int64")
    people["checks_failed"] = people["checks_failed"].fillna(0).astype("int64")
    people["failed_attention_check"] = people["checks_failed"] > 0
    return people.sort_values(["first_seen", "participant_id"], kind="stable")[PARTICIPANT_COLUMNS].reset_index(
        drop=True
    )


def task_lists(tables: dict[str, pd.DataFrame], now: float) -> pd.DataFrame:
    """One row per task list: task_id, n_trials, state (LIST_STATES), n_finished, doubled,
    n_assigned (participants who ever held it), n_returned (of them, expired unfinished)."""
    people = participants(tables, now)
    lists = tables["trials"].groupby("task_id").size().rename("n_trials").reset_index()
    held = people[people["task_id"].notna()]
    active = held[~held["finished"] & ~held["returned"]]
    counts = held.groupby("task_id").agg(
        n_assigned=("participant_id", "size"), n_finished=("finished", "sum"), n_returned=("returned", "sum")
    )
    lists = lists.merge(counts, left_on="task_id", right_index=True, how="left").fillna(
        {"n_assigned": 0, "n_finished": 0, "n_returned": 0}
    )
    lists = lists.astype({"n_assigned": "int64", "n_finished": "int64", "n_returned": "int64"})
    lists["state"] = np.select(
        [lists["n_finished"] > 0, lists["task_id"].isin(active["task_id"]), lists["n_returned"] > 0],
        LIST_STATES[:3],
        default=LIST_STATES[3],
    )
    lists["doubled"] = lists["n_finished"] >= 2
    return lists[["task_id", "n_trials", "state", "n_finished", "doubled", "n_assigned", "n_returned"]]


def status(tables: dict[str, pd.DataFrame], now: float) -> dict:
    """The admin view: lists by state, doubled lists, participants, attention-check failures."""
    lists = task_lists(tables, now)
    people = participants(tables, now)
    failed = people[people["failed_attention_check"]]
    return {
        "lists": {
            "total": int(len(lists)),
            **{state: int((lists["state"] == state).sum()) for state in LIST_STATES},
            "doubled": int(lists["doubled"].sum()),
        },
        "participants": {
            "total": int(len(people)),
            "consented": int(people["consented"].sum()),
            "finished": int(people["finished"].sum()),
            "in progress": int((people["task_id"].notna() & ~people["finished"] & ~people["returned"]).sum()),
            "returned": int(people["returned"].sum()),
            "failed attention check": int(len(failed)),
        },
        "answered_trials": int(len(tables["answers"])),
        "attention_check_failures": [
            {"participant_id": r.participant_id, "task_id": r.task_id, "checks_failed": int(r.checks_failed)}
            for r in failed.itertuples()
        ],
        "task_lists": [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in lists.to_dict(orient="records")
        ],
    }
