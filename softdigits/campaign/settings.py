"""The campaign folder as the server reads it, and the built task page.

An exported campaign (softdigits.annotation.campaign) holds tasks.csv, gold.csv,
images/ and manifest.json. The serving settings are the config's `campaign` section, which
no rule reads (so changing one reruns nothing); `softdigits campaign serve` reads them from
the config files it is given (`serve_settings`):

- `list_timeout_minutes`: a task list taken but not finished within this time goes back
  to the pool (its participant may still finish it);
- `completion_code`: the code the end page shows (null: a random code per participant);
- `completion_url`: the recruiting platform's completion URL the end page links to (null:
  no link, e.g. a lab study).

The task page is built from node_modules into `TASK_BUILD` by `make campaign-task`; the
server refuses to start without it (`require_build`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from softdigits.annotation.campaign import image_file_name, read_campaign
from softdigits.errors import KnownError

TASK_DIR = Path(__file__).resolve().parent / "task"
TASK_BUILD = TASK_DIR / "dist"
BUILD_COMMAND = "make campaign-task"
# The build's files the server serves by name (build.mjs writes them).
BUILD_FILES = (
    "index.html",
    "admin.html",
    "task.js",
    "admin.js",
    "plugin-digit-categorisation.js",
    "style.css",
    "consent.html",
    "vendor/jspsych.js",
)
SERVE_KEYS = ("list_timeout_minutes", "completion_code", "completion_url")


class CampaignError(KnownError, ValueError):
    """A campaign folder, database or request setting is unusable; the message names it."""


@dataclass(frozen=True)
class ServeSettings:
    list_timeout_minutes: float
    completion_code: str | None
    completion_url: str | None


def serve_settings(config: dict, where: str = "config") -> ServeSettings:
    """The `campaign` section of a merged, checked config (softdigits.config.check_files)."""
    section = config.get("campaign") or {}
    missing = [k for k in SERVE_KEYS if k not in section]
    if missing:
        raise CampaignError(f"{where}: config key 'campaign.{missing[0]}' is missing")
    timeout = section["list_timeout_minutes"]
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise CampaignError(f"{where}: config key 'campaign.list_timeout_minutes': {timeout!r} is not a number > 0")
    return ServeSettings(float(timeout), section["completion_code"], section["completion_url"])


@dataclass(frozen=True)
class Campaign:
    """An exported campaign: its task table, gold pool, settings and fingerprint."""

    folder: Path
    corpus: str
    tasks: pd.DataFrame  # task_id, trial, image_id, image_file, is_attention_check, gold_label
    gold: pd.DataFrame  # image_id, gold_label
    list_timeout_minutes: float
    completion_code: str | None
    completion_url: str | None
    fingerprint: str  # sha256 of tasks.csv: the database belongs to exactly one campaign

    def image_path(self, image_file: str) -> Path:
        return self.folder / image_file


def read_campaign_folder(folder: str | os.PathLike, settings: ServeSettings) -> Campaign:
    """The campaign at `folder`, checked (its files exist), served with `settings`."""
    folder = Path(folder)
    for name in ("tasks.csv", "gold.csv", "manifest.json", "images"):
        if not (folder / name).exists():
            raise CampaignError(f"{folder}: not an exported campaign ({name} missing; see rule annotation_export)")
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CampaignError(f"{folder / 'manifest.json'}: not valid JSON ({err})") from None
    tasks, gold = read_campaign(folder)
    if "image_file" not in tasks.columns:
        raise CampaignError(f"{folder / 'tasks.csv'}: no image_file column; export the campaign again")
    absent = [f for f in tasks["image_file"].unique() if not (folder / f).is_file()]
    if absent:
        raise CampaignError(f"{folder}: {len(absent)} image file(s) of tasks.csv missing, e.g. {absent[0]}")
    no_png = [i for i in gold["image_id"] if not (folder / "images" / image_file_name(i)).is_file()]
    if no_png:
        raise CampaignError(
            f"{folder}: gold image {no_png[0]} has no PNG (the practice trial needs the whole gold pool; "
            "exported by an older softdigits): export it again"
        )
    tasks = tasks.astype({"trial": "int64", "is_attention_check": bool})
    tasks["gold_label"] = tasks["gold_label"].where(tasks["is_attention_check"], -1).astype("int64")
    return Campaign(
        folder=folder,
        corpus=str(manifest.get("corpus", "")),
        tasks=tasks[["task_id", "trial", "image_id", "image_file", "is_attention_check", "gold_label"]],
        gold=gold[["image_id", "gold_label"]].astype({"gold_label": "int64"}),
        list_timeout_minutes=settings.list_timeout_minutes,
        completion_code=settings.completion_code,
        completion_url=settings.completion_url,
        fingerprint=hashlib.sha256((folder / "tasks.csv").read_bytes()).hexdigest(),
    )


def require_build(build: Path = TASK_BUILD) -> Path:
    """The built task page's folder; CampaignError naming the command when it is missing."""
    missing = [name for name in BUILD_FILES if not (build / name).is_file()]
    if missing:
        raise CampaignError(f"the task page is not built ({build / missing[0]} missing): run `{BUILD_COMMAND}`")
    return build
