"""Reverse stress tests: the smallest shock at which an invariant breaks, and a grid of two.

A trial forks the base at ``at`` (the books and open violations there, computed once), applies
the shock from that instant, and replays until the first breach of the watched invariant(s)
or ``until``. :func:`stress` first scans a few sizes to check that the response is monotone
(no breach below some size, a breach at and above it), then bisects; where it is not, it says
so and scans. :func:`grid` runs every cell of a two-shock grid, in chunks, through any
``concurrent.futures.Executor`` (a process pool here; a Dask cluster's ``client.get_executor()``
the same way).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

import events as ev
from events import Event
from ledger.errors import InputError
from ledger.invariants import STANDARD_NAMES
from ledger.policy import Policy
from ledger.scenarios._engine import (
    Breach,
    Changes,
    ForkPoint,
    History,
    Watch,
    WaveRefs,
    derive,
    fork_index,
    prepare,
    replay_fork,
    wave_refs,
)
from ledger.scenarios._format import PriceChange, Wave, parse_fraction

SCALE_PLACES = Decimal(1).scaleb(-12)
_SHOCK = re.compile(r"^(?P<kind>price|withdrawals):(?P<target>[^=]+?)(?:=(?P<lo>[^:]+):(?P<hi>.+))?$")


@attrs.frozen
class Shock:
    """A shock of one size parameter.

    ``price:ASSET``: the size is a fall of the asset's price from ``at`` on, as a fraction
    (0.35 = every price from then on 35% lower), default range 0 to 0.99; with
    ``direction = "rise"`` a rise (1.5 = +150%), default range 0 to 9.
    ``withdrawals:VENUE``: the size is a withdrawal wave's total, in the asset of the venue's
    largest customer claim (``docs/scenarios.md``), spread over ``window`` seconds in ``parts``
    requests from ``at``; default range 0 to what that account is owed at the fork.
    """

    kind: str
    target: str
    lo: Decimal | None = None
    hi: Decimal | None = None
    direction: str = "fall"
    window: int = 3600
    parts: int = 10
    asset: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.target}" + (f"/{self.asset}" if self.asset else "")


def parse_shock(text: str) -> Shock:
    """``price:FTT``, ``price:FTT=0:0.9``, ``withdrawals:ftx``, ``withdrawals:ftx/USDC=0:5000000000``."""
    match = _SHOCK.match(text.strip())
    if not match:
        raise InputError(f"--shock {text!r}: write price:ASSET or withdrawals:VENUE[/ASSET] (optionally =LO:HI)")
    target, _, asset = match["target"].partition("/")
    if match["kind"] == "price" and asset:
        raise InputError(f"--shock {text!r}: a price shock names one asset (price:ASSET)")
    lo = hi = None
    if match["lo"] is not None:
        try:
            lo = parse_fraction(match["lo"], "--shock LO")
            hi = parse_fraction(match["hi"], "--shock HI")
        except ev.EventValueError as exc:
            raise InputError(f"--shock {text!r}: {exc}") from None
        if not 0 <= lo < hi:
            raise InputError(f"--shock {text!r}: the range must have 0 <= LO < HI")
        if match["kind"] == "price" and hi >= 1:
            raise InputError(f"--shock {text!r}: a fall of the price is below 1 (0.99 = -99%)")
    return Shock(kind=match["kind"], target=target, lo=lo, hi=hi, asset=asset or None)


@attrs.frozen
class Case:
    """Everything a trial needs, picklable (sent once per chunk of trials to a worker)."""

    name: str
    point: ForkPoint
    suffix: tuple[Event, ...]
    base_policy: Policy
    policy: Policy
    watch: Watch
    shocks: tuple[Shock, ...]
    refs: tuple[WaveRefs | None, ...]


def _changes(case: Case, sizes: Sequence[Decimal]) -> Changes:
    prices: list[PriceChange] = []
    waves: list[Wave] = []
    for shock, size, ref in zip(case.shocks, sizes, case.refs, strict=True):
        if shock.kind == "price":
            if size == 0:
                continue
            factor = 1 + size if shock.direction == "rise" else 1 - size
            prices.append(PriceChange(asset=shock.target, start=case.watch.start, scale=factor))
        else:
            assert ref is not None
            total = size.quantize(Decimal(1).scaleb(-ref.scale), rounding=ROUND_DOWN)
            if total > 0:
                waves.append(Wave(venue=shock.target, total=total, start=case.watch.start, window=shock.window,
                                  parts=shock.parts, asset=ref.asset, account=ref.account, paid_from=ref.paid_from))
    return Changes(name="stress", prices=tuple(prices), waves=tuple(waves))


def trial(case: Case, sizes: Sequence[Decimal]) -> Breach | None:
    """The first breach the watch sees with the shocks at ``sizes`` (None: it held)."""
    changes = _changes(case, sizes)
    refs = {i: ref for i, ref in enumerate(r for r, s in zip(case.refs, case.shocks, strict=True) if s.kind == "withdrawals" and r is not None)}
    wave_refs_ = {i: refs[i] for i in range(len(changes.waves))}
    events = derive(case.suffix, changes, case.point, wave_refs_)
    return replay_fork(case.point, events, case.policy, case.base_policy, watch=case.watch).breach


def _trials(args: tuple[Case, Sequence[tuple[Decimal, ...]]]) -> list[Breach | None]:
    """A chunk of trials (a worker's task: module level, so that it pickles)."""
    case, cells = args
    return [trial(case, cell) for cell in cells]


def run_trials(case: Case, cells: Sequence[tuple[Decimal, ...]], executor: Executor | None = None, chunks: int = 1) -> list[Breach | None]:
    """Every cell, in order; through ``executor`` in ``chunks`` tasks if given."""
    if executor is None or len(cells) <= 1:
        return _trials((case, cells))
    # Cells dealt round-robin, so that every chunk gets cheap and costly cells alike (a trial
    # that breaks early stops early; one that holds replays the whole window).
    n = max(1, min(chunks, len(cells)))
    parts = [(case, list(cells[i::n])) for i in range(n)]
    out: list[Breach | None] = [None] * len(cells)
    for i, result in enumerate(executor.map(_trials, parts)):
        out[i::n] = result
    return out


def make_case(
    history: History,
    *,
    at: dt.datetime,
    shocks: Sequence[Shock],
    invariants: Sequence[str],
    subject: str | None = None,
    until: dt.datetime | None = None,
    policy: Policy | None = None,
) -> Case:
    """Fork the base at ``at`` once (the prefix replayed with every invariant) for trials."""
    unknown = [name for name in invariants if name not in STANDARD_NAMES]
    if unknown:
        raise InputError(f"--invariant: unknown invariant {unknown[0]!r} (known: {', '.join(STANDARD_NAMES)})")
    if not invariants:
        raise InputError("--invariant: name the invariant to break")
    if until is not None and until < at:
        raise InputError("--until: before --at")
    index = fork_index(history, at=at)
    point = prepare(history, index, at=at, only=invariants)
    books = point.books(history.policy)
    refs: list[WaveRefs | None] = []
    for shock in shocks:
        if shock.kind == "price":
            if shock.target not in books.registry.assets:
                raise InputError(f"--shock {shock.label}: unknown asset (known: {', '.join(sorted(books.registry.assets))})")
            if shock.target not in point.prices:
                raise InputError(f"--shock {shock.label}: {shock.target} has no price before {ev.format_instant(at)}")
            refs.append(None)
        else:
            try:
                refs.append(wave_refs(Wave(venue=shock.target, total=Decimal(1), asset=shock.asset), books))
            except ev.EventValueError as exc:
                raise InputError(f"--shock {shock.label}: {exc}") from None
    suffix = history.events[index:]
    if until is not None:
        suffix = [e for e in suffix if e.at <= until]
    price_asset = next((s.target for s in shocks if s.kind == "price"), None)
    watch = Watch(invariants=tuple(invariants), start=at, until=until, subject=subject, asset=price_asset)
    return Case("stress", point, tuple(suffix), history.policy, policy or history.policy, watch, tuple(shocks), tuple(refs))


def default_range(case: Case, shock: Shock) -> tuple[Decimal, Decimal]:
    if shock.lo is not None and shock.hi is not None:
        return shock.lo, shock.hi
    if shock.kind == "price":
        return Decimal(0), Decimal("9") if shock.direction == "rise" else Decimal("0.99")
    ref = case.refs[case.shocks.index(shock)]
    assert ref is not None
    books = case.point.books(case.base_policy)
    owed = books.amount(books.balance(ref.account, ref.asset), ref.asset)
    return Decimal(0), max(owed, Decimal(1))


def plain(value: Decimal) -> str:
    """An exact decimal as plain text without trailing zeros (0E-12 -> 0, 0.100 -> 0.1)."""
    d = value.normalize()
    if d.as_tuple().exponent > 0:  # type: ignore[operator]
        d = d.quantize(Decimal(1))
    return f"{d:f}"


@attrs.frozen
class Trial:
    size: Decimal
    broke: bool
    breach: Breach | None

    def to_dict(self) -> dict[str, Any]:
        return {"size": plain(self.size), "broke": self.broke, "breach": self.breach.to_dict() if self.breach else None}


@attrs.frozen
class StressResult:
    """The answer of :func:`stress`.

    Attributes:
        shock, direction: what was varied (``fall`` or ``rise`` for a price; ``wave`` for
            withdrawals). When the base itself breaks, a price shock is searched upwards: the
            smallest rise at which the invariant holds.
        base_breach: the breach in the base history (no shock) inside the window, or None.
        found: the smallest size found that breaks (or, for a rise, that holds) to within
            ``tolerance``; ``held``: the largest known size on the other side.
        breach: the breach at ``found`` (the event where it breaks, the breaking value);
            ``breaking_value``: the price at that event (price shocks) or the wave's total.
        margin: how far the base is from breaking: ``found`` (a fraction of the price, or an
            amount of the venue's asset); 0 when the base breaks.
        monotone: whether the scan before the bisection was monotone; ``method`` is
            ``bisection`` or ``scan``.
    """

    shock: str
    direction: str
    invariants: tuple[str, ...]
    subject: str | None
    at: str
    until: str | None
    asset: str | None
    base_breach: Breach | None
    found: Decimal | None
    held: Decimal | None
    breach: Breach | None
    breaking_value: str | None
    margin: Decimal | None
    monotone: bool
    method: str
    steps: int
    trials: list[Trial]
    tolerance: Decimal
    lo: Decimal
    hi: Decimal
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "shock": self.shock,
            "direction": self.direction,
            "invariants": list(self.invariants),
            "subject": self.subject,
            "at": self.at,
            "until": self.until,
            "asset": self.asset,
            "range": [plain(self.lo), plain(self.hi)],
            "tolerance": plain(self.tolerance),
            "base_breach": self.base_breach.to_dict() if self.base_breach else None,
            "found": None if self.found is None else plain(self.found),
            "held": None if self.held is None else plain(self.held),
            "breach": self.breach.to_dict() if self.breach else None,
            "breaking_value": self.breaking_value,
            "margin": None if self.margin is None else plain(self.margin),
            "monotone": self.monotone,
            "method": self.method,
            "steps": self.steps,
            "trials": [t.to_dict() for t in self.trials],
            "seconds": round(self.seconds, 3),
        }


def _quantum(shock: Shock, case: Case) -> Decimal:
    if shock.kind == "price":
        return SCALE_PLACES
    ref = case.refs[case.shocks.index(shock)]
    assert ref is not None
    return Decimal(1).scaleb(-ref.scale)


def stress(
    history: History,
    *,
    at: dt.datetime,
    shock: Shock,
    invariants: Sequence[str],
    subject: str | None = None,
    until: dt.datetime | None = None,
    tolerance: Decimal | None = None,
    steps: int = 20,
    scan: int = 5,
    scan_fallback: int = 41,
    policy: Policy | None = None,
    executor: Executor | None = None,
) -> StressResult:
    """The smallest ``shock`` at which one of ``invariants`` (of ``subject``) breaks at or
    after ``at`` (and not after ``until``), by bisection where the response is monotone.

    ``tolerance``: stop when the bracket is this narrow (default: a millionth of the range);
    ``steps``: at most this many bisection steps; ``scan``: sizes tried first, evenly over the
    range, to check monotonicity (through ``executor`` if given); ``scan_fallback``: sizes
    scanned when it is not monotone.
    """
    started = time.perf_counter()
    case = make_case(history, at=at, shocks=[shock], invariants=invariants, subject=subject, until=until, policy=policy)
    base = trial(case, (Decimal(0),))
    direction = "wave" if shock.kind == "withdrawals" else "fall"
    if base is not None and shock.kind == "price":
        direction = "rise"
        shock = attrs.evolve(shock, direction="rise")
        if shock.lo is not None and shock.hi is not None and shock.hi < 1:
            shock = attrs.evolve(shock, lo=None, hi=None)
        case = attrs.evolve(case, shocks=(shock,))
    lo, hi = default_range(case, shock)
    quantum = _quantum(shock, case)
    tol = tolerance if tolerance is not None else max((hi - lo) / 1_000_000, quantum)
    trials: list[Trial] = []

    def wanted(breach: Breach | None) -> bool:
        # the predicate searched for: a breach (fall, wave), or holding again (rise)
        return (breach is None) if direction == "rise" else (breach is not None)

    def q(value: Decimal) -> Decimal:
        return value.quantize(quantum, rounding=ROUND_HALF_EVEN)

    def run(sizes: list[Decimal], pool: bool) -> list[Breach | None]:
        cells = [(s,) for s in sizes]
        results = run_trials(case, cells, executor if pool else None, chunks=len(cells))
        trials.extend(Trial(s, r is not None, r) for s, r in zip(sizes, results, strict=True))
        return results

    if base is not None and direction == "wave":
        # Breaks without any wave: nothing to search.
        return _result(case, shock, direction, base, Decimal(0), None, base, Decimal(0), True, "none", 0,
                       [Trial(Decimal(0), True, base)], tol, lo, hi, started)
    points = [q(lo + (hi - lo) * i / (scan - 1)) for i in range(scan)] if scan >= 2 else [lo, hi]
    results = run(points, pool=True)
    flags = [wanted(r) for r in results]
    monotone = flags == sorted(flags)
    if not any(flags):
        return _result(case, shock, direction, base, None, points[-1], None, None, monotone, "scan", 0, trials, tol, lo, hi, started)
    if not monotone:
        points = [q(lo + (hi - lo) * i / (scan_fallback - 1)) for i in range(scan_fallback)]
        results = run(points, pool=True)
        first = next(i for i, r in enumerate(results) if wanted(r))
        held = points[first - 1] if first > 0 else None
        return _result(case, shock, direction, base, points[first], held, results[first], points[first] if direction != "rise" else Decimal(0),
                       False, "scan", 0, trials, tol, lo, hi, started)
    first = flags.index(True)
    good, good_breach = points[first], results[first]
    bad = points[first - 1] if first > 0 else None
    bad_breach = results[first - 1] if first > 0 else None
    count = 0
    if bad is not None:
        while count < steps and good - bad > tol:
            mid = q((good + bad) / 2)
            if mid in (good, bad):
                break
            (result,) = run([mid], pool=False)
            count += 1
            if wanted(result):
                good, good_breach = mid, result
            else:
                bad, bad_breach = mid, result
    margin = good if direction != "rise" else Decimal(0)
    # For a rise, the breach worth showing is the last one: at the largest size that still breaks.
    shown = bad_breach if direction == "rise" else good_breach
    return _result(case, shock, direction, base, good, bad, shown, margin, True, "bisection", count, trials, tol, lo, hi, started)


def _result(case: Case, shock: Shock, direction: str, base: Breach | None, found: Decimal | None, held: Decimal | None,
            breach: Breach | None, margin: Decimal | None, monotone: bool, method: str, steps: int,
            trials: list[Trial], tol: Decimal, lo: Decimal, hi: Decimal, started: float) -> StressResult:
    value: str | None = None
    if found is not None:
        if shock.kind == "price":
            quote, price = case.point.prices[shock.target]
            factor = 1 + found if direction == "rise" else 1 - found
            if breach is not None and breach.price is not None:
                value = f"{breach.price} {quote}"
            else:
                value = f"{ev.format_decimal((price * factor).quantize(Decimal(1).scaleb(-18)).normalize())} {quote} at the fork"
        else:
            ref = case.refs[0]
            assert ref is not None
            value = f"{ev.format_decimal(found)} {ref.asset}"
    watch = case.watch
    return StressResult(
        shock=shock.label, direction=direction, invariants=watch.invariants, subject=watch.subject,
        at=ev.format_instant(watch.start), until=ev.format_instant(watch.until) if watch.until else None,
        asset=watch.asset, base_breach=base, found=found, held=held, breach=breach, breaking_value=value,
        margin=margin, monotone=monotone, method=method, steps=steps, trials=trials, tolerance=tol, lo=lo, hi=hi,
        seconds=time.perf_counter() - started,
    )


@attrs.frozen
class GridResult:
    """A two-shock grid: ``cells[i][j]`` is the breach (or None) at ``xs[i]``, ``ys[j]``;
    ``frontier[i]``: the smallest ``ys[j]`` that breaks at ``xs[i]`` (None: none does),
    and ``monotone[i]`` whether row i broke from that size on without gaps."""

    x: str
    y: str
    xs: list[Decimal]
    ys: list[Decimal]
    cells: list[list[Breach | None]]
    frontier: list[Decimal | None]
    monotone: list[bool]
    invariants: tuple[str, ...]
    subject: str | None
    at: str
    until: str | None
    units: tuple[str, str]
    seconds: float
    base_breach: Breach | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "y": self.y,
            "units": list(self.units),
            "xs": [plain(v) for v in self.xs],
            "ys": [plain(v) for v in self.ys],
            "invariants": list(self.invariants),
            "subject": self.subject,
            "at": self.at,
            "until": self.until,
            "base_breach": self.base_breach.to_dict() if self.base_breach else None,
            "frontier": [
                {"x": plain(x), "y": None if y is None else plain(y), "monotone": m}
                for x, y, m in zip(self.xs, self.frontier, self.monotone, strict=True)
            ],
            "cells": [
                {"x": plain(self.xs[i]), "y": plain(self.ys[j]), "broke": cell is not None,
                 "breach": cell.to_dict() if cell else None}
                for i, row in enumerate(self.cells) for j, cell in enumerate(row)
            ],
            "seconds": round(self.seconds, 3),
        }


def grid(
    history: History,
    *,
    at: dt.datetime,
    shocks: tuple[Shock, Shock],
    invariants: Sequence[str],
    size: tuple[int, int] = (20, 20),
    subject: str | None = None,
    until: dt.datetime | None = None,
    policy: Policy | None = None,
    executor: Executor | None = None,
    chunks: int = 8,
) -> GridResult:
    """Every cell of a ``size[0]`` x ``size[1]`` grid over two shocks (each from its range's
    start to its end, evenly), through ``executor`` in ``chunks`` tasks; and the frontier."""
    started = time.perf_counter()
    if len(shocks) != 2:
        raise InputError("--grid: give two --shock options")
    nx, ny = size
    if nx < 2 or ny < 2:
        raise InputError("--grid: at least 2 x 2")
    case = make_case(history, at=at, shocks=shocks, invariants=invariants, subject=subject, until=until, policy=policy)
    axes = []
    for shock, n in zip(shocks, size, strict=True):
        lo, hi = default_range(case, shock)
        quantum = _quantum(shock, case)
        axes.append([(lo + (hi - lo) * i / (n - 1)).quantize(quantum, rounding=ROUND_HALF_EVEN) for i in range(n)])
    xs, ys = axes
    cells = [(x, y) for x in xs for y in ys]
    results = run_trials(case, cells, executor, chunks=chunks)
    rows = [results[i * ny : (i + 1) * ny] for i in range(nx)]
    frontier: list[Decimal | None] = []
    monotone: list[bool] = []
    for row in rows:
        flags = [r is not None for r in row]
        first = flags.index(True) if True in flags else None
        frontier.append(None if first is None else ys[first])
        monotone.append(flags == sorted(flags))
    units = tuple(_unit(case, s) for s in shocks)
    watch = case.watch
    return GridResult(
        x=shocks[0].label, y=shocks[1].label, xs=xs, ys=ys, cells=rows, frontier=frontier, monotone=monotone,
        invariants=watch.invariants, subject=watch.subject, at=ev.format_instant(watch.start),
        until=ev.format_instant(watch.until) if watch.until else None, units=(units[0], units[1]),
        seconds=time.perf_counter() - started, base_breach=results[0],
    )


def _unit(case: Case, shock: Shock) -> str:
    if shock.kind == "price":
        return f"fall of {shock.target}'s price (fraction)"
    ref = case.refs[case.shocks.index(shock)]
    assert ref is not None
    return f"wave total ({ref.asset})"


def local_executor(jobs: int) -> Executor:
    """A process pool of ``jobs`` workers (``concurrent.futures``)."""
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs)


def dask_executor(address: str) -> Executor:
    """The executor of a Dask distributed cluster at ``address`` (``distributed`` must be
    installed): the same ``map`` as a process pool, run on the cluster's workers."""
    try:
        from distributed import Client  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise InputError("--dask: the 'distributed' package is not installed (pip install distributed)") from None
    client = Client(address)
    executor: Executor = client.get_executor()
    return executor

