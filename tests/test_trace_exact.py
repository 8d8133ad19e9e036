"""Fund tracing is exact: scenarios with answers worked by hand.

Each scenario is a small timeline in TOML (``tests/scenario.py`` adds the standard cast: ``ex``
with ``ex:custody``, customer accounts ``ex:cust`` (holder ``cust``) and ``ex:aff`` (holder
``aff``), ``aff:bank``, ``bank:vault``, ``world:market``; ``USD`` has scale 2). Amounts are in
whole dollars so that the arithmetic in the comments is easy to follow.

The rules are stated in ``docs/forensics.md``; in short: a place (a holdings, custody or pledged
account) never holds more traced money than its balance; money that goes to an external account
has left the model; traced in = traced held at places + traced that left.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from ledger.books import CUSTODY, HOLDINGS, PLEDGED
from ledger.cli import cli
from ledger.forensics import Investigation
from ledger.store import Log
from tests.scenario import timeline

RULES = ("fifo", "pro-rata", "libr")
PLACES = (HOLDINGS, CUSTODY, PLEDGED)
D = Decimal

#: A customer wallet outside the venue: the holder ``cust``'s own holdings account.
WALLET = """
[[accounts]]
account = "cust:wallet"
purpose = "corporate"
"""

#: The affiliate may owe the venue (it withdraws more than it deposited, or owes routed fiat).
CREDIT = """
[[events]]
id = "cl"
type = "credit_line_granted"
account = "ex:aff"
asset = "USD"
limit = "100000"
"""


def trace(tmp_path, body, *, rule, into="ex:cust", asset="USD", name="t"):
    tl = timeline(tmp_path, body, name=f"{name}-{rule}")
    with Log.open(tmp_path / f"{name}-{rule}.db", create=True) as log:
        log.append(tl.events)
        return Investigation(log).trace(asset=asset, deposits_into=into, rule=rule)


def flows(result):
    return [(f.event_id, f.from_node, f.to_node, f.amount) for f in result.flows]


# -- defect 1: a deposit from a place that holds traced money ---------------------------------------
REDEPOSIT = WALLET + """
[[events]]
id = "in"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "out"
type = "withdrawal"
account = "ex:cust"
asset = "USD"
amount = "100"
paid_from = "ex:custody"
to = "cust:wallet"

[[events]]
id = "back"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "ex:custody"
from_account = "cust:wallet"
"""


@pytest.mark.parametrize("rule", RULES)
def test_redeposit_of_traced_money_is_the_same_money_not_new(tmp_path, rule):
    """100 in, 100 out to her wallet, the same 100 back in. By hand: 100 was ever deposited from
    outside; the wallet held only traced money (100 of 100), so the re-deposit carries all 100
    back under every rule. The wallet's balance is 0, custody's 100: all 100 traced are in
    custody, none at the wallet, and 100 (not 200) were traced in."""
    result = trace(tmp_path, REDEPOSIT, rule=rule)
    assert result.traced_in == D("100.00")
    assert result.holders == {"ex:custody": D("100.00")}
    assert flows(result) == [
        ("in", "cust:external", "ex:custody", D("100.00")),
        ("out", "ex:custody", "cust:wallet", D("100.00")),
        ("back", "cust:wallet", "ex:custody", D("100.00")),
    ]


PARTLY_TRACED_SOURCE = CREDIT + """
[[events]]
id = "cust-in"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "draw"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "100"
paid_from = "ex:custody"
to = "aff:bank"

[[events]]
id = "seed"
type = "transfer"
from_account = "world:market"
to_account = "bank:vault"
asset = "USD"
amount = "100"

[[events]]
id = "loan"
type = "loan_opened"
loan = "L1"
lender = "bank"
borrower = "aff"
asset = "USD"
principal = "100"
disbursed_from = "bank:vault"
disbursed_to = "aff:bank"

[[events]]
id = "return-in"
type = "deposit"
account = "ex:aff"
asset = "USD"
amount = "150"
landed = "ex:custody"
from_account = "aff:bank"
"""


@pytest.mark.parametrize(
    ("rule", "traced_in", "holders"),
    [
        # aff:bank holds 100 traced (the draw, first) and 100 borrowed (second) when it deposits
        # 150 back into its own account at the venue (the alameda-return-in pattern).
        # FIFO: the 150 are the oldest 100 (traced) then 50 borrowed: 100 traced come back and
        # 50 are new customer money. Traced in 100 + 50 = 150; custody 150 (all of it), aff:bank 0.
        ("fifo", "150.00", {"ex:custody": "150.00"}),
        # Pro rata: 150 x 100/200 = 75 traced come back, 75 are new. Traced in 100 + 75 = 175;
        # custody 150, aff:bank 100 - 75 = 25 of its 50.
        ("pro-rata", "175.00", {"ex:custody": "150.00", "aff:bank": "25.00"}),
        # LIBR: aff:bank spends its own 100 (borrowed) first, then 50 traced: 50 come back, 100
        # are new. Traced in 100 + 100 = 200; custody 150, aff:bank 50 of its 50.
        ("libr", "200.00", {"ex:custody": "150.00", "aff:bank": "50.00"}),
    ],
)
def test_deposit_from_a_place_holding_traced_money_carries_it_by_the_rule(tmp_path, rule, traced_in, holders):
    result = trace(tmp_path, PARTLY_TRACED_SOURCE, rule=rule, into="ex")
    assert result.traced_in == D(traced_in)
    assert result.holders == {k: D(v) for k, v in holders.items()}


# -- defect 2: traced money arriving at a negative balance --------------------------------------------
INTO_THE_RED = CREDIT + """
[[events]]
id = "overdraw"
type = "transfer"
from_account = "aff:bank"
to_account = "world:market"
asset = "USD"
amount = "50"

[[events]]
id = "routed"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "aff:bank"
owed_by = "ex:aff"

[[events]]
id = "onward"
type = "transfer"
from_account = "aff:bank"
to_account = "bank:vault"
asset = "USD"
amount = "50"
"""


@pytest.mark.parametrize("rule", RULES)
def test_traced_money_arriving_at_a_negative_balance_first_makes_good_the_deficit(tmp_path, rule):
    """aff:bank is overdrawn to -50; 100 of customer fiat lands there (balance 50); then 50 goes on
    to bank:vault (balance 0). By hand, under every rule: 50 of the 100 made good the deficit (it
    paid a debt the log does not show, so it left the model), 50 remained and left with
    ``onward``: bank:vault holds 50 traced, aff:bank none (its balance is 0), and no flow carries
    more than the 50 the transfer moved."""
    result = trace(tmp_path, INTO_THE_RED, rule=rule)
    assert result.traced_in == D("100.00")
    assert result.holders == {"bank:vault": D("50.00"), "(deficit) aff:bank": D("50.00")}
    assert flows(result) == [
        ("routed", "cust:external", "aff:bank", D("100.00")),
        ("routed", "aff:bank", "(deficit) aff:bank", D("50.00")),
        ("onward", "aff:bank", "bank:vault", D("50.00")),
    ]


# -- the first hop is a flow ------------------------------------------------------------------------
def test_the_first_hop_of_a_routed_deposit_is_a_flow(tmp_path):
    """Customer fiat that lands in the affiliate's bank (fiat@ftx.com) is the first movement an
    investigator wants to see: customer side -> aff:bank, for the whole 100."""
    body = CREDIT + """
[[events]]
id = "routed"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "aff:bank"
owed_by = "ex:aff"
"""
    for rule in RULES:
        result = trace(tmp_path, body, rule=rule)
        assert flows(result) == [("routed", "cust:external", "aff:bank", D("100.00"))], rule
        assert result.holders == {"aff:bank": D("100.00")}, rule


# -- the bundled timeline ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ftx_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("ftx") / "ftx.db"
    result = CliRunner().invoke(cli, ["append", "ftx-2022", "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


def _cli_trace(db, asset, rule):
    out = CliRunner().invoke(cli, ["trace", "--db", str(db), "--asset", asset, "--deposits-into", "ftx", "--rule", rule, "--format", "json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


@pytest.mark.parametrize("rule", RULES)
def test_ftx_usdc_traced_at_alameda_never_exceeds_its_balance(ftx_db, rule):
    """Before the fix the re-deposit ``alameda-return-in`` (4.1B from alameda:trading) left the
    traced money at alameda:trading as well: 5.0B (LIBR), 4.09B (FIFO), 2.94B (pro rata) traced
    there, against a real balance of 1.3896B. Every place must hold at most its balance."""
    data = _cli_trace(ftx_db, "USDC", rule)
    with Log.open(ftx_db, readonly=True) as log:
        books = Investigation(log).as_of(seq=data["until_seq"])
    places = 0
    for node, amount in data["holders"].items():
        entity, _, account = node.partition(":")
        if books.classify(entity, account)[0] not in PLACES:
            continue  # an external account: money that left the model
        places += 1
        balance = books.amount(books.balances.get((entity, account, "USDC"), 0), "USDC")
        assert D("0") < D(amount) <= balance, (node, amount, balance)
    assert places >= 2  # ftx:custody and alameda:trading at least
    assert D(data["holders"]["alameda:trading"]) <= D("1389600000.00")
    # Conservation: everything traced in is held at a place or has left the model.
    assert sum((D(v) for v in data["holders"].values()), D(0)) == D(data["traced_in"])


def test_ftx_usd_first_hops_are_the_fiat_deposits_landing_at_alameda(ftx_db):
    """The five customer fiat deposits of the timeline (fiat-2019 .. fiat-2022h1, 0.1 + 0.5 + 1.5
    + 3.0 + 2.9 = 8.0B, the traced total) land at alameda:bank; each is a flow from the
    customers' side."""
    data = _cli_trace(ftx_db, "USD", "libr")
    first = [(f["event_id"], f["from_node"], f["to_node"], D(f["amount"])) for f in data["flows"] if f["to_node"] == "alameda:bank"]
    assert first == [
        ("fiat-2019", "customers:external", "alameda:bank", D("100000000.00")),
        ("fiat-2020", "customers:external", "alameda:bank", D("500000000.00")),
        ("fiat-2021h1", "customers:external", "alameda:bank", D("1500000000.00")),
        ("fiat-2021h2", "customers:external", "alameda:bank", D("3000000000.00")),
        ("fiat-2022h1", "customers:external", "alameda:bank", D("2900000000.00")),
    ]


# -- textbook cases, worked by hand ---------------------------------------------------------------------
TWO_VICTIMS = CREDIT + """
[[entities]]
entity = "alice"
name = "Alice"
kind = "customer_pool"

[[entities]]
entity = "bob"
name = "Bob"
kind = "customer_pool"

[[accounts]]
account = "ex:alice"
purpose = "customer"
holder = "alice"

[[accounts]]
account = "ex:bob"
purpose = "customer"
holder = "bob"

[[events]]
id = "alice-in"
type = "deposit"
account = "ex:alice"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "bob-in"
type = "deposit"
account = "ex:bob"
asset = "USD"
amount = "300"
landed = "ex:custody"

[[events]]
id = "taken"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "200"
paid_from = "ex:custody"
to = "aff:bank"
"""


@pytest.mark.parametrize(
    ("rule", "alice", "bob"),
    [
        # Custody holds Alice's 100 (first) and Bob's 300 (second); 200 are taken to aff:bank.
        # Pro rata: the loss is shared rateably: Alice's share 200 x 100/400 = 50 leaves, Bob's
        # 200 x 300/400 = 150. Each keeps half: Alice 50, Bob 150 in custody (together 200, the
        # balance).
        ("pro-rata", {"ex:custody": "50.00", "aff:bank": "50.00"}, {"ex:custody": "150.00", "aff:bank": "150.00"}),
        # FIFO (Clayton's case): the first money in goes out first: all of Alice's 100, then 100
        # of Bob's. Alice 0 and Bob 200 in custody (together 200).
        ("fifo", {"aff:bank": "100.00"}, {"ex:custody": "200.00", "aff:bank": "100.00"}),
        # LIBR traces one claimant against everyone else's money, which it treats as the
        # wrongdoer's own and spends first: for Alice, Bob's 300 cover the 200, so Alice keeps
        # 100; for Bob, Alice's 100 go first, then 100 of his, so he keeps 200. Each answer holds
        # at most the balance, but together they claim 300 of 200: between victims, trace them
        # together (below) or use pro rata (docs/forensics.md).
        ("libr", {"ex:custody": "100.00"}, {"ex:custody": "200.00", "aff:bank": "100.00"}),
    ],
)
def test_two_victims_in_one_mixed_account(tmp_path, rule, alice, bob):
    a = trace(tmp_path, TWO_VICTIMS, rule=rule, into="ex:alice", name="alice")
    b = trace(tmp_path, TWO_VICTIMS, rule=rule, into="ex:bob", name="bob")
    both = trace(tmp_path, TWO_VICTIMS, rule=rule, into="ex", name="both")
    assert (a.traced_in, b.traced_in, both.traced_in) == (D("100.00"), D("300.00"), D("400.00"))
    assert a.holders == {k: D(v) for k, v in alice.items()}
    assert b.holders == {k: D(v) for k, v in bob.items()}
    # Traced together, custody holds only customer money, so every rule gives the same answer.
    assert both.holders == {"ex:custody": D("200.00"), "aff:bank": D("200.00")}


LOW_THEN_REFILL = CREDIT + """
[[events]]
id = "cust-in"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "drain"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "90"
paid_from = "ex:custody"
to = "aff:bank"

[[events]]
id = "refill"
type = "deposit"
account = "ex:aff"
asset = "USD"
amount = "200"
landed = "ex:custody"

[[events]]
id = "again"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "50"
paid_from = "ex:custody"
to = "aff:bank"
"""


@pytest.mark.parametrize(
    ("rule", "holders"),
    [
        # Custody holds only the customers' 100; 90 leave (all traced under every rule), so it
        # falls to 10. The affiliate's 200 refill it (not traced: only ex:cust deposits are).
        # LIBR: the 50 that leave next are the 200 of other money; 10 remain traceable in custody,
        # the lowest intermediate balance, though custody now holds 160. The refill is not traced.
        ("libr", {"ex:custody": "10.00", "aff:bank": "90.00"}),
        # FIFO: custody's oldest money is the 10 traced, so the 50 take 10 traced + 40 other.
        ("fifo", {"aff:bank": "100.00"}),
        # Pro rata: custody holds 10 traced of 210; the 50 carry 50 x 10/210 = 2.38095...; in
        # cents 5000 x 1000 / 21000 = 238.095 -> 238 (rounded to the cent): 2.38 leave, 7.62 stay.
        ("pro-rata", {"ex:custody": "7.62", "aff:bank": "92.38"}),
    ],
)
def test_dissipation_to_a_low_balance_then_a_refill(tmp_path, rule, holders):
    result = trace(tmp_path, LOW_THEN_REFILL, rule=rule)
    assert result.traced_in == D("100.00")
    assert result.holders == {k: D(v) for k, v in holders.items()}


OWN_MONEY = CREDIT + """
[[events]]
id = "routed"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "aff:bank"
owed_by = "ex:aff"

[[events]]
id = "own"
type = "transfer"
from_account = "world:market"
to_account = "aff:bank"
asset = "USD"
amount = "100"

[[events]]
id = "spend-1"
type = "transfer"
from_account = "aff:bank"
to_account = "world:market"
asset = "USD"
amount = "100"

[[events]]
id = "spend-2"
type = "transfer"
from_account = "aff:bank"
to_account = "world:market"
asset = "USD"
amount = "50"
"""


@pytest.mark.parametrize(
    ("rule", "after_first", "after_second"),
    [
        # aff:bank receives 100 of customer fiat, then 100 of its own; it spends 100, then 50.
        # LIBR: the wrongdoer spends his own money first: spend-1 is all his own (100 traced
        # remain); spend-2 can only be traced money (50 leave, 50 remain).
        ("libr", {"aff:bank": "100.00"}, {"aff:bank": "50.00", "world:market": "50.00"}),
        # FIFO: the customers' money arrived first, so spend-1 is all of it.
        ("fifo", {"world:market": "100.00"}, {"world:market": "100.00"}),
        # Pro rata: spend-1 carries 100 x 100/200 = 50; spend-2 carries 50 x 50/100 = 25.
        ("pro-rata", {"aff:bank": "50.00", "world:market": "50.00"}, {"aff:bank": "25.00", "world:market": "75.00"}),
    ],
)
def test_the_wrongdoers_own_money_first(tmp_path, rule, after_first, after_second):
    first = OWN_MONEY[: OWN_MONEY.index('[[events]]\nid = "spend-2"')]
    assert trace(tmp_path, first, rule=rule, name="first").holders == {k: D(v) for k, v in after_first.items()}
    assert trace(tmp_path, OWN_MONEY, rule=rule, name="second").holders == {k: D(v) for k, v in after_second.items()}


DRAINED = CREDIT + """
[[events]]
id = "cust-in"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "drain"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "100"
paid_from = "ex:custody"
to = "aff:bank"

[[events]]
id = "refill"
type = "deposit"
account = "ex:aff"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "onward"
type = "transfer"
from_account = "aff:bank"
to_account = "bank:vault"
asset = "USD"
amount = "30"
"""


@pytest.mark.parametrize("rule", RULES)
def test_drained_to_zero_then_refilled(tmp_path, rule):
    """Custody holds the customers' 100 and nothing else; all 100 go to aff:bank (custody 0);
    the affiliate refills custody with 100 of other money. By hand, under every rule: nothing
    traced is in custody (its balance fell to 0, and the refill is not customer money); aff:bank
    holds only traced money, so the 30 it sends on are traced: bank:vault 30, aff:bank 70."""
    result = trace(tmp_path, DRAINED, rule=rule)
    assert result.traced_in == D("100.00")
    assert result.holders == {"aff:bank": D("70.00"), "bank:vault": D("30.00")}
    assert result.held == result.holders and result.left == {}


def test_pro_rata_rounds_half_even_to_the_minor_unit(tmp_path):
    """Custody holds 1 traced cent of 4; 2 cents leave: 2 x 1/4 = 0.5 cent, which rounds to the
    even 0 (half up would say 1). Then 2 leave of 2: the place is emptied, the 1 traced cent goes."""
    body = CREDIT + """
[[events]]
id = "cust-in"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "0.01"
landed = "ex:custody"

[[events]]
id = "aff-in"
type = "deposit"
account = "ex:aff"
asset = "USD"
amount = "0.03"
landed = "ex:custody"

[[events]]
id = "half"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "0.02"
paid_from = "ex:custody"
to = "aff:bank"
"""
    assert trace(tmp_path, body, rule="pro-rata", name="half").holders == {"ex:custody": D("0.01")}
    rest = body + """
[[events]]
id = "rest"
type = "withdrawal"
account = "ex:aff"
asset = "USD"
amount = "0.02"
paid_from = "ex:custody"
to = "aff:bank"
"""
    assert trace(tmp_path, rest, rule="pro-rata", name="rest").holders == {"aff:bank": D("0.01")}


@pytest.mark.parametrize(
    ("rule", "traced_in", "holders"),
    [
        # alameda:trading in USDC, from `bankrun history alameda:trading --asset USDC` (in M):
        # +200 T draw-2020, +300 T draw-2021h1, +8000 U genesis-loan, +500 T draw-2021h2,
        # -4500 genesis-paydown-2021, +728.2 U voyager-loan, +300 T, +1700 T (draws),
        # -3500 genesis-recall-repaid, -75 voyager-revolver, -283.2 alameda-usdc-spend,
        # -351.4 voyager-paydown-2022-07, +671 U blockfi-loan, +1000 T, +1000 T (draws),
        # -200 voyager-settlement, -4100 alameda-return-in (balance 1389.6).
        # T = traced (FTX custody), U = Alameda's own (borrowed). Customer USDC deposits:
        # 50 + 250 + 1000 + 2000 + 1800 = 5100; the run paid 500 + 500 + 1000 + 1000 + 1000 +
        # 150 + 40 = 4190 to customers:external; custody ends with 10, only customer money.
        #
        # LIBR: own money goes first, and there is always enough of it: U = 8000 - 4500 + 728.2
        # - 3500 - 75 - 283.2 - 351.4 + 671 - 200 = 489.6 before the return, T = 5000. The 4100
        # are 489.6 U (new traced money) then 3610.4 T: 1389.6 T remain; traced in 5100 + 489.6.
        ("libr", "5589600000.00", {"customers:external": "4190000000.00", "alameda:trading": "1389600000.00", "ftx:custody": "10000000.00"}),
        # FIFO lots: [200T 300T 8000U 500T]; -4500 takes 200T 300T 4000U (500 T to Genesis);
        # [4000U 500T] +728.2U +2000T; -3500, -75, -283.2 from the U lot (141.8 U left); -351.4
        # = 141.8 U + 209.6 T (to Voyager); [290.4T 728.2U 2000T] +671U +2000T; -200 T (to
        # Voyager); [90.4T 728.2U 2000T 671U 2000T]; -4100 = 90.4T 728.2U 2000T 671U 610.4T:
        # 2700.8 traced come back, 1399.2 are new; 1389.6 T remain. Traced in 5100 + 1399.2.
        ("fifo", "6499200000.00", {
            "customers:external": "4190000000.00", "alameda:trading": "1389600000.00", "ftx:custody": "10000000.00",
            "genesis:treasury": "500000000.00", "voyager:treasury": "409600000.00",
        }),
    ],
)
def test_ftx_usdc_trace_worked_by_hand(ftx_db, rule, traced_in, holders):
    data = _cli_trace(ftx_db, "USDC", rule)
    assert D(data["traced_in"]) == D(traced_in)
    assert {k: D(v) for k, v in data["holders"].items()} == {k: D(v) for k, v in holders.items()}


# -- across a trade: traced value continues in the asset received ----------------------------------
#: 100 traced deposited into custody, then 100 of the venue's own money; custody buys 2 BTC from
#: the market at 30 (pays 60 USD), then sells 1.5 BTC at 40 (60 USD, paid into the treasury).
TRADES = """
[[events]]
id = "in"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "own"
type = "transfer"
from_account = "world:market"
to_account = "ex:custody"
asset = "USD"
amount = "100"

[[events]]
id = "buy"
type = "trade"
asset = "BTC"
amount = "2"
price = "30"
pay_asset = "USD"
seller_from = "world:market"
seller_to = "world:market"
buyer_from = "ex:custody"
buyer_to = "ex:custody"

[[events]]
id = "sell"
type = "trade"
asset = "BTC"
amount = "1.5"
price = "40"
pay_asset = "USD"
seller_from = "ex:custody"
seller_to = "ex:treasury"
buyer_from = "world:market"
buyer_to = "world:market"
"""


@pytest.mark.parametrize(
    ("rule", "usd", "btc"),
    [
        # FIFO: the traced 100 are the oldest lot, so the 60 paid are all traced: the 2 BTC
        # bought are traced in full (60/60 of them). Selling 1.5 BTC of that lot for 60 USD
        # brings 60 traced USD into the treasury (1.5/1.5 of the payment). USD: 100 in, 60
        # received back = 40 in custody + 60 in the treasury + 60 traded for BTC.
        ("fifo", ("60.00", {"ex:custody": "40.00", "ex:treasury": "60.00"}, {"(traded for BTC) ex:custody": "60.00"}),
         ("2.00000000", {"ex:custody": "0.50000000"}, {"(traded for USD) ex:custody": "1.50000000"})),
        # Pro rata: custody is half traced (100 of 200), so the 60 paid carry 30 traced: half
        # the payment, hence 1 of the 2 BTC. The sale of 1.5 of 2 BTC carries 0.75 traced BTC,
        # half the 1.5 sold, hence 30 of the 60 USD received. USD: 100 + 30 = 70 + 30 + 30.
        ("pro-rata", ("30.00", {"ex:custody": "70.00", "ex:treasury": "30.00"}, {"(traded for BTC) ex:custody": "30.00"}),
         ("1.00000000", {"ex:custody": "0.25000000"}, {"(traded for USD) ex:custody": "0.75000000"})),
        # LIBR: the venue's own 100 pay first, so no traced money crosses either trade.
        ("libr", ("0.00", {"ex:custody": "100.00"}, {}), None),
    ],
)
def test_traced_value_continues_in_the_asset_a_trade_brings(tmp_path, rule, usd, btc):
    result = trace(tmp_path, TRADES, rule=rule, name="trades")
    received, held, left = usd
    assert result.traced_in == D("100.00")
    assert result.received == D(received)
    assert result.held == {k: D(v) for k, v in held.items()}
    assert result.left == {k: D(v) for k, v in left.items()}
    assert sum(result.holders.values(), D(0)) == result.traced_in + result.received
    if btc is None:
        assert result.assets == {}
        return
    got = result.assets["BTC"]
    assert (got.received, got.held, got.left) == (
        D(btc[0]), {k: D(v) for k, v in btc[1].items()}, {k: D(v) for k, v in btc[2].items()}
    )
    assert sum(got.held.values(), D(0)) + sum(got.left.values(), D(0)) == got.received
    # The flows of the traced asset are in it; the other asset's flows are in theirs.
    assert {f.asset for f in result.flows} == {"USD"} and {f.asset for f in got.flows} == {"BTC"}
    assert [(f.event_id, f.from_node, f.to_node) for f in got.flows] == [
        ("buy", "ex:custody", "ex:custody"),
        ("sell", "ex:custody", "(traded for USD) ex:custody"),
    ]


def test_a_trade_share_of_the_payment_rounds_half_even_to_the_minor_unit(tmp_path):
    """FIFO: custody holds 0.01 traced, then 0.01 of the venue's own; it pays 0.02 for 3
    satoshi. 1 of the 2 cents paid is traced, so 3 x 1/2 = 1.5 satoshi of what came is: half
    even, 2. The traced 0.01 USD is in `left` as traded for BTC; BTC received 0.00000002."""
    body = """
[[events]]
id = "in"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "0.01"
landed = "ex:custody"

[[events]]
id = "own"
type = "transfer"
from_account = "world:market"
to_account = "ex:custody"
asset = "USD"
amount = "0.01"

[[events]]
id = "buy"
type = "trade"
asset = "BTC"
amount = "0.00000003"
price = "0.01"
pay_asset = "USD"
paid = "0.02"
seller_from = "world:market"
seller_to = "world:market"
buyer_from = "ex:custody"
buyer_to = "ex:custody"
"""
    result = trace(tmp_path, body, rule="fifo", name="round")
    assert result.left == {"(traded for BTC) ex:custody": D("0.01")}
    assert result.held == {}
    assert result.assets["BTC"].received == D("0.00000002")
    assert result.assets["BTC"].held == {"ex:custody": D("0.00000002")}


def test_traced_value_received_in_a_trade_by_an_outside_buyer_leaves(tmp_path):
    """Custody (all traced: 100) buys 1 BTC from the market for 100, then pays the BTC to the
    world. Under every rule the 100 USD are traded for BTC (in ``left`` as such; the USD that
    reached the market is untraced: the market gave value for it), the BTC is traced in full
    (1 x 100/100), and it leaves to ``world:market``."""
    body = TRADES.split('[[events]]\nid = "own"')[0] + """
[[events]]
id = "buy"
type = "trade"
asset = "BTC"
amount = "1"
price = "100"
pay_asset = "USD"
seller_from = "world:market"
seller_to = "world:market"
buyer_from = "ex:custody"
buyer_to = "ex:custody"

[[events]]
id = "gone"
type = "transfer"
from_account = "ex:custody"
to_account = "world:market"
asset = "BTC"
amount = "1"
"""
    for rule in RULES:
        result = trace(tmp_path, body, rule=rule, name=f"out-{rule}")
        assert result.holders == {"(traded for BTC) ex:custody": D("100.00")}, rule
        got = result.assets["BTC"]
        assert (got.received, got.held, got.left) == (D("1.00000000"), {}, {"world:market": D("1.00000000")}), rule


RESOLVED = """
[[entities]]
entity = "fdic"
name = "Deposit insurer"
kind = "resolution_authority"

[[entities]]
entity = "bridge"
name = "Bridge bank"
kind = "bank"

[[events]]
id = "own"
type = "transfer"
from_account = "world:market"
to_account = "ex:custody"
asset = "USD"
amount = "50"

[[events]]
id = "in"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100"
landed = "ex:custody"

[[events]]
id = "resolve"
type = "resolution"
entity = "ex"
authority = "fdic"
method = "bridge_bank"
to_entity = "bridge"
accounts = ["ex:custody", "ex:cust"]

[[events]]
id = "pay"
type = "transfer"
from_account = "bridge:custody"
to_account = "world:market"
asset = "USD"
amount = "60"
"""


@pytest.mark.parametrize(
    ("rule", "held", "left"),
    [
        # The 150 in custody (50 own, then 100 traced) move whole to bridge:custody, lots in
        # order: FIFO pays the 60 from the own 50 first, then 10 traced: 90 remain traced.
        ("fifo", {"bridge:custody": "90.00"}, {"world:market": "10.00"}),
        # Pro rata: 60 x 100/150 = 40 traced leave; 60 remain.
        ("pro-rata", {"bridge:custody": "60.00"}, {"world:market": "40.00"}),
        # LIBR: the own 50 first, then 10 traced: 90 remain (as FIFO here).
        ("libr", {"bridge:custody": "90.00"}, {"world:market": "10.00"}),
    ],
)
def test_a_resolution_moves_traced_value_to_the_acquirer(tmp_path, rule, held, left):
    result = trace(tmp_path, RESOLVED, rule=rule, name="resolved")
    assert result.traced_in == D("100.00")
    assert result.held == {k: D(v) for k, v in held.items()}
    assert result.left == {k: D(v) for k, v in left.items()}
    assert ("resolve", "ex:custody", "bridge:custody", D("100.00")) in flows(result)
