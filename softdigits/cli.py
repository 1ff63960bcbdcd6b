"""The `softdigits` command line.

    softdigits aggregate --annotations RAW.(csv|parquet) --out LABELS.parquet [--qc QC.json]
                         [--on-bad-rows error|drop]
    softdigits check-config [--results] FILE [OVERLAY ...]
    softdigits campaign serve --campaign DIR --db FILE [--config FILE ...] [--host 127.0.0.1] [--port N]
                              [--admin-token-file FILE]
    softdigits campaign answers --db FILE --out RAW.parquet [--overwrite] [--finished-only]

`aggregate` validates a raw answers file, excludes annotators who failed an
attention check, and writes one row of aggregated labels per image
(softdigits.annotation.aggregation); the workflow's aggregate_labels rule calls the same
`aggregate_file`. It never writes over its input. `check-config` merges the files
as Snakemake merges --configfile overlays and checks them (YAML syntax with file
and line, the schema, the cross-field rules); the Makefile runs it before Snakemake,
and asks it (`--results`) for the merged config's results folder. `campaign serve` runs
the browser task of an exported campaign for real participants over an append-only
SQLite database, and `campaign answers` writes that database's answers as a raw answers
file the workflow imports (softdigits.campaign; docs/campaign.md).

Every bad input ends with exit code 2 and a message naming the file (and row,
line or key), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from softdigits import io
from softdigits.annotation.aggregation import AggregationError, aggregate, labels_table
from softdigits.annotation.answers import ON_BAD_ROWS, RawAnnotationError, read_raw_annotations, refuse_overwrite
from softdigits.config import ConfigError, check_files
from softdigits.errors import KnownError
from softdigits.io import DataContractError

log = logging.getLogger(__name__)

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "workflow_config.yaml"


def aggregate_file(annotations, out, qc_out=None, on_bad_rows: str = "error", origin: str | None = None) -> dict:
    """Raw answers file -> labels Parquet (+ QC JSON). Returns the QC summary.

    The labels' metadata records the origin of the answers (simulated, campaign) that the
    raw table's metadata gives; with `origin` (the workflow's annotation.origin) the two
    must agree, so labels are never recorded under an origin that did not make them.
    """
    refuse_overwrite([("annotations", annotations)], [("--out", out), ("--qc", qc_out)])
    made_by = raw_origin(annotations)
    if None not in (origin, made_by) and made_by != origin:
        raise DataContractError(
            f"{annotations}: these answers come from origin {made_by!r}, but annotation.origin is {origin!r}; "
            "rebuild them: snakemake --forcerun "
            + ("annotation_import" if origin == "campaign" else "annotation_simulate")
        )
    raw, import_report = read_raw_annotations(annotations, on_bad_rows=on_bad_rows)
    if raw.empty:
        raise RawAnnotationError(f"{annotations}: no answers to aggregate")
    try:
        labels, qc = aggregate(raw)
    except AggregationError as err:
        raise RawAnnotationError(f"{annotations}: {err}") from None
    summary = {
        **qc.as_dict(),
        "n_images": int(len(labels)),
        "import": import_report,
        "simulated": bool(labels["simulated"].any()),
    }
    io.write_table(
        labels_table(labels),
        out,
        metadata={
            "source_file": str(annotations),
            "origin": made_by or origin,
            **{k: v for k, v in summary.items() if k != "excluded_annotators"},
        },
    )
    if qc_out is not None:
        io.write_json(summary, qc_out)
    log.info(
        "%s: %d images; %d of %d annotators excluded by attention checks%s",
        annotations,
        len(labels),
        qc.n_excluded,
        qc.n_annotators,
        " (SIMULATED answers)" if summary["simulated"] else "",
    )
    return summary


def raw_origin(path) -> str | None:
    """The origin a raw answers table's metadata records (the workflow's tables), else None."""
    if Path(path).suffix.lower() != ".parquet":
        return None
    try:
        return io.read_metadata(path).get("origin")
    except (OSError, ValueError):  # unreadable: read_raw_annotations names the file
        return None


def _aggregate(args) -> int:
    summary = aggregate_file(args.annotations, args.out, args.qc, args.on_bad_rows)
    print(
        f"wrote {args.out}: {summary['n_images']} images, "
        f"{summary['n_excluded_attention']} of {summary['n_annotators']} annotators excluded "
        f"by attention checks, {summary['import']['bad_rows']} bad rows dropped"
    )
    return 0


def _check_config(args) -> int:
    config = check_files(args.files, args.schema)
    if args.results:
        print(config["results"])
        return 0
    print(
        f"config OK: {' + '.join(map(str, args.files))} "
        f"(study corpora {config['study']['corpora']}, annotation origin "
        f"{config['annotation']['origin']})"
    )
    return 0


def _campaign_serve(args) -> int:
    from softdigits.campaign.server import serve  # Starlette and uvicorn only for this command
    from softdigits.campaign.settings import serve_settings

    config = check_files(args.config, SCHEMA)
    settings = serve_settings(config, where=" + ".join(map(str, args.config)))
    serve(args.campaign, args.db, settings, host=args.host, port=args.port, admin_token_file=args.admin_token_file)
    return 0


def _campaign_answers(args) -> int:
    from softdigits.campaign.export import export_answers

    s = export_answers(args.db, args.out, overwrite=args.overwrite, finished_only=args.finished_only)
    print(
        f"wrote {s['out']}: {s['rows']} rows from {s['participants']} participants ({s['finished']} finished, "
        f"{s['returned']} returned, {s['doubled']} in doubled lists, {s['failed_attention_check']} failed an "
        f"attention check); per participant: {s['participants_file']}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softdigits", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    agg = commands.add_parser("aggregate", help="raw Yes/No/Unsure answers -> soft labels per image")
    agg.add_argument("--annotations", required=True, type=Path, help="raw answers, .csv or .parquet")
    agg.add_argument("--out", required=True, type=Path, help="labels Parquet to write")
    agg.add_argument("--qc", type=Path, default=None, help="optional QC summary JSON to write")
    agg.add_argument(
        "--on-bad-rows", choices=ON_BAD_ROWS, default="error", help="stop on bad rows (default) or drop and count them"
    )
    agg.set_defaults(run=_aggregate)
    chk = commands.add_parser("check-config", help="check config files before a run")
    chk.add_argument(
        "files", nargs="+", type=Path, help="workflow_config.yaml first, then any overlays, merged in order"
    )
    chk.add_argument("--results", action="store_true", help="print only the results folder of the merged config")
    chk.add_argument("--schema", type=Path, default=SCHEMA, help=argparse.SUPPRESS)
    chk.set_defaults(run=_check_config)
    camp = commands.add_parser("campaign", help="serve an exported campaign to people; export their answers")
    camp_commands = camp.add_subparsers(dest="campaign_command", required=True)
    srv = camp_commands.add_parser("serve", help="the browser task and its API over an append-only database")
    srv.add_argument("--campaign", required=True, type=Path, help="exported campaign folder (rule annotation_export)")
    srv.add_argument("--db", required=True, type=Path, help="SQLite database (created if missing, never rewritten)")
    srv.add_argument(
        "--config",
        nargs="+",
        type=Path,
        default=[DEFAULT_CONFIG],
        help="config files whose `campaign` section holds the serving settings (default: workflow_config.yaml)",
    )
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    srv.add_argument(
        "--admin-token-file",
        type=Path,
        default=None,
        help="file holding the admin token (else $SOFTDIGITS_ADMIN_TOKEN)",
    )
    srv.set_defaults(run=_campaign_serve)
    ans = camp_commands.add_parser("answers", help="the database's answers as a raw answers Parquet")
    ans.add_argument("--db", required=True, type=Path, help="the campaign database (read only)")
    ans.add_argument("--out", required=True, type=Path, help="raw answers Parquet to write (+ .participants.parquet)")
    ans.add_argument("--overwrite", action="store_true", help="replace existing output files (never the database)")
    ans.add_argument("--finished-only", action="store_true", help="only participants who finished their list")
    ans.set_defaults(run=_campaign_answers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return args.run(args)
    except ConfigError as err:
        for problem in err.problems:
            print(f"softdigits {args.command}: error: {problem}", file=sys.stderr)
        return 2
    except (KnownError, OSError) as err:
        message = str(err) if isinstance(err, KnownError) else f"{err.filename}: {err.strerror}"
        command = " ".join(filter(None, [args.command, getattr(args, "campaign_command", None)]))
        print(f"softdigits {command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
