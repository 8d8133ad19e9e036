"""``bankrun whatif`` and ``bankrun stress``: a thin click layer over :mod:`ledger.scenarios`.

Exit status: 0 success (whatever the scenario or the search found); 2 bad input or usage;
4 an output that cannot be written.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import events as ev
from ledger.cli_options import format_option, policy_option
from ledger.errors import InputError
from ledger.policy import Policy
from ledger.scenarios._engine import History, load_history
from ledger.scenarios._format import parse_duration, parse_fraction
from ledger.scenarios._stress import (
    GridResult,
    StressResult,
    dask_executor,
    grid,
    local_executor,
    parse_shock,
    stress,
)
from ledger.scenarios._whatif import WhatIf, whatif
from ledger.when import parse_when


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``bankrun`` command's error handling, looked up when the command runs (``ledger.cli``
    imports this module)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ledger.cli import handle_errors

        return handle_errors(func)(*args, **kwargs)

    return wrapper


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def _base_policy(policy_file: str | None, history_quote: str | None = None) -> Policy | None:
    return Policy.from_toml(policy_file) if policy_file else None


# -- whatif --------------------------------------------------------------------------------------
@click.command(name="whatif")
@click.argument("scenario", type=click.Path(dir_okay=False))
@policy_option
@format_option("text", "json")
@_handle_errors
def whatif_command(scenario: str, policy_file: str | None, fmt: str) -> None:
    """Replay a SCENARIO file's derived history and compare it with its base.

    The scenario (TOML, docs/scenarios.md) forks a base history (a bundled name, a timeline
    file or a stored log) at a seq or a time and changes what follows: prices, withdrawal
    waves, events removed or replaced, the policy. The fork starts from the books at the fork
    point. Prints the first breaches side by side, what opened or closed differently after the
    fork, the events refused (enforce), the shortfall at the end and both digests. --policy is
    the base's policy; the scenario's [policy] changes it for the derived world.
    """
    result = whatif(scenario, policy=_base_policy(policy_file))
    if fmt == "json":
        click.echo(_dumps(result.to_dict()))
        return
    for line in whatif_text(result):
        click.echo(line)


def _when(at: str) -> str:
    return at


def _first(v: Any) -> str:
    if v is None:
        return "held throughout"
    return f"seq {v.seq} {v.at} {v.event_id} ({v.subject}, {v.observed})"


def _money(text: str | None) -> str:
    if text is None or text == "":
        return "-"
    try:
        return f"{Decimal(text):,f}"
    except ArithmeticError:
        return text


def whatif_text(result: WhatIf) -> list[str]:
    """The text report of :func:`whatif`."""
    s = result.scenario
    out = [f"What if: {s.title or s.name} (scenario {s.name}, {s.path})"]
    out.append(
        f"Base {result.history}: {result.base.events} events; fork after seq {result.fork_seq} ({result.fork_at})"
    )
    if s.policy:
        out.append(
            "Policy changed for the derived world: "
            + ", ".join(f"{k} = {v}" for k, v in s.policy.items())
        )
    changes = []
    changes += [f"prices of {p.asset}" for p in s.prices]
    changes += [f"a withdrawal wave of {w.total:,f} at {w.venue}" for w in s.waves]
    if s.remove:
        changes.append(f"{len(s.remove)} event(s) removed")
    if s.replace:
        changes.append(f"{len(s.replace)} event(s) replaced")
    if changes:
        out.append("Changes: " + "; ".join(changes))
    out.append("")
    width = max(len(n) for n in result.invariants) + 2
    out.append(f"{'first breach':<{width}}  base | derived")
    for name in result.invariants:
        b = result.base.first_breaches.get(name)
        d = result.derived.first_breaches.get(name)
        mark = " " if (b and (b.event_id, b.subject)) == (d and (d.event_id, d.subject)) else "*"
        out.append(f"{mark} {name:<{width - 2}}  {_first(b)}")
        out.append(f"  {'':<{width - 2}}  {_first(d)}")
    out.append("(* another event or subject; the derived history's seqs count its own events)")
    out.append("")
    counts = [
        f"{n} {result.base.breach_counts.get(n, 0)} -> {result.derived.breach_counts.get(n, 0)}"
        for n in result.invariants
        if result.base.breach_counts.get(n, 0) != result.derived.breach_counts.get(n, 0)
    ]
    out.append("Breaches opened, base -> derived: " + (", ".join(counts) if counts else "the same"))
    for label, rows in (
        ("only in the base", result.only_in_base),
        ("only in the derived history", result.only_in_derived),
    ):
        out.append(f"After the fork, {label}: {len(rows)}")
        for kind, inv, subject, event_id, at in rows:
            out.append(f"  {at}  {kind:<6} {inv}({subject})  at {event_id}")
    if result.derived.skipped:
        out.append(
            f"Refused in the derived world (enforce): {len(result.derived.skipped)} event(s)"
        )
        for _seq, event_id, reason in result.derived.skipped:
            out.append(f"  {event_id}: {reason}")
    out.append("")
    bm, dm = result.base.final_metrics, result.derived.final_metrics
    venue = bm.get("venue") or dm.get("venue")
    if venue:
        quote = result.policy.get("quote", "")
        out.append(f"At the end ({venue}, {quote}):    base | derived")
        for key, label in (
            ("customer_liabilities", "owed to customers"),
            ("custody", "held in custody"),
            ("shortfall", "shortfall"),
        ):
            out.append(f"  {label:<18} {_money(bm.get(key))} | {_money(dm.get(key))}")
    still = [f"{v.invariant}({v.subject})" for v in result.derived.still_open]
    out.append(
        f"Still open at the end: base {len(result.base.still_open)}, derived {len(result.derived.still_open)}"
        + (f": {', '.join(still)}" if still else "")
    )
    out.append(f"Digest, base:    {result.base.digest}")
    out.append(f"Digest, derived: {result.derived.digest}")
    return out


# -- stress --------------------------------------------------------------------------------------
_GRID = re.compile(r"^(\d+)[xX](\d+)$")


@click.command(name="stress")
@click.argument("source", metavar="NAME|FILE")
@click.option(
    "--at",
    "at",
    required=True,
    help="Shock from this instant (a date: its start, 00:00 UTC); the fork point.",
)
@click.option(
    "--until",
    default=None,
    help="Look for the breach up to this time (a date: its end). Default: the end of the history.",
)
@click.option(
    "--shock",
    "shocks",
    multiple=True,
    required=True,
    metavar="price:ASSET|withdrawals:VENUE[/ASSET][=LO:HI]",
    help="What to vary: a fall of ASSET's price from --at on (a fraction: 0.35 = -35%), or a withdrawal "
    "wave at VENUE (its total, in ASSET: default the venue's largest customer claim). Twice with --grid.",
)
@click.option(
    "--invariant",
    "invariants",
    multiple=True,
    required=True,
    metavar="NAME",
    help="The invariant to break (repeatable: any of them).",
)
@click.option(
    "--subject",
    "subjects",
    multiple=True,
    help="Only this subject of the invariant(s) (a loan, an account, ftx/USDC...; repeatable).",
)
@click.option(
    "--tolerance",
    default=None,
    help="Stop when the bracket is this narrow (an exact decimal). Default: a millionth of the range.",
)
@click.option(
    "--steps", type=int, default=20, show_default=True, help="At most this many bisection steps."
)
@click.option(
    "--scan",
    type=int,
    default=5,
    show_default=True,
    help="Sizes tried first, evenly over the range, to check monotonicity (with --grid: a SCAN x SCAN lattice of cells).",
)
@click.option("--window", default="1h", show_default=True, help="A wave's duration (30m, 6h, 2d).")
@click.option(
    "--parts", type=int, default=10, show_default=True, help="A wave's number of requests."
)
@click.option(
    "--grid",
    "grid_size",
    default=None,
    metavar="NxM",
    help="Map two shocks on an N x M grid: the frontier.",
)
@click.option(
    "--full",
    is_flag=True,
    help="With --grid: replay every cell (default: search the frontier, inferring the cells not replayed from monotonicity).",
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="Worker processes (default: one per core for a grid, none for a search); with --dask, the cells a grid search replays at once.",
)
@click.option(
    "--dask",
    "dask_address",
    default=None,
    metavar="ADDRESS",
    help="Run the trials on a Dask distributed cluster (tcp://host:8786).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --grid: write the frontier as an HTML page (the report's chart).",
)
@click.option(
    "--log",
    "is_log",
    is_flag=True,
    help="SOURCE is a stored log (an SQLite file or a postgresql:// URL).",
)
@policy_option
@format_option("text", "json")
@_handle_errors
def stress_command(
    source: str,
    at: str,
    until: str | None,
    shocks: tuple[str, ...],
    invariants: tuple[str, ...],
    subjects: tuple[str, ...],
    tolerance: str | None,
    steps: int,
    scan: int,
    window: str,
    parts: int,
    grid_size: str | None,
    full: bool,
    jobs: int | None,
    dask_address: str | None,
    html_path: str | None,
    is_log: bool,
    policy_file: str | None,
    fmt: str,
) -> None:
    """Reverse stress test: the smallest shock at which an invariant breaks at or after --at.

    Forks the history NAME|FILE at --at (the books and open violations there, once), applies
    the shock from that instant and replays to the first breach (or --until). Bisection where
    the response is monotone (checked on a scan first); where it is not, says so and scans.
    Prints the breaking shock, the breaking value (the price, or the wave's total), the event
    where it breaks and the margin in the base history. When the base already breaks, a price
    is searched upwards: the rise at which the invariant would hold.

    With --grid NxM and two --shock options, prints the frontier: per size of the first shock,
    the smallest size of the second that breaks (trials through a process pool, or a Dask
    cluster with --dask). By default the frontier is searched where both shocks are monotone
    (a larger shock never mends a breach): a --scan x --scan lattice checks it, every replayed
    cell is checked against it, the other cells are inferred and marked so; any contradiction,
    and every cell is replayed. --full replays every cell.
    """
    subject = ",".join(subjects) or None
    start = parse_when(at, "--at")
    end = parse_when(until, "--until", end=True) if until else None
    assert start is not None
    try:
        window_s = parse_duration(window, "--window")
    except ev.EventValueError as exc:
        raise InputError(str(exc)) from None
    if not 1 <= parts <= 10_000:
        raise InputError("--parts: from 1 to 10000")
    parsed = [parse_shock(text) for text in shocks]
    parsed = [s if s.kind == "price" else _with(s, window_s, parts) for s in parsed]
    tol = None
    if tolerance is not None:
        try:
            tol = parse_fraction(tolerance, "--tolerance")
        except ev.EventValueError as exc:
            raise InputError(str(exc)) from None
        if tol <= 0:
            raise InputError("--tolerance: must be > 0")
    history = _history(source, is_log, policy_file)
    executor = None
    if dask_address:
        executor = dask_executor(dask_address)
    elif (jobs or 0) > 1 or (grid_size and jobs is None and (os.cpu_count() or 1) > 1):
        executor = local_executor(jobs or os.cpu_count() or 1)
    try:
        if grid_size is not None:
            match = _GRID.match(grid_size)
            if not match:
                raise InputError(f"--grid {grid_size!r}: write NxM, e.g. 20x20")
            if len(parsed) != 2:
                raise InputError(
                    "--grid: give two --shock options (the first is the rows, the second the columns)"
                )
            result = grid(
                history,
                at=start,
                until=end,
                shocks=(parsed[0], parsed[1]),
                invariants=invariants,
                subject=subject,
                size=(int(match[1]), int(match[2])),
                executor=executor,
                chunks=4 * (jobs or os.cpu_count() or 1),
                method="scan" if full else "search",
                jobs=jobs or os.cpu_count() or 1,
                check=max(2, scan),
            )
            if html_path:
                from ledger.html.frontier import frontier_page

                Path(html_path).write_text(
                    frontier_page(result, title=f"{history.name}: {result.x} x {result.y}"),
                    encoding="utf-8",
                )
            if fmt == "json":
                click.echo(_dumps(result.to_dict()))
            else:
                for line in grid_text(result, history):
                    click.echo(line)
                if html_path:
                    click.echo(f"Frontier chart: {html_path}")
            return
        if len(parsed) != 1:
            raise InputError("--shock: one shock for a search (two with --grid)")
        if html_path:
            raise InputError("--html: only with --grid")
        if full:
            raise InputError("--full: only with --grid")
        found = stress(
            history,
            at=start,
            until=end,
            shock=parsed[0],
            invariants=invariants,
            subject=subject,
            tolerance=tol,
            steps=steps,
            scan=scan,
            executor=executor,
        )
        if fmt == "json":
            click.echo(_dumps(found.to_dict()))
        else:
            for line in stress_text(found, history):
                click.echo(line)
    finally:
        if executor is not None:
            executor.shutdown()


def _with(shock: Any, window: int, parts: int) -> Any:
    import attrs

    return attrs.evolve(shock, window=window, parts=parts)


def _history(source: str, is_log: bool, policy_file: str | None) -> History:
    policy = Policy.from_toml(policy_file) if policy_file else None
    return load_history(source, log=is_log, policy=policy)


def _pct(value: Decimal) -> str:
    return f"{(value * 100).normalize():f}%"


def _size(
    result: StressResult | GridResult, shock: str, value: Decimal | None, direction: str = "fall"
) -> str:
    if value is None:
        return "-"
    if shock.startswith("price:"):
        sign = "" if value == 0 else "+" if direction == "rise" else "-"
        return f"{sign}{_pct(value)}"
    return f"{value:,f}"


def _breach(b: Any) -> str:
    text = f"seq {b.seq} {b.at} {b.event_id}: {b.invariant}({b.subject}) observed {b.observed}"
    return text + (f", price {b.price}" if b.price else "")


def stress_text(r: StressResult, history: History) -> list[str]:
    """The text report of :func:`stress`."""
    what = ", ".join(r.invariants) + (f" ({r.subject})" if r.subject else "")
    window = f"from {r.at}" + (f" to {r.until}" if r.until else " to the end")
    out = [f"Stress test of {history.name}: {r.shock} against {what}, {window}"]
    out.append(
        "Base (no shock): " + (f"breaks at {_breach(r.base_breach)}" if r.base_breach else "holds")
    )
    method = {
        "bisection": f"bisection, {r.steps} step(s), monotone on a {len(r.trials) - r.steps}-size scan",
        "scan": "scan"
        + ("" if r.monotone else ": NOT MONOTONE (a breach below a size that holds); scanned"),
        "none": "none needed",
    }[r.method]
    out.append(
        f"Search over {_size(r, r.shock, r.lo, r.direction)} .. {_size(r, r.shock, r.hi, r.direction)}: {method}; tolerance {r.tolerance}; {r.seconds:.2f} s"
    )
    if r.direction == "wave" and r.base_breach is not None:
        out.append("It breaks without any wave: the largest wave survived is 0.")
    elif r.found is None:
        out.append(
            f"It holds over the whole range (up to {_size(r, r.shock, r.held, r.direction)})."
        )
    elif r.direction == "rise":
        out.append(
            f"It breaks in the base; it holds from a rise of {_size(r, r.shock, r.found, 'rise')} of every price from {r.at} on"
            + (
                f" (still breaks at {_size(r, r.shock, r.held, 'rise')})."
                if r.held is not None
                else "."
            )
        )
        if r.breach is not None:
            out.append(
                f"Breaking value: {r.breach.price} (the price at the breaking event), at {_breach(r.breach)}"
            )
    else:
        out.append(
            f"Smallest breaking shock: {_size(r, r.shock, r.found)} (holds at {_size(r, r.shock, r.held)})"
        )
        out.append(f"Breaking value: {r.breaking_value}")
        if r.breach is not None:
            out.append(f"Where it breaks: {_breach(r.breach)}")
        if r.shock.startswith("price:") and r.margin is not None:
            out.append(
                f"Margin in the base: the price can fall {_pct(r.margin)} from {r.at} before it breaks"
            )
        elif r.held is not None:
            out.append(f"Margin in the base: the largest wave survived is {r.held:,f}")
    return out


def grid_text(r: GridResult, history: History) -> list[str]:
    """The frontier of :func:`grid` as a table."""
    what = ", ".join(r.invariants) + (f" ({r.subject})" if r.subject else "")
    out = [
        f"Grid on {history.name}: {r.x} x {r.y} against {what}, from {r.at}"
        + (f" to {r.until}" if r.until else ""),
        f"{len(r.xs)} x {len(r.ys)} = {len(r.xs) * len(r.ys)} cells, {r.runs} replayed in {r.seconds:.2f} s; "
        + _method(r),
        "",
        f"{r.x:>16}  smallest {r.y} that breaks   where",
    ]
    for x, y, row, mono in zip(r.xs, r.frontier, r.cells, r.monotone, strict=True):
        where = next((c for c in row if c is not None), None) if y is not None else None
        cell = _size(r, r.y, y) if y is not None else "holds throughout"
        note = "" if mono else "  (not monotone in this row)"
        out.append(
            f"{_size(r, r.x, x):>16}  {cell:>30}   {where.event_id + ' ' + where.at if where else ''}{note}"
        )
    return out


def _method(r: GridResult) -> str:
    if r.method == "search":
        return "the rest inferred from monotonicity (checked on every replayed cell)"
    if r.contradiction is not None:
        i, j = r.contradiction
        return (
            f"NOT MONOTONE (holds at {_size(r, r.x, r.xs[i])}, {_size(r, r.y, r.ys[j])} although a smaller shock broke): "
            "every cell replayed"
        )
    return "every cell replayed"
