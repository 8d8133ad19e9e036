"""The bundled FTX 2022 replay, pinned: first breaches, the record's figures, the story it tells,
provenance, and a lossless round trip. See docs/ftx-2022.md for the same numbers in prose.

A reviewed change of replays/ftx_2022.toml is expected to update the golden values here (and the
tables in docs/ftx-2022.md, which ``test_doc_tables_match_the_replay`` keeps in step).
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import events as ev
import replays
from ledger.cli import cli
from ledger.policy import Policy
from ledger.replay import Replay, books_at, replay
from ledger.store import Log

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ftx-2022.md"

# -- golden values (from a reviewed run of the bundled file) -----------------------------------------
GOLDEN_DIGEST = "2707a520867ebd7254db1c395fbebc90afe773072436876cc4550f8de14a7082"
GOLDEN_FIRST_BREACHES = {  # invariant -> (date, event id) of its first breach
    "segregation": ("2019-12-31", "fiat-2019"),
    "reserve-ratio": ("2019-12-31", "fiat-2019"),
    "collateral-coverage": ("2021-06-30", "genesis-ftt-pledge"),
    "own-token-concentration": ("2019-07-29", "px-ftt-listing"),
    "related-party-exposure": ("2019-12-31", "fiat-2019"),
    "withdrawals-honoured": ("2022-11-06", "run-2022-11-06-d"),
    "assertions": ("2022-06-30", "assert-alameda-liabilities-jun30"),
    # The general model's invariants: the insiders spent what Alameda lent them; Alameda's own
    # equity at market turns negative when FTT falls on 8 November.
    "solvency": ("2022-06-19", "related-party-spent"),
}
HELD_THROUGHOUT = {
    "conservation",
    "no-unauthorised-negative",
    # No bank, no deposit-taking lender with depositors, no loan with a liquidation threshold.
    "liquidity-coverage",
    "capital-ratio",
    "loan-health",
}
# The record's range for the customer shortfall at the petition date: CFTC "over $8B" (S25) and
# the FT document 8.9 - 0.9 (S18) at the low end; debtors' $8.9B / $9.3B (S33, S35) at the top.
RECORD_SHORTFALL = (Decimal("8000000000"), Decimal("9300000000"))
MODEL_SHORTFALL = Decimal("8900000000.00")  # $8.0B fiat@ + $0.9B on Alameda's main account
EVENTS_IN_FILE = 190
FIXED = datetime(2026, 1, 1, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED


# -- one replay, shared ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timeline() -> replays.Timeline:
    return replays.load_timeline("ftx-2022")


@pytest.fixture(scope="module")
def traced(timeline):
    """Replay once; keep every step and a few figures from the books after each event."""
    run = Replay(timeline)
    steps, figures = [], []
    customer_refs = [ref for ref, info in timeline_accounts(timeline).items() if info == "customer"]
    for step in run:
        b = run.books
        debt = b.secured_debt("ftx:alameda")
        negatives = {}
        for ref in customer_refs:
            for asset in ("USD", "USDC"):
                balance = b.balance(ref, asset)
                if balance < 0:
                    negatives[(ref, asset)] = (balance, b.limit(ref, asset))
        figures.append(
            {
                "custody_usdc": b.balance("ftx:custody", "USDC"),
                "alameda_usdc": b.balance("ftx:alameda", "USDC"),
                "negatives": negatives,
                "coverage": (b.collateral_value("ftx:alameda") / debt) if debt else None,
                "shortfall": b.round_value(b.customer_shortfall("ftx")),
            }
        )
        steps.append(step)
    return steps, figures, run.summary


def timeline_accounts(timeline) -> dict[str, str]:
    return {e.account: e.purpose for e in timeline.events if e.type == "account_opened"}


def step_of(steps, event_id: str):
    return next(s for s in steps if s.event.id == event_id)


def index_of(steps, event_id: str) -> int:
    return next(i for i, s in enumerate(steps) if s.event.id == event_id)


def episodes(steps, invariant: str, subject: str) -> list[tuple[str, str | None]]:
    """(event that opened, event that closed or None) for each violation of one subject."""
    out: list[list[str | None]] = []
    for s in steps:
        for v in s.opened:
            if (v.invariant, v.subject) == (invariant, subject):
                out.append([s.event.id, None])
        for v in s.closed:
            if (v.invariant, v.subject) == (invariant, subject):
                out[-1][1] = s.event.id
    return [(a, b) for a, b in out]


# -- golden: first breaches, held invariants, digest -----------------------------------------------
def test_first_breach_table_is_golden(traced):
    _, _, summary = traced
    got = {name: (v.at[:10], v.event_id) for name, v in summary.first_breaches.items()}
    assert got == GOLDEN_FIRST_BREACHES


def test_conservation_and_no_unauthorised_negative_hold_throughout(traced):
    _, _, summary = traced
    held = {name for name, count in summary.breach_counts.items() if count == 0}
    assert held == HELD_THROUGHOUT
    assert set(summary.breach_counts) == HELD_THROUGHOUT | set(GOLDEN_FIRST_BREACHES)


def test_replay_covers_the_whole_file(timeline, traced):
    _, _, summary = traced
    assert len(timeline.events) == EVENTS_IN_FILE
    assert summary.events == EVENTS_IN_FILE and summary.skipped == []
    assert summary.digest == GOLDEN_DIGEST


# -- the shortfall at the filing, and the record's figures ----------------------------------------
def test_final_shortfall_is_in_the_records_range_and_pinned(timeline, traced):
    steps, _, summary = traced
    filing = step_of(steps, "ftx-chapter-11")
    books = books_at(timeline, seq=filing.seq)
    shortfall = books.round_value(books.measure("ftx", "customer_shortfall"))
    low, high = RECORD_SHORTFALL
    assert low <= shortfall <= high
    assert shortfall == MODEL_SHORTFALL
    # It is exactly what Alameda owes FTX: the fiat@ account plus its main account.
    owed_by_alameda = -(
        books.amount(books.balance("ftx:fiat-at", "USD"), "USD")
        + books.amount(books.balance("ftx:alameda", "USDC"), "USDC")
    )
    assert owed_by_alameda == shortfall
    # Nothing after the filing changes it.
    assert summary.final_metrics["shortfall"] == "8900000000"
    petition = next(a for a in summary.assertions if a["event_id"] == "assert-shortfall-petition")
    assert petition["ok"] and petition["actual"] == "8900000000 USD"


def test_every_record_figure_matches_except_the_lenders_sheet_liabilities(timeline, traced):
    _, _, summary = traced
    results = {a["event_id"]: a for a in summary.assertions}
    asserted = [e.id for e in timeline.events if e.type == "balance_asserted"]
    assert list(results) == asserted and len(asserted) == 9
    failing = [eid for eid, a in results.items() if not a["ok"]]
    assert failing == ["assert-alameda-liabilities-jun30"]
    # The gap, explained: the books carry Alameda's $11.0B owed to FTX (hidden from the sheet
    # given to lenders, S29) plus Voyager's $728.2M, against the sheet's ~$8B.
    gap = results["assert-alameda-liabilities-jun30"]
    assert gap["actual"] == "11728200000 USD" and gap["gap"] == "3728200000 USD"
    june30 = books_at(timeline, at=datetime(2022, 6, 30, 23, 59, 59, tzinfo=UTC))
    lines = june30.balance_sheet("alameda")["liabilities"]
    assert lines == {
        "claim on ftx:alameda USDC": Decimal("3000000000.00"),
        "claim on ftx:fiat-at USD": Decimal("8000000000.00"),
        "loan:voyager-alameda (voyager) USDC": Decimal("728200000.00"),
    }
    assert [v.subject for v in summary.still_open if v.invariant == "assertions"] == [
        "alameda/total_liabilities"
    ]


# -- the story, fact by fact -----------------------------------------------------------------------
def test_segregation_breaks_at_the_first_fiat_at_deposit(timeline, traced):
    steps, _, summary = traced
    fiat = [e for e in timeline.events if e.type == "deposit" and e.asset == "USD"]
    assert fiat and all(e.landed == "alameda:bank" and e.owed_by == "ftx:fiat-at" for e in fiat)
    first = summary.first_breaches["segregation"]
    assert first.event_id == fiat[0].id == "fiat-2019"
    assert first.subject == "ftx/USD" and first.observed == "0.00 USD in custody"
    step = step_of(steps, "fiat-2019")
    assert any(
        "landed at alameda:bank, not with ftx; owed on ftx:fiat-at" in n for n in step.notices
    )
    # Never repaired: open from the first routed deposit to the end.
    assert episodes(steps, "segregation", "ftx/USD") == [("fiat-2019", None)]


def test_alameda_goes_negative_only_under_its_credit_line(timeline, traced):
    steps, figures, summary = traced
    assert summary.breach_counts["no-unauthorised-negative"] == 0
    for step, fig in zip(steps, figures):
        for (ref, asset), (balance, limit) in fig["negatives"].items():
            assert ref in ("ftx:alameda", "ftx:fiat-at"), (step.event.id, ref)
            assert limit > 0 and balance >= -limit, (step.event.id, ref, asset)
    first = next(i for i, f in enumerate(figures) if ("ftx:alameda", "USDC") in f["negatives"])
    assert steps[first].event.id == "draw-2020"
    assert steps[first].event.at.date().isoformat() == "2020-12-31"
    assert (
        "ftx:alameda is drawing on its credit line: -200,000,000.00 USDC of -1,000,000,000.00 allowed"
        in steps[first].notices
    )
    draws = [s for s in steps if s.event.type == "withdrawal" and s.event.account == "ftx:alameda"]
    assert len(draws) == 7
    assert all(
        any(n.startswith("ftx:alameda is drawing on its credit line") for n in s.notices)
        for s in draws
    )
    # The exemption is what keeps it legal: without Alameda's lines the same draw is a breach.
    stripped = [
        e
        for e in timeline.events
        if not (e.type == "credit_line_granted" and e.account == "ftx:alameda")
    ]
    without = replay(stripped).run()
    breach = without.first_breaches["no-unauthorised-negative"]
    assert (breach.event_id, breach.subject) == ("draw-2020", "ftx:alameda/USDC")


def test_alameda_ftt_is_over_a_quarter_of_its_assets_at_june_30(timeline, traced):
    steps, _, _ = traced
    books = books_at(timeline, at=datetime(2022, 6, 30, 23, 59, 59, tzinfo=UTC))
    share = books.own_token_value("alameda") / books.total_assets("alameda")
    assert share > Decimal("0.25")
    assert share.quantize(Decimal("0.0001")) == Decimal("0.3720")
    assert books.round_value(books.holdings_value("alameda", "FTT")) == Decimal("5819999993.56")
    # The concentration breach for Alameda runs from the 2021 high until FTT's crash wipes out
    # the value that made it (after the crash FTT is under a quarter because it is worth little).
    assert episodes(steps, "own-token-concentration", "alameda") == [
        ("ftt-to-alameda", "draw-2020"),
        ("px-ftt-ath", "px-ftt-2022-11-08"),
    ]


def test_collateral_coverage_of_alamedas_account_collapses_with_ftt_on_2022_11_08(traced):
    steps, figures, summary = traced
    # Broken from the pledge until the derived October reconciling entry, then open again from
    # the first FTT price of 2022-11-08, and still open at the end.
    assert episodes(steps, "collateral-coverage", "ftx:alameda") == [
        ("ftt-collateral-at-ftx", "alameda-return-in"),
        ("px-ftt-2022-11-08-early", None),
    ]
    crash = index_of(steps, "px-ftt-2022-11-08-early")
    reopened = next(v for v in steps[crash].opened if v.subject == "ftx:alameda")
    assert steps[crash].event.type == "price_updated" and steps[crash].event.asset == "FTT"
    assert reopened.at.startswith("2022-11-08")
    before = figures[crash - 1]["coverage"]
    after = figures[crash]["coverage"]
    close = figures[index_of(steps, "px-ftt-2022-11-08")]["coverage"]
    q = Decimal("0.0001")
    assert before >= 1 > after
    assert (before.quantize(q), after.quantize(q), close.quantize(q)) == (
        Decimal("1.0222"),
        Decimal("0.7109"),
        Decimal("0.2548"),
    )
    # No price update between the reconciling entry and 2022-11-08 broke it.
    reconciled = index_of(steps, "alameda-return-in")
    assert all(f["coverage"] >= 1 for f in figures[reconciled:crash])
    assert any(
        v.invariant == "collateral-coverage" and v.subject == "ftx:alameda"
        for v in summary.still_open
    )


def test_withdrawals_stop_being_honoured_in_the_run_and_stay_broken(traced):
    steps, figures, summary = traced
    first = summary.first_breaches["withdrawals-honoured"]
    assert (first.at[:10], first.event_id) == ("2022-11-06", "run-2022-11-06-d")
    opened = [s for s in steps if any(v.invariant == "withdrawals-honoured" for v in s.opened)]
    assert [s.event.id for s in opened] == [
        "run-2022-11-06-d",
        "run-2022-11-07-b",
        "run-2022-11-08-b",
    ]
    assert all("2022-11-06" <= ev.format_instant(s.event.at)[:10] <= "2022-11-08" for s in opened)
    still = [v for v in summary.still_open if v.invariant == "withdrawals-honoured"]
    assert [(v.subject, v.event_id) for v in still] == [("ftx", "run-2022-11-08-b")]
    paid, refused = [], []
    for i, s in enumerate(steps):
        if s.event.type == "withdrawal" and s.event.account == "ftx:customers":
            moved = figures[i - 1]["custody_usdc"] - figures[i]["custody_usdc"]
            (paid if moved else refused).append((s.event.id, moved))
    assert sum(m for _, m in paid) == 419_000_000_000  # $4.19B, in cents
    assert [eid for eid, _ in refused] == [
        "run-2022-11-06-d",
        "run-2022-11-06-e",
        "run-2022-11-07-b",
        "run-2022-11-08-b",
        "run-2022-11-09-after-halt",
    ]


def test_the_halt_refuses_every_later_request(traced):
    steps, figures, _ = traced
    halt = index_of(steps, "ftx-halt")
    assert ev.format_instant(steps[halt].event.at) == "2022-11-08T14:00:00Z"
    later = [
        i
        for i in range(halt + 1, len(steps))
        if steps[i].event.type == "withdrawal" and steps[i].event.account.startswith("ftx:")
    ]
    assert [steps[i].event.id for i in later] == ["run-2022-11-09-after-halt"]
    for i in later:
        assert "withdrawal not paid: ftx has halted withdrawals" in steps[i].notices
        assert figures[i]["custody_usdc"] == figures[i - 1]["custody_usdc"]
    assert {f["custody_usdc"] for f in figures[halt:]} == {1_000_000_000}  # $10M left, untouched


def test_genesis_recall_is_repaid_with_customer_money(timeline, traced):
    steps, figures, _ = traced
    draw, repay = index_of(steps, "draw-2022-06-recall"), index_of(steps, "genesis-recall-repaid")
    assert repay == draw + 1 and steps[draw].event.at == steps[repay].event.at
    assert figures[draw - 1]["custody_usdc"] - figures[draw]["custody_usdc"] == 170_000_000_000
    assert figures[draw]["shortfall"] == Decimal("11000000000.00")
    books = books_at(timeline, seq=steps[repay].seq)
    assert books.registry.loans["genesis-alameda"].outstanding == 0
    assert ("collateral-coverage", "genesis-alameda") in {
        (v.invariant, v.subject) for v in steps[repay].closed
    }


# -- provenance ------------------------------------------------------------------------------------
def test_every_source_key_resolves_and_every_source_is_used(timeline, traced):
    _, _, summary = traced
    used: set[str] = set()
    for event in timeline.events:
        assert event.source, f"{event.id} cites nothing"
        missing = set(event.source) - set(timeline.sources)
        assert not missing, f"{event.id} cites {sorted(missing)}, not in [sources]"
        used |= set(event.source)
    assert used == set(timeline.sources), f"unused sources: {sorted(set(timeline.sources) - used)}"
    for v in [*summary.first_breaches.values(), *summary.still_open]:
        assert set(v.source) <= set(timeline.sources)


def test_doc_cites_only_keys_of_the_source_table(timeline):
    cited = set(re.findall(r"\bS\d\d\b", DOC.read_text(encoding="utf-8")))
    assert cited and cited <= set(timeline.sources), sorted(cited - set(timeline.sources))


def test_doc_tables_match_the_replay(traced):
    _, _, summary = traced
    doc = DOC.read_text(encoding="utf-8")
    for name, v in summary.first_breaches.items():
        row = f"| `{name}` | {v.at[:10]} | {v.seq} | `{v.event_id}` |"
        assert row in doc, f"docs/ftx-2022.md first-breach row is stale: {row}"
    for name in HELD_THROUGHOUT:
        assert f"| `{name}` | held throughout |" in doc
    for a in summary.assertions:
        row = f"| {a['at'][:10]} | {a['seq']} | `{a['event_id']}` |"
        assert row in doc, f"docs/ftx-2022.md assertion row is stale: {row}"
    assert GOLDEN_DIGEST in doc


# -- round trip ------------------------------------------------------------------------------------
def test_round_trip_through_jsonl_keeps_the_head_hash_and_the_digest(timeline, tmp_path):
    first = Log.open(tmp_path / "a.db", create=True, clock=fixed_clock)
    try:
        first.append(timeline.events, where=timeline.where)
        exported = tmp_path / "ftx.jsonl"
        with exported.open("w", encoding="utf-8") as fh:
            assert replays.dump_jsonl(first.iter_events(), fh) == EVENTS_IN_FILE
        head_a = first.head()
    finally:
        first.close()
    again = replays.load_jsonl(exported)
    second = Log.open(tmp_path / "b.db", create=True, clock=fixed_clock)
    try:
        second.append(again.events, where=again.where)
        assert second.head() == head_a and head_a.seq == EVENTS_IN_FILE
        digest_from_log = replay(second).run().digest
    finally:
        second.close()
    assert replay(timeline).run().digest == digest_from_log == GOLDEN_DIGEST
    buffer = io.StringIO()
    replays.dump_jsonl(again.events, buffer)
    assert buffer.getvalue() == exported.read_text(encoding="utf-8")


# -- the command line ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    db = tmp_path_factory.mktemp("ftx") / "ftx.db"
    result = CliRunner().invoke(cli, ["replay", "ftx-2022", "--db", str(db), "--steps", "none"])
    return db, result


def test_cli_first_run_records_and_reports_breaches(recorded):
    db, result = recorded
    assert result.exit_code == 1, result.output
    assert f"{db}: appended {EVENTS_IN_FILE} event(s)" in result.output
    assert GOLDEN_DIGEST in result.output


def test_cli_rerun_appends_nothing(recorded):
    db, _ = recorded
    again = CliRunner().invoke(cli, ["replay", "ftx-2022", "--db", str(db), "--steps", "none"])
    assert again.exit_code == 1, again.output
    assert f"appended 0 event(s), {EVENTS_IN_FILE} already recorded" in again.output
    with Log.open(db, readonly=True) as log:
        assert log.head().seq == EVENTS_IN_FILE


def test_cli_fail_on_conservation_exits_zero(recorded):
    db, _ = recorded
    result = CliRunner().invoke(
        cli,
        ["replay", "ftx-2022", "--db", str(db), "--steps", "none", "--fail-on", "conservation"],
    )
    assert result.exit_code == 0, result.output


def test_cli_balances_match_the_books(recorded, timeline):
    db, _ = recorded
    at = "2022-11-07T23:00:00Z"
    result = CliRunner().invoke(
        cli, ["balances", "--db", str(db), "--at", at, "--entity", "ftx", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    books = books_at(timeline, at=datetime(2022, 11, 7, 23, tzinfo=UTC))
    assert shown["seq"] == books.last_seq == 135
    prices = {books.quote: Decimal(1), **{a: Decimal(p) for a, p in shown["prices"].items()}}
    owed_minus_held = sum(
        (Decimal(r["owed_to_customers"]) - Decimal(r["in_custody"])) * prices[r["asset"]]
        for r in shown["coverage"]
        if r["venue"] == "ftx"
    )
    assert (
        books.round_value(max(owed_minus_held, Decimal(0)))
        == books.round_value(books.customer_shortfall("ftx"))
        == Decimal("8900000000.00")
    )
    fiat_at = next(r for r in shown["balances"] if (r["account"], r["asset"]) == ("fiat-at", "USD"))
    assert fiat_at["view"] == "holder"
    assert Decimal(fiat_at["balance"]) == books.amount(books.balance("ftx:fiat-at", "USD"), "USD")
    assert Decimal(fiat_at["balance"]) == Decimal("-8000000000")
    sheet = shown["balance_sheets"]["ftx"]
    expected = books.balance_sheet("ftx")
    for key in ("total_assets", "total_liabilities", "equity"):
        assert Decimal(sheet[key]) == expected[key]


# -- what if segregation had been enforced (docs/ftx-2022.md, section 6) --------------------------
def test_enforcing_segregation_moves_the_hole_out_of_customer_books(timeline):
    summary = replay(timeline, Policy(enforce=frozenset({"segregation"}))).run()
    assert summary.breach_counts["segregation"] == 0
    skipped = [eid for _, eid, _ in summary.skipped]
    assert len(skipped) == 16
    assert skipped[:3] == ["fiat-2019", "fiat-2020", "draw-2020"]
    assert summary.final_metrics["shortfall"] == "0"
    neg = summary.first_breaches["no-unauthorised-negative"]
    assert (neg.event_id, neg.subject) == ("alameda-fiat-spend", "alameda:bank/USD")
    assert "collateral-coverage" not in {
        v.invariant for v in summary.still_open if v.subject == "ftx:alameda"
    }
