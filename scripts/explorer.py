"""The explorer page of one study corpus: the table it is built from, then the HTML."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.explorer.data import build_explorer
from softdigits.explorer.page import write_page

params, inputs = snakemake.params, snakemake.input
runs = [tuple(r) for r in params.runs]
explorer = build_explorer(
    snakemake.wildcards.corpus,
    study=inputs.study,
    raw_answers=inputs.get("raw_answers"),
    qc=inputs.get("qc"),
    data_maps=dict(zip(params.models, inputs.data_maps)),
    predictions=dict(zip(runs, inputs.predictions)),
    dynamics=dict(zip(runs, inputs.dynamics)),
    thresholds=params.thresholds,
    last_epochs=params.last_epochs,
    data_map_gold=params.data_map_gold,
    human_soft_label=params.human_soft_label,
    kl_epsilon=params.kl_epsilon,
    not_a_digit=params.not_a_digit,
)
size = write_page(explorer, snakemake.output.page)
log.info("%s: %d images, %d runs, page %.2f MB", snakemake.output.page, len(explorer.table), len(runs), size / 1e6)
