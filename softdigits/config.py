"""Config loading and validation with errors that name the file, line and key.

The schema lives in `schemas/config.schema.yaml`, one section per stage in
`schemas/config/*.schema.yaml` (joined by relative `$ref`). After the schema,
`cross_field_problems` checks the rules that tie keys together (threshold order,
budgets that can hold their minimums, ...): everything that can be checked
without data is checked when the config is loaded, before any job runs and so
before Snakemake deletes any earlier output of a job.

`load_config_files` reads config files and merges them the way Snakemake merges
`--configfile` overlays onto `configfile:` (dicts merge key by key, lists and
scalars replace); `softdigits check-config FILE...` runs all of it.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from softdigits.constants import N_DIGITS, RELEASE_SPLIT_SIZES, STUDY_SPLITS
from softdigits.errors import KnownError

DOWNLOADS = "resources/downloads"  # where download_file writes (rules/common.smk)


# Every seed of the study, as (section, key): a replicate shifts each by REPLICATE_STRIDE x its
# number, so every random step of the study draws anew (lists: every element).
REPLICATE_SEED_KEYS = (
    ("generator", "seed"),
    ("cartography", "seeds"),
    ("selection", "seed"),
    ("corpus_size", "seed"),
    ("annotation", "seed"),
    ("training", "seeds"),
    ("training", "shuffle_seed"),
    ("evaluation", "permutation_seed"),
    ("evaluation", "bootstrap_seed"),
)
REPLICATE_STRIDE = 1000


def replicate_config(config: dict, replicate: int) -> dict:
    """The config of one whole-study replicate: every seed shifted by REPLICATE_STRIDE x
    `replicate` (replicate 0 is the config's own study), its results in
    `<results>/replicate<replicate>`, and no replicates of its own."""
    import copy

    out = copy.deepcopy(config)
    out["replicates"] = []
    out["results"] = f"{config['results']}/replicate{replicate}"
    for section, key in REPLICATE_SEED_KEYS:
        value = out[section][key]
        shift = REPLICATE_STRIDE * int(replicate)
        out[section][key] = [v + shift for v in value] if isinstance(value, list) else value + shift
    return out


class ConfigError(KnownError, ValueError):
    """The config is malformed or breaks a rule; `problems` holds one line per problem."""

    def __init__(self, problems: list[str], header: str = "invalid config"):
        self.problems = list(problems)
        super().__init__(f"{header}:\n  " + "\n  ".join(self.problems))


REGISTRY_SCHEMA = "registry.schema.yaml"  # a schema file of no folder: made from the registries


def registry_schema(folder: Path) -> dict:
    """The names each registry defines, as schema enums: schema files refer to them
    (`registry.schema.yaml#/$defs/model`) instead of listing names by hand; and the
    corpora section, one entry per registered corpus (`$defs/corpora`, made from the
    schema files in `folder`, the one that asks for the registry schema)."""
    from softdigits.corpora import CORPORA, config_schema
    from softdigits.training.models import MODELS
    from softdigits.training.targets import TARGETS

    names = {"corpus": CORPORA, "model": MODELS, "target": TARGETS}
    defs = {kind: {"enum": list(registry)} for kind, registry in names.items()}
    return {"$defs": defs | {"corpora": config_schema(folder)}}


def _load_schema(path: Path) -> tuple[dict, Registry]:
    root = path.parent

    def retrieve(uri: str) -> Resource:
        name = uri.removeprefix("file://")
        target = Path(name) if Path(name).is_absolute() else root / name
        if target.name == REGISTRY_SCHEMA:
            return Resource.from_contents(registry_schema(target.parent), DRAFT202012)
        return Resource.from_contents(yaml.safe_load(target.read_text()), DRAFT202012)

    schema = yaml.safe_load(path.read_text())
    return schema, Registry(retrieve=retrieve)


def schema_problems(config: dict, schema_path: str | Path) -> list[tuple[str, str]]:
    """(dotted key, problem) for each place the config breaks its schema."""
    schema, registry = _load_schema(Path(schema_path))
    validator = _strict_validator(schema, registry)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = []
    for err in errors:
        key = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "additionalProperties":
            known = ", ".join(sorted(err.schema.get("properties", {})))
            for name in sorted(set(err.instance) - set(err.schema.get("properties", {}))):
                full = f"{key}.{name}" if key else name
                problems.append((full, f"unknown config key '{full}' (known keys here: {known})"))
        else:
            problems.append((key, f"config key '{key or '<top level>'}': {err.message}"))
    return problems


def _strict_validator(schema: dict, registry: Registry) -> jsonschema.Draft202012Validator:
    """A validator whose `integer` is an int only: JSON Schema takes 1.0 (and 1e19 written
    as a float) for an integer, but numpy and torch refuse a float seed or count.

    The section files declare `$schema`, which would make jsonschema validate them with
    its stock class: they are served here without it, so the strict class applies throughout.
    """
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    strict = jsonschema.validators.extend(base, type_checker=checker)

    @functools.cache  # each section file is read once, however many keys refer to it
    def retrieve(uri: str) -> Resource:
        contents = registry.get_or_retrieve(uri).value.contents
        return Resource.from_contents({k: v for k, v in contents.items() if k != "$schema"}, DRAFT202012)

    root = {k: v for k, v in schema.items() if k != "$schema"}
    return strict(root, registry=Registry(retrieve=retrieve))


def validate_config(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError naming each bad key (dotted path) and what is wrong with it.

    The schema first; the cross-field rules only on a config that passes it.
    """
    problems = [message for _, message in schema_problems(config, schema_path)]
    if not problems:
        problems = [message for _, message in cross_field_problems(config)]
    if problems:
        raise ConfigError(problems)


# ------------------------------------------------------------------ cross-field rules


def cross_field_problems(config: dict) -> list[tuple[str, str]]:
    """(dotted key, problem) for each rule between keys that the config breaks.

    Assumes a schema-valid config; keys that other stages may add later are read
    with .get so that these rules never reject a config for lacking them.
    """
    problems: list[tuple[str, str]] = []

    def bad(key: str, message: str) -> None:
        problems.append((key, f"config key '{key}': {message}"))

    corpora = config.get("corpora", {})
    enabled = [name for name, spec in corpora.items() if spec.get("origin") != "off"]
    study = config.get("study", {}).get("corpora", [])
    for corpus in study:
        if corpus in corpora and corpus not in enabled:
            bad(
                "study.corpora",
                f"{corpus!r} is a study corpus, but corpora.{corpus}.origin is 'off': enable it, "
                "or leave it out of study.corpora",
            )

    def corpus_entries(section: str, needed: list[str], kind: str, what: str) -> dict:
        """`section`.corpora, after naming each corpus of `needed` that has no entry there."""
        entries = config.get(section, {}).get("corpora", {})
        for corpus in needed:
            if corpus not in entries:
                bad(f"{section}.corpora", f"no entry ({what}) for the {kind} corpus {corpus!r}")
        return entries

    cartography = corpus_entries("cartography", enabled, "enabled", "epochs, thresholds")
    for corpus, spec in cartography.items():
        t = spec.get("thresholds", {})
        key = f"cartography.corpora.{corpus}.thresholds"
        if t.get("confidence_low", 0) >= t.get("confidence_high", 1):
            bad(
                key,
                f"confidence_low {t['confidence_low']} must be below confidence_high "
                f"{t['confidence_high']} (easy and hard regions would overlap)",
            )
        if t.get("variability_low", 0) > t.get("variability_high", 1):
            bad(
                key,
                f"variability_low {t['variability_low']} must not exceed variability_high " f"{t['variability_high']}",
            )

    selection = corpus_entries("selection", study, "study", "budget, min_easy_per_digit_train")
    for corpus, spec in selection.items():
        budget = spec.get("budget", {})
        for split in STUDY_SPLITS:
            if split in budget and budget[split] <= 0:
                bad(
                    f"selection.corpora.{corpus}.budget.{split}",
                    f"{budget[split]}: every split needs a positive budget (training, early "
                    "stopping and the test metrics each need images)",
                )
        capacity = corpus_capacity(config, corpus)
        total = sum(budget.get(split, 0) for split in STUDY_SPLITS)
        if capacity is not None and total > capacity:
            bad(
                f"selection.corpora.{corpus}.budget",
                f"{budget} asks for {total} images, but the corpus has at most {capacity} "
                "(before de-duplication and the data-map regions)",
            )
        min_easy = spec.get("min_easy_per_digit_train", 0)
        if budget.get("train", 0) > 0 and N_DIGITS * min_easy > budget["train"]:
            bad(
                f"selection.corpora.{corpus}.min_easy_per_digit_train",
                f"{min_easy} easy images per digit need {N_DIGITS * min_easy} training images, "
                f"but budget.train is {budget['train']}",
            )

    generator = config.get("generator", {})
    f = generator.get("filter", {})
    if f and f.get("min_entropy", 0) >= f.get("max_entropy", float("inf")):
        bad("generator.filter", f"min_entropy {f['min_entropy']} must be below max_entropy {f['max_entropy']}")
    st = generator.get("stratify", {})
    if st and st.get("low", 0) >= st.get("high", float("inf")):
        bad("generator.stratify", f"low {st['low']} must be below high {st['high']}")

    annotation = config.get("annotation", {})
    campaign = annotation.get("campaign", {})
    origin = annotation.get("origin")
    if campaign and campaign.get("checks_per_task", 0) >= campaign.get("images_per_task", 1):
        bad(
            "annotation.campaign.images_per_task",
            f"{campaign['images_per_task']} must exceed checks_per_task {campaign['checks_per_task']} "
            "(a task list needs study images besides its attention checks)",
        )
    if origin != "released" and campaign.get("gold_corpus") not in (None, *study):
        bad(
            "annotation.campaign.gold_corpus",
            f"{campaign['gold_corpus']!r} must be one of study.corpora {study} (its data map "
            "picks the gold attention checks)",
        )
    if origin == "campaign":
        lacking = [c for c in study if c not in annotation.get("answers", {})]
        if lacking:
            bad("annotation.answers", f"no answers file for the study corpus(es) {lacking}")
    results = config.get("results", "results")
    problems.extend(results_folder_problems(results))
    for corpus, answers in annotation.get("answers", {}).items():
        key = f"annotation.answers.{corpus}"
        if not str(answers).strip():
            bad(key, "the answers file path is empty")
        # Snakemake deletes the outputs it reruns: human answers must not live among them.
        elif _within(_real(answers), _real(results)):
            bad(
                key,
                f"{answers!r} is inside {results}/, which the "
                "workflow writes and deletes; keep raw answers outside it (e.g. data/answers/)",
            )
    released = annotation.get("released_file")
    if origin == "released" and released and annotation.get("released_download", {}).get("url"):
        # download_file fetches it, and its output pattern is DOWNLOADS/<folder>/<name>.
        if Path(released).parent.parent != Path(DOWNLOADS):
            bad(
                "annotation.released_file",
                f"{released!r} must be {DOWNLOADS}/<folder>/<name> when annotation.released_download.url is set",
            )

    targets = config.get("training", {}).get("targets", [])
    for k, pair in enumerate(config.get("evaluation", {}).get("comparisons", [])):
        unknown = [t for t in pair if t not in targets]
        if unknown:
            bad(f"evaluation.comparisons.{k}", f"{unknown} not in training.targets {targets}")
        elif len(set(pair)) != len(pair):
            bad(f"evaluation.comparisons.{k}", f"compares {pair[0]!r} with itself")
    return problems


def corpus_capacity(config: dict, corpus: str) -> int | None:
    """The most images a corpus can have under this config (its release's split sizes, or
    the generator's n_images, each split capped by limit_per_split); None when unknown."""
    spec = config.get("corpora", {}).get(corpus, {})
    if corpus == "mukhoti" and spec.get("origin") == "generate":
        n_images = config.get("generator", {}).get("stratify", {}).get("n_images")
        if n_images is None:
            return None
        sizes = {"train": n_images // 2, "test": n_images - n_images // 2}
    elif corpus in RELEASE_SPLIT_SIZES:
        sizes = RELEASE_SPLIT_SIZES[corpus]
    else:
        return None
    limit = spec.get("limit_per_split")
    return sum(size if limit is None else min(size, limit) for size in sizes.values())


# The project's own folders: sources, and the data no rule writes (downloads, verified
# copies, checksum locks under resources/), besides the repository itself. The results
# folder is deleted by `make clean` and its files by Snakemake's reruns, so it must not be,
# contain or sit inside any of them.
REPOSITORY = Path(__file__).resolve().parents[1]
PROJECT_FOLDERS = (
    ".git",
    ".snakemake",
    ".venv",
    "bench",
    "config",
    "docs",
    "envs",
    "profiles",
    "report",
    "resources",
    "rules",
    "schemas",
    "scripts",
    "softdigits",
    "tests",
)


def _real(path: str | Path) -> Path:
    """`path` resolved as the workflow resolves it (relative to the working folder), links
    and `..` followed, whether or not it exists."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def results_folder_problems(results: str) -> list[tuple[str, str]]:
    """The results folder must be a folder (or not exist yet), and neither be, contain nor
    sit inside the repository's own folders; the repository root it may only sit inside."""
    key, real = "results", _real(results)
    if real.exists() and not real.is_dir():
        return [(key, f"config key '{key}': {results!r} is an existing file, not a folder")]
    root = REPOSITORY
    if _within(root, real):
        return [
            (
                key,
                f"config key '{key}': {results!r} is (or contains) the repository {root}; `make clean` would delete it",
            )
        ]
    for name in PROJECT_FOLDERS:
        folder = _real(root / name)
        relation = (
            "is"
            if real == folder
            else "lies inside"
            if _within(real, folder)
            else "contains"
            if _within(folder, real)
            else None
        )
        if relation:
            return [
                (
                    key,
                    f"config key '{key}': {results!r} {relation} the project folder {name}/ ({folder}), but "
                    "`make clean` and reruns delete what is in the results folder: choose a folder of its own",
                )
            ]
    return []


# ------------------------------------------------------------------ files


def merge_configs(base: dict, overlay: dict) -> dict:
    """`overlay` merged onto a copy of `base` as Snakemake merges --configfile: dicts
    merge key by key, everything else (lists included) replaces."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_configs(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> tuple[dict, yaml.Node | None]:
    """A config file's mapping and its YAML node tree (for line numbers)."""
    if path.is_dir():
        raise ConfigError([f"{path}: is a folder, expected a YAML config file"], "bad config file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"], "bad config file") from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"{path}: byte {err.start} is not UTF-8 text"], "bad config file") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(p) for p in (getattr(err, "context", None), getattr(err, "problem", None)) if p)
        raise ConfigError([f"{where}: YAML syntax error: {what or err}"], "bad config file") from None
    duplicates = _duplicate_keys(node)
    if duplicates:
        raise ConfigError([f"{path}:{line}: {problem}" for line, problem in duplicates], "bad config file")
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{path}:1: the top level must be a mapping of keys, got {type(data).__name__}"], "bad config file"
        )
    return data, node


def _duplicate_keys(node: yaml.Node | None, prefix: str = "") -> list[tuple[int, str]]:
    """(line, problem) for each key set twice in one mapping: YAML loaders keep the last
    silently (Snakemake's too), so the first setting would be ignored without a word."""
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`
                continue
            key = str(key_node.value)
            full = f"{prefix}.{key}" if prefix else key
            line = key_node.start_mark.line + 1
            if key in first:
                found.append((line, f"duplicate key '{full}' (first set on line {first[key]}; a key may be set once)"))
            else:
                first[key] = line
            found.extend(_duplicate_keys(value_node, full))
    elif isinstance(node, yaml.SequenceNode):
        for k, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, f"{prefix}.{k}" if prefix else str(k)))
    return found


def check_yaml_files(paths: list[str | Path]) -> None:
    """Raise ConfigError naming file and line when a config file is not well-formed YAML
    (syntax, a duplicate key, a top level that is not a mapping). The workflow calls this
    on the files Snakemake loaded, since Snakemake's own loader keeps a duplicate's last value."""
    problems = []
    for path in paths:
        try:
            _read_yaml(Path(path))
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems, "bad config file")


def _key_line(node: yaml.Node | None, key: str) -> int | None:
    """The 1-based line where the dotted `key` (or its deepest present ancestor) is set."""
    line = None
    for part in key.split(".") if key else []:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if str(k.value) == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _depth(data, key: str) -> int:
    """How many leading parts of the dotted `key` a file's mapping sets."""
    depth = 0
    for part in key.split(".") if key else []:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            break
        depth += 1
    return depth


def check_files(paths: list[str | Path], schema_path: str | Path) -> dict:
    """Load, merge and validate config files; ConfigError lists 'file:line: problem' lines.

    The first file is the base (workflow_config.yaml), later ones overlays. A problem
    is located in the last file that sets the key's section, at the key's line.
    """
    loaded = [(Path(p), *_read_yaml(Path(p))) for p in paths]
    config: dict = {}
    for _, data, _ in loaded:
        config = merge_configs(config, data)
    problems = schema_problems(config, schema_path)
    if not problems:
        problems = cross_field_problems(config)
    if not problems:
        return config
    lines = []
    for key, message in problems:
        path, _, node = max(reversed(loaded), key=lambda f: _depth(f[1], key))
        line = _key_line(node, key)
        lines.append(f"{path}{f':{line}' if line else ''}: {message}")
    raise ConfigError(lines)
