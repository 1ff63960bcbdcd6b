# Stage 'evaluation': metrics, training dynamics, statistics, the paper's tables and
# figures, the findings check. Jobs are per corpus (test metrics of every run) and per
# (corpus, model) (training dynamics), not per run: evaluating one run takes
# milliseconds, so one job per run would be all start-up.


rule evaluate_runs:
    input:
        study=STUDY_TABLE,
        # in run_grid() order (params.runs): models, then targets, then seeds
        predictions=expand(
            RUN_FILES["test_performance_predictions"],
            model=training_grid("models"),
            target=training_grid("targets"),
            seed=training_grid("seeds"),
            allow_missing=True,
        ),
        code=code("evaluate_runs"),
    output:
        metrics=f"{EVALUATION_DIR}/{{corpus}}/metrics.parquet",
        reliability=f"{EVALUATION_DIR}/{{corpus}}/reliability.parquet",
        # post-hoc views: T per run, metrics after T, AURC/E-AURC, curves, HLV AUROC + Spearman
        temperature=f"{EVALUATION_DIR}/{{corpus}}/temperature.parquet",
        metrics_temperature=f"{EVALUATION_DIR}/{{corpus}}/metrics_temperature.parquet",
        selective=f"{EVALUATION_DIR}/{{corpus}}/selective.parquet",
        risk_coverage=f"{EVALUATION_DIR}/{{corpus}}/risk_coverage.parquet",
        disagreement=f"{EVALUATION_DIR}/{{corpus}}/disagreement.parquet",
    params:
        runs=[list(r) for r in run_grid()],
        not_a_digit=training_grid("not_a_digit"),
        target_params=target_params(),  # to rebuild the val targets a run was trained on, for T
        human_soft_label=config["evaluation"]["human_soft_label"],
        splits=config["evaluation"]["splits"],
        ece_bins=config["evaluation"]["ece_bins"],
        kl_epsilon=config["evaluation"]["kl_epsilon"],
    log:
        f"{LOGS}/evaluate_runs/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_runs/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(300),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/evaluate_runs.py"


rule evaluate_dynamics:
    input:
        study=STUDY_TABLE,
        dynamics=expand(
            RUN_FILES["dynamics_predictions"],
            target=training_grid("targets"),
            seed=training_grid("seeds"),
            allow_missing=True,
        ),
        code=code("evaluate_dynamics"),
    output:
        jsd=f"{EVALUATION_DIR}/{{corpus}}/{{model}}/jsd.parquet",
        data_map=f"{EVALUATION_DIR}/{{corpus}}/{{model}}/data_map.parquet",
        spearman=f"{EVALUATION_DIR}/{{corpus}}/{{model}}/spearman.parquet",
        # each seed's share of the maps: the findings resample seeds from it
        data_map_seeds=f"{EVALUATION_DIR}/{{corpus}}/{{model}}/data_map_seeds.parquet",
    params:
        runs=[[t, s] for t in training_grid("targets") for s in training_grid("seeds")],
        last_epochs=config["evaluation"]["data_map_last_epochs"],
        gold=config["evaluation"]["data_map_gold"],
        not_a_digit=training_grid("not_a_digit"),
        target_params=target_params(),  # each target's gold is what it was trained toward
        permutations=config["evaluation"]["spearman_permutations"],
        seed=config["evaluation"]["permutation_seed"],
    log:
        f"{LOGS}/evaluate_dynamics/{{corpus}}_{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_dynamics/{{corpus}}_{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=runtime(300, lambda c: c["evaluation"]["spearman_permutations"]),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/evaluate_dynamics.py"


rule evaluate_summary:
    input:
        **{name: expand(f"{EVALUATION_DIR}/{{corpus}}/{name}.parquet", corpus=STUDY_CORPORA) for name in POSTHOC_VIEWS},
        metrics=expand(f"{EVALUATION_DIR}/{{corpus}}/metrics.parquet", corpus=STUDY_CORPORA),
        reliability=expand(f"{EVALUATION_DIR}/{{corpus}}/reliability.parquet", corpus=STUDY_CORPORA),
        jsd=per_model("jsd"),
        data_map=per_model("data_map"),
        data_map_seeds=per_model("data_map_seeds"),
        spearman=per_model("spearman"),
        code=code("evaluate_summary"),
    output:
        **{name: f"{EVALUATION_DIR}/{name}.parquet" for name in POSTHOC_VIEWS},
        metrics=f"{EVALUATION_DIR}/metrics.parquet",
        reliability=f"{EVALUATION_DIR}/reliability.parquet",
        jsd=f"{EVALUATION_DIR}/jsd.parquet",
        data_maps=f"{EVALUATION_DIR}/data_maps.parquet",
        data_map_seeds=f"{EVALUATION_DIR}/data_map_seeds.parquet",
        spearman=f"{EVALUATION_DIR}/spearman.parquet",
        summary=f"{EVALUATION_DIR}/summary.parquet",
        # the post-hoc views merged, their seed summary (with a calibration column)
        posthoc_summary=f"{EVALUATION_DIR}/posthoc_summary.parquet",
        tests=f"{EVALUATION_DIR}/paired_tests.parquet",
    params:
        corpora=STUDY_CORPORA,
        models=training_grid("models"),
        comparisons=config["evaluation"]["comparisons"],
        # a comparison naming a target not in training.targets has no rows (skipped)
        control_comparisons=config["evaluation"]["control_comparisons"],
        alpha=config["evaluation"]["alpha"],
    log:
        f"{LOGS}/evaluate_summary.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_summary.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=runtime(300),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/evaluate_summary.py"


# One job per table of the registry (softdigits.evaluation.tables.TABLES): its title, note,
# report caption and section live in its entry; the caption file only places them.
rule table_results:
    input:
        summary=rules.evaluate_summary.output.summary,
        spearman=rules.evaluate_summary.output.spearman,
        tests=rules.evaluate_summary.output.tests,
        posthoc_summary=rules.evaluate_summary.output.posthoc_summary,
        temperature=rules.evaluate_summary.output.temperature,
        study=expand(STUDY_TABLE, corpus=STUDY_CORPORA),
        paper_table9="resources/evaluation/paper_table9.csv",
        paper_table4="resources/evaluation/paper_table4.csv",
        code=code("table_results"),
    output:
        md=f"{TABLES}/{{table}}.md",
        csv=report(
            f"{TABLES}/{{table}}.csv",
            caption="../report/evaluation/table.rst",
            category="Evaluation tables",
            subcategory=lambda wc: TABLE_SECTIONS[TABLE_SPECS[wc.table].section],
            labels={"table": "{table}"},
        ),
        parquet=f"{TABLES}/{{table}}.parquet",
    wildcard_constraints:
        table="|".join(TABLE_SPECS),
    params:
        corpora=STUDY_CORPORA,
        models=training_grid("models"),
        targets=training_grid("targets"),
        data_map_gold=config["evaluation"]["data_map_gold"],
        alpha=config["evaluation"]["alpha"],
        negligible_rho=config["evaluation"]["negligible_rho"],
        caption=lambda wc: table_caption(wc.table),
        human_labels=human_labels,
    log:
        f"{LOGS}/table_results/{{table}}.log",
    benchmark:
        f"{BENCHMARKS}/table_results/{{table}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(300),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/table_results.py"


rule plot_data_maps:
    input:
        data_map=rules.evaluate_dynamics.output.data_map,
        study=STUDY_TABLE,
        code=code("plot_data_maps"),
    output:
        report(
            f"{FIGURES}/data_maps/{{corpus}}/{{model}}.png",
            caption="../report/evaluation/data_maps.rst",
            category="Evaluation figures",
            subcategory="Model data maps",
            labels={"corpus": "{corpus}", "model": "{model}"},
        ),
    params:
        targets=training_grid("targets"),
        human_labels=human_labels,
        last_epochs=config["evaluation"]["data_map_last_epochs"],
        data_map_gold=config["evaluation"]["data_map_gold"],
    log:
        f"{LOGS}/plot_data_maps/{{corpus}}_{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_data_maps/{{corpus}}_{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(300),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/plot_data_maps.py"


rule plot_jsd:
    input:
        jsd=lambda wc: [f"{EVALUATION_DIR}/{wc.corpus}/{m}/jsd.parquet" for m in training_grid("models")],
        study=STUDY_TABLE,
        code=code("plot_jsd"),
    output:
        report(
            f"{FIGURES}/jsd_{{corpus}}.png",
            caption="../report/evaluation/jsd.rst",
            category="Evaluation figures",
            subcategory="Training dynamics (JSD)",
            labels={"corpus": "{corpus}"},
        ),
    params:
        models=training_grid("models"),
        targets=training_grid("targets"),
        human_labels=human_labels,
    log:
        f"{LOGS}/plot_jsd/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_jsd/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(300),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/plot_jsd.py"


rule plot_reliability:
    input:
        reliability=rules.evaluate_runs.output.reliability,
        study=STUDY_TABLE,
        code=code("plot_reliability"),
    output:
        report(
            f"{FIGURES}/reliability_{{corpus}}.png",
            caption="../report/evaluation/reliability.rst",
            category="Evaluation figures",
            subcategory="Reliability diagrams",
            labels={"corpus": "{corpus}"},
        ),
    params:
        models=training_grid("models"),
        targets=training_grid("targets"),
        human_labels=human_labels,
        ece_bins=config["evaluation"]["ece_bins"],
    log:
        f"{LOGS}/plot_reliability/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_reliability/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(300),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/plot_reliability.py"


rule plot_risk_coverage:
    input:
        risk_coverage=rules.evaluate_runs.output.risk_coverage,
        study=STUDY_TABLE,
        code=code("plot_risk_coverage"),
    output:
        report(
            f"{FIGURES}/risk_coverage_{{corpus}}.png",
            caption="../report/evaluation/risk_coverage.rst",
            category="Evaluation figures",
            subcategory="Risk-coverage (beyond the paper)",
            labels={"corpus": "{corpus}"},
        ),
    params:
        models=training_grid("models"),
        targets=training_grid("targets"),
        human_labels=human_labels,
    log:
        f"{LOGS}/plot_risk_coverage/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_risk_coverage/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(300),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/plot_risk_coverage.py"


rule plot_corpus_size:
    input:
        runs=f"{CORPUS_SIZE_DIR}/runs.parquet",  # a path: the evaluation stage also runs without selection
        code=code("plot_corpus_size"),
    output:
        report(
            f"{FIGURES}/table5_curve.png",
            caption="../report/evaluation/table5_curve.rst",
            category="Evaluation figures",
            subcategory="Corpus size (Table 5)",
        ),
    log:
        f"{LOGS}/plot_corpus_size.log",
    benchmark:
        f"{BENCHMARKS}/plot_corpus_size.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=runtime(300),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/plot_corpus_size.py"


rule findings:
    input:
        metrics=rules.evaluate_summary.output.metrics,
        tests=rules.evaluate_summary.output.tests,
        spearman=rules.evaluate_summary.output.spearman,
        data_maps=rules.evaluate_summary.output.data_maps,
        data_map_seeds=rules.evaluate_summary.output.data_map_seeds,
        selective=rules.evaluate_summary.output.selective,
        paper_table9="resources/evaluation/paper_table9.csv",
        claims="resources/evaluation/claims.yaml",
        study=expand(STUDY_TABLE, corpus=STUDY_CORPORA),
        code=code("findings"),
    output:
        md=report(f"{RESULTS}/findings.md", caption="../report/evaluation/findings.rst", category="Findings check"),
        json=f"{RESULTS}/findings.json",
    params:
        corpora=STUDY_CORPORA,
        # thresholds: the hard-region share beside claim 3b, by each corpus's cartography regions
        settings={
            "alpha": config["evaluation"]["alpha"],
            "modest_pp": config["evaluation"]["modest_gain_pp"],
            "negligible_rho": config["evaluation"]["negligible_rho"],
            "data_map_gold": config["evaluation"]["data_map_gold"],
            "bootstrap_seed": config["evaluation"]["bootstrap_seed"],
            "thresholds": {c: config["cartography"]["corpora"].get(c, {}).get("thresholds") for c in STUDY_CORPORA},
        },
        human_labels=human_labels,
    log:
        f"{LOGS}/findings.log",
    benchmark:
        f"{BENCHMARKS}/findings.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(300),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/findings.py"


# The run's headline numbers in one file, read from its outputs (what the README quotes and a
# replicates summary compares).
rule headline:
    input:
        duplicates=rules.dedup_report.output.vs_paper_csv,
        table1=f"{TABLES}/table1.parquet",
        table9=f"{TABLES}/table9.parquet",
        findings=rules.findings.output.json,
        study=expand(STUDY_TABLE, corpus=STUDY_CORPORA),
        code=code("headline"),
    output:
        json=f"{RESULTS}/headline.json",
        md=report(f"{RESULTS}/headline.md", caption="../report/evaluation/headline.rst", category="Findings check"),
    params:
        human_labels=human_labels,
    log:
        f"{LOGS}/headline.log",
    benchmark:
        f"{BENCHMARKS}/headline.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=runtime(10),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/headline.py"
