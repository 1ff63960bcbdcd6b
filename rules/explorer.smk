# Stage 'explorer': one self-contained HTML page per study corpus that links the model data
# maps to each image, its annotators' answers, its soft labels and the trained models'
# predictions (softdigits/explorer/, docs/explorer.md). Opens from disk, no server, no network.


rule explorer:
    input:
        unpack(explorer_answers),
        study=STUDY_TABLE,
        # in run_grid() order (params.runs): models, then targets, then seeds
        predictions=expand(
            RUN_FILES["test_performance_predictions"],
            model=training_grid("models"),
            target=training_grid("targets"),
            seed=training_grid("seeds"),
            allow_missing=True,
        ),
        dynamics=expand(
            RUN_FILES["dynamics_predictions"],
            model=training_grid("models"),
            target=training_grid("targets"),
            seed=training_grid("seeds"),
            allow_missing=True,
        ),
        data_maps=expand(
            f"{EVALUATION_DIR}/{{corpus}}/{{model}}/data_map.parquet",
            model=training_grid("models"),
            allow_missing=True,
        ),
        code=code("explorer"),
        assets=EXPLORER_ASSETS,
    output:
        page=report(
            EXPLORER_PAGE,
            caption="../report/explorer.rst",
            category="Explorer",
            labels={"corpus": "{corpus}"},
        ),
    params:
        runs=[list(r) for r in run_grid()],
        models=training_grid("models"),
        thresholds=lambda wc: CARTOGRAPHY["corpora"].get(wc.corpus, {}).get("thresholds"),
        last_epochs=config["evaluation"]["data_map_last_epochs"],
        data_map_gold=config["evaluation"]["data_map_gold"],
        human_soft_label=config["evaluation"]["human_soft_label"],
        kl_epsilon=config["evaluation"]["kl_epsilon"],
        not_a_digit=training_grid("not_a_digit"),
        human_labels=human_labels,
    log:
        f"{LOGS}/explorer/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/explorer/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,  # about 0.4 GB at the default run's size (bench/explorer_size.py)
        runtime=runtime(120),  # about 45 s at the default run's size on a busy 2-core machine (bench)
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/explorer.py"
