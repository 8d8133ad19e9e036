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
from ledger.tables import Column, Stream, amount, money, render

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


def step_columns(total: int | None = None, quote: str = "USD") -> list[Column]:
    """The step table's columns (a :class:`ledger.tables.Stream`): money in whole units of
    the quote, grouped, one form for every row."""
    return [
        Column("seq", right=True, width=max(3, len(str(total or 0)))),
        Column("effective", width=20),
        Column("event", width=44, shrink=True),
        Column(f"owed ({quote})", right=True, width=15),
        Column(f"custody ({quote})", right=True, width=15),
        Column("reserve", right=True, width=7),
        Column("breaches (! opened, + closed)"),
    ]


def step_marks(step: Step) -> list[str]:
    """Breaches opened (``!invariant(subject)``) and closed (``+...``), the assertion's
    verdict, and a skipped event's mark."""
    if step.skipped:
        return ["SKIPPED (enforced)"]
    marks = [f"!{v.invariant}({v.subject})" for v in step.opened] + [f"+{v.invariant}({v.subject})" for v in step.closed]
    if step.assertion is not None:
        marks.append("assert ok" if step.assertion["ok"] else f"assert OFF by {_grouped(step.assertion['gap'])}")
    return marks


def step_cells(step: Step) -> list[str]:
    """One row of the step table: seq, time, event, key metrics, marks."""
    e = step.event
    m = step.metrics
    return [
        str(step.seq),
        ev.format_instant(e.at),
        f"{e.type} {e.id}",
        money(m.get("customer_liabilities")),
        money(m.get("custody")),
        m.get("reserve_ratio", ""),
        " ".join(step_marks(step)),
    ]


def step_line(step: Step, total: int | None = None, quote: str = "USD") -> str:
    """One step as a line of the step table (plain text)."""
    return Stream(step_columns(total, quote), terminal=False).row(step_cells(step))


def _grouped(text: str) -> str:
    """'8000000000 USD' -> '8,000,000,000 USD' (display only; JSON keeps plain decimals)."""
    number, _, unit = text.partition(" ")
    try:
        value = Decimal(number)
    except ArithmeticError:
        return text
    return f"{value:,}" + (f" {unit}" if unit else "")


class Heard:
    """What a text replay gathers from its steps for the summary: the notices (the first
    :attr:`KEPT` of them, and how many in all) and, per invariant, the subjects it broke for."""

    KEPT = 50

    def __init__(self) -> None:
        self.notices: list[tuple[int, str, str, str]] = []
        self.notice_count = 0
        self.subjects: dict[str, set[str]] = {}

    def add(self, step: Step) -> None:
        for v in step.opened:
            self.subjects.setdefault(v.invariant, set()).add(v.subject)
        for notice in step.notices:
            self.notice_count += 1
            if len(self.notices) < self.KEPT:
                self.notices.append((step.seq, ev.format_instant(step.event.at), step.event.id, notice))


def _counted(summary: Summary, name: str, heard: Heard | None) -> str:
    """What a breach count counts: failed assertions of the record, or violations opened and
    the subjects they were for."""
    if name == "assertions":
        failed = sum(1 for a in summary.assertions if not a["ok"])
        return f"{failed} of {len(summary.assertions)} assertion(s) of the record failed"
    opened = summary.breach_counts[name]
    text = f"opened {opened} time(s)"
    if heard is not None and name in heard.subjects:
        subjects = sorted(heard.subjects[name])
        text += f" for {len(subjects)} subject(s)" + (f" ({', '.join(subjects)})" if len(subjects) <= 4 else "")
    return text


def summary_text(
    summary: Summary, *, title: str = "", quote: str = "USD", terminal: bool = False, heard: Heard | None = None
) -> list[str]:
    """The first-breach table, what is still open, the assertions, the notices (when ``heard``
    gathered them), and the digest (tables laid out for a terminal when ``terminal``)."""
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
            f"{_counted(summary, name, heard)}"
        )
    if summary.still_open:
        out.append("")
        out.append(f"Still broken at the end ({len(summary.still_open)}):")
        out += render(
            [Column("invariant"), Column("subject"), Column("since seq", right=True), Column("effective"), Column("event")],
            [[v.invariant, v.subject, str(v.seq), v.at, v.event_id] for v in summary.still_open[:20]],
            indent=2, terminal=terminal,
        )
        if len(summary.still_open) > 20:
            out.append(f"  ... and {len(summary.still_open) - 20} more (see --format json)")
    if summary.assertions:
        out.append("")
        out.append("The record against the books (balance_asserted):")
        out += render(
            [Column("effective"), Column("measure"), Column("record", right=True), Column("within", right=True),
             Column("books", right=True), Column("unit"), Column("verdict")],
            [
                [a["at"], a["subject"], _grouped(a["expected"]).partition(" ")[0], _within(a),
                 _grouped(a["actual"]).partition(" ")[0], a["expected"].partition(" ")[2],
                 "matches" if a["ok"] else "DOES NOT MATCH"]
                for a in summary.assertions
            ],
            indent=2, terminal=terminal,
        )
    if summary.skipped:
        out.append("")
        out.append(f"Skipped by enforced rules ({len(summary.skipped)}):")
        for seq, eid, reason in summary.skipped[:20]:
            out.append(f"  seq {seq} {eid}: {reason}")
    if heard is not None and heard.notice_count:
        out += ["", f"Notices ({heard.notice_count}): what the books noted that is not a breach:"]
        out += render(
            [Column("seq", right=True), Column("effective"), Column("event"), Column("notice", wrap=True)],
            [[str(s), at, eid, n] for s, at, eid, n in heard.notices], indent=2, terminal=terminal,
        )
        if heard.notice_count > len(heard.notices):
            out.append(f"  ... and {heard.notice_count - len(heard.notices)} more (every step's notices: --format json)")
    m = summary.final_metrics
    if m.get("failed"):
        out.append("")
        out.append(f"Failed and resolved: {m['failed']}.")
    unpriced = f" (and {m['unpriced_owed']}, unpriced: not in that figure)" if m.get("unpriced_owed") else ""
    if m.get("venue") and m.get("family") in ("bank", "lender", "protocol"):
        # A deposit-taker is told by its depositors, equity, liquidity and capital (ledger/kinds.py).
        if not m.get("failed"):
            out.append("")
        ratios = [
            f"{label} {m[key]}"
            for key, label in (("liquidity_coverage", "liquidity coverage"), ("capital_ratio", "capital ratio"))
            if key in m
        ]
        out.append(
            f"At the end, {m['venue']} owes depositors {Decimal(m['customer_liabilities']):,} {quote}{unpriced} "
            f"({Decimal(m['insured']):,} insured); its equity is {Decimal(m['equity']):,} at market "
            f"and {Decimal(m['equity_book']):,} at book value" + (f" ({'; '.join(ratios)})" if ratios else "") + "."
        )
    elif m.get("venue"):
        out.append("")
        out.append(
            f"At the end, {m['venue']} owes customers {Decimal(m['customer_liabilities']):,} {quote}{unpriced} and holds "
            f"{Decimal(m['custody']):,}"
            + (f" (and {m['unpriced_custody']}, unpriced)" if m.get("unpriced_custody") else "")
            + f" for them in custody: shortfall {Decimal(m['shortfall']):,} "
            f"(reserve ratio {m.get('reserve_ratio', 'n/a')})."
        )
    out.append(f"History digest (SHA-256 of the replayed events): {summary.digest}")
    return out


def _within(assertion: dict[str, Any]) -> str:
    """How the books must compare with a record's figure: ``± 500,000`` for a figure to match,
    ``at least`` / ``at most`` (and the tolerance, if any) for a one-sided one."""
    bound = assertion.get("bound", "")
    tolerance = _grouped(assertion["tolerance"])
    if bound.startswith(">="):
        return "at least" + ("" if tolerance == "0" else f" - {tolerance}")
    if bound.startswith("<="):
        return "at most" + ("" if tolerance == "0" else f" + {tolerance}")
    return f"± {tolerance}"


def balances_text(books: Books, *, entity: str | None = None, terminal: bool = False) -> list[str]:
    """What ``balances`` prints: the balances (customer accounts from the holder's side), each
    entity's balance sheet in the quote asset, the coverage of what venues owe customers, and
    the loans. Equity is the balance sheet's one figure in the quote, not a line per asset."""
    quote = books.quote
    rows = [
        [r["entity"], r["account"] + (" (holder view)" if r["view"] == "holder" else ""), r["asset"], amount(r["balance"]), amount(r["value"])]
        for r in balance_rows(books, entity=entity)
        if r["account"] != "equity"
    ]
    out = ["Balances:"]
    out += render(
        [Column("entity"), Column("account"), Column("asset"), Column("balance", right=True), Column(f"value ({quote})", right=True)],
        rows, indent=2, terminal=terminal,
    )
    entities = [entity] if entity else sorted({k[0] for k in books.balances})
    sheets = [(e, books.balance_sheet(e)) for e in entities]
    out += ["", f"Balance sheets ({quote}):"]
    out += render(
        [Column("entity"), Column("assets", right=True), Column("liabilities", right=True), Column("equity", right=True)],
        [[e, amount(s["total_assets"]), amount(s["total_liabilities"]), amount(s["equity"])] for e, s in sheets],
        indent=2, terminal=terminal,
    )
    coverage = [c for c in books.coverage() if entity is None or c["venue"] == entity]
    if coverage:
        out += ["", "Coverage of what venues owe customers:"]
        out += render(
            [Column("venue"), Column("asset"), Column("owed to customers", right=True), Column("in custody", right=True), Column("shortfall", right=True)],
            [[c["venue"], c["asset"], amount(c["owed_to_customers"]), amount(c["in_custody"]), amount(c["shortfall"])] for c in coverage],
            indent=2, terminal=terminal,
        )
    loans = [
        r for r in books.loans_view()
        if entity is None or entity in (r.get("lender"), r.get("borrower")) or str(r.get("target", "")).startswith(entity + ":")
    ]
    if loans:
        out += ["", f"Loans and secured accounts (values in {quote}):"]
        out += render(
            [Column("loan"), Column("lender"), Column("borrower"), Column("asset"), Column("outstanding", right=True),
             Column("debt value", right=True), Column("collateral after haircuts", right=True), Column("defaulted")],
            [
                [str(r["target"]), str(r.get("lender") or "-"), str(r.get("borrower") or "-"), str(r.get("asset") or "-"),
                 amount(r.get("outstanding")), amount(r.get("debt_value")), amount(r.get("collateral_haircut_value")),
                 "yes" if r.get("defaulted") else "no"]
                for r in loans
            ],
            indent=2, terminal=terminal,
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
