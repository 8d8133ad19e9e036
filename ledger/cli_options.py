"""Command line options shared by every command module (``ledger/cli.py`` and the command
groups of the subpackages, which ``ledger/cli.py`` imports: so they live here, not there)."""

from __future__ import annotations

from typing import Any

import click

#: ``ledger.store.DEFAULT_DB``, written here so that a command's options (and ``bankrun
#: --help``) do not import the store (a test holds the two equal).
DEFAULT_DB = "ledger.db"

db_option = click.option(
    "--db",
    "db",
    envvar="LEDGER_DB",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    metavar="FILE|URL",
    help="The log: an SQLite file or a postgresql:// URL (or set LEDGER_DB).",
)

policy_option = click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Policy TOML file (thresholds, haircuts, enforce, disabled). Default: built-in policy.",
)

_FORMAT_HELP = {
    "text": "text for people (the default)",
    "json": "json: one document",
    "jsonl": "jsonl: one JSON object a line, as it streams",
    "csv": "csv: the table, a header row first",
}


def format_option(*choices: str, default: str = "text") -> Any:
    """The one ``--format`` option: ``text`` (default) for people, ``json`` for a document,
    ``csv`` where the output is a table, ``jsonl`` where it is a stream; each command offers
    those of the four that fit it, with the same words in its help."""
    parts = [_FORMAT_HELP[c] for c in choices]
    if default != "text":
        parts = [p.replace(" (the default)", "") for p in parts]
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="; ".join(parts) + ". Money is exact (decimal strings) in json, jsonl and csv.",
    )
