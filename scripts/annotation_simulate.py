"""Rule annotation_simulate: a SIMULATED annotator panel answers the exported campaign."""

from softdigits import jobs
from softdigits.annotation import simulation

jobs.start(snakemake)
simulation.run(
    corpus=snakemake.wildcards.corpus,
    campaign_dir=snakemake.input.campaign,
    images_path=snakemake.input.images,
    gold_images_path=snakemake.input.gold_images,
    reference_path=snakemake.input.reference,
    records_path=snakemake.input.get("records"),
    raw_out=snakemake.output.raw,
    simulation=dict(snakemake.params.simulation),
    seed=snakemake.params.seed,
)
