# Stage 'training': the grid {corpus} x {model} x {target} x {seed}; each job trains
# both regimes of one cell (test-set performance, then training dynamics), so the
# Python + torch start-up is paid once per two trainings, and a new seed, model or
# target adds only its own jobs. Threads 1: `--cores N` trains N cells at a time.


rule train_run:
    input:
        study=STUDY_TABLE,
        code=code("train_run"),
    output:
        test_performance_history=f"{RUNS}/test_performance_history.parquet",
        test_performance_predictions=f"{RUNS}/test_performance_predictions.parquet",
        dynamics_history=f"{RUNS}/dynamics_history.parquet",
        dynamics_predictions=f"{RUNS}/dynamics_predictions.parquet",
        manifest=f"{RUNS}/manifest.json",
    params:
        settings=lambda wc: training_settings(wc.target),
    priority: lambda wc: MODEL_PRIORITY.get(wc.model, 0)
    log:
        f"{LOGS}/train_run/{{corpus}}/{{model}}/{{target}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_run/{{corpus}}/{{model}}/{{target}}/seed{{seed}}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=runtime(
            16.2, lambda c: c["training"]["test_performance"]["max_epochs"] + c["training"]["dynamics"]["epochs"]
        ),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_run.py"
