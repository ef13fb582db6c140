"""`seatflow config show`: the effective settings, where each came from, secrets redacted.

What an operator runs first when a deployed worker misbehaves: it answers "which broker,
which group, which schema is this process using?" without exposing a password. The text
form is TOML (unset settings are comments), so it can be edited into a
SEATFLOW_CONFIG_FILE; secrets print as `**********` and must be filled in again.
"""

from __future__ import annotations

import argparse
import json
import os
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

from workers.settings import (
    CONFIG_FILE_ENV,
    ENV_PREFIX,
    SECRET_FIELDS,
    Settings,
    load_settings,
    read_config_file,
)

REDACTED = "**********"
URL_FIELDS = frozenset({"postgres_dsn", "redis_url"})
"""Secret as a whole, but their host, database and options are worth showing."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show the effective settings (secrets redacted)",
        description="Inspect the settings this process would run with.",
    )
    parser.set_defaults(func=lambda _args: _usage(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    show = commands.add_parser(
        "show",
        help="print the effective settings and where each came from, secrets redacted",
        description="Print every setting as the worker would use it: from the environment "
        f"(SEATFLOW_*), the TOML file named by {CONFIG_FILE_ENV}, or the default. "
        "Passwords, and the password part of the PostgreSQL DSN and Redis URL, print as "
        f"{REDACTED}. Exits 2, naming the setting, if a setting is invalid.",
    )
    show.add_argument("--json", action="store_true", help="print one JSON object instead")
    show.set_defaults(func=run_show)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_show(args: argparse.Namespace) -> int:
    settings = load_settings()  # a SettingsError is printed by the CLI, exit 2
    values = redacted(settings)
    if args.json:
        print(json.dumps(values, indent=2, sort_keys=False))
        return 0
    sources = sources_of(settings)
    config_file = os.environ.get(CONFIG_FILE_ENV, "").strip()
    print("# seatflow effective settings (secrets redacted)")
    print(f"# config file: {config_file or f'none ({CONFIG_FILE_ENV} unset)'}")
    for name, value in values.items():
        if value is None:
            print(f"# {name} is unset")
        else:
            print(f"{name} = {_toml(value)}  # {sources[name]}")
    return 0


def redacted(settings: Settings) -> dict[str, Any]:
    """Every setting as plain JSON-able values, with secrets replaced."""
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            out[name] = None
        elif name in URL_FIELDS:
            out[name] = redact_url(_secret(value))
        elif name in SECRET_FIELDS:
            out[name] = REDACTED
        elif isinstance(value, Enum):
            out[name] = value.value
        elif isinstance(value, Path):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def redact_url(url: str) -> str:
    """The URL with its password, and any query value named like a password, masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = f"{userinfo.split(':', 1)[0]}:{REDACTED}"
        netloc = f"{userinfo}@{host}"
    query = [
        (k, REDACTED if "pass" in k.lower() else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/*")))


def sources_of(settings: Settings) -> dict[str, str]:
    """Where each setting's value came from: env, the config file, or the default."""
    in_file = set(read_config_file(set(Settings.model_fields)))
    out = {}
    for name in Settings.model_fields:
        if f"{ENV_PREFIX}{name.upper()}" in os.environ:
            out[name] = f"env {ENV_PREFIX}{name.upper()}"
        elif name in in_file:
            out[name] = "config file"
        else:
            out[name] = "default"
    return out


def _secret(value: Any) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string is a JSON string
