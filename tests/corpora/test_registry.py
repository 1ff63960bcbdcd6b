"""The corpora registry: each entry's facts agree with its reader, env, schema file and the config;
the config schema is made from it (a corpus added to the registry is accepted, an unknown name
refused); and no schema file lists a registry's names by hand."""

from __future__ import annotations

import ast
import copy
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from softdigits.config import registry_schema, schema_problems
from softdigits.corpora import COMMON_KEYS, CORPORA, Corpus, reader_settings
from softdigits.corpora.base import SourceFormatError
from softdigits.corpora.checks import check_download
from softdigits.training.models import MODELS
from softdigits.training.targets import TARGETS

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
DEFAULT = yaml.safe_load((REPO / "workflow_config.yaml").read_text())


# ------------------------------------------------------------------ each entry


@pytest.mark.parametrize("name", CORPORA)
def test_entry_agrees_with_its_reader_env_schema_file_and_the_config(name):
    entry = CORPORA[name]
    own = yaml.safe_load((SCHEMAS / "config" / "corpora" / f"{name}.schema.yaml").read_text()) or {}
    settings = list(own.get("properties", {}))
    # read(inputs, origin, **settings): its keyword parameters are the corpus's own config keys.
    parameters = list(inspect.signature(entry.read).parameters)
    assert parameters[:2] == ["inputs", "origin"] and parameters[2:] == settings, parameters
    assert list(reader_settings(DEFAULT["corpora"][name])) == settings
    assert entry.check is None or list(inspect.signature(entry.check).parameters) == ["path", "name", "file_key"]
    assert (REPO / "envs" / f"{entry.env}.yaml").is_file()
    # A reader that imports torch runs in the torch env (data.yaml has no torch).
    source = Path(entry.module.__file__).read_text()
    imports = {a.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import) for a in node.names}
    assert ("torch" in imports) == (entry.env == "torch"), (name, entry.env)
    assert DEFAULT["corpora"][name]["origin"] in entry.origins


def test_every_schema_file_is_a_registered_corpus():
    files = {p.name.removesuffix(".schema.yaml") for p in (SCHEMAS / "config" / "corpora").glob("*.schema.yaml")}
    assert files == set(CORPORA)


def test_an_entry_refuses_an_unknown_origin_and_download_without_files():
    with pytest.raises(ValueError, match=r"Fake: unknown origin\(s\) \['ftp'\]"):
        Corpus("Fake", reader="fake", origins={"ftp": "?"})
    with pytest.raises(ValueError, match="Fake: origin download and download files go together"):
        Corpus("Fake", reader="fake", origins={"download": "?"})


def test_importing_the_registry_and_its_schema_loads_no_reader_torch_or_pandas():
    code = (
        "import sys; from pathlib import Path; from softdigits.corpora import CORPORA; "
        "from softdigits.config import registry_schema; registry_schema(Path('schemas/config')); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', 'rarfile') "
        "or m.startswith('softdigits.corpora.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# ------------------------------------------------------------ download checks


def test_check_download_runs_the_entrys_check(tmp_path, monkeypatch):
    calls = []
    fake = Corpus("Fake", reader="fake", origins={"download": "?"}, files={"blob": "?"})
    monkeypatch.setitem(CORPORA, "fake", fake)
    monkeypatch.setattr(Corpus, "check", property(lambda self: lambda *args: calls.append(args)))
    check_download(tmp_path / "x", "x.bin", "fake", "blob")
    assert calls == [(tmp_path / "x", "x.bin", "blob")]
    monkeypatch.setattr(Corpus, "check", property(lambda self: None))
    with pytest.raises(SourceFormatError, match=r"x\.bin: no content check for the files of fake; give its checksum"):
        check_download(tmp_path / "x", "x.bin", "fake", "blob")


# ------------------------------------------------------- schema from the registry


def fake_corpus(monkeypatch, schemas: Path) -> dict:
    """Register a corpus `fake` with a schema file of its own (one key, `threshold`)."""
    monkeypatch.setitem(
        CORPORA,
        "fake",
        Corpus("Fake", reader="fake", origins={"download": "its files", "off": "skipped"}, files={"blob": "a file"}),
    )
    (schemas / "config" / "corpora" / "fake.schema.yaml").write_text(
        yaml.safe_dump(
            {
                "description": "A fake corpus.",
                "required": ["threshold"],
                "properties": {"threshold": {"type": "integer"}},
            }
        )
    )
    return {
        "origin": "download",
        "limit_per_split": None,
        "files": {"blob": {"url": "https://example.org/blob.bin", "checksum": None}},
        "threshold": 3,
    }


def problems(config: dict, schemas: Path) -> list[str]:
    return [message for _, message in schema_problems(config, schemas / "config.schema.yaml")]


def test_a_corpus_added_to_the_registry_is_accepted_and_checked(tmp_path, monkeypatch):
    schemas = Path(shutil.copytree(SCHEMAS, tmp_path / "schemas"))
    config = copy.deepcopy(DEFAULT)
    entry = fake_corpus(monkeypatch, schemas)
    assert problems(config, schemas) == ["config key 'corpora': 'fake' is a required property"]
    config["corpora"]["fake"] = entry
    config["study"]["corpora"] = ["mnist", "fake"]  # registry.schema.yaml#/$defs/corpus has it too
    assert problems(config, schemas) == []
    # Its own schema file and the registry's origins and files are enforced.
    bad = copy.deepcopy(config)
    bad["corpora"]["fake"] |= {"threshold": "high", "origin": "package"}
    del bad["corpora"]["fake"]["files"]["blob"]
    assert problems(bad, schemas) == [
        "config key 'corpora.fake.files': 'blob' is a required property",
        "config key 'corpora.fake.origin': 'package' is not one of ['download', 'off']",
        "config key 'corpora.fake.threshold': 'high' is not of type 'integer'",
    ]
    monkeypatch.delitem(CORPORA, "fake")  # out of the registry, the same config is refused
    assert "unknown config key 'corpora.fake'" in problems(config, schemas)[0]


def test_an_unknown_corpus_name_is_one_line_naming_the_key():
    config = copy.deepcopy(DEFAULT)
    config["corpora"]["mnsit"] = copy.deepcopy(config["corpora"]["mnist"])
    assert problems(config, SCHEMAS) == [
        "unknown config key 'corpora.mnsit' (known keys here: ardis, mnist, mukhoti, weiss)"
    ]


def test_a_corpus_without_its_schema_file_is_named(tmp_path, monkeypatch):
    schemas = Path(shutil.copytree(SCHEMAS, tmp_path / "schemas"))
    fake_corpus(monkeypatch, schemas)
    (schemas / "config" / "corpora" / "fake.schema.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"corpora/fake\.schema\.yaml: corpus 'fake' of .* has no schema file"):
        registry_schema(schemas / "config")


# ------------------------------------------------- no hand-written registry names

REGISTRIES = {"corpus": CORPORA, "model": MODELS, "target": TARGETS}
# Values that are spelt like a registry name but are no choice among its entries.
NOT_REGISTRY_NAMES = {
    # a gold mode: the human majority class whatever the target, not the target of that name
    ("config/evaluation.schema.yaml", "properties.data_map_gold.enum", "human_majority"),
}


def hand_written_names(schemas: Path) -> list[str]:
    """One line per enum value, property or required key of a schema file that is a registry's name."""
    names = {name: kind for kind, registry in REGISTRIES.items() for name in registry}
    found = []

    def walk(node, file: str, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{where}.{key}" if where else key
                if key in ("enum", "required") and isinstance(value, list):
                    listed = [(here, v) for v in value if isinstance(v, str) and v in names]
                elif key in ("properties", "$defs") and isinstance(value, dict):
                    listed = [(here, v) for v in value if v in names]
                elif key == "const" and isinstance(value, str) and value in names:
                    listed = [(here, value)]
                else:
                    listed = []
                found.extend(
                    f"{file}: {path} lists the {names[v]} {v!r} by hand (use registry.schema.yaml#/$defs/{names[v]})"
                    for path, v in listed
                    if (file, path, v) not in NOT_REGISTRY_NAMES
                )
                walk(value, file, here)
        elif isinstance(node, list):
            for item in node:
                walk(item, file, where)

    for path in sorted(schemas.rglob("*.yaml")):
        walk(yaml.safe_load(path.read_text()), str(path.relative_to(schemas)), "")
    return found


def test_no_schema_file_lists_registry_names_by_hand():
    assert hand_written_names(SCHEMAS) == []


def test_a_hand_written_enum_of_registry_names_is_found(tmp_path):
    schemas = Path(shutil.copytree(SCHEMAS, tmp_path / "schemas"))
    path = schemas / "config" / "training.schema.yaml"
    schema = yaml.safe_load(path.read_text())
    schema["properties"]["models"]["items"] = {"enum": ["simple_ffn", "lenet"]}
    path.write_text(yaml.safe_dump(schema))
    (schemas / "config" / "old.schema.yaml").write_text(
        yaml.safe_dump({"required": ["mnist"], "properties": {"mnist": {}}})
    )
    assert hand_written_names(schemas) == [
        "config/old.schema.yaml: properties lists the corpus 'mnist' by hand (use registry.schema.yaml#/$defs/corpus)",
        "config/old.schema.yaml: required lists the corpus 'mnist' by hand (use registry.schema.yaml#/$defs/corpus)",
        "config/training.schema.yaml: properties.models.items.enum lists the model 'simple_ffn' by hand "
        "(use registry.schema.yaml#/$defs/model)",
        "config/training.schema.yaml: properties.models.items.enum lists the model 'lenet' by hand "
        "(use registry.schema.yaml#/$defs/model)",
    ]


def test_the_registry_schema_enums_are_the_registries():
    defs = registry_schema(SCHEMAS / "config")["$defs"]
    assert {kind: defs[kind]["enum"] for kind in REGISTRIES} == {k: list(r) for k, r in REGISTRIES.items()}
    corpora = defs["corpora"]
    assert corpora["required"] == list(CORPORA) and corpora["additionalProperties"] is False
    for name, entry in CORPORA.items():
        schema = corpora["properties"][name]
        assert schema["properties"]["origin"]["enum"] == list(entry.origins)
        assert set(COMMON_KEYS) - {"files"} <= set(schema["properties"])
        assert list(schema["properties"].get("files", {}).get("properties", {})) == list(entry.files)
