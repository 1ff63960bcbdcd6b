"""Rule download_file: fetch one source file, verified by its checksum (or checksum lock)."""

from softdigits import jobs
from softdigits.corpora.download import download
from softdigits.corpora.sources import check_download

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
