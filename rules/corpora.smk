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


# One job per enabled corpus, all read through its registry entry (softdigits.corpora.CORPORA):
# its inputs are the entry's download files, or the generator stage's table (origin generate);
# its code input holds this corpus's reader module only, so editing one reader reruns that
# corpus alone. Resources: the largest of the four corpora (MNIST: 3 GB).
rule corpus:
    input:
        unpack(corpus_inputs),
        code=corpus_code,
    output:
        f"{CORPORA_DIR}/{{corpus}}.parquet",
    params:
        origin=lambda wc: CORPORA_CONFIG[wc.corpus]["origin"],
        limit_per_split=lambda wc: CORPORA_CONFIG[wc.corpus]["limit_per_split"],
        settings=lambda wc: reader_settings(CORPORA_CONFIG[wc.corpus]),
    wildcard_constraints:
        corpus="|".join(CORPORA),
    log:
        f"{LOGS}/corpus/{{corpus}}.log",
    benchmark:
        f"{BENCHMARKS}/corpus/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=runtime(60),
    conda:
        corpus_env
    script:
        "../scripts/corpus.py"
