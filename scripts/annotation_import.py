"""Rule annotation_import: a real campaign's answers, validated into the raw table."""

from softdigits import jobs
from softdigits.annotation import answers

jobs.start(snakemake)
answers.run_import(
    answers_path=snakemake.input.answers,
    campaign_dir=snakemake.input.campaign,
    raw_out=snakemake.output.raw,
    report_out=snakemake.output.report,
    on_bad_rows=snakemake.params.on_bad_rows,
)
