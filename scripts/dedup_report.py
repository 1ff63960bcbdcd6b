"""Rule dedup_report: every dropped image, the train-test leakage and the paper's counts."""

from softdigits import jobs
from softdigits.dedup import duplicates

log = jobs.start(snakemake)
params = snakemake.params
duplicates.run_report(
    inputs=dict(zip(params.corpora, snakemake.input.corpora)),
    duplicates=snakemake.output.duplicates,
    duplicates_csv=snakemake.output.duplicates_csv,
    leakage_csv=snakemake.output.leakage_csv,
    leakage_md=snakemake.output.leakage_md,
    priority=list(params.priority),
    near=duplicates.NearDuplicates(**params.near_duplicates),
    vs_paper_csv=snakemake.output.vs_paper_csv,
    paper_counts=snakemake.input.paper_counts,
    origins=dict(params.origins),
)
