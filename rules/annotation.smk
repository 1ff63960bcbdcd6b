# Stage 'annotation': campaign export, answers (simulated panel | real campaign |
# released aggregates), QC + aggregation, the study table and the dataset statistics.
# config annotation.origin picks where the answers come from; only its rules exist.


rule annotation_export:
    input:
        selection=rules.selection_solve.output.selection,
        images=rules.dedup.output.images,
        gold_images=f"{DEDUP_DIR}/{GOLD_CORPUS}.parquet",
        gold_data_map=f"{CARTOGRAPHY_DIR}/{GOLD_CORPUS}/data_map.parquet",
        code=code("annotation_export"),
    output:
        campaign=directory(f"{ANNOTATION_DIR}/{{corpus}}/campaign"),
    params:
        campaign=ANNOTATION["campaign"],
        seed=ANNOTATION["seed"],
    log:
        f"{LOGS}/annotation_export/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/annotation_export/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=runtime(14.3),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/annotation_export.py"


if LABELS_ORIGIN == "simulated":

    rule annotation_simulate:
        input:
            unpack(generation_records),
            campaign=rules.annotation_export.output.campaign,
            images=rules.dedup.output.images,
            gold_images=f"{DEDUP_DIR}/{GOLD_CORPUS}.parquet",
            # the panel's real digits: k-NN over MNIST's training images
            reference=f"{DEDUP_DIR}/mnist.parquet",
            code=code("annotation_simulate"),
        output:
            raw=raw_annotations("{corpus}"),
        params:
            simulation=ANNOTATION["simulation"],
            seed=ANNOTATION["seed"],
        log:
            f"{LOGS}/annotation_simulate/{{corpus}}.log",
        benchmark:
            f"{BENCHMARKS}/annotation_simulate/{{corpus}}.tsv"
        threads: 2
        resources:
            mem_mb=6000,
            runtime=runtime(36.1),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/annotation_simulate.py"


if LABELS_ORIGIN == "campaign":

    rule annotation_import:
        input:
            answers=lambda wc: ANNOTATION["answers"][wc.corpus],
            campaign=rules.annotation_export.output.campaign,
            code=code("annotation_import"),
        output:
            raw=raw_annotations("{corpus}"),
            report=f"{ANNOTATION_DIR}/{{corpus}}/import_report.json",
        params:
            on_bad_rows=ANNOTATION["on_bad_rows"],
            # new answers rerun the import even in a file older than its outputs
            answers_sha256=answers_sha256,
        log:
            f"{LOGS}/annotation_import/{{corpus}}.log",
        benchmark:
            f"{BENCHMARKS}/annotation_import/{{corpus}}.tsv"
        threads: 1
        resources:
            mem_mb=3000,
            runtime=runtime(300),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/annotation_import.py"


if LABELS_ORIGIN != "released":

    rule aggregate_labels:
        input:
            unpack(import_report),
            raw=raw_annotations("{corpus}"),
            code=code("aggregate_labels"),
        output:
            labels=f"{ANNOTATION_DIR}/{{corpus}}/labels.parquet",
            qc=f"{ANNOTATION_DIR}/{{corpus}}/qc.json",
        params:
            origin=LABELS_ORIGIN,
        log:
            f"{LOGS}/aggregate_labels/{{corpus}}.log",
        benchmark:
            f"{BENCHMARKS}/aggregate_labels/{{corpus}}.tsv"
        threads: 1
        resources:
            mem_mb=3000,
            runtime=runtime(6.5),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/aggregate_labels.py"


rule study_table:
    input:
        unpack(study_inputs),
        code=code("study_table"),
    output:
        study=STUDY_TABLE,
    params:
        origin=LABELS_ORIGIN,
    log:
        f"{LOGS}/study_table/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/study_table/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=runtime(8.3),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/study_table.py"


rule dataset_stats:
    input:
        study=expand(STUDY_TABLE, corpus=STUDY_CORPORA),
        raw=(expand(raw_annotations("{corpus}"), corpus=STUDY_CORPORA) if LABELS_ORIGIN != "released" else []),
        paper_table1="resources/annotation/paper_table1.csv",
        code=code("dataset_stats"),
    output:
        table1_md=report(f"{TABLES}/table1.md", caption="../report/annotation_table1.rst", category="Annotation"),
        table1_csv=f"{TABLES}/table1.csv",
        table1_parquet=f"{TABLES}/table1.parquet",
        compare_md=report(
            f"{TABLES}/table1_vs_paper.md",
            caption="../report/annotation_table1_vs_paper.rst",
            category="Annotation",
        ),
        compare_csv=f"{TABLES}/table1_vs_paper.csv",
        compare_parquet=f"{TABLES}/table1_vs_paper.parquet",
        per_image_md=f"{TABLES}/annotations_per_image.md",
        per_image_csv=f"{TABLES}/annotations_per_image.csv",
        per_image_parquet=f"{TABLES}/annotations_per_image.parquet",
        per_image_png=report(
            f"{TABLES}/annotations_per_image.png",
            caption="../report/annotation_per_image.rst",
            category="Annotation",
        ),
        corr_md=report(
            f"{TABLES}/appendix_b_correlations.md",
            caption="../report/annotation_correlations.rst",
            category="Annotation",
        ),
        corr_csv=f"{TABLES}/appendix_b_correlations.csv",
        corr_parquet=f"{TABLES}/appendix_b_correlations.parquet",
    params:
        corpora=STUDY_CORPORA,
        origin=LABELS_ORIGIN,
        labels_note=LABELS_NOTE,
    log:
        f"{LOGS}/dataset_stats.log",
    benchmark:
        f"{BENCHMARKS}/dataset_stats.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=runtime(6.3),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/dataset_stats.py"
