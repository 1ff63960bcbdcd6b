# Stage 'corpora': each source corpus, downloaded (checksum-verified) or taken from
# an offline copy, becomes results/corpora/{corpus}.parquet in the images contract.


# The file is fixed by its URL and verified checksum, so an edit of the package code
# must not fetch it again (nor fail offline): its code input is marked ancient.
rule download_file:
    output:
        f"{DOWNLOADS}/{{corpus}}/{{filename}}",
    input:
        code=ancient(code("download_file")),
    params:
        url=lambda wc: DOWNLOAD_SPECS[f"{DOWNLOADS}/{wc.corpus}/{wc.filename}"]["url"],
        checksum=lambda wc: DOWNLOAD_SPECS[f"{DOWNLOADS}/{wc.corpus}/{wc.filename}"]["checksum"],
        lock=lambda wc: f"{CHECKSUM_LOCKS}/{wc.corpus}/{wc.filename}.sha256",
        store=VERIFIED_STORE,
        content=lambda wc: content_check(DOWNLOAD_PATHS, f"{DOWNLOADS}/{wc.corpus}/{wc.filename}"),
    wildcard_constraints:
        filename=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    log:
        f"{LOGS}/download_file/{{corpus}}/{{filename}}.log",
    benchmark:
        f"{BENCHMARKS}/download_file/{{corpus}}/{{filename}}.tsv"
    threads: 1
    resources:
        mem_mb=256,
        runtime=runtime(60),
        # how long to wait for the server: a resource, not a param, since it does not change
        # the file (a changed param would fetch it again and rerun everything downstream)
        download_timeout_s=config["downloads"]["timeout_s"],
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/download_file.py"


rule corpus_mnist:
    input:
        **DOWNLOAD_PATHS.get("mnist", {}),
        code=code("corpus_mnist"),
    output:
        f"{CORPORA_DIR}/mnist.parquet",
    params:
        origin=CORPORA_CONFIG["mnist"]["origin"],
        limit_per_split=CORPORA_CONFIG["mnist"]["limit_per_split"],
        idx_checksums=CORPORA_CONFIG["mnist"]["idx_checksums"],
    log:
        f"{LOGS}/corpus_mnist.log",
    benchmark:
        f"{BENCHMARKS}/corpus_mnist.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=runtime(7.4),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/corpus_mnist.py"


rule corpus_mukhoti:
    input:
        **MUKHOTI_INPUTS,
        code=code("corpus_mukhoti"),
    output:
        f"{CORPORA_DIR}/mukhoti.parquet",
    params:
        origin=CORPORA_CONFIG["mukhoti"]["origin"],
        limit_per_split=CORPORA_CONFIG["mukhoti"]["limit_per_split"],
    log:
        f"{LOGS}/corpus_mukhoti.log",
    benchmark:
        f"{BENCHMARKS}/corpus_mukhoti.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(1.2),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/corpus_mukhoti.py"


rule corpus_ardis:
    input:
        **DOWNLOAD_PATHS.get("ardis", {}),
        code=code("corpus_ardis"),
    output:
        f"{CORPORA_DIR}/ardis.parquet",
    params:
        origin=CORPORA_CONFIG["ardis"]["origin"],
        limit_per_split=CORPORA_CONFIG["ardis"]["limit_per_split"],
    log:
        f"{LOGS}/corpus_ardis.log",
    benchmark:
        f"{BENCHMARKS}/corpus_ardis.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(60),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/corpus_ardis.py"


rule corpus_weiss:
    input:
        **DOWNLOAD_PATHS.get("weiss", {}),
        code=code("corpus_weiss"),
    output:
        f"{CORPORA_DIR}/weiss.parquet",
    params:
        origin=CORPORA_CONFIG["weiss"]["origin"],
        limit_per_split=CORPORA_CONFIG["weiss"]["limit_per_split"],
        keep_splits=CORPORA_CONFIG["weiss"]["keep_splits"],
    log:
        f"{LOGS}/corpus_weiss.log",
    benchmark:
        f"{BENCHMARKS}/corpus_weiss.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=runtime(60),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/corpus_weiss.py"
