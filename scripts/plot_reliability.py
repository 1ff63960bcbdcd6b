"""Reliability diagram of one corpus against the human majority (test set, seeds pooled)."""

from softdigits.jobs import start

log = start(snakemake)

import pandas as pd  # noqa: E402

from softdigits.evaluation.plots import plot_reliability  # noqa: E402
from softdigits.study_table import labels_origin, labels_sentence  # noqa: E402

corpus = snakemake.wildcards.corpus
bins = pd.read_parquet(snakemake.input.reliability).query("split == 'test' and stratum == 'all'")
plot_reliability(
    bins,
    list(snakemake.params.models),
    list(snakemake.params.targets),
    corpus=corpus,
    footer=labels_sentence({corpus: labels_origin(snakemake.input.study)}),
    path=snakemake.output[0],
)
