"""Table 5 as a curve: LeNet test accuracy against training samples per digit."""

from softdigits.jobs import start

log = start(snakemake)

import pandas as pd  # noqa: E402

from softdigits.evaluation.plots import plot_corpus_size  # noqa: E402

plot_corpus_size(
    pd.read_parquet(snakemake.input.runs),
    footer="Labels: the original MNIST labels (no human annotation is involved).",
    path=snakemake.output[0],
)
