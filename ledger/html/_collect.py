"""Walk a replay once and keep what the HTML report draws: exact decimal strings, bounded size.

Downsampling (the rule the report states on its page, in ``RULE``): a replay of at most
``MAX_POINTS`` events keeps every step. A longer one is cut into ``BUCKETS`` runs of equal
length; from each run the report keeps its last step and the steps where the focus venue's
reserve ratio was lowest and highest, and it always keeps the first step, every step that
opened or closed a breach and every ``balance_asserted`` step. Every breach is therefore on
the charts, whatever the log's length. Balance sheets are kept at every step up to
``MAX_SHEET_STEPS`` events, beyond that at evenly spaced steps plus the steps that opened a
breach (the first ``MAX_SHEET_STEPS`` of them).

Money stays exact: every figure is a decimal string (``format_decimal``); the page parses them
to numbers only to place marks on a chart, and its tables show the strings.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import events as ev
from ledger.books import _OFF_SHEET, VALUE_CONTEXT, Books, _line_name
from ledger.invariants import fmt_ratio
from ledger.replay import Replay, Step, Violation

MAX_POINTS = 2_000
BUCKETS = 1_000
MAX_SHEET_STEPS = 200
#: A balance sheet side lists at most this many lines: the largest, then one for the rest.
MAX_SHEET_LINES = 30
#: Loans drawn on the coverage chart: every loan whose coverage broke, then the largest others
#: up to this many in all.
MAX_LOANS_DRAWN = 12
#: The breaches table on the page lists at most this many rows (the charts keep every breach).
MAX_BREACH_ROWS = 2_000

RULE = (
    f"Up to {MAX_POINTS:,} events every step is drawn. Beyond that the history is cut into "
    f"{BUCKETS:,} runs of equal length and each run keeps its last step and the steps with the "
    "lowest and highest reserve ratio; the first step, every step that opened or closed a breach "
    "and every balance assertion are always kept, so every breach is on the charts."
)

Progress = Callable[[int], None]


def _dec(value: Decimal) -> str:
    return ev.format_decimal(value)


class Collector:
    """Feed it every step of a replay (:meth:`add`), then :meth:`finish` with the summary."""

    def __init__(self, replay: Replay, *, total: int | None) -> None:
        self.run = replay
        self.books: Books = replay.books
        self.total = total
        self.every_step = total is None or total <= MAX_POINTS
        self.bucket_size = 1 if self.every_step else math.ceil(total / BUCKETS)  # type: ignore[operator]
        self.sheet_every = (
            1 if total is None or total <= MAX_SHEET_STEPS else math.ceil(total / MAX_SHEET_STEPS)
        )
        self.index = 0
        self.rows: dict[int, dict[str, Any]] = {}  # seq -> kept metrics row
        self._bucket: dict[str, tuple[Decimal, dict[str, Any]] | None] = {"min": None, "max": None}
        self.prices: list[dict[str, Any]] = []
        self._last_price: dict[str, str] = {}
        self.loan_points: dict[str, list[tuple[int, str, Decimal, Decimal]]] = {}
        self._loans_active: set[str] = set()
        self.loan_debt_max: dict[str, Decimal] = {}
        self.violations: list[dict[str, Any]] = []
        self._open: dict[tuple[str, str], int] = {}
        self.markers: list[dict[str, Any]] = []
        self.sheet_steps: list[dict[str, Any]] = []
        self.sheet_pool: list[dict[str, Any]] = []
        self._pool_index: dict[str, int] = {}
        self._breach_sheets = 0
        self.entities: dict[str, dict[str, str]] = {}
        self.cited: dict[str, list[int]] = {}  # key -> [count, first seq]
        self.first_at: str | None = None
        self.last_step: Step | None = None
        self.events_seen = 0

    # -- per step ------------------------------------------------------------------------------
    def add(self, step: Step) -> None:
        self.index += 1
        event = step.event
        at = ev.format_instant(event.at)
        if self.first_at is None:
            self.first_at = at
        self.last_step = step
        for key in event.source:
            seen = self.cited.get(key)
            if seen is None:
                self.cited[key] = [1, step.seq]
            else:
                seen[0] += 1
        if event.type.startswith(("loan_", "collateral_")):
            self._note_loan(event)
        if isinstance(event, ev.EntityRegistered):
            self.entities[event.entity] = {
                "name": event.name,
                "kind": event.kind,
                "group": event.group or "",
            }
        for v in step.closed:
            index = self._open.pop((v.invariant, v.subject), None)
            if index is not None:
                self.violations[index]["closed_seq"] = step.seq
                self.violations[index]["closed_at"] = at
        for v in step.opened:
            self._open[(v.invariant, v.subject)] = len(self.violations)
            self.violations.append(_violation_row(v))
        if step.opened:
            self.markers.append(
                {
                    "seq": step.seq,
                    "at": at,
                    "event_id": event.id,
                    "type": event.type,
                    "invariants": " ".join(sorted({v.invariant for v in step.opened})),
                    "detail": step.opened[0].detail
                    + (f" (and {len(step.opened) - 1} more)" if len(step.opened) > 1 else ""),
                    "source": ", ".join(event.source),
                }
            )
        must = (
            self.every_step
            or self.index == 1
            or bool(step.opened or step.closed)
            or step.assertion is not None
        )
        if must:
            self._keep(step, at)
        else:
            self._candidate(step, at)
        if self.index % self.bucket_size == 0 or (
            self.total is not None and self.index == self.total
        ):
            self._end_bucket(step, at)
        if (
            self.index % self.sheet_every == 0
            or self.index == 1
            or (step.opened and self._breach_sheets < MAX_SHEET_STEPS)
        ):
            if step.opened and self.index % self.sheet_every:
                self._breach_sheets += 1
            self._sheet(step, at)
        self.events_seen += 1

    def _row(self, step: Step, at: str) -> dict[str, Any]:
        books = self.books
        venues = []
        for venue in sorted(books.venues):
            owed = books.customer_liabilities(venue)
            liquid = books.liquid_reserves(venue)
            if books.applies("liquidity-coverage", venue):
                # A bank or a lender is drawn by its deposits, liquid assets and equity (at market
                # and at book), and its liquidity coverage: it is no custodian (ledger/kinds.py).
                coverage = books.liquidity_coverage(venue)
                venues.append(
                    {
                        "venue": venue,
                        "owed": _dec(books.round_value(owed)),
                        "liquid": _dec(books.round_value(liquid)),
                        "equity": _dec(books.round_value(books.equity(venue))),
                        "equity_book": _dec(books.round_value(books.equity_book(venue))),
                        "ratio": None if coverage is None else fmt_ratio(coverage),
                    }
                )
                continue
            venues.append(
                {
                    "venue": venue,
                    "owed": _dec(books.round_value(owed)),
                    "custody": _dec(books.round_value(books.custody_value(venue))),
                    "liquid": _dec(books.round_value(liquid)),
                    "ratio": fmt_ratio(liquid / owed) if owed > 0 else None,
                }
            )
        return {"seq": step.seq, "at": at, "event_id": step.event.id, "venues": venues}

    def _keep(self, step: Step, at: str) -> None:
        if step.seq in self.rows:
            return
        self.rows[step.seq] = self._row(step, at)
        self._sample_prices(step.seq, at)
        self._sample_loans(step.seq, at)

    def _candidate(self, step: Step, at: str) -> None:
        ratio_text = step.metrics.get("reserve_ratio")
        if ratio_text is None:
            return
        ratio = Decimal(ratio_text)
        low, high = self._bucket["min"], self._bucket["max"]
        if low is None or ratio < low[0]:
            self._bucket["min"] = (ratio, self._row(step, at))
        if high is None or ratio > high[0]:
            self._bucket["max"] = (ratio, self._row(step, at))

    def _end_bucket(self, step: Step, at: str) -> None:
        for name in ("min", "max"):
            kept = self._bucket[name]
            if kept is not None:
                self.rows.setdefault(kept[1]["seq"], kept[1])
            self._bucket[name] = None
        self._keep(step, at)

    def _sample_prices(self, seq: int, at: str) -> None:
        for asset, price in sorted(self.books.prices.items()):
            text = _dec(price)
            if self._last_price.get(asset) != text:
                self._last_price[asset] = text
                self.prices.append({"seq": seq, "at": at, "asset": asset, "price": text})

    def _note_loan(self, event: ev.Event) -> None:
        """Remember what an event secures or lends (a loan, or an account with collateral)."""
        loan = getattr(event, "loan", None)
        if loan:
            self._loans_active.add(loan)
        elif event.type.startswith("collateral_") and getattr(event, "account", None):
            self._loans_active.add(event.account)  # type: ignore[attr-defined]

    def _sample_loans(self, seq: int, at: str) -> None:
        books = self.books
        for target in sorted(self._loans_active):
            debt = books.secured_debt(target)
            cover = books.collateral_value(target)
            if debt <= 0:
                if not cover:
                    self._loans_active.discard(target)  # repaid and released: nothing to draw
                continue
            if debt > self.loan_debt_max.get(target, Decimal(0)):
                self.loan_debt_max[target] = debt
            # Raw figures; only the loans drawn are formatted, at the end.
            self.loan_points.setdefault(target, []).append((seq, at, cover, debt))

    def _sheet(self, step: Step, at: str) -> None:
        sheets: dict[str, int] = {}
        for entity, sheet in _balance_sheets(self.books).items():
            text = repr(sheet)
            index = self._pool_index.get(text)
            if index is None:
                index = self._pool_index[text] = len(self.sheet_pool)
                self.sheet_pool.append(sheet)
            sheets[entity] = index
        self.sheet_steps.append(
            {
                "seq": step.seq,
                "at": at,
                "event_id": step.event.id,
                "type": step.event.type,
                "sheets": sheets,
            }
        )

    # -- the end -------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Everything the page needs, as plain JSON-ready data (exact decimal strings)."""
        step = self.last_step
        if step is not None:
            at = ev.format_instant(step.event.at)
            self._end_bucket(step, at)
            if not self.sheet_steps or self.sheet_steps[-1]["seq"] != step.seq:
                self._sheet(step, at)
        series = []
        for seq in sorted(self.rows):
            row = self.rows[seq]
            for venue in row["venues"]:
                series.append({"seq": seq, "at": row["at"], "event_id": row["event_id"], **venue})
        if step is not None:  # prices hold to the end of the axis
            last_at = ev.format_instant(step.event.at)
            for asset, text in sorted(self._last_price.items()):
                self.prices.append({"seq": step.seq, "at": last_at, "asset": asset, "price": text})
        broke = {v["subject"] for v in self.violations if v["invariant"] == "collateral-coverage"}
        order = sorted(
            self.loan_points,
            key=lambda t: (t not in broke, -self.loan_debt_max.get(t, Decimal(0)), t),
        )
        drawn = [t for t in order if t in broke]
        drawn += [t for t in order if t not in broke][: max(0, MAX_LOANS_DRAWN - len(drawn))]
        round_value = self.books.round_value
        loans = [
            {
                "seq": seq,
                "at": at,
                "loan": t,
                "coverage": fmt_ratio(cover / debt),
                "debt": _dec(round_value(debt)),
                "collateral": _dec(round_value(cover)),
            }
            for t in drawn
            for seq, at, cover, debt in self.loan_points[t]
        ]
        return {
            "series": series,
            "prices": self.prices,
            "loans": loans,
            "loans_drawn": drawn,
            "loans_total": len(self.loan_points),
            "violations": self.violations,
            "markers": self.markers,
            "bands": self._bands(),
            "sheet_steps": self.sheet_steps,
            "sheet_pool": self.sheet_pool,
            "entities": self.entities,
            "cited": {k: {"count": c, "first_seq": s} for k, (c, s) in sorted(self.cited.items())},
            "first_at": self.first_at,
            "kept_steps": len(self.rows),
            "kept_seqs": sorted(self.rows),
            "every_step": self.every_step,
        }

    def _bands(self) -> list[dict[str, Any]]:
        """Per invariant and subject, the runs when it held and when it was broken.

        An invariant that never broke is one row, ``every subject``, held throughout.
        """
        if self.last_step is None or self.first_at is None:
            return []
        start_at, start_seq = self.first_at, 1
        end_at = ev.format_instant(self.last_step.event.at)
        end_seq = self.last_step.seq
        by_row: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for v in self.violations:
            by_row.setdefault((v["invariant"], v["subject"]), []).append(v)
        bands: list[dict[str, Any]] = []
        for inv in self.run.invariants:
            subjects = sorted(s for (name, s) in by_row if name == inv.name)
            if not subjects:
                bands.append(
                    _band(inv.name, "every subject", "held", start_at, start_seq, end_at, end_seq)
                )
                continue
            for subject in subjects:
                cursor_at, cursor_seq = start_at, start_seq
                for v in by_row[(inv.name, subject)]:
                    if v["at"] > cursor_at or v["seq"] > cursor_seq:
                        bands.append(
                            _band(
                                inv.name, subject, "held", cursor_at, cursor_seq, v["at"], v["seq"]
                            )
                        )
                    close_at = v.get("closed_at") or end_at
                    close_seq = v.get("closed_seq") or end_seq
                    bands.append(
                        _band(inv.name, subject, "broken", v["at"], v["seq"], close_at, close_seq)
                    )
                    cursor_at, cursor_seq = close_at, close_seq
                if v.get("closed_seq") is not None:
                    bands.append(
                        _band(inv.name, subject, "held", cursor_at, cursor_seq, end_at, end_seq)
                    )
        return bands


def _balance_sheets(books: Books) -> dict[str, dict[str, Any]]:
    """Every entity's :meth:`Books.balance_sheet`, the same lines and the same exact figures, in
    one pass over the balances (``balance_sheet`` sorts them all for each entity it is asked
    for: too slow for a thousand steps of a log with 10,000 customer accounts). A side with more
    than ``MAX_SHEET_LINES`` lines shows the largest and one line for the rest (its exact sum)."""
    sides: dict[str, tuple[dict[str, Decimal], dict[str, Decimal]]] = {}
    for (entity, account, asset), minor in books.balances.items():
        if not minor:
            continue
        cls, other = books.classify(entity, account)
        if cls in _OFF_SHEET:
            continue
        assets, liabilities = sides.setdefault(entity, (defaultdict(Decimal), defaultdict(Decimal)))
        line = f"{_line_name(cls, account, other)} {asset}"
        if minor > 0:
            assets[line] = VALUE_CONTEXT.add(assets[line], books.value(minor, asset))
        else:
            liabilities[line] = VALUE_CONTEXT.add(liabilities[line], books.value(-minor, asset))
    out = {}
    for entity in sorted(sides):
        assets, liabilities = sides[entity]
        total_a, total_l = _total(assets.values()), _total(liabilities.values())
        out[entity] = {
            "assets": _lines(books, assets),
            "liabilities": _lines(books, liabilities),
            "total_assets": _dec(books.round_value(total_a)),
            "total_liabilities": _dec(books.round_value(total_l)),
            "equity": _dec(books.round_value(VALUE_CONTEXT.subtract(total_a, total_l))),
        }
    return out


def _total(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:  # not sum(): the default context rounds to 28 digits
        total = VALUE_CONTEXT.add(total, value)
    return total


def _lines(books: Books, lines: dict[str, Decimal]) -> list[list[str]]:
    names = sorted(lines)
    if len(names) > MAX_SHEET_LINES:
        largest = set(sorted(names, key=lambda n: (-lines[n], n))[: MAX_SHEET_LINES - 1])
        rest = [n for n in names if n not in largest]
        shown = [[n, _dec(books.round_value(lines[n]))] for n in names if n in largest]
        other = _total(lines[n] for n in rest)
        return shown + [[f"{len(rest):,} other lines", _dec(books.round_value(other))]]
    return [[n, _dec(books.round_value(lines[n]))] for n in names]


def _band(
    invariant: str, subject: str, state: str, start: str, start_seq: int, end: str, end_seq: int
) -> dict[str, Any]:
    return {
        "invariant": invariant,
        "subject": subject,
        "row": f"{invariant} · {subject}",
        "state": state,
        "start": start,
        "start_seq": start_seq,
        "end": end,
        "end_seq": end_seq,
    }


def _violation_row(v: Violation) -> dict[str, Any]:
    return {
        "invariant": v.invariant,
        "subject": v.subject,
        "seq": v.seq,
        "at": v.at,
        "event_id": v.event_id,
        "observed": v.observed,
        "threshold": v.threshold,
        "detail": v.detail,
        "source": list(v.source),
        "closed_seq": None,
        "closed_at": None,
    }


def collect(
    replay: Replay, *, total: int | None, progress: Progress | None = None
) -> tuple[dict[str, Any], Any]:
    """Replay to the end through a :class:`Collector`; return (page data, summary).

    ``progress(events_done)`` is called every 1% of ``total`` (when known).
    """
    collector = Collector(replay, total=total)
    tick = max(1, (total or 0) // 100) if total else 0
    steps: Iterable[Step] = replay
    for step in steps:
        collector.add(step)
        if progress is not None and tick and collector.index % tick == 0:
            progress(collector.index)
    data = collector.finish()
    return data, replay.summary
