"""Rule dataset_stats: Table 1, annotations per image, Appendix B correlations."""

from softdigits import jobs
from softdigits.annotation import dataset_stats

jobs.start(snakemake)
dataset_stats.run(
    corpora=list(snakemake.params.corpora),
    study_paths=list(snakemake.input.study),
    raw_paths=list(snakemake.input.raw),
    paper_table1=snakemake.input.paper_table1,
    origin=snakemake.params.origin,
    labels_note=snakemake.params.labels_note,
    outputs=dict(snakemake.output.items()),
)
