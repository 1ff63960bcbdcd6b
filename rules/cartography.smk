# Stage 'cartography': training dynamics of a small network on every enabled corpus,
# then the data map (confidence, variability, correctness, region) and its figure.
# Training and region assignment are separate jobs, so a threshold change reruns the
# (cheap) regions and what follows, never the training.


rule cartography_train:
    input:
        images=rules.dedup.output.images,
        code=code("cartography_train"),
    output:
        dynamics=f"{CARTOGRAPHY_DIR}/{{corpus}}/dynamics.parquet",
    params:
        model=CARTOGRAPHY["model"],
        target=lambda wc: cartography_corpus(wc)["target"],
        seeds=CARTOGRAPHY["seeds"],
        batch_size=CARTOGRAPHY["batch_size"],
        lr=CARTOGRAPHY["lr"],
        epochs=lambda wc: cartography_corpus(wc)["epochs"],
    log:
        f"{LOGS}/cartography_train/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/cartography_train/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=runtime(
            42.3,
            lambda c: len(c["cartography"]["seeds"]) * max(s["epochs"] for s in c["cartography"]["corpora"].values()),
        ),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/cartography_train.py"


rule cartography_regions:
    input:
        dynamics=rules.cartography_train.output.dynamics,
        code=code("cartography_regions"),
    output:
        data_map=f"{CARTOGRAPHY_DIR}/{{corpus}}/data_map.parquet",
        regions=f"{CARTOGRAPHY_DIR}/{{corpus}}/regions.csv",
    params:
        thresholds=lambda wc: cartography_corpus(wc)["thresholds"],
        min_share=lambda wc: cartography_corpus(wc)["min_share"],
    log:
        f"{LOGS}/cartography_regions/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/cartography_regions/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=runtime(4.7),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/cartography_regions.py"


rule cartography_plot:
    input:
        data_map=rules.cartography_regions.output.data_map,
        code=code("cartography_plot"),
    output:
        report(
            f"{CARTOGRAPHY_DIR}/{{corpus}}/data_map.png",
            caption="../report/cartography_data_map.rst",
            category="Cartography",
            labels={"corpus": "{corpus}"},
        ),
    params:
        thresholds=lambda wc: cartography_corpus(wc)["thresholds"],
        epochs=lambda wc: cartography_corpus(wc)["epochs"],
        seeds=CARTOGRAPHY["seeds"],
        model=CARTOGRAPHY["model"],
        target=lambda wc: cartography_corpus(wc)["target"],
    log:
        f"{LOGS}/cartography_plot/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/cartography_plot/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(4.3),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/cartography_plot.py"
