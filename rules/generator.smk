# Stage 'generator': Ambiguous-MNIST regenerated offline with the DDU recipe
# (Mukhoti et al.): VAE -> labelling ensemble -> scored candidate pool -> entropy-
# stratified selection. Active when config corpora.mukhoti.origin is "generate";
# rule corpus then reads results/generator/mukhoti_corpus.parquet.


rule generator_vae:
    input:
        mnist=f"{CORPORA_DIR}/mnist.parquet",
        code=code("generator_vae"),
    output:
        vae=f"{GENERATOR_DIR}/vae.pt",
        history=f"{GENERATOR_DIR}/vae_history.csv",
    params:
        vae=GENERATOR["vae"],
        seed=GENERATOR["seed"],
    log:
        f"{LOGS}/generator_vae.log",
    benchmark:
        f"{BENCHMARKS}/generator_vae.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=runtime(198, lambda c: c["generator"]["vae"]["epochs"]),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/generator_vae.py"


# One job per member: on a few cores the members train side by side.
rule generator_ensemble_member:
    input:
        mnist=f"{CORPORA_DIR}/mnist.parquet",
        code=code("generator_ensemble_member"),
    output:
        checkpoint=f"{GENERATOR_DIR}/ensemble/member{{member}}.pt",
        summary=f"{GENERATOR_DIR}/ensemble/member{{member}}.json",
    params:
        member=lambda wc: int(wc.member),
        settings={k: v for k, v in GENERATOR["ensemble"].items() if k != "members"},
        seed=GENERATOR["seed"],
    wildcard_constraints:
        member=r"\d+",
    log:
        f"{LOGS}/generator_ensemble_member/member{{member}}.log",
    benchmark:
        f"{BENCHMARKS}/generator_ensemble_member/member{{member}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(105, lambda c: c["generator"]["ensemble"]["epochs"]),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/generator_ensemble_member.py"


rule generator_ensemble:
    input:
        mnist=f"{CORPORA_DIR}/mnist.parquet",
        members=ENSEMBLE_MEMBERS,
        summaries=[p.replace(".pt", ".json") for p in ENSEMBLE_MEMBERS],
        code=code("generator_ensemble"),
    output:
        accuracy=f"{GENERATOR_DIR}/ensemble_accuracy.csv",
    log:
        f"{LOGS}/generator_ensemble.log",
    benchmark:
        f"{BENCHMARKS}/generator_ensemble.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(17.3, lambda c: c["generator"]["ensemble"]["members"]),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/generator_ensemble.py"


rule generator_pool:
    input:
        mnist=f"{CORPORA_DIR}/mnist.parquet",
        vae=rules.generator_vae.output.vae,
        members=ENSEMBLE_MEMBERS,
        code=code("generator_pool"),
    output:
        pool=f"{GENERATOR_DIR}/pool.parquet",
        summary=f"{GENERATOR_DIR}/pool_summary.json",
    params:
        mixing=GENERATOR["mixing"],
        filter=GENERATOR["filter"],
        seed=GENERATOR["seed"],
    log:
        f"{LOGS}/generator_pool.log",
    benchmark:
        f"{BENCHMARKS}/generator_pool.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=runtime(370, lambda c: c["generator"]["mixing"]["pool_size"]),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/generator_pool.py"


rule generator_select:
    input:
        mnist=f"{CORPORA_DIR}/mnist.parquet",
        pool=rules.generator_pool.output.pool,
        code=code("generator_select"),
    output:
        corpus=f"{GENERATOR_DIR}/mukhoti_corpus.parquet",
        records=f"{GENERATOR_DIR}/mukhoti_records.parquet",
        bins=f"{GENERATOR_DIR}/selection_bins.csv",
    params:
        stratify=GENERATOR["stratify"],
        seed=GENERATOR["seed"],
    log:
        f"{LOGS}/generator_select.log",
    benchmark:
        f"{BENCHMARKS}/generator_select.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=runtime(7.4, lambda c: c["generator"]["mixing"]["pool_size"]),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/generator_select.py"


rule generator_figures:
    input:
        corpus=rules.generator_select.output.corpus,
        bins=rules.generator_select.output.bins,
        code=code("generator_figures"),
    output:
        samples=report(
            f"{GENERATOR_DIR}/figures/samples_by_entropy.png",
            caption="../report/generator_samples_by_entropy.rst",
            category="Corpora",
        ),
        histogram=report(
            f"{GENERATOR_DIR}/figures/entropy_histogram.png",
            caption="../report/generator_entropy_histogram.rst",
            category="Corpora",
        ),
    params:
        stratify=GENERATOR["stratify"],
        seed=GENERATOR["seed"],
    log:
        f"{LOGS}/generator_figures.log",
    benchmark:
        f"{BENCHMARKS}/generator_figures.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=runtime(9.5, lambda c: c["generator"]["mixing"]["pool_size"]),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/generator_figures.py"
