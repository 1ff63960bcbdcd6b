"""The `softdigits` command line.

    softdigits aggregate --annotations RAW.(csv|parquet) --out LABELS.parquet [--qc QC.json]
                         [--on-bad-rows error|drop]

validates a raw answers file, excludes annotators who failed an attention check,
and writes one row of aggregated labels per image (softdigits.aggregation). The
workflow's aggregate_labels rule calls the same `aggregate_file`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from softdigits import io
from softdigits.aggregation import aggregate, labels_table
from softdigits.annotation import ON_BAD_ROWS, RawAnnotationError, read_raw_annotations

log = logging.getLogger(__name__)


def aggregate_file(annotations, out, qc_out=None, on_bad_rows: str = "error") -> dict:
    """Raw answers file -> labels Parquet (+ QC JSON). Returns the QC summary."""
    raw, import_report = read_raw_annotations(annotations, on_bad_rows=on_bad_rows)
    if raw.empty:
        raise RawAnnotationError(f"{annotations}: no answers to aggregate")
    labels, qc = aggregate(raw)
    summary = {**qc.as_dict(), "n_images": int(len(labels)), "import": import_report,
               "simulated": bool(labels["simulated"].any())}
    io.write_table(labels_table(labels), out,
                   metadata={"source_file": str(annotations), **{k: v for k, v in summary.items()
                                                                 if k != "excluded_annotators"}})
    if qc_out is not None:
        io.write_json(summary, qc_out)
    log.info("%s: %d images; %d of %d annotators excluded by attention checks%s",
             annotations, len(labels), qc.n_excluded, qc.n_annotators,
             " (SIMULATED answers)" if summary["simulated"] else "")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softdigits", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    agg = commands.add_parser("aggregate", help="raw Yes/No/Unsure answers -> soft labels per image")
    agg.add_argument("--annotations", required=True, type=Path, help="raw answers, .csv or .parquet")
    agg.add_argument("--out", required=True, type=Path, help="labels Parquet to write")
    agg.add_argument("--qc", type=Path, default=None, help="optional QC summary JSON to write")
    agg.add_argument("--on-bad-rows", choices=ON_BAD_ROWS, default="error",
                     help="stop on bad rows (default) or drop and count them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        summary = aggregate_file(args.annotations, args.out, args.qc, args.on_bad_rows)
    except (RawAnnotationError, FileNotFoundError) as err:
        print(f"softdigits aggregate: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {summary['n_images']} images, "
          f"{summary['n_excluded_attention']} of {summary['n_annotators']} annotators excluded "
          f"by attention checks, {summary['import']['bad_rows']} bad rows dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
