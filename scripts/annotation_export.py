"""Rule annotation_export: PNGs and task lists of the annotation campaign."""

from softdigits import jobs
from softdigits.annotation import campaign

jobs.start(snakemake)
campaign.run_export(
    corpus=snakemake.wildcards.corpus,
    selection_path=snakemake.input.selection,
    images_path=snakemake.input.images,
    gold_images_path=snakemake.input.gold_images,
    gold_data_map_path=snakemake.input.gold_data_map,
    out_dir=snakemake.output.campaign,
    campaign=dict(snakemake.params.campaign),
    seed=snakemake.params.seed,
)
