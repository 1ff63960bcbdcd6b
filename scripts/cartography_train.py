"""Cartography, step 1: train on the whole corpus and record p(gold) per seed, epoch and image."""

from softdigits.jobs import start, torch_threads

log = start(snakemake)
torch_threads(snakemake.threads)

from softdigits.cartography.train import train_dynamics, write_dynamics  # noqa: E402
from softdigits.io import read_images  # noqa: E402

p = snakemake.params
images = read_images(snakemake.input.images)
log.info(
    "%s: %d images, %s on %s, seeds %s, %d epochs",
    snakemake.wildcards.corpus,
    images.num_rows,
    p.model,
    p.target,
    list(p.seeds),
    p.epochs,
)
dynamics = train_dynamics(
    images,
    model=p.model,
    seeds=list(p.seeds),
    epochs=p.epochs,
    batch_size=p.batch_size,
    lr=p.lr,
    target=p.target,
    where=f"{snakemake.input.images}: ",
)
write_dynamics(
    dynamics,
    snakemake.output.dynamics,
    metadata={
        "corpus": snakemake.wildcards.corpus,
        "model": p.model,
        "target": p.target,
        "seeds": list(p.seeds),
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "lr": p.lr,
        "gold": {
            "label_dist": "the label column (argmax of label_dist for distributional labels)",
            "label": "the label column",
            "sampled_label": "the recipe's first sampled label (sampled_labels[0])",
        }[p.target],
    },
)
