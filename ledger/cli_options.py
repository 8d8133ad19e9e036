"""Command line options shared by every command module (``ledger/cli.py`` and the command
groups of the subpackages, which ``ledger/cli.py`` imports: so they live here, not there)."""

from __future__ import annotations

import click

from ledger.store import DEFAULT_DB

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
