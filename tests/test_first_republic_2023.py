"""The bundled First Republic 2023 replay, pinned: first breaches, the failure day, the loss at
failure against the record's range, the record's figures, the story and its provenance. See
docs/first-republic-2023.md for the same numbers in prose (a test keeps its tables in step).

A reviewed change of replays/first_republic_2023.toml is expected to update the golden values
here and the tables in docs/first-republic-2023.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import replays
from ledger.replay import Replay, books_at

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "first-republic-2023.md"
FACTS = ROOT / "docs" / "first-republic-2023-facts.md"
NAME = "first-republic-2023"

# -- golden values (from a reviewed run of the bundled file) -----------------------------------------
GOLDEN_DIGEST = "df6eb5d80166e96de486facb53538934613e09d0ec83faeb92fe4f803e4d9344"
EVENTS_IN_FILE = 138
GOLDEN_FIRST_BREACHES = {  # invariant -> (date, seq, event id) of its first breach
    "liquidity-coverage": ("2022-12-31", 53, "buy-frc-loans-2022"),
    "solvency": ("2022-12-31", 57, "px-loans-2022"),
    "assertions": ("2023-03-31", 91, "assert-cet1-q1"),
    "capital-ratio": ("2023-05-01", 112, "impair-frc-loans"),
}
HELD_THROUGHOUT = {
    "conservation",
    "no-unauthorised-negative",
    "segregation",
    "reserve-ratio",
    "collateral-coverage",
    "own-token-concentration",
    "related-party-exposure",
    "withdrawals-honoured",
    "loan-health",
}
# The day the record says the bank failed: closed by the California DFPI, the FDIC appointed
# receiver, on 2023-05-01 (S01).
FAILURE_DAY = "2023-05-01"
# The record's range for the cost to the Deposit Insurance Fund: "about $13B" at the closing (S01),
# read as within 10% (11.7B), up to the $15.6B final estimate of 2023-06-05 (S02).
RECORD_DIF_COST = (Decimal("11700000000"), Decimal("15600000000"))
MODEL_DIF_COST = Decimal("12335000000.00")
# Book equity once the receiver has marked the assets to the purchase prices (derived, S11).
MODEL_HOLE_AT_FAILURE = Decimal("-10586953300.00")


# -- one replay, shared ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timeline() -> replays.Timeline:
    return replays.load_timeline(NAME)


@pytest.fixture(scope="module")
def traced(timeline):
    run = Replay(timeline)
    steps = list(run)
    return steps, run.summary, run.books


def step_of(steps, event_id: str):
    return next(s for s in steps if s.event.id == event_id)


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
    _, summary, _ = traced
    got = {name: (v.at[:10], v.seq, v.event_id) for name, v in summary.first_breaches.items()}
    assert got == GOLDEN_FIRST_BREACHES


def test_every_other_invariant_holds_throughout(traced):
    _, summary, _ = traced
    held = {name for name, count in summary.breach_counts.items() if count == 0}
    assert held == HELD_THROUGHOUT
    assert set(summary.breach_counts) == HELD_THROUGHOUT | set(GOLDEN_FIRST_BREACHES)


def test_replay_covers_the_whole_file(timeline, traced):
    _, summary, _ = traced
    assert len(timeline.events) == EVENTS_IN_FILE
    assert summary.events == EVENTS_IN_FILE and summary.skipped == []
    assert summary.digest == GOLDEN_DIGEST


# -- the failure day and the loss ------------------------------------------------------------------
def test_the_failure_is_flagged_by_an_invariant_on_the_day_of_the_record(timeline, traced):
    steps, summary, _ = traced
    closure = step_of(steps, "dfpi-closes")
    resolution = step_of(steps, "purchase-and-assumption")
    assert closure.event.at.date().isoformat() == FAILURE_DAY
    assert resolution.event.method == "purchase_and_assumption"
    assert resolution.event.to_entity == "jpm" and resolution.event.authority == "fdic"
    first = summary.first_breaches["capital-ratio"]
    assert first.at[:10] == FAILURE_DAY and first.subject == "frb"
    # It opens when the receiver marks the loans to the purchase price, before the sale itself,
    # and it is the only invariant that first breaks that day.
    assert closure.seq < first.seq < resolution.seq
    assert [n for n, v in summary.first_breaches.items() if v.at[:10] == FAILURE_DAY] == [
        "capital-ratio"
    ]
    # Until then the bank met the rule at book value: the hole was hidden at amortized cost.
    assert not any(
        v.invariant == "capital-ratio" for s in steps if s.seq < first.seq for v in s.opened
    )


def test_the_loss_at_failure_is_within_the_records_range(timeline, traced):
    steps, summary, books = traced
    low, high = RECORD_DIF_COST
    paid = -books.round_value(books.value(books.balance("fdic:dif", "USD"), "USD"))
    assert paid == MODEL_DIF_COST
    assert low <= paid <= high
    guarantee = step_of(steps, "fdic-guarantee-paid").event
    assert guarantee.amount == MODEL_DIF_COST
    dif = next(a for a in summary.assertions if a["event_id"] == "assert-dif-cost")
    assert dif["ok"] and dif["actual"] == "-12335000000 USD"
    # The Fed was repaid in full (its loans were guaranteed by the FDIC, S13), and the receiver
    # kept no cash: the guarantee payment is exactly the receiver's shortfall.
    assert books.balance("frb:cash", "USD") == 0
    for loan in (
        "fed-2023-03-10",
        "fed-2023-03-13",
        "fed-2023-03-15",
        "fed-2023-04-25",
        "fed-2023-04-27",
    ):
        assert books.balance(f"frb:loan:{loan}", "USD") == 0


def test_the_hole_at_failure_is_the_book_equity_after_the_write_downs(timeline, traced):
    steps, summary, _ = traced
    marked = books_at(timeline, seq=step_of(steps, "assert-equity-at-failure").seq)
    assert marked.round_value(marked.equity_book("frb")) == MODEL_HOLE_AT_FAILURE
    hole = next(a for a in summary.assertions if a["event_id"] == "assert-equity-at-failure")
    assert hole["ok"]
    # What is left after the sale and the guarantee: the other creditors JPMorgan did not take
    # over, $4.756B - $2.793B, unpaid.
    _, _, books = traced
    assert books.round_value(books.equity_book("frb")) == Decimal("-1963000000.00")


# -- the record's figures --------------------------------------------------------------------------
def test_every_record_figure_matches_except_the_cet1_ratio(timeline, traced):
    _, summary, _ = traced
    results = {a["event_id"]: a for a in summary.assertions}
    asserted = [e.id for e in timeline.events if e.type == "balance_asserted"]
    assert list(results) == asserted and len(asserted) == 15
    failing = [eid for eid, a in results.items() if not a["ok"]]
    # The model's capital ratio is book equity (preferred stock included) over risk-weighted
    # assets with the policy's simplified weights (every loan at the 50% mortgage weight): 14.36%
    # against the reported CET1 ratio of 9.32% (S04). A gap of the model, not a finding.
    assert failing == ["assert-cet1-q1"]
    assert results["assert-cet1-q1"]["actual"] == "0.1436"
    assert [v.subject for v in summary.still_open if v.invariant == "assertions"] == [
        "frb/capital_ratio"
    ]


def test_at_the_2022_year_end_the_market_value_gap_exceeds_the_equity(timeline, traced):
    steps, _, _ = traced
    ye = books_at(timeline, seq=step_of(steps, "assert-unrealised-2022").seq)
    assert ye.round_value(ye.equity_book("frb")) == Decimal("17446000000.00")
    assert ye.round_value(ye.equity("frb")) == Decimal("-9456886400.00")
    assert ye.round_value(ye.measure("frb", "unrealised_loss")) == Decimal("26902886400.00")
    assert ye.round_value(ye.measure("frb", "uninsured_deposits")) == Decimal("118821750000.00")


# -- the story, fact by fact -----------------------------------------------------------------------
def test_solvency_at_market_breaks_at_the_year_end_marks_and_never_recovers(traced):
    steps, summary, _ = traced
    assert episodes(steps, "solvency", "frb") == [("px-loans-2022", None)]
    assert (
        "at book value its equity is 17,446,000,000.00 USD"
        in summary.first_breaches["solvency"].detail
    )


def test_liquidity_coverage_fails_on_the_year_end_balance_sheet_and_in_the_march_run(traced):
    steps, _, _ = traced
    # The rule counts no borrowing capacity: the $70B of unused lines announced on 03-12 (S09) are
    # not assets. Only the Fed's money itself closes the breach.
    assert episodes(steps, "liquidity-coverage", "frb") == [
        ("buy-frc-loans-2022", "fed-2023-03-13"),
        ("run-2023-03-13", "fed-2023-03-15"),
    ]
    assert step_of(steps, "buy-frc-loans-2022").opened[0].observed == "0.9235"


def test_every_withdrawal_request_was_paid(timeline, traced):
    steps, _, _ = traced
    requests = [e for e in timeline.events if e.type == "withdrawal"]
    assert len(requests) == 13
    total = sum((e.amount for e in requests), Decimal(0))
    # From $176.437B at year end to about $92B taken over by JPMorgan, net of the banks' $30B.
    assert total == Decimal("114437000000.00")
    _, summary, _ = traced
    assert summary.breach_counts["withdrawals-honoured"] == 0
    for e in requests:
        assert not any("not paid" in n or "refused" in n for n in step_of(steps, e.id).notices)


def test_the_run_was_funded_by_the_fed_and_the_fhlb(timeline, traced):
    steps, _, _ = traced
    peak = books_at(timeline, seq=step_of(steps, "fed-2023-03-15").seq)
    fed = -sum(
        peak.balance(f"frb:loan:{loan}", "USD")
        for loan in ("fed-2023-03-10", "fed-2023-03-13", "fed-2023-03-15")
    )
    fhlb = -sum(
        peak.balance(f"frb:loan:{loan}", "USD")
        for loan in ("fhlb-short", "fhlb-long", "fhlb-2023-03")
    )
    assert peak.amount(fed, "USD") == Decimal("109000000000")  # S09
    assert peak.amount(fed + fhlb, "USD") == Decimal("137100000000")  # S16: $138B
    closing = books_at(timeline, seq=step_of(steps, "dfpi-closes").seq)
    fed_owed = -sum(
        closing.balance(f"frb:loan:{loan}", "USD")
        for loan in (
            "fed-2023-03-10",
            "fed-2023-03-13",
            "fed-2023-03-15",
            "fed-2023-04-25",
            "fed-2023-04-27",
        )
    )
    assert closing.amount(fed_owed, "USD") == Decimal("93200000000")  # S19


def test_jpmorgan_takes_over_every_deposit(timeline, traced):
    _, _, books = traced
    assert books.round_value(books.measure("jpm", "customer_liabilities")) == Decimal(
        "92000000000.00"
    )
    assert books.round_value(books.measure("frb", "customer_liabilities")) == Decimal("0.00")
    # Holder view, in minor units: $30B.
    assert books.balance("jpm:big-banks", "USD") == 3_000_000_000_000
    assert books.balance("frb:big-banks", "USD") == 0


# -- provenance ------------------------------------------------------------------------------------
def test_every_source_key_resolves_and_every_source_is_used(timeline, traced):
    _, summary, _ = traced
    used: set[str] = set()
    for event in timeline.events:
        assert event.source, f"{event.id} cites nothing"
        missing = set(event.source) - set(timeline.sources)
        assert not missing, f"{event.id} cites {sorted(missing)}, not in [sources]"
        used |= set(event.source)
    assert used == set(timeline.sources), f"unused sources: {sorted(set(timeline.sources) - used)}"
    for v in [*summary.first_breaches.values(), *summary.still_open]:
        assert set(v.source) <= set(timeline.sources)


@pytest.mark.parametrize("page", [DOC, FACTS], ids=lambda p: p.name)
def test_docs_cite_only_keys_of_the_source_table(timeline, page):
    cited = set(re.findall(r"\bS\d\d\b", page.read_text(encoding="utf-8")))
    assert cited and cited <= set(timeline.sources), sorted(cited - set(timeline.sources))


def test_doc_tables_match_the_replay(traced):
    _, summary, _ = traced
    doc = DOC.read_text(encoding="utf-8")
    for name, v in summary.first_breaches.items():
        row = f"| `{name}` | {v.at[:10]} | {v.seq} | `{v.event_id}` |"
        assert row in doc, f"docs/first-republic-2023.md first-breach row is stale: {row}"
    for name in HELD_THROUGHOUT:
        assert f"| `{name}` | held throughout |" in doc
    for a in summary.assertions:
        row = f"| {a['at'][:10]} | {a['seq']} | `{a['event_id']}` |"
        assert row in doc, f"docs/first-republic-2023.md assertion row is stale: {row}"
    assert GOLDEN_DIGEST in doc


def test_the_timelines_command_lists_it():
    out = subprocess.run(
        [sys.executable, "-m", "ledger", "timelines"], capture_output=True, text=True, check=True
    ).stdout
    assert NAME in out
