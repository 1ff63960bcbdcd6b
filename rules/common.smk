# Shared by every stage: config validation, code fingerprints, target lists.
import json
import math
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, workflow.basedir)
from softdigits.config import DOWNLOADS, check_yaml_files, replicate_config, validate_config
from softdigits.corpora.download import content_check, digest_file, download_plan
from softdigits.corpora import CORPORA as CORPUS_REGISTRY, reader_settings
from softdigits.training import run_outputs
from softdigits.training.models import MODELS
from softdigits.training.targets import TARGETS
from softdigits.evaluation.stats import POSTHOC_VIEWS
from softdigits.evaluation.tables import SECTIONS as TABLE_SECTIONS, TABLES as TABLE_SPECS, fill as fill_caption
from softdigits.explorer import asset_paths
from softdigits.provenance import script_code
from softdigits import jobs, run_lock

# Snakemake's YAML loader keeps the last of a duplicate key without a word: read the files again.
check_yaml_files(workflow.configfiles)
validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")

# Scripts import the package from the repository (also inside per-rule conda envs).
# (We set PYTHONPATH for the jobs; no user environment variable is required.)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p))


onstart:
    # A job that cannot read an input names the rule that writes it (softdigits.jobs).
    os.environ[jobs.RULE_OUTPUTS_ENV] = jobs.rule_outputs(workflow.rules)
    # A damaged input stops the run before Snakemake deletes the outputs of the jobs that read it.
    unreadable = jobs.unreadable_run_inputs(workflow.dag, RESULTS)
    if unreadable:
        print(*(f"softdigits: error: {line}; no job was started" for line in unreadable), sep="\n", file=sys.stderr)
        sys.exit(2)


# ------------------------------------------------------------- globals
# Every path root and shared dict of the workflow, defined here once; stage files only
# read them.

RESULTS = config["results"]  # per config: overlays set their own, so configs never share outputs
REPLICATES = config["replicates"]  # whole-study replicates (rules/replicates.smk); empty: one study
# One run per results folder at a time (softdigits/run_lock.py), checked before Snakemake
# looks at incomplete files; the jobs Snakemake starts as processes of their own (on
# cluster nodes, groups) load this file too, inside the run that holds it.
if not (workflow.remote_exec or workflow.subprocess_exec):
    try:
        RUN_LOCK = run_lock.hold(RESULTS)
    except run_lock.FolderInUse as err:
        print(f"softdigits: error: {err}", file=sys.stderr)
        sys.exit(2)
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
CORPORA_DIR = f"{RESULTS}/corpora"
DEDUP_DIR = f"{RESULTS}/dedup"
GENERATOR_DIR = f"{RESULTS}/generator"
CARTOGRAPHY_DIR = f"{RESULTS}/cartography"
SELECTION_DIR = f"{RESULTS}/selection"
CORPUS_SIZE_DIR = f"{RESULTS}/corpus_size"
ANNOTATION_DIR = f"{RESULTS}/annotation"
STUDY_DIR = f"{RESULTS}/study"
TRAINING_DIR = f"{RESULTS}/training"
EVALUATION_DIR = f"{RESULTS}/evaluation"
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
EXPLORER_DIR = f"{RESULTS}/explorer"

# Downloads live outside the results (softdigits.config.DOWNLOADS): raw data is shared by every
# config and never deleted.
# Trust-on-first-use sums for files the config gives no checksum (see softdigits/corpora/download.py).
CHECKSUM_LOCKS = "resources/checksums"
# Every verified download is also kept here, keyed by its checksum: outside every rule's
# outputs, so a rerun whose new download fails cannot delete a file verified before.
VERIFIED_STORE = "resources/verified"

CORPORA_CONFIG = config["corpora"]
CORPORA = [name for name, spec in CORPORA_CONFIG.items() if spec["origin"] != "off"]
STUDY_CORPORA = config["study"]["corpora"]
GENERATOR = config["generator"]
CARTOGRAPHY = config["cartography"]
SELECTION = config["selection"]
CORPUS_SIZE = config["corpus_size"]
ANNOTATION = config["annotation"]
LABELS_ORIGIN = ANNOTATION["origin"]
GOLD_CORPUS = ANNOTATION["campaign"]["gold_corpus"]
LABELS_NOTE = {
    "simulated": "SIMULATED annotators (a generative model, not human data)",
    "campaign": "a real annotation campaign (human annotators)",
    "released": "the released soft-digits aggregates (human annotators; no per-annotator data)",
}[LABELS_ORIGIN]

# corpus -> config file name -> local path, for the corpora whose origin is download.
DOWNLOAD_PATHS = download_plan(CORPORA_CONFIG, DOWNLOADS)
# local path -> {url, checksum}: the corpora's files, and the released labels when fetched
# (softdigits.config checks at load that released_file lies under DOWNLOADS).
DOWNLOAD_SPECS = {
    path: CORPORA_CONFIG[corpus]["files"][name]
    for corpus, paths in DOWNLOAD_PATHS.items()
    for name, path in paths.items()
} | (
    {ANNOTATION["released_file"]: ANNOTATION["released_download"]}
    if LABELS_ORIGIN == "released" and ANNOTATION["released_download"]["url"]
    else {}
)
ENSEMBLE_MEMBERS = expand(
    f"{GENERATOR_DIR}/ensemble/member{{member}}.pt", member=range(GENERATOR["ensemble"]["members"])
)

# Written by study_table, read by training and evaluation by this path (not rules.study_table),
# since those stages also run on their own, on study tables made elsewhere (the tests do).
STUDY_TABLE = f"{STUDY_DIR}/{{corpus}}.parquet"
RUNS = f"{TRAINING_DIR}/{{corpus}}/{{model}}/{{target}}/seed{{seed}}"  # one grid cell's folder
# A cell's files (their names: softdigits.training.run_outputs); one train_run job writes them for every seed.
RUN_FILES = run_outputs.cell_files(RUNS)
TRAINING_GRID_KEYS = ("models", "targets", "seeds")
# Training keys that only one target's runs use (key -> target; training.targets.Target.params).
TARGET_ONLY_KEYS = {key: name for name, target in TARGETS.items() for key in target.params}


def code(script):
    """The package modules behind a rule's script (scripts/<script>.py), as inputs, so that
    editing one reruns its jobs: every package module the script imports, transitively.
    Relative to the working folder, as every other path: a moved checkout reruns nothing."""
    return [os.path.relpath(f) for f in script_code(Path(workflow.basedir) / "scripts" / f"{script}.py")]


DEFAULT_CONFIG = yaml.safe_load((Path(workflow.basedir) / "workflow_config.yaml").read_text())


def runtime(seconds, work=lambda c: 1):
    """A rule's time limit in minutes (`resources: runtime=`, sbatch -t on a cluster).

    `seconds`: the rule's slowest job in its benchmark file on the default config (2 cores;
    README "Running on a SLURM cluster" lists them); `work(config)`: the configured size its
    time grows with, so the limit scales by work(config) / work(default config), e.g. 16x for
    config/paper.yaml's 4M pool. Margin: 3x (slower or shared nodes) plus 10 minutes of
    start-up, and at least 15 minutes.
    """
    scale = work(config) / work(DEFAULT_CONFIG)
    return max(15, math.ceil(3 * seconds * scale / 60) + 10)


def all_targets():
    if REPLICATES:  # the summary, which needs every replicate's whole study
        return [f"{RESULTS}/replicates.md", f"{RESULTS}/replicates.json"]
    return (
        corpora_targets()
        + dedup_targets()
        + generator_targets()
        + cartography_targets()
        + selection_targets()
        + annotation_targets()
        + training_targets()
        + evaluation_targets()
        + explorer_targets()
    )


# ---------------------------------------------------------------- corpora


def corpora_targets():
    return [f"{CORPORA_DIR}/{corpus}.parquet" for corpus in CORPORA]


def corpus_inputs(wildcards):
    """A corpus job's files by the names its reader takes: the downloads (origin download),
    the generator stage's table (origin generate) or none (origin package)."""
    corpus = wildcards.corpus
    if CORPORA_CONFIG[corpus]["origin"] == "generate":
        return {"generated": f"{GENERATOR_DIR}/{corpus}_corpus.parquet"}
    return DOWNLOAD_PATHS.get(corpus, {})


def corpus_code(wildcards):
    """The package modules a corpus job runs: scripts/corpus.py's and its own reader module's
    (the registry names its reader without importing it; softdigits.corpora), relative as in
    `code`."""
    from softdigits.provenance import module_files

    reader = f"corpora.{CORPUS_REGISTRY[wildcards.corpus].reader}"
    return sorted({*code("corpus"), *(os.path.relpath(f) for f in module_files(reader))})


def corpus_env(wildcards):
    """The conda env of a corpus job (its registry entry's `env`: torch only for .pt tensors)."""
    return f"../envs/{CORPUS_REGISTRY[wildcards.corpus].env}.yaml"


# ---------------------------------------------------------------- dedup


def dedup_targets():
    return expand(rules.dedup.output.images, corpus=CORPORA) + list(rules.dedup_report.output)


def dedup_above(corpus):
    """This corpus and the enabled corpora above it in dedup priority (what its dedup reads)."""
    order = [c for c in config["dedup"]["corpus_priority"] if c in CORPORA]
    return order[: order.index(corpus) + 1]


# ---------------------------------------------------------------- generator


def generator_targets():
    if config["corpora"]["mukhoti"]["origin"] != "generate":
        return []
    return [
        f"{GENERATOR_DIR}/mukhoti_corpus.parquet",
        f"{GENERATOR_DIR}/mukhoti_records.parquet",
        f"{GENERATOR_DIR}/ensemble_accuracy.csv",
        f"{GENERATOR_DIR}/figures/samples_by_entropy.png",
        f"{GENERATOR_DIR}/figures/entropy_histogram.png",
    ]


# ---------------------------------------------------------------- cartography


def cartography_corpus(wildcards):
    return CARTOGRAPHY["corpora"][wildcards.corpus]


def cartography_targets():
    return [
        f"{CARTOGRAPHY_DIR}/{corpus}/{name}"
        for corpus in CORPORA
        for name in ("dynamics.parquet", "data_map.parquet", "regions.csv", "data_map.png")
    ]


# ---------------------------------------------------------------- selection


def corpus_size_images(wildcards):
    if "mnist" not in CORPORA:
        raise ValueError("the corpus-size analysis (config corpus_size, Table 5) needs corpora.mnist enabled")
    return f"{DEDUP_DIR}/mnist.parquet"


def selection_targets():
    return [
        f"{SELECTION_DIR}/{corpus}{suffix}"
        for corpus in STUDY_CORPORA
        for suffix in (".parquet", "_strata.csv", "_strata.md")
    ] + corpus_size_targets()


def corpus_size_targets():
    if "mnist" not in CORPORA:  # Table 5 is an MNIST analysis
        return []
    return [f"{CORPUS_SIZE_DIR}/runs.parquet"] + [f"{TABLES}/table5.{ext}" for ext in ("md", "csv", "parquet")]


# ---------------------------------------------------------------- annotation


def annotation_targets():
    targets = expand(STUDY_TABLE, corpus=STUDY_CORPORA)
    targets += [
        f"{TABLES}/table1.md",
        f"{TABLES}/table1_vs_paper.md",
        f"{TABLES}/annotations_per_image.md",
        f"{TABLES}/appendix_b_correlations.md",
    ]
    if LABELS_ORIGIN != "released":
        targets += expand(f"{ANNOTATION_DIR}/{{corpus}}/labels.parquet", corpus=STUDY_CORPORA)
    return targets


def generation_records(wildcards):
    """The generator's records when this corpus was generated offline (else nothing)."""
    if config["corpora"].get(wildcards.corpus, {}).get("origin") == "generate":
        return {"records": f"{GENERATOR_DIR}/{wildcards.corpus}_records.parquet"}
    return {}


def raw_annotations(corpus):
    return f"{ANNOTATION_DIR}/{corpus}/raw_annotations.parquet"


def import_report(wildcards):
    """Origin campaign: the import's report, an input of aggregate_labels. The raw answers'
    path is the same for every origin, and Snakemake reruns a job only for the outputs asked
    for: asking for the report too makes a switch to campaign run the import."""
    if LABELS_ORIGIN != "campaign":
        return {}
    return {"import_report": f"{ANNOTATION_DIR}/{wildcards.corpus}/import_report.json"}


def answers_sha256(wildcards):
    """The content of a corpus's campaign answers (a param of the import)."""
    path = ANNOTATION["answers"][wildcards.corpus]
    return digest_file(path, "sha256") if os.path.isfile(path) else "missing"


def study_inputs(wildcards):
    corpus = wildcards.corpus
    inputs = {
        "images": f"{DEDUP_DIR}/{corpus}.parquet",
        "data_map": f"{CARTOGRAPHY_DIR}/{corpus}/data_map.parquet",
    }
    if LABELS_ORIGIN == "released":
        inputs["released"] = ANNOTATION["released_file"]
    else:
        inputs["selection"] = f"{SELECTION_DIR}/{corpus}.parquet"
        inputs["labels"] = f"{ANNOTATION_DIR}/{corpus}/labels.parquet"
    return inputs


# ---------------------------------------------------------------- training


def training_settings(target):
    """The training section minus the grid lists: the params one cell's outputs depend on.

    The lists stay out so that adding a model or target does not rerun the other jobs,
    and so do the keys of targets other than this one (TARGET_ONLY_KEYS: a new shuffle seed
    retrains human_shuffled only); keys are sorted so that reordering the config file does
    not rerun anything either.
    """
    settings = {
        k: v
        for k, v in config["training"].items()
        if k not in TRAINING_GRID_KEYS and TARGET_ONLY_KEYS.get(k, target) == target
    }
    return json.loads(json.dumps(settings, sort_keys=True))


def training_targets():
    t = config["training"]
    return expand(
        list(RUN_FILES.values()), corpus=STUDY_CORPORA, model=t["models"], target=t["targets"], seed=t["seeds"]
    ) + expand(f"{TRAINING_DIR}/{{corpus}}/targets/{{target}}.parquet", corpus=STUDY_CORPORA, target=t["targets"])


def every_seed(path):
    """A cell's file for every configured seed: one train_run job trains a target's seeds."""
    return expand(path, seed=training_grid("seeds"), allow_missing=True)


# ---------------------------------------------------------------- evaluation


def training_grid(key):
    """models / targets / seeds / not_a_digit of the training stage (its config section)."""
    try:
        return config["training"][key]
    except KeyError:
        raise WorkflowError(f"config key 'training.{key}' is missing: evaluation reads the training grid")


def target_params():
    """target -> the training settings its builder reads (Target.params), for evaluation to
    rebuild the targets a run was trained on."""
    return {t: {k: config["training"][k] for k in TARGETS[t].params} for t in training_grid("targets")}


def run_grid():
    return [
        (m, t, s) for m in training_grid("models") for t in training_grid("targets") for s in training_grid("seeds")
    ]


def human_labels(wildcards, input):
    """The report caption's sentence on real vs simulated human labels.

    Read from the study tables' metadata, so it is a derived param: Snakemake
    does not rerun a job when it changes (it only reads what the job's inputs say).
    """
    from softdigits.study_table import labels_sentence, study_origins

    paths = [input.study] if isinstance(input.study, str) else list(input.study)
    return labels_sentence(study_origins({Path(p).stem: p for p in paths}))


def per_model(name):
    return [f"{EVALUATION_DIR}/{c}/{m}/{name}.parquet" for c in STUDY_CORPORA for m in training_grid("models")]


def table_caption(name):
    """A table's report caption, its fields filled (softdigits.evaluation.tables.TableSpec)."""
    e = config["evaluation"]
    return fill_caption(
        TABLE_SPECS[name].caption,
        config=config,
        data_map_gold=e["data_map_gold"],
        alpha=e["alpha"],
        negligible_rho=e["negligible_rho"],
        targets=training_grid("targets"),
    )


def evaluation_targets():
    return (
        [
            f"{EVALUATION_DIR}/{name}.parquet"
            for name in (
                "metrics",
                "reliability",
                "jsd",
                "data_maps",
                "data_map_seeds",
                "spearman",
                "summary",
                "posthoc_summary",
                "paired_tests",
                *POSTHOC_VIEWS,
            )
        ]
        + [f"{TABLES}/{name}.{ext}" for name in TABLE_SPECS for ext in ("md", "csv", "parquet")]
        + [f"{FIGURES}/data_maps/{c}/{m}.png" for c in STUDY_CORPORA for m in training_grid("models")]
        + [f"{FIGURES}/{kind}_{c}.png" for kind in ("jsd", "reliability", "risk_coverage") for c in STUDY_CORPORA]
        + [f"{FIGURES}/table5_curve.png", f"{RESULTS}/findings.md", f"{RESULTS}/findings.json"]
        + [f"{RESULTS}/headline.json", f"{RESULTS}/headline.md"]
    )


# ---------------------------------------------------------------- explorer

EXPLORER_PAGE = f"{EXPLORER_DIR}/{{corpus}}.html"
EXPLORER_ASSETS = [os.path.relpath(p) for p in asset_paths()]  # its script and style, relative as in `code`


def explorer_targets():
    return expand(EXPLORER_PAGE, corpus=STUDY_CORPORA)


def explorer_answers(wildcards):
    """The raw answers and their QC report, unless the labels are the released aggregates."""
    if LABELS_ORIGIN == "released":
        return {}
    return {"raw_answers": raw_annotations(wildcards.corpus), "qc": f"{ANNOTATION_DIR}/{wildcards.corpus}/qc.json"}
