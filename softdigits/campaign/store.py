"""The campaign database: SQLite, append-only, one file per campaign.

Conventions:
- Append-only: rows are inserted, never updated or deleted (triggers abort any UPDATE or
  DELETE). State is derived from the rows: an assignment is *active* until its
  `expires_at` or its completion, *returned* when it expired unfinished; a list is
  *doubled* when two participants finished it (softdigits.campaign.records).
- WAL journal, `synchronous=FULL`, and each write (a participant's first visit, a
  consent and its assignment, one answered trial) is one transaction, committed before
  the server answers: an acknowledged answer survives a crash or a SIGKILL.
- One participant, one task list (the raw contract's annotator_id). A new participant
  gets the first list (by task_id: round 1 before round 2) that nobody has finished and
  nobody holds; a reload resumes the same list; a participant whose list expired may still
  finish it.
- The database belongs to one campaign: the fingerprint of its tasks.csv is stored at
  creation and checked on every open. Nothing in this package deletes or rewrites it.
- Every refused request raises `Refused` (an HTTP status and a message) before anything
  is written.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from softdigits.annotation.campaign import image_file_name
from softdigits.campaign.settings import Campaign, CampaignError
from softdigits.constants import N_DIGITS, RESPONSES

SCHEMA_VERSION = "1"
TABLES = ("meta", "trials", "participants", "visits", "consents", "assignments", "answers", "completions")
SCHEMA_SQL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (
    task_id TEXT NOT NULL, trial INTEGER NOT NULL, image_id TEXT NOT NULL, image_file TEXT NOT NULL,
    is_attention_check INTEGER NOT NULL, gold_label INTEGER NOT NULL,
    PRIMARY KEY (task_id, trial));
CREATE TABLE participants (
    participant_id TEXT PRIMARY KEY, first_seen REAL NOT NULL,
    id_source TEXT NOT NULL CHECK (id_source IN ('platform', 'generated')),
    prolific_pid TEXT, study_id TEXT, session_id TEXT);
CREATE TABLE visits (
    visit INTEGER PRIMARY KEY AUTOINCREMENT, participant_id TEXT NOT NULL REFERENCES participants,
    at REAL NOT NULL, study_id TEXT, session_id TEXT, user_agent TEXT);
CREATE TABLE consents (participant_id TEXT PRIMARY KEY REFERENCES participants, at REAL NOT NULL);
CREATE TABLE assignments (
    participant_id TEXT PRIMARY KEY REFERENCES participants, task_id TEXT NOT NULL,
    assigned_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX assignments_task ON assignments (task_id);
CREATE TABLE answers (
    participant_id TEXT NOT NULL REFERENCES assignments, task_id TEXT NOT NULL, trial INTEGER NOT NULL,
    responses TEXT NOT NULL, reaction_time_ms REAL NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (participant_id, trial), FOREIGN KEY (task_id, trial) REFERENCES trials (task_id, trial));
CREATE TABLE completions (
    participant_id TEXT PRIMARY KEY REFERENCES assignments, task_id TEXT NOT NULL,
    completed_at REAL NOT NULL, completion_code TEXT NOT NULL);
""" + "".join(
    f"CREATE TRIGGER {t}_append_only_{op.lower()} BEFORE {op} ON {t} "
    "BEGIN SELECT RAISE(ABORT, 'the campaign database is append-only'); END;\n"
    for t in TABLES
    for op in ("UPDATE", "DELETE")
)


class Refused(Exception):
    """A request the store refuses, with the HTTP status it deserves; nothing was stored."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def read_tables(path: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Every table of the database at `path`, read-only and in one snapshot."""
    path = Path(path)
    if not path.is_file():
        raise CampaignError(f"{path}: no such campaign database")
    try:
        conn = _connect(path, readonly=True)
        try:
            conn.execute("BEGIN")
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not set(TABLES) <= names:
                raise CampaignError(f"{path}: not a campaign database (tables {sorted(set(TABLES) - names)} missing)")
            tables = {t: pd.read_sql_query(f"SELECT * FROM {t}", conn) for t in TABLES}
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise CampaignError(f"{path}: not a readable campaign database ({err})") from None
    return tables


class Store:
    """The campaign database of one campaign, opened for the server (one connection, one lock)."""

    def __init__(self, path: str | os.PathLike, campaign: Campaign, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.campaign = campaign
        self.clock = clock
        self._lock = threading.Lock()
        self._trials = {
            (r.task_id, int(r.trial)): r for r in campaign.tasks.itertuples(index=False)
        }  # the campaign's task table, by (task_id, trial)
        self._n_trials = campaign.tasks.groupby("task_id").size().to_dict()
        try:
            self._conn = _connect(self.path, readonly=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._open_or_create()
        except sqlite3.DatabaseError as err:
            raise CampaignError(f"{self.path}: not a usable campaign database ({err})") from None

    def close(self) -> None:
        """Checkpoint the WAL into the database file (after a clean stop the .sqlite file alone
        holds every answer), then close."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()

    # ------------------------------------------------------------------ set-up

    def _open_or_create(self) -> None:
        names = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not names:
            self._create()
            return
        if "meta" not in names or not set(TABLES) <= names:
            raise CampaignError(f"{self.path}: an SQLite file that is not a campaign database; give another --db")
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("tasks_sha256") != self.campaign.fingerprint:
            raise CampaignError(
                f"{self.path}: the database belongs to another campaign (corpus {meta.get('corpus')!r}, "
                f"created {meta.get('created')}, tasks.csv sha256 {meta.get('tasks_sha256', '?')[:12]}...) than "
                f"{self.campaign.folder} (sha256 {self.campaign.fingerprint[:12]}...); give another --db"
            )

    def _create(self) -> None:
        c = self.campaign
        with self._write() as conn:
            conn.executescript_in_tx(SCHEMA_SQL)
            meta = {
                "schema_version": SCHEMA_VERSION,
                "corpus": c.corpus,
                "campaign_folder": str(c.folder.resolve()),
                "tasks_sha256": c.fingerprint,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.clock())),
            }
            conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            conn.executemany(
                "INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.task_id, int(r.trial), r.image_id, r.image_file, int(r.is_attention_check), int(r.gold_label))
                    for r in c.tasks.itertuples(index=False)
                ],
            )

    def _write(self):
        return _Transaction(self._conn, self._lock)

    # ------------------------------------------------------------------ requests

    def register(self, *, participant_id=None, prolific_pid=None, study_id=None, session_id=None, user_agent=None):
        """A visit to the task page: the participant (PROLIFIC_PID, a known generated id, or a
        new generated id), recorded with the platform's parameters. Returns `state`."""
        now = self.clock()
        if prolific_pid is not None and participant_id not in (None, prolific_pid):
            raise Refused(400, "participant_id and PROLIFIC_PID disagree")
        with self._write() as conn:
            if prolific_pid is not None:
                pid, source = prolific_pid, "platform"
            elif participant_id is not None:
                pid, source = participant_id, None
                if not self._known(conn, pid):
                    raise Refused(404, f"unknown participant {pid!r}")
            else:
                pid, source = f"p-{secrets.token_hex(8)}", "generated"
            if source is not None and not self._known(conn, pid):
                conn.execute(
                    "INSERT INTO participants VALUES (?, ?, ?, ?, ?, ?)",
                    (pid, now, source, prolific_pid, study_id, session_id),
                )
            conn.execute(
                "INSERT INTO visits (participant_id, at, study_id, session_id, user_agent) VALUES (?, ?, ?, ?, ?)",
                (pid, now, study_id, session_id, (user_agent or "")[:300] or None),
            )
        return self.state(pid)

    def start(self, participant_id: str) -> dict:
        """Consent given: record it, then assign a free task list (or keep the one held).

        Refused 503 (consent kept) when every list is finished or held by someone."""
        now = self.clock()
        with self._write() as conn:
            if not self._known(conn, participant_id):
                raise Refused(404, f"unknown participant {participant_id!r}")
            conn.execute("INSERT OR IGNORE INTO consents VALUES (?, ?)", (participant_id, now))
            held = conn.execute("SELECT 1 FROM assignments WHERE participant_id = ?", (participant_id,)).fetchone()
            task_id = None
            if held is None:
                task_id = self._free_list(conn, now)
                if task_id is not None:
                    expires = now + 60.0 * self.campaign.list_timeout_minutes
                    conn.execute("INSERT INTO assignments VALUES (?, ?, ?, ?)", (participant_id, task_id, now, expires))
        if held is None and task_id is None:
            raise Refused(
                503,
                "every task list is taken or finished right now: please return the study "
                "(or try again later); nothing of yours was lost",
            )
        return self.state(participant_id)

    def record_answer(self, participant_id: str, task_id: str, trial: int, responses: list[str], rt_ms: float):
        """One answered trial, validated and committed in its own transaction.

        A replay of the stored answer is acknowledged without storing it again; a different
        second answer to the same trial is refused (409)."""
        if len(responses) != N_DIGITS or any(r not in RESPONSES for r in responses):
            raise Refused(400, f"responses must be {N_DIGITS} answers from {'/'.join(RESPONSES)}, one per digit")
        now = self.clock()
        encoded = json.dumps(list(responses))
        with self._write() as conn:
            if not self._known(conn, participant_id):
                raise Refused(404, f"unknown participant {participant_id!r}")
            row = conn.execute("SELECT task_id FROM assignments WHERE participant_id = ?", (participant_id,)).fetchone()
            if row is None:
                raise Refused(409, f"participant {participant_id!r} has no task list yet (consent first)")
            if task_id != row[0]:
                raise Refused(403, f"task list {task_id!r} is not participant {participant_id!r}'s list")
            if (task_id, trial) not in self._trials:
                raise Refused(404, f"trial {trial!r} is not in task list {task_id!r}")
            stored = conn.execute(
                "SELECT responses, reaction_time_ms FROM answers WHERE participant_id = ? AND trial = ?",
                (participant_id, trial),
            ).fetchone()
            if stored is not None:
                if stored == (encoded, float(rt_ms)):
                    replay = True
                else:
                    raise Refused(409, f"trial {trial} of participant {participant_id!r} already has another answer")
            else:
                replay = False
                conn.execute(
                    "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                    (participant_id, task_id, trial, encoded, float(rt_ms), now),
                )
                n_answered = conn.execute(
                    "SELECT COUNT(*) FROM answers WHERE participant_id = ?", (participant_id,)
                ).fetchone()[0]
                if n_answered == self._n_trials[task_id]:
                    code = self.campaign.completion_code or f"SD-{secrets.token_hex(4).upper()}"
                    conn.execute("INSERT INTO completions VALUES (?, ?, ?, ?)", (participant_id, task_id, now, code))
        return {**self.state(participant_id), "stored": not replay, "replay": replay}

    # ------------------------------------------------------------------ reads

    def state(self, participant_id: str) -> dict:
        """What the task page needs to know about a participant (never another's answers)."""
        now = self.clock()
        with self._lock:
            conn = self._conn
            p = conn.execute(
                "SELECT id_source FROM participants WHERE participant_id = ?", (participant_id,)
            ).fetchone()
            if p is None:
                raise Refused(404, f"unknown participant {participant_id!r}")
            consented = conn.execute("SELECT 1 FROM consents WHERE participant_id = ?", (participant_id,)).fetchone()
            a = conn.execute(
                "SELECT task_id, expires_at FROM assignments WHERE participant_id = ?", (participant_id,)
            ).fetchone()
            answered = [
                r[0]
                for r in conn.execute(
                    "SELECT trial FROM answers WHERE participant_id = ? ORDER BY trial", (participant_id,)
                )
            ]
            done = conn.execute(
                "SELECT completion_code FROM completions WHERE participant_id = ?", (participant_id,)
            ).fetchone()
        state = {
            "participant_id": participant_id,
            "id_source": p[0],
            "consented": consented is not None,
            "task_id": a[0] if a else None,
            "n_trials": int(self._n_trials[a[0]]) if a else None,
            "answered": answered,
            "expired": bool(a and done is None and a[1] <= now),
            "finished": done is not None,
            "completion_code": done[0] if done else None,
            "completion_url": self.campaign.completion_url if done else None,
        }
        return state

    def trial_image(self, participant_id: str, trial: int | str) -> Path:
        """The PNG of one trial of the participant's own list ('practice': the practice image)."""
        state = self.state(participant_id)
        if state["task_id"] is None:
            raise Refused(409, f"participant {participant_id!r} has no task list yet (consent first)")
        if trial == "practice":
            return self.campaign.image_path(self.practice(state["task_id"])["image_file"])
        row = self._trials.get((state["task_id"], trial))
        if row is None:
            raise Refused(404, f"trial {trial!r} is not in task list {state['task_id']!r}")
        return self.campaign.image_path(row.image_file)

    def practice(self, task_id: str) -> dict:
        """The practice image of a list: the first gold image that is not one of its trials
        (or the first gold image, in a campaign too small for that); its digit is shown as feedback."""
        in_list = {r.image_id for (t, _), r in self._trials.items() if t == task_id}
        gold = self.campaign.gold
        free = gold[~gold["image_id"].isin(in_list)]
        pick = (free if len(free) else gold).iloc[0]
        image_file = f"images/{image_file_name(pick['image_id'])}"
        return {"image_id": pick["image_id"], "image_file": image_file, "digit": int(pick["gold_label"])}

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table, as the admin status view reads them (one snapshot)."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                return {t: pd.read_sql_query(f"SELECT * FROM {t}", self._conn) for t in TABLES}
            finally:
                self._conn.execute("COMMIT")

    @staticmethod
    def _known(conn, participant_id: str) -> bool:
        return (
            conn.execute("SELECT 1 FROM participants WHERE participant_id = ?", (participant_id,)).fetchone()
            is not None
        )

    @staticmethod
    def _free_list(conn, now: float) -> str | None:
        """The first list (by task_id) that nobody has finished and nobody holds."""
        row = conn.execute(
            """
            SELECT DISTINCT t.task_id FROM trials t
            WHERE t.task_id NOT IN (SELECT task_id FROM completions)
              AND t.task_id NOT IN (
                SELECT a.task_id FROM assignments a
                WHERE a.expires_at > ? AND a.participant_id NOT IN (SELECT participant_id FROM completions))
            ORDER BY t.task_id LIMIT 1
            """,
            (now,),
        ).fetchone()
        return row[0] if row else None


class _Transaction:
    """`with store._write() as conn:` one IMMEDIATE transaction under the store's lock:
    committed on success, rolled back (nothing stored) on any exception."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock):
        self.conn = conn
        self.lock = lock

    def __enter__(self):
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self

    def execute(self, sql, params=()):
        return self.conn.execute(sql, params)

    def executemany(self, sql, rows):
        return self.conn.executemany(sql, rows)

    def executescript_in_tx(self, script: str) -> None:
        """Run DDL statements inside the open transaction (executescript would commit first)."""
        for statement in _statements(script):
            self.conn.execute(statement)

    def __exit__(self, exc_type, exc, tb):
        try:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.lock.release()
        return False


def _statements(script: str) -> list[str]:
    """The statements of a script, split where sqlite3 says a statement is complete."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return [s for s in out if s]
