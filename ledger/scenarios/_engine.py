"""Deriving a history from a base and replaying it from the fork point.

A fork starts from the books at the fork point (``Books.to_state``/``Books.from_state``), not
from seq 0, and from the violations open there: those continue in the derived history (a
violation open at the fork that the derived history first sees broken again is the same
violation, not a new one; one it first sees hold is closed there). Only the public replay API
is used (``Replay``, ``Books``, ``Policy``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

import events as ev
import replays
from events import Event
from ledger import core
from ledger.books import Books
from ledger.errors import InputError, Problem
from ledger.policy import Policy
from ledger.replay import Replay, Summary, Violation
from ledger.scenarios._format import PriceChange, Scenario, Wave
from ledger.store.contract import Record

Key = tuple[str, str]
PRICE_PLACES = Decimal(1).scaleb(-18)


@attrs.frozen
class History:
    """A base history in memory: its events in seq order (seq = index + 1)."""

    name: str
    events: list[Event]
    quote: str
    policy: Policy


def load_history(source: str, *, log: bool = False, policy: Policy | None = None) -> History:
    """A bundled timeline name, a timeline file, or (``log=True``) a stored log."""
    if log:
        from ledger.store import open_log

        with open_log(source, readonly=True) as stored:
            events = [record.event for record in stored.iter_records()]
            quote = stored.meta("quote") or "USD"
        name = source
    else:
        timeline = replays.load_timeline(source)
        events, quote, name = list(timeline.events), timeline.quote, timeline.name
    return History(name=name, events=events, quote=quote, policy=policy or Policy(quote=quote))


def fork_index(history: History, *, seq: int | None = None, at: dt.datetime | None = None) -> int:
    """How many base events the fork shares (the derived history starts after them)."""
    if seq is not None:
        return max(0, min(seq - 1, len(history.events)))
    if at is None:
        return 0
    lo, hi = 0, len(history.events)
    while lo < hi:
        mid = (lo + hi) // 2
        if history.events[mid].at < at:
            lo = mid + 1
        else:
            hi = mid
    return lo


@attrs.frozen
class ForkPoint:
    """The base at the fork: the books (state), the violations open, the first breaches and
    counts so far, and the time of the fork."""

    index: int
    at: dt.datetime
    state: dict[str, Any]
    open: dict[Key, Violation]
    first: dict[str, Violation]
    counts: dict[str, int]
    prices: dict[str, tuple[str, Decimal]]  # asset -> (quote, price) in force at the fork

    def books(self, policy: Policy) -> Books:
        return Books.from_state(self.state, policy)


def _records(events: Iterable[Event], start: int) -> Iterator[Record]:
    for offset, event in enumerate(events):
        yield Record(start + offset, event, "", b"", b"")


class _Prefix:
    """Walks a base replay's steps and remembers what is open, first and counted."""

    def __init__(self) -> None:
        self.open: dict[Key, Violation] = {}
        self.first: dict[str, Violation] = {}
        self.counts: dict[str, int] = {}
        self.prices: dict[str, tuple[str, Decimal]] = {}

    def add(self, step: Any) -> None:
        for v in step.opened:
            self.open[(v.invariant, v.subject)] = v
            self.first.setdefault(v.invariant, v)
            self.counts[v.invariant] = self.counts.get(v.invariant, 0) + 1
        for v in step.closed:
            self.open.pop((v.invariant, v.subject), None)
        event = step.event
        if isinstance(event, ev.PriceUpdated) and step.skipped is None:
            self.prices[event.asset] = (event.quote, event.price)

    def point(self, index: int, at: dt.datetime, books: Books) -> ForkPoint:
        return ForkPoint(
            index,
            at,
            books.to_state(),
            dict(self.open),
            dict(self.first),
            dict(self.counts),
            dict(self.prices),
        )


def fork_time(history: History, index: int, at: dt.datetime | None = None) -> dt.datetime:
    if at is not None:
        return at
    if index < len(history.events):
        return history.events[index].at
    return history.events[-1].at if history.events else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def prepare(
    history: History,
    index: int,
    *,
    at: dt.datetime | None = None,
    only: Sequence[str] | None = None,
) -> ForkPoint:
    """Replay the base's first ``index`` events (every invariant checked, or only those named
    in ``only`` and the base's enforced ones) and keep the fork point. Costs one replay of the
    prefix, once per base and fork."""
    from ledger.invariants import standard_invariants

    invariants = None
    if only is not None:
        keep = set(only) | set(history.policy.enforce)
        invariants = [inv for inv in standard_invariants(history.policy) if inv.name in keep]
    run = Replay(
        _records(history.events[:index], 1), history.policy, invariants=invariants, metrics=False
    )
    walk = _Prefix()
    for step in run:
        walk.add(step)
    return walk.point(index, fork_time(history, index, at), run.books)


@attrs.frozen
class BaseRun:
    """The whole base replayed once: its summary, the fork point, and the violations opened
    and closed after the fork (``(kind, invariant, subject, event_id, at)``)."""

    summary: Summary
    point: ForkPoint
    changes: list[tuple[str, str, str, str, str]]


def run_base(history: History, index: int, *, at: dt.datetime | None = None) -> BaseRun:
    """Replay the whole base, keeping the fork point on the way (one pass)."""
    run = Replay(_records(history.events, 1), history.policy, metrics=True)
    walk = _Prefix()
    point = None
    changes: list[tuple[str, str, str, str, str]] = []
    if index == 0:
        point = walk.point(0, fork_time(history, 0, at), run.books)
    for step in run:
        if point is None:
            walk.add(step)
            if step.seq == index:
                point = walk.point(index, fork_time(history, index, at), run.books)
        else:
            changes += _step_changes(step)
    if point is None:
        point = walk.point(index, fork_time(history, index, at), run.books)
    return BaseRun(run.summary, point, changes)


def _step_changes(step: Any) -> list[tuple[str, str, str, str, str]]:
    at = ev.format_instant(step.event.at)
    return [("opened", v.invariant, v.subject, step.event.id, at) for v in step.opened] + [
        ("closed", v.invariant, v.subject, step.event.id, at) for v in step.closed
    ]


# -- deriving the events after the fork ----------------------------------------------------------
@attrs.frozen
class Changes:
    """What a derived history changes after the fork (a scenario's, or a stress trial's)."""

    name: str = "scenario"
    prices: tuple[PriceChange, ...] = ()
    waves: tuple[Wave, ...] = ()
    remove: tuple[str, ...] = ()
    replace: tuple[tuple[str, dict[str, Any]], ...] = ()

    @classmethod
    def of(cls, scenario: Scenario) -> Changes:
        return cls(
            scenario.name, scenario.prices, scenario.waves, scenario.remove, scenario.replace
        )


@attrs.frozen
class WaveRefs:
    account: str
    asset: str
    paid_from: str
    scale: int


def wave_refs(wave: Wave, books: Books) -> WaveRefs:
    """The accounts a wave uses: as given, else the venue's customer account owed the most
    (in value at the fork) and the venue's custody account holding the most of its asset."""
    registry = books.registry
    if wave.venue not in registry.entities:
        raise ev.EventValueError(f"venue: unknown entity {wave.venue!r}")
    accounts = [(ref, info) for ref, info in registry.accounts.items() if info.entity == wave.venue]
    asset, account = wave.asset, wave.account
    if account is None:
        best: tuple[Decimal, str, str] | None = None
        for ref, info in accounts:
            if info.purpose != "customer":
                continue
            for candidate in registry.assets if asset is None else [asset]:
                balance = books.balance(ref, candidate)
                if balance > 0:
                    worth = (
                        books.value(balance, candidate)
                        if books.price(candidate) is not None
                        else Decimal(balance)
                    )
                    key = (worth, ref, candidate)
                    if best is None or key > best:
                        best = key
        customers = sorted(ref for ref, info in accounts if info.purpose == "customer")
        if best is None and asset is not None and customers:
            best = (Decimal(0), customers[0], asset)  # nothing owed yet: the first customer account
        if best is None:
            raise ev.EventValueError(
                f"venue: {wave.venue} owes no customer anything at the fork (name account and asset)"
            )
        account, asset = best[1], best[2]
    elif account not in registry.accounts:
        raise ev.EventValueError(f"account: unknown account {account!r}")
    if asset is None:
        owed = [(books.balance(account, a), a) for a in registry.assets]
        asset = max(owed)[1]
    if asset not in registry.assets:
        raise ev.EventValueError(f"asset: unknown asset {asset!r}")
    paid_from = wave.paid_from
    if paid_from is None:
        custody = [
            (books.balance(ref, asset), ref)
            for ref, info in accounts
            if info.purpose == "customer-custody"
        ]
        if not custody:
            raise ev.EventValueError(
                f"paid_from: {wave.venue} has no customer-custody account (name paid_from)"
            )
        paid_from = max(custody)[1]
    elif paid_from not in registry.accounts:
        raise ev.EventValueError(f"paid_from: unknown account {paid_from!r}")
    return WaveRefs(account, asset, paid_from, registry.assets[asset].scale)


def _price_before(
    history_events: Sequence[Event],
    point: ForkPoint,
    suffix: Sequence[Event],
    asset: str,
    when: dt.datetime,
) -> tuple[str, Decimal] | None:
    found = point.prices.get(asset)
    for event in suffix:
        if event.at >= when:
            break
        if isinstance(event, ev.PriceUpdated) and event.asset == asset:
            found = (event.quote, event.price)
    return found


def _price(value: Decimal) -> Decimal:
    return value.quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN).normalize()


def derive(
    suffix: Sequence[Event], changes: Changes, point: ForkPoint, refs: dict[int, WaveRefs]
) -> list[Event]:
    """The derived events after the fork: ``suffix`` (the base's) with ``changes`` made.

    Injected events go before the base events at the same instant. Raises
    ``EventValueError`` for a change that cannot be made (checked up front by :func:`check`).
    """
    source = (f"scenario:{changes.name}",)
    removed = set(changes.remove)
    replaced = dict(changes.replace)
    base: list[Event] = []
    for event in suffix:
        if event.id in removed:
            continue
        if event.id in replaced:
            data = {**ev.to_dict(event), **replaced[event.id]}
            for key in ("at", "maturity"):
                if isinstance(data.get(key), dt.date) and not isinstance(data[key], dt.datetime):
                    data[key] = dt.datetime(
                        data[key].year, data[key].month, data[key].day, tzinfo=dt.UTC
                    )
            event = ev.from_dict(data)
        base.append(event)
    injected: list[Event] = []
    for number, change in enumerate(changes.prices):
        start = change.start or point.at
        in_force = _price_before((), point, suffix, change.asset, start)
        quote = change.quote or (in_force[0] if in_force else None)
        kept: list[Event] = []
        for event in base:
            if (
                isinstance(event, ev.PriceUpdated)
                and event.asset == change.asset
                and event.at >= start
            ):
                if change.scale is None:
                    continue  # a path or a step replaces the prices from the start
                event = attrs.evolve(event, price=_price(event.price * change.scale))
            kept.append(event)
        base = kept
        if change.scale is not None:
            if in_force is not None:
                points = [(start, _price(in_force[1] * change.scale))]
            else:
                points = []
        elif change.step is not None:
            points = [(start, change.step)]
        else:
            points = list(change.path)
        if quote is None:
            if not points:
                continue
            raise ev.EventValueError(
                f"quote: {change.asset} has no price before {ev.format_instant(start)}; give quote"
            )
        for k, (when, price) in enumerate(points):
            injected.append(
                ev.PriceUpdated(
                    id=f"{changes.name}-px{number}-{k}",
                    at=when,
                    source=source,
                    asset=change.asset,
                    quote=quote,
                    price=price,
                )
            )
    for number, wave in enumerate(changes.waves):
        ref = refs[number]
        start = wave.start or point.at
        minor = wave.total.scaleb(ref.scale)
        if minor != minor.to_integral_value():
            raise ev.EventValueError(
                f"total: {wave.total} has more places than {ref.asset}'s {ref.scale}"
            )
        total = int(minor)
        each, extra = divmod(total, wave.parts)
        for k in range(wave.parts):
            part = each + (1 if k < extra else 0)
            if part <= 0:
                continue
            injected.append(
                ev.Withdrawal(
                    id=f"{changes.name}-wave{number}-{k}",
                    at=start + dt.timedelta(seconds=wave.window * k // wave.parts),
                    source=source,
                    account=ref.account,
                    asset=ref.asset,
                    amount=Decimal(part).scaleb(-ref.scale),
                    paid_from=ref.paid_from,
                )
            )
    if not injected:
        return base
    injected.sort(key=lambda e: e.at)  # stable: a path's points and a wave's parts keep order
    out: list[Event] = []
    i = 0
    for event in base:
        while i < len(injected) and injected[i].at <= event.at:
            out.append(injected[i])
            i += 1
        out.append(event)
    out.extend(injected[i:])
    return out


def check(
    scenario_or_changes: Changes,
    history: History,
    point: ForkPoint,
    where: dict[str, str] | None = None,
    path: str = "",
) -> dict[int, WaveRefs]:
    """Check changes against the base: ids exist after the fork, assets and venues exist,
    times are not before the fork, every derived event is well formed. Raises
    :class:`InputError` naming the scenario's lines. Returns the waves' resolved accounts."""
    where = where or {}
    problems: list[Problem] = []
    changes = scenario_or_changes

    def problem(field: str, message: str) -> None:
        found = (
            where.get(field)
            or where.get(field.partition(".")[0])
            or where.get(field.partition("[")[0])
            or path
        )
        problems.append(Problem(f"{field}: {message}", field=field, where=found))

    prefix_ids = {e.id for e in history.events[: point.index]}
    suffix = history.events[point.index :]
    suffix_ids = {e.id for e in suffix}
    fork_at = ev.format_instant(point.at)
    for i, event_id in enumerate(changes.remove):
        if event_id in prefix_ids:
            problem(
                f"remove[{i}]",
                f"{event_id!r} is before the fork ({fork_at}): only later events can be removed",
            )
        elif event_id not in suffix_ids:
            problem(f"remove[{i}]", f"no event {event_id!r} in {history.name}")
    for i, (event_id, fields) in enumerate(changes.replace):
        field = f"replace[{i}]"
        if event_id in prefix_ids:
            problem(
                field,
                f"{event_id!r} is before the fork ({fork_at}): only later events can be replaced",
            )
            continue
        original = next((e for e in suffix if e.id == event_id), None)
        if original is None:
            problem(field, f"no event {event_id!r} in {history.name}")
            continue
        try:
            derive([original], Changes(replace=((event_id, fields),)), point, {})
        except ev.EventValueError as exc:
            key = str(exc).partition(":")[0]
            problems.append(
                Problem(
                    f"{field}.{exc}",
                    field=f"{field}.{key}",
                    where=where.get(f"{field}.{key}", where.get(field, path)),
                )
            )
    books = point.books(history.policy)
    known_assets = books.registry.assets
    for i, change in enumerate(changes.prices):
        field = f"prices[{i}]"
        if change.asset not in known_assets:
            problem(
                f"{field}.asset",
                f"unknown asset {change.asset!r} at the fork (known: {', '.join(sorted(known_assets))})",
            )
            continue
        times = [change.start] if change.start else []
        times += [t for t, _ in change.path]
        if any(t < point.at for t in times):
            problem(
                f"{field}.from" if change.start and change.start < point.at else f"{field}.path",
                f"before the fork ({fork_at})",
            )
        start = change.start or point.at
        if change.path and change.path[0][0] < start:
            problem(
                f"{field}.path", f"the path starts before its from ({ev.format_instant(start)})"
            )
        if change.quote is None and _price_before((), point, suffix, change.asset, start) is None:
            problem(
                f"{field}.asset",
                f'{change.asset} has no price before {ev.format_instant(start)}: give quote = "..."',
            )
    refs: dict[int, WaveRefs] = {}
    for i, wave in enumerate(changes.waves):
        field = f"withdrawals[{i}]"
        if wave.start is not None and wave.start < point.at:
            problem(f"{field}.at", f"before the fork ({fork_at})")
        try:
            refs[i] = wave_refs(wave, books)
        except ev.EventValueError as exc:
            key = str(exc).partition(":")[0]
            problems.append(
                Problem(
                    f"{field}.{exc}",
                    field=f"{field}.{key}",
                    where=where.get(f"{field}.{key}", where.get(f"{field}.venue", path)),
                )
            )
            continue
        minor = wave.total.scaleb(refs[i].scale)
        if minor != minor.to_integral_value():
            problem(
                f"{field}.total",
                f"{wave.total} has more decimal places than {refs[i].asset} ({refs[i].scale})",
            )
    if not problems:
        try:
            derived = derive(suffix, changes, point, refs)
        except ev.EventValueError as exc:
            problems.append(Problem(str(exc), where=path))
        else:
            seen = set(prefix_ids)
            for event in derived:
                if event.id in seen:
                    problems.append(
                        Problem(
                            f"event id {event.id!r} of the derived history is used twice",
                            where=path,
                        )
                    )
                    break
                seen.add(event.id)
    if problems:
        raise InputError(problems[: InputError.MAX_PROBLEMS], source=path)
    return refs


# -- replaying a fork ----------------------------------------------------------------------------
class _Tracker:
    """Per (invariant, subject) whether it is in breach, from the statuses the invariants
    yield during the fork (a wrapper around each invariant notes them). ``broken`` holds,
    for each key in breach, the observed value and the seq at which it became so (a carried
    violation: where it opened in the base)."""

    def __init__(self, carried: dict[Key, Violation]) -> None:
        self.pending: dict[Key, Violation] = dict(carried)  # open at the fork, not seen since
        self.broken: dict[Key, tuple[str, int]] = {
            k: (v.observed, v.seq) for k, v in carried.items()
        }
        self.closed_now: list[Violation] = []
        self.continued: set[Key] = set()
        self._journal: list[tuple[Key, tuple[str, int] | None, Violation | None]] = []

    def note(self, name: str, status: Any) -> None:
        key = (name, status.subject)
        self._journal.append((key, self.broken.get(key), self.pending.get(key)))
        if key in self.pending:
            violation = self.pending.pop(key)
            if status.ok:
                self.closed_now.append(violation)
            else:
                self.continued.add(key)
        if status.ok:
            self.broken.pop(key, None)
        elif key not in self.broken:
            self.broken[key] = (status.observed, -1)  # the seq is the step's (see :meth:`keep`)

    def begin(self) -> None:
        self._journal.clear()
        self.closed_now = []

    def keep(self, seq: int) -> None:
        """The event was applied: what became broken in it became so at ``seq``."""
        for key, _, _ in self._journal:
            found = self.broken.get(key)
            if found is not None and found[1] == -1:
                self.broken[key] = (found[0], seq)

    def undo(self) -> None:
        """The event was refused (enforce mode): as if its statuses were never seen."""
        for key, broken, pending in reversed(self._journal):
            if broken is None:
                self.broken.pop(key, None)
            else:
                self.broken[key] = broken
            if pending is not None:
                self.pending[key] = pending
                self.continued.discard(key)
        self._journal.clear()
        self.closed_now = []


class _Watched:
    def __init__(self, inner: Any, tracker: _Tracker) -> None:
        self.name = inner.name
        self.meaning = inner.meaning
        if hasattr(inner, "event_types"):
            self.event_types = inner.event_types
        self._inner = inner
        self._tracker = tracker

    def check(self, ctx: Any) -> Iterator[Any]:
        note = self._tracker.note
        for status in self._inner.check(ctx):
            note(self.name, status)
            yield status


def carried(point: ForkPoint, base_policy: Policy, policy: Policy) -> dict[Key, Violation]:
    """Violations open at the fork that continue in the derived history: all but those of an
    invariant the derived policy disables. (An invariant the derived policy newly enforces
    starts as a rule at the fork: the replay, which does not know what was open before it,
    refuses every later event that leaves one of its subjects in breach; a breach open at the
    fork stays open until an event mends it.)"""
    return {k: v for k, v in point.open.items() if k[0] not in policy.disabled}


@attrs.frozen
class Watch:
    """What a stress trial looks for: a breach of any of ``invariants`` (of ``subject`` only,
    if given: one subject, or several separated by commas) after an event at or after ``start`` and not after ``until``; and ``asset``'s
    price at that event."""

    invariants: tuple[str, ...]
    start: dt.datetime
    until: dt.datetime | None = None
    subject: str | None = None
    asset: str | None = None


@attrs.frozen
class Breach:
    """Where a watched invariant was first seen in breach in a fork."""

    invariant: str
    subject: str
    seq: int
    event_id: str
    at: str
    observed: str
    price: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class ForkRun:
    """A replayed fork: the steps' changes (opened, closed: carried violations folded in), the
    fork replay's summary, the events applied, and for a watch the first breach."""

    summary: Summary | None
    opened: list[Violation]
    closed: list[Violation]
    still_open: list[Violation]
    applied: list[Event]
    changes: list[tuple[str, str, str, str, str]]
    breach: Breach | None = None


def replay_fork(
    point: ForkPoint,
    events: Sequence[Event],
    policy: Policy,
    base_policy: Policy,
    *,
    watch: Watch | None = None,
) -> ForkRun:
    """Replay ``events`` from the fork point under ``policy``.

    With ``watch``: stop at the first breach it looks for (or after ``watch.until``) and return
    it; without: replay to the end, keeping what opened and closed.
    """
    from ledger.invariants import standard_invariants

    carry = carried(point, base_policy, policy)
    wanted = set(watch.invariants) if watch else None
    if wanted is not None:
        carry = {k: v for k, v in carry.items() if k[0] in wanted}
    tracker = _Tracker(carry)
    alive: dict[Key, Violation] = {}
    invariants = []
    for inv in standard_invariants(policy):
        if wanted is not None and inv.name not in wanted and inv.name not in policy.enforce:
            continue  # a stress trial needs only what it watches (and the rules that refuse events)
        if (wanted is None and any(k[0] == inv.name for k in carry)) or (
            wanted is not None and inv.name in wanted
        ):
            invariants.append(_Watched(inv, tracker))
        else:
            invariants.append(inv)
    books = point.books(policy)
    until = watch.until if watch else None
    run = Replay(
        _records(events, point.index + 1),
        policy,
        invariants=invariants,
        books=books,
        until=until,
        metrics=watch is None,
    )
    opened: list[Violation] = []
    closed: list[Violation] = []
    applied: list[Event] = []
    changes: list[tuple[str, str, str, str, str]] = []
    iterator = iter(run)
    while True:
        tracker.begin()
        try:
            step = next(iterator)
        except StopIteration:
            break
        if step.skipped is not None:
            tracker.undo()
            continue
        applied.append(step.event)
        if watch is not None:
            tracker.keep(step.seq)
            if step.event.at < watch.start:
                continue
            hit = _watched_breach(tracker.broken, watch)
            if hit is not None:
                key, observed, _since = hit
                price = run.books.price(watch.asset) if watch.asset else None
                breach = Breach(
                    key[0],
                    key[1],
                    step.seq,
                    step.event.id,
                    ev.format_instant(step.event.at),
                    observed,
                    None if price is None else ev.format_decimal(price),
                )
                return ForkRun(None, [], [], [], applied, [], breach)
            continue
        at = ev.format_instant(step.event.at)
        new = []
        for v in step.opened:
            key = (v.invariant, v.subject)
            if key in tracker.continued:  # open at the fork and still broken: the same one
                tracker.continued.discard(key)
                alive[key] = carry[key]
            else:
                new.append(v)
        gone = [alive.pop((v.invariant, v.subject), v) for v in step.closed] + tracker.closed_now
        opened += new
        closed += gone
        changes += [("opened", v.invariant, v.subject, step.event.id, at) for v in new]
        changes += [("closed", v.invariant, v.subject, step.event.id, at) for v in gone]
    if watch is not None:
        if not applied:
            # No event in the window: what was open at the fork is what the window sees.
            hit = _watched_breach(tracker.broken, watch)
            if hit is not None:
                key, observed, _since = hit
                v = carry[key]
                price = run.books.price(watch.asset) if watch.asset else None
                return ForkRun(
                    None,
                    [],
                    [],
                    [],
                    applied,
                    [],
                    Breach(
                        key[0],
                        key[1],
                        v.seq,
                        v.event_id,
                        v.at,
                        observed,
                        None if price is None else ev.format_decimal(price),
                    ),
                )
        return ForkRun(None, [], [], [], applied, [], None)
    summary = run.summary
    still = {(v.invariant, v.subject): v for v in summary.still_open}
    for key, v in alive.items():
        still[key] = v  # the violation open since before the fork
    for key, v in tracker.pending.items():
        still[key] = v  # open at the fork, never checked again
    still_open = sorted(still.values(), key=lambda v: (v.seq, v.invariant, v.subject))
    return ForkRun(summary, opened, closed, still_open, applied, changes)


def _watched_breach(
    broken: dict[Key, tuple[str, int]], watch: Watch
) -> tuple[Key, str, int] | None:
    """The watched breach to report of those in ``broken`` (key -> (observed, since seq)):
    the one in breach the longest (the smallest seq at which it became so), then the first
    invariant in the standard order, then the first subject. The fast path
    (:func:`watch_fast`) chooses the same way."""
    subjects = set(watch.subject.split(",")) if watch.subject else None
    best: tuple[tuple[int, int, str], Key, str] | None = None
    for key, (observed, since) in broken.items():
        if key[0] in watch.invariants and (subjects is None or key[1] in subjects):
            order = (since, _RANK.get(key[0], len(_RANK)), key[1])
            if best is None or order < best[0]:
                best = (order, key, observed)
    return None if best is None else (best[1], best[2], best[0][0])


# -- the fast path of a stress trial: the fast core (ledger/core) from its state at the fork ---
def _rank() -> dict[str, int]:
    from ledger.invariants import STANDARD_NAMES

    return {name: i for i, name in enumerate(STANDARD_NAMES)}


_RANK = _rank()
# Where the fast core gives up (a history it does not cover, a payload it cannot read): the
# reference decides, as ``Replay.run`` does.
FAST_ERRORS: tuple[type[BaseException], ...] = (
    core.Unsupported,
    ev.EventValueError,
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
)


def fast_names(invariants: Iterable[str]) -> list[str]:
    """The watched invariants in the standard (report) order: what the core checks."""
    wanted = set(invariants)
    return [name for name in _RANK if name in wanted]


def freeze_machine(
    events: Sequence[Event], policy: Policy, invariants: Sequence[str]
) -> bytes | None:
    """The fast core (``ledger.core.Machine``) run over ``events`` (the base before the fork),
    checking only ``invariants``, pickled: a stress trial's starting state. None where the
    core does not cover the policy or the history (the trials then use the reference)."""
    import pickle

    from ledger.replay import _fast_violation

    if not core.covers(policy):
        return None
    try:
        names = [name for name in fast_names(invariants) if name not in policy.disabled]
        machine = core.Machine(policy, names, _fast_violation)
        step, to_dict = machine.step, ev.to_dict
        for seq, event in enumerate(events, 1):
            step(to_dict(event), seq)
        return pickle.dumps(machine, protocol=pickle.HIGHEST_PROTOCOL)
    except FAST_ERRORS + (pickle.PicklingError,):
        return None


def thaw(blob: bytes) -> Any:
    """Unpickle a fork state with the cyclic garbage collector paused (it would otherwise walk
    the tens of thousands of objects as they are made: about four times slower)."""
    import gc
    import pickle

    enabled = gc.isenabled()
    gc.disable()
    try:
        return pickle.loads(blob)
    finally:
        if enabled:
            gc.enable()


def watch_fast(
    machine: bytes, index: int, events: Sequence[Event], watch: Watch, data: Any = None
) -> Breach | None:
    """:func:`replay_fork` with ``watch``, by the fast core from its state at the fork
    (``machine``, from :func:`freeze_machine` over the base's first ``index`` events): the
    same breach, found the same way. ``data(event)`` gives an event's payload dict (a cache of
    the base's; default ``events.to_dict``). Raises ``ledger.core.Unsupported`` (or a data
    error) where the history leaves what the core covers: the caller replays the reference."""
    m = thaw(machine)
    to_dict = data or ev.to_dict
    step, opened, counts = m.step, m.open, m.counts
    until, start = watch.until, watch.start
    applied = 0
    looked = False
    total = sum(counts.values())
    seq = index
    for event in events:
        if until is not None and event.at > until:
            break
        seq += 1
        step(to_dict(event), seq)
        applied += 1
        if event.at < start:
            continue
        # A breach is either open since before (seen at the first event in the window) or
        # opened by this event (the core counts every opening).
        now = sum(counts.values())
        if looked and now == total:
            continue
        looked, total = True, now
        hit = (
            _watched_breach({k: (v.observed, v.seq) for k, v in opened.items()}, watch)
            if opened
            else None
        )
        if hit is not None:
            return Breach(
                hit[0][0],
                hit[0][1],
                seq,
                event.id,
                ev.format_instant(event.at),
                hit[1],
                _fast_price(m, watch.asset),
            )
    if applied == 0 and opened:
        hit = _watched_breach({k: (v.observed, v.seq) for k, v in opened.items()}, watch)
        if hit is not None:
            v = opened[hit[0]]
            return Breach(
                hit[0][0], hit[0][1], v.seq, v.event_id, v.at, hit[1], _fast_price(m, watch.asset)
            )
    return None


def _fast_price(machine: Any, asset: str | None) -> str | None:
    if asset is None:
        return None
    price = Decimal(1) if asset == machine.quote else machine.prices.get(asset)
    return None if price is None else ev.format_decimal(price)


def digest(events: Iterable[Event]) -> str:
    """The replay digest of a history (as :attr:`Summary.digest`)."""
    h = hashlib.sha256()
    for event in events:
        h.update(ev.canonical_bytes(event) + b"\n")
    return h.hexdigest()
