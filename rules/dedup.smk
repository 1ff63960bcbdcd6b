# Stage 'dedup': exact (and optionally near-) duplicates removed within and across
# the enabled corpora, with a duplicates table and a train-test leakage report.
# Every de-duplicated corpus depends on all enabled corpora: one job does them all.


rule dedup:
    input:
        corpora=expand(f"{CORPORA_DIR}/{{corpus}}.parquet", corpus=CORPORA),
        paper_counts="resources/dedup/paper_duplicates.csv",  # the paper's Appendix A.2 counts
        code=code("dedup"),
    output:
        corpora=expand(f"{DEDUP_DIR}/{{corpus}}.parquet", corpus=CORPORA),
        duplicates=f"{DEDUP_DIR}/duplicates.parquet",
        duplicates_csv=report(
            f"{DEDUP_DIR}/duplicates.csv",
            caption="../report/dedup_duplicates.rst",
            category="Corpora",
        ),
        leakage_csv=report(
            f"{DEDUP_DIR}/leakage.csv",
            caption="../report/dedup_leakage.rst",
            category="Corpora",
        ),
        leakage_md=f"{DEDUP_DIR}/leakage.md",
        vs_paper_csv=report(
            f"{DEDUP_DIR}/duplicates_vs_paper.csv",
            caption="../report/dedup_vs_paper.rst",
            category="Corpora",
        ),
    params:
        corpora=CORPORA,
        origins={corpus: config["corpora"][corpus]["origin"] for corpus in CORPORA},
        priority=config["dedup"]["corpus_priority"],
        near_duplicates=config["dedup"]["near_duplicates"],
    log:
        f"{LOGS}/dedup.log",
    benchmark:
        f"{BENCHMARKS}/dedup.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=runtime(8.2),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/dedup.py"
