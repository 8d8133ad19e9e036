"""The ``ledger`` command: one verb a job, a thin layer over the library.

Exit status: 0 success; 1 an invariant broke (replay, check); 2 bad input or usage; 3 the log
does not verify.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

import events as ev
import replays
from ledger.errors import LedgerError, VerificationError
from ledger.store import DEFAULT_DB, Checkpoint, Log

EXIT_BREACH, EXIT_INPUT, EXIT_VERIFY = 1, 2, 3


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our typed errors into one clear line (or a list) and an exit status, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VerificationError as exc:
            _fail(f"verification failed: {exc}", EXIT_VERIFY)
        except LedgerError as exc:
            _fail(str(exc), EXIT_INPUT)

    return wrapper


db_option = click.option(
    "--db",
    "db",
    envvar="LEDGER_DB",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file of the log (or set LEDGER_DB).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ftx-ledger")
def cli() -> None:
    """An event-sourced, tamper-evident ledger that replays histories and checks invariants.

    Start with `ledger replay ftx-2022`, or `ledger init` and `ledger append FILE`.
    """


@cli.command()
@db_option
@handle_errors
def init(db: str) -> None:
    """Create an empty log (does nothing to an existing one)."""
    existed = Path(db).exists()
    with Log.open(db, create=True) as log:
        state = "already exists" if existed else "created"
        click.echo(f"{db}: ledger {log.ledger_id} {state}, head seq {log.head().seq}")


@cli.command()
@click.argument("file")
@db_option
@click.option(
    "--expected-head",
    type=int,
    default=None,
    help="Refuse unless the log's head seq is this (optimistic concurrency).",
)
@handle_errors
def append(file: str, db: str, expected_head: int | None) -> None:
    """Append a timeline FILE (TOML or JSONL, or a bundled name) to the log: all or nothing.

    Events already recorded with the same content are skipped, so appending the same file twice
    appends nothing the second time. Creates the log if it does not exist.
    """
    timeline = replays.load_timeline(file)
    with Log.open(db, create=True) as log:
        result = log.append(timeline.events, expected_head=expected_head, where=timeline.where)
    click.echo(f"{timeline.path}: {result}")


@cli.command(name="log")
@db_option
@click.option("--type", "types", multiple=True, help="Only these event types (repeatable).")
@click.option("--from", "from_", default=None, help="Effective time from (ISO, with offset or a date).")
@click.option("--to", default=None, help="Effective time up to and including.")
@click.option("--limit", type=int, default=None, help="At most this many events.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True
)
@handle_errors
def log_(db: str, types: tuple[str, ...], from_: str | None, to: str | None, limit: int | None, fmt: str) -> None:
    """List stored events in record order (seq), filtered by type and effective time."""
    unknown = sorted(set(types) - set(ev.EVENT_TYPES))
    if unknown:
        raise LedgerError(f"--type: unknown event type {unknown[0]!r}; expected one of: {', '.join(sorted(ev.EVENT_TYPES))}")
    start = _instant(from_, "--from")
    end = _instant(to, "--to")
    shown = 0
    with Log.open(db, readonly=True) as log:
        first = _first_at_or_after(log, start) if start is not None else 1
        for record in log.iter_records(from_seq=first):
            event = record.event
            if end is not None and event.at > end:
                break
            if types and event.type not in types:
                continue
            if limit is not None and shown >= limit:
                break
            shown += 1
            if fmt == "jsonl":
                data = ev.to_dict(event)
                data["seq"] = record.seq
                data["recorded_at"] = record.recorded_at
                click.echo(json.dumps(data, sort_keys=True, ensure_ascii=False))
            else:
                click.echo(f"{record.seq:>7}  {ev.format_instant(event.at)}  {event.type:<20} {event.id}  {describe(event)}")


def _first_at_or_after(log: Log, start: Any) -> int:
    lo, hi = 1, log.head().seq + 1
    stamp = ev.format_instant(start)
    while lo < hi:
        mid = (lo + hi) // 2
        (occurred,) = log.connection.execute("SELECT occurred_at FROM events WHERE seq = ?", (mid,)).fetchone()
        if _key(occurred) < _key(stamp):
            lo = mid + 1
        else:
            hi = mid
    return lo


def _key(text: str) -> str:
    return text[:19] + ".000000Z" if len(text) == 20 else text


def describe(event: ev.Event) -> str:
    """A short human description of an event's main fields."""
    data = ev.to_dict(event)
    for key in ("type", "v", "id", "at", "source", "note"):
        data.pop(key, None)
    return " ".join(f"{k}={v}" for k, v in data.items())


def _instant(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return ev.parse_instant(text, field=option)
    except ev.EventValueError as exc:
        raise LedgerError(str(exc)) from None


@cli.command()
@db_option
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Checkpoint file(s) the log must still match (catches truncation and rewrites).",
)
@handle_errors
def verify(db: str, checkpoints: tuple[str, ...]) -> None:
    """Walk the hash chain; name the first bad seq. Exit status 3 if the log does not verify."""
    cps = [Checkpoint.read(path) for path in checkpoints]
    with Log.open(db, readonly=True) as log:
        result = log.verify(cps)
    click.echo(
        f"{db}: OK, {result.events_checked} events, head seq {result.head.seq} "
        f"{result.head.hash_hex}" + (f", {result.checkpoints_matched} checkpoint(s) matched" if cps else "")
    )


@cli.command()
@db_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Also write it to this file.")
@handle_errors
def checkpoint(db: str, output: str | None) -> None:
    """Print the head as a checkpoint (ledger_id, seq, head_hash, time) to keep elsewhere."""
    with Log.open(db, readonly=True) as log:
        cp = log.checkpoint()
    text = cp.to_json()
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
    click.echo(text)


@cli.command()
@click.option("--check/--no-check", default=False, help="Also dry-run each timeline's references.")
@handle_errors
def timelines(check: bool) -> None:
    """List the bundled timelines (name, events, title)."""
    for timeline in replays.bundled():
        if check:
            timeline.check()
        click.echo(f"{timeline.name:<16} {len(timeline.events):>5} events  {timeline.title}")


@cli.command()
@db_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="-", help="File to write (default: stdout).")
@handle_errors
def export(db: str, output: str) -> None:
    """Export the stored events as canonical JSON Lines (re-importable with `ledger append`)."""
    with Log.open(db, readonly=True) as log, click.open_file(output, "w", encoding="utf-8") as out:
        count = replays.dump_jsonl(log.iter_events(), out)
    if output != "-":
        click.echo(f"wrote {count} events to {output}")


def main() -> None:
    cli(prog_name="ledger")
