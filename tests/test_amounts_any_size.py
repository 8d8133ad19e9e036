"""Amounts of any size: exact up to MAX_MINOR (10^38 - 1 minor units) on every path.

An asset with 18 decimals (ETH, most tokens) used to hold at most 9.22 units (2^63 - 1 minor
units). These tests hold scale-18 assets with 10^12 units (10^30 minor units) and more:
events, the registry, the books and their values, assertions, snapshot state, the stored log.
Expected figures are written out as literals (computed by hand from the history below), so a
rounding anywhere on the way (a 28-digit default context, a float, a 64-bit column) fails.
"""

from __future__ import annotations

import decimal
import json
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scenario import run, timeline

import events as ev
from ledger.books import Books
from ledger.errors import InputError
from ledger.forensics import Investigation
from ledger.policy import Policy
from ledger.registry import SemanticError
from ledger.replay import books_at
from ledger.store import Log

E12 = 10**12  # units of ETH
E30 = 10**30  # the same, in minor units (scale 18)
_WIDE = decimal.Context(prec=200)

ETH = """
[[assets]]
asset = "ETH"
name = "Ether"
scale = 18
kind = "crypto"
"""

# Holder balances, in ETH minor units, after each money event (worked out by hand):
#   d1   ex:cust +10^30                      (custody 10^30)
#   d2   ex:cust +10^30 + 1                  (custody 2*10^30 + 1)
#   t1   ex:cust -(10^30 - 1), ex:aff +(10^30 - 1)
#   w1   ex:aff -(5*10^29 + 3), paid from custody (custody 1.5*10^30 - 2)
#   fund bank:vault +3*10^30 from the market
#   L1   bank lends aff 2*10^30 + 7 (aff:bank), aff repays 10^30 + 3: outstanding 10^30 + 4
#   P1   aff pledges 10^30 + 1 of it against L1 (aff:bank keeps 3)
#   ex:cust = 10^30 + 2, ex:aff = 5*10^29 - 4; customers are owed 1.5*10^30 - 2 = custody.
BIG = ETH + """
[[events]]
id = "d1"
type = "deposit"
account = "ex:cust"
asset = "ETH"
amount = "1000000000000"
landed = "ex:custody"

[[events]]
id = "d2"
type = "deposit"
account = "ex:cust"
asset = "ETH"
amount = "1000000000000.000000000000000001"
landed = "ex:custody"

[[events]]
id = "t1"
type = "transfer"
from_account = "ex:cust"
to_account = "ex:aff"
asset = "ETH"
amount = "999999999999.999999999999999999"

[[events]]
id = "w1"
type = "withdrawal"
account = "ex:aff"
asset = "ETH"
amount = "500000000000.000000000000000003"
paid_from = "ex:custody"

[[events]]
id = "fund"
type = "transfer"
from_account = "world:market"
to_account = "bank:vault"
asset = "ETH"
amount = "3000000000000"

[[events]]
id = "L1"
type = "loan_opened"
loan = "L1"
lender = "bank"
borrower = "aff"
asset = "ETH"
principal = "2000000000000.000000000000000007"
disbursed_from = "bank:vault"
disbursed_to = "aff:bank"

[[events]]
id = "R1"
type = "loan_repaid"
loan = "L1"
amount = "1000000000000.000000000000000003"
paid_from = "aff:bank"
paid_to = "bank:vault"

[[events]]
id = "P1"
type = "collateral_pledged"
loan = "L1"
asset = "ETH"
amount = "1000000000000.000000000000000001"
from_account = "aff:bank"

[[events]]
id = "px"
type = "price_updated"
asset = "ETH"
quote = "USD"
price = "3141.592653589793238462"

[[events]]
id = "a-cust"
type = "balance_asserted"
entity = "ex"
measure = "balance"
account = "ex:cust"
asset = "ETH"
expected = "1000000000000.000000000000000002"
tolerance = "0"

[[events]]
id = "a-aff"
type = "balance_asserted"
entity = "ex"
measure = "balance"
account = "ex:aff"
asset = "ETH"
expected = "499999999999.999999999999999996"
tolerance = "0"

[[events]]
id = "a-liab"
type = "balance_asserted"
entity = "ex"
measure = "customer_liabilities"
quote = "USD"
expected = "4712388980384689.86"
tolerance = "0"

[[events]]
id = "a-held"
type = "balance_asserted"
entity = "aff"
measure = "holdings_value"
asset = "ETH"
quote = "USD"
expected = "3141592653589793.24"
tolerance = "0"
"""

#: Exact values in USD (52 significant digits: 28 would round them). Customers are owed
#: 1.5 x 10^30 - 2 minor units; aff holds 3 and has 10^30 + 1 pledged: 10^30 + 4 minor units.
LIAB_EXACT = Decimal("4712388980384689.857692999999993716814692820413523076")
AFF_HELD_EXACT = Decimal("3141592653589793.238462000000012566370614359172953848")


def big_timeline(tmp_path):
    return timeline(tmp_path, BIG)


def check_big_books(books: Books) -> None:
    """The exact outcome of BIG, in minor units and in values."""
    assert books.balance("ex:cust", "ETH") == E30 + 2
    assert books.balance("ex:aff", "ETH") == 5 * 10**29 - 4
    assert books.balance("ex:custody", "ETH") == 15 * 10**29 - 2
    assert books.balance("bank:vault", "ETH") == 3 * E30 - (2 * E30 + 7) + (E30 + 3)
    assert books.balance("aff:bank", "ETH") == (2 * E30 + 7) - (E30 + 3) - (E30 + 1) == 3
    assert books.collateral["L1"] == {"ETH": E30 + 1}
    assert books.registry.loans["L1"].outstanding == E30 + 4
    assert books.registry.pledges["L1|ETH"] == E30 + 1
    assert books.cust_liab[("ex", "ETH")] == 15 * 10**29 - 2
    assert books.custody[("ex", "ETH")] == 15 * 10**29 - 2
    assert books.amount(books.balance("ex:cust", "ETH"), "ETH") == Decimal("1000000000000.000000000000000002")
    assert books.format(E30 + 2, "ETH") == "1,000,000,000,000.000000000000000002"
    assert books.customer_liabilities("ex") == LIAB_EXACT
    assert books.round_value(books.customer_liabilities("ex")) == Decimal("4712388980384689.86")
    assert books.holdings_value("aff", "ETH") == AFF_HELD_EXACT
    assert books.measure("ex", "balance", account="ex:cust", asset="ETH") == Decimal(
        "1000000000000.000000000000000002"
    )
    sheet = books.balance_sheet("bank")
    # bank: vault 2*10^30 - 4 minor units, loan receivable 10^30 + 4: 3*10^30 in all.
    assert sheet["total_assets"] == Decimal("9424777960769379.72")  # 3e12 x price, rounded once
    loans = {row["target"]: row for row in books.loans_view()}
    assert loans["L1"]["outstanding"] == Decimal("1000000000000.000000000000000004")
    assert loans["L1"]["collateral"] == {"ETH": Decimal("1000000000000.000000000000000001")}


# -- the limit ----------------------------------------------------------------------------------
def test_the_limit_is_ten_to_the_38_minus_one_minor_units():
    assert ev.MAX_MINOR == 10**38 - 1
    top = Decimal("99999999999999999999.999999999999999999")  # 10^38 - 1 at scale 18
    assert ev.to_minor(top, 18) == ev.MAX_MINOR
    assert ev.to_minor(top.copy_negate(), 18) == -ev.MAX_MINOR  # (-top would round to 28 digits)
    assert ev.to_minor(Decimal(10**38 - 1), 0) == ev.MAX_MINOR
    assert ev.to_minor(Decimal(E12), 18) == E30


@pytest.mark.parametrize(
    ("amount", "scale"),
    [("100000000000000000000", 18), ("1E+20", 18), (str(10**38), 0), ("1E+1000", 2), ("1" * 101, 0)],
)
def test_beyond_the_limit_is_refused_naming_the_field_and_the_limit(amount, scale):
    with pytest.raises(ev.EventValueError) as raised:
        ev.to_minor(Decimal(amount), scale, field="principal", asset="ETH")
    message = str(raised.value)
    assert message.startswith("principal: ")
    assert "exceeds the maximum of 10^38 - 1 minor units" in message
    with pytest.raises(ev.EventValueError, match=r"^amount: -.* exceeds the maximum of 10\^38 - 1 minor units"):
        ev.to_minor(Decimal(amount).copy_negate(), scale)


@given(minor=st.integers(-ev.MAX_MINOR, ev.MAX_MINOR), scale=st.integers(0, 18))
def test_minor_units_round_trip_exactly_up_to_the_limit(minor, scale):
    amount = ev.from_minor(minor, scale)
    assert ev.to_minor(amount, scale) == minor
    assert ev.format_decimal(amount) == ev.format_decimal(Decimal(minor).scaleb(-scale, _WIDE))


def test_from_minor_is_exact_for_38_digits():
    # The default context (28 digits) rounded these.
    assert ev.from_minor(E30 + 1, 18) == Decimal("1000000000000.000000000000000001")
    assert str(ev.from_minor(ev.MAX_MINOR, 18)) == "99999999999999999999.999999999999999999"
    assert ev.from_minor(-ev.MAX_MINOR, 0) == Decimal("-" + "9" * 38)


AMOUNT_FIELDS = [
    ("deposit", "amount", {"account": "ex:cust", "landed": "ex:custody", "asset": "ETH"}),
    ("transfer", "amount", {"from_account": "ex:custody", "to_account": "ex:treasury", "asset": "ETH"}),
    ("loan_opened", "principal", {"loan": "L9", "lender": "bank", "borrower": "aff", "asset": "ETH",
                                  "disbursed_from": "bank:vault", "disbursed_to": "aff:bank"}),
    ("credit_line_granted", "limit", {"account": "ex:aff", "asset": "ETH"}),
    ("balance_asserted", "expected", {"entity": "ex", "measure": "balance", "account": "ex:cust",
                                       "asset": "ETH", "tolerance": "0"}),
    ("balance_asserted", "tolerance", {"entity": "ex", "measure": "balance", "account": "ex:cust",
                                        "asset": "ETH", "expected": "1"}),
]


def _eth_books(tmp_path) -> Books:
    books = Books()
    for event in timeline(tmp_path, ETH).events:
        books.apply(event)
    return books


def _event(event_type: str, fields: dict, field: str, amount: str) -> ev.Event:
    return ev.from_dict({"type": event_type, "id": "x", "at": "2022-01-03T00:00:00Z", "source": ["T"],
                         **fields, field: amount})


@pytest.mark.parametrize(("event_type", "field", "fields"), AMOUNT_FIELDS)
def test_every_amount_field_beyond_the_limit_is_refused_by_name(tmp_path, event_type, field, fields):
    books = _eth_books(tmp_path)
    before = books.to_state()
    with pytest.raises(SemanticError) as raised:
        books.apply(_event(event_type, fields, field, "100000000000000000000"))  # 10^38 minor units
    assert str(raised.value) == (
        f"{field}: 100000000000000000000 ETH exceeds the maximum of 10^38 - 1 minor units "
        "(99,999,999,999,999,999,999.999999999999999999 ETH at scale 18)"
    )
    assert books.to_state() == before  # refused before anything moved


@pytest.mark.parametrize(("event_type", "field", "fields"), AMOUNT_FIELDS)
def test_every_amount_field_takes_the_largest_amount(tmp_path, event_type, field, fields):
    books = _eth_books(tmp_path)
    books.registry.apply(_event(event_type, fields, field, "99999999999999999999.999999999999999999"))


def test_the_limit_is_refused_at_append_with_the_field_named(tmp_path, fresh_log):
    tl = timeline(tmp_path, ETH)
    fresh_log.append(tl.events)
    bad = ev.Deposit(id="x", at=tl.events[-1].at, source=("T",), account="ex:cust", asset="ETH",
                     amount=Decimal("100000000000000000000"), landed="ex:custody")
    with pytest.raises(InputError, match=r"amount: 100000000000000000000 ETH exceeds the maximum of 10\^38 - 1"):
        fresh_log.append([bad])
    assert len(fresh_log) == len(tl.events)


# -- the books -----------------------------------------------------------------------------------
def test_scale_18_balances_of_10_to_the_12_units_are_exact(tmp_path):
    tl = big_timeline(tmp_path)
    _, summary = run(tl)
    check_big_books(books_at(tl))
    # The four assertions match to the last minor unit and cent (tolerance 0).
    assert [(a["ok"], a["actual"]) for a in summary.assertions] == [
        (True, "1000000000000.000000000000000002 ETH"),
        (True, "499999999999.999999999999999996 ETH"),
        (True, "4712388980384689.86 USD"),
        (True, "3141592653589793.24 USD"),
    ]
    assert "withdrawals-honoured" not in summary.first_breaches  # w1 was paid
    assert "segregation" not in summary.first_breaches  # as much held as owed, to the unit


def test_an_assertion_one_minor_unit_off_is_a_breach(tmp_path):
    tl = timeline(tmp_path, BIG.replace('expected = "1000000000000.000000000000000002"',
                                        'expected = "1000000000000.000000000000000003"'))
    _, summary = run(tl)
    assert summary.breach_counts["assertions"] == 1
    breach = summary.first_breaches["assertions"]
    assert breach.event_id == "a-cust"
    assert "gap -0.000000000000000001" in breach.detail


def test_an_assertion_gap_beyond_28_digits_is_exact(tmp_path):
    # The books say 1000000000000.000000000000000002 ETH; the record says 0 with a tolerance of
    # 10^12 + 10^-18. Rounded to 28 digits the gap would be 10^12, within the tolerance.
    tl = timeline(tmp_path, BIG + """
[[events]]
id = "a-far"
type = "balance_asserted"
entity = "ex"
measure = "balance"
account = "ex:cust"
asset = "ETH"
expected = "0"
tolerance = "1000000000000.000000000000000001"
""")
    _, summary = run(tl)
    assert [a["ok"] for a in summary.assertions] == [True, True, True, True, False]
    assert summary.assertions[-1]["gap"] == "1000000000000.000000000000000002 ETH"


def test_balance_sheet_totals_beyond_28_digits_are_exact(tmp_path):
    # 10^33 USD and a cent (35 digits) beside 10^12 ETH: sum() in the default context (28
    # digits) would drop the cent and more.
    tl = timeline(tmp_path, ETH + """
[[events]]
id = "usd"
type = "transfer"
from_account = "world:market"
to_account = "aff:bank"
asset = "USD"
amount = "1000000000000000000000000000000000.01"

[[events]]
id = "eth"
type = "transfer"
from_account = "world:market"
to_account = "aff:bank"
asset = "ETH"
amount = "1000000000000.000000000000000001"

[[events]]
id = "px"
type = "price_updated"
asset = "ETH"
quote = "USD"
price = "0.07"

[[events]]
id = "owe"
type = "deposit"
account = "ex:aff"
asset = "USD"
amount = "1000000000000000000000000000000.03"
landed = "ex:custody"
from_account = "aff:bank"
""")
    books = books_at(tl)
    sheet = books.balance_sheet("aff")
    # aff:bank: 10^33 + 0.01 - (10^30 + 0.03) USD, plus 10^12 ETH at 0.07 = 70,000,000,000 USD;
    # its claim on ex: 10^30 + 0.03 USD.
    assert sheet["total_assets"] == Decimal("1000000000000000000000070000000000.01")
    assert sheet["total_liabilities"] == Decimal(0)
    assert sheet["equity"] == Decimal("1000000000000000000000070000000000.01")
    assert books.total_assets("aff") == Decimal("1000000000000000000000070000000000.01000000000000000007")
    group = books.balance_sheet(["aff", "ex"])  # the claim and the customer account drop out
    assert group["total_assets"] == Decimal("1000000000000000000000070000000000.01")


def test_haircuts_of_many_digits_are_applied_exactly(tmp_path):
    # A keep of 1 - 0.2500000000000000000000000000001 has 31 digits; 28 would make it 0.75.
    policy = Policy.from_dict({"haircuts": {"crypto": "0.2500000000000000000000000000001"}})
    books = Books(policy)
    for event in timeline(tmp_path, BIG).events:
        books.apply(event)
    held = books.held[("ex", "ETH")]
    assert held == 15 * 10**29 - 2
    keep = Decimal("0.7499999999999999999999999999999")
    assert books.liquid_reserves("ex") == _WIDE.multiply(LIAB_EXACT, keep)
    assert books.liquid_reserves("ex") != _WIDE.multiply(LIAB_EXACT, Decimal("0.75"))


def test_sums_beyond_the_limit_stay_exact(tmp_path):
    # Each amount is within the limit; the balance they add up to is not, and stays exact.
    top = "99999999999999999999.999999999999999999"
    body = ETH + "".join(
        f'\n[[events]]\nid = "d{i}"\ntype = "deposit"\naccount = "ex:cust"\nasset = "ETH"\n'
        f'amount = "{top}"\nlanded = "ex:custody"\n'
        for i in range(3)
    )
    books = books_at(timeline(tmp_path, body))
    assert books.balance("ex:cust", "ETH") == 3 * ev.MAX_MINOR
    assert books.amount(3 * ev.MAX_MINOR, "ETH") == Decimal("299999999999999999999.999999999999999997")
    again = Books.from_state(orjson.loads(orjson.dumps(books.to_state())))
    assert again.balances == books.balances and again.custody == books.custody


# -- snapshot state ----------------------------------------------------------------------------
def test_books_state_round_trips_big_values_through_stdlib_json_and_orjson(tmp_path):
    books = books_at(big_timeline(tmp_path))
    state = books.to_state()
    for text in (json.dumps(state), orjson.dumps(state)):  # orjson refuses ints beyond 64 bits
        again = Books.from_state(json.loads(text))
        check_big_books(again)
        assert again.balances == books.balances
        assert again.registry.loans == books.registry.loans
        assert again.registry.pledges == books.registry.pledges
        assert again.collateral == books.collateral
        assert again.limits == books.limits
        for name in ("pos", "neg", "custody", "cust_liab", "held", "pledged_by", "related"):
            assert dict(getattr(again, name)) == {k: v for k, v in getattr(books, name).items() if v}
        assert again.to_state() == state


def test_books_state_keeps_64_bit_values_as_json_integers(tmp_path):
    # Snapshots written before amounts grew must load, and new ones of small books read the
    # same: values that fit in 64 bits stay JSON integers; only larger ones become strings.
    books = books_at(big_timeline(tmp_path))
    books.balances[("ex", "treasury", "USD")] = 2**63 - 1
    books.balances[("ex", "treasury", "BTC")] = -(2**63)
    state = books.to_state()
    rows = {(e, a, s): m for e, a, s, m in state["balances"]}
    assert rows[("ex", "treasury", "USD")] == 2**63 - 1
    assert rows[("ex", "treasury", "BTC")] == -(2**63)
    assert rows[("ex", "cust", "ETH")] == str(-(E30 + 2))
    assert Books.from_state(json.loads(json.dumps(state))).balances == books.balances


@pytest.mark.parametrize("bad", [1e30, "1e30", " 5", "", True, None, "0x10"])
def test_books_state_refuses_a_minor_amount_that_is_not_an_exact_integer(tmp_path, bad):
    state = books_at(big_timeline(tmp_path)).to_state()
    state["balances"][0][3] = bad
    with pytest.raises(ValueError, match="balances"):
        Books.from_state(state)


# -- the stored log, end to end -----------------------------------------------------------------
def test_end_to_end_a_real_log_file_holds_replays_and_verifies_big_amounts(tmp_path, log_path):
    tl = big_timeline(tmp_path)
    log = Log.open(log_path, create=True)
    try:
        log.append(tl.events)
    finally:
        log.close()

    log = Log.open(log_path)  # reopened: the registry comes back from its table
    try:
        assert log.verify().events_checked == len(tl.events)
        registry = log.registry()
        assert registry.loans["L1"].outstanding == E30 + 4
        assert registry.pledges["L1|ETH"] == E30 + 1
        stored = log.get("d2").payload
        assert '"amount":"1000000000000.000000000000000001"' in stored
        _, summary = run(log)
        assert [a["ok"] for a in summary.assertions] == [True] * 4
        books = books_at(log)
        check_big_books(books)
        assert books_at(log).balances == books_at(tl).balances
        assert summary.digest == run(tl)[1].digest
    finally:
        log.close()

    # Append more to the reopened log: the registry's checks use the big amounts it stored.
    log = Log.open(log_path)
    try:
        last = tl.events[-1].at
        too_much = ev.LoanRepaid(id="R2", at=last, source=("T",), loan="L1",
                                 amount=Decimal("1000000000000.000000000000000005"),
                                 paid_from="aff:bank", paid_to="bank:vault")
        with pytest.raises(InputError, match=r"only 1000000000000\.000000000000000004 is outstanding"):
            log.append([too_much])
        release = ev.CollateralReleased(id="X1", at=last, source=("T",), loan="L1", asset="ETH",
                                        amount=Decimal("1000000000000.000000000000000001"),
                                        to_account="aff:bank")
        repay = ev.LoanRepaid(id="R2", at=last, source=("T",), loan="L1",
                              amount=Decimal("1000000000000.000000000000000004"),
                              paid_from="aff:bank", paid_to="bank:vault")
        log.append([release, repay])
        assert log.verify().events_checked == len(tl.events) + 2
        books = books_at(log)
        assert books.registry.loans["L1"].outstanding == 0
        assert books.balance("aff:bank", "ETH") == 0
        assert books.balance("bank:vault", "ETH") == 3 * E30
        # Snapshots (the books' JSON state, compressed, in the log) load back exactly.
        inv = Investigation(log, every=5)
        inv.build_snapshots()
        assert inv.snapshots()
        for seq in (len(tl.events), len(tl.events) + 2):
            assert inv.as_of(seq=seq).balances == books_at(log, seq=seq).balances
        check_big_books(inv.as_of(seq=len(tl.events)))
    finally:
        log.close()


def test_events_of_big_amounts_export_and_reimport_exactly(tmp_path, fresh_log):
    tl = big_timeline(tmp_path)
    fresh_log.append(tl.events)
    lines = [record.payload for record in fresh_log.iter_records()]
    again = [ev.from_json(line) for line in lines]
    assert again == list(tl.events)
    assert [ev.from_stored(line) for line in lines] == list(tl.events)
    assert [ev.canonical_json(e) for e in again] == lines
    # Amounts are decimal strings in the canonical form: orjson's 64-bit limit on ints never
    # applies, and the bytes are the standard library's.
    for event in again:
        assert ev.canonical_bytes(event) == json.dumps(
            ev.to_dict(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    assert '"principal":"2000000000000.000000000000000007"' in fresh_log.get("L1").payload
