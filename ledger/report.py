"""Rendering replays and books for people (text) and machines (JSON, JSON Lines).

The JSON shapes are documented in ``docs/replay-json.md`` and pinned by a test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

import events as ev
from ledger.books import Books
from ledger.replay import Step, Summary

if TYPE_CHECKING:
    from ledger.policy import Policy
    from ledger.store.contract import EventLog

REPORT_FORMAT = 1


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # plain notation, the asset's decimals kept
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, default=_json_default, sort_keys=True, ensure_ascii=False)


def _money(text: str | None) -> str:
    if text is None or text == "":
        return ""
    value = Decimal(text)
    if abs(value) >= 1_000_000_000:
        return f"{value / 1_000_000_000:,.2f}B"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.1f}M"
    return f"{value:,.0f}"


STEP_HEADER = (
    f"{'seq':>5}  {'effective':<20}  {'event':<44} {'owed':>9} {'custody':>9} {'reserve':>7}  breaches"
)


def step_line(step: Step) -> str:
    """One readable row: time, event, key metrics, breaches opened (!) and closed (+)."""
    e = step.event
    when = ev.format_instant(e.at)
    label = f"{e.type} {e.id}"
    if len(label) > 44:
        label = label[:43] + "…"
    m = step.metrics
    marks = [f"!{v.invariant}" for v in step.opened] + [f"+{v.invariant}" for v in step.closed]
    if step.skipped:
        marks = ["SKIPPED (enforced)"]
    if step.assertion is not None:
        marks.append("assert ok" if step.assertion["ok"] else f"assert OFF by {_grouped(step.assertion['gap'])}")
    return (
        f"{step.seq:>5}  {when:<20}  {label:<44} {_money(m.get('customer_liabilities')):>9} "
        f"{_money(m.get('custody')):>9} {m.get('reserve_ratio', ''):>7}  {' '.join(marks)}"
    ).rstrip()


def _grouped(text: str) -> str:
    """'8000000000 USD' -> '8,000,000,000 USD' (display only; JSON keeps plain decimals)."""
    number, _, unit = text.partition(" ")
    try:
        value = Decimal(number)
    except ArithmeticError:
        return text
    return f"{value:,}" + (f" {unit}" if unit else "")


def summary_text(summary: Summary, *, title: str = "", quote: str = "USD") -> list[str]:
    """The first-breach table, what is still open, the assertions, and the digest."""
    out: list[str] = []
    out.append("")
    out.append(f"Summary{' of ' + title if title else ''}: {summary.events} events replayed, up to {summary.last_at}")
    out.append("")
    out.append("First breach of each invariant:")
    for inv in summary.invariants:
        name = inv["name"]
        first = summary.first_breaches.get(name)
        if first is None:
            out.append(f"  {name:<26} held throughout")
            continue
        out.append(
            f"  {name:<26} first broke at seq {first.seq}, {first.at}, "
            f"event {first.event_id} [{', '.join(first.source)}]"
        )
        out.append(f"  {'':<26}   {first.detail}")
        out.append(
            f"  {'':<26}   observed {first.observed}; threshold {first.threshold}; "
            f"{summary.breach_counts[name]} breach(es) in all"
        )
    if summary.still_open:
        out.append("")
        out.append(f"Still broken at the end ({len(summary.still_open)}):")
        for v in summary.still_open[:20]:
            out.append(f"  {v.invariant:<26} {v.subject:<28} since seq {v.seq} ({v.at})")
        if len(summary.still_open) > 20:
            out.append(f"  ... and {len(summary.still_open) - 20} more (see --format json)")
    if summary.assertions:
        out.append("")
        out.append("The record against the books (balance_asserted):")
        for a in summary.assertions:
            verdict = "matches" if a["ok"] else "DOES NOT MATCH"
            out.append(
                f"  {a['at']} {a['subject']:<40} record {_grouped(a['expected'])} ± "
                f"{_grouped(a['tolerance'])}, books {_grouped(a['actual'])}: {verdict}"
            )
    if summary.skipped:
        out.append("")
        out.append(f"Skipped by enforced rules ({len(summary.skipped)}):")
        for seq, eid, reason in summary.skipped[:20]:
            out.append(f"  seq {seq} {eid}: {reason}")
    m = summary.final_metrics
    if m.get("venue"):
        out.append("")
        out.append(
            f"At the end, {m['venue']} owes customers {Decimal(m['customer_liabilities']):,} {quote} and holds "
            f"{Decimal(m['custody']):,} for them in custody: shortfall {Decimal(m['shortfall']):,} "
            f"(reserve ratio {m.get('reserve_ratio', 'n/a')})."
        )
    out.append(f"History digest (SHA-256 of the replayed events): {summary.digest}")
    return out


def balances_text(books: Books, *, entity: str | None = None) -> list[str]:
    """Balances by entity, account and asset, then each entity's balance sheet."""
    out = [f"{'entity':<12} {'account':<34} {'asset':<6} {'balance':>24} {'value (' + books.quote + ')':>22}"]
    for (ent, account, asset), minor in books.iter_balances(entity):
        cls, _ = books.classify(ent, account)
        shown = -minor if cls == "customer" else minor
        label = account + (" (holder view)" if cls == "customer" else "")
        value = books.round_value(books.value(shown, asset))
        out.append(f"{ent:<12} {label:<34} {asset:<6} {books.amount(shown, asset):>24,f} {value:>22,}")
    entities = [entity] if entity else sorted({k[0] for k in books.balances})
    for ent in entities:
        sheet = books.balance_sheet(ent)
        out.append("")
        out.append(
            f"{ent}: assets {sheet['total_assets']:,}  liabilities {sheet['total_liabilities']:,}  "
            f"equity {sheet['equity']:,} {books.quote}"
        )
    return out


#: ``balances --format csv``: one row a balance, as the text table shows it.
BALANCE_CSV_COLUMNS = ("entity", "account", "asset", "balance", "view", "value", "quote")


def balance_rows(books: Books, *, entity: str | None = None) -> Iterator[dict[str, Any]]:
    """Each balance as a row: customer accounts from the holder's side (``view`` "holder"),
    with its value in the quote asset (0 where the asset has no price)."""
    for (ent, account, asset), minor in books.iter_balances(entity):
        holder = books.classify(ent, account)[0] == "customer"
        shown = -minor if holder else minor
        yield {
            "entity": ent,
            "account": account,
            "asset": asset,
            "balance": books.amount(shown, asset),
            "view": "holder" if holder else "own",
            "value": books.round_value(books.value(shown, asset)),
            "quote": books.quote,
        }


def books_dict(books: Books, *, entity: str | None = None) -> dict[str, Any]:
    entities = [entity] if entity else sorted({k[0] for k in books.balances})
    return {
        "format": REPORT_FORMAT,
        "seq": books.last_seq,
        "at": ev.format_instant(books.last_at) if books.last_at else None,
        "quote": books.quote,
        "balances": [
            {
                "entity": e,
                "account": a,
                "asset": s,
                "balance": books.amount(-m if books.classify(e, a)[0] == "customer" else m, s),
                "view": "holder" if books.classify(e, a)[0] == "customer" else "own",
            }
            for (e, a, s), m in books.iter_balances(entity)
        ],
        "balance_sheets": {e: books.balance_sheet(e) for e in entities},
        "coverage": books.coverage(),
        "loans": books.loans_view(),
        "prices": {a: p for a, p in sorted(books.prices.items())},
    }


# -- CSV and JSON Lines exports -----------------------------------------------------------------
#: The columns of the first vocabulary, in their published order: a field added later goes
#: after them, so that a spreadsheet or script reading exports by position keeps working.
_FIRST_COLUMNS = (
    "type, v, id, at, source, note, entity, name, kind, group, asset, scale, issuer, account, "
    "purpose, holder, amount, landed, owed_by, from_account, paid_from, to, to_account, loan, "
    "lender, borrower, principal, disbursed_from, disbursed_to, rate, maturity, paid_to, "
    "credited, credited_asset, quote, price, limit, venue, court, case, title, measure, "
    "expected, tolerance"
).split(", ")


def _event_csv_columns() -> tuple[str, ...]:
    """The first vocabulary's columns, then every later field in :data:`events.EVENT_TYPES`
    order, each once, where it first appears."""
    columns = dict.fromkeys(_FIRST_COLUMNS)
    for cls in ev.EVENT_TYPES.values():
        for field in attrs.fields(cls):
            columns.setdefault(field.name, None)
    return tuple(columns)


#: The columns of ``bankrun export --what events --format csv``: one set for every event type,
#: empty where a type lacks the field. Documented in docs/replay-json.md.
EVENT_CSV_COLUMNS: tuple[str, ...] = _event_csv_columns()

# Cells starting with these are run as formulas by spreadsheets (OWASP "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def csv_cell(text: str) -> str:
    """``text`` made safe to open in a spreadsheet (OWASP "CSV Injection").

    A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a single
    quote in front (``'=HYPERLINK(...)``), so the spreadsheet shows it as text instead of running
    it. A cell that is a plain decimal number (``-100.00``, ``+5``: an optional sign, digits, an
    optional fraction, nothing else) is left as it is: it cannot run anything, and negative
    amounts stay numbers.
    """
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, (list, tuple, dict, set, frozenset)):
        text = json.dumps(value, default=_json_default, sort_keys=True, ensure_ascii=False)
    else:
        text = str(value)
    return csv_cell(text)


def write_rows(rows: Iterable[dict[str, Any]], out: Any, fmt: str, *, columns: Sequence[str] | None = None) -> int:
    """Write dict rows as JSON Lines (``fmt="jsonl"``) or CSV (``"csv"``); return the count.

    CSV: the header is ``columns`` (written even when there are no rows), or without it the
    first row's keys. A row's missing keys are empty cells; a key with no column raises
    ``ValueError`` (nothing is dropped silently). ``None`` is an empty cell, a list or dict is
    JSON text, and every cell passes through :func:`csv_cell`.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r} (expected jsonl or csv)")
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(dumps(row) + "\n")
            count += 1
        return count
    known: frozenset[str] | None = None
    if columns is not None:
        out.write(_csv_line(columns))
        known = frozenset(columns)
    for row in rows:
        if known is None:
            columns = list(row)
            known = frozenset(columns)
            out.write(_csv_line(columns))
        assert columns is not None
        if len(row) > len(known) or not known.issuperset(row):
            extra = next(key for key in row if key not in known)
            raise ValueError(
                f"row {count + 1} has {extra!r}, which is not one of the CSV columns ({', '.join(columns)})"
            )
        out.write(_csv_line([_csv_value(row.get(name)) for name in columns]))
        count += 1
    return count


def _csv_line(cells: Sequence[str]) -> str:
    """One CSV record, RFC 4180 quoting: a cell holding a comma, a double quote, a line feed or
    a carriage return is quoted, its quotes doubled. (The csv module, before Python 3.12, leaves
    a carriage return unquoted when the line ends in a bare line feed, which splits the row.)"""
    if len(cells) == 1 and not cells[0]:
        return '""\n'  # a record of one empty cell, not a blank line
    return ",".join(
        '"' + cell.replace('"', '""') + '"' if _NEEDS_QUOTES.search(cell) else cell for cell in cells
    ) + "\n"


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def write_event_rows(items: Iterable[ev.Event], out: Any, fmt: str) -> int:
    """Write events: ``jsonl`` is the canonical form (re-importable with ``bankrun append``);
    ``csv`` has the fixed :data:`EVENT_CSV_COLUMNS`, empty where a type lacks a field, the
    ``source`` list as JSON text. Returns the count."""
    if fmt == "jsonl":
        count = 0
        for event in items:
            out.write(ev.canonical_json(event))
            out.write("\n")
            count += 1
        return count
    return write_rows((ev.to_dict(e) for e in items), out, fmt, columns=EVENT_CSV_COLUMNS)


EXPORTS = ("events", "postings", "violations")


def export(log: EventLog, what: str, fmt: str, out: Any, policy: Policy | None = None) -> int:
    """``bankrun export``: the log's ``events``, ``postings`` or ``violations`` as ``jsonl`` or
    ``csv`` to the text stream ``out``; returns how many rows were written.

    Postings are replayed under ``policy`` (the default policy when None) as are violations.
    """
    if what not in EXPORTS:
        raise ValueError(f"unknown export {what!r} (expected one of: {', '.join(EXPORTS)})")
    if what == "events":
        return write_event_rows(log.iter_events(), out, fmt)
    from ledger.forensics import Investigation  # forensics replays; only exports need it

    inv = Investigation(log, policy)
    if what == "postings":
        return write_rows(inv.iter_postings(), out, fmt)
    rows = (
        {**v, "contributing": " ".join(v["contributing"]), "source": " ".join(v["source"])}
        for v in inv.iter_violations()
    )
    return write_rows(rows, out, fmt)


def steps_jsonl(steps: Iterable[Step]) -> Iterable[str]:
    for step in steps:
        yield dumps({"kind": "step", **step.to_dict()})
