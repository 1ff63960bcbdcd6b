"""Epoch-to-epoch JSD curves of one corpus, by model, target and stratum."""

from softdigits.jobs import start

log = start(snakemake)

import pandas as pd  # noqa: E402

from softdigits.evaluation.plots import plot_jsd  # noqa: E402
from softdigits.study_table import labels_origin, labels_sentence  # noqa: E402

corpus = snakemake.wildcards.corpus
plot_jsd(
    pd.concat([pd.read_parquet(p) for p in snakemake.input.jsd], ignore_index=True),
    list(snakemake.params.models),
    list(snakemake.params.targets),
    corpus=corpus,
    footer=labels_sentence({corpus: labels_origin(snakemake.input.study)}),
    path=snakemake.output[0],
)
