"""Risk-coverage curves of one corpus (selective prediction, test set, before T, mean over seeds)."""

from softdigits.jobs import start

log = start(snakemake)

import pandas as pd  # noqa: E402

from softdigits.evaluation.plots import plot_risk_coverage  # noqa: E402
from softdigits.study_table import labels_origin, labels_sentence  # noqa: E402

corpus = snakemake.wildcards.corpus
curves = pd.read_parquet(snakemake.input.risk_coverage).query("split == 'test' and calibration == 'none'")
plot_risk_coverage(
    curves,
    list(snakemake.params.models),
    list(snakemake.params.targets),
    corpus=corpus,
    footer=labels_sentence({corpus: labels_origin(snakemake.input.study)}),
    path=snakemake.output[0],
)
