"""``bankrun report``: the thin click layer over :func:`ledger.html.build_report`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

import replays
from ledger.cli_options import db_option, policy_option
from ledger.errors import InputError
from ledger.policy import Policy
from ledger.store import open_log
from ledger.store.contract import EventLog


def _say(text: str) -> None:
    click.echo(f"report: {text}", err=True)


@click.command(name="report")
@click.argument("timeline", required=False)
@db_option
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write (one self-contained page).",
)
@click.option(
    "--no-record",
    is_flag=True,
    help="Replay the timeline in memory; write nothing to the database.",
)
@policy_option
@click.option(
    "--sources",
    "sources_from",
    default=None,
    metavar="NAME|FILE",
    help="With a stored log: resolve its citation keys from this timeline (default: the bundled "
    "timeline the log starts with, if any).",
)
@click.option(
    "--verify/--no-verify",
    "verify_first",
    default=True,
    show_default=True,
    help="Verify the log (hash chain, every payload) first; exit 3 if it does not verify.",
)
@click.option(
    "--frontier",
    "frontiers",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Also draw a stress grid's frontier: the JSON of `bankrun stress --grid --format json` (repeatable).",
)
def report(
    timeline: str | None,
    db: str,
    output: str,
    no_record: bool,
    policy_file: str | None,
    sources_from: str | None,
    verify_first: bool,
    frontiers: tuple[str, ...] = (),
) -> None:
    """Write a replay report: one HTML page with charts, the breaches and their sources.

    Replays a timeline (bundled NAME or FILE; appended to the log first, as `bankrun replay`
    does, unless --no-record) or, without TIMELINE, the stored log. The page inlines
    everything (charts, data, script) and opens from disk with no network. Needs the report
    extra: pip install 'ftx-ledger[report]'. Progress goes to stderr. Exit status 0 when the
    page was written, whatever broke in the history.
    """
    from ledger import cli as ledger_cli  # imported here: ledger.cli registers this command

    ledger_cli.handle_errors(_report)(
        timeline, db, output, no_record, policy_file, sources_from, verify_first, frontiers
    )


def _report(
    timeline: str | None,
    db: str,
    output: str,
    no_record: bool,
    policy_file: str | None,
    sources_from: str | None,
    verify_first: bool,
    frontiers: tuple[str, ...] = (),
) -> None:
    from ledger import cli as ledger_cli
    from ledger.html import build_report, matching_timeline

    try:
        import vl_convert  # noqa: F401
    except ImportError:
        raise InputError(
            "bankrun report needs the report extra (vl-convert-python): pip install 'ftx-ledger[report]'"
        ) from None
    if timeline is not None and sources_from is not None:
        raise InputError(
            "--sources goes with a stored log (--db); a timeline's own [sources] are used"
        )
    if no_record and timeline is None:
        raise InputError("--no-record replays a TIMELINE in memory; name one")
    policy = Policy.from_toml(policy_file) if policy_file else None
    grids = [_frontier(path) for path in frontiers]
    log: EventLog | None = None
    source: Any
    try:
        if timeline is not None:
            loaded = replays.load_timeline(timeline)
            loaded.check()
            title = f"{loaded.name}: {loaded.title}" if loaded.title else loaded.name
            policy = policy or Policy(quote=loaded.quote)
            sources = dict(loaded.sources)
            note = (
                f"Citation keys resolved from the timeline file's [sources] ({Path(loaded.path).name}); "
                "every key any event cites is listed with the number of events citing it."
            )
            if no_record:
                source = loaded
            else:
                log = open_log(db, create=True)
                ledger_cli._check_prefix(log, loaded)
                result = log.append(loaded.events, where=loaded.where)
                if log.meta("quote") is None:
                    log.set_meta("quote", loaded.quote)
                _say(f"{db}: {result}")
                source = log
        else:
            log = open_log(db, readonly=True)
            source = log
            policy = policy or ledger_cli._policy(None, log)
            title = db
            if sources_from is not None:
                given = replays.load_timeline(sources_from)
                sources = dict(given.sources)
                note = (
                    f"The log stores only citation keys; they are resolved from {given.name} "
                    f"({Path(given.path).name}), given with --sources."
                )
            else:
                matched = matching_timeline(log)
                if matched is not None:
                    sources = dict(matched.sources)
                    title = f"{db}: {matched.name}: {matched.title}"
                    note = (
                        f"The log stores only citation keys; they are resolved from the bundled timeline "
                        f"{matched.name}, whose events are the log's first events (compared byte for byte). "
                        "Use --sources NAME|FILE to name another."
                    )
                else:
                    sources = {}
                    note = (
                        "The log stores only citation keys, and no bundled timeline matches its first events: "
                        "pass --sources NAME|FILE (the timeline the log was written from) to resolve them."
                    )
        verified: bool | None = None
        checked = 0
        if log is not None and verify_first:
            _say(f"verifying {db}")
            checked = (
                log.verify().events_checked
            )  # raises VerificationError: exit 3, nothing written
            verified = True
        page = build_report(
            source,
            policy=policy,
            title=title,
            log=log,
            verified=verified,
            events_checked=checked,
            sources=sources,
            sources_note=note,
            progress=_say,
            frontiers=grids,
        )
    finally:
        if log is not None:
            log.close()
    data = page.encode("utf-8")
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _say(f"wrote {output} ({len(data) / 1_000_000:.1f} MB)")
    sys.stdout.flush()


def _frontier(path: str) -> dict[str, Any]:
    """A stress grid's JSON (``bankrun stress --grid --format json``), checked for its keys."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            grid = json.load(handle)
    except OSError as exc:
        raise InputError(f"--frontier {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise InputError(f"--frontier {path}: not JSON ({exc})") from None
    needed = ("x", "y", "xs", "ys", "units", "cells", "frontier", "invariants", "at")
    if not isinstance(grid, dict) or any(key not in grid for key in needed):
        raise InputError(f"--frontier {path}: not the JSON of 'bankrun stress --grid --format json'")
    return grid
