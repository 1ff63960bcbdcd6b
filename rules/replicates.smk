# Whole-study replicates: config `replicates` runs the whole study once per replicate, as a
# module of this same workflow (Snakefile) whose config shifts every seed
# (softdigits.config.replicate_config) and writes to {RESULTS}/replicate<N>/; its rules are
# named replicate<N>_<rule>. Then one job summarises the replicates. One DAG: --cores spreads
# the replicates' jobs over the machine, and a rerun redoes only what a change touches.

for replicate in REPLICATES:
    replicate_module = f"replicate{replicate}"
    replicate_rules = f"replicate{replicate}_"

    module:
        name:
            replicate_module
        snakefile:
            "../Snakefile"
        config:
            replicate_config(config, replicate)

    # downloads are shared by every replicate (resources/downloads): the first one fetches them
    if replicate == REPLICATES[0]:

        use rule * from replicate_module exclude all as replicate_rules*

    else:

        use rule * from replicate_module exclude all, download_file as replicate_rules*


rule replicates_summary:
    input:
        headline=[f"{RESULTS}/replicate{r}/headline.json" for r in REPLICATES],
        findings=[f"{RESULTS}/replicate{r}/findings.json" for r in REPLICATES],
        # where the labels come from (SIMULATED or not), as every table says it
        study=[f"{RESULTS}/replicate{REPLICATES[0]}/study/{c}.parquet" for c in STUDY_CORPORA],
        code=code("replicates_summary"),
    output:
        md=report(
            f"{RESULTS}/replicates.md", caption="../report/evaluation/replicates.rst", category="Findings check"
        ),
        json=f"{RESULTS}/replicates.json",
    params:
        replicates=REPLICATES,
        corpora=STUDY_CORPORA,
    log:
        f"{LOGS}/replicates_summary.log",
    benchmark:
        f"{BENCHMARKS}/replicates_summary.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=runtime(10),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/replicates_summary.py"

