"""The bundled Voyager Digital 2022 replay, pinned: first breaches, the day the failure is flagged,
the loss against the record's range, the record's figures, provenance. See docs/voyager-2022.md
for the same numbers in prose and docs/voyager-2022-facts.md for the sources.

A reviewed change of replays/voyager_2022.toml is expected to update the golden values here (and
the tables in docs/voyager-2022.md, which ``test_doc_tables_match_the_replay`` keeps in step).
"""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import replays
from ledger.policy import Policy
from ledger.replay import Replay, replay

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "voyager-2022.md"
FACTS = ROOT / "docs" / "voyager-2022-facts.md"

# -- golden values (from a reviewed run of the bundled file) -----------------------------------------
GOLDEN_DIGEST = "479ad1f097d80394fa67aec7678bfc2d068e1b1d8fec51cc4bb25f836f652c3a"
EVENTS_IN_FILE = 147
GOLDEN_FIRST_BREACHES = {  # invariant -> (seq, instant, event id, subject) of its first breach
    "collateral-coverage": (38, "2022-03-31T23:59:59Z", "pledge-ftt", "pool:alameda-collateral"),
    "solvency": (64, "2022-06-15T12:00:00Z", "threeac-losses-btc", "threeac"),
    "withdrawals-honoured": (118, "2022-07-01T18:30:00Z", "request-after-halt", "voyager"),
}
HELD_THROUGHOUT = {
    "conservation",
    "no-unauthorised-negative",
    "segregation",
    "reserve-ratio",
    "own-token-concentration",
    "related-party-exposure",
    "assertions",
    "liquidity-coverage",
    "capital-ratio",
    "loan-health",
}
# What 3AC owed Voyager at the notice of default, across the record's reports (S05, S06, S10, S17,
# S24): "more than $650 million" up to "roughly $675 million", depending on the BTC price used.
RECORD_LOSS = (Decimal("650000000"), Decimal("675000000"))
MODEL_LOSS = Decimal("674025900.00")  # 15,250 x 21,247.60 (Dow Jones, S05) + 350,000,000
EQUITY_BEFORE = Decimal("152000000.00")  # Voyager's own funds (S04), the model's whole cushion
EQUITY_AFTER = Decimal("-522025900.00")


# -- one replay, shared ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def timeline() -> replays.Timeline:
    return replays.load_timeline("voyager-2022")


@pytest.fixture(scope="module")
def traced(timeline):
    """Replay once; keep every step and Voyager's figures after each event."""
    run = Replay(timeline)
    steps, figures = [], []
    for step in run:
        b = run.books
        figures.append(
            {
                "equity": b.round_value(b.equity("voyager")),
                "owed": b.round_value(b.customer_liabilities("voyager")),
            }
        )
        steps.append(step)
    return steps, figures, run.summary


def index_of(steps, event_id: str) -> int:
    return next(i for i, s in enumerate(steps) if s.event.id == event_id)


def opened(steps, invariant: str, subject: str) -> list[str]:
    return [
        s.event.id
        for s in steps
        for v in s.opened
        if (v.invariant, v.subject) == (invariant, subject)
    ]


# -- golden: the first-breach table, held invariants, digest --------------------------------------
def test_first_breach_table_is_golden(traced):
    _, _, summary = traced
    got = {n: (v.seq, v.at, v.event_id, v.subject) for n, v in summary.first_breaches.items()}
    assert got == GOLDEN_FIRST_BREACHES


def test_every_other_invariant_holds_throughout(traced):
    _, _, summary = traced
    held = {name for name, count in summary.breach_counts.items() if count == 0}
    assert held == HELD_THROUGHOUT
    assert set(summary.breach_counts) == HELD_THROUGHOUT | set(GOLDEN_FIRST_BREACHES)


def test_replay_covers_the_whole_file(timeline, traced):
    _, _, summary = traced
    assert len(timeline.events) == EVENTS_IN_FILE
    assert summary.events == EVENTS_IN_FILE and summary.skipped == []
    assert summary.digest == GOLDEN_DIGEST


# -- the failure, on the day the record gives ------------------------------------------------------
def test_voyager_turns_insolvent_at_the_notice_of_default_on_2022_06_27(traced):
    steps, figures, summary = traced
    assert opened(steps, "solvency", "voyager") == ["impair-3ac-btc"]
    i = index_of(steps, "impair-3ac-btc")
    assert steps[i].event.type == "loan_impaired"
    assert steps[i].event.at.date().isoformat() == "2022-06-27"
    # The notice of default comes first, at the same instant; the default alone moves no value.
    default = index_of(steps, "default-3ac-btc")
    assert default < i and steps[default].event.at == steps[i].event.at
    assert figures[default]["equity"] == EQUITY_BEFORE
    # Equity after both write-offs, and the loss they recognise.
    j = index_of(steps, "impair-3ac-usdc")
    assert figures[j]["equity"] == EQUITY_AFTER
    loss = figures[default]["equity"] - figures[j]["equity"]
    low, high = RECORD_LOSS
    assert low <= loss <= high and loss == MODEL_LOSS
    # Solvent at every step before, insolvent at every step after, to the end.
    assert all(f["equity"] >= 0 for f in figures[:i])
    assert all(f["equity"] < 0 for f in figures[i:])
    assert any(v.invariant == "solvency" and v.subject == "voyager" for v in summary.still_open)


def test_the_price_crash_does_not_move_voyagers_equity_before_the_default(traced):
    steps, figures, _ = traced
    # Claims are kept in the tokens: between March and June what Voyager owes in dollars falls by
    # more than half with BTC and ETH, and so do its holdings and loans; equity stays put.
    first_price = index_of(steps, "px-btc-2022-04-30")
    default = index_of(steps, "default-3ac-btc")
    assert {f["equity"] for f in figures[first_price:default]} == {EQUITY_BEFORE}
    assert figures[first_price - 1]["owed"] > 2 * figures[default]["owed"]


def test_withdrawals_stop_being_honoured_on_the_day_of_the_suspension(traced):
    steps, _, summary = traced
    halt = index_of(steps, "voyager-halt")
    assert steps[halt].event.at.isoformat().startswith("2022-07-01T18:00")  # 2:00 p.m. EDT, S08
    assert opened(steps, "withdrawals-honoured", "voyager") == ["request-after-halt"]
    # Every request before the halt was paid.
    assert not any(v.invariant == "withdrawals-honoured" for s in steps[:halt] for v in s.opened)
    still = [v for v in summary.still_open if v.invariant == "withdrawals-honoured"]
    assert [(v.subject, v.event_id) for v in still] == [("voyager", "request-after-halt")]


def test_three_arrows_is_insolvent_before_voyager_and_stays_so(traced):
    steps, _, summary = traced
    assert opened(steps, "solvency", "threeac") == ["threeac-losses-btc"]
    three = index_of(steps, "threeac-losses-btc")
    assert steps[three].event.at.date().isoformat() == "2022-06-15"
    assert three < index_of(steps, "impair-3ac-btc")
    assert [v.subject for v in summary.still_open if v.invariant == "solvency"] == [
        "threeac",
        "voyager",
    ]


def test_alamedas_collateral_covers_a_fraction_of_its_loans_until_they_are_repaid(traced):
    steps, _, summary = traced
    assert opened(steps, "collateral-coverage", "pool:alameda-collateral") == ["pledge-ftt"]
    first = summary.first_breaches["collateral-coverage"]
    assert first.observed == "0.1748"
    closed = [
        s.event.id
        for s in steps
        for v in s.closed
        if (v.invariant, v.subject) == ("collateral-coverage", "pool:alameda-collateral")
    ]
    assert closed == ["alameda-repays-other"]


# -- the record's figures ---------------------------------------------------------------------------
def test_every_record_figure_matches(timeline, traced):
    _, _, summary = traced
    results = {a["event_id"]: a for a in summary.assertions}
    asserted = [e.id for e in timeline.events if e.type == "balance_asserted"]
    assert list(results) == asserted and len(asserted) == 14
    assert [eid for eid, a in results.items() if not a["ok"]] == []
    bounds = {e.id: e.bound for e in timeline.events if e.type == "balance_asserted" and e.bound}
    assert set(bounds) == {
        "assert-total-assets-mar31",
        "assert-3ac-owes-jun22",
        "assert-customer-liabilities-petition",
        "assert-fbo-petition",
        "assert-own-funds-petition",
    }
    assert set(bounds.values()) == {"at_least"}
    assert results["assert-3ac-owes-apr"]["actual"] == "934091775 USD"
    assert results["assert-3ac-owes-default"]["actual"] == "674025900 USD"
    assert results["assert-customer-liabilities-petition"]["actual"] == "2154049326.48 USD"
    assert results["assert-total-assets-petition"]["actual"] == "1720701151.48 USD"


# -- provenance -------------------------------------------------------------------------------------
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


@pytest.mark.parametrize("page", [DOC, FACTS], ids=["voyager-2022.md", "voyager-2022-facts.md"])
def test_docs_cite_only_keys_of_the_source_table(timeline, page):
    cited = set(re.findall(r"\bS\d\d\b", page.read_text(encoding="utf-8")))
    assert cited and cited <= set(timeline.sources), sorted(cited - set(timeline.sources))


def test_the_facts_page_covers_every_source(timeline):
    rows = set(re.findall(r"^\| (S\d\d) \|", FACTS.read_text(encoding="utf-8"), flags=re.M))
    assert rows == set(timeline.sources)


def test_doc_tables_match_the_replay(traced):
    _, _, summary = traced
    doc = DOC.read_text(encoding="utf-8")
    for name, v in summary.first_breaches.items():
        row = f"| `{name}` | {v.at[:10]} | {v.seq} | `{v.event_id}` |"
        assert row in doc, f"docs/voyager-2022.md first-breach row is stale: {row}"
    for name in HELD_THROUGHOUT:
        assert f"| `{name}` | held throughout |" in doc
    for a in summary.assertions:
        row = f"| {a['at'][:10]} | {a['seq']} | `{a['event_id']}` |"
        assert row in doc, f"docs/voyager-2022.md assertion row is stale: {row}"
    assert GOLDEN_DIGEST in doc


# -- the command line -------------------------------------------------------------------------------
def test_listed_among_the_bundled_timelines():
    out = subprocess.run(
        [sys.executable, "-m", "ledger", "timelines"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert any(line.split()[:1] == ["voyager-2022"] for line in out.stdout.splitlines())


def test_cli_replay_exits_1_and_prints_the_digest(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger",
            "replay",
            "voyager-2022",
            "--no-record",
            "--steps",
            "none",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stderr
    assert GOLDEN_DIGEST in out.stdout


# -- what if every deposit could run (docs/voyager-2022.md, section 6) ----------------------------
def test_with_full_run_off_liquidity_coverage_breaks_from_the_opening(timeline, tmp_path):
    policy_file = tmp_path / "P.toml"
    policy_file.write_text('[run_off]\nuninsured = "1"\n', encoding="utf-8")
    summary = replay(timeline, Policy.from_toml(policy_file)).run()
    first = summary.first_breaches["liquidity-coverage"]
    assert (first.seq, first.event_id, first.subject) == (25, "open-customer-usdc", "voyager")
    assert any(v.invariant == "liquidity-coverage" for v in summary.still_open)
