"""The `seatflow` command line: one entry point, one module per subcommand.

Each module in `COMMAND_MODULES` exposes `register(subparsers)`, adding its parser and
setting `func` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from workers import __version__
from workers.settings import SettingsError

COMMAND_MODULES: tuple[str, ...] = (
    "workers.commands.topics",
    "workers.commands.db",
    "workers.commands.worker",
    "workers.commands.lag",
    "workers.commands.dlq",
    "workers.commands.config",
    "workers.commands.replay",
    "workers.commands.verify",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seatflow",
        description="Kafka stream-processing workers that build the SpecKit ticketing "
        "read models (seat maps and availability in Redis; reservations, orders, customer "
        "activity and daily sales in PostgreSQL).",
        epilog="Settings come from SEATFLOW_* environment variables; see README.md.",
    )
    parser.add_argument("--version", action="version", version=f"seatflow {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except SettingsError as e:
        # One line per problem, naming the variable: no traceback for a typo in a setting.
        for line in e.problems:
            print(f"seatflow: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
