"""Model data maps of one (corpus, model), coloured by human uncertainty, split by HLV/NoHLV."""

from softdigits.jobs import start

log = start(snakemake)

import pandas as pd  # noqa: E402

from softdigits.evaluation.plots import plot_data_maps  # noqa: E402
from softdigits.study_table import labels_origin, labels_sentence  # noqa: E402

corpus, model = snakemake.wildcards.corpus, snakemake.wildcards.model
plot_data_maps(
    pd.read_parquet(snakemake.input.data_map),
    list(snakemake.params.targets),
    corpus=corpus,
    model=model,
    gold=snakemake.params.data_map_gold,
    footer=labels_sentence({corpus: labels_origin(snakemake.input.study)}),
    path=snakemake.output[0],
)
