"""Config validation with errors that name the offending key.

The schema lives in `schemas/config.schema.yaml`, one section per stage in
`schemas/config/*.schema.yaml` (joined by relative `$ref`).
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class ConfigError(ValueError):
    """The config breaks its schema; the message lists every offending key."""


def _load_schema(path: Path) -> tuple[dict, Registry]:
    root = path.parent

    def retrieve(uri: str) -> Resource:
        name = uri.removeprefix("file://")
        target = Path(name) if Path(name).is_absolute() else root / name
        return Resource.from_contents(yaml.safe_load(target.read_text()), DRAFT202012)

    schema = yaml.safe_load(path.read_text())
    return schema, Registry(retrieve=retrieve)


def validate_config(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError naming each bad key (dotted path) and what is wrong with it."""
    schema, registry = _load_schema(Path(schema_path))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    lines = []
    for err in errors:
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            for name in extra:
                full = f"{key}.{name}" if err.absolute_path else name
                known = ", ".join(sorted(err.schema.get("properties", {})))
                lines.append(f"unknown config key '{full}' (known keys here: {known})")
        else:
            lines.append(f"config key '{key}': {err.message}")
    raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
