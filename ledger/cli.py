"""The ``bankrun`` command (also ``python -m ledger``): one verb a job, a thin layer over the library.

Exit status: 0 success; 1 an invariant broke (replay, check); 2 bad input or usage; 3 the log
does not verify.

Start-up: this module imports click and nothing heavy; each command imports what it uses when
it runs, and the command groups of the subpackages (``report``, ``proof``, ``whatif``,
``stress``) are imported only when named (``bankrun --help`` lists them from
:data:`LAZY_COMMANDS`). So ``bankrun --help`` pays for click alone and ``bankrun check`` for the
log, the replay and the report, not for forensics, scenarios, proofs or the HTML report
(``tests/test_cli_startup.py`` holds it so in a fresh process).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledger.cli_options import db_option, format_option, policy_option
from ledger.progress import Watched, counted, reporter

if TYPE_CHECKING:
    import events as ev
    import replays
    from ledger.derived import Derived
    from ledger.forensics import Investigation
    from ledger.policy import Policy
    from ledger.replay import Replay
    from ledger.store import Checkpoint, EventLog

#: The console script's name (pyproject.toml): not ``ledger``, which is ledger-cli's command.
PROG = "bankrun"

EXIT_BREACH, EXIT_INPUT, EXIT_VERIFY, EXIT_OUTPUT = 1, 2, 3, 4
#: Above this many events a text replay shows only the steps that change something by default.
LARGE_LOG = 10_000
#: A reader that closed the pipe early (``bankrun log | head``): quiet, as a shell reports SIGPIPE.
EXIT_CLOSED_PIPE = 128 + signal.SIGPIPE
#: ``snapshot --every``'s default: ``ledger.forensics.DEFAULT_SNAPSHOT_EVERY``, written here so
#: that ``--help`` does not import forensics (a test holds the two equal).
DEFAULT_SNAPSHOT_EVERY = 5_000


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _closed_pipe() -> None:
    """The reader went away: stop quietly (no traceback, no message at exit)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(EXIT_CLOSED_PIPE)


def _output_problem(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "standard output"
    return f"cannot write {where}: {exc.strerror or exc}"


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our typed errors into one clear line (or a list) and an exit status, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            # The error types are imported only when one is raised (start-up stays light).
            from ledger.errors import LedgerError, VerificationError

            if isinstance(exc, VerificationError):
                _fail(f"verification failed: {exc}", EXIT_VERIFY)
            elif isinstance(exc, LedgerError):
                _fail(str(exc), EXIT_INPUT)
            elif isinstance(exc, BrokenPipeError):
                _closed_pipe()
            elif isinstance(exc, OSError):  # an output that cannot be written: -o into a missing folder, a full disk
                _fail(_output_problem(exc), EXIT_OUTPUT)
            raise

    return wrapper




checkpoint_option = click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Checkpoint file(s) the log must still match (catches truncation and rewrites).",
)
quiet_option = click.option(
    "--quiet", "-q", is_flag=True,
    help="No progress on standard error (shown only when it is a terminal, never in the output).",
)
invariant_option = click.option(
    "--invariant",
    "extra",
    multiple=True,
    metavar="MODULE:NAME",
    help="Also check your own invariant: an importable object (or class) with name, meaning, check(ctx).",
)


def load_invariants(paths: tuple[str, ...]) -> list[Any]:
    """Import user invariants given as ``module:attribute`` (a class is instantiated)."""
    from ledger.errors import InputError

    found = []
    for path in paths:
        module_name, sep, attribute = path.partition(":")
        if not sep or not module_name or not attribute:
            raise InputError(f"--invariant {path!r}: write it as module:Name")
        try:
            obj = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"--invariant {path!r}: cannot import ({exc})") from None
        if isinstance(obj, type):
            obj = obj()
        if not all(hasattr(obj, a) for a in ("name", "meaning", "check")):
            raise InputError(f"--invariant {path!r}: needs name, meaning and check(ctx)")
        found.append(obj)
    return found


fail_on_option = click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    help="Exit 1 only if one of these invariants broke (repeatable). Default: any.",
)


#: The subpackages' commands, imported only when named: name -> (module, attribute, the first
#: paragraph of the command's help, which ``bankrun --help`` lists without importing it; a test
#: holds each equal to the command's own).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "proof": (
        "ledger.proofs.cli", "proof",
        "Proof of liabilities and reserves at any point: Merkle-sum trees (docs/proofs.md).",
    ),
    "report": (
        "ledger.html.cli", "report",
        "Write a replay report: one HTML page with charts, the breaches and their sources.",
    ),
    "stress": (
        "ledger.scenarios.cli", "stress_command",
        "Reverse stress test: the smallest shock at which an invariant breaks at or after --at.",
    ),
    "whatif": (
        "ledger.scenarios.cli", "whatif_command",
        "Replay a SCENARIO file's derived history and compare it with its base.",
    ),
}


class _Commands(click.Group):
    """``bankrun``'s group: the commands of this module, and those of :data:`LAZY_COMMANDS`,
    imported when a command line names them (to run them or to show their own help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module, attribute, _ = LAZY_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the one-line help of a command not imported yet taken from
        :data:`LAZY_COMMANDS` (the same words, cut to the same width)."""
        listed = [(name, self.commands.get(name)) for name in self.list_commands(ctx)]
        listed = [(name, command) for name, command in listed if command is None or not command.hidden]
        if not listed:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in listed)
        rows = [
            # A command not imported yet: click's own cut of its help text, through a stand-in
            # command (click.utils.make_default_short_help is deprecated since click 8.2).
            (name, (command or click.Command(name, help=LAZY_COMMANDS[name][2])).get_short_help_str(limit))
            for name, command in listed
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ftx-ledger")
def cli() -> None:
    """An event-sourced, tamper-evident ledger that replays histories and checks invariants.

    Start with `bankrun replay ftx-2022`, or `bankrun init` and `bankrun append FILE`.
    """


@cli.command()
@db_option
@handle_errors
def init(db: str) -> None:
    """Create an empty log (does nothing to an existing one)."""
    from ledger.store import is_url, open_log

    existed = not is_url(db) and os.path.lexists(db)
    # An existing file is only looked at (read-only): a ledger is reported, anything else refused.
    with open_log(db, readonly=existed, create=not existed) as log:
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
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Policy file; its `enforce` invariants are hard rules: a breaking batch is refused.",
)
@quiet_option
@handle_errors
def append(file: str, db: str, expected_head: int | None, policy_file: str | None, quiet: bool) -> None:
    """Append a timeline FILE (TOML or JSONL, or a bundled name) to the log: all or nothing.

    Events already recorded with the same content are skipped, so appending the same file twice
    appends nothing the second time. Creates the log if it does not exist.
    """
    import replays
    from ledger.errors import LedgerError
    from ledger.policy import Policy
    from ledger.replay import enforcing_guard
    from ledger.store import is_url, open_log

    policy = Policy.from_toml(policy_file) if policy_file else None
    path = replays.resolve(file)
    created = not is_url(db) and not os.path.lexists(db)
    try:
        with reporter(quiet) as progress:
            if path.suffix in (".jsonl", ".ndjson") and (policy is None or not policy.enforce):
                # JSON Lines streams: one transaction, bounded memory, whatever the file's size.
                with open_log(db, create=True) as log:
                    lines = _count_lines(path) if progress.active else None
                    stream = counted(replays.iter_jsonl(path), progress, f"appending {path.name}", lines)
                    result: object = log.append_stream(stream, expected_head=expected_head)
            else:
                reading = progress.task(f"reading {path.name}")
                timeline = replays.load_timeline(path)
                progress.done(reading)
                with open_log(db, create=True) as log:
                    guard = enforcing_guard(log, policy) if policy is not None and policy.enforce else None
                    writing = progress.task(f"appending {len(timeline.events):,} events")
                    result = log.append(
                        timeline.events, expected_head=expected_head, where=timeline.where, guard=guard
                    )
                    progress.done(writing)
                    if log.meta("quote") is None and path.suffix == ".toml":
                        log.set_meta("quote", timeline.quote)
    except LedgerError:
        if created:  # the input was refused: leave no empty log behind it either
            _remove_empty_log(db)
        raise
    click.echo(f"{path}: {result}")


def _count_lines(path: Path) -> int:
    """How many lines ``path`` has (a JSON Lines file: about how many events), for a bar."""
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _remove_empty_log(db: str) -> None:
    """Remove a log this command created, if it is still empty (nothing was appended)."""
    from ledger.errors import LedgerError
    from ledger.store import open_log

    with contextlib.suppress(LedgerError, OSError):
        with open_log(db, readonly=True) as log:
            if log.head().seq != 0:
                return
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(db + suffix)


@cli.command(name="log")
@db_option
@click.option("--type", "types", multiple=True, help="Only these event types (repeatable).")
@click.option("--from", "from_", default=None, help="Effective time from (an instant, a date or a month: from its start).")
@click.option("--to", default=None, help="Effective time up to and including (a date or a month: its whole span).")
@click.option("--account", default=None, help="Only events that name this account (entity:account).")
@click.option("--entity", default=None, help="Only events that name this entity, one of its accounts, or an account it holds.")
@click.option("--limit", type=int, default=None, help="At most this many events.")
@format_option("text", "json", "jsonl", "csv")
@handle_errors
def log_(
    db: str, types: tuple[str, ...], from_: str | None, to: str | None, account: str | None,
    entity: str | None, limit: int | None, fmt: str,
) -> None:
    """List stored events in record order (seq), filtered by type, effective time, account and
    entity.

    json, jsonl and csv give each event in its canonical form with its seq and recorded_at.
    """
    import json

    import events as ev
    from ledger import report
    from ledger.errors import InputError, LedgerError
    from ledger.forensics import did_you_mean
    from ledger.store import open_log

    unknown = sorted(set(types) - set(ev.EVENT_TYPES))
    if unknown:
        raise LedgerError(
            f"--type: unknown event type {unknown[0]!r}{did_you_mean(unknown[0], ev.EVENT_TYPES)}; "
            f"expected one of: {', '.join(sorted(ev.EVENT_TYPES))}"
        )
    start = _instant(from_, "--from")
    end = _instant(to, "--to", end=True)
    with open_log(db, readonly=True) as log:
        registry = log.registry()
        if account is not None and account not in registry.accounts:
            raise InputError(f"--account: unknown account {account!r}{did_you_mean(account, registry.accounts)}")
        if entity is not None and entity not in registry.entities:
            raise InputError(f"--entity: unknown entity {entity!r}{did_you_mean(entity, registry.entities)}")
        first = log.seq_before(start) + 1 if start is not None else 1

        def selected() -> Iterator[Any]:
            shown = 0
            for record in log.iter_records(from_seq=first):
                event = record.event
                if end is not None and event.at > end:
                    return
                if types and event.type not in types:
                    continue
                if (account or entity) and not _names(event, registry, account=account, entity=entity):
                    continue
                if limit is not None and shown >= limit:
                    return
                shown += 1
                yield record

        def row(record: Any) -> dict[str, Any]:
            return {"seq": record.seq, "recorded_at": record.recorded_at, **ev.to_dict(record.event)}

        if fmt == "json":
            click.echo(report.dumps({"format": report.REPORT_FORMAT, "events": [row(r) for r in selected()]}))
        elif fmt == "jsonl":
            for record in selected():
                click.echo(json.dumps(row(record), sort_keys=True, ensure_ascii=False))
        elif fmt == "csv":
            # The seq and record time, then the events' fixed columns.
            columns = ("seq", "recorded_at", *report.EVENT_CSV_COLUMNS)
            report.write_rows((row(r) for r in selected()), sys.stdout, "csv", columns=columns)
        else:
            for record in selected():
                event = record.event
                click.echo(f"{record.seq:>7}  {ev.format_instant(event.at)}  {event.type:<20} {event.id}  {describe(event)}")


def _names(event: ev.Event, registry: Any, *, account: str | None, entity: str | None) -> bool:
    """Whether ``event`` names ``account`` (as one of its references) and ``entity`` (itself,
    one of its accounts, or an account it holds at a venue)."""
    import attrs

    refs = [
        value
        for field in attrs.fields(type(event))
        if field.metadata.get("kind") == "id" and isinstance(value := getattr(event, field.name), str)
    ]
    if account is not None and account not in refs:
        return False
    if entity is None:
        return True
    for ref in refs:
        if ref == entity or ref.partition(":")[0] == entity:
            return True
        info = registry.accounts.get(ref)
        if info is not None and info.holder == entity:
            return True
    return False


def describe(event: ev.Event) -> str:
    """A short human description of an event's main fields."""
    import events as ev

    data = ev.to_dict(event)
    for key in ("type", "v", "id", "at", "source", "note"):
        data.pop(key, None)
    return " ".join(f"{k}={v}" for k, v in data.items())


def _instant(text: str | None, option: str, *, end: bool = False) -> Any:
    from ledger.when import parse_when

    return parse_when(text, option, end=end)


@cli.command()
@db_option
@checkpoint_option
@click.option(
    "--snapshots/--no-snapshots",
    default=True,
    show_default=True,
    help="Also prove stored snapshots against the events (one replay of the books).",
)
@format_option("text", "json")
@quiet_option
@handle_errors
def verify(db: str, checkpoints: tuple[str, ...], snapshots: bool, fmt: str, quiet: bool) -> None:
    """Walk the hash chain; name the first bad seq. Exit status 3 if the log does not verify.

    Also checks the append-only triggers, the registry table against the events, and (unless
    --no-snapshots) every stored snapshot against the books the events give at its seq.
    """
    from ledger import report
    from ledger.derived import Derived
    from ledger.errors import VerificationError
    from ledger.forensics import Investigation
    from ledger.store import Checkpoint, is_url, open_log

    cps = [Checkpoint.read(path) for path in checkpoints]
    # What it says waits for the progress bar to end (on a terminal the two would tear), and
    # is said even when a later check fails.
    held: list[str] = []
    say = held.append
    try:
        with open_log(db, readonly=True) as log, reporter(quiet) as progress:
            walking = progress.task("verifying the log", log.head().seq)
            result = log.verify(cps, progress=lambda seq: progress.update(walking, seq))
            progress.done(walking)
            document: dict[str, Any] = {
                "format": report.REPORT_FORMAT,
                "ok": True,
                "events_checked": result.events_checked,
                "head": {"seq": result.head.seq, "hash": result.head.hash_hex},
                "checkpoints_matched": result.checkpoints_matched,
                "snapshots": [],
            }
            if fmt == "text":
                say(
                    f"{db}: OK, {result.events_checked} events, head seq {result.head.seq} "
                    f"{result.head.hash_hex}" + (f", {result.checkpoints_matched} checkpoint(s) matched" if cps else "")
                )
            if not snapshots:
                if fmt == "json":
                    say(report.dumps(document))
                return
            # Snapshots are a cache that point-in-time queries use: prove them against the events.
            sources = [Derived.in_log(log)] if not is_url(db) else []
            derived = _derived_for_reading(log)
            if derived is not None:
                sources.append(derived)
            try:
                for source in sources:
                    inv = Investigation(Watched(log, progress, "proving snapshots"), _policy(None, log), derived=source)
                    stored = inv.snapshots()
                    if not stored:
                        continue
                    problems = inv.check_snapshots()
                    if problems:
                        raise VerificationError(
                            f"{source.path}: {problems[0]}"
                            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                            + "; it would not be used as it is: rebuild it with 'bankrun snapshot --rebuild'"
                        )
                    # Snapshots of an earlier books state format: stale, skipped by readers, said.
                    stale = [w for w in inv.warnings if "books state version" in w]
                    for warning in stale:
                        click.echo(f"warning: {source.path}: {warning}", err=True)
                    matched = len(stored) - len(stale)
                    # Deltas are proven with the full snapshots; over a stale one they are stale
                    # too (check_snapshots says so), so they are counted only when none is.
                    deltas = 0 if stale else len(inv.deltas())
                    document["snapshots"].append(
                        {"file": str(source.path), "matched": matched, "deltas_matched": deltas, "stale": len(stale)}
                    )
                    if fmt == "text":
                        say(
                            f"{source.path}: {matched} snapshot(s)"
                            + (f" and {deltas} delta(s)" if deltas else "")
                            + " match the events"
                            + (f", {len(stale)} stale (rebuild with 'bankrun snapshot --rebuild')" if stale else "")
                        )
            finally:
                if derived is not None:
                    derived.close()
            if fmt == "json":
                say(report.dumps(document))


    finally:
        for line in held:
            click.echo(line)


@cli.command()
@db_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Also write it to this file.")
@handle_errors
def checkpoint(db: str, output: str | None) -> None:
    """Print the head as a checkpoint (ledger_id, seq, head_hash, time) to keep elsewhere."""
    from ledger.store import open_log

    with open_log(db, readonly=True) as log:
        cp = log.checkpoint()
    text = cp.to_json()
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
    click.echo(text)


@cli.command()
@click.option("--check/--no-check", default=False, help="Also dry-run each timeline's references.")
@format_option("text", "json", "csv")
@handle_errors
def timelines(check: bool, fmt: str) -> None:
    """List the bundled timelines (name, events, title)."""
    import replays
    from ledger import report

    rows = []
    for timeline in replays.bundled():
        if check:
            timeline.check()
        rows.append({"name": timeline.name, "events": len(timeline.events), "quote": timeline.quote, "title": timeline.title})
    if fmt == "json":
        click.echo(report.dumps({"format": report.REPORT_FORMAT, "timelines": rows}))
    elif fmt == "csv":
        report.write_rows(rows, sys.stdout, "csv", columns=("name", "events", "quote", "title"))
    else:
        for r in rows:
            click.echo(f"{r['name']:<16} {r['events']:>5} events  {r['title']}")


@cli.command()
@db_option
@click.option(
    "--what",
    type=click.Choice(["events", "postings", "violations"]),
    default="events",
    show_default=True,
    help="events (re-importable), postings (with balance after), or violations (opened/closed).",
)
@format_option("jsonl", "csv", default="jsonl")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="-", help="File to write (default: stdout).")
@policy_option
@quiet_option
@handle_errors
def export(db: str, what: str, fmt: str, output: str, policy_file: str | None, quiet: bool) -> None:
    """Export events, postings or violations as JSON Lines or CSV.

    `--what events --format jsonl` is the canonical form, re-importable with `bankrun append`.
    Money stays exact: decimal strings, and integer minor units with the scale for postings.
    """
    from ledger import report
    from ledger.store import open_log

    with open_log(db, readonly=True) as log, click.open_file(output, "w", encoding="utf-8") as out:
        with reporter(quiet) as progress:
            count = report.export(Watched(log, progress, f"exporting {what}"), what, fmt, out, _policy(policy_file, log))
    if output != "-":
        click.echo(f"wrote {count} {what} to {output}", err=True)


derived_out_option = click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Derived file to write (default: beside the log, LOG.derived.db; tied to this log).",
)
in_place_option = click.option(
    "--in-place",
    is_flag=True,
    help="Write into the log's own file instead (changes the evidence file; off by default).",
)


def _derived_for_writing(log_path: str, out: str | None, in_place: bool) -> tuple[EventLog, Derived]:
    """The log and where its derived data is written: a derived file (default) or the log."""
    from ledger.derived import Derived
    from ledger.derived import default_path_for as default_derived_path
    from ledger.errors import InputError
    from ledger.store import open_log

    if in_place:
        if out is not None:
            raise InputError("--in-place writes into the log; --out names another file: give one")
        log = open_log(log_path)
        try:
            return log, Derived.in_log(log)
        except BaseException:
            log.close()
            raise
    log = open_log(log_path, readonly=True)
    try:
        return log, Derived.open(out or default_derived_path(log), log, create=True)
    except BaseException:
        log.close()
        raise


@contextlib.contextmanager
def _investigation(log: EventLog, policy: Policy | None = None) -> Iterator[Investigation]:
    """An investigation of a log opened read-only, using its derived file's snapshots if any."""
    from ledger.forensics import Investigation

    derived = _derived_for_reading(log)
    try:
        yield Investigation(log, policy, derived=derived)
    finally:
        if derived is not None:
            derived.close()


def _derived_for_reading(log: EventLog) -> Derived | None:
    """Snapshots to read: the log's default derived file if there is one (checked to be this
    log's), else the log's own snapshots table, if any."""
    from ledger.derived import Derived
    from ledger.derived import default_path_for as default_derived_path
    from ledger.errors import LedgerError

    path = default_derived_path(log)
    if not os.path.lexists(path):
        return None
    try:
        return Derived.open(path, log)
    except LedgerError as exc:
        click.echo(f"warning: {exc}; its snapshots are not used", err=True)
        return None


@cli.command()
@db_option
@click.option("--every", type=int, default=DEFAULT_SNAPSHOT_EVERY, show_default=True, help="Events between snapshots.")
@click.option("--rebuild", is_flag=True, help="Delete existing snapshots first.")
@click.option("--drop", is_flag=True, help="Only delete all snapshots (they are a cache).")
@derived_out_option
@in_place_option
@quiet_option
@handle_errors
def snapshot(db: str, every: int, rebuild: bool, drop: bool, out: str | None, in_place: bool, quiet: bool) -> None:
    """Store snapshots of the books every K events (a cache for point-in-time queries).

    They go into a derived file beside the log (LOG.derived.db, or --out), which names the
    log's ledger_id and the head it was built from and is refused against another log; the
    log itself is only read. `bankrun verify` proves every snapshot against the events.
    """
    from ledger.forensics import Investigation

    log, derived = _derived_for_writing(db, out, in_place)
    try:
        if drop:
            Investigation(log, every=every, derived=derived).drop_snapshots()
            click.echo(f"{derived.path}: snapshots dropped")
            return
        with reporter(quiet) as progress:
            inv = Investigation(Watched(log, progress, "building snapshots"), every=every, derived=derived)
            written = inv.build_snapshots(rebuild=rebuild)
        for warning in inv.warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(
            f"{derived.path}: wrote {written} snapshot(s); {len(inv.snapshots())} stored, "
            f"every {every} events, and {len(inv.deltas())} delta(s) between them "
            f"(log {db}, head seq {log.head().seq})"
        )
    finally:
        derived.close()
        log.close()


@cli.command()
@click.argument("account")
@db_option
@click.option("--asset", default=None, help="Only this asset.")
@click.option("--from", "from_", default=None, help="From this effective time (a date or month: its start; or use --from-seq).")
@click.option("--to", default=None, help="Up to this effective time, inclusive (a date or month: its end; or use --to-seq).")
@click.option("--from-seq", type=int, default=None, help="From this seq (record order).")
@click.option("--to-seq", type=int, default=None, help="Up to and including this seq.")
@format_option("text", "json", "jsonl", "csv")
@handle_errors
def history(account: str, db: str, asset: str | None, from_: str | None, to: str | None, from_seq: int | None, to_seq: int | None, fmt: str) -> None:
    """Every posting that touched ACCOUNT (entity:account), with running balance and source.

    Each line names the counterparty (the other side of the posting); withdrawals asked of the
    account and not paid are listed too, as refused. Customer accounts are shown from the
    holder's side (negative: the holder owes the venue).
    """
    import itertools

    from ledger import report, tables
    from ledger.forensics import Investigation
    from ledger.store import open_log

    with open_log(db, readonly=True) as log:
        inv = Investigation(log)
        start = from_seq if from_seq is not None else (log.seq_before(_instant(from_, "--from")) + 1 if from_ else 1)
        stop = to_seq if to_seq is not None else (log.seq_at(_instant(to, "--to", end=True)) if to else None)
        found = iter(inv.history(account, asset=asset, from_seq=start, to_seq=stop))
        first = next(found, None)  # a typo is refused here, before any header is printed
        lines = itertools.chain([first] if first is not None else [], found)
        if fmt == "json":
            click.echo(report.dumps({"format": report.REPORT_FORMAT, "account": account, "lines": [line.to_dict() for line in lines]}))
            return
        if fmt != "text":
            report.write_rows((line.to_dict() for line in lines), sys.stdout, fmt)
            return
        if first is None:
            click.echo(f"(no postings to {account} in that range)")
            return
        table = tables.Stream(_history_columns())
        click.echo(table.header())
        for line in lines:
            click.echo(table.row([
                str(line.seq), line.at, line.event_id, line.counterparty, line.asset,
                "refused" if line.refused else tables.amount(line.delta), tables.amount(line.balance),
                ",".join(line.source) + (f"; refused: {line.refused}" if line.refused else ""),
            ]))


def _history_columns() -> list[Any]:
    """``history``'s text table: exact amounts, grouped, in the asset's decimals."""
    from ledger.tables import Column as _C

    return [
        _C("seq", right=True, width=7), _C("effective", width=20), _C("event", width=30, shrink=True),
        _C("counterparty", width=40, shrink=True), _C("asset", width=6),
        _C("change", right=True, width=24), _C("balance", right=True, width=24), _C("source; refused: why"),
    ]


def _trace_columns() -> list[Any]:
    """``trace``'s table of flows."""
    from ledger.tables import Column as _C

    return [
        _C("seq", right=True, width=7), _C("effective", width=20), _C("from", width=30, shrink=True), _C("to", width=30, shrink=True),
        _C("traced amount", right=True, width=22), _C("event [sources]"),
    ]


@cli.command()
@db_option
@click.option("--asset", required=True, help="The asset traced (e.g. USD).")
@click.option("--deposits-into", required=True, help="Start: customer deposits into this account (venue:name) or venue.")
@click.option("--rule", type=click.Choice(["fifo", "pro-rata", "libr"]), default="libr", show_default=True, help="Which outflows carry traced funds (see docs/forensics.md).")
@click.option("--since", default=None, help="Only deposits at or after this time (a date or month: its start).")
@click.option("--until", default=None, help="Where the funds sit at this time (a date or month: its end; default: the end of the log).")
@format_option("text", "json", "csv")
@handle_errors
def trace(db: str, asset: str, deposits_into: str, rule: str, since: str | None, until: str | None, fmt: str) -> None:
    """Follow customer deposits through transfers, withdrawals and loans to where they sit.

    Rules: fifo (first in, first out), pro-rata (each outflow carries the traced share), libr
    (lowest intermediate balance; the holder spends its own money first). csv writes the flows.
    """
    from decimal import Decimal

    from ledger import report, tables
    from ledger.forensics import Investigation
    from ledger.store import open_log

    with open_log(db, readonly=True) as log:
        result = Investigation(log).trace(
            asset=asset, deposits_into=deposits_into, rule=rule,
            since=_instant(since, "--since"), until=_instant(until, "--until", end=True),
        )
    if fmt == "json":
        click.echo(report.dumps(result.to_dict()))
        return
    if fmt == "csv":
        report.write_rows((f.to_dict() for f in result.flows), sys.stdout, "csv")
        return
    click.echo(
        f"Tracing {result.traced_in:,} {asset} of customer deposits into {deposits_into} ({rule}), "
        f"up to seq {result.until_seq} (re-deposits of money already traced are not counted twice)"
    )
    click.echo("")
    table = tables.Stream(_trace_columns())
    click.echo(table.header())
    for f in result.flows:
        click.echo(table.row([
            str(f.seq), f.at, f.from_node, f.to_node, tables.amount(f.amount), f"{f.event_id} [{','.join(f.source)}]",
        ]))
    click.echo("")
    total = result.traced_in
    for heading, places in (
        ("Where the traced funds sit (places inside the books):", result.held),
        ("Where traced funds left the books (outside accounts; deficits they made good):", result.left),
    ):
        click.echo(heading)
        if not places:
            click.echo("  (none)")
            continue
        rows = [
            [node, tables.amount(amount), f"{(amount / total if total else Decimal(0)):.2%}"]
            for node, amount in sorted(places.items(), key=lambda kv: -kv[1])
        ]
        for line in tables.render(
            [tables.Column("place"), tables.Column(f"traced ({asset})", right=True), tables.Column("share", right=True)],
            rows, indent=2, terminal=tables.is_terminal(),
        ):
            click.echo(line)


@cli.command()
@click.argument("point_a")
@click.argument("point_b")
@db_option
@policy_option
@format_option("text", "json")
@handle_errors
def diff(point_a: str, point_b: str, db: str, policy_file: str | None, fmt: str) -> None:
    """What changed between two points (each a seq number or a time): balances, loans, prices,
    open violations, and the events that caused each balance change."""
    from ledger import report, tables
    from ledger.store import open_log

    with open_log(db, readonly=True) as log, _investigation(log, _policy(policy_file, log)) as inv:
        a, b = (_point(inv, p) for p in (point_a, point_b))
        result = inv.diff(a, b)
    if fmt == "json":
        click.echo(report.dumps(result.to_dict()))
        return
    for line in diff_text(result, terminal=tables.is_terminal()):
        click.echo(line)


def diff_text(result: Any, *, terminal: bool = False) -> list[str]:
    """``diff`` for people: a table for each kind of change, exact amounts in one form, ``-``
    where a side has none, breaches opened ``!`` and closed ``+`` as in a replay."""
    from ledger import tables

    Column = tables.Column
    out = [f"From seq {result.seq_a} to seq {result.seq_b}:", "", f"Balances changed ({len(result.balances)}):"]

    def events_of(ids: list[str]) -> str:
        return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")

    out += tables.render(
        [Column("account"), Column("asset"), Column("before", right=True), Column("after", right=True),
         Column("change", right=True), Column("by events", wrap=True)],
        [[f"{r['entity']}:{r['account']}", r["asset"], tables.amount(r["before"]), tables.amount(r["after"]),
          tables.amount(r["change"]), events_of(r["events"])] for r in result.balances],
        indent=2, terminal=terminal,
    )
    if result.prices:
        out += ["", f"Prices changed ({len(result.prices)}):"]
        out += tables.render(
            [Column("asset"), Column("before", right=True), Column("after", right=True)],
            [[r["asset"], tables.amount(r["before"]), tables.amount(r["after"])] for r in result.prices],
            indent=2, terminal=terminal,
        )
    if result.loans:
        out += ["", f"Loans and secured accounts changed ({len(result.loans)}):"]

        def side(row: dict[str, Any] | None, key: str) -> str:
            return tables.amount(row.get(key)) if row else "-"

        out += tables.render(
            [Column("loan"), Column("debt before", right=True), Column("debt after", right=True),
             Column("collateral before", right=True), Column("collateral after", right=True)],
            [[r["target"], side(r["before"], "debt_value"), side(r["after"], "debt_value"),
              side(r["before"], "collateral_haircut_value"), side(r["after"], "collateral_haircut_value")]
             for r in result.loans],
            indent=2, terminal=terminal,
        )
        out.append("  (collateral valued after haircuts)")
    out += ["", f"Breaches opened ! ({len(result.opened)}) and closed + ({len(result.closed)}):"]
    by_seq = lambda v: (v["seq"], v["invariant"], v["subject"])  # noqa: E731
    rows = [[f"!{v['invariant']}", v["subject"], f"opened at seq {v['seq']}", v["event_id"]] for v in sorted(result.opened, key=by_seq)]
    rows += [[f"+{v['invariant']}", v["subject"], f"open since seq {v['seq']}", v["event_id"]] for v in sorted(result.closed, key=by_seq)]
    if rows:
        out += tables.render(
            [Column("breach"), Column("subject"), Column("when"), Column("event")], rows,
            indent=2, terminal=terminal,
        )
    return out


def _point(inv: Investigation, text: str) -> int:
    if text.isdigit():
        return inv.resolve(seq=int(text))
    return inv.resolve(at=_instant(text, "point"))


@cli.command()
@db_option
@policy_option
@derived_out_option
@in_place_option
@quiet_option
@handle_errors
def materialize(db: str, policy_file: str | None, out: str | None, in_place: bool, quiet: bool) -> None:
    """Write projection tables (postings, balances, violations, loans, prices) for the sqlite3
    shell or Datasette. Money columns stay exact (text decimals, minor units).

    They go into the derived file beside the log (LOG.derived.db, or --out; tied to this log),
    or with --in-place into the log's own file.
    """
    from ledger.forensics import Investigation

    log, derived = _derived_for_writing(db, out, in_place)
    try:
        with reporter(quiet) as progress:
            watched = Watched(log, progress, "writing the projection tables")
            counts = Investigation(watched, _policy(policy_file, log), derived=derived).materialize()
    finally:
        derived.close()
        log.close()
    click.echo(f"{derived.path}: " + ", ".join(f"{name} {count} rows" for name, count in counts.items()))


def _policy(policy_file: str | None, log: EventLog | None = None) -> Policy:
    """The policy file's policy, or the defaults valued in the log's recorded quote asset."""
    from ledger.policy import Policy

    if policy_file:
        return Policy.from_toml(policy_file)
    quote = log.meta("quote") if log is not None else None
    return Policy(quote=quote) if quote else Policy()


def _check_prefix(log: EventLog, timeline: replays.Timeline) -> None:
    """Refuse to mix histories: the stored log must be a prefix of the timeline."""
    from ledger.errors import InputError

    head = log.head().seq
    if head == 0:
        return
    if head > len(timeline.events):
        raise InputError(
            f"{log.path} holds {head} events, more than {timeline.name} has "
            f"({len(timeline.events)}): it records another history. Use --db OTHER.db or --no-record."
        )
    for record, event in zip(log.iter_records(to_seq=head), timeline.events):
        if record.event.id != event.id:
            raise InputError(
                f"{log.path} records another history (seq {record.seq} is {record.event.id!r}, "
                f"{timeline.name} has {event.id!r} there). Use --db OTHER.db or --no-record."
            )


@cli.command()
@click.argument("timeline", required=False)
@db_option
@click.option(
    "--no-record",
    is_flag=True,
    help="Replay the file in memory; write nothing to the database.",
)
@click.option("--until", default=None, help="Stop after the last event at or before this time (a date or month: its end).")
@policy_option
@format_option("text", "json", "jsonl")
@fail_on_option
@invariant_option
@click.option(
    "--steps",
    type=click.Choice(["all", "changes", "none"]),
    default=None,
    help="Which steps the text table shows: every event, only those that open or close a breach, "
    f"or none. Default: all, or changes for a log of more than {LARGE_LOG:,} events (said in one line).",
)
@quiet_option
@click.option(
    "--verify",
    "verify_first",
    is_flag=True,
    help="Verify the log (hash chain, every payload strictly) before replaying it; exit 3 if it does not verify. --checkpoint implies it.",
)
@checkpoint_option
@click.option(
    "--follow",
    is_flag=True,
    help="At the end of the log, wait for other writers to append and replay what they add, "
    "until Ctrl-C (or SIGTERM), --to-seq or --idle-timeout; then print the summary.",
)
@click.option("--to-seq", type=click.IntRange(min=1), default=None, help="With --follow: stop after this seq.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01),
    default=0.5,
    show_default=True,
    help="With --follow: seconds between looks at the head of the log.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="With --follow: stop when nothing new arrived for this many seconds.",
)
@handle_errors
def replay(
    quiet: bool,
    timeline: str | None,
    db: str,
    no_record: bool,
    until: str | None,
    policy_file: str | None,
    fmt: str,
    fail_on: tuple[str, ...],
    extra: tuple[str, ...],
    steps: str | None,
    verify_first: bool,
    checkpoints: tuple[str, ...],
    follow: bool,
    to_seq: int | None,
    poll: float,
    idle_timeout: float | None,
) -> None:
    """Replay a timeline (bundled NAME or FILE) event by event, checking every invariant.

    The timeline is first appended to the log (--db, idempotent: a rerun appends nothing), then
    replayed from the log. Without TIMELINE, the stored log is replayed. Prints a step table and
    the first breach of each invariant; exit status 1 if a (--fail-on) invariant broke. Replay
    reads the payloads as stored: with --verify (or --checkpoint) the log is first proved intact.
    With --follow it keeps watching the log as other writers append (a live monitor).
    """
    import attrs

    import replays
    from ledger import report
    from ledger.errors import InputError
    from ledger.policy import Policy
    from ledger.replay import Replay
    from ledger.store import Checkpoint, open_log

    if (verify_first or checkpoints) and no_record:
        raise InputError("--verify/--checkpoint check the log; --no-record replays without one")
    if follow and no_record:
        raise InputError("--follow watches the log; --no-record replays without one")
    if follow and fmt == "json":
        raise InputError("--follow streams: use --format text or jsonl, not json")
    if not follow and (to_seq is not None or idle_timeout is not None):
        raise InputError("--to-seq and --idle-timeout go with --follow")
    cps = [Checkpoint.read(path) for path in checkpoints]
    policy = Policy.from_toml(policy_file) if policy_file else Policy()
    stop = _instant(until, "--until", end=True)
    log = None
    title = ""
    try:
        if timeline is not None:
            loaded = replays.load_timeline(timeline)
            loaded.check()
            title = f"{loaded.name}: {loaded.title}" if loaded.title else loaded.name
            if policy_file is None and loaded.quote != policy.quote:
                policy = Policy(quote=loaded.quote)
            if no_record:
                source: object = loaded
            else:
                log = open_log(db, create=True)
                _check_prefix(log, loaded)
                result = log.append(loaded.events, where=loaded.where)
                if log.meta("quote") is None:
                    log.set_meta("quote", loaded.quote)
                if fmt == "text":
                    click.echo(f"{db}: {result}")
                source = log
        else:
            log = open_log(db, readonly=True)
            title = db
            source = log
            if policy_file is None:
                policy = _policy(None, log)
        if log is not None and (verify_first or cps):
            with reporter(quiet) as progress:
                walking = progress.task("verifying the log", log.head().seq)
                checked = log.verify(cps, progress=lambda seq: progress.update(walking, seq))
            if fmt == "text":
                click.echo(
                    f"{db}: verified, {checked.events_checked} events, head {checked.head.hash_hex}"
                    + (f", {checked.checkpoints_matched} checkpoint(s) matched" if cps else "")
                )
        if follow:
            assert log is not None
            source = log.follow(to_seq=to_seq, poll=poll, idle_timeout=idle_timeout)
        run = Replay(source, policy, until=stop, extra_invariants=load_invariants(extra))
        _check_fail_on(fail_on, run)
        with _stopped_by_signals(source):
            _render(run, fmt=fmt, steps=steps, title=title, total=_length(source), quiet=quiet, follow=follow)
        summary = run.summary
        if log is not None:
            cp = log.checkpoint()
            verified = bool(verify_first or cps)
            if fmt == "text":
                click.echo(_head_line(cp, verified=verified))
            elif fmt == "jsonl":
                click.echo(report.dumps({"kind": "checkpoint", **attrs.asdict(cp), "verified": verified}))
    finally:
        if log is not None:
            log.close()
    if summary.broke(fail_on or None):
        sys.exit(EXIT_BREACH)


def _head_line(cp: Checkpoint, *, verified: bool) -> str:
    """The head as a checkpoint to keep, saying whether the log was proved intact first: an
    unverified head is a statement of what was read, not an endorsement of it."""
    if verified:
        return f"Checkpoint (the log verified): {cp.to_json()}"
    return (
        f"Head, not verified (prove the log with --verify or 'bankrun verify'): {cp.to_json()}"
    )


@contextlib.contextmanager
def _stopped_by_signals(source: object) -> Iterator[None]:
    """While following a log, Ctrl-C and SIGTERM end the stream (the summary still prints)."""
    from ledger.store import Following

    if not isinstance(source, Following):
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: source.stop())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_fail_on(fail_on: tuple[str, ...], run: Replay) -> None:
    from ledger.errors import InputError

    known = [inv.name for inv in run.invariants]
    unknown = sorted(set(fail_on) - set(known))
    if unknown:
        raise InputError(f"--fail-on: unknown invariant {unknown[0]!r} (checked: {', '.join(known)})")


def _length(source: object) -> int | None:
    import replays
    from ledger.store import EventLog

    if isinstance(source, replays.Timeline):
        return len(source.events)
    if isinstance(source, EventLog):
        return source.head().seq
    return None


def _render(
    run: Replay, *, fmt: str, steps: str | None, title: str, total: int | None, quiet: bool = False, follow: bool = False
) -> None:
    """Print a replay in ``fmt``, with a progress bar on stderr when it is a terminal. When
    standard output is that terminal too, the output waits for the bar to end (a bar and rows
    written at once tear each other); a live monitor (--follow) has no bar and never waits."""
    from ledger import report, tables

    progress = reporter(quiet or follow)
    if fmt == "text" and steps == "none" and not progress.active:
        # No step is printed: Replay.run gives the summary (on the fast core where it covers
        # the history) and gathers the notices and subjects the summary shows; the same text.
        click.echo(f"Replay of {title} (quote {run.policy.quote})")  # first: a live monitor shows it
        heard = report.Heard()
        run.run(heard=heard)
        for line in report.summary_text(
            run.summary, title=title, quote=run.policy.quote, terminal=tables.is_terminal(), heard=heard
        ):
            click.echo(line)
        return
    waiting = progress.active and tables.is_terminal()
    held: list[str] = []
    with progress:
        for line in _replay_lines(run, counted(run, progress, "replaying", total), fmt=fmt, steps=steps, title=title, total=total):
            if waiting:
                held.append(line)
            else:
                click.echo(line)
    for line in held:
        click.echo(line)


def _replay_lines(run: Replay, stepped: Iterator[Any], *, fmt: str, steps: str | None, title: str, total: int | None) -> Iterator[str]:
    from ledger import report, tables

    if fmt == "jsonl":
        for step in stepped:
            yield report.dumps({"kind": "step", **step.to_dict()})
        yield report.dumps({"kind": "summary", "format": report.REPORT_FORMAT, **run.summary.to_dict()})
        return
    if fmt == "json":
        collected = [step.to_dict() for step in stepped]
        yield report.dumps(
            {
                "format": report.REPORT_FORMAT,
                "title": title,
                "policy": _policy_dict(run.policy),
                "steps": collected,
                "summary": run.summary.to_dict(),
            }
        )
        return
    yield f"Replay of {title} (quote {run.policy.quote})"
    if steps is None:
        steps = "changes" if total is not None and total > LARGE_LOG else "all"
        if steps == "changes":
            yield (
                f"{total:,} events: showing only the steps that open or close a breach "
                "(--steps all shows every one, --steps none only the summary)"
            )
    table = tables.Stream(report.step_columns(total, run.policy.quote))
    if steps != "none":
        yield table.header()
    heard = report.Heard()
    for step in stepped:
        heard.add(step)
        if steps == "all" or (steps == "changes" and (step.opened or step.closed or step.skipped)):
            yield table.row(report.step_cells(step))
    yield from report.summary_text(
        run.summary, title=title, quote=run.policy.quote, terminal=tables.is_terminal(), heard=heard
    )


def _policy_dict(policy: Policy) -> dict[str, object]:
    return {
        "quote": policy.quote,
        "min_reserve_ratio": policy.min_reserve_ratio,
        "min_collateral_coverage": policy.min_collateral_coverage,
        "max_own_token_share": policy.max_own_token_share,
        "max_related_party_exposure": policy.max_related_party_exposure,
        "haircuts": dict(policy.haircuts),
        "enforce": sorted(policy.enforce),
        "disabled": sorted(policy.disabled),
    }


@cli.command()
@db_option
@policy_option
@format_option("text", "json", "jsonl")
@fail_on_option
@invariant_option
@quiet_option
@handle_errors
def check(db: str, policy_file: str | None, fmt: str, fail_on: tuple[str, ...], extra: tuple[str, ...], quiet: bool) -> None:
    """Run every invariant over the stored log; print the first breach of each.

    Exit status 1 if a (--fail-on) invariant broke at any point.
    """
    import attrs

    from ledger import report
    from ledger.replay import Replay
    from ledger.store import open_log

    with open_log(db, readonly=True) as log:
        run = Replay(log, _policy(policy_file, log), extra_invariants=load_invariants(extra))
        _check_fail_on(fail_on, run)
        if fmt == "text":
            _render(run, fmt="text", steps="none", title=db, total=log.head().seq, quiet=quiet)
            click.echo(_head_line(log.checkpoint(), verified=False))
        elif fmt == "jsonl":
            _render(run, fmt="jsonl", steps="all", title=db, total=log.head().seq, quiet=quiet)
            click.echo(report.dumps({"kind": "checkpoint", **attrs.asdict(log.checkpoint()), "verified": False}))
        else:
            with reporter(quiet) as progress:
                if progress.active:
                    for _ in counted(run, progress, "checking", log.head().seq):
                        pass
                else:
                    run.run()  # no Step values built
            click.echo(report.dumps({"format": report.REPORT_FORMAT, **run.summary.to_dict()}))
    if run.summary.broke(fail_on or None):
        sys.exit(EXIT_BREACH)


@cli.command()
@db_option
@click.option("--timeline", default=None, help="Read a timeline (NAME or FILE) instead of the database.")
@click.option("--entity", default=None, help="Only this entity.")
@click.option("--at", "at", default=None, help="As of this effective time (an instant; a date or month: its start, 00:00 UTC).")
@click.option("--seq", type=int, default=None, help="As of this seq.")
@click.option("--recorded", default=None, help="As the log knew it at this record time (same forms as --at).")
@policy_option
@format_option("text", "json", "csv")
@handle_errors
def balances(db: str, timeline: str | None, entity: str | None, at: str | None, seq: int | None, recorded: str | None, policy_file: str | None, fmt: str) -> None:
    """Print the books at a point: balances, balance sheets, coverage, loans.

    Uses stored snapshots (see `bankrun snapshot`) so that any point costs at most K events.
    """
    import events as ev
    import replays
    from ledger import report, tables
    from ledger.errors import InputError
    from ledger.policy import Policy
    from ledger.replay import books_at
    from ledger.store import open_log

    when = _instant(at, "--at")
    known = _instant(recorded, "--recorded")
    if timeline is not None:
        if known is not None:
            raise InputError("--recorded needs a database (a timeline file has no record times)")
        if when is not None and seq is not None:
            raise InputError("name one point: --at, --seq or --recorded")
        loaded = replays.load_timeline(timeline)
        policy = Policy.from_toml(policy_file) if policy_file else Policy(quote=loaded.quote)
        books = books_at(loaded, policy=policy, seq=seq, at=when)
    else:
        with open_log(db, readonly=True) as log, _investigation(log, _policy(policy_file, log)) as inv:
            books = inv.as_of(seq=seq, at=when, recorded=known)
            for warning in inv.warnings:
                click.echo(f"warning: {warning}", err=True)
    if entity is not None and entity not in books.registry.entities:
        raise InputError(f"--entity: unknown entity {entity!r} (known: {', '.join(sorted(books.registry.entities))})")
    if fmt == "json":
        click.echo(report.dumps(report.books_dict(books, entity=entity)))
        return
    if fmt == "csv":
        report.write_rows(report.balance_rows(books, entity=entity), sys.stdout, "csv", columns=report.BALANCE_CSV_COLUMNS)
        return
    click.echo(f"Books at seq {books.last_seq} ({ev.format_instant(books.last_at) if books.last_at else 'empty'}), values in {books.quote}")
    for line in report.balances_text(books, entity=entity, terminal=tables.is_terminal()):
        click.echo(line)


@cli.command(name="copy")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@checkpoint_option
@handle_errors
def copy_(source: str, destination: str, checkpoints: tuple[str, ...]) -> None:
    """Copy the log SRC to DST (each an SQLite file or a postgresql:// URL), every hash kept.

    SRC is verified first (exit 3 if it does not verify) and only read. DST is created if
    missing, keeps SRC's ledger_id, and verifies against SRC's checkpoints; an existing DST
    must be a prefix of SRC (an interrupted copy resumes). Rows go over in chunks of 5,000.
    """
    from ledger.store import Checkpoint
    from ledger.store.copy import copy_log

    cps = tuple(Checkpoint.read(path) for path in checkpoints)
    result = copy_log(source, destination, checkpoints=cps)
    click.echo(f"{_display(destination)}: {result}")


def _display(location: str) -> str:
    from ledger.store import is_url

    if is_url(location):
        from ledger.store.postgres import redact

        return redact(location)
    return location


def reference_markdown() -> str:
    """The CLI reference (docs/cli.md), generated from every command's --help."""
    lines = ["# CLI reference", "", "Generated from `--help` by `bankrun cli-reference`; a test keeps it current.", ""]
    settings: dict[str, Any] = {"terminal_width": 100, "max_content_width": 100, "help_option_names": ["-h", "--help"]}
    ctx = click.Context(cli, info_name=PROG, **settings)
    lines += ["```", cli.get_help(ctx), "```", ""]

    def sections(group: click.Group, parent: click.Context, path: str) -> None:
        # Each command's help exactly as `--help` prints it (info_name is the command's own
        # name: its parents' names come from the context chain), groups' subcommands too.
        for name in sorted(group.list_commands(parent)):
            command = group.get_command(parent, name)
            if command is None or command.hidden:
                continue
            sub = click.Context(command, info_name=name, parent=parent, **settings)
            lines.extend([f"## {path} {name}", "", "```", command.get_help(sub), "```", ""])
            if isinstance(command, click.Group):
                sections(command, sub, f"{path} {name}")

    sections(cli, ctx, PROG)
    return "\n".join(lines)


@cli.command(name="cli-reference", hidden=True)
def cli_reference() -> None:
    """Print the CLI reference in Markdown (docs/cli.md)."""
    click.echo(reference_markdown(), nl=False)


def main() -> None:
    """The console script: the CLI, then a last flush of what it printed, so that a full disk
    or a closed pipe ends with one line (or silently) and an exit status, never a traceback."""
    code: int | str | None = 0
    try:
        cli(prog_name=PROG)
    except SystemExit as exc:
        code = exc.code
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _closed_pipe()
    except OSError as exc:
        with contextlib.suppress(OSError):
            click.echo(f"Error: {_output_problem(exc)}", err=True)
        code = EXIT_OUTPUT
        with contextlib.suppress(OSError, ValueError):  # nothing more to flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)
