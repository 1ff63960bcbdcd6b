# Stage 'selection': which images of each study corpus are annotated and their split,
# as an integer program over (digit, region, split) counts (PuLP + CBC); and the
# corpus-size sensitivity of the paper's Appendix A.1 (Table 5), which justifies the
# 150-easy-images-per-digit minimum of the selection.


rule selection_solve:
    input:
        data_map=rules.cartography_regions.output.data_map,
        images=rules.dedup.output.images,
        code=code("selection_solve"),
    # update(): Snakemake keeps the earlier outputs while the job runs and puts them back if
    # it fails (the writers replace them only once complete), so a budget that the data map
    # cannot meet (known only once it is read) fails without losing the earlier selection.
    output:
        selection=update(f"{SELECTION_DIR}/{{corpus}}.parquet"),
        strata_csv=update(
            report(
                f"{SELECTION_DIR}/{{corpus}}_strata.csv",
                caption="../report/selection_strata.rst",
                category="Selection",
                labels={"corpus": "{corpus}"},
            )
        ),
        strata_md=update(f"{SELECTION_DIR}/{{corpus}}_strata.md"),
    params:
        budget=lambda wc: SELECTION["corpora"][wc.corpus]["budget"],
        min_easy_per_digit_train=lambda wc: SELECTION["corpora"][wc.corpus]["min_easy_per_digit_train"],
        min_per_region_split=lambda wc: SELECTION["corpora"][wc.corpus]["min_per_region_split"],
        region_weights=SELECTION["region_weights"],
        seed=SELECTION["seed"],
        time_limit_s=SELECTION["time_limit_s"],
    log:
        f"{LOGS}/selection_solve/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/selection_solve/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(config["selection"]["time_limit_s"]),
    conda:
        "../envs/selection.yaml"
    script:
        "../scripts/selection_solve.py"


# One job per size with all its repetitions: torch start-up (~2 s) stays small
# against even the smallest size's training, and sizes run in parallel.
rule corpus_size_run:
    input:
        images=corpus_size_images,
        code=code("corpus_size_run"),
    output:
        runs=f"{CORPUS_SIZE_DIR}/runs/k{{size}}.parquet",
    params:
        repetitions=CORPUS_SIZE["repetitions"],
        seed=CORPUS_SIZE["seed"],
        model=CORPUS_SIZE["model"],
        epochs=CORPUS_SIZE["epochs"],
        batch_size=CORPUS_SIZE["batch_size"],
        lr=CORPUS_SIZE["lr"],
    wildcard_constraints:
        size=r"\d+",
    log:
        f"{LOGS}/corpus_size_run/k{{size}}.log",
    benchmark:
        f"{BENCHMARKS}/corpus_size_run/k{{size}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=runtime(
            66,
            lambda c: max(c["corpus_size"]["samples_per_digit"])
            * c["corpus_size"]["repetitions"]
            * c["corpus_size"]["epochs"],
        ),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/corpus_size_run.py"


rule corpus_size_table:
    input:
        runs=expand(f"{CORPUS_SIZE_DIR}/runs/k{{size}}.parquet", size=CORPUS_SIZE["samples_per_digit"]),
        code=code("corpus_size_table"),
    output:
        runs=f"{CORPUS_SIZE_DIR}/runs.parquet",
        md=f"{TABLES}/table5.md",
        csv=report(
            f"{TABLES}/table5.csv",
            caption="../report/corpus_size_table5.rst",
            category="Corpus size (Table 5)",
        ),
        parquet=f"{TABLES}/table5.parquet",
    params:
        repetitions=CORPUS_SIZE["repetitions"],  # for the caption
    log:
        f"{LOGS}/corpus_size_table.log",
    benchmark:
        f"{BENCHMARKS}/corpus_size_table.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=runtime(60),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/corpus_size_table.py"
