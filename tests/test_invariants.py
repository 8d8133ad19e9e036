"""The nine standard invariants, one scenario (or more) each, stated in TOML.

Every test pins the exact event (seq and id) at which a violation opens, and closes where it
does, and that no violation of that invariant opened before. Expected figures are worked out by
hand in the comments.
"""

from __future__ import annotations

import time
from decimal import Decimal

import attrs
import pytest
from click.testing import CliRunner
from scenario import (
    CAST_SIZE,
    FIRST_SEQ,
    closed,
    opened,
    run,
    seq_of,
    step_of,
    timeline,
    write,
)

import replays
from ledger.books import Books
from ledger.cli import cli
from ledger.errors import InputError, InvariantRefused
from ledger.invariants import STANDARD_NAMES, Status
from ledger.policy import Policy
from ledger.replay import Replay, books_at, enforcing_guard, replay
from ledger.store import Log
from ledger.synthetic import workload


def policy_file(tmp_path, text: str, name: str = "policy.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
# conservation
# ------------------------------------------------------------------------------------------------
MINT_THEN_MOVE = """
[[events]]
id = "mint"
type = "tokens_minted"
asset = "TOK"
amount = "1000"
to_account = "ex:treasury"

[[events]]
id = "give"
type = "transfer"
from_account = "ex:treasury"
to_account = "aff:bank"
asset = "TOK"
amount = "10"
"""


def test_conservation_holds_for_correct_books(tmp_path):
    tl = timeline(tmp_path, MINT_THEN_MOVE)
    steps, summary = run(tl)
    assert opened(steps, "conservation") == []
    assert summary.breach_counts["conservation"] == 0
    assert summary.events == CAST_SIZE + 2


@pytest.mark.parametrize("name", ["small-example", "ftx-2022"])
def test_conservation_holds_for_the_bundled_histories(name):
    summary = replay(name).run()
    assert summary.breach_counts["conservation"] == 0
    assert summary.events == len(replays.load_timeline(name).events)


def test_conservation_canary_monkeypatched_handler_drops_a_leg(tmp_path, monkeypatch):
    """The checker fires: a mint that forgets the issuer's equity leg does not balance."""

    def broken_mint(self, e, change):
        self._post(change, "ex", "treasury", e.asset, self._minor(e.asset, e.amount))

    monkeypatch.setattr(Books, "_on_tokens_minted", broken_mint)
    tl = timeline(tmp_path, MINT_THEN_MOVE)
    steps, summary = run(tl)
    assert opened(steps, "conservation") == [(FIRST_SEQ, "mint", "ex/TOK")]
    v = summary.first_breaches["conservation"]
    assert (v.observed, v.threshold) == ("1,000.0000 TOK", "0")
    # The next event that posts to ex/TOK balances, so the subject is ok again.
    assert closed(steps, "conservation") == [(FIRST_SEQ + 1, "give", "ex/TOK")]


class LeakyBooks(Books):
    """Posts one extra cent to the venue's treasury on deposit d2: an unbalanced leg."""

    def _on_deposit(self, e, change):
        super()._on_deposit(e, change)
        if e.id == "d2":
            self._post(change, "ex", "treasury", "USD", 1)


def test_conservation_canary_broken_books_subclass(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "d1"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "10.00"
        landed = "ex:custody"

        [[events]]
        id = "d2"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "20.00"
        landed = "ex:custody"

        [[events]]
        id = "d3"
        type = "deposit"
        account = "ex:cust"
        asset = "BTC"
        amount = "1"
        landed = "ex:custody"
        """,
    )
    steps, summary = run(tl, books=LeakyBooks(Policy()))
    assert opened(steps, "conservation") == [(FIRST_SEQ + 1, "d2", "ex/USD")]
    assert summary.first_breaches["conservation"].observed == "0.01 USD"
    # d3 posts only BTC for ex: ex/USD is not looked at again, so it stays open.
    assert [(v.invariant, v.subject) for v in summary.still_open] == [("conservation", "ex/USD")]


# ------------------------------------------------------------------------------------------------
# no-unauthorised-negative
# ------------------------------------------------------------------------------------------------
CUSTOMER_MONEY = """
[[events]]
id = "d1"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100.00"
landed = "ex:custody"
"""


def test_overdraft_without_credit_line_breaks_at_that_event(tmp_path):
    tl = timeline(
        tmp_path,
        CUSTOMER_MONEY
        + """
        [[events]]
        id = "w-aff"
        type = "withdrawal"
        account = "ex:aff"
        asset = "USD"
        amount = "10.00"
        paid_from = "ex:custody"
        """,
    )
    steps, summary = run(tl)
    assert opened(steps, "no-unauthorised-negative") == [(FIRST_SEQ + 1, "w-aff", "ex:aff/USD")]
    v = summary.first_breaches["no-unauthorised-negative"]
    assert v.observed == "-10.00 USD"
    assert "no credit line" in v.detail


def test_book_transfer_overdraft_without_credit_line(tmp_path):
    tl = timeline(
        tmp_path,
        CUSTOMER_MONEY
        + """
        [[events]]
        id = "t1"
        type = "transfer"
        from_account = "ex:aff"
        to_account = "ex:cust"
        asset = "USD"
        amount = "0.01"
        """,
    )
    steps, _ = run(tl)
    assert opened(steps, "no-unauthorised-negative") == [(seq_of(tl, "t1"), "t1", "ex:aff/USD")]


CREDIT_LINE = (
    CUSTOMER_MONEY
    + """
[[events]]
id = "cl"
type = "credit_line_granted"
account = "ex:aff"
asset = "USD"
limit = "50.00"

[[events]]
id = "w1"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "30.00"
paid_from = "ex:custody"

[[events]]
id = "w2"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "20.00"
paid_from = "ex:custody"

[[events]]
id = "w3"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "0.01"
paid_from = "ex:custody"

[[events]]
id = "repay"
type = "deposit"
account = "ex:aff"
asset = "USD"
amount = "0.01"
landed = "ex:custody"
"""
)


def test_credit_line_holds_until_the_limit_is_exceeded(tmp_path):
    tl = timeline(tmp_path, CREDIT_LINE)
    steps, summary = run(tl)
    # -30 and -50 (exactly the limit) are allowed; -50.01 is not; paying back 0.01 restores it.
    assert opened(steps, "no-unauthorised-negative") == [(seq_of(tl, "w3"), "w3", "ex:aff/USD")]
    assert closed(steps, "no-unauthorised-negative") == [(seq_of(tl, "repay"), "repay", "ex:aff/USD")]
    v = summary.first_breaches["no-unauthorised-negative"]
    assert (v.observed, v.threshold) == ("-50.01 USD", "-50.00 USD")
    assert step_of(steps, "w1").notices == (
        "ex:aff is drawing on its credit line: -30.00 USD of -50.00 allowed",
    )
    # Every withdrawal was paid (custody held enough), so the holder's view is exact.
    books = books_at(tl)
    assert books.balance("ex:aff", "USD") == -5000
    assert books.balance("ex:custody", "USD") == 5000


def test_revoking_the_credit_line_breaks_it_and_regranting_closes(tmp_path):
    tl = timeline(
        tmp_path,
        CUSTOMER_MONEY
        + """
        [[events]]
        id = "cl"
        type = "credit_line_granted"
        account = "ex:aff"
        asset = "USD"
        limit = "50.00"

        [[events]]
        id = "w1"
        type = "withdrawal"
        account = "ex:aff"
        asset = "USD"
        amount = "40.00"
        paid_from = "ex:custody"

        [[events]]
        id = "revoke"
        type = "credit_line_granted"
        account = "ex:aff"
        asset = "USD"
        limit = "0"

        [[events]]
        id = "regrant"
        type = "credit_line_granted"
        account = "ex:aff"
        asset = "USD"
        limit = "40.00"
        """,
    )
    steps, summary = run(tl)
    assert opened(steps, "no-unauthorised-negative") == [(seq_of(tl, "revoke"), "revoke", "ex:aff/USD")]
    assert closed(steps, "no-unauthorised-negative") == [(seq_of(tl, "regrant"), "regrant", "ex:aff/USD")]
    assert summary.first_breaches["no-unauthorised-negative"].observed == "-40.00 USD"


def test_a_credit_line_in_another_asset_does_not_help(tmp_path):
    tl = timeline(
        tmp_path,
        CUSTOMER_MONEY
        + """
        [[events]]
        id = "cl-btc"
        type = "credit_line_granted"
        account = "ex:aff"
        asset = "BTC"
        limit = "5"

        [[events]]
        id = "w1"
        type = "withdrawal"
        account = "ex:aff"
        asset = "USD"
        amount = "1.00"
        paid_from = "ex:custody"
        """,
    )
    steps, _ = run(tl)
    assert opened(steps, "no-unauthorised-negative") == [(seq_of(tl, "w1"), "w1", "ex:aff/USD")]


def test_holdings_account_overdrawn_by_a_transfer(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "t1"
        type = "transfer"
        from_account = "ex:treasury"
        to_account = "aff:bank"
        asset = "USD"
        amount = "1.00"

        [[events]]
        id = "t2"
        type = "transfer"
        from_account = "world:market"
        to_account = "ex:treasury"
        asset = "USD"
        amount = "1.00"
        """,
    )
    steps, summary = run(tl)
    # world:market is external: it goes negative at t2 without a violation.
    assert opened(steps, "no-unauthorised-negative") == [(FIRST_SEQ, "t1", "ex:treasury/USD")]
    assert closed(steps, "no-unauthorised-negative") == [(FIRST_SEQ + 1, "t2", "ex:treasury/USD")]
    v = summary.first_breaches["no-unauthorised-negative"]
    assert (v.observed, v.threshold) == ("-1.00 USD", "0")


def test_loan_disbursed_from_an_empty_vault_overdraws_it(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "L1"
        type = "loan_opened"
        loan = "L1"
        lender = "bank"
        borrower = "aff"
        asset = "USD"
        principal = "5.00"
        disbursed_from = "bank:vault"
        disbursed_to = "aff:bank"
        """,
    )
    steps, _ = run(tl)
    assert opened(steps, "no-unauthorised-negative") == [(FIRST_SEQ, "L1", "bank:vault/USD")]


# ------------------------------------------------------------------------------------------------
# segregation
# ------------------------------------------------------------------------------------------------
ROUTED = (
    CUSTOMER_MONEY
    + """
[[events]]
id = "routed"
type = "deposit"
at = 2022-02-01T00:00:00Z
account = "ex:cust"
asset = "USD"
amount = "50.00"
landed = "aff:bank"
owed_by = "ex:aff"

[[events]]
id = "aff-pays-30"
type = "deposit"
at = 2022-03-01T00:00:00Z
account = "ex:aff"
asset = "USD"
amount = "30.00"
landed = "ex:custody"

[[events]]
id = "aff-pays-20"
type = "deposit"
account = "ex:aff"
asset = "USD"
amount = "20.00"
landed = "ex:custody"
"""
)


def test_segregation_breaks_when_a_deposit_lands_with_another_entity(tmp_path):
    tl = timeline(tmp_path, ROUTED)
    steps, summary = run(tl)
    # d1: 100 owed, 100 held. routed: 150 owed, 100 held. The affiliate paying its debt to
    # the venue into custody adds custody without adding customer liabilities: 130, then 150.
    assert opened(steps, "segregation") == [(FIRST_SEQ + 1, "routed", "ex/USD")]
    assert closed(steps, "segregation") == [(FIRST_SEQ + 3, "aff-pays-20", "ex/USD")]
    v = summary.first_breaches["segregation"]
    assert (v.observed, v.threshold) == ("100.00 USD in custody", "150.00 USD owed")
    assert v.at == "2022-02-01T00:00:00Z" and v.source == ("T",)
    assert v.contributing[-1] == "routed"
    assert any("landed at aff:bank" in n and "ex:aff" in n for n in step_of(steps, "routed").notices)
    assert step_of(steps, "aff-pays-30").metrics["shortfall"] == "20"


def test_contributing_events_include_those_before_the_breach(tmp_path):
    tl = timeline(tmp_path, ROUTED)
    _, summary = run(tl)
    # d1 posted to ex/USD (custody and what ex owes cust) before routed broke it.
    assert summary.first_breaches["segregation"].contributing == ("d1", "routed")


def test_contributing_keeps_only_the_latest_events_the_breaking_one_last(tmp_path):
    more = "".join(
        f"""
[[events]]
id = "d{i}"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "1.00"
landed = "ex:custody"
"""
        for i in range(2, 8)
    )
    tl = timeline(tmp_path, CUSTOMER_MONEY + more + ROUTED[len(CUSTOMER_MONEY):])
    _, summary = run(tl)
    # d1..d7 all checked ex/USD; only the three latest are kept, then the breaking event.
    assert summary.first_breaches["segregation"].contributing == ("d5", "d6", "d7", "routed")


def test_violations_opened_together_are_reported_in_invariant_then_subject_order(tmp_path):
    class Backwards:
        name = "backwards"
        meaning = "fails for two subjects, yielded out of order"

        def check(self, ctx):
            if ctx.event.id == "d1":
                yield Status("b", False, "1", "0", "b broke")
                yield Status("a", False, "1", "0", "a broke")

    steps, _ = run(timeline(tmp_path, CUSTOMER_MONEY), extra_invariants=[Backwards()])
    assert [(v.invariant, v.subject) for v in step_of(steps, "d1").opened] == [("backwards", "a"), ("backwards", "b")]


def test_segregation_breaks_without_owed_by_too(tmp_path):
    tl = timeline(
        tmp_path,
        CUSTOMER_MONEY
        + """
        [[events]]
        id = "routed"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "0.01"
        landed = "aff:bank"
        """,
    )
    steps, _ = run(tl)
    assert opened(steps, "segregation") == [(FIRST_SEQ + 1, "routed", "ex/USD")]
    books = books_at(tl)
    assert books.balances[("ex", "due-from:aff", "USD")] == 1
    assert books.balances[("aff", "due-to:ex", "USD")] == -1


def test_segregation_is_per_asset_and_transfers_out_of_custody_break_it(tmp_path):
    tl = timeline(
        tmp_path,
        CUSTOMER_MONEY
        + """
        [[events]]
        id = "d-btc"
        type = "deposit"
        account = "ex:cust"
        asset = "BTC"
        amount = "2"
        landed = "ex:custody"

        [[events]]
        id = "out"
        type = "transfer"
        from_account = "ex:custody"
        to_account = "ex:treasury"
        asset = "BTC"
        amount = "0.00000001"

        [[events]]
        id = "back"
        type = "transfer"
        from_account = "ex:treasury"
        to_account = "ex:custody"
        asset = "BTC"
        amount = "0.00000001"
        """,
    )
    steps, _ = run(tl)
    assert opened(steps, "segregation") == [(seq_of(tl, "out"), "out", "ex/BTC")]
    assert closed(steps, "segregation") == [(seq_of(tl, "back"), "back", "ex/BTC")]


# ------------------------------------------------------------------------------------------------
# reserve-ratio
# ------------------------------------------------------------------------------------------------
BTC_RESERVES = """
[[events]]
id = "fund"
type = "transfer"
from_account = "world:market"
to_account = "ex:treasury"
asset = "BTC"
amount = "1"

[[events]]
id = "p1"
type = "price_updated"
asset = "BTC"
quote = "USD"
price = "20000"

[[events]]
id = "d1"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "10000.00"
landed = "aff:bank"
owed_by = "ex:aff"

[[events]]
id = "p2"
type = "price_updated"
asset = "BTC"
quote = "USD"
price = "14000"

[[events]]
id = "p3"
type = "price_updated"
asset = "BTC"
quote = "USD"
price = "12500"

[[events]]
id = "p3b"
type = "price_updated"
asset = "BTC"
quote = "USD"
price = "12499.99"

[[events]]
id = "p4"
type = "price_updated"
asset = "BTC"
quote = "USD"
price = "13400"
"""


def test_reserve_ratio_breaks_on_the_price_drop(tmp_path):
    tl = timeline(tmp_path, BTC_RESERVES)
    steps, summary = run(tl)
    # Owed 10,000 USD; reserves 1 BTC at a 25% haircut: 15,000 (1.5), 10,500 (1.05),
    # 9,375 (0.9375: broken), 9,374.9925, then 10,050 (1.005: closed).
    assert opened(steps, "reserve-ratio") == [(seq_of(tl, "p3"), "p3", "ex")]
    assert closed(steps, "reserve-ratio") == [(seq_of(tl, "p4"), "p4", "ex")]
    v = summary.first_breaches["reserve-ratio"]
    assert (v.observed, v.threshold) == ("0.9375", "1.0000")
    assert step_of(steps, "p2").metrics["reserve_ratio"] == "1.0500"
    assert step_of(steps, "p3").metrics["price"] == "BTC=12500"


def test_reserve_ratio_haircuts_come_from_the_policy(tmp_path):
    tl = timeline(tmp_path, BTC_RESERVES)
    policy = Policy.from_toml(policy_file(tmp_path, '[haircuts]\ncrypto = "0.2"\n'))
    steps, _ = run(tl, policy)
    # At a 20% haircut, 12,500 gives exactly 10,000 (ratio 1: holds); 12,499.99 does not.
    assert opened(steps, "reserve-ratio") == [(seq_of(tl, "p3b"), "p3b", "ex")]
    assert closed(steps, "reserve-ratio") == [(seq_of(tl, "p4"), "p4", "ex")]


def test_reserve_ratio_threshold_comes_from_the_policy(tmp_path):
    tl = timeline(tmp_path, BTC_RESERVES)
    steps, summary = run(tl, Policy.from_toml(policy_file(tmp_path, 'min_reserve_ratio = "0.9"\n')))
    # The lowest ratio is 9,374.9925 / 10,000 = 0.93749925 >= 0.9.
    assert opened(steps, "reserve-ratio") == []
    assert summary.breach_counts["reserve-ratio"] == 0


OWN_TOKEN_RESERVES = """
[[entities]]
entity = "ex2"
name = "Unaffiliated exchange"
kind = "exchange"

[[accounts]]
account = "ex2:treasury"
purpose = "corporate"

[[accounts]]
account = "ex2:cust"
purpose = "customer"
holder = "cust"

[[events]]
id = "p-tok"
type = "price_updated"
asset = "TOK"
quote = "USD"
price = "10"

[[events]]
id = "mint"
type = "tokens_minted"
asset = "TOK"
amount = "400"
to_account = "ex:treasury"

[[events]]
id = "to-ex2"
type = "transfer"
from_account = "ex:treasury"
to_account = "ex2:treasury"
asset = "TOK"
amount = "200"

[[events]]
id = "d-ex"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "1000.00"
landed = "aff:bank"
owed_by = "ex:aff"

[[events]]
id = "d-ex2"
type = "deposit"
account = "ex2:cust"
asset = "USD"
amount = "1000.00"
landed = "aff:bank"
"""


def test_reserve_ratio_counts_the_venues_own_token_at_a_full_haircut(tmp_path):
    tl = timeline(tmp_path, OWN_TOKEN_RESERVES)
    steps, summary = run(tl)
    # ex holds 200 TOK of its own (2,000 at market, 0 as reserves): ratio 0.
    # ex2 holds the same 200 TOK but did not issue it: 2,000 x (1 - 0.5) = 1,000: ratio 1.
    assert opened(steps, "reserve-ratio") == [(seq_of(tl, "d-ex"), "d-ex", "ex")]
    assert summary.first_breaches["reserve-ratio"].observed == "0.0000"


def test_focus_venue_ties_go_to_the_alphabetically_first(tmp_path):
    tl = timeline(tmp_path, OWN_TOKEN_RESERVES)
    steps, _ = run(tl)
    # ex and ex2 both owe their customers 1,000 USD after d-ex2.
    assert step_of(steps, "d-ex2").metrics["venue"] == "ex"


def test_reserve_ratio_affiliate_token_haircut_from_policy(tmp_path):
    tl = timeline(tmp_path, OWN_TOKEN_RESERVES)
    steps, _ = run(tl, Policy.from_toml(policy_file(tmp_path, '[haircuts]\naffiliate_token = "0.5"\n')))
    assert opened(steps, "reserve-ratio") == []


def test_reserve_ratio_token_issued_by_an_affiliate_is_not_liquid(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[assets]]
        asset = "AFT"
        name = "Affiliate token"
        scale = 0
        kind = "exchange_token"
        issuer = "aff"

        [[events]]
        id = "p"
        type = "price_updated"
        asset = "AFT"
        quote = "USD"
        price = "1"

        [[events]]
        id = "mint"
        type = "tokens_minted"
        asset = "AFT"
        amount = "5000"
        to_account = "aff:bank"

        [[events]]
        id = "gift"
        type = "transfer"
        from_account = "aff:bank"
        to_account = "ex:custody"
        asset = "AFT"
        amount = "5000"

        [[events]]
        id = "d1"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "100.00"
        landed = "aff:bank"
        owed_by = "ex:aff"
        """,
    )
    steps, _ = run(tl)
    assert opened(steps, "reserve-ratio") == [(seq_of(tl, "d1"), "d1", "ex")]


# ------------------------------------------------------------------------------------------------
# collateral-coverage
# ------------------------------------------------------------------------------------------------
LOAN_SETUP = """
[[events]]
id = "p0"
type = "price_updated"
asset = "TOK"
quote = "USD"
price = "10"

[[events]]
id = "mint"
type = "tokens_minted"
asset = "TOK"
amount = "1000"
to_account = "ex:treasury"

[[events]]
id = "tok-to-aff"
type = "transfer"
from_account = "ex:treasury"
to_account = "aff:bank"
asset = "TOK"
amount = "1000"

[[events]]
id = "fund-bank"
type = "transfer"
from_account = "world:market"
to_account = "bank:vault"
asset = "USD"
amount = "1000.00"

[[events]]
id = "L1"
type = "loan_opened"
loan = "L1"
lender = "bank"
borrower = "aff"
asset = "USD"
principal = "1000.00"
disbursed_from = "bank:vault"
disbursed_to = "aff:bank"

[[events]]
id = "pledge"
type = "collateral_pledged"
loan = "L1"
asset = "TOK"
amount = "300"
from_account = "aff:bank"
"""


def price(event_id: str, value: str, asset: str = "TOK") -> str:
    return f"""
[[events]]
id = "{event_id}"
type = "price_updated"
asset = "{asset}"
quote = "USD"
price = "{value}"
"""


def test_collateral_coverage_breaks_on_the_price_update_below_margin_not_before(tmp_path):
    tl = timeline(
        tmp_path,
        LOAN_SETUP
        + price("p1", "7")
        + price("p2", "6.67")
        + price("p3", "6.66")
        + price("p4", "6.6667")
        + price("p5", "20"),
    )
    steps, summary = run(tl)
    # 300 TOK at a 50% haircut against 1,000 USD: covered while price >= 6.6666...
    # 7 -> 1,050; 6.67 -> 1,000.50; 6.66 -> 999 (broken); 6.6667 -> 1,000.005 (closed).
    assert opened(steps, "collateral-coverage") == [(seq_of(tl, "p3"), "p3", "L1")]
    assert closed(steps, "collateral-coverage") == [(seq_of(tl, "p4"), "p4", "L1")]
    v = summary.first_breaches["collateral-coverage"]
    assert (v.observed, v.threshold) == ("0.9990", "1.0000")


def test_collateral_margin_comes_from_the_policy(tmp_path):
    tl = timeline(tmp_path, LOAN_SETUP + price("p1", "7") + price("p2", "10"))
    policy = Policy.from_toml(policy_file(tmp_path, 'min_collateral_coverage = "1.5"\n'))
    steps, _ = run(tl, policy)
    # At 10: 1,500 / 1,000 = 1.5 (holds, exactly); at 7: 1.05 < 1.5.
    assert opened(steps, "collateral-coverage") == [(seq_of(tl, "p1"), "p1", "L1")]
    assert closed(steps, "collateral-coverage") == [(seq_of(tl, "p2"), "p2", "L1")]


def test_collateral_release_breaks_coverage_and_a_new_pledge_restores_it(tmp_path):
    tl = timeline(
        tmp_path,
        LOAN_SETUP
        + """
        [[events]]
        id = "rel-100"
        type = "collateral_released"
        loan = "L1"
        asset = "TOK"
        amount = "100"
        to_account = "aff:bank"

        [[events]]
        id = "rel-tiny"
        type = "collateral_released"
        loan = "L1"
        asset = "TOK"
        amount = "0.0001"
        to_account = "aff:bank"

        [[events]]
        id = "pledge-tiny"
        type = "collateral_pledged"
        loan = "L1"
        asset = "TOK"
        amount = "0.0001"
        from_account = "aff:bank"
        """,
    )
    steps, _ = run(tl)
    # 200 TOK x 10 x 0.5 = 1,000: exactly covered. 199.9999 TOK: 999.9995.
    assert opened(steps, "collateral-coverage") == [(seq_of(tl, "rel-tiny"), "rel-tiny", "L1")]
    assert closed(steps, "collateral-coverage") == [(seq_of(tl, "pledge-tiny"), "pledge-tiny", "L1")]


def test_collateral_seizure_settles_debt_and_restores_coverage(tmp_path):
    tl = timeline(
        tmp_path,
        LOAN_SETUP
        + price("p1", "6")
        + """
        [[events]]
        id = "seize"
        type = "collateral_seized"
        loan = "L1"
        asset = "TOK"
        amount = "100"
        to_account = "bank:vault"
        credited = "600.00"
        """,
    )
    steps, _ = run(tl)
    # At 6: 300 x 6 x 0.5 = 900 < 1,000. Seize 100 TOK for 600: debt 400, collateral 600.
    assert opened(steps, "collateral-coverage") == [(seq_of(tl, "p1"), "p1", "L1")]
    assert closed(steps, "collateral-coverage") == [(seq_of(tl, "seize"), "seize", "L1")]
    books = books_at(tl)
    assert books.registry.loans["L1"].outstanding == 40000
    assert books.balances[("bank", "vault", "TOK")] == 1_000_000
    assert books.collateral["L1"]["TOK"] == 2_000_000


def test_collateral_against_a_customer_account(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "p0"
        type = "price_updated"
        asset = "TOK"
        quote = "USD"
        price = "10"

        [[events]]
        id = "mint"
        type = "tokens_minted"
        asset = "TOK"
        amount = "1000"
        to_account = "ex:treasury"

        [[events]]
        id = "tok-to-aff"
        type = "transfer"
        from_account = "ex:treasury"
        to_account = "aff:bank"
        asset = "TOK"
        amount = "1000"

        [[events]]
        id = "d0"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "1000.00"
        landed = "ex:custody"

        [[events]]
        id = "cl"
        type = "credit_line_granted"
        account = "ex:aff"
        asset = "USD"
        limit = "1000.00"

        [[events]]
        id = "draw"
        type = "withdrawal"
        account = "ex:aff"
        asset = "USD"
        amount = "500.00"
        paid_from = "ex:custody"
        to = "aff:bank"

        [[events]]
        id = "pledge"
        type = "collateral_pledged"
        account = "ex:aff"
        asset = "TOK"
        amount = "100"
        from_account = "aff:bank"
        """
        + price("p1", "9.99")
        + """
        [[events]]
        id = "pay-down"
        type = "deposit"
        account = "ex:aff"
        asset = "USD"
        amount = "0.50"
        landed = "ex:custody"
        """
        + price("p2", "9.98"),
    )
    steps, _ = run(tl)
    # Debt 500, collateral 100 TOK x 10 x 0.5 = 500 (1.0). At 9.99: 499.50 < 500 (broken).
    # Paying 0.50 down: debt 499.50 = collateral (closed). At 9.98: 499 < 499.50 (broken again).
    assert opened(steps, "collateral-coverage") == [
        (seq_of(tl, "p1"), "p1", "ex:aff"),
        (seq_of(tl, "p2"), "p2", "ex:aff"),
    ]
    assert closed(steps, "collateral-coverage") == [(seq_of(tl, "pay-down"), "pay-down", "ex:aff")]


# ------------------------------------------------------------------------------------------------
# own-token-concentration
# ------------------------------------------------------------------------------------------------
def test_own_token_concentration_boundary_and_price_moves(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "capital"
        type = "transfer"
        from_account = "world:market"
        to_account = "ex:treasury"
        asset = "USD"
        amount = "30000.00"
        """
        + price("p0", "10")
        + """
        [[events]]
        id = "mint-1000"
        type = "tokens_minted"
        asset = "TOK"
        amount = "1000"
        to_account = "ex:treasury"

        [[events]]
        id = "mint-1"
        type = "tokens_minted"
        asset = "TOK"
        amount = "1"
        to_account = "ex:treasury"
        """
        + price("p1", "5")
        + price("p2", "30"),
    )
    steps, summary = run(tl)
    # 10,000 of 40,000 = 0.25 (holds, exactly). 10,010 / 40,010 = 0.2502 (broken).
    # At 5: 5,005 / 35,005 = 0.143 (closed). At 30: 30,030 / 60,030 = 0.5002 (broken).
    assert opened(steps, "own-token-concentration") == [
        (seq_of(tl, "mint-1"), "mint-1", "ex"),
        (seq_of(tl, "p2"), "p2", "ex"),
    ]
    assert closed(steps, "own-token-concentration") == [(seq_of(tl, "p1"), "p1", "ex")]
    v = summary.first_breaches["own-token-concentration"]
    assert (v.observed, v.threshold) == ("0.2502", "0.2500")
    assert summary.breach_counts["own-token-concentration"] == 2


def test_own_token_counts_affiliates_and_pledged_tokens_not_outsiders(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[accounts]]
        account = "cust:wallet"
        purpose = "corporate"

        [[events]]
        id = "aff-capital"
        type = "transfer"
        from_account = "world:market"
        to_account = "aff:bank"
        asset = "USD"
        amount = "1000.00"

        [[events]]
        id = "bank-capital"
        type = "transfer"
        from_account = "world:market"
        to_account = "bank:vault"
        asset = "USD"
        amount = "100.00"
        """
        + price("p0", "10")
        + """
        [[events]]
        id = "mint"
        type = "tokens_minted"
        asset = "TOK"
        amount = "1000"
        to_account = "ex:treasury"

        [[events]]
        id = "to-aff"
        type = "transfer"
        from_account = "ex:treasury"
        to_account = "aff:bank"
        asset = "TOK"
        amount = "10"

        [[events]]
        id = "to-cust"
        type = "transfer"
        from_account = "ex:treasury"
        to_account = "cust:wallet"
        asset = "TOK"
        amount = "100"

        [[events]]
        id = "L1"
        type = "loan_opened"
        loan = "L1"
        lender = "bank"
        borrower = "aff"
        asset = "USD"
        principal = "100.00"
        disbursed_from = "bank:vault"
        disbursed_to = "aff:bank"

        [[events]]
        id = "pledge"
        type = "collateral_pledged"
        loan = "L1"
        asset = "TOK"
        amount = "10"
        from_account = "aff:bank"
        """
        + price("p1", "40"),
    )
    steps, _ = run(tl)
    # aff: 1,100 USD + 10 TOK pledged. At 40: 400 / 1,500 = 0.2667 > 0.25.
    # cust holds only TOK but did not issue it and is no affiliate: never a breach.
    subjects = opened(steps, "own-token-concentration")
    assert (seq_of(tl, "p1"), "p1", "aff") in subjects
    assert [s for s in subjects if s[2] == "aff"] == [(seq_of(tl, "p1"), "p1", "aff")]
    assert [s for s in subjects if s[2] == "cust"] == []


# ------------------------------------------------------------------------------------------------
# related-party-exposure
# ------------------------------------------------------------------------------------------------
def test_related_party_exposure_of_a_venue(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "d1"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "3000.00"
        landed = "ex:custody"

        [[events]]
        id = "r1"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "1000.00"
        landed = "aff:bank"
        owed_by = "ex:aff"

        [[events]]
        id = "r2"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "10.00"
        landed = "aff:bank"
        owed_by = "ex:aff"

        [[events]]
        id = "repay"
        type = "deposit"
        account = "ex:aff"
        asset = "USD"
        amount = "10.00"
        landed = "ex:custody"
        """,
    )
    steps, summary = run(tl)
    # 1,000 / 4,000 = 0.25 (holds). 1,010 / 4,010 = 0.2519 (broken). 1,000 / 4,010 (closed).
    assert opened(steps, "related-party-exposure") == [(seq_of(tl, "r2"), "r2", "ex")]
    assert closed(steps, "related-party-exposure") == [(seq_of(tl, "repay"), "repay", "ex")]
    v = summary.first_breaches["related-party-exposure"]
    assert (v.observed, v.threshold) == ("0.2519", "0.2500")
    assert "customer liabilities" in v.detail


def test_related_party_exposure_of_a_non_venue_against_total_assets(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "aff-capital"
        type = "transfer"
        from_account = "world:market"
        to_account = "aff:bank"
        asset = "USD"
        amount = "1000.00"

        [[events]]
        id = "in-250"
        type = "deposit"
        account = "ex:aff"
        asset = "USD"
        amount = "250.00"
        landed = "ex:custody"
        from_account = "aff:bank"

        [[events]]
        id = "in-10"
        type = "deposit"
        account = "ex:aff"
        asset = "USD"
        amount = "10.00"
        landed = "ex:custody"
        from_account = "aff:bank"

        [[events]]
        id = "bank-capital"
        type = "transfer"
        from_account = "world:market"
        to_account = "bank:vault"
        asset = "USD"
        amount = "500.00"

        [[events]]
        id = "L-bank"
        type = "loan_opened"
        loan = "L-bank"
        lender = "bank"
        borrower = "aff"
        asset = "USD"
        principal = "100.00"
        disbursed_from = "bank:vault"
        disbursed_to = "aff:bank"
        """,
    )
    steps, summary = run(tl)
    # aff: 750 bank + 250 claim on ex = 0.25 (holds); 740 + 260: 0.26 (broken);
    # a loan from an outsider adds 100 of assets: 260 / 1,100 = 0.2364 (closed).
    assert opened(steps, "related-party-exposure") == [(seq_of(tl, "in-10"), "in-10", "aff")]
    assert closed(steps, "related-party-exposure") == [(seq_of(tl, "L-bank"), "L-bank", "aff")]
    v = summary.first_breaches["related-party-exposure"]
    assert v.observed == "0.2600" and "total assets" in v.detail


def test_related_party_exposure_of_an_intra_group_loan(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "capital"
        type = "transfer"
        from_account = "world:market"
        to_account = "ex:treasury"
        asset = "USD"
        amount = "1000.00"

        [[events]]
        id = "L-aff"
        type = "loan_opened"
        loan = "L-aff"
        lender = "ex"
        borrower = "aff"
        asset = "USD"
        principal = "300.00"
        disbursed_from = "ex:treasury"
        disbursed_to = "aff:bank"
        """,
    )
    steps, _ = run(tl)
    # ex: 700 cash + 300 receivable from its affiliate = 0.3 of its assets.
    assert opened(steps, "related-party-exposure") == [(seq_of(tl, "L-aff"), "L-aff", "ex")]


# ------------------------------------------------------------------------------------------------
# withdrawals-honoured
# ------------------------------------------------------------------------------------------------
def withdrawal(event_id: str, amount: str, account: str = "ex:cust", paid_from: str = "ex:custody") -> str:
    return f"""
[[events]]
id = "{event_id}"
type = "withdrawal"
account = "{account}"
asset = "USD"
amount = "{amount}"
paid_from = "{paid_from}"
"""


def test_withdrawal_that_custody_cannot_pay_is_refused(tmp_path):
    tl = timeline(tmp_path, CUSTOMER_MONEY + withdrawal("w-big", "100.01") + withdrawal("w-all", "100.00"))
    steps, summary = run(tl)
    assert opened(steps, "withdrawals-honoured") == [(FIRST_SEQ + 1, "w-big", "ex")]
    # Paying exactly what custody holds is honoured, and closes the violation.
    assert closed(steps, "withdrawals-honoured") == [(FIRST_SEQ + 2, "w-all", "ex")]
    refused = step_of(steps, "w-big")
    assert refused.notices == ("withdrawal not paid: ex:custody holds 100.00 USD, cannot pay 100.01",)
    v = summary.first_breaches["withdrawals-honoured"]
    assert v.observed == "100.01 USD not paid"
    books = books_at(tl)
    assert books.balance("ex:cust", "USD") == 0
    assert books.balance("ex:custody", "USD") == 0


def test_after_a_halt_every_request_is_refused_until_a_paid_withdrawal(tmp_path):
    tl = timeline(
        tmp_path,
        CUSTOMER_MONEY
        + """
        [[events]]
        id = "halt"
        type = "withdrawals_halted"
        venue = "ex"
        """
        + withdrawal("w1", "10.00")
        + withdrawal("w2", "20.00")
        + withdrawal("w3", "1.00", paid_from="ex:treasury")
        + """
        [[events]]
        id = "resume"
        type = "withdrawals_resumed"
        venue = "ex"
        """
        + withdrawal("w4", "10.00"),
    )
    steps, summary = run(tl)
    assert opened(steps, "withdrawals-honoured") == [(seq_of(tl, "w1"), "w1", "ex")]
    assert closed(steps, "withdrawals-honoured") == [(seq_of(tl, "w4"), "w4", "ex")]
    for eid in ("w1", "w2", "w3"):
        step = step_of(steps, eid)
        assert step.notices == ("withdrawal not paid: ex has halted withdrawals",)
    assert summary.breach_counts["withdrawals-honoured"] == 1
    # Refused requests move nothing: only w4 was paid.
    assert books_at(tl).balance("ex:cust", "USD") == 9000
    assert books_at(tl, seq=seq_of(tl, "resume")).balance("ex:cust", "USD") == 10000


# ------------------------------------------------------------------------------------------------
# assertions
# ------------------------------------------------------------------------------------------------
ASSERT_SETUP = """
[[events]]
id = "capital"
type = "transfer"
from_account = "world:market"
to_account = "ex:treasury"
asset = "USD"
amount = "50.25"

[[events]]
id = "p-btc"
type = "price_updated"
asset = "BTC"
quote = "USD"
price = "20000"

[[events]]
id = "d-usd"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "1000.00"
landed = "ex:custody"

[[events]]
id = "d-btc"
type = "deposit"
account = "ex:cust"
asset = "BTC"
amount = "0.5"
landed = "ex:custody"

[[events]]
id = "d-routed"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "300.00"
landed = "aff:bank"
owed_by = "ex:aff"
"""
# The books after ASSERT_SETUP, worked by hand:
#   ex assets: treasury 50.25 + custody 1,000 + custody 0.5 BTC (10,000) + aff owes 300 = 11,350.25
#   ex liabilities: owed to cust 1,300 USD + 0.5 BTC (10,000) = 11,300; equity 50.25
#   customer liabilities 11,300; custody 11,000; shortfall 300
#   holder balances: cust at ex 1,300 USD; aff at ex -300 USD

# (measure, extra fields, the true figure, tolerance, unit step)
MEASURES = [
    ("balance", 'account = "ex:cust"\nasset = "USD"', "1300.00", "0.05", "0.01", "ex/balance/ex:cust/USD"),
    ("balance", 'account = "ex:aff"\nasset = "USD"', "-300.00", "0.05", "0.01", "ex/balance/ex:aff/USD"),
    ("balance", 'account = "ex:custody"\nasset = "BTC"', "0.5", "0.00000002", "0.00000001", "ex/balance/ex:custody/BTC"),
    ("holdings_value", 'asset = "BTC"\nquote = "USD"', "10000.00", "0.05", "0.01", "ex/holdings_value/BTC"),
    ("total_assets", 'quote = "USD"', "11350.25", "0.05", "0.01", "ex/total_assets"),
    ("total_liabilities", 'quote = "USD"', "11300.00", "0.05", "0.01", "ex/total_liabilities"),
    ("equity", 'quote = "USD"', "50.25", "0.05", "0.01", "ex/equity"),
    ("customer_liabilities", 'quote = "USD"', "11300.00", "0.05", "0.01", "ex/customer_liabilities"),
    ("customer_shortfall", 'quote = "USD"', "300.00", "0.05", "0.01", "ex/customer_shortfall"),
]


def assertion(event_id: str, measure: str, fields: str, expected: str, tolerance: str, entity: str = "ex") -> str:
    return f"""
[[events]]
id = "{event_id}"
type = "balance_asserted"
entity = "{entity}"
measure = "{measure}"
{fields}
expected = "{expected}"
tolerance = "{tolerance}"
"""


@pytest.mark.parametrize(
    ("measure", "fields", "truth", "tol", "unit", "subject"),
    MEASURES,
    ids=[f"{m[0]}-{m[5]}" for m in MEASURES],
)
def test_assertion_each_measure_matches_and_mismatches_at_the_tolerance_edge(
    tmp_path, measure, fields, truth, tol, unit, subject
):
    t, tolerance, u = Decimal(truth), Decimal(tol), Decimal(unit)
    tl = timeline(
        tmp_path,
        ASSERT_SETUP
        + assertion("exact", measure, fields, truth, "0")
        + assertion("edge-above", measure, fields, str(t + tolerance), tol)
        + assertion("edge-below", measure, fields, str(t - tolerance), tol)
        + assertion("beyond", measure, fields, str(t + tolerance + u), tol)
        + assertion("again-exact", measure, fields, truth, "0")
        + assertion("beyond-below", measure, fields, str(t - tolerance - u), tol),
    )
    steps, summary = run(tl)
    assert opened(steps, "assertions") == [
        (seq_of(tl, "beyond"), "beyond", subject),
        (seq_of(tl, "beyond-below"), "beyond-below", subject),
    ]
    assert closed(steps, "assertions") == [(seq_of(tl, "again-exact"), "again-exact", subject)]
    assert [a["ok"] for a in summary.assertions] == [True, True, True, False, True, False]
    beyond = step_of(steps, "beyond").assertion
    unit_name = "BTC" if subject.endswith("BTC") and measure == "balance" else "USD"
    assert Decimal(beyond["actual"].split()[0]) == t
    assert Decimal(beyond["gap"].split()[0]) == -(tolerance + u)
    assert beyond["actual"].split()[1] == unit_name


def test_assertion_entry_values(tmp_path):
    tl = timeline(tmp_path, ASSERT_SETUP + assertion("a", "total_assets", 'quote = "USD"', "11350.31", "0.05"))
    steps, summary = run(tl)
    entry = summary.assertions[0]
    assert entry == {
        "seq": seq_of(tl, "a"),
        "event_id": "a",
        "at": "2022-01-02T00:00:00Z",
        "subject": "ex/total_assets",
        "ok": False,
        "actual": "11350.25 USD",
        "expected": "11350.31 USD",
        "bound": "11350.31 USD ± 0.05",
        "tolerance": "0.05",
        "gap": "-0.06 USD",
        "detail": entry["detail"],
    }
    detail = entry["detail"].replace(",", "")
    assert "11350.31" in detail and "11350.25" in detail and "-0.06" in detail
    assert step_of(steps, "a").assertion == entry
    v = summary.first_breaches["assertions"]
    assert (v.subject, v.observed, v.threshold) == ("ex/total_assets", "11350.25 USD", "11350.31 USD ± 0.05")


def test_assertions_compare_the_rounded_value_half_even(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[accounts]]
        account = "cust:wallet"
        purpose = "corporate"

        [[events]]
        id = "tok"
        type = "transfer"
        from_account = "world:market"
        to_account = "cust:wallet"
        asset = "TOK"
        amount = "0.1"
        """
        + price("p1", "1.25")
        + assertion("a-012", "holdings_value", 'asset = "TOK"\nquote = "USD"', "0.12", "0", entity="cust")
        + assertion("a-013", "holdings_value", 'asset = "TOK"\nquote = "USD"', "0.13", "0", entity="cust")
        + price("p2", "1.35")
        + assertion("b-014", "holdings_value", 'asset = "TOK"\nquote = "USD"', "0.14", "0", entity="cust")
        + assertion("b-013", "holdings_value", 'asset = "TOK"\nquote = "USD"', "0.13", "0.01", entity="cust"),
    )
    _, summary = run(tl)
    # 0.1 TOK x 1.25 = 0.125 -> 0.12; x 1.35 = 0.135 -> 0.14 (half-even).
    assert [(a["event_id"], a["ok"], a["actual"]) for a in summary.assertions] == [
        ("a-012", True, "0.12 USD"),
        ("a-013", False, "0.12 USD"),
        ("b-014", True, "0.14 USD"),
        ("b-013", True, "0.14 USD"),
    ]


def test_assertion_in_another_quote_is_restated_at_its_price(tmp_path):
    """Found by these tests (the assertion's quote was ignored); guards the fix."""
    # ex's total assets are 11,350.25 USD; 1 BTC is 20,000 USD: 0.5675125 BTC.
    # "11350.25 BTC" (227 million USD) must not match; 0.5675125 BTC must.
    tl = timeline(
        tmp_path,
        ASSERT_SETUP
        + assertion("as-if-usd", "total_assets", 'quote = "BTC"', "11350.25", "0")
        + assertion("in-btc", "total_assets", 'quote = "BTC"', "0.5675125", "0")
        + assertion("in-tok", "total_assets", 'quote = "TOK"', "1", "0"),
    )
    _, summary = run(tl)
    assert [(a["event_id"], a["ok"]) for a in summary.assertions] == [
        ("as-if-usd", False),
        ("in-btc", True),
        ("in-tok", False),  # TOK has no price: the figure cannot be compared
    ]
    assert summary.assertions[1]["actual"] == "0.5675125 BTC"


# ------------------------------------------------------------------------------------------------
# policy files
# ------------------------------------------------------------------------------------------------
def test_policy_file_overrides_every_threshold(tmp_path):
    path = policy_file(
        tmp_path,
        """
quote = "USD"
min_reserve_ratio = "0.8"
min_collateral_coverage = "1.25"
max_own_token_share = 0.4
max_related_party_exposure = "0.1"
enforce = ["segregation"]
disabled = ["assertions", "reserve-ratio"]

[haircuts]
crypto = "0.3"
affiliate_token = "0.9"
""",
    )
    policy = Policy.from_toml(path)
    assert policy.min_reserve_ratio == Decimal("0.8")
    assert policy.min_collateral_coverage == Decimal("1.25")
    assert policy.max_own_token_share == Decimal("0.4")  # a TOML float is read exactly
    assert policy.max_related_party_exposure == Decimal("0.1")
    assert policy.enforce == frozenset({"segregation"})
    assert policy.disabled == frozenset({"assertions", "reserve-ratio"})
    assert policy.haircut("crypto") == Decimal("0.3")
    assert policy.haircut("affiliate_token") == Decimal("0.9")
    assert policy.haircut("stablecoin") == Decimal("0.02")  # untouched default
    assert policy.haircut("exchange_token") == Decimal("0.5")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('quote = "USD"\nmin_reserve_ratio = "1"\ncolour = "red"\n', 3, "colour: unknown policy key"),
        ('# comment\nmin_reserve_ratio = "-1"\n', 2, "min_reserve_ratio: must be >= 0"),
        ('enforce = ["segregation", "nonsense"]\n', 1, "enforce: unknown invariant 'nonsense'"),
        ('\ndisabled = "conservation"\n', 2, "disabled: must be a list"),
        ('max_own_token_share = "lots"\n', 1, "max_own_token_share"),
    ],
)
def test_policy_file_errors_name_file_and_line(tmp_path, text, line, words):
    path = policy_file(tmp_path, text)
    with pytest.raises(InputError) as info:
        Policy.from_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert words in message


def test_policy_unknown_key_that_prefixes_a_known_key_names_its_own_line(tmp_path):
    path = policy_file(tmp_path, 'min_reserve_ratio = "1"\nmin = "2"\n')
    with pytest.raises(InputError) as info:
        Policy.from_toml(path)
    assert str(info.value).startswith(f"{path}:2: min: unknown policy key")


def test_policy_unknown_haircut_kind_names_file_and_line(tmp_path):
    path = policy_file(tmp_path, 'quote = "USD"\n\n[haircuts]\ncrypto = "0.3"\nshares = "0.1"\n')
    with pytest.raises(InputError) as info:
        Policy.from_toml(path)
    assert str(info.value).startswith(f"{path}:5: haircuts.shares: unknown asset kind")


def test_policy_haircut_out_of_range_is_refused(tmp_path):
    path = policy_file(tmp_path, '[haircuts]\ncrypto = "1.5"\n')
    with pytest.raises(InputError, match=r"haircuts\.crypto: must be between 0 and 1"):
        Policy.from_toml(path)


def test_policy_disabled_invariants_are_not_checked(tmp_path):
    tl = timeline(tmp_path, ROUTED)
    policy = Policy.from_toml(policy_file(tmp_path, 'disabled = ["segregation", "reserve-ratio"]\n'))
    steps, summary = run(tl, policy)
    assert opened(steps, "segregation") == [] and opened(steps, "reserve-ratio") == []
    names = [inv["name"] for inv in summary.invariants]
    assert names == [n for n in STANDARD_NAMES if n not in ("segregation", "reserve-ratio")]
    assert "segregation" not in summary.breach_counts
    # The same history breaks both without the policy: disabling is what hid them.
    _, default = run(tl)
    assert set(default.broke()) >= {"segregation", "reserve-ratio"}


# ------------------------------------------------------------------------------------------------
# enforce mode
# ------------------------------------------------------------------------------------------------
ENFORCED = (
    CUSTOMER_MONEY
    + """
[[events]]
id = "routed"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "50.00"
landed = "aff:bank"
owed_by = "ex:aff"

[[events]]
id = "d2"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "5.00"
landed = "ex:custody"
"""
)


def comparable(books: Books) -> dict:
    return {
        "balances": dict(books.balances),
        "prices": dict(books.prices),
        "limits": dict(books.limits),
        "loans": dict(books.registry.loans),
        "collateral": {t: {a: m for a, m in c.items() if m} for t, c in books.collateral.items()},
        "cust_liab": {k: v for k, v in books.cust_liab.items() if v},
        "custody": {k: v for k, v in books.custody.items() if v},
        "related": {k: v for k, v in books.related.items() if v},
    }


def test_enforce_mode_skips_the_breaking_event_and_books_are_as_if_it_never_happened(tmp_path):
    tl = timeline(tmp_path, ENFORCED)
    policy = Policy(enforce=frozenset({"segregation"}))
    run_ = replay(tl, policy)
    steps = list(run_)
    summary = run_.summary
    skipped = step_of(steps, "routed")
    assert skipped.skipped is not None and skipped.skipped.startswith("segregation: ex owes customers")
    assert skipped.opened == () and skipped.closed == ()
    assert summary.skipped == [(seq_of(tl, "routed"), "routed", skipped.skipped)]
    assert summary.breach_counts["segregation"] == 0
    # Everything opened by the skipped event is forgotten too (related-party, reserve-ratio).
    assert summary.broke() == []
    assert summary.events == len(tl.events) - 1
    without = [e for e in tl.events if e.id != "routed"]
    assert comparable(run_.books) == comparable(books_at(without))
    assert run_.books.balance("ex:cust", "USD") == 10500


def test_append_with_an_enforcing_policy_refuses_the_batch_and_leaves_the_head(tmp_path):
    db = tmp_path / "l.db"
    first = write(tmp_path, CUSTOMER_MONEY, name="first")
    second = write(tmp_path, ENFORCED, name="second")
    pol = policy_file(tmp_path, 'enforce = ["segregation"]\n')
    runner = CliRunner()
    ok = runner.invoke(cli, ["append", str(first), "--db", str(db), "--policy", str(pol)])
    assert ok.exit_code == 0, ok.output
    with Log.open(db, readonly=True) as log:
        head = log.head()
    assert head.seq == FIRST_SEQ
    refused = runner.invoke(cli, ["append", str(second), "--db", str(db), "--policy", str(pol)])
    assert refused.exit_code == 2
    assert "invariant segregation violated at event 'routed'" in refused.output
    assert "nothing was written" in refused.output
    with Log.open(db, readonly=True) as log:
        assert log.head() == head
    # Without the policy the same batch is history, and is recorded.
    accepted = runner.invoke(cli, ["append", str(second), "--db", str(db)])
    assert accepted.exit_code == 0, accepted.output
    assert "appended 2 event(s)" in accepted.output


def test_enforcing_guard_raises_invariant_refused(tmp_path):
    tl = timeline(tmp_path, ENFORCED)
    with Log.open(tmp_path / "g.db", create=True) as log:
        policy = Policy(enforce=frozenset({"segregation"}))
        with pytest.raises(InvariantRefused) as info:
            log.append(tl.events, guard=enforcing_guard(log, policy))
        assert info.value.violation.event_id == "routed"
        assert log.head().seq == 0


def test_enforcing_guard_refuses_only_new_breaches(tmp_path):
    tl = timeline(tmp_path, ENFORCED)
    with Log.open(tmp_path / "g.db", create=True) as log:
        stored = [e for e in tl.events if e.id != "d2"]
        log.append(stored)  # history may be bad: segregation is broken at "routed"
        policy = Policy(enforce=frozenset({"segregation"}))
        # d2 puts 5 into custody and owes 5 more: the existing shortfall of 50 is unchanged.
        result = log.append(tl.events, guard=enforcing_guard(log, policy))
        assert [eid for _, eid in result.appended] == ["d2"]


def test_a_skipped_event_is_not_listed_as_contributing(tmp_path):
    tl = timeline(
        tmp_path,
        ENFORCED
        + """
        [[events]]
        id = "capital"
        type = "transfer"
        from_account = "world:market"
        to_account = "ex:treasury"
        asset = "USD"
        amount = "10.00"
        """
        + withdrawal("w-aff", "1.00", account="ex:aff", paid_from="ex:treasury"),
    )
    steps, summary = run(tl, Policy(enforce=frozenset({"segregation"})))
    assert step_of(steps, "routed").skipped is not None
    v = summary.first_breaches["no-unauthorised-negative"]
    assert (v.subject, v.event_id) == ("ex:aff/USD", "w-aff")
    assert "routed" not in v.contributing


def test_enforce_mode_costs_about_as_much_per_event_as_a_plain_replay():
    n, accounts = 4_000, 2_000
    start = time.perf_counter()
    Replay(workload(n, accounts=accounts), metrics=False).run()
    budget = 10 * (time.perf_counter() - start) + 0.5
    enforced = Replay(workload(n, accounts=accounts), Policy(enforce=frozenset({"segregation"})), metrics=False)
    start = time.perf_counter()
    for count, _ in enumerate(enforced, start=1):
        if time.perf_counter() - start > budget:
            pytest.fail(f"enforce mode replayed {count} of {n} events in {budget:.1f}s (10x a plain replay)")


# ------------------------------------------------------------------------------------------------
# your own invariant
# ------------------------------------------------------------------------------------------------
class NoBigWithdrawals:
    name = "no-big-withdrawals"
    meaning = "no single withdrawal above 50 USD"

    def check(self, ctx):
        e = ctx.event
        if e.type == "withdrawal" and e.asset == "USD":
            yield Status(e.account, e.amount <= 50, observed=str(e.amount), threshold="50", detail="big")


def test_a_custom_invariant_passed_as_extra_fires_at_the_event(tmp_path):
    tl = timeline(tmp_path, CUSTOMER_MONEY + withdrawal("w-small", "50.00") + withdrawal("w-big", "50.01") + withdrawal("w-ok", "1.00"))
    steps, summary = run(tl, extra_invariants=[NoBigWithdrawals()])
    assert opened(steps, "no-big-withdrawals") == [(seq_of(tl, "w-big"), "w-big", "ex:cust")]
    assert closed(steps, "no-big-withdrawals") == [(seq_of(tl, "w-ok"), "w-ok", "ex:cust")]
    assert summary.first_breaches["no-big-withdrawals"].observed == "50.01"
    assert summary.breach_counts["no-big-withdrawals"] == 1
    assert summary.invariants[-1] == {"name": "no-big-withdrawals", "meaning": "no single withdrawal above 50 USD"}
    assert summary.broke(["no-big-withdrawals"]) == ["no-big-withdrawals"]
    assert summary.broke(["segregation"]) == []


def test_custom_invariant_names_must_be_unique(tmp_path):
    tl = timeline(tmp_path, CUSTOMER_MONEY)

    class Clash(NoBigWithdrawals):
        name = "segregation"

    with pytest.raises(InputError, match="unique"):
        run(tl, extra_invariants=[Clash()])


def test_replay_with_only_the_given_invariants(tmp_path):
    tl = timeline(tmp_path, ROUTED)
    steps, summary = run(tl, invariants=[NoBigWithdrawals()])
    assert [inv["name"] for inv in summary.invariants] == ["no-big-withdrawals"]
    assert all(not s.opened for s in steps)


def test_policy_is_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Policy().min_reserve_ratio = Decimal(0)  # type: ignore[misc]


# -- which invariant applies to which kind: one table, documented ----------------------------------
def _doc_table(marker: str) -> list[list[str]]:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "invariants.md").read_text(encoding="utf-8")
    block = text.split(f"<!-- {marker} -->", 1)[1].strip().split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in block.splitlines()[2:]]
    return [[cell.strip() for cell in row] for row in rows]


def test_the_kinds_page_is_the_kinds_table():
    import events as ev
    from ledger import kinds

    documented = {
        kind.strip("` "): family
        for kinds_cell, family in _doc_table("kinds-families")
        for kind in kinds_cell.split(",")
    }
    assert documented == kinds.FAMILY
    assert set(documented) == set(ev.ENTITY_KINDS)
    applies = {name.strip("`"): frozenset(f.strip() for f in fams.split(",")) for name, fams in _doc_table("kinds-applies")}
    assert applies == kinds.APPLIES


def test_a_lender_is_not_held_to_segregation_but_to_liquidity(tmp_path):
    """The same deposit, kept apart from customer custody: the custodial venue ``ex`` breaks
    segregation at once; the lender ``bank`` does not, and breaks liquidity-coverage only when
    it lends the money on (liquid 10.00 against 40% of 100.00 expected to run)."""
    tl = timeline(
        tmp_path,
        """
        [[accounts]]
        account = "bank:deposits"
        purpose = "customer"
        holder = "cust"

        [[events]]
        id = "d-ex"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "100.00"
        landed = "ex:treasury"

        [[events]]
        id = "d-bank"
        type = "deposit"
        account = "bank:deposits"
        asset = "USD"
        amount = "100.00"
        landed = "bank:vault"

        [[events]]
        id = "lend"
        type = "loan_opened"
        loan = "L"
        lender = "bank"
        borrower = "aff"
        asset = "USD"
        principal = "90.00"
        disbursed_from = "bank:vault"
        disbursed_to = "aff:bank"
        """,
    )
    steps, summary = run(tl)
    assert opened(steps, "segregation") == [(seq_of(tl, "d-ex"), "d-ex", "ex/USD")]
    assert opened(steps, "liquidity-coverage") == [(seq_of(tl, "lend"), "lend", "bank")]
    v = summary.first_breaches["liquidity-coverage"]
    assert (v.observed, v.threshold) == ("0.2500", "1.0000")
    assert "liquid assets of 10.00 USD" in v.detail and "40.00 USD of deposits expected to run" in v.detail


def test_an_unpriced_asset_is_said_to_be_unpriced_not_zero(tmp_path):
    """A venue owing 2 BTC that has no price does not "owe customers 0 USD": the summary names
    what is left out of the values, and an assertion's detail says what it did not count."""
    from ledger import report

    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "d1"
        type = "deposit"
        account = "ex:cust"
        asset = "BTC"
        amount = "2"
        landed = "ex:custody"

        [[events]]
        id = "a1"
        type = "balance_asserted"
        entity = "ex"
        measure = "total_assets"
        quote = "USD"
        expected = "0"
        tolerance = "0"
        """,
    )
    _, summary = run(tl)
    assert summary.final_metrics["customer_liabilities"] == "0"
    assert summary.final_metrics["unpriced_owed"] == "2 BTC"
    assert summary.final_metrics["unpriced_custody"] == "2 BTC"
    text = "\n".join(report.summary_text(summary))
    assert "owes customers 0 USD (and 2 BTC, unpriced: not in that figure)" in text
    assert "not counted, unpriced: 2 BTC held, 2 BTC owed" in summary.assertions[0]["detail"]


# ------------------------------------------------------------------------------------------------
# The general model's four invariants: a canary each (a known violation, its exact seq, subject,
# observed value and threshold). Figures worked out by hand in the docstrings.
# ------------------------------------------------------------------------------------------------
BANK = """
[[entities]]
entity = "bk"
name = "A bank"
kind = "bank"

[[entities]]
entity = "fdic"
name = "A deposit insurer"
kind = "insurer"

[[assets]]
asset = "TB"
name = "Treasury bond"
scale = 2
kind = "bond"

[[accounts]]
account = "bk:cash"
purpose = "corporate"

[[accounts]]
account = "bk:htm"
purpose = "corporate"
basis = "amortized_cost"

[[accounts]]
account = "bk:retail"
purpose = "customer"
holder = "cust"
liability_class = "retail"
depositors = 1000

[[accounts]]
account = "bk:big"
purpose = "customer"
holder = "aff"
"""


def _seed_bank(capital: str) -> str:
    return f"""
        [[events]]
        id = "capital"
        type = "transfer"
        from_account = "world:market"
        to_account = "bk:cash"
        asset = "USD"
        amount = "{capital}"
    """


def test_solvency_canary_a_bank_whose_amortized_cost_bonds_fall(tmp_path):
    """Capital 10, deposits 100, all of it but the capital in bonds held to maturity at 1.00
    (book value 100). The bonds fall to 0.85: at market the bank has 10 + 85 = 95 against 100
    owed, equity -5: insolvent; at book (bonds at 100) its equity is still 10. Back to 0.95:
    equity 5, closed."""
    tl = timeline(
        tmp_path,
        BANK
        + """
        [[events]]
        id = "px0"
        type = "price_updated"
        asset = "TB"
        quote = "USD"
        price = "1.00"
        """
        + _seed_bank("10.00")
        + """
        [[events]]
        id = "d1"
        type = "deposit"
        account = "bk:retail"
        asset = "USD"
        amount = "100.00"
        landed = "bk:cash"

        [[events]]
        id = "buy"
        type = "trade"
        asset = "TB"
        amount = "100.00"
        price = "1"
        pay_asset = "USD"
        seller_from = "world:market"
        seller_to = "world:market"
        buyer_from = "bk:cash"
        buyer_to = "bk:htm"

        [[events]]
        id = "fall"
        type = "price_updated"
        asset = "TB"
        quote = "USD"
        price = "0.85"

        [[events]]
        id = "recover"
        type = "price_updated"
        asset = "TB"
        quote = "USD"
        price = "0.95"
        """,
    )
    steps, summary = run(tl)
    assert opened(steps, "solvency") == [(seq_of(tl, "fall"), "fall", "bk")]
    assert closed(steps, "solvency") == [(seq_of(tl, "recover"), "recover", "bk")]
    v = summary.first_breaches["solvency"]
    assert (v.seq, v.subject, v.observed, v.threshold) == (seq_of(tl, "fall"), "bk", "-5.00 USD", "0 USD")
    assert v.detail == (
        "bk: liabilities of 100.00 USD exceed its assets at market value (95.00 USD): "
        "equity -5.00 USD; at book value its equity is 10.00 USD"
    )
    books = books_at(tl, seq=seq_of(tl, "fall"))
    assert books.equity("bk") == Decimal("-5") and books.equity_book("bk") == Decimal("10")
    assert books.unrealised_loss("bk") == Decimal("15")
    assert opened(steps, "capital-ratio") == []  # bonds weigh 0: no risk-weighted assets, equity at book >= 0


def test_liquidity_coverage_canary_a_run_on_uninsured_deposits(tmp_path):
    """Insured up to 250,000 a depositor: the retail account (1,000 depositors, 1,000,000) is
    wholly insured, of the big uninsured one (9,000,000) only 250,000. Capital 1,000,000; a loan
    of 6,000,000 leaves 5,000,000 cash against run-off 0.05 x 1,250,000 + 0.40 x 8,750,000 =
    3,562,500: covered. The big depositor runs: 2,000,000 out (cash 3,000,000 against
    62,500 + 0.40 x 6,750,000 = 2,762,500: still covered), then 2,000,000 more (cash 1,000,000
    against 62,500 + 0.40 x 4,750,000 = 1,962,500: 0.5096, short)."""
    tl = timeline(
        tmp_path,
        BANK
        + _seed_bank("1000000.00")
        + """
        [[events]]
        id = "insure"
        type = "deposit_insurance"
        insurer = "fdic"
        venue = "bk"
        asset = "USD"
        limit = "250000"

        [[events]]
        id = "d-retail"
        type = "deposit"
        account = "bk:retail"
        asset = "USD"
        amount = "1000000.00"
        landed = "bk:cash"

        [[events]]
        id = "d-big"
        type = "deposit"
        account = "bk:big"
        asset = "USD"
        amount = "9000000.00"
        landed = "bk:cash"

        [[events]]
        id = "lend"
        type = "loan_opened"
        loan = "L"
        lender = "bk"
        borrower = "aff"
        asset = "USD"
        principal = "6000000.00"
        disbursed_from = "bk:cash"
        disbursed_to = "aff:bank"

        [[events]]
        id = "run1"
        type = "withdrawal"
        account = "bk:big"
        asset = "USD"
        amount = "2000000.00"
        paid_from = "bk:cash"

        [[events]]
        id = "run2"
        type = "withdrawal"
        account = "bk:big"
        asset = "USD"
        amount = "2000000.00"
        paid_from = "bk:cash"
        """,
    )
    steps, summary = run(tl)
    assert opened(steps, "liquidity-coverage") == [(seq_of(tl, "run2"), "run2", "bk")]
    v = summary.first_breaches["liquidity-coverage"]
    assert (v.seq, v.subject, v.observed, v.threshold) == (seq_of(tl, "run2"), "bk", "0.5096", "1.0000")
    assert v.detail == (
        "bk: liquid assets of 1,000,000.00 USD after haircuts cover 0.5096 of the 1,962,500.00 USD "
        "of deposits expected to run (run-off-weighted, of 6,000,000.00 USD owed to depositors, "
        "1,250,000.00 USD insured)"
    )
    books = books_at(tl, seq=seq_of(tl, "run1"))
    assert books.liquidity_coverage("bk").quantize(Decimal("0.0001")) == Decimal("1.0860")  # 3,000,000 / 2,762,500
    assert opened(steps, "segregation") == opened(steps, "reserve-ratio") == []  # a bank: not a custodian


def test_capital_ratio_canary_a_loan_book_impairment(tmp_path):
    """Capital 1,000,000, deposits 9,000,000, loans of 8,000,000 (risk weight 1; cash weighs 0):
    1,000,000 / 8,000,000 = 0.125 >= 0.08. A loss allowance of 200,000: 800,000 / 7,800,000 =
    0.1026, still above; 300,000 more: 500,000 / 7,500,000 = 0.0667, below the minimum. Equity
    stays positive: solvent, undercapitalised."""
    tl = timeline(
        tmp_path,
        BANK
        + _seed_bank("1000000.00")
        + """
        [[events]]
        id = "d1"
        type = "deposit"
        account = "bk:retail"
        asset = "USD"
        amount = "9000000.00"
        landed = "bk:cash"

        [[events]]
        id = "lend"
        type = "loan_opened"
        loan = "L"
        lender = "bk"
        borrower = "aff"
        asset = "USD"
        principal = "8000000.00"
        disbursed_from = "bk:cash"
        disbursed_to = "aff:bank"

        [[events]]
        id = "imp1"
        type = "loan_impaired"
        loan = "L"
        amount = "200000.00"

        [[events]]
        id = "imp2"
        type = "loan_impaired"
        loan = "L"
        amount = "300000.00"
        """,
    )
    steps, summary = run(tl)
    assert opened(steps, "capital-ratio") == [(seq_of(tl, "imp2"), "imp2", "bk")]
    v = summary.first_breaches["capital-ratio"]
    assert (v.seq, v.subject, v.observed, v.threshold) == (seq_of(tl, "imp2"), "bk", "0.0667", "0.0800")
    assert v.detail == (
        "bk: equity at book value (500,000.00 USD) is 0.0667 of its risk-weighted assets "
        "(7,500,000.00 USD); the minimum is 0.0800"
    )
    assert opened(steps, "solvency") == []
    books = books_at(tl, seq=seq_of(tl, "imp1"))
    assert books.capital_ratio("bk").quantize(Decimal("0.0001")) == Decimal("0.1026")  # 800,000 / 7,800,000


POOL = """
[[entities]]
entity = "proto"
name = "A lending protocol"
kind = "protocol"

[[assets]]
asset = "ETH"
name = "Ether"
scale = 8
kind = "crypto"

[[assets]]
asset = "STETH"
name = "Staked ether"
scale = 8
kind = "staked"

[[accounts]]
account = "proto:pool"
purpose = "corporate"

[[events]]
id = "px-eth"
type = "price_updated"
asset = "ETH"
quote = "USD"
price = "2000"

[[events]]
id = "px-steth"
type = "price_updated"
asset = "STETH"
quote = "ETH"
price = "1.00"

[[events]]
id = "fund-pool"
type = "transfer"
from_account = "world:market"
to_account = "proto:pool"
asset = "USD"
amount = "10000.00"

[[events]]
id = "fund-aff"
type = "transfer"
from_account = "world:market"
to_account = "aff:bank"
asset = "STETH"
amount = "10"

[[events]]
id = "fund-aff-eth"
type = "transfer"
from_account = "world:market"
to_account = "aff:bank"
asset = "ETH"
amount = "2"

[[events]]
id = "L1"
type = "loan_opened"
loan = "L1"
lender = "proto"
borrower = "aff"
asset = "USD"
principal = "6000.00"
disbursed_from = "proto:pool"
disbursed_to = "aff:bank"
liquidation_threshold = "0.80"
pool = "P"

[[events]]
id = "pledge-steth"
type = "collateral_pledged"
pool = "P"
asset = "STETH"
amount = "10"
from_account = "aff:bank"

[[events]]
id = "pledge-eth"
type = "collateral_pledged"
pool = "P"
asset = "ETH"
amount = "2"
from_account = "aff:bank"

[[events]]
id = "L2"
type = "loan_opened"
loan = "L2"
lender = "proto"
borrower = "aff"
asset = "USD"
principal = "4000.00"
disbursed_from = "proto:pool"
disbursed_to = "aff:bank"
liquidation_threshold = "0.75"
pool = "P"
"""


def test_loan_health_canary_a_pooled_position_and_a_chained_price(tmp_path):
    """Two loans from a protocol share pool P (10 stETH and 2 ETH) against 6,000 + 4,000 USD of
    debt. L1 opens before its collateral (health 0) and is healthy once the stETH is in.
    ETH 2,000 -> 1,100: the pool is worth 10 x 1.00 x 1,100 + 2 x 1,100 = 13,200; L1 (threshold
    0.80) 13,200 x 0.80 / 10,000 = 1.056, healthy; L2 (0.75) 0.99: can be liquidated. Then
    stETH, priced in ETH, slips to 0.90 ETH (no USD price of stETH moves): the pool is worth
    9,900 + 2,200 = 12,100 and L1 falls to 0.968."""
    tl = timeline(
        tmp_path,
        POOL
        + """
        [[events]]
        id = "eth-falls"
        type = "price_updated"
        asset = "ETH"
        quote = "USD"
        price = "1100"

        [[events]]
        id = "steth-slips"
        type = "price_updated"
        asset = "STETH"
        quote = "ETH"
        price = "0.90"
        """,
    )
    steps, _ = run(tl)
    assert opened(steps, "loan-health") == [
        (seq_of(tl, "L1"), "L1", "L1"),
        (seq_of(tl, "eth-falls"), "eth-falls", "L2"),
        (seq_of(tl, "steth-slips"), "steth-slips", "L1"),
    ]
    assert closed(steps, "loan-health") == [(seq_of(tl, "pledge-steth"), "pledge-steth", "L1")]
    by_event = {(v.event_id, v.subject): v for s in steps for v in s.opened if v.invariant == "loan-health"}
    l2 = by_event[("eth-falls", "L2")]
    assert (l2.seq, l2.observed, l2.threshold) == (seq_of(tl, "eth-falls"), "0.9900", "1.0000")
    l1 = by_event[("steth-slips", "L1")]
    assert (l1.seq, l1.observed, l1.threshold) == (seq_of(tl, "steth-slips"), "0.9680", "1.0000")
    assert "collateral pooled in P worth 12,100.00 USD at market" in l1.detail
    assert "covers 0.9680 of a debt of 10,000.00 USD" in l1.detail
    books = books_at(tl)
    assert books.price("STETH") == Decimal("990")  # 0.90 ETH x 1,100 USD
    assert books.loan_health("L1") == Decimal("0.968") and books.loan_health("L2") == Decimal("0.9075")
    assert [s.event.id for s in steps if any(v.subject == "L1" for v in s.opened)] == ["L1", "steth-slips"]
