"""docs/DEVELOPING.md points to the code instead of restating it, and what it names exists.

Each data contract's one home is a pyarrow schema constant; the columns the document
names after "Columns:" in a contract must be columns of the schema(s) that contract
names, and every `softdigits.…` name and repository path it gives must exist.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[1]
DEVELOPING = REPO / "docs" / "DEVELOPING.md"
# The schema constant of each contract (the names are checked to exist, and to be named).
CONTRACT_HOMES = {
    "images": "softdigits.io.IMAGES_SCHEMA",
    "study table": "softdigits.study_table.SCHEMA",
    "raw annotations": "softdigits.annotation.answers.RAW_SCHEMA",
    "cartography dynamics": "softdigits.cartography.train.DYNAMICS_SCHEMA",
    "data map": "softdigits.cartography.maps.DATA_MAP_SCHEMA",
    "run history": "softdigits.training.run_outputs.HISTORY_SCHEMA",
    "run predictions": "softdigits.training.run_outputs.PREDICTIONS_SCHEMA",
    "run dynamics": "softdigits.training.run_outputs.RUN_DYNAMICS_SCHEMA",
}
SCHEMA_REF = re.compile(r"`(softdigits(?:\.[a-z_]\w*)+\.[A-Z0-9_]*SCHEMA)`")
CODE_NAME = re.compile(r"`(softdigits(?:\.\w+)+)`")
COLUMN = re.compile(r"`([a-z_][a-z0-9_]*)`")
REPO_PATH = re.compile(r"`((?:softdigits|rules|scripts|tests|schemas|envs|config|docs|report|bench)/[^`]*)`")


def resolve(dotted: str):
    """The module or attribute `dotted` names (ImportError/AttributeError when none)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def contracts(text: str) -> list[str]:
    """Each list item (nested ones on their own) of the "Data contracts" section."""
    section = text.split("## Data contracts", 1)[1].split("\n## ", 1)[0]
    items: list[str] = []
    open_item = False
    for line in section.splitlines():
        if re.match(r"\s*- ", line):
            items.append(line)
            open_item = True
        elif open_item and line.startswith(" ") and line.strip():
            items[-1] += "\n" + line
        else:
            open_item = False
    return items


def column_problems(text: str) -> tuple[list[str], int]:
    """(one line per column the contracts name that their schema lacks, columns checked)."""
    problems, checked = [], 0
    for item in contracts(text):
        title = re.search(r"\*\*(.+?)\*\*|`(.+?)`", item)
        title = (title.group(1) or title.group(2)) if title else item.strip()[:40]
        refs = SCHEMA_REF.findall(item)
        schemas = {}
        for ref in refs:
            try:
                schema = resolve(ref)
            except (ImportError, AttributeError):
                problems.append(f"{title}: {ref} does not exist")
                continue
            if not isinstance(schema, pa.Schema):
                problems.append(f"{title}: {ref} is not a pyarrow schema")
                continue
            schemas[ref] = schema
        if "Columns:" not in item:
            continue
        if not refs:
            problems.append(f"{title}: names columns but no schema")
            continue
        if len(schemas) < len(refs):
            continue  # a schema that does not exist is reported above
        names = {name for schema in schemas.values() for name in schema.names}
        for column in COLUMN.findall(item.split("Columns:", 1)[1]):
            checked += 1
            if column not in names:
                problems.append(f"{title}: column `{column}` is not in {' or '.join(refs)}")
    return problems, checked


def missing_names(text: str) -> list[str]:
    """The `softdigits.…` names and repository paths the text gives that do not exist."""
    missing = []
    for name in sorted(set(CODE_NAME.findall(text))):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    for path in sorted(set(REPO_PATH.findall(text))):
        if re.search(r"[<>{}*]|(^|/)X(\.|/|$)", path):
            continue  # a pattern (rules/X.smk, scripts/<rule_name>.py), not a path
        if not (REPO / path).exists():
            missing.append(path)
    return missing


@pytest.fixture(scope="module")
def developing() -> str:
    return DEVELOPING.read_text()


def test_each_contract_points_to_its_schema(developing):
    named = set(SCHEMA_REF.findall(developing))
    for contract, ref in CONTRACT_HOMES.items():
        assert ref in named, f"DEVELOPING.md does not point the {contract} contract to {ref}"
        assert isinstance(resolve(ref), pa.Schema), ref


def test_the_columns_developing_names_are_in_their_schemas(developing):
    problems, checked = column_problems(developing)
    assert not problems, "\n".join(problems)
    assert checked >= 10, f"only {checked} columns named after 'Columns:'"


def test_a_column_the_schema_lacks_fails_naming_it(developing):
    wrong = developing.replace("`gold_label` is null on study images", "`gold_labels` is null on study images")
    assert wrong != developing
    problems, _ = column_problems(wrong)
    assert problems == ["raw annotations: column `gold_labels` is not in softdigits.annotation.answers.RAW_SCHEMA"]
    tiny = "## Data contracts\n- **images**: `softdigits.io.IMAGES_SCHEMA`.\n  Columns: `pixels`, `colour`.\n"
    assert column_problems(tiny) == (
        ["images: column `colour` is not in softdigits.io.IMAGES_SCHEMA"],
        2,
    )
    gone = "## Data contracts\n- **grid**: `softdigits.grid.OUTPUT_SCHEMA`.\n  Columns: `epoch`.\n"
    assert column_problems(gone)[0] == ["grid: softdigits.grid.OUTPUT_SCHEMA does not exist"]


def test_every_name_and_path_developing_gives_exists(developing):
    assert not missing_names(developing)
    stale = "`softdigits.grid.run`, `softdigits/grid.py`, `softdigits.evaluation.metrics.entropy`, `rules/X.smk`"
    assert missing_names(stale) == ["softdigits.grid.run", "softdigits/grid.py"]
