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
