# Stage 'training': the grid {corpus} x {model} x {target} x {seed}, one folder of files
# per cell. Each job trains one (corpus, model, target) for every seed, both regimes per
# seed (test-set performance, then training dynamics): the Python + torch start-up and
# the study table's read (about 2 s, as long as a whole FFN cell's training) are paid
# once per 12 trainings. So a new model or target adds only its own jobs, but a new seed
# reruns every job (each trains all seeds); removing or reordering seeds reruns nothing.
# Threads 1: `--cores N` runs N jobs at a time.


rule train_run:
    input:
        study=STUDY_TABLE,
        code=code("train_run"),
    output:
        test_performance_history=every_seed(RUN_FILES["test_performance_history"]),
        test_performance_predictions=every_seed(RUN_FILES["test_performance_predictions"]),
        dynamics_history=every_seed(RUN_FILES["dynamics_history"]),
        dynamics_predictions=every_seed(RUN_FILES["dynamics_predictions"]),
        manifest=every_seed(RUN_FILES["manifest"]),
    params:
        settings=lambda wc: training_settings(wc.target),
    priority: lambda wc: MODELS[wc.model].priority
    log:
        f"{LOGS}/train_run/{{corpus}}/{{model}}/{{target}}.log",
    benchmark:
        f"{BENCHMARKS}/train_run/{{corpus}}/{{model}}/{{target}}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=runtime(
            88,
            lambda c: len(c["training"]["seeds"])
            * (c["training"]["test_performance"]["max_epochs"] + c["training"]["dynamics"]["epochs"]),
        ),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_run.py"


# Every target's labels of every study image, for a reader to check (the controls' construction
# in the metadata); train_run builds the same targets with the same code and settings.
rule training_targets:
    input:
        study=STUDY_TABLE,
        code=code("training_targets"),
    output:
        f"{TRAINING_DIR}/{{corpus}}/targets/{{target}}.parquet",
    params:
        not_a_digit=training_grid("not_a_digit"),
        params=lambda wc: target_params()[wc.target],
    log:
        f"{LOGS}/training_targets/{{corpus}}/{{target}}.log",
    benchmark:
        f"{BENCHMARKS}/training_targets/{{corpus}}/{{target}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=runtime(10),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/training_targets.py"
