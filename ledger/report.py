"""Rendering replays and books for people (text) and machines (JSON, JSON Lines).

The JSON shapes are documented in ``docs/replay-json.md`` and pinned by a test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import events as ev
from ledger.books import Books
from ledger.replay import Step, Summary

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
    f"{'seq':>5}  {'effective (UTC)':<16}  {'event':<44} {'owed':>9} {'custody':>9} {'reserve':>7}  breaches"
)


def step_line(step: Step) -> str:
    """One readable row: time, event, key metrics, breaches opened (!) and closed (+)."""
    e = step.event
    when = ev.format_instant(e.at)[:16].replace("T", " ")
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
        f"{step.seq:>5}  {when:<16}  {label:<44} {_money(m.get('customer_liabilities')):>9} "
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
            f"  {name:<26} first broke at seq {first.seq}, {first.at[:16].replace('T', ' ')}, "
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
            out.append(f"  {v.invariant:<26} {v.subject:<28} since seq {v.seq} ({v.at[:10]})")
        if len(summary.still_open) > 20:
            out.append(f"  ... and {len(summary.still_open) - 20} more (see --format json)")
    if summary.assertions:
        out.append("")
        out.append("The record against the books (balance_asserted):")
        for a in summary.assertions:
            verdict = "matches" if a["ok"] else "DOES NOT MATCH"
            out.append(
                f"  {a['at'][:10]} {a['subject']:<40} record {_grouped(a['expected'])} ± "
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


def write_rows(rows: Iterable[dict[str, Any]], out: Any, fmt: str) -> int:
    """Write dict rows as JSON Lines or CSV (header from the first row); return the count."""
    import csv

    count = 0
    writer = None
    for row in rows:
        if fmt == "jsonl":
            out.write(dumps(row) + "\n")
        else:
            flat = {k: (json.dumps(v, default=_json_default) if isinstance(v, (list, dict)) else ("" if v is None else str(v) if not isinstance(v, Decimal) else format(v, "f"))) for k, v in row.items()}
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(flat), lineterminator="\n")
                writer.writeheader()
            writer.writerow(flat)
        count += 1
    return count


def steps_jsonl(steps: Iterable[Step]) -> Iterable[str]:
    for step in steps:
        yield dumps({"kind": "step", **step.to_dict()})
