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
import hashlib
import pickle
import re
import time
from collections.abc import Callable, Sequence
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
    FAST_ERRORS,
    Breach,
    Changes,
    ForkPoint,
    History,
    Watch,
    WaveRefs,
    derive,
    fork_index,
    freeze_machine,
    prepare,
    replay_fork,
    thaw,
    watch_fast,
    wave_refs,
)
from ledger.scenarios._format import PriceChange, Wave, parse_fraction

SCALE_PLACES = Decimal(1).scaleb(-12)
_SHOCK = re.compile(
    r"^(?P<kind>price|withdrawals):(?P<target>[^=]+?)(?:=(?P<lo>[^:]+):(?P<hi>.+))?$"
)


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
        raise InputError(
            f"--shock {text!r}: write price:ASSET or withdrawals:VENUE[/ASSET] (optionally =LO:HI)"
        )
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
    """Everything a trial needs, picklable (pickled once; a worker unpickles it once and keeps
    it for every trial it is sent). ``machine``: the fast core's state at the fork, pickled
    (:func:`~ledger.scenarios._engine.freeze_machine`), or None where the trials use the
    reference replay."""

    name: str
    point: ForkPoint
    suffix: tuple[Event, ...]
    base_policy: Policy
    policy: Policy
    watch: Watch
    shocks: tuple[Shock, ...]
    refs: tuple[WaveRefs | None, ...]
    machine: bytes | None = None


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
                waves.append(
                    Wave(
                        venue=shock.target,
                        total=total,
                        start=case.watch.start,
                        window=shock.window,
                        parts=shock.parts,
                        asset=ref.asset,
                        account=ref.account,
                        paid_from=ref.paid_from,
                    )
                )
    return Changes(name="stress", prices=tuple(prices), waves=tuple(waves))


def trial(case: Case, sizes: Sequence[Decimal]) -> Breach | None:
    """The first breach the watch sees with the shocks at ``sizes`` (None: it held)."""
    changes = _changes(case, sizes)
    refs = {
        i: ref
        for i, ref in enumerate(
            r
            for r, s in zip(case.refs, case.shocks, strict=True)
            if s.kind == "withdrawals" and r is not None
        )
    }
    wave_refs_ = {i: refs[i] for i in range(len(changes.waves))}
    events = derive(case.suffix, changes, case.point, wave_refs_)
    if case.machine is not None:
        try:
            return watch_fast(case.machine, case.point.index, events, case.watch, _payloads(case))
        except FAST_ERRORS:
            pass  # the derived history leaves what the core covers: the reference decides
    return replay_fork(case.point, events, case.policy, case.base_policy, watch=case.watch).breach


_PAYLOADS: list[tuple[Case, dict[int, dict[str, Any]]]] = []


def _payloads(case: Case) -> Callable[[Event], dict[str, Any]]:
    """The payload dicts of the base's events after the fork, made once per case (a trial's
    derived history shares most of its events with the base)."""
    if not _PAYLOADS or _PAYLOADS[0][0] is not case:
        _PAYLOADS[:] = [(case, {id(e): ev.to_dict(e) for e in case.suffix})]
    known = _PAYLOADS[0][1]
    to_dict = ev.to_dict

    def data(event: Event) -> dict[str, Any]:
        found = known.get(id(event))
        return to_dict(event) if found is None else found

    return data


def _trials(args: tuple[Case, Sequence[tuple[Decimal, ...]]]) -> list[Breach | None]:
    """A chunk of trials in this process."""
    case, cells = args
    return [trial(case, cell) for cell in cells]


# A worker keeps the last case it was sent (by the digest of its pickle): it unpickles the
# fork state once, not once a task.
_WORKER_CASE: dict[str, Case] = {}


def _remote(args: tuple[str, bytes, Sequence[tuple[Decimal, ...]]]) -> list[Breach | None]:
    """A worker's task (module level, so that it pickles): trials of the case shipped as
    ``(digest, pickle)``."""
    key, blob, cells = args
    case = _WORKER_CASE.get(key)
    if case is None:
        _WORKER_CASE.clear()
        case = thaw(blob)
        _WORKER_CASE[key] = case
    return [trial(case, cell) for cell in cells]


_SHIPPED: list[tuple[Case, str, bytes]] = []


def shipped(case: Case) -> tuple[str, bytes]:
    """The case pickled once (and its digest, by which workers keep it)."""
    if not _SHIPPED or _SHIPPED[0][0] is not case:
        blob = pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL)
        _SHIPPED[:] = [(case, hashlib.sha256(blob).hexdigest(), blob)]
    return _SHIPPED[0][1], _SHIPPED[0][2]


def release() -> None:
    """Drop this process's copies of the last case (its pickle, its payload dicts)."""
    _SHIPPED.clear()
    _PAYLOADS.clear()


def run_trials(
    case: Case,
    cells: Sequence[tuple[Decimal, ...]],
    executor: Executor | None = None,
    chunks: int = 1,
) -> list[Breach | None]:
    """Every cell, in order; through ``executor`` in ``chunks`` tasks if given."""
    if executor is None or len(cells) <= 1:
        return _trials((case, cells))
    # Cells dealt round-robin, so that every chunk gets cheap and costly cells alike (a trial
    # that breaks early stops early; one that holds replays the whole window).
    key, blob = shipped(case)
    n = max(1, min(chunks, len(cells)))
    parts = [(key, blob, list(cells[i::n])) for i in range(n)]
    out: list[Breach | None] = [None] * len(cells)
    for i, result in enumerate(executor.map(_remote, parts)):
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
    fast: bool = True,
) -> Case:
    """Fork the base at ``at`` once for trials: the prefix replayed by the reference (the books
    and the violations open there) and, with ``fast`` where the core covers the policy, by the
    fast core (its state, from which the trials run)."""
    unknown = [name for name in invariants if name not in STANDARD_NAMES]
    if unknown:
        raise InputError(
            f"--invariant: unknown invariant {unknown[0]!r} (known: {', '.join(STANDARD_NAMES)})"
        )
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
                raise InputError(
                    f"--shock {shock.label}: unknown asset (known: {', '.join(sorted(books.registry.assets))})"
                )
            if shock.target not in point.prices:
                raise InputError(
                    f"--shock {shock.label}: {shock.target} has no price before {ev.format_instant(at)}"
                )
            refs.append(None)
        else:
            try:
                refs.append(
                    wave_refs(Wave(venue=shock.target, total=Decimal(1), asset=shock.asset), books)
                )
            except ev.EventValueError as exc:
                raise InputError(f"--shock {shock.label}: {exc}") from None
    suffix = history.events[index:]
    if until is not None:
        suffix = [e for e in suffix if e.at <= until]
    price_asset = next((s.target for s in shocks if s.kind == "price"), None)
    watch = Watch(
        invariants=tuple(invariants), start=at, until=until, subject=subject, asset=price_asset
    )
    # The fast core's state at the fork, where it covers the policy (the trials then run at the
    # core's rate; each falls back to the reference where its history leaves what it covers).
    machine = (
        freeze_machine(history.events[:index], history.policy, invariants)
        if fast and (policy is None or policy == history.policy)
        else None
    )
    return Case(
        "stress",
        point,
        tuple(suffix),
        history.policy,
        policy or history.policy,
        watch,
        tuple(shocks),
        tuple(refs),
        machine,
    )


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
        return {
            "size": plain(self.size),
            "broke": self.broke,
            "breach": self.breach.to_dict() if self.breach else None,
        }


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
    try:
        return _stress(
            history,
            at=at,
            shock=shock,
            invariants=invariants,
            subject=subject,
            until=until,
            tolerance=tolerance,
            steps=steps,
            scan=scan,
            scan_fallback=scan_fallback,
            policy=policy,
            executor=executor,
        )
    finally:
        release()


def _stress(
    history: History,
    *,
    at: dt.datetime,
    shock: Shock,
    invariants: Sequence[str],
    subject: str | None,
    until: dt.datetime | None,
    tolerance: Decimal | None,
    steps: int,
    scan: int,
    scan_fallback: int,
    policy: Policy | None,
    executor: Executor | None,
) -> StressResult:
    started_s = time.perf_counter()
    case = make_case(
        history,
        at=at,
        shocks=[shock],
        invariants=invariants,
        subject=subject,
        until=until,
        policy=policy,
    )
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
        return _result(
            case,
            shock,
            direction,
            base,
            Decimal(0),
            None,
            base,
            Decimal(0),
            True,
            "none",
            0,
            [Trial(Decimal(0), True, base)],
            tol,
            lo,
            hi,
            started_s,
        )
    points = [q(lo + (hi - lo) * i / (scan - 1)) for i in range(scan)] if scan >= 2 else [lo, hi]
    results = run(points, pool=True)
    flags = [wanted(r) for r in results]
    monotone = flags == sorted(flags)
    if not any(flags):
        return _result(
            case,
            shock,
            direction,
            base,
            None,
            points[-1],
            None,
            None,
            monotone,
            "scan",
            0,
            trials,
            tol,
            lo,
            hi,
            started_s,
        )
    if not monotone:
        points = [q(lo + (hi - lo) * i / (scan_fallback - 1)) for i in range(scan_fallback)]
        results = run(points, pool=True)
        first = next(i for i, r in enumerate(results) if wanted(r))
        held = points[first - 1] if first > 0 else None
        return _result(
            case,
            shock,
            direction,
            base,
            points[first],
            held,
            results[first],
            points[first] if direction != "rise" else Decimal(0),
            False,
            "scan",
            0,
            trials,
            tol,
            lo,
            hi,
            started_s,
        )
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
    return _result(
        case,
        shock,
        direction,
        base,
        good,
        bad,
        shown,
        margin,
        True,
        "bisection",
        count,
        trials,
        tol,
        lo,
        hi,
        started_s,
    )


def _result(
    case: Case,
    shock: Shock,
    direction: str,
    base: Breach | None,
    found: Decimal | None,
    held: Decimal | None,
    breach: Breach | None,
    margin: Decimal | None,
    monotone: bool,
    method: str,
    steps: int,
    trials: list[Trial],
    tol: Decimal,
    lo: Decimal,
    hi: Decimal,
    started_s: float,
) -> StressResult:
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
        shock=shock.label,
        direction=direction,
        invariants=watch.invariants,
        subject=watch.subject,
        at=ev.format_instant(watch.start),
        until=ev.format_instant(watch.until) if watch.until else None,
        asset=watch.asset,
        base_breach=base,
        found=found,
        held=held,
        breach=breach,
        breaking_value=value,
        margin=margin,
        monotone=monotone,
        method=method,
        steps=steps,
        trials=trials,
        tolerance=tol,
        lo=lo,
        hi=hi,
        seconds=time.perf_counter() - started_s,
    )


@attrs.frozen
class GridResult:
    """A two-shock grid: ``broke[i][j]`` whether it breaks at ``xs[i]``, ``ys[j]``;
    ``ran[i][j]`` whether that cell was replayed (else inferred from monotonicity, see
    ``method``); ``cells[i][j]`` the breach of a replayed cell that broke (None otherwise);
    ``frontier[i]``: the smallest ``ys[j]`` that breaks at ``xs[i]`` (None: none does), and
    ``monotone[i]`` whether row i broke from that size on without gaps.

    ``method``: ``search`` (the frontier searched under monotonicity: a larger shock of either
    kind never mends a breach; every replayed cell agreed with it, and the cells not replayed
    are inferred from those that were) or ``scan`` (every cell replayed: asked for, or the
    search met a cell that contradicted monotonicity, ``contradiction``, and scanned).
    """

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
    broke: list[list[bool]] = attrs.field(factory=list)
    ran: list[list[bool]] = attrs.field(factory=list)
    method: str = "scan"
    contradiction: tuple[int, int] | None = None

    @property
    def runs(self) -> int:
        return sum(sum(row) for row in self.ran)

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
            "method": self.method,
            "runs": self.runs,
            "contradiction": None
            if self.contradiction is None
            else {
                "x": plain(self.xs[self.contradiction[0]]),
                "y": plain(self.ys[self.contradiction[1]]),
            },
            "base_breach": self.base_breach.to_dict() if self.base_breach else None,
            "frontier": [
                {"x": plain(x), "y": None if y is None else plain(y), "monotone": m}
                for x, y, m in zip(self.xs, self.frontier, self.monotone, strict=True)
            ],
            "cells": [
                {
                    "x": plain(self.xs[i]),
                    "y": plain(self.ys[j]),
                    "broke": self.broke[i][j],
                    "run": self.ran[i][j],
                    "breach": cell.to_dict() if cell else None,
                }
                for i, row in enumerate(self.cells)
                for j, cell in enumerate(row)
            ],
            "seconds": round(self.seconds, 3),
        }


class _Staircase:
    """What the cells replayed so far imply under monotonicity (a larger shock of either kind
    never mends a breach): per row i, the first breaking column f(i) lies in
    ``lo[i] .. hi[i]`` (``ny``: no column breaks). A cell that held at (i, j) holds at every
    (i' <= i, j' <= j); one that broke, at every (i' >= i, j' >= j); so f never rises from one
    row to the next. ``lo[i] > hi[i]`` somewhere: the cells contradict monotonicity."""

    def __init__(self, nx: int, ny: int) -> None:
        self.nx, self.ny = nx, ny
        self.lo = [0] * nx
        self.hi = [ny] * nx

    def add(self, i: int, j: int, broke: bool) -> None:
        if broke:
            for k in range(i, self.nx):
                if self.hi[k] > j:
                    self.hi[k] = j
        else:
            for k in range(i + 1):
                if self.lo[k] < j + 1:
                    self.lo[k] = j + 1

    @property
    def consistent(self) -> bool:
        return all(lo <= hi for lo, hi in zip(self.lo, self.hi, strict=True))

    @property
    def done(self) -> bool:
        return all(lo == hi for lo, hi in zip(self.lo, self.hi, strict=True))

    def known(self, i: int, j: int) -> bool | None:
        """What a cell is implied to be (broke True, held False), or None."""
        if j >= self.hi[i]:
            return True
        if j < self.lo[i]:
            return False
        return None

    def next_cells(self, busy: set[int], count: int) -> list[tuple[int, int]]:
        """Up to ``count`` cells to replay next (one a row, none in a row in ``busy``): the
        middle of a row's bracket, for the rows whose worse outcome leaves the least
        uncertainty (the sum of the brackets' widths) first."""
        width = [hi - lo for lo, hi in zip(self.lo, self.hi, strict=True)]
        total = sum(width)
        scored = []
        for i in range(self.nx):
            if width[i] == 0 or i in busy:
                continue
            j = (self.lo[i] + self.hi[i] - 1) // 2
            # broke: rows >= i get hi <= j; held: rows <= i get lo >= j + 1
            if_broke = total - sum(self.hi[k] - min(self.hi[k], j) for k in range(i, self.nx))
            if_held = total - sum(max(self.lo[k], j + 1) - self.lo[k] for k in range(i + 1))
            scored.append((max(if_broke, if_held), i, j))
        scored.sort()
        return [(i, j) for _, i, j in scored[:count]]


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
    method: str = "search",
    jobs: int = 2,
    check: int = 5,
) -> GridResult:
    """A ``size[0]`` x ``size[1]`` grid over two shocks (each from its range's start to its
    end, evenly) and its frontier.

    ``method="scan"``: every cell replayed, through ``executor`` in ``chunks`` tasks.
    ``method="search"`` (the default): first a ``check`` x ``check`` lattice of cells (the
    corners included) replayed, to check monotonicity as :func:`stress` does on a line; then
    the frontier searched (bisection of each row's bracket, rounds of ``jobs`` cells through
    ``executor``, each round chosen from the results before it), every replayed cell checked against monotonicity; then every row's first
    breaking cell replayed (its breach is the row's "where"). The cells not replayed are
    inferred and marked so. Any contradiction: the remaining cells are all replayed and the
    result says ``method="scan"``, with the contradicting cell.
    """
    started_s = time.perf_counter()
    if len(shocks) != 2:
        raise InputError("--grid: give two --shock options")
    if method not in ("search", "scan"):
        raise InputError(f"grid method {method!r}: search or scan")
    nx, ny = size
    if nx < 2 or ny < 2:
        raise InputError("--grid: at least 2 x 2")
    case = make_case(
        history,
        at=at,
        shocks=shocks,
        invariants=invariants,
        subject=subject,
        until=until,
        policy=policy,
    )
    axes = []
    for shock, n in zip(shocks, size, strict=True):
        lo, hi = default_range(case, shock)
        quantum = _quantum(shock, case)
        axes.append(
            [
                (lo + (hi - lo) * i / (n - 1)).quantize(quantum, rounding=ROUND_HALF_EVEN)
                for i in range(n)
            ]
        )
    xs, ys = axes
    results: dict[tuple[int, int], Breach | None] = {}
    contradiction: tuple[int, int] | None = None
    try:
        if method == "search":
            contradiction = _search(case, xs, ys, results, executor, max(1, jobs), max(2, check))
        if method == "scan" or contradiction is not None:
            todo = [(i, j) for i in range(nx) for j in range(ny) if (i, j) not in results]
            for key, found in zip(
                todo,
                run_trials(case, [(xs[i], ys[j]) for i, j in todo], executor, chunks=chunks),
                strict=True,
            ):
                results[key] = found
    finally:
        release()
    stairs = _Staircase(nx, ny)
    for (i, j), found in results.items():
        stairs.add(i, j, found is not None)
    searched = method == "search" and contradiction is None
    broke = [
        [
            (results[(i, j)] is not None) if (i, j) in results else bool(stairs.known(i, j))
            for j in range(ny)
        ]
        for i in range(nx)
    ]
    ran = [[(i, j) in results for j in range(ny)] for i in range(nx)]
    cells = [[results.get((i, j)) for j in range(ny)] for i in range(nx)]
    frontier: list[Decimal | None] = []
    monotone: list[bool] = []
    for row in broke:
        first = row.index(True) if True in row else None
        frontier.append(None if first is None else ys[first])
        monotone.append(row == sorted(row))
    units = tuple(_unit(case, s) for s in shocks)
    watch = case.watch
    return GridResult(
        x=shocks[0].label,
        y=shocks[1].label,
        xs=xs,
        ys=ys,
        cells=cells,
        frontier=frontier,
        monotone=monotone,
        invariants=watch.invariants,
        subject=watch.subject,
        at=ev.format_instant(watch.start),
        until=ev.format_instant(watch.until) if watch.until else None,
        units=(units[0], units[1]),
        seconds=time.perf_counter() - started_s,
        base_breach=results[(0, 0)],
        broke=broke,
        ran=ran,
        method="search" if searched else "scan",
        contradiction=contradiction,
    )


def _search(
    case: Case,
    xs: list[Decimal],
    ys: list[Decimal],
    results: dict[tuple[int, int], Breach | None],
    executor: Executor | None,
    jobs: int,
    check: int,
) -> tuple[int, int] | None:
    """The frontier search of :func:`grid` (results filled in); the first cell found to
    contradict monotonicity, or None."""
    nx, ny = len(xs), len(ys)
    stairs = _Staircase(nx, ny)
    lattice = sorted(
        {
            (round(a * (nx - 1) / (check - 1)), round(b * (ny - 1) / (check - 1)))
            for a in range(check)
            for b in range(check)
        }
    )
    cells = [(xs[i], ys[j]) for i, j in lattice]
    for key, found in zip(
        lattice, run_trials(case, cells, executor, chunks=len(cells)), strict=True
    ):
        results[key] = found
        stairs.add(*key, found is not None)
    if not stairs.consistent:
        return _contradicting(results, nx, ny)
    # Rounds of ``jobs`` cells, each round chosen from all the results before it (so the cells
    # replayed do not depend on which worker finished first: the same grid, pooled or not).
    while not stairs.done:
        batch = stairs.next_cells(set(), jobs)
        found_all = run_trials(
            case, [(xs[i], ys[j]) for i, j in batch], executor, chunks=len(batch)
        )
        for key, found in zip(batch, found_all, strict=True):
            results[key] = found
            stairs.add(*key, found is not None)
        if not stairs.consistent:
            return _contradicting(results, nx, ny)
    # Every row's first breaking cell, replayed: its breach is where the row breaks (and a
    # check of the inference that led there).
    edge = [
        (i, stairs.lo[i])
        for i in range(nx)
        if stairs.lo[i] < ny and (i, stairs.lo[i]) not in results
    ]
    for key, found in zip(
        edge,
        run_trials(case, [(xs[i], ys[j]) for i, j in edge], executor, chunks=len(edge)),
        strict=True,
    ):
        results[key] = found
        stairs.add(*key, found is not None)
    if not stairs.consistent:
        return _contradicting(results, nx, ny)
    return None


def _contradicting(
    results: dict[tuple[int, int], Breach | None], nx: int, ny: int
) -> tuple[int, int]:
    """A replayed cell that held although a cell with no larger shock broke (the first such)."""
    broke = [key for key, found in results.items() if found is not None]
    for (i, j), found in sorted(results.items()):
        if found is None and any(a <= i and b <= j for a, b in broke):
            return (i, j)
    raise AssertionError("no contradiction among the results")  # pragma: no cover


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
        raise InputError(
            "--dask: the 'distributed' package is not installed (pip install distributed)"
        ) from None
    client = Client(address)
    executor: Executor = client.get_executor()
    return executor
