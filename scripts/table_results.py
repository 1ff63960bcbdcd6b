"""The paper's Tables 2, 3, 4, 9, 10, the ECE table and the paired tests."""
from softdigits.jobs import start

log = start(snakemake)

from softdigits.tables import write_evaluation_tables  # noqa: E402

write_evaluation_tables(
    summary=snakemake.input.summary, spearman=snakemake.input.spearman, tests=snakemake.input.tests,
    studies=dict(zip(snakemake.params.corpora, snakemake.input.study)),
    order={"corpus": list(snakemake.params.corpora), "model": list(snakemake.params.models),
           "target": list(snakemake.params.targets)},
    outputs=dict(snakemake.output.items()),
)
