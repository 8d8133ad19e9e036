"""The books: postings per event exactly as docs/model.md states them, and the views."""

from __future__ import annotations

import decimal
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scenario import timeline

import events as ev
from ledger.books import SUM_CONTEXT, VALUE_CONTEXT, Books
from ledger.errors import InputError
from ledger.policy import Policy
from ledger.registry import Registry
from ledger.testing.strategies import histories as ledger_histories
from ledger.testing.strategies import policies


def apply_all(tl, books: Books | None = None) -> tuple[dict[str, list[tuple[str, str, str, int]]], Books]:
    """Apply every event; return each event's postings (sorted) by id, and the books."""
    books = books or Books()
    out = {}
    for event in tl.events:
        change = books.apply(event)
        out[event.id] = sorted((p.entity, p.account, p.asset, p.delta) for p in change.postings)
    return out, books


# ------------------------------------------------------------------------------------------------
# postings per event type
# ------------------------------------------------------------------------------------------------
DEPOSITS = """
[[accounts]]
account = "cust:wallet"
purpose = "corporate"

[[events]]
id = "fund-wallet"
type = "transfer"
from_account = "world:market"
to_account = "cust:wallet"
asset = "USD"
amount = "500.00"

[[events]]
id = "plain"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100.00"
landed = "ex:custody"

[[events]]
id = "from-wallet"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "1.23"
landed = "ex:treasury"
from_account = "cust:wallet"

[[events]]
id = "owed-by"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "40.00"
landed = "aff:bank"
owed_by = "ex:aff"

[[events]]
id = "due"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "7.00"
landed = "aff:bank"
"""


def test_deposit_postings(tmp_path):
    posted, _ = apply_all(timeline(tmp_path, DEPOSITS))
    assert posted["plain"] == [
        ("cust", "claim:ex:cust", "USD", 10000),
        ("cust", "external", "USD", -10000),
        ("ex", "cust", "USD", -10000),
        ("ex", "custody", "USD", 10000),
    ]
    assert posted["from-wallet"] == [
        ("cust", "claim:ex:cust", "USD", 123),
        ("cust", "wallet", "USD", -123),
        ("ex", "cust", "USD", -123),
        ("ex", "treasury", "USD", 123),
    ]
    assert posted["owed-by"] == [
        ("aff", "bank", "USD", 4000),
        ("aff", "claim:ex:aff", "USD", -4000),
        ("cust", "claim:ex:cust", "USD", 4000),
        ("cust", "external", "USD", -4000),
        ("ex", "aff", "USD", 4000),
        ("ex", "cust", "USD", -4000),
    ]
    assert posted["due"] == [
        ("aff", "bank", "USD", 700),
        ("aff", "due-to:ex", "USD", -700),
        ("cust", "claim:ex:cust", "USD", 700),
        ("cust", "external", "USD", -700),
        ("ex", "cust", "USD", -700),
        ("ex", "due-from:aff", "USD", 700),
    ]


def test_balances_after_deposits_and_holder_view(tmp_path):
    _, books = apply_all(timeline(tmp_path, DEPOSITS))
    # ex owes cust 100 + 1.23 + 40 + 7; the raw (venue-side) balance is the negative.
    assert books.balances[("ex", "cust", "USD")] == -14823
    assert books.balance("ex:cust", "USD") == 14823
    assert books.balance("ex:aff", "USD") == -4000  # aff owes ex
    assert books.balance("cust:wallet", "USD") == 50000 - 123
    assert books.balance("ex:custody", "USD") == 10000
    assert books.balance("ex:treasury", "USD") == 123


WITHDRAWALS = """
[[accounts]]
account = "cust:wallet"
purpose = "corporate"

[[events]]
id = "d1"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100.00"
landed = "ex:custody"

[[events]]
id = "out"
type = "withdrawal"
account = "ex:cust"
asset = "USD"
amount = "30.00"
paid_from = "ex:custody"

[[events]]
id = "to-wallet"
type = "withdrawal"
account = "ex:cust"
asset = "USD"
amount = "20.00"
paid_from = "ex:custody"
to = "cust:wallet"

[[events]]
id = "too-much"
type = "withdrawal"
account = "ex:cust"
asset = "USD"
amount = "50.01"
paid_from = "ex:custody"

[[events]]
id = "halt"
type = "withdrawals_halted"
venue = "ex"

[[events]]
id = "halted"
type = "withdrawal"
account = "ex:cust"
asset = "USD"
amount = "1.00"
paid_from = "ex:custody"
"""


def test_withdrawal_postings(tmp_path):
    posted, books = apply_all(timeline(tmp_path, WITHDRAWALS))
    assert posted["out"] == [
        ("cust", "claim:ex:cust", "USD", -3000),
        ("cust", "external", "USD", 3000),
        ("ex", "cust", "USD", 3000),
        ("ex", "custody", "USD", -3000),
    ]
    assert posted["to-wallet"] == [
        ("cust", "claim:ex:cust", "USD", -2000),
        ("cust", "wallet", "USD", 2000),
        ("ex", "cust", "USD", 2000),
        ("ex", "custody", "USD", -2000),
    ]
    assert posted["too-much"] == []  # custody holds 50.00
    assert posted["halt"] == []
    assert posted["halted"] == []
    assert books.halted == {"ex"}
    assert books.balance("ex:cust", "USD") == 5000


def test_withdrawal_refusal_is_reported_on_the_change(tmp_path):
    tl = timeline(tmp_path, WITHDRAWALS)
    books = Books()
    changes = {e.id: books.apply(e) for e in tl.events}
    assert changes["out"].withdrawal_paid == "ex" and changes["out"].withdrawal_refused is None
    assert changes["too-much"].withdrawal_refused == "ex:custody holds 50.00 USD, cannot pay 50.01"
    assert changes["halted"].withdrawal_refused == "ex has halted withdrawals"


TRANSFERS = """
[[accounts]]
account = "ex:cust2"
purpose = "customer"
holder = "cust"

[[events]]
id = "same-entity"
type = "transfer"
from_account = "ex:custody"
to_account = "ex:treasury"
asset = "BTC"
amount = "0.00000001"

[[events]]
id = "across"
type = "transfer"
from_account = "ex:treasury"
to_account = "aff:bank"
asset = "USD"
amount = "2.50"

[[events]]
id = "book"
type = "transfer"
from_account = "ex:cust"
to_account = "ex:aff"
asset = "USD"
amount = "3.00"

[[events]]
id = "book-same-holder"
type = "transfer"
from_account = "ex:cust"
to_account = "ex:cust2"
asset = "USD"
amount = "1.00"
"""


def test_transfer_postings(tmp_path):
    posted, _ = apply_all(timeline(tmp_path, TRANSFERS))
    assert posted["same-entity"] == [("ex", "custody", "BTC", -1), ("ex", "treasury", "BTC", 1)]
    assert posted["across"] == [
        ("aff", "bank", "USD", 250),
        ("aff", "equity", "USD", -250),
        ("ex", "equity", "USD", 250),
        ("ex", "treasury", "USD", -250),
    ]
    # A book transfer between customers: the venue's two accounts, both holders' mirrors,
    # and the payment between two different holders through their equity.
    assert posted["book"] == [
        ("aff", "claim:ex:aff", "USD", 300),
        ("aff", "equity", "USD", -300),
        ("cust", "claim:ex:cust", "USD", -300),
        ("cust", "equity", "USD", 300),
        ("ex", "aff", "USD", -300),
        ("ex", "cust", "USD", 300),
    ]
    assert posted["book-same-holder"] == [
        ("cust", "claim:ex:cust", "USD", -100),
        ("cust", "claim:ex:cust2", "USD", 100),
        ("ex", "cust", "USD", 100),
        ("ex", "cust2", "USD", -100),
    ]


LOANS = """
[[events]]
id = "fund"
type = "transfer"
from_account = "world:market"
to_account = "bank:vault"
asset = "USD"
amount = "1000.00"

[[events]]
id = "mint"
type = "tokens_minted"
asset = "TOK"
amount = "500"
to_account = "ex:treasury"

[[events]]
id = "tok"
type = "transfer"
from_account = "ex:treasury"
to_account = "aff:bank"
asset = "TOK"
amount = "500"

[[events]]
id = "open"
type = "loan_opened"
loan = "L1"
lender = "bank"
borrower = "aff"
asset = "USD"
principal = "800.00"
disbursed_from = "bank:vault"
disbursed_to = "aff:bank"
rate = "0.05"

[[events]]
id = "repay"
type = "loan_repaid"
loan = "L1"
amount = "100.00"
paid_from = "aff:bank"
paid_to = "bank:vault"

[[events]]
id = "pledge"
type = "collateral_pledged"
loan = "L1"
asset = "TOK"
amount = "300"
from_account = "aff:bank"

[[events]]
id = "release"
type = "collateral_released"
loan = "L1"
asset = "TOK"
amount = "50"
to_account = "aff:bank"

[[events]]
id = "default"
type = "loan_defaulted"
loan = "L1"

[[events]]
id = "seize"
type = "collateral_seized"
loan = "L1"
asset = "TOK"
amount = "200"
to_account = "bank:vault"
credited = "600.00"
"""


def test_loan_and_collateral_postings(tmp_path):
    posted, books = apply_all(timeline(tmp_path, LOANS))
    assert posted["mint"] == [("ex", "equity", "TOK", -5_000_000), ("ex", "treasury", "TOK", 5_000_000)]
    assert posted["open"] == [
        ("aff", "bank", "USD", 80000),
        ("aff", "loan:L1", "USD", -80000),
        ("bank", "loan:L1", "USD", 80000),
        ("bank", "vault", "USD", -80000),
    ]
    assert posted["repay"] == [
        ("aff", "bank", "USD", -10000),
        ("aff", "loan:L1", "USD", 10000),
        ("bank", "loan:L1", "USD", -10000),
        ("bank", "vault", "USD", 10000),
    ]
    assert posted["pledge"] == [("aff", "bank", "TOK", -3_000_000), ("aff", "pledged:L1", "TOK", 3_000_000)]
    assert posted["release"] == [("aff", "bank", "TOK", 500_000), ("aff", "pledged:L1", "TOK", -500_000)]
    assert posted["default"] == []
    assert posted["seize"] == [
        ("aff", "equity", "TOK", 2_000_000),
        ("aff", "equity", "USD", -60000),
        ("aff", "loan:L1", "USD", 60000),
        ("aff", "pledged:L1", "TOK", -2_000_000),
        ("bank", "equity", "TOK", -2_000_000),
        ("bank", "equity", "USD", 60000),
        ("bank", "loan:L1", "USD", -60000),
        ("bank", "vault", "TOK", 2_000_000),
    ]
    loan = books.registry.loans["L1"]
    assert (loan.outstanding, loan.defaulted) == (10000, True)
    assert books.collateral["L1"] == {"TOK": 500_000}
    assert books.balances[("aff", "loan:L1", "USD")] == -10000
    assert books.balances[("bank", "loan:L1", "USD")] == 10000


def test_seizure_against_a_customer_account_credits_the_account(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "mint"
        type = "tokens_minted"
        asset = "TOK"
        amount = "500"
        to_account = "ex:treasury"

        [[events]]
        id = "tok"
        type = "transfer"
        from_account = "ex:treasury"
        to_account = "aff:bank"
        asset = "TOK"
        amount = "500"

        [[events]]
        id = "d"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "1000.00"
        landed = "ex:custody"

        [[events]]
        id = "draw"
        type = "withdrawal"
        account = "ex:aff"
        asset = "USD"
        amount = "700.00"
        paid_from = "ex:custody"
        to = "aff:bank"

        [[events]]
        id = "pledge"
        type = "collateral_pledged"
        account = "ex:aff"
        asset = "TOK"
        amount = "100"
        from_account = "aff:bank"

        [[events]]
        id = "seize"
        type = "collateral_seized"
        account = "ex:aff"
        asset = "TOK"
        amount = "100"
        to_account = "ex:treasury"
        credited = "500.00"
        credited_asset = "USD"
        """,
    )
    posted, books = apply_all(tl)
    assert posted["pledge"] == [("aff", "bank", "TOK", -1_000_000), ("aff", "pledged:ex:aff", "TOK", 1_000_000)]
    assert posted["seize"] == [
        ("aff", "claim:ex:aff", "USD", 50000),
        ("aff", "equity", "TOK", 1_000_000),
        ("aff", "equity", "USD", -50000),
        ("aff", "pledged:ex:aff", "TOK", -1_000_000),
        ("ex", "aff", "USD", -50000),
        ("ex", "equity", "TOK", -1_000_000),
        ("ex", "equity", "USD", 50000),
        ("ex", "treasury", "TOK", 1_000_000),
    ]
    assert books.balance("ex:aff", "USD") == -20000  # owed 700, 500 settled by the seizure


def test_events_that_move_no_money_post_nothing(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "price"
        type = "price_updated"
        asset = "BTC"
        quote = "USD"
        price = "30000"

        [[events]]
        id = "price-other-quote"
        type = "price_updated"
        asset = "TOK"
        quote = "BTC"
        price = "0.001"

        [[events]]
        id = "credit"
        type = "credit_line_granted"
        account = "ex:aff"
        asset = "USD"
        limit = "10.00"

        [[events]]
        id = "halt"
        type = "withdrawals_halted"
        venue = "ex"

        [[events]]
        id = "resume"
        type = "withdrawals_resumed"
        venue = "ex"

        [[events]]
        id = "bk"
        type = "bankruptcy_filed"
        entity = "aff"

        [[events]]
        id = "news"
        type = "disclosure"
        entity = "ex"
        title = "A leaked balance sheet"

        [[events]]
        id = "claim"
        type = "balance_asserted"
        entity = "ex"
        measure = "total_assets"
        quote = "USD"
        expected = "0"
        tolerance = "0"
        """,
    )
    posted, books = apply_all(tl)
    for eid in ("price", "price-other-quote", "credit", "halt", "resume", "bk", "news", "claim"):
        assert posted[eid] == [], eid
    assert books.balances == {}
    # A price in another quote is chained through that asset's own price: TOK at 0.001 BTC.
    assert books.prices == {"BTC": Decimal("30000"), "TOK": Decimal("30.000")}
    assert books.limit("ex:aff", "USD") == 1000
    assert books.halted == set() and books.bankrupt == {"aff"}


# ------------------------------------------------------------------------------------------------
# balance sheets
# ------------------------------------------------------------------------------------------------
GROUP = """
[[events]]
id = "capital"
type = "transfer"
from_account = "world:market"
to_account = "ex:treasury"
asset = "USD"
amount = "1000.00"

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
amount = "500.00"
landed = "ex:custody"

[[events]]
id = "d-btc"
type = "deposit"
account = "ex:cust"
asset = "BTC"
amount = "0.1"
landed = "ex:custody"

[[events]]
id = "routed"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "200.00"
landed = "aff:bank"
owed_by = "ex:aff"

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
"""


def D(text: str) -> Decimal:
    return Decimal(text)


def test_balance_sheet_of_one_entity(tmp_path):
    _, books = apply_all(timeline(tmp_path, GROUP))
    sheet = books.balance_sheet("ex")
    assert sheet == {
        "entities": ["ex"],
        "quote": "USD",
        "assets": {
            "custody BTC": D("2000.00"),
            "custody USD": D("500.00"),
            "customer account aff (holder aff) USD": D("200.00"),
            "loan:L-aff (aff) USD": D("300.00"),
            "treasury USD": D("700.00"),
        },
        "liabilities": {
            "customer account cust (holder cust) BTC": D("2000.00"),
            "customer account cust (holder cust) USD": D("700.00"),
        },
        "total_assets": D("3700.00"),
        "total_liabilities": D("2700.00"),
        "equity": D("1000.00"),
    }
    assert str(sheet["total_assets"]) == "3700.00"  # rounded to the quote's scale
    aff = books.balance_sheet("aff")
    assert aff["assets"] == {"bank USD": D("500.00")}
    assert aff["liabilities"] == {"claim on ex:aff USD": D("200.00"), "loan:L-aff (ex) USD": D("300.00")}
    assert (aff["total_assets"], aff["total_liabilities"], aff["equity"]) == (D(500), D(500), D(0))
    # The measures agree with the sheet.
    assert books.total_assets("ex") == D(3700)
    assert books.total_liabilities("ex") == D(2700)
    assert books.equity("ex") == D(1000)
    assert books.customer_liabilities("ex") == D(2700)
    assert books.custody_value("ex") == D(2500)
    assert books.customer_shortfall("ex") == D(200)
    assert books.related_exposure("ex") == D(500)  # aff owes 200 on its account + 300 loan


def test_consolidated_group_sheet_drops_intra_group_balances(tmp_path):
    _, books = apply_all(timeline(tmp_path, GROUP))
    assert books.group_members("g") == ["aff", "ex"]
    sheet = books.balance_sheet(books.group_members("g"))
    assert sheet["entities"] == ["aff", "ex"]
    assert sheet["assets"] == {
        "bank USD": D("500.00"),
        "custody BTC": D("2000.00"),
        "custody USD": D("500.00"),
        "treasury USD": D("700.00"),
    }
    assert sheet["liabilities"] == {
        "customer account cust (holder cust) BTC": D("2000.00"),
        "customer account cust (holder cust) USD": D("700.00"),
    }
    # 3,700 + 500 less the 500 each way between ex and aff.
    assert (sheet["total_assets"], sheet["total_liabilities"], sheet["equity"]) == (D(3700), D(2700), D(1000))


def test_coverage_view(tmp_path):
    _, books = apply_all(timeline(tmp_path, GROUP))
    assert books.coverage() == [
        {"venue": "ex", "asset": "BTC", "owed_to_customers": D("0.1"), "in_custody": D("0.1"), "shortfall": D(0)},
        {"venue": "ex", "asset": "USD", "owed_to_customers": D(700), "in_custody": D(500), "shortfall": D(200)},
    ]


def test_loans_view(tmp_path):
    tl = timeline(
        tmp_path,
        GROUP
        + """
        [[events]]
        id = "btc-to-aff"
        type = "transfer"
        from_account = "world:market"
        to_account = "aff:bank"
        asset = "BTC"
        amount = "0.05"

        [[events]]
        id = "pledge"
        type = "collateral_pledged"
        loan = "L-aff"
        asset = "BTC"
        amount = "0.05"
        from_account = "aff:bank"

        [[events]]
        id = "unsecured"
        type = "loan_opened"
        loan = "L-bank"
        lender = "bank"
        borrower = "aff"
        asset = "BTC"
        principal = "0.01"
        disbursed_from = "bank:vault"
        disbursed_to = "aff:bank"

        [[events]]
        id = "default"
        type = "loan_defaulted"
        loan = "L-bank"
        """,
    )
    _, books = apply_all(tl)
    rows = {row["target"]: row for row in books.loans_view()}
    assert rows["L-aff"] == {
        "target": "L-aff",
        "kind": "loan",
        "lender": "ex",
        "borrower": "aff",
        "asset": "USD",
        "outstanding": D(300),
        "debt_value": D("300.00"),
        "collateral": {"BTC": D("0.05")},
        "collateral_market_value": D("1000.00"),
        "collateral_haircut_value": D("750.00"),
        "ltv": D("0.3000"),
        "defaulted": False,
    }
    bank = rows["L-bank"]
    assert (bank["debt_value"], bank["collateral"], bank["ltv"], bank["defaulted"]) == (D("200.00"), {}, None, True)
    assert books.secured_debt("L-bank") == D(200)  # 0.01 BTC at 20,000
    assert books.holdings_value("aff", "BTC") == D(1200)  # 0.05 pledged + 0.01 borrowed, at 20,000


# ------------------------------------------------------------------------------------------------
# valuation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "rounded"),
    [
        ("0.125", "0.12"),
        ("0.135", "0.14"),
        ("0.145", "0.14"),
        ("0.155", "0.16"),
        ("-0.125", "-0.12"),
        ("2.675", "2.68"),
        ("1.0049999", "1.00"),
        ("7", "7.00"),
    ],
)
def test_values_round_once_half_even_to_the_quote_scale(raw, rounded):
    books = Books()
    assert str(books.round_value(Decimal(raw))) == rounded


def test_rounding_uses_the_listed_quote_scale(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[assets]]
        asset = "JPY"
        name = "Yen"
        scale = 0
        kind = "fiat"
        """,
    )
    _, books = apply_all(tl, Books(Policy(quote="JPY")))
    assert str(books.round_value(Decimal("2.5"))) == "2"
    assert str(books.round_value(Decimal("3.5"))) == "4"


def test_valuation_rounds_once_at_the_end(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[accounts]]
        account = "cust:wallet"
        purpose = "corporate"

        [[accounts]]
        account = "cust:other"
        purpose = "corporate"

        [[events]]
        id = "t1"
        type = "transfer"
        from_account = "world:market"
        to_account = "cust:wallet"
        asset = "TOK"
        amount = "0.1"

        [[events]]
        id = "t2"
        type = "transfer"
        from_account = "world:market"
        to_account = "cust:other"
        asset = "TOK"
        amount = "0.1"

        [[events]]
        id = "p"
        type = "price_updated"
        asset = "TOK"
        quote = "USD"
        price = "1.25"
        """,
    )
    _, books = apply_all(tl)
    assert books.value(1000, "TOK") == D("0.125")  # exact
    assert books.holdings_value("cust", "TOK") == D("0.25")
    sheet = books.balance_sheet("cust")
    # Each line rounds 0.125 to 0.12; the total is rounded from the exact 0.25, not 0.24.
    assert sheet["assets"] == {"other TOK": D("0.12"), "wallet TOK": D("0.12")}
    assert str(sheet["total_assets"]) == "0.25"


def test_unpriced_assets_are_worth_zero(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "d-btc"
        type = "deposit"
        account = "ex:cust"
        asset = "BTC"
        amount = "3"
        landed = "ex:custody"

        [[events]]
        id = "d-usd"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "10.00"
        landed = "ex:custody"
        """,
    )
    _, books = apply_all(tl)
    assert books.price("BTC") is None and books.price("USD") == 1
    assert books.value(300_000_000, "BTC") == 0
    assert books.total_assets("ex") == D(10)
    assert books.customer_liabilities("ex") == D(10)
    sheet = books.balance_sheet("ex")
    assert sheet["assets"] == {"custody BTC": D("0.00"), "custody USD": D("10.00")}
    books.apply(
        ev.PriceUpdated(
            id="p", at=tl.events[-1].at, source=("T",), asset="BTC", quote="USD", price="0.5"
        )
    )
    assert books.total_assets("ex") == D("11.5")


def test_haircuts_and_liquid_reserves(tmp_path):
    tl = timeline(
        tmp_path,
        """
        [[events]]
        id = "p-btc"
        type = "price_updated"
        asset = "BTC"
        quote = "USD"
        price = "100"

        [[events]]
        id = "p-tok"
        type = "price_updated"
        asset = "TOK"
        quote = "USD"
        price = "2"

        [[events]]
        id = "btc"
        type = "transfer"
        from_account = "world:market"
        to_account = "ex:treasury"
        asset = "BTC"
        amount = "1"

        [[events]]
        id = "mint"
        type = "tokens_minted"
        asset = "TOK"
        amount = "100"
        to_account = "ex:treasury"

        [[events]]
        id = "tok-aff"
        type = "transfer"
        from_account = "ex:treasury"
        to_account = "aff:bank"
        asset = "TOK"
        amount = "50"
        """,
    )
    _, books = apply_all(tl)
    assert books.haircut("TOK") == D("0.5")
    assert books.haircut("TOK", owner="ex") == D(1)
    assert books.haircut("TOK", owner="aff") == D(1)  # affiliate of the issuer
    assert books.haircut("TOK", owner="bank") == D("0.5")
    assert books.haircut("BTC", owner="ex") == D("0.25")
    # 1 BTC at 100 less 25% = 75; 50 own TOK count for nothing.
    assert books.liquid_reserves("ex") == D(75)
    assert books.own_token_value("ex") == D(100)
    assert books.own_token_value("aff") == D(100)


def test_books_state_round_trip(tmp_path):
    tl = timeline(tmp_path, GROUP + LOANS)
    _, books = apply_all(tl)
    state = books.to_state()
    again = Books.from_state(json.loads(json.dumps(state)))
    assert again.balances == books.balances
    assert again.prices == books.prices
    assert again.registry.loans == books.registry.loans
    assert again.balance_sheet("ex") == books.balance_sheet("ex")
    assert again.balance_sheet(["aff", "ex"]) == books.balance_sheet(["aff", "ex"])
    assert again.loans_view() == books.loans_view()
    assert again.coverage() == books.coverage()
    for name in ("ex", "aff", "bank"):
        assert again.related_exposure(name) == books.related_exposure(name)
        assert again.liquid_reserves(name) == books.liquid_reserves(name)


@pytest.mark.parametrize("name", ["equity", "external", "claim:ex:aff", "loan:L1", "pledged:L1", "due-to:ex"])
def test_account_names_reserved_for_implicit_accounts_are_refused(tmp_path, name):
    tl = timeline(
        tmp_path,
        f"""
        [[accounts]]
        account = "aff:{name}"
        purpose = "corporate"
        """,
    )
    with pytest.raises(InputError, match="account"):
        tl.check()



# ------------------------------------------------------------------------------------------------
# running values: kept incrementally, always equal to the sums over assets
# ------------------------------------------------------------------------------------------------
def _reference_values(books: Books, entity: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    with decimal.localcontext(SUM_CONTEXT):  # exact, like the books (28 digits would round)
        return _sums(books, entity)


def _sums(books: Books, entity: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    owed = reserves = related = own = Decimal(0)
    for asset in books.entity_assets.get(entity, ()):
        owed += books.value(books.cust_liab.get((entity, asset), 0), asset)
        held = books.held.get((entity, asset), 0)
        if held > 0:
            reserves += books.value(held, asset) * (1 - books.haircut(asset, owner=entity))
        related += books.value(books.related.get((entity, asset), 0), asset)
        issuer = books.registry.assets[asset].issuer
        if issuer is not None and books.registry.affiliated(entity, issuer):
            own += books.holdings_value(entity, asset)
    return owed, reserves, related, own


def _values(books: Books) -> dict[str, tuple[Decimal, Decimal, Decimal, Decimal]]:
    return {
        entity: (
            books.customer_liabilities(entity),
            books.liquid_reserves(entity),
            books.related_exposure(entity),
            books.own_token_value(entity),
        )
        for entity in sorted(books.entity_assets)
    }


@given(history=ledger_histories(max_events=60), policy=policies(), data=st.data())
def test_running_values_equal_the_sums_after_every_event_undo_and_snapshot(history, policy, data):
    books = Books(policy)
    for event in history:
        before = _values(books)
        undo = data.draw(st.booleans(), label=f"undo {event.id}")
        books.apply(event, undoable=undo)
        for entity in books.entity_assets:
            assert _values(books)[entity] == _reference_values(books, entity)
        if undo:
            if data.draw(st.booleans(), label=f"take back {event.id}"):
                books.undo()
                assert _values(books) == {e: v for e, v in before.items()} | {
                    e: (Decimal(0),) * 4 for e in _values(books) if e not in before
                }
                books.apply(event)
            else:
                books.keep()
    restored = Books.from_state(json.loads(json.dumps(books.to_state())), policy)
    assert _values(restored) == _values(books)


def _cover_index(books: Books) -> tuple[dict, dict, dict]:
    """The collateral break-price index, without empty entries."""
    return (
        dict(books.cover_key),
        {asset: list(entries) for asset, entries in books.cover_index.items() if entries},
        {asset: set(targets) for asset, targets in books.complex_targets.items() if targets},
    )


@given(history=ledger_histories(max_events=60), policy=policies(), data=st.data())
def test_the_collateral_index_equals_one_rebuilt_from_scratch_after_every_event_and_undo(history, policy, data):
    books = Books(policy)
    for event in history:
        before = _cover_index(books)
        books.apply(event, undoable=True)
        rebuilt = Books.from_state(json.loads(json.dumps(books.to_state())), policy)
        assert _cover_index(books) == _cover_index(rebuilt)
        if data.draw(st.booleans(), label=f"take back {event.id}"):
            books.undo()
            assert _cover_index(books) == before
            books.apply(event)
        else:
            books.keep()



# ------------------------------------------------------------------------------------------------
# the general model (issue 14): trades, valuation bases, impairments, prices in any quote,
# deposit insurance and run-off, payouts, resolution, pools, margin calls, capital measures.
# Every figure below is worked by hand in the comments.
# ------------------------------------------------------------------------------------------------
#: A bank ``b`` (kind bank) with a reserve account at fair value, a held-to-maturity book
#: (amortized cost) and an available-for-sale book, a retail deposit pool standing for 100
#: depositors and a corporate deposit; an insurer ``fdic`` and an acquirer ``acq``. UST is a
#: bond of scale 0 priced at 100. The bank takes 80,000 of deposits, buys 400 UST at the price
#: in force (100) into htm, 200 UST at a trade price of 99 into afs, is given 10 UST into htm
#: (entering at the price in force, 100), and the price falls to 80.
BANK = """[[entities]]
entity = "b"
name = "First Bank"
kind = "bank"

[[entities]]
entity = "fdic"
name = "Insurer"
kind = "insurer"

[[entities]]
entity = "acq"
name = "Acquirer"
kind = "bank"

[[entities]]
entity = "dep"
name = "Depositors"
kind = "customer_pool"

[[assets]]
asset = "UST"
name = "Treasury note"
scale = 0
kind = "bond"

[[accounts]]
account = "b:reserves"
purpose = "corporate"

[[accounts]]
account = "b:htm"
purpose = "corporate"
basis = "amortized_cost"

[[accounts]]
account = "b:afs"
purpose = "corporate"
basis = "available_for_sale"

[[accounts]]
account = "b:retail"
purpose = "customer"
holder = "dep"
liability_class = "retail"
depositors = 100

[[accounts]]
account = "b:big"
purpose = "customer"
holder = "cust"
liability_class = "corporate"

[[accounts]]
account = "dep:wallet"
purpose = "corporate"

[[accounts]]
account = "fdic:fund"
purpose = "corporate"

[[events]]
id = "p-ust"
type = "price_updated"
asset = "UST"
quote = "USD"
price = "100"

[[events]]
id = "d-retail"
type = "deposit"
account = "b:retail"
asset = "USD"
amount = "50000"
landed = "b:reserves"

[[events]]
id = "d-big"
type = "deposit"
account = "b:big"
asset = "USD"
amount = "30000"
landed = "b:reserves"

[[events]]
id = "buy-htm"
type = "trade"
asset = "UST"
amount = "400"
price = "100"
pay_asset = "USD"
seller_from = "world:market"
seller_to = "world:market"
buyer_from = "b:reserves"
buyer_to = "b:htm"

[[events]]
id = "buy-afs"
type = "trade"
asset = "UST"
amount = "200"
price = "99"
pay_asset = "USD"
seller_from = "world:market"
seller_to = "world:market"
buyer_from = "b:reserves"
buyer_to = "b:afs"

[[events]]
id = "gift"
type = "transfer"
from_account = "world:market"
to_account = "b:htm"
asset = "UST"
amount = "10"

[[events]]
id = "p-drop"
type = "price_updated"
asset = "UST"
quote = "USD"
price = "80"
"""


def _sorted_postings(change) -> list[tuple[str, str, str, int]]:
    return sorted((p.entity, p.account, p.asset, p.delta) for p in change.postings)


def _sums_per_entity_asset(postings) -> dict[tuple[str, str], int]:
    sums: dict[tuple[str, str], int] = {}
    for entity, _, asset, delta in postings:
        sums[(entity, asset)] = sums.get((entity, asset), 0) + delta
    return sums


def test_trade_postings_are_two_legs_that_sum_to_zero_per_entity_and_asset(tmp_path):
    posted, _ = apply_all(timeline(tmp_path, BANK))
    # 400 UST at 100 = 40,000.00 USD (4,000,000 cents): UST world -> b:htm, USD b:reserves ->
    # world; each side's equity takes the other side of each leg.
    assert posted["buy-htm"] == [
        ("b", "equity", "USD", 4_000_000),
        ("b", "equity", "UST", -400),
        ("b", "htm", "UST", 400),
        ("b", "reserves", "USD", -4_000_000),
        ("world", "equity", "USD", -4_000_000),
        ("world", "equity", "UST", 400),
        ("world", "market", "USD", 4_000_000),
        ("world", "market", "UST", -400),
    ]
    for event_id in ("buy-htm", "buy-afs"):
        assert set(_sums_per_entity_asset(posted[event_id]).values()) == {0}, event_id


def test_a_swap_in_one_trade_never_shows_the_loss_between_legs(tmp_path):
    """As two transfers, a swap of 0.5 BTC for 10,000 USD at 20,000 shows equity -10,000 after
    the first leg. As one trade the books only ever see before and after: equity 0, then 0."""
    body = """
[[events]]
id = "p"
type = "price_updated"
asset = "BTC"
quote = "USD"
price = "20000"

[[events]]
id = "fund"
type = "transfer"
from_account = "world:market"
to_account = "aff:bank"
asset = "USD"
amount = "10000"

[[events]]
id = "seed"
type = "transfer"
from_account = "world:market"
to_account = "bank:vault"
asset = "BTC"
amount = "0.5"

[[events]]
id = "swap"
type = "trade"
asset = "BTC"
amount = "0.5"
price = "20000"
pay_asset = "USD"
seller_from = "bank:vault"
seller_to = "bank:vault"
buyer_from = "aff:bank"
buyer_to = "aff:bank"
"""
    books = Books()
    seen = {}
    for event in timeline(tmp_path, body).events:
        books.apply(event)
        seen[event.id] = (books.equity("aff"), books.equity("bank"))
    assert seen["fund"] == (D(10000), D(0))
    assert seen["seed"] == (D(10000), D(10000))  # 0.5 BTC at 20,000
    assert seen["swap"] == (D(10000), D(10000))  # an even exchange: no one's equity moves
    assert books.balance("aff:bank", "BTC") == 50_000_000 and books.balance("aff:bank", "USD") == 0
    assert books.balance("bank:vault", "USD") == 1_000_000 and books.balance("bank:vault", "BTC") == 0


def test_book_value_of_amortized_cost_and_afs_holdings(tmp_path):
    _, books = apply_all(timeline(tmp_path, BANK))
    # htm: 400 at the trade's 100 + 10 given at the price in force, 100 = 41,000; afs: 200 at
    # the trade's price 99 = 19,800 (not the 100 in force).
    assert books.book_value == {("b", "htm", "UST"): D("41000.00"), ("b", "afs", "UST"): D("19800.00")}
    # At 80: htm market 32,800 (8,200 below book), afs 16,000 (3,800 below book).
    assert books.oci("b") == D("-3800.00")  # OCI of AFS = market - book
    assert books.unrealised_loss("b") == D("12000.00")  # 8,200 + 3,800
    # Reserves 80,000 - 40,000 - 19,800 = 20,200; assets at market 20,200 + 32,800 + 16,000.
    assert books.total_assets("b") == D("69000.00")
    assert books.total_liabilities("b") == D("80000.00")
    assert books.equity("b") == D("-11000.00")
    # At book, htm counts at 41,000 (AFS stays at market: its loss is in OCI, part of equity).
    assert books.total_assets_book("b") == D("77200.00")
    assert books.equity_book("b") == D("-2800.00")
    assert books.measure("b", "equity_book") == D("-2800.00")
    assert books.measure("b", "total_assets_book") == D("77200.00")
    assert books.measure("b", "unrealised_loss") == D("12000.00")
    sheet = books.balance_sheet("b")
    assert sheet["equity"] == D("-11000.00")
    assert sheet["book"] == {
        "total_assets": D("77200.00"),
        "equity": D("-2800.00"),
        "oci": D("-3800.00"),
        "unrealised_loss": D("12000.00"),
    }
    # A fair-value entity's sheet keeps its old shape (no "book" entry).
    assert "book" not in books.balance_sheet("world")


SELL_AFS = """
[[events]]
id = "sell-afs"
type = "trade"
asset = "UST"
amount = "100"
price = "85"
pay_asset = "USD"
seller_from = "b:afs"
seller_to = "b:reserves"
buyer_from = "world:market"
buyer_to = "world:market"

[[events]]
id = "impair"
type = "holding_impaired"
account = "b:htm"
asset = "UST"
book_price = "85"
"""


def test_partial_sale_at_average_cost_realises_the_gain_or_loss(tmp_path):
    books = Books()
    tl = timeline(tmp_path, BANK + SELL_AFS)
    notices = {}
    for event in tl.events:
        notices[event.id] = books.apply(event).notices
    # 100 of the 200 afs units leave at their average book value 19,800 / 200 = 99: 9,900.
    # Sold for 100 x 85 = 8,500: a realised loss of 1,400.
    assert notices["sell-afs"] == [
        "b sold 100 UST carried at 9,900.00 USD for 8,500.00: a realised loss of 1,400.00"
    ]
    # htm written down from 41,000 to 410 x 85 = 34,850.
    assert notices["impair"] == ["b:htm UST written down by 6,150.00 USD to a book value of 34,850.00"]
    assert books.book_value == {("b", "htm", "UST"): D("34850.00"), ("b", "afs", "UST"): D("9900.00")}
    assert books.oci("b") == D("-1900.00")  # 100 x 80 - 9,900
    # Market: reserves 20,200 + 8,500 = 28,700; htm 32,800; afs 8,000: 69,500 - 80,000.
    assert books.equity("b") == D("-10500.00")
    # Book: + (34,850 - 32,800) for htm.
    assert books.equity_book("b") == D("-8450.00")
    # The impairment is a loss at book only: the market value of the units did not move.
    assert books.unrealised_loss("b") == D("3950.00")  # 2,050 + 1,900


def test_loan_impairment_is_a_contra_asset(tmp_path):
    tl = timeline(tmp_path, POOLS + """
[[events]]
id = "impair"
type = "loan_impaired"
loan = "L1"
amount = "400"
""")
    books = Books()
    posted = {}
    for event in tl.events:
        if event.id == "impair":
            before = (books.total_assets("bank"), books.total_liabilities("bank"), books.equity("bank"))
        posted[event.id] = _sorted_postings(books.apply(event))
    assert posted["impair"] == [("bank", "allowance:L1", "USD", -40000), ("bank", "equity", "USD", 40000)]
    assets, liabilities, equity = before
    assert books.total_assets("bank") == assets - 400  # assets fall
    assert books.total_liabilities("bank") == liabilities  # liabilities do not rise
    assert books.equity("bank") == equity - 400
    # The borrower still owes the whole debt.
    assert books.registry.loans["L1"].outstanding == 100000 and books.secured_debt("L1") == D(1000)
    row = {r["target"]: r for r in books.loans_view()}["L1"]
    assert row["loss_allowance"] == D("400.00") and row["outstanding"] == D("1000.00")


PRICES = """
[[assets]]
asset = "ETH"
name = "Ether"
scale = 8
kind = "crypto"

[[assets]]
asset = "STETH"
name = "Lido staked ether"
scale = 8
kind = "staked"

[[assets]]
asset = "X"
name = "X token"
scale = 0
kind = "crypto"

[[assets]]
asset = "Y"
name = "Y token"
scale = 0
kind = "crypto"

[[assets]]
asset = "Z"
name = "Z token"
scale = 8
kind = "crypto"

[[assets]]
asset = "W"
name = "W token"
scale = 0
kind = "crypto"

[[events]]
id = "p-eth"
type = "price_updated"
asset = "ETH"
quote = "USD"
price = "2000"

[[events]]
id = "p-steth"
type = "price_updated"
asset = "STETH"
quote = "ETH"
price = "0.95"

[[events]]
id = "p-eth-2"
type = "price_updated"
asset = "ETH"
quote = "USD"
price = "1000"

[[events]]
id = "p-x"
type = "price_updated"
asset = "X"
quote = "Y"
price = "2"

[[events]]
id = "p-y"
type = "price_updated"
asset = "Y"
quote = "X"
price = "0.5"

[[events]]
id = "p-z"
type = "price_updated"
asset = "Z"
quote = "W"
price = "3"

[[events]]
id = "d-z"
type = "deposit"
account = "ex:cust"
asset = "Z"
amount = "2"
landed = "ex:custody"
"""


def test_prices_in_any_quote_chain_to_the_timeline_quote(tmp_path):
    books = Books()
    changes = {}
    for event in timeline(tmp_path, PRICES).events:
        changes[event.id] = books.apply(event)
    # stETH at 0.95 ETH with ETH at 2,000 is 1,900; ETH to 1,000 moves stETH to 950.
    assert changes["p-steth"].repriced == [("STETH", None)]
    assert changes["p-eth-2"].repriced == [("ETH", D("2000")), ("STETH", D("1900.00"))]
    assert books.price("ETH") == D(1000) and books.price("STETH") == D("950.00")
    assert books.value(100_000_000, "STETH") == D("950.00")
    # A cycle (X in Y, Y in X) and a missing link (Z in W, W never priced): unpriced, said why.
    assert books.price("X") is None and books.price("Y") is None and books.price("Z") is None
    assert books.unpriced("Y") == "its prices form a cycle (Y -> X -> Y)"
    assert books.unpriced("X") == "its prices form a cycle (X -> Y -> X)"
    assert books.unpriced("Z") == "no price of W in USD (chain Z -> W)"
    assert books.unpriced("BTC") == "no price of BTC in USD yet"
    assert books.unpriced("STETH") is None and books.unpriced("USD") is None
    assert changes["p-x"].notices == ["X is unpriced: no price of Y in USD (chain X -> Y)"]
    assert "Y is unpriced: its prices form a cycle (Y -> X -> Y)" in changes["p-y"].notices
    # A venue holding and owing 2 Z: the sheet names them unpriced instead of a value of 0.
    assert books.unpriced_holdings("ex") == {"Z held": D("2.00000000"), "Z owed": D("2.00000000")}
    sheet = books.balance_sheet("ex")
    assert sheet["unpriced"] == {"Z held": D("2.00000000"), "Z owed": D("2.00000000")}
    assert sheet["assets"] == {"custody Z": D("0.00")}


def test_a_price_of_the_quote_in_another_asset_changes_nothing(tmp_path):
    books = Books()
    for event in timeline(tmp_path, PRICES).events:
        books.apply(event)
    change = books.apply(
        ev.PriceUpdated(id="q", at=tl_at(books), source=("T",), asset="USD", quote="ETH", price="0.001")
    )
    assert change.repriced == [] and books.price("USD") == 1 and books.price("STETH") == D("950.00")


def tl_at(books: Books):
    return books.last_at


INSURE = """
[[events]]
id = "cover"
type = "deposit_insurance"
insurer = "fdic"
venue = "b"
asset = "USD"
limit = "250"
"""

RAISE = """
[[events]]
id = "raise"
type = "deposit_insurance"
insurer = "fdic"
venue = "b"
asset = "USD"
limit = "1000"
"""


def test_deposit_insurance_splits_deposits_into_insured_and_uninsured_parts(tmp_path):
    _, books = apply_all(timeline(tmp_path, BANK))
    assert books.insured_deposits("b") == 0 and books.uninsured_deposits("b") == D("80000.00")
    _, books = apply_all(timeline(tmp_path, BANK + INSURE, name="cover"))
    # retail: min(50,000, 100 depositors x 250) = 25,000; corporate: min(30,000, 1 x 250) = 250.
    assert books.insured_deposits("b") == D("25250.00")
    assert books.uninsured_deposits("b") == D("54750.00")
    assert books.measure("b", "insured_deposits") == D("25250.00")
    _, books = apply_all(timeline(tmp_path, BANK + INSURE + RAISE, name="raise"))
    # retail: min(50,000, 100,000) = 50,000; corporate: min(30,000, 1,000) = 1,000.
    assert books.insured_deposits("b") == D("51000.00")
    assert books.uninsured_deposits("b") == D("29000.00")
    revoke = RAISE.replace('"raise"', '"revoke"').replace('"1000"', '"0"')
    _, books = apply_all(timeline(tmp_path, BANK + INSURE + revoke, name="revoke"))
    assert books.insured_deposits("b") == 0


def test_run_off_is_weighted_per_liability_class(tmp_path):
    # Default rates: insured 0.05, retail 0.10, corporate 0.40.
    _, books = apply_all(timeline(tmp_path, BANK))
    assert books.runoff_outflows("b") == D("17000")  # 50,000 x 0.10 + 30,000 x 0.40
    # Liquid: reserves 20,200 (fiat, haircut 0) + 48,800 of bonds at 80 (haircut 0).
    assert books.liquid_assets("b") == D("69000.00")
    assert books.liquidity_coverage("b") == VALUE_CONTEXT.divide(D(69000), D(17000))
    _, books = apply_all(timeline(tmp_path, BANK + INSURE, name="cover"))
    # retail 25,000 x 0.05 + 25,000 x 0.10 = 3,750; corporate 250 x 0.05 + 29,750 x 0.40 = 11,912.5.
    assert books.runoff_outflows("b") == D("15662.5")
    _, books = apply_all(timeline(tmp_path, BANK + INSURE + RAISE, name="raise"))
    # retail 50,000 x 0.05 = 2,500; corporate 1,000 x 0.05 + 29,000 x 0.40 = 11,650.
    assert books.runoff_outflows("b") == D("14150")
    # The policy's [run_off] table: retail 0.5, insured 0 (corporate keeps its default 0.40).
    path = tmp_path / "policy.toml"
    path.write_text('[run_off]\nretail = "0.5"\ninsured = "0"\n', encoding="utf-8")
    policy = Policy.from_toml(path)
    _, books = apply_all(timeline(tmp_path, BANK + INSURE, name="policy"), Books(policy))
    # retail 25,000 x 0 + 25,000 x 0.5 = 12,500; corporate 250 x 0 + 29,750 x 0.40 = 11,900.
    assert books.runoff_outflows("b") == D("24400")


PAYOUT = """
[[events]]
id = "fund-fdic"
type = "transfer"
from_account = "world:market"
to_account = "fdic:fund"
asset = "USD"
amount = "20000"

[[events]]
id = "payout"
type = "insurer_payout"
insurer = "fdic"
account = "b:retail"
asset = "USD"
amount = "20000"
paid_from = "fdic:fund"
to = "dep:wallet"
"""


def test_insurer_payout_subrogates_the_insurer_to_the_depositors_claim(tmp_path):
    posted, books = apply_all(timeline(tmp_path, BANK + INSURE + RAISE + SELL_AFS + PAYOUT))
    assert posted["payout"] == [
        ("b", "due-to:fdic", "USD", -2_000_000),  # the venue now owes the insurer
        ("b", "retail", "USD", 2_000_000),  # and its depositors 20,000 less
        ("dep", "claim:b:retail", "USD", -2_000_000),
        ("dep", "wallet", "USD", 2_000_000),
        ("fdic", "due-from:b", "USD", 2_000_000),
        ("fdic", "fund", "USD", -2_000_000),
    ]
    assert set(_sums_per_entity_asset(posted["payout"]).values()) == {0}
    assert books.balance("b:retail", "USD") == 3_000_000  # the depositors' claim: 30,000
    assert books.customer_liabilities("b") == D(60000)
    assert books.total_liabilities("b") == D(80000)  # 60,000 to depositors + 20,000 to fdic
    assert books.insured_deposits("b") == D(31000)  # retail min(30,000, 100,000) + 1,000
    assert books.equity("fdic") == D(20000)  # paid 20,000, owed 20,000 by b: no loss yet


RESOLVE = """
[[events]]
id = "resolve"
type = "resolution"
entity = "b"
authority = "fdic"
method = "purchase_and_assumption"
to_entity = "acq"
accounts = ["b:retail", "b:reserves", "b:htm"]
"""


def test_resolution_moves_accounts_whole_with_book_values_and_claims_follow(tmp_path):
    tl = timeline(tmp_path, BANK + INSURE + RAISE + SELL_AFS + PAYOUT + RESOLVE)
    books = Books()
    for event in tl.events:
        change = books.apply(event)
    assert change.notices == ["b resolved by fdic (purchase and assumption): 3 account(s) moved to acq"]
    assert set(_sums_per_entity_asset(_sorted_postings(change)).values()) == {0}
    assert books.failed == {"b": "purchase_and_assumption"}
    # acq takes retail (owes 30,000), reserves 28,700 and htm 410 UST at book 34,850.
    assert books.balance("acq:retail", "USD") == 3_000_000
    assert books.balance("acq:reserves", "USD") == 2_870_000
    assert books.balance("acq:htm", "UST") == 410
    assert books.book_value[("acq", "htm", "UST")] == D("34850.00")
    assert ("b", "htm", "UST") not in books.book_value
    assert books.registry.accounts["acq:htm"].basis == "amortized_cost"
    assert books.registry.accounts["acq:retail"].depositors == 100
    # The holders' claims follow: dep's claim is now on acq.
    assert books.balances.get(("dep", "claim:b:retail", "USD"), 0) == 0
    assert books.balances[("dep", "claim:acq:retail", "USD")] == 3_000_000
    # b keeps afs (8,000 at market), the corporate deposit (30,000) and its debt to fdic (20,000).
    assert books.total_assets("b") == D(8000)
    assert books.total_liabilities("b") == D(50000)
    # acq: 28,700 + 32,800 - 30,000 at market; at book htm is 34,850.
    assert books.equity("acq") == D(31500)
    assert books.equity_book("acq") == D(33550)
    # The cover moved with the deposit book: retail's 30,000 is insured at acq.
    assert books.insured_deposits("acq") == D(30000)


POOLS = """
[[events]]
id = "p-btc"
type = "price_updated"
asset = "BTC"
quote = "USD"
price = "2000"

[[events]]
id = "fund-bank"
type = "transfer"
from_account = "world:market"
to_account = "bank:vault"
asset = "USD"
amount = "2000"

[[events]]
id = "fund-aff"
type = "transfer"
from_account = "world:market"
to_account = "aff:bank"
asset = "BTC"
amount = "1"

[[events]]
id = "L1"
type = "loan_opened"
loan = "L1"
lender = "bank"
borrower = "aff"
asset = "USD"
principal = "1000"
disbursed_from = "bank:vault"
disbursed_to = "aff:bank"
liquidation_threshold = "0.8"
pool = "P"

[[events]]
id = "L2"
type = "loan_opened"
loan = "L2"
lender = "bank"
borrower = "aff"
asset = "USD"
principal = "500"
disbursed_from = "bank:vault"
disbursed_to = "aff:bank"
liquidation_threshold = "0.8"
pool = "P"

[[events]]
id = "pledge"
type = "collateral_pledged"
pool = "P"
asset = "BTC"
amount = "1"
from_account = "aff:bank"
"""

MARGIN = """
[[events]]
id = "mc"
type = "margin_call"
pool = "P"
amount = "300"
due = 2022-01-05T00:00:00Z
"""


def test_pooled_loans_share_their_collateral(tmp_path):
    _, books = apply_all(timeline(tmp_path, POOLS + MARGIN))
    assert books.pool_loans == {"P": {"L1", "L2"}}
    # The pool's debt is both loans', 1,500; its collateral 1 BTC at 2,000.
    assert books.secured_debt("pool:P") == D(1500)
    assert books.collateral_value("pool:P", haircut=False) == D(2000)
    # Health factor of each loan: 2,000 x 0.8 / 1,500 (over its pool); ltv 1,500 / 2,000.
    assert books.loan_health("L1") == books.loan_health("L2") == VALUE_CONTEXT.divide(D(1600), D(1500))
    assert books.loan_ltv("L1") == D("0.75")
    assert books.measure("aff", "loan_health", loan="L2") == VALUE_CONTEXT.divide(D(1600), D(1500))
    assert books.measure("aff", "ltv", loan="L1") == D("0.75")
    rows = {row["target"]: row for row in books.loans_view()}
    assert rows["pool:P"]["kind"] == "pool"
    assert (rows["pool:P"]["lender"], rows["pool:P"]["borrower"]) == ("bank", "aff")
    assert rows["pool:P"]["debt_value"] == D("1500.00")
    assert rows["pool:P"]["collateral"] == {"BTC": D("1.00000000")}
    assert rows["pool:P"]["ltv"] == D("0.7500")
    assert rows["pool:P"]["margin_call"] == {"event": "mc", "amount": D("300"), "due": "2022-01-05T00:00:00Z"}
    l1 = rows["L1"]
    assert (l1["pool"], l1["liquidation_threshold"], l1["health_factor"]) == ("P", D("0.8"), D("1.0667"))
    assert l1["debt_value"] == D("1000.00") and "margin_call" not in l1
    # At 1,800 the pool's collateral x 0.8 = 1,440 < 1,500: health 0.96.
    books.apply(ev.PriceUpdated(id="p2", at=books.last_at, source=("T",), asset="BTC", quote="USD", price="1800"))
    assert books.loan_health("L1") == D("0.96")


def test_a_loan_without_a_threshold_has_no_health_factor(tmp_path):
    _, books = apply_all(timeline(tmp_path, POOLS + """
[[events]]
id = "L3"
type = "loan_opened"
loan = "L3"
lender = "bank"
borrower = "aff"
asset = "USD"
principal = "100"
disbursed_from = "bank:vault"
disbursed_to = "aff:bank"
"""))
    assert books.loan_health("L3") is None and books.loan_ltv("L3") is None
    row = {r["target"]: r for r in books.loans_view()}["L3"]
    assert "health_factor" not in row and "pool" not in row


CAPITAL = """
[[entities]]
entity = "cb"
name = "Capital Bank"
kind = "bank"

[[assets]]
asset = "MBS"
name = "Agency MBS"
scale = 0
kind = "mbs"

[[accounts]]
account = "cb:vault"
purpose = "corporate"

[[accounts]]
account = "cb:deposits"
purpose = "customer"
holder = "cust"

[[events]]
id = "p-mbs"
type = "price_updated"
asset = "MBS"
quote = "USD"
price = "1"

[[events]]
id = "cash"
type = "transfer"
from_account = "world:market"
to_account = "cb:vault"
asset = "USD"
amount = "1000"

[[events]]
id = "mbs"
type = "transfer"
from_account = "world:market"
to_account = "cb:vault"
asset = "MBS"
amount = "500"

[[events]]
id = "dep"
type = "deposit"
account = "cb:deposits"
asset = "USD"
amount = "500"
landed = "cb:vault"

[[events]]
id = "lend"
type = "loan_opened"
loan = "CB1"
lender = "cb"
borrower = "aff"
asset = "USD"
principal = "300"
disbursed_from = "cb:vault"
disbursed_to = "aff:bank"
"""


def test_capital_ratio_leverage_and_risk_weighted_assets(tmp_path):
    _, books = apply_all(timeline(tmp_path, CAPITAL))
    # Default weights: fiat 0 (1,200 cash), mbs 0.2 (500), loan_receivable 1 (300): 100 + 300.
    assert books.risk_weighted_assets("cb") == D(400)
    assert books.equity_book("cb") == D(1500)  # 1,000 + 500 given; the deposit and loan net out
    assert books.capital_ratio("cb") == D("3.75")  # 1,500 / 400
    assert books.leverage_ratio("cb") == D("0.75")  # 1,500 / 2,000
    assert books.measure("cb", "capital_ratio") == D("3.75")
    # The policy's weights: mbs at 1 makes 500 + 300.
    _, books = apply_all(timeline(tmp_path, CAPITAL, name="w"), Books(Policy(risk_weights={"mbs": D(1)})))
    assert books.risk_weighted_assets("cb") == D(800)
    assert books.capital_ratio("cb") == D("1.875")
    # A loss allowance of 100 on the loan lowers both equity and the weighted loan.
    _, books = apply_all(timeline(tmp_path, CAPITAL + """
[[events]]
id = "imp"
type = "loan_impaired"
loan = "CB1"
amount = "100"
""", name="imp"))
    assert books.risk_weighted_assets("cb") == D(300)
    assert books.capital_ratio("cb") == VALUE_CONTEXT.divide(D(1400), D(300))
    # Kinds that are not banks weigh nothing.
    assert books.risk_weighted_assets("bank") == 0 and books.capital_ratio("bank") is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (POOLS + """
[[events]]
id = "bad"
type = "collateral_pledged"
pool = "nope"
asset = "BTC"
amount = "1"
from_account = "aff:bank"
""", "pool: unknown pool 'nope' (no loan_opened names it)"),
        (POOLS + """
[[events]]
id = "bad"
type = "margin_call"
pool = "nope"
""", "pool: unknown pool 'nope' (no loan_opened names it)"),
        (POOLS + """
[[events]]
id = "bad"
type = "loan_opened"
loan = "L9"
lender = "aff"
borrower = "ex"
asset = "USD"
principal = "1"
disbursed_from = "aff:bank"
disbursed_to = "ex:treasury"
pool = "P"
""", "pool: 'P' secures loans from 'bank' to 'aff'; this loan is from 'aff' to 'ex'"),
        (BANK + """
[[events]]
id = "bad"
type = "holding_impaired"
account = "b:reserves"
asset = "USD"
book_price = "0.5"
""", "account: 'b:reserves' is carried at fair value (prices mark it); only an amortized_cost or available_for_sale holding is impaired"),
        (POOLS + """
[[events]]
id = "imp1"
type = "loan_impaired"
loan = "L1"
amount = "600"

[[events]]
id = "bad"
type = "loan_impaired"
loan = "L1"
amount = "400.01"
""", "amount: a loss allowance of 1000.01 USD in all would exceed the 1000.00 outstanding on loan 'L1'"),
        ("""
[[events]]
id = "bad"
type = "trade"
asset = "BTC"
amount = "0.00000001"
price = "0.5"
pay_asset = "USD"
seller_from = "world:market"
seller_to = "world:market"
buyer_from = "aff:bank"
buyer_to = "aff:bank"
""", "price: 0.000000005 USD has 9 decimal places; USD allows 2"),
        (BANK + """
[[events]]
id = "bad"
type = "resolution"
entity = "world"
authority = "fdic"
method = "receivership"
to_entity = "acq"
accounts = ["world:market"]
""", "accounts[0]: 'world:market' is external; only the books' own accounts move"),
        (BANK + """
[[events]]
id = "bad"
type = "resolution"
entity = "b"
authority = "fdic"
method = "receivership"
to_entity = "dep"
accounts = ["b:retail"]
""", "accounts[0]: 'b:retail' is held by 'dep'; it cannot owe itself"),
        (BANK + """
[[events]]
id = "bad"
type = "insurer_payout"
insurer = "fdic"
account = "b:retail"
asset = "USD"
amount = "1"
paid_from = "b:reserves"
""", "paid_from: 'b:reserves' is not the insurer's"),
        (BANK + """
[[events]]
id = "bad"
type = "deposit_insurance"
insurer = "nobody"
venue = "b"
asset = "USD"
limit = "250"
""", "insurer: unknown entity 'nobody' (no entity_registered before)"),
    ],
    ids=["unknown-pool", "margin-call-unknown-pool", "pool-of-other-parties", "impair-fair-value",
         "allowance-above-outstanding", "trade-payment-finer-than-scale", "resolution-external",
         "resolution-to-holder", "payout-not-insurers", "unknown-insurer"],
)
def test_the_registry_refuses_impossible_facts_of_the_general_model(tmp_path, body, message):
    """Each names the file, line and field (``t.toml:LINE: events[N].FIELD: ...``)."""
    import re

    tl = timeline(tmp_path, body)
    with pytest.raises(InputError) as raised:
        tl.check()
    assert re.search(r"t\.toml:\d+: events\[\d+\]\." + re.escape(message), str(raised.value)), str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(type="trade", asset="BTC", amount="1", price="1", pay_asset="BTC", seller_from="a:x",
              seller_to="a:x", buyer_from="b:x", buyer_to="b:x"), "pay_asset: must differ from asset"),
        (dict(type="trade", asset="BTC", amount="1", price="1", pay_asset="USD", seller_from="a:x",
              seller_to="a:x", buyer_from="a:y", buyer_to="a:y"), "buyer_from: the buyer must be another entity"),
        (dict(type="resolution", entity="b", authority="f", method="receivership", accounts=["b:x"]),
         "to_entity: accounts move to an acquirer or bridge bank; name it"),
        (dict(type="resolution", entity="b", authority="f", method="receivership", to_entity="c",
              accounts=["c:x"]), "accounts: 'c:x' is not an account of 'b'"),
        (dict(type="loan_opened", loan="L", lender="a", borrower="b", asset="USD", principal="1",
              disbursed_from="a:x", disbursed_to="b:x", liquidation_threshold="0"),
         "liquidation_threshold: must be above 0"),
        (dict(type="margin_call", loan="L", pool="P"), "loan: give exactly one of 'loan' or 'pool'"),
        (dict(type="deposit_insurance", insurer="b", venue="b", asset="USD", limit="1"),
         "insurer: a venue cannot insure its own deposits"),
        (dict(type="account_opened", account="b:x", purpose="corporate", depositors=2),
         "depositors: only customer accounts stand for depositors"),
        (dict(type="account_opened", account="b:x", purpose="customer", holder="c", basis="amortized_cost"),
         "basis: only holdings accounts"),
        (dict(type="balance_asserted", entity="b", measure="capital_ratio", expected="0.1205",
              tolerance="0", quote="USD"), "quote: 'capital_ratio' is a ratio"),
        (dict(type="balance_asserted", entity="b", measure="loan_health", expected="1", tolerance="0"),
         "loan: a 'loan_health' assertion needs the loan it is of"),
    ],
)
def test_events_of_the_general_model_refuse_malformed_fields(kwargs, message):
    record = {"id": "e", "at": "2022-01-02T00:00:00Z", "source": ["T"], "v": 1, **kwargs}
    with pytest.raises(ev.EventValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ev.from_dict(record)


#: sha256 of the registry rows (sorted [kind, key, json]) that the code before the general model
#: (commit 061b0b1) wrote for these timelines: a log written then has exactly these rows.
OLD_REGISTRY_DIGESTS = {
    "ftx-2022": "9023f31f698bc9146eab79fc5dcf5b7453444f5fa065d6bed29d1e73fe408167",
    "small-example": "99646edb50b86980281fe25024a94e3416e5ec852f8734f67fe83e76cb96a5b9",
}


def _rows_digest(rows: dict[tuple[str, str], str]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(sorted([*k, v] for k, v in rows.items())).encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(OLD_REGISTRY_DIGESTS))
def test_registry_rows_of_logs_written_before_the_general_model_are_unchanged(tmp_path, name):
    import sqlite3

    import replays
    from ledger.store import Log

    timeline_ = next(t for t in replays.bundled() if t.name == name)
    registry = Registry()
    for event in timeline_.events:
        registry.apply(event)
    assert _rows_digest(registry.rows()) == OLD_REGISTRY_DIGESTS[name]
    # The log's registry table holds the same rows, and a log with them verifies and loads.
    path = tmp_path / "old.db"
    with Log.open(path, create=True) as log:
        log.append(timeline_.events)
    conn = sqlite3.connect(path)
    try:
        table = {(k, key): v for k, key, v in conn.execute("SELECT kind, key, value FROM registry")}
    finally:
        conn.close()
    assert _rows_digest(table) == OLD_REGISTRY_DIGESTS[name]
    with Log.open(path, readonly=True) as log:
        log.verify()
        assert log.registry().rows() == registry.rows()


def test_old_registry_encodings_of_accounts_and_loans(tmp_path):
    """Accounts and loans without the new fields encode as before (no new keys), and rows
    without them load with the defaults."""
    _, books = apply_all(timeline(tmp_path, GROUP))
    registry = books.registry
    assert registry.encode("account", "ex:cust") == '{"entity": "ex", "holder": "cust", "purpose": "customer"}'
    assert registry.encode("loan", "L-aff") == (
        '{"asset": "USD", "borrower": "aff", "defaulted": false, "lender": "ex", "outstanding": 30000}'
    )
    again = Registry()
    again.load([("account", "ex:cust", registry.encode("account", "ex:cust")),
                ("loan", "L-aff", registry.encode("loan", "L-aff"))])
    account, loan = again.accounts["ex:cust"], again.loans["L-aff"]
    assert (account.basis, account.liability_class, account.depositors) == (None, None, None)
    assert (loan.threshold, loan.pool, loan.impaired) == (None, None, 0)
    # New fields are persisted only when set.
    _, books = apply_all(timeline(tmp_path, POOLS + BANK.split("[[events]]")[0], name="new"))
    assert json.loads(books.registry.encode("loan", "L1")) == {
        "asset": "USD", "borrower": "aff", "defaulted": False, "lender": "bank", "outstanding": 100000,
        "threshold": "0.8", "pool": "P",
    }
    assert json.loads(books.registry.encode("account", "b:retail")) == {
        "entity": "b", "holder": "dep", "purpose": "customer", "liability_class": "retail", "depositors": 100,
    }


def test_books_state_round_trips_the_general_model(tmp_path):
    tl = timeline(tmp_path, BANK + INSURE + SELL_AFS + PAYOUT + RESOLVE + PRICES.replace('account = "ex:cust"', 'account = "ex:aff"'))
    _, books = apply_all(tl)
    again = Books.from_state(json.loads(json.dumps(books.to_state())))
    assert again.to_state() == books.to_state()
    for entity in ("b", "acq", "ex"):
        for name in ("equity", "equity_book", "oci", "insured_deposits", "runoff_outflows", "risk_weighted_assets"):
            assert getattr(again, name)(entity) == getattr(books, name)(entity), (entity, name)
    assert again.unpriced("Z") == books.unpriced("Z") == "no price of W in USD (chain Z -> W)"


def test_deposit_insurance_at_a_venue_that_takes_no_deposits_keeps_no_parts(tmp_path):
    """A cover declared for an exchange (custodial: not a bank or lender): its deposits have no
    insured or run-off parts, before and after the cover, and the books read back from their
    state agree. Before the fix in ``Books._set_insurance`` the cover moved parts that later
    postings never moved: insured 100 after every deposit was withdrawn, run-off -35."""
    tl = timeline(tmp_path, """
[[events]]
id = "d1"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "cover"
type = "deposit_insurance"
insurer = "bank"
venue = "ex"
asset = "USD"
limit = "250"

[[events]]
id = "w"
type = "withdrawal"
account = "ex:cust"
asset = "USD"
amount = "100"
paid_from = "ex:custody"
""")
    books = Books()
    for event in tl.events:
        books.apply(event)
        assert (books.insured_deposits("ex"), books.runoff_outflows("ex")) == (0, 0), event.id
    again = Books.from_state(json.loads(json.dumps(books.to_state())))
    assert (again.insured_deposits("ex"), again.runoff_outflows("ex")) == (0, 0)
    assert books.insurance == {("ex", "USD"): ("bank", 25000)}  # the cover itself is recorded


def test_paying_a_loan_down_below_its_allowance_releases_the_excess(tmp_path):
    """The allowance is never above what is outstanding. L2 (500) carries an allowance of 400;
    300 repaid leaves 200 outstanding, so 200 of the allowance is released (a recovery); the
    last 200 repaid release the rest. Bank: funded with 2,000, equity 2,000 before the loss,
    1,600 after it, 1,800 after the first repayment, 2,000 when L2 is repaid (it was repaid in
    full: no loss). Before the fix the allowance stayed at 400 and equity at 1,600 for good."""
    repay = """
[[events]]
id = "imp"
type = "loan_impaired"
loan = "L2"
amount = "400"

[[events]]
id = "part"
type = "loan_repaid"
loan = "L2"
amount = "300"
paid_from = "aff:bank"
paid_to = "bank:vault"

[[events]]
id = "rest"
type = "loan_repaid"
loan = "L2"
amount = "200"
paid_from = "aff:bank"
paid_to = "bank:vault"
"""
    books = Books()
    equity, changes = {}, {}
    for event in timeline(tmp_path, POOLS + repay).events:
        changes[event.id] = books.apply(event)
        equity[event.id] = books.equity("bank")
    assert (equity["pledge"], equity["imp"], equity["part"], equity["rest"]) == (D(2000), D(1600), D(1800), D(2000))
    assert ("bank", "allowance:L2", "USD", 20000) in _sorted_postings(changes["part"])
    assert changes["part"].notices == ["loan L2: 200.00 USD of its loss allowance released (paid down below it)"]
    assert books.registry.loans["L2"].impaired == 0
    assert books.balances.get(("bank", "allowance:L2", "USD"), 0) == 0
    # The same through undo: the release is taken back with the repayment.
    undo_books = Books()
    for event in timeline(tmp_path, POOLS + repay, name="undo").events[:-1]:
        undo_books.apply(event)
    last = timeline(tmp_path, POOLS + repay, name="undo2").events[-1]
    before = undo_books.to_state()
    undo_books.apply(last, undoable=True)
    undo_books.undo()
    assert undo_books.to_state() == before


def test_a_sale_above_book_value_realises_a_gain(tmp_path):
    """After the partial sale, the other 100 afs units carry 9,900 (99 each); sold at 120 for
    12,000: a realised gain of 2,100, and the afs book is empty."""
    rest = """
[[events]]
id = "sell-rest"
type = "trade"
asset = "UST"
amount = "100"
price = "120"
pay_asset = "USD"
seller_from = "b:afs"
seller_to = "b:reserves"
buyer_from = "world:market"
buyer_to = "world:market"
"""
    books = Books()
    for event in timeline(tmp_path, BANK + SELL_AFS + rest).events:
        change = books.apply(event)
    assert change.notices == ["b sold 100 UST carried at 9,900.00 USD for 12,000.00: a realised gain of 2,100.00"]
    assert ("b", "afs", "UST") not in books.book_value
    assert books.oci("b") == 0


def test_a_replay_through_prices_that_leave_assets_unpriced_says_so(tmp_path):
    """A price in a quote that does not chain to the timeline's (a missing link, a cycle) left
    the replay's step metrics reading ``books.prices[asset]``: a KeyError ended the replay."""
    from scenario import run

    steps, _ = run(timeline(tmp_path, PRICES))
    price = {s.event.id: s.metrics.get("price") for s in steps}
    assert price["p-steth"] == "STETH=1900"  # 0.95 ETH x 2,000 (canonical text: no trailing zeros)
    assert price["p-x"] == "X=unpriced (no price of Y in USD (chain X -> Y))"
    assert price["p-y"] == "Y=unpriced (its prices form a cycle (Y -> X -> Y))"
    assert price["p-z"] == "Z=unpriced (no price of W in USD (chain Z -> W))"
