"""Cartography, step 3: the data map figure, coloured by correctness, with the regions drawn."""

from softdigits.jobs import start

log = start(snakemake)

from softdigits.cartography.maps import read_data_map  # noqa: E402
from softdigits.cartography.plots import plot_data_map  # noqa: E402

p = snakemake.params
GOLD = {
    "label_dist": "the corpus label",
    "label": "the corpus label",
    "sampled_label": "the recipe's first sampled label (the label trained on)",
}
plot_data_map(
    read_data_map(snakemake.input.data_map, columns=["confidence", "variability", "correctness", "region"]),
    snakemake.output[0],
    color="correctness",
    color_label="correctness (fraction of epochs right)",
    thresholds=dict(p.thresholds),
    title=f"Data map: {snakemake.wildcards.corpus}",
    footer=f"{p.model} trained on {p.target}, {p.epochs} epochs x seeds {list(p.seeds)}, pooled. "
    f"Gold = {GOLD[p.target]}; no human labels involved.",
)
