"""`seatflow config show`: the effective settings, secrets redacted."""

from __future__ import annotations

import argparse
from typing import Any

from workers.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="inspect the effective settings")
    commands = parser.add_subparsers(title="config commands", metavar="COMMAND")
    show = commands.add_parser("show", help="print the effective settings, secrets redacted")
    show.set_defaults(func=run_show)
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)


def run_show(_args: argparse.Namespace) -> int:
    settings = load_settings()
    for name, value in settings.model_dump().items():
        shown = "**********" if hasattr(value, "get_secret_value") else value
        print(f"SEATFLOW_{name.upper()}={shown}")
    return 0
