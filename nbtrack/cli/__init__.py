"""The ``nbtrack`` command: ``sync`` (replay spools), ``show`` (runs recorded in a notebook),
``ui`` (an MLflow UI for a store)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbtrack", description="Notebook training runs tracked in MLflow."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser(
        "sync",
        help="upload what crashed kernels left in their spools, and end those runs as FAILED",
    )
    sync.add_argument(
        "--spool-dir",
        help="spool folder to replay (default: $NBTRACK_SPOOL_DIR or the user cache folder)",
    )

    show = commands.add_parser(
        "show",
        help="list the runs recorded in a saved notebook, or one in detail (no kernel or store)",
    )
    show.add_argument("notebook", help="path to an .ipynb file")
    show.add_argument(
        "--run", metavar="NAME_OR_ID", help="show one run in detail: all params, every metric"
    )
    show.add_argument("--json", action="store_true", help="print JSON (records without curves)")

    ui = commands.add_parser(
        "ui", help="start (or find) an MLflow UI for a tracking store and print its address"
    )
    ui.add_argument(
        "--tracking-uri",
        help="store to show (default: $MLFLOW_TRACKING_URI, else ./mlflow.db like MLflow itself)",
    )
    ui.add_argument(
        "--no-wait", action="store_true", help="print the address and return, UI keeps running"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nbtrack`` console script and ``python -m nbtrack``."""
    args = _parser().parse_args(argv)
    if args.command == "sync":
        from nbtrack.journal.replay import main as sync_main

        return sync_main(args.spool_dir)
    if args.command == "show":
        from nbtrack.cli.show import main as show_main

        return show_main(args.notebook, run=args.run, as_json=args.json)
    from nbtrack.cli.ui import main as ui_main

    return ui_main(args.tracking_uri, wait=not args.no_wait)


if __name__ == "__main__":
    sys.exit(main())
