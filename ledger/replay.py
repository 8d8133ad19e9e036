"""Replay: events in order through the books, every invariant checked after every event.

``replay(source, policy)`` returns a :class:`Replay`: iterate it for :class:`Step` values (one
per event), then read ``.summary``. Streaming: it holds the books and the open violations, never
the history, so memory does not grow with the number of events. Deterministic: the same events
and policy give the same steps and the same ``digest``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import orjson

import events as ev
import replays
from events import Event, EventValueError
from ledger import core as _core
from ledger import kinds as _kinds
from ledger.books import Books
from ledger.errors import InputError, InvariantRefused, Problem
from ledger.invariants import Context, assertion_result, fmt_ratio, standard_invariants
from ledger.policy import Policy
from ledger.registry import Registry
from ledger.store.contract import EventLog, Following, Record
from ledger.store.sqlite import Log as SQLiteLog

CONTRIBUTORS_KEPT = 4


@attrs.frozen
class Violation:
    """One invariant broken for one subject, from the event that broke it.

    Attributes:
        invariant, subject: what broke, for what (``segregation``, ``ftx/USD``).
        seq, event_id, at: the event after which it was first seen broken.
        observed, threshold: the values at that moment.
        detail: a plain-language explanation.
        contributing: ids of the latest events that touched this subject (the breaking one last).
        source: the breaking event's citation keys.
    """

    invariant: str
    subject: str
    seq: int
    event_id: str
    at: str
    observed: str
    threshold: str
    detail: str
    contributing: tuple[str, ...] = ()
    source: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["contributing"] = list(self.contributing)
        data["source"] = list(self.source)
        return data


@attrs.frozen
class Step:
    """What happened at one event.

    Attributes:
        seq, event: the event and its place.
        opened: violations that began with this event; closed: violations it ended.
        metrics: key figures after the event (the focus venue's customer liabilities, custody,
            shortfall, reserve ratio; the price just updated).
        notices: things worth a line (a credit line drawn, money landing elsewhere, a refusal).
        skipped: in enforce mode, why the event was not applied (None if it was).
        assertion: for a ``balance_asserted`` event, the comparison with the books.
    """

    seq: int
    event: Event
    opened: tuple[Violation, ...] = ()
    closed: tuple[Violation, ...] = ()
    metrics: dict[str, str] = attrs.field(factory=dict)
    notices: tuple[str, ...] = ()
    skipped: str | None = None
    assertion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event": ev.to_dict(self.event),
            "opened": [v.to_dict() for v in self.opened],
            "closed": [v.to_dict() for v in self.closed],
            "metrics": dict(self.metrics),
            "notices": list(self.notices),
            "skipped": self.skipped,
            "assertion": self.assertion,
        }


@attrs.frozen
class Summary:
    """The outcome of a replay.

    Attributes:
        events: how many events were replayed; last_seq, last_at: where it stopped.
        first_breaches: per invariant, the first violation (in invariant order).
        still_open: violations open at the end.
        breach_counts: per invariant, how many violations were opened.
        assertions: every ``balance_asserted`` comparison, in order.
        skipped: ``(seq, event_id, reason)`` of events refused in enforce mode.
        digest: SHA-256 over the canonical bytes of the replayed events, in order.
        final_metrics: key metrics after the last event.
    """

    events: int
    last_seq: int
    last_at: str | None
    first_breaches: dict[str, Violation]
    still_open: list[Violation]
    breach_counts: dict[str, int]
    assertions: list[dict[str, Any]]
    skipped: list[tuple[int, str, str]]
    digest: str
    final_metrics: dict[str, str]
    invariants: list[dict[str, str]]

    def broke(self, names: Iterable[str] | None = None) -> list[str]:
        """Invariants (of ``names``, default all) that broke at least once."""
        wanted = set(names) if names else None
        return [n for n in self.first_breaches if wanted is None or n in wanted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "last_seq": self.last_seq,
            "last_at": self.last_at,
            "invariants": self.invariants,
            "first_breaches": {k: v.to_dict() for k, v in self.first_breaches.items()},
            "still_open": [v.to_dict() for v in self.still_open],
            "breach_counts": dict(self.breach_counts),
            "assertions": self.assertions,
            "skipped": [{"seq": s, "event_id": i, "reason": r} for s, i, r in self.skipped],
            "digest": self.digest,
            "final_metrics": self.final_metrics,
        }


Source = Any  # a Timeline, a Log (or Log.follow()), a path or bundled name, or an iterable of events/records


def _iter_source(source: Source) -> Iterator[tuple[int, Event, str, str | None]]:
    """(seq, event, where, canonical payload if already known) per event, streamed.

    ``where`` is "" for a log (errors then name the seq).
    """
    if isinstance(source, (str, Path)):
        source = replays.load_timeline(source)
    if isinstance(source, replays.Timeline):
        for index, event in enumerate(source.events):
            yield index + 1, event, source.where[index], None
        return
    if isinstance(source, Following) or isinstance(source, EventLog):
        stream = source if isinstance(source, Following) else source.iter_payloads()
        for seq, event, payload in stream:
            yield seq, event, "", payload
        return
    for index, item in enumerate(source):
        if isinstance(item, Record):
            yield item.seq, item.event, f"seq {item.seq}", item.payload or None
        else:
            yield index + 1, item, f"event {index + 1}", None


class Replay:
    """An in-progress replay; iterate for steps, then read :attr:`summary` (see module doc)."""

    def __init__(
        self,
        source: Source,
        policy: Policy | None = None,
        *,
        invariants: Sequence[Any] | None = None,
        extra_invariants: Sequence[Any] = (),
        until: datetime | None = None,
        books: Books | None = None,
        metrics: bool = True,
    ) -> None:
        self.policy = policy or Policy()
        self.invariants = list(
            invariants if invariants is not None else standard_invariants(self.policy)
        )
        self.invariants += list(extra_invariants)
        names = [inv.name for inv in self.invariants]
        if len(set(names)) != len(names):
            raise InputError(f"invariant names must be unique, got {names}")
        # Per event type, the invariants to run (those without ``event_types`` run for all).
        self._checks: dict[str, list[Any]] = {
            t: [inv for inv in self.invariants if t in getattr(inv, "event_types", (t,))]
            for t in ev.EVENT_TYPES
        }
        self._books = books or Books(self.policy)
        # The fast core (ledger/core) computes run()'s summary without these books; they are
        # rebuilt from the source only if someone reads them afterwards.
        self._books_stale = False
        self._fast = (
            invariants is None
            and not extra_invariants
            and books is None
            and until is None
            and _core.covers(self.policy)
            and _rereadable(source)
        )
        self._ran_fast = False  # run() computed the summary on the fast core (tests read it)
        self._source = source
        self._until = until
        self._open: dict[tuple[str, str], Violation] = {}
        # Per invariant and subject, the ids of the latest events that checked it, newest last
        # (at most CONTRIBUTORS_KEPT: one of these exists for every subject ever checked).
        self._touch: dict[str, dict[str, list[str]]] = {n: {} for n in names}
        self._first: dict[str, Violation] = {}
        self._counts: dict[str, int] = {n: 0 for n in names}
        rank = {n: i for i, n in enumerate(names)}
        # Opened and closed violations are reported in invariant order, then by subject, so a
        # step reads the same whatever order an invariant yields its subjects in (often a set's).
        self._report_order = lambda v: (rank[v.invariant], v.subject)
        self._assertions: list[dict[str, Any]] = []
        self._skipped: list[tuple[int, str, str]] = []
        self._digest = hashlib.sha256()
        self._events = 0
        self._summary: Summary | None = None
        self._metrics: dict[str, str] = {}
        self._want_metrics = metrics

    def _source_events(self) -> Iterator[tuple[int, Event, str, str | None]]:
        for item in _iter_source(self._source):
            if self._until is not None and item[1].at > self._until:
                return
            yield item

    def __iter__(self) -> Iterator[Step]:
        for seq, event, where, payload in self._source_events():
            yield self.step(seq, event, where=where, payload=payload)
        self._summary = self._summarise()

    @property
    def books(self) -> Books:
        """The books after the events replayed so far."""
        if self._books_stale:
            self._books = books_at(self._source, policy=self.policy)
            self._books_stale = False
        return self._books

    @books.setter
    def books(self, value: Books) -> None:
        self._books = value
        self._books_stale = False

    def run(self, heard: Any = None) -> Summary:
        """Replay to the end and return the summary (no :class:`Step` is built).

        With the standard invariants only (no user invariants, no enforce mode, no ``until``)
        and a source that can be read twice, the fast core computes it (``ledger/core``); if
        the history leaves what the core covers, the reference replays it from the start.

        ``heard`` (a :class:`ledger.report.Heard`) gathers what a text summary shows of the
        steps: the subjects each invariant broke for and the notices, the same either way (the
        reference then builds every step to feed it).
        """
        if self._fast and self._events == 0 and self._summary is None:
            summary = self._run_fast(heard)
            if summary is not None:
                self._summary = summary
                self._books_stale = True
                self._ran_fast = True
                return summary
        if heard is not None:
            for step in self:
                heard.add(step)
            return self.summary
        for seq, event, where, payload in self._source_events():
            self._advance(seq, event, where, payload)
        self._summary = self._summarise()
        return self._summary

    def _run_fast(self, heard: Any = None) -> Summary | None:
        """The summary by the fast core, or None where the history leaves what it covers."""
        names = [inv.name for inv in self.invariants]
        try:
            machine = _core.Machine(self.policy, names, _fast_violation)
            digest = hashlib.sha256()
            step, update = machine.step, digest.update
            source = self._source
            if isinstance(source, SQLiteLog):
                # The hot loop, flat: the cursor, one decode, the apply, the digest (no
                # generator between them). One SELECT: one consistent read of the log.
                loads = orjson.loads
                for seq, payload in source.connection.execute(
                    "SELECT seq, payload FROM events ORDER BY seq"
                ):
                    data = loads(payload)
                    # What the reference's reader checks of the fields the core does not read
                    # (a re-chained, tampered payload must stop the replay, named, either way).
                    if (
                        type(data.get("source")) is not list
                        or type(data.get("note", "")) is not str
                    ):
                        raise ValueError(f"seq {seq}: not a canonical record")
                    step(data, seq)
                    update(payload.encode("utf-8") + b"\n")
            else:
                for seq, data, line in _fast_source(source):
                    if (
                        type(data.get("source")) is not list
                        or type(data.get("note", "")) is not str
                    ):
                        raise ValueError(f"seq {seq}: not a canonical record")
                    step(data, seq)
                    update(line)
        except _core.Unsupported:
            return None
        except (EventValueError, KeyError, TypeError, ValueError, AttributeError, IndexError):
            # A stored payload the core cannot read (a tampered, re-chained row; a record that
            # is not canonical): the reference replays from the start and names the seq and
            # the field (ledger.errors), as it always did. The core's figures are never used.
            return None
        if heard is not None:
            for name, subjects in machine.subjects.items():
                heard.subjects.setdefault(name, set()).update(subjects)
            heard.notice_count += machine.notice_count
            heard.notices += machine.notices[: max(heard.KEPT - len(heard.notices), 0)]
        return Summary(
            events=machine.events,
            last_seq=machine.last_seq,
            last_at=machine.last_at,
            first_breaches={n: machine.first[n] for n in names if n in machine.first},
            still_open=sorted(machine.open.values(), key=lambda v: (v.seq, v.invariant, v.subject)),
            breach_counts={n: machine.counts[n] for n in names},
            assertions=machine.assertions,
            skipped=[],
            digest=digest.hexdigest(),
            final_metrics=machine.final_metrics(),
            invariants=[{"name": inv.name, "meaning": inv.meaning} for inv in self.invariants],
        )

    @property
    def summary(self) -> Summary:
        if self._summary is None:
            raise RuntimeError("the replay has not finished: iterate it to the end first")
        return self._summary

    def step(self, seq: int, event: Event, *, where: str = "", payload: str | None = None) -> Step:
        """Apply one event and check every invariant; return the step."""
        change, opened, closed, assertion, skipped = self._advance(seq, event, where, payload)
        if skipped is not None:
            return Step(seq, event, skipped=skipped, metrics=dict(self._metrics))
        notices = list(change.notices)
        if change.withdrawal_refused:
            notices.append(f"withdrawal not paid: {change.withdrawal_refused}")
        if self.books.limits:
            notices += self._credit_notices(change)
        if self._want_metrics:
            self._metrics = self._key_metrics(change)
        return Step(
            seq,
            event,
            tuple(opened),
            tuple(closed),
            dict(self._metrics),
            tuple(notices),
            None,
            assertion,
        )

    def _advance(
        self, seq: int, event: Event, where: str, payload: str | None
    ) -> tuple[Any, list[Violation], list[Violation], dict[str, Any] | None, str | None]:
        """Apply one event, check every invariant, record what opened and closed.

        Returns (change, opened, closed, assertion, reason skipped or None).
        """
        enforce = self.policy.enforce
        try:
            change = self.books.apply(event, seq=seq, undoable=bool(enforce))
        except EventValueError as exc:
            raise InputError(
                [
                    Problem(
                        f"{exc}", event_id=event.id, where=f"{where or f'seq {seq}'} ({event.id})"
                    )
                ]
            ) from None
        ctx = Context(self.books, self.policy, event, change, seq)
        opened: list[Violation] = []
        closed: list[Violation] = []
        # In enforce mode the event may be refused: keep its keys to take it back out.
        refusable: list[tuple[str, str]] | None = [] if enforce else None
        assertion = None
        if isinstance(event, ev.BalanceAsserted):
            assertion = assertion_result(self.books, event)
            assertion = {
                "seq": seq,
                "event_id": event.id,
                "at": ev.format_instant(event.at),
                **assertion,
            }
        open_now, event_id = self._open, event.id
        for inv in self._checks[event.type]:
            name = inv.name
            touch = self._touch[name]
            for status in inv.check(ctx):
                subject = status.subject
                # Remember the latest events that checked this subject ("contributing"), this
                # one included: at most CONTRIBUTORS_KEPT ids, the newest last.
                ids = touch.get(subject)
                if refusable is not None:
                    refusable.append((name, subject))
                if ids is None:
                    touch[subject] = [event_id]
                elif ids[-1] != event_id:
                    ids.append(event_id)
                    if len(ids) > CONTRIBUTORS_KEPT:
                        del ids[0]
                if status.ok:
                    if open_now and (name, subject) in open_now:
                        closed.append(open_now[(name, subject)])
                elif (name, subject) not in open_now:
                    opened.append(self._violation(name, status, seq, event))
        if len(opened) > 1:
            opened.sort(key=self._report_order)
        if len(closed) > 1:
            closed.sort(key=self._report_order)
        if enforce:
            refused = [v for v in opened if v.invariant in enforce]
            if refused:
                self.books.undo()
                self._forget_touches(refusable or [], event_id)
                reason = "; ".join(f"{v.invariant}: {v.detail}" for v in refused)
                self._skipped.append((seq, event.id, reason))
                return change, [], [], None, reason
            self.books.keep()
        for v in opened:
            self._open[(v.invariant, v.subject)] = v
            self._counts[v.invariant] += 1
            self._first.setdefault(v.invariant, v)
        for v in closed:
            del self._open[(v.invariant, v.subject)]
        if assertion is not None:
            self._assertions.append(assertion)
        self._digest.update(
            (payload.encode("utf-8") if payload else ev.canonical_bytes(event)) + b"\n"
        )
        self._events += 1
        return change, opened, closed, assertion, None

    def _forget_touches(self, keys: list[tuple[str, str]], event_id: str) -> None:
        """Take a refused event back out of the "contributing" lists it was noted in.

        Each list then still holds the CONTRIBUTORS_KEPT - 1 latest earlier ids (it held
        CONTRIBUTORS_KEPT with this one), which is all a later violation shows.
        """
        for name, subject in keys:
            touch = self._touch[name]
            ids = touch.get(subject)
            if ids and ids[-1] == event_id:
                ids.pop()
                if not ids:
                    del touch[subject]

    def _violation(self, name: str, status: Any, seq: int, event: Event) -> Violation:
        ids = self._touch[name][status.subject]  # ends with this event's id
        return Violation(
            name,
            status.subject,
            seq,
            event.id,
            ev.format_instant(event.at),
            status.observed,
            status.threshold,
            status.detail,
            tuple(ids),
            event.source,
        )

    def _credit_notices(self, change: Any) -> list[str]:
        books = self.books
        out: list[str] = []
        if not books.limits:
            return out
        for entity, account, asset in change.accounts:
            ref = f"{entity}:{account}"
            limit = books.limit(ref, asset)
            if limit and any(p.entity == entity and p.account == account for p in change.postings):
                balance = books.balance(ref, asset)
                if balance < 0:
                    out.append(
                        f"{ref} is drawing on its credit line: {books.format(balance, asset)} {asset} "
                        f"of -{books.format(limit, asset)} allowed"
                    )
        return sorted(out)

    def _key_metrics(self, change: Any) -> dict[str, str]:
        books = self.books
        metrics: dict[str, str] = {}
        venue = self.focus_venue()
        if venue is not None:
            owed = books.customer_liabilities(venue)
            held = books.custody_value(venue)
            metrics["venue"] = venue
            metrics["customer_liabilities"] = ev.format_decimal(books.round_value(owed))
            metrics["custody"] = ev.format_decimal(books.round_value(held))
            metrics["shortfall"] = ev.format_decimal(
                books.round_value(max(owed - held, Decimal(0)))
            )
            if owed > 0:
                metrics["reserve_ratio"] = fmt_ratio(books.liquid_reserves(venue) / owed)
            if change is None:
                for key, table in (("unpriced_owed", "cust_liab"), ("unpriced_custody", "custody")):
                    unpriced = books.unpriced_owed(venue, table=table)
                    if unpriced:
                        metrics[key] = ", ".join(
                            f"{amount:,f} {asset}" for asset, amount in unpriced.items()
                        )
                # The summary speaks in the venue's own terms (ledger/kinds.py): a bank or a
                # lender by its depositors, equity, liquidity and capital, not by custody.
                family = _kinds.family(books.kind_of(venue))
                metrics["family"] = family
                if family in ("bank", "lender", "protocol"):
                    metrics["insured"] = ev.format_decimal(
                        books.round_value(books.insured_deposits(venue))
                    )
                    metrics["equity"] = ev.format_decimal(books.round_value(books.equity(venue)))
                    metrics["equity_book"] = ev.format_decimal(
                        books.round_value(books.equity_book(venue))
                    )
                    for name, ratio in (
                        ("liquidity_coverage", books.liquidity_coverage(venue)),
                        ("capital_ratio", books.capital_ratio(venue) if family == "bank" else None),
                    ):
                        if ratio is not None:
                            metrics[name] = fmt_ratio(ratio)
        if change is None and books.failed:
            metrics["failed"] = ", ".join(
                f"{entity} ({method.replace('_', ' ')}; equity at market "
                f"{books.round_value(books.equity(entity)):,f} {books.quote})"
                for entity, method in sorted(books.failed.items())
            )
        if change is not None and change.price_asset is not None:
            # A price in a quote that does not chain to the timeline's (a missing link, a cycle)
            # leaves the asset unpriced: say so rather than fail (it was a KeyError here).
            price = books.prices.get(change.price_asset)
            metrics["price"] = f"{change.price_asset}=" + (
                ev.format_decimal(price)
                if price is not None
                else f"unpriced ({books.unpriced(change.price_asset)})"
            )
        return metrics

    def focus_venue(self) -> str | None:
        """The venue with the largest customer liabilities (ties: alphabetically first)."""
        venues = self.books.venues
        if not venues:
            return None
        return min(venues, key=lambda v: (-self.books.customer_liabilities(v), v))

    def _summarise(self) -> Summary:
        order = [inv.name for inv in self.invariants]
        return Summary(
            events=self._events,
            last_seq=self.books.last_seq,
            last_at=ev.format_instant(self.books.last_at) if self.books.last_at else None,
            first_breaches={n: self._first[n] for n in order if n in self._first},
            still_open=sorted(self._open.values(), key=lambda v: (v.seq, v.invariant, v.subject)),
            breach_counts={n: self._counts[n] for n in order},
            assertions=list(self._assertions),
            skipped=list(self._skipped),
            digest=self._digest.hexdigest(),
            final_metrics=self._key_metrics(None),
            invariants=[{"name": inv.name, "meaning": inv.meaning} for inv in self.invariants],
        )


def _rereadable(source: Source) -> bool:
    """Whether ``source`` can be read again from the start (the fast core may hand over)."""
    return isinstance(
        source, (str, Path, replays.Timeline, EventLog, list, tuple)
    ) and not isinstance(source, Following)


def _fast_source(source: Source) -> Iterator[tuple[int, dict[str, Any], bytes]]:
    """(seq, payload dict, canonical bytes + newline) per event, for the fast core.

    A stored log is read row by row and each payload decoded once (no Event object); events
    in memory are encoded the way the log stores them (the same bytes, the same digest).
    """
    loads = orjson.loads
    if isinstance(source, (str, Path)):
        source = replays.load_timeline(source)
    if isinstance(source, EventLog):
        pages = getattr(source, "_pages", None)
        if pages is not None:  # SQLite: the stored text as it is
            for seq, payload in pages("seq, payload", 1, None, 20_000):
                yield seq, loads(payload), payload.encode("utf-8") + b"\n"
        else:
            for seq, _event, payload in source.iter_payloads():
                yield seq, loads(payload), payload.encode("utf-8") + b"\n"
        return
    items = source.events if isinstance(source, replays.Timeline) else source
    for index, item in enumerate(items):
        seq = index + 1
        if isinstance(item, Record):
            seq, item = item.seq, item.event
        data = ev.to_dict(item)
        yield seq, data, orjson.dumps(data, option=orjson.OPT_SORT_KEYS) + b"\n"


def _fast_violation(
    name: str,
    subject: str,
    data: dict[str, Any],
    seq: int,
    observed: str,
    threshold: str,
    detail: str,
    ids: Sequence[str],
) -> Violation:
    return Violation(
        name,
        subject,
        seq,
        data["id"],
        data["at"],
        observed,
        threshold,
        detail,
        tuple(ids),
        tuple(data["source"]),
    )


def replay(
    source: Source,
    policy: Policy | None = None,
    *,
    invariants: Sequence[Any] | None = None,
    extra_invariants: Sequence[Any] = (),
    until: datetime | None = None,
) -> Replay:
    """Replay ``source`` (a timeline, a log, a path or bundled name, or events) under ``policy``.

    Returns a :class:`Replay`: iterate it for steps, or call ``.run()`` for the summary.
    Raises :class:`InputError` if an event is impossible given the history before it.
    """
    return Replay(
        source, policy, invariants=invariants, extra_invariants=extra_invariants, until=until
    )


def books_at(
    source: Source,
    *,
    policy: Policy | None = None,
    seq: int | None = None,
    at: datetime | None = None,
) -> Books:
    """The books after the last event with seq <= ``seq`` and effective time <= ``at``.

    Applies events without checking invariants (faster than a replay).
    """
    books = Books(policy)
    for s, event, where, _ in _iter_source(source):
        if (seq is not None and s > seq) or (at is not None and event.at > at):
            break
        try:
            books.apply(event, seq=s)
        except EventValueError as exc:
            raise InputError(
                [Problem(str(exc), event_id=event.id, where=where or f"seq {s}")]
            ) from None
    return books


def enforcing_guard(log: EventLog, policy: Policy) -> Any:
    """A ``guard`` for :meth:`Log.append` that refuses events breaking the policy's hard rules.

    It replays the stored log (O(log length), invariants included, so that breaches already open
    are not refused again), then the new events with every invariant checked; the first event that opens a violation of an enforced invariant raises
    :class:`InvariantRefused` and nothing is written.
    """

    def guard(_registry: Registry, new_events: Sequence[Event]) -> None:
        if not policy.enforce:
            return
        # Replay the stored history first, so that violations already open in it are known:
        # only *new* breaches are refused, not the continuation of old ones.
        checker = Replay(log, attrs.evolve(policy, enforce=frozenset()), metrics=False)
        for _ in checker:
            pass
        for seq, event in enumerate(new_events, start=checker.books.last_seq + 1):
            step = checker.step(seq, event)
            refused = [v for v in step.opened if v.invariant in policy.enforce]
            if refused:
                v = refused[0]
                raise InvariantRefused(
                    f"invariant {v.invariant} violated at event {event.id!r}: {v.detail} "
                    f"(observed {v.observed}, threshold {v.threshold}); nothing was written",
                    violation=v,
                )

    return guard
