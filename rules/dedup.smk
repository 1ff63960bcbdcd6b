# Stage 'dedup': exact (and optionally near-) duplicates removed within and across
# the enabled corpora, with a duplicates table and a train-test leakage report.
# Images are kept in config dedup.corpus_priority order, so a corpus's kept images
# depend only on the corpora above it: one job per corpus, and MNIST's chain (first in
# priority) starts while the generator is still building Ambiguous-MNIST.


rule dedup:
    input:
        corpora=lambda wc: [f"{CORPORA_DIR}/{c}.parquet" for c in dedup_above(wc.corpus)],
        code=code("dedup"),
    output:
        images=f"{DEDUP_DIR}/{{corpus}}.parquet",
    params:
        corpora=lambda wc: dedup_above(wc.corpus),
        priority=config["dedup"]["corpus_priority"],
        near_duplicates=config["dedup"]["near_duplicates"],
    log:
        f"{LOGS}/dedup/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/dedup/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=runtime(8.2),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/dedup.py"


rule dedup_report:
    input:
        corpora=expand(f"{CORPORA_DIR}/{{corpus}}.parquet", corpus=CORPORA),
        paper_counts="resources/dedup/paper_duplicates.csv",  # the paper's Appendix A.2 counts
        code=code("dedup_report"),
    output:
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
        f"{LOGS}/dedup_report.log",
    benchmark:
        f"{BENCHMARKS}/dedup_report.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=runtime(8.2),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/dedup_report.py"
