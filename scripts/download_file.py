"""Rule download_file: fetch one source file, verified by its checksum (or checksum lock)."""

from softdigits import jobs
from softdigits.corpora.checks import check_download
from softdigits.corpora.download import download

jobs.start(snakemake)
download(
    snakemake.params.url,
    snakemake.output[0],
    checksum=snakemake.params.checksum,
    lock=snakemake.params.lock,
    store=snakemake.params.store,
    timeout=snakemake.resources.download_timeout_s,
    check=lambda path, name: check_download(path, name, **snakemake.params.content),
)
