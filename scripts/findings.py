"""Rule findings: each claim of the registry (softdigits.evaluation.claims) against this run."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.evaluation.findings import write_findings  # noqa: E402

inputs = {
    name: snakemake.input[name]
    for name in ("metrics", "tests", "spearman", "data_maps", "data_map_seeds", "selective", "paper_table9")
}
found = write_findings(
    inputs=inputs,
    studies=dict(zip(snakemake.params.corpora, snakemake.input.study)),
    settings=dict(snakemake.params.settings),
    md=snakemake.output.md,
    json_path=snakemake.output.json,
)
for f in found:
    log.info("%s: %s (%s)", f.key, f.verdict, f.detail)
