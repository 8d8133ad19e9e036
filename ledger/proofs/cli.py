"""``bankrun proof``: proofs of liabilities and reserves at any point of a log (a thin click layer).

Exit status: 0 success; 1 the proof shows a breach (a negative customer balance refused from the
tree, or reserves that do not cover the liabilities); 2 bad input; 3 a proof that does not
verify; 4 an output that cannot be written.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from ledger.cli_options import db_option
from ledger.errors import InputError
from ledger.forensics import Investigation
from ledger.policy import Policy
from ledger.proofs._reserves import ReservesStatement, reserves_at
from ledger.proofs._venue import Liabilities, liabilities_at
from ledger.proofs._verify import format_amount, verify_inclusion
from ledger.store import open_log
from ledger.store.contract import EventLog
from ledger.when import parse_when

EXIT_BREACH = 1
MIN_SECRET_BYTES = 16
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``ledger`` command's error handling (one line, an exit status), looked up when the
    command runs, since ``ledger.cli`` imports this module."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ledger.cli import handle_errors

        return handle_errors(func)(*args, **kwargs)

    return wrapper


venue_option = click.option(
    "--venue", required=True, help="The venue (an entity with customer accounts)."
)
at_option = click.option(
    "--at", help="As of this effective time (an instant; a date or month: its start, 00:00 UTC)."
)
seq_option = click.option("--seq", type=int, help="As of this seq.")
secret_option = click.option(
    "--secret-file",
    "secret_file",
    required=True,
    envvar="LEDGER_PROOF_SECRET_FILE",
    type=click.Path(dir_okay=False),
    help="The venue's secret (the file's bytes as they are, at least 16; or set "
    "LEDGER_PROOF_SECRET_FILE): salts every leaf with HMAC-SHA256(secret, account).",
)
output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    show_default=True,
    help="Write the JSON here (- for standard output; the summary then goes to standard error).",
)


@click.group(name="proof")
def proof() -> None:
    """Proof of liabilities and reserves at any point: Merkle-sum trees (docs/proofs.md).

    `liabilities` publishes a venue's root and totals, `inclusion` gives one customer the path
    to check their balance is counted, `verify` checks it without the log, and `reserves` sets
    custody against the totals.
    """


def _read_secret(path: str) -> bytes:
    try:
        secret = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the secret ({exc.strerror})") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise InputError(
            f"{path}: the secret has {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
            "(for example: head -c 32 /dev/urandom > venue.key)"
        )
    return secret


def _instant(text: str | None) -> Any:
    return parse_when(text, "--at")


def _books(log: EventLog, policy: Policy, at: str | None, seq: int | None) -> Any:
    if at is not None and seq is not None:
        raise InputError("name one point: --at or --seq")
    return Investigation(log, policy).as_of(seq=seq, at=_instant(at))


def _policy(policy_file: str | None, log: EventLog) -> Policy:
    if policy_file:
        return Policy.from_toml(policy_file)
    quote = log.meta("quote")
    return Policy(quote=quote) if quote else Policy()


def _write_json(data: dict[str, Any], output: str) -> Callable[[str], None]:
    """Write ``data``; return where the summary goes (stderr when the JSON took stdout)."""
    text = json.dumps(data, indent=2) + "\n"
    if output == "-":
        click.echo(text, nl=False)
        return lambda line: click.echo(line, err=True)
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(text)
    return click.echo


def _amounts(
    values: dict[str, int],
    assets: tuple[tuple[str, int], ...],
    *,
    skip_zero: bool = True,
    only: list[str] | None = None,
) -> str:
    shown = [
        f"{Decimal(format_amount(values[code], scale)):,f} {code}"
        for code, scale in assets
        if (values[code] or not skip_zero) and (only is None or code in only)
    ]
    return ", ".join(shown) or "nothing"


def _refusals(say: Callable[[str], None], found: Liabilities, refused: list[Any]) -> None:
    for r in refused:
        say(
            f"  refused: {r.account} (holder {r.holder}) at {Decimal(format_amount(r.minor, r.scale)):,f} {r.asset}: "
            "a negative balance is a debt to the venue, not a negative liability; counted as a "
            "leaf it would lower the total owed (the dummy-user attack)"
        )
    if refused:
        netted = found.totals()
        for r in refused:
            netted[r.asset] += r.minor
        hit = sorted({r.asset for r in refused})
        say(
            f"{len(refused)} negative customer balance(s) kept out of the tree at seq {found.header.seq} "
            f"(exit status 1); counted as leaves they would have lowered the total owed to "
            f"{_amounts(netted, found.header.assets, skip_zero=False, only=hit)}"
        )


@proof.command()
@db_option
@venue_option
@at_option
@seq_option
@secret_option
@output_option
@_handle_errors
def liabilities(
    db: str, venue: str, at: str | None, seq: int | None, secret_file: str, output: str
) -> None:
    """Publish the venue's proof of liabilities at a point: the root and totals per asset.

    A Merkle-sum tree over the venue's customer accounts (holder balances, in the order the
    accounts were opened); the JSON names the ledger_id, seq and head hash it was taken at.
    Negative customer balances are refused from the tree and named (exit status 1).
    """
    secret = _read_secret(secret_file)
    with open_log(db, readonly=True) as log:
        books = _books(log, _policy(None, log), at, seq)
        found = liabilities_at(log, venue, secret=secret, books=books)
    say = _write_json(found.statement(), output)
    h = found.header
    say(
        f"{venue} at seq {h.seq} ({found.at or 'empty log'}): {len(found.tree)} customer account(s), "
        f"root {found.root.hex()}"
    )
    say(f"  owes customers: {_amounts(found.totals(), h.assets)}")
    _refusals(say, found, found.refused)
    if found.refused:
        sys.exit(EXIT_BREACH)


@proof.command()
@click.argument("account")
@db_option
@venue_option
@at_option
@seq_option
@secret_option
@output_option
@_handle_errors
def inclusion(
    account: str,
    db: str,
    venue: str,
    at: str | None,
    seq: int | None,
    secret_file: str,
    output: str,
) -> None:
    """One customer's inclusion proof: their leaf (salt, balances) and the sibling path to the root.

    ACCOUNT is the customer account (`ftx:customers`, or just `customers` for the venue's). Give
    the customer this file and the published root; `bankrun proof verify` checks it without the log.
    """
    secret = _read_secret(secret_file)
    ref = account if ":" in account else f"{venue}:{account}"
    with open_log(db, readonly=True) as log:
        books = _books(log, _policy(None, log), at, seq)
        found = liabilities_at(log, venue, secret=secret, books=books)
    data = found.inclusion(ref)
    say = _write_json(data, output)
    say(
        f"{ref} at seq {found.header.seq}: leaf {data['index']} of {len(found.tree)}, "
        f"{len(data['path'])} level(s) of three siblings, root {found.root.hex()}"
    )
    balances = dict(
        zip((code for code, _ in found.header.assets), found.tree.leaf(ref)[2], strict=True)
    )
    say(f"  counted as owed to the holder: {_amounts(balances, found.header.assets)}")
    mine = [r for r in found.refused if r.account == ref]
    _refusals(say, found, mine)
    if mine:
        sys.exit(EXIT_BREACH)


def _load_json(path: str, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the {what} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: the {what} is not JSON ({exc})") from None


@proof.command()
@click.argument("proof_file", metavar="PROOF", type=click.Path(dir_okay=False))
@click.option(
    "--root",
    required=True,
    help="The published root: 64 hex digits, or the liabilities JSON the venue published "
    "(then its ledger, venue, seq and head are compared with the proof's too).",
)
@click.option(
    "--seq", type=int, help="The seq the root was published for (a proof from another seq fails)."
)
@_handle_errors
def verify(proof_file: str, root: str, seq: int | None) -> None:
    """Verify an inclusion proof as a customer does, without the log (exit status 3 if it fails).

    Recomputes the leaf from its salt and balances, hashes up the path checking that every
    sibling sum is non-negative, and compares the result with the root. A changed amount, a
    negative sum, a wrong root or a proof from another seq fails with the reason.
    """
    data = _load_json(proof_file, "proof")
    published: str | dict[str, Any] = (
        root if _HEX64.fullmatch(root) else _load_json(root, "root file")
    )
    result = verify_inclusion(data, published, seq=seq)
    assets = result.assets
    click.echo(
        f"OK: {result.account} is included in the liabilities of {result.venue} at seq {result.seq} "
        f"of ledger {result.ledger_id} (root {result.root})"
    )
    click.echo(f"  counted as owed to this customer: {_amounts(result.balances, assets)}")
    click.echo(f"  the venue's total owed to all customers: {_amounts(result.totals, assets)}")
    click.echo(
        "  every sum on the path is non-negative. Not shown: that every other customer is in the "
        "tree (each must check their own), nor that reserves cover the totals (`bankrun proof reserves`)."
    )


@proof.command()
@db_option
@venue_option
@at_option
@seq_option
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Policy TOML file (the haircuts and quote asset). Default: built-in policy.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json for machines (exact decimals as strings).",
)
@_handle_errors
def reserves(
    db: str, venue: str, at: str | None, seq: int | None, policy_file: str | None, fmt: str
) -> None:
    """Reserves against liabilities per asset: the statement an auditor would sign.

    Per asset, what customers are owed (the proof of liabilities' totals) against the venue's
    customer-custody holdings at market value and after the policy's haircuts; covered when
    custody x (1 - haircut) >= owed. Exit status 1 when an asset is not covered.
    """
    with open_log(db, readonly=True) as log:
        books = _books(log, _policy(policy_file, log), at, seq)
        statement = reserves_at(books, venue)
    if fmt == "json":
        click.echo(json.dumps(statement.to_dict(), indent=2))
    else:
        for line in reserves_text(statement):
            click.echo(line)
    if not statement.covered:
        sys.exit(EXIT_BREACH)


def reserves_text(s: ReservesStatement) -> list[str]:
    """The reserves statement for people."""
    q = s.quote
    lines = [f"Reserves of {s.venue} at seq {s.seq} ({s.at or 'empty log'}), values in {q}"]
    lines.append(
        f"{'asset':<8} {'owed to customers':>24} {'in custody':>24} {'haircut':>8} "
        f"{'owed (' + q + ')':>22} {'reserves (' + q + ')':>22}  covered"
    )
    for x in s.lines:
        lines.append(
            f"{x.asset:<8} {x.owed:>24,f} {x.custody:>24,f} {x.haircut:>8f} {x.owed_value:>22,f} "
            f"{x.reserve_value:>22,f}  {'yes' if x.covered else 'NO'}"
        )
    lines.append(
        f"{'total':<8} {'':>24} {'':>24} {'':>8} {s.owed_value:>22,f} {s.reserve_value:>22,f}  {'yes' if s.covered else 'NO'}"
    )
    for r in s.refused:
        lines.append(
            f"  not a liability: {r.account} (holder {r.holder}) owes the venue "
            f"{-Decimal(format_amount(r.minor, r.scale)):,f} {r.asset} (refused from the proof of liabilities)"
        )
    if s.ratio is None:
        lines.append(f"{s.venue} owes its customers nothing at this point.")
    else:
        short = max(s.owed_value - s.reserve_value, Decimal(0))
        verdict = "covered" if s.covered else f"NOT covered (short {short:,f} {q} in all)"
        lines.append(
            f"{s.venue}'s segregated reserves after haircuts ({s.reserve_value:,f} {q}) are {s.ratio} of "
            f"the {s.owed_value:,f} {q} it owes customers: {verdict}."
        )
    return lines


__all__ = ["proof", "reserves_text"]
