"""Corpus size (Table 5): every repetition of one size k (images per digit)."""

from softdigits.jobs import start, torch_threads

log = start(snakemake)
torch_threads(snakemake.threads)

from softdigits.io import read_images, write_table  # noqa: E402
from softdigits.selection.corpus_size import run_size  # noqa: E402

p = snakemake.params
runs = run_size(
    read_images(snakemake.input.images),
    samples_per_digit=int(snakemake.wildcards.size),
    repetitions=p.repetitions,
    seed=p.seed,
    epochs=p.epochs,
    batch_size=p.batch_size,
    lr=p.lr,
    model=p.model,
    where=f"{snakemake.input.images}: ",
)
write_table(runs, snakemake.output.runs, metadata={"model": p.model, "lr": p.lr, "batch_size": p.batch_size})
