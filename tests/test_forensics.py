"""Forensics: as-of on both clocks with snapshots, history, tracing rules, diff, tables."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario import write

import events as ev
from ledger.cli import cli
from ledger.forensics import Investigation
from ledger.replay import books_at
from ledger.store import Log
from ledger.testing import strategies as lst
from ledger.testing.strategies import START, cast_events

T = ("T",)


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def make_log(path, history, *, clock=None):
    log = Log.open(path, create=True, **({"clock": clock} if clock else {}))
    log.append(history)
    return log


def comparable(books):
    state = books.to_state()
    state.pop("entity_assets")  # which assets were ever touched: bookkeeping, not an answer
    return state


# -- as of, with snapshots ---------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(history=lst.histories(min_events=5, max_events=60), every=st.integers(1, 12), data=st.data())
def test_as_of_with_snapshots_equals_a_full_replay_of_the_prefix(tmp_path_factory, history, every, data):
    path = tmp_path_factory.mktemp("asof") / "ledger.db"
    with make_log(path, history) as log:
        inv = Investigation(log, every=every)
        inv.build_snapshots()
        assert inv.snapshots() == list(range(every, len(history) + 1, every))
        n = data.draw(st.integers(0, len(history)), label="n")
        fast = inv.as_of(seq=n)
        slow = books_at(history[:n])
        assert comparable(fast) == comparable(slow)
        assert inv.warnings == []


def test_snapshots_are_a_cache_dropping_or_corrupting_them_changes_no_answer(tmp_path):
    history = cast_events() + [
        ev.Deposit(id=f"d{i}", at=at(i), source=T, account="ex:cust", asset="USD", amount=Decimal(i), landed="ex:custody")
        for i in range(1, 40)
    ]
    with make_log(tmp_path / "l.db", history) as log:
        inv = Investigation(log, every=10)
        before = {n: comparable(inv.as_of(seq=n)) for n in (0, 9, 10, 33, len(history))}
        inv.build_snapshots()
        assert inv.snapshots() == [10, 20, 30, 40, 50]
        assert {n: comparable(inv.as_of(seq=n)) for n in before} == before
        # A snapshot whose event no longer matches the chain, and one that does not parse:
        log.connection.execute("UPDATE snapshots SET event_hash = zeroblob(32) WHERE seq = 30")
        log.connection.execute("UPDATE snapshots SET state = x'00' WHERE seq = 20")
        inv = Investigation(log, every=10)
        assert comparable(inv.as_of(seq=33)) == before[33]
        assert any("seq 30 does not match the hash chain" in w for w in inv.warnings)
        assert any("seq 20 is unreadable" in w for w in inv.warnings)
        inv.drop_snapshots()
        assert inv.snapshots() == []
        assert {n: comparable(inv.as_of(seq=n)) for n in before} == before


def test_as_of_effective_time_and_record_time(tmp_path):
    first = cast_events() + [
        ev.Deposit(id="d1", at=at(10), source=T, account="ex:cust", asset="USD", amount="100", landed="ex:custody"),
        ev.Deposit(id="d2", at=at(20), source=T, account="ex:cust", asset="USD", amount="50", landed="ex:custody"),
    ]
    late = [ev.Deposit(id="d3", at=at(30), source=T, account="ex:cust", asset="USD", amount="7", landed="ex:custody")]
    clock = {"now": datetime(2026, 1, 1, tzinfo=UTC)}
    with Log.open(tmp_path / "l.db", create=True, clock=lambda: clock["now"]) as log:
        log.append(first)
        clock["now"] = datetime(2026, 2, 1, tzinfo=UTC)
        log.append(late)
        inv = Investigation(log)
        cents = lambda books: books.balance("ex:cust", "USD")  # noqa: E731
        assert cents(inv.as_of(at=at(15))) == 10_000
        assert cents(inv.as_of(at=at(20))) == 15_000  # an event exactly at the instant is included
        assert cents(inv.as_of(at=at(29))) == 15_000
        assert cents(inv.as_of()) == 15_700
        # What the log knew on 2026-01-15: the late deposit was not recorded yet.
        assert cents(inv.as_of(recorded=datetime(2026, 1, 15, tzinfo=UTC))) == 15_000
        assert cents(inv.as_of(recorded=datetime(2025, 12, 31, tzinfo=UTC))) == 0
        with pytest.raises(Exception, match="name one point"):
            inv.resolve(seq=1, at=at(1))


# -- account history ------------------------------------------------------------------------------------
def test_history_lists_every_posting_with_running_balance_and_sources(tmp_path):
    history = cast_events() + [
        ev.CreditLineGranted(id="cl", at=at(1), source=("S9",), account="ex:aff", asset="USD", limit="1000"),
        ev.Deposit(id="d1", at=at(2), source=("S1",), account="ex:aff", asset="USD", amount="100", landed="ex:custody"),
        ev.Deposit(id="d2", at=at(3), source=("S1",), account="ex:cust", asset="USD", amount="500", landed="ex:custody"),
        ev.Withdrawal(id="w1", at=at(4), source=("S2", "S3"), account="ex:aff", asset="USD", amount="250", paid_from="ex:custody", note="over the balance"),
        ev.Withdrawal(id="w2", at=at(5), source=("S4",), account="ex:aff", asset="USD", amount="100", paid_from="ex:custody"),
    ]
    with make_log(tmp_path / "l.db", history) as log:
        inv = Investigation(log, every=3)
        inv.build_snapshots()
        lines = list(inv.history("ex:aff"))
        assert [(h.event_id, h.delta, h.balance, h.source) for h in lines] == [
            ("d1", Decimal("100.00"), Decimal("100.00"), ("S1",)),
            ("w1", Decimal("-250.00"), Decimal("-150.00"), ("S2", "S3")),
            ("w2", Decimal("-100.00"), Decimal("-250.00"), ("S4",)),
        ]
        assert lines[1].note == "over the balance"
        # From a later seq the running balance starts from the books at that point.
        later = list(inv.history("ex:aff", from_seq=len(cast_events()) + 5))
        assert [(h.event_id, h.balance) for h in later] == [("w2", Decimal("-250.00"))]


# -- tracing ----------------------------------------------------------------------------------------------
def _tracing_history(extra):
    """Customers deposit 100 into custody; the venue then moves custody money as ``extra`` says."""
    base = cast_events() + [
        ev.Deposit(id="clean", at=at(1), source=T, account="ex:aff", asset="USD", amount="100", landed="ex:custody", from_account=None),
        ev.Deposit(id="cust", at=at(2), source=T, account="ex:cust", asset="USD", amount="100", landed="ex:custody"),
    ]
    return base + extra


def _holders(tmp_path, history, rule, name):
    with make_log(tmp_path / f"{name}.db", history) as log:
        result = Investigation(log).trace(asset="USD", deposits_into="ex:cust", rule=rule)
    return result


def test_trace_rules_differ_on_a_commingled_account_worked_by_hand(tmp_path):
    """Custody holds 100 of the affiliate's money, then 100 traced customer money. The affiliate
    withdraws 150, the account is refilled with 200 of other money, then 60 goes out again."""
    history = _tracing_history([
        ev.Withdrawal(id="out1", at=at(3), source=T, account="ex:aff", asset="USD", amount="150", paid_from="ex:custody", to="aff:bank"),
        ev.Deposit(id="refill", at=at(4), source=T, account="ex:aff", asset="USD", amount="200", landed="ex:custody"),
        ev.Withdrawal(id="out2", at=at(5), source=T, account="ex:aff", asset="USD", amount="60", paid_from="ex:custody", to="aff:bank"),
    ])
    # Need a credit line: the affiliate withdraws more than it deposited.
    history.insert(len(cast_events()), ev.CreditLineGranted(id="cl", at=at(0), source=T, account="ex:aff", asset="USD", limit="1000"))
    fifo = _holders(tmp_path, history, "fifo", "fifo")
    # FIFO: out1 takes the 100 clean then 50 traced; custody lots [50 T, 200 C]; out2 takes 50 T + 10 C.
    assert fifo.holders == {"aff:bank": Decimal("100.00")}
    # The first hop (the customers' deposit landing in custody) is a flow too.
    assert [(f.event_id, f.amount) for f in fifo.flows] == [
        ("cust", Decimal("100.00")), ("out1", Decimal("50.00")), ("out2", Decimal("50.00"))
    ]
    pro = _holders(tmp_path, history, "pro-rata", "pro")
    # Pro rata: out1 carries 150 x 100/200 = 75; custody 50 with 25 traced; +200 -> 250 with 25 traced;
    # out2 carries 60 x 25/250 = 6; 19 remain.
    assert pro.holders == {"aff:bank": Decimal("81.00"), "ex:custody": Decimal("19.00")}
    libr = _holders(tmp_path, history, "libr", "libr")
    # LIBR: the 100 clean go first, then 50 traced; 50 remain; the refill is not customer money;
    # out2 is paid from the 200 other money, so 50 remain traceable in custody.
    assert libr.holders == {"aff:bank": Decimal("50.00"), "ex:custody": Decimal("50.00")}
    assert libr.traced_in == fifo.traced_in == pro.traced_in == Decimal("100.00")


def test_trace_libr_classic_drawdown_below_traced_amount_and_refill(tmp_path):
    """The account holds only traced money (100); 80 leave; 50 other money arrives. Only 20 remain
    traceable there: the balance fell to 20, and a refill does not restore the customers' claim."""
    history = cast_events() + [
        ev.CreditLineGranted(id="cl", at=at(0), source=T, account="ex:aff", asset="USD", limit="1000"),
        ev.Deposit(id="cust", at=at(1), source=T, account="ex:cust", asset="USD", amount="100", landed="ex:custody"),
        ev.Withdrawal(id="draw", at=at(2), source=T, account="ex:aff", asset="USD", amount="80", paid_from="ex:custody", to="aff:bank"),
        ev.Deposit(id="refill", at=at(3), source=T, account="ex:aff", asset="USD", amount="50", landed="ex:custody"),
    ]
    for rule in ("libr", "fifo", "pro-rata"):
        result = _holders(tmp_path, history, rule, rule)
        assert result.holders == {"aff:bank": Decimal("80.00"), "ex:custody": Decimal("20.00")}, rule


def test_trace_follows_routed_deposits_through_loans_and_pledges(tmp_path):
    history = cast_events() + [
        ev.CreditLineGranted(id="cl", at=at(0), source=T, account="ex:aff", asset="USD", limit="1000"),
        ev.Deposit(id="routed", at=at(1), source=("S35",), account="ex:cust", asset="USD", amount="300", landed="aff:bank", owed_by="ex:aff"),
        ev.Transfer(id="seed", at=at(2), source=T, from_account="world:market", to_account="bank:vault", asset="USD", amount="1000"),
        ev.LoanOpened(id="loan", at=at(3), source=T, loan="L1", lender="bank", borrower="aff", asset="USD", principal="500", disbursed_from="bank:vault", disbursed_to="aff:bank"),
        ev.LoanRepaid(id="repay", at=at(4), source=("S30",), loan="L1", amount="500", paid_from="aff:bank", paid_to="bank:vault"),
    ]
    with make_log(tmp_path / "l.db", history) as log:
        libr = Investigation(log).trace(asset="USD", deposits_into="ex:cust", rule="libr")
        fifo = Investigation(log).trace(asset="USD", deposits_into="ex", rule="fifo")
    # aff:bank held 300 traced + 500 borrowed; repaying 500: LIBR spends the borrowed 500 first.
    assert libr.holders == {"aff:bank": Decimal("300.00")}
    # FIFO: the 300 traced arrived first, so the repayment carries all 300 to the lender.
    assert fifo.holders == {"bank:vault": Decimal("300.00")}
    assert [(f.event_id, f.from_node, f.to_node, f.amount, f.source) for f in fifo.flows] == [
        ("routed", "cust:external", "aff:bank", Decimal("300.00"), ("S35",)),  # the first hop
        ("repay", "aff:bank", "bank:vault", Decimal("300.00"), ("S30",)),
    ]


def test_trace_on_the_ftx_timeline_shows_where_fiat_deposits_went(tmp_path):
    db = tmp_path / "ftx.db"
    result = CliRunner().invoke(cli, ["append", "ftx-2022", "--db", str(db)])
    assert result.exit_code == 0, result.output
    out = CliRunner().invoke(cli, ["trace", "--db", str(db), "--asset", "USD", "--deposits-into", "ftx:customers", "--rule", "libr", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    # Every customer dollar of fiat was routed to Alameda's bank (fiat@); none sits with FTX.
    assert Decimal(data["traced_in"]) == Decimal("8000000000.00")
    assert not any(node.startswith("ftx:") for node in data["holders"])
    assert sum(Decimal(v) for v in data["holders"].values()) == Decimal("8000000000.00")
    # The first hops come from the customers' side and land at alameda:bank; after that only
    # Alameda's bank and the insiders move the money.
    assert {f["to_node"] for f in data["flows"] if f["from_node"] == "customers:external"} == {"alameda:bank"}
    assert {f["from_node"] for f in data["flows"]} <= {"customers:external", "alameda:bank", "insiders:holdings"}


# -- diff and tables --------------------------------------------------------------------------------------
def test_diff_names_changed_balances_prices_and_violations_with_their_events(tmp_path):
    history = cast_events() + [
        ev.Deposit(id="d1", at=at(1), source=T, account="ex:cust", asset="USD", amount="100", landed="ex:custody"),
        ev.PriceUpdated(id="p1", at=at(2), source=T, asset="BTC", quote="USD", price="20000"),
        ev.Deposit(id="routed", at=at(3), source=T, account="ex:cust", asset="USD", amount="40", landed="aff:bank", owed_by="ex:aff"),
        ev.PriceUpdated(id="p2", at=at(4), source=T, asset="BTC", quote="USD", price="15000"),
    ]
    with make_log(tmp_path / "l.db", history) as log:
        n = len(cast_events())
        d = Investigation(log).diff(n + 2, n + 4)
    changed = {(r["entity"], r["account"], r["asset"]): (r["before"], r["after"], r["events"]) for r in d.balances}
    assert ("ex", "custody", "USD") not in changed  # the routed money never reached custody
    assert changed[("ex", "cust", "USD")] == (Decimal("-100.00"), Decimal("-140.00"), ["routed"])
    assert changed[("aff", "bank", "USD")] == (Decimal("0.00"), Decimal("40.00"), ["routed"])
    assert d.prices == [{"asset": "BTC", "before": Decimal("20000"), "after": Decimal("15000")}]
    assert {(v["invariant"], v["subject"]) for v in d.opened} >= {("segregation", "ex/USD"), ("no-unauthorised-negative", "ex:aff/USD")}
    assert d.closed == []


def test_materialize_writes_exact_tables_that_agree_with_the_books(tmp_path):
    db = tmp_path / "l.db"
    result = CliRunner().invoke(cli, ["append", "small-example", "--db", str(db)])
    assert result.exit_code == 0
    before = db.read_bytes()
    result = CliRunner().invoke(cli, ["materialize", "--db", str(db)])
    assert result.exit_code == 0, result.output
    # The tables go into the derived file beside the log; the log itself is left as it was.
    assert db.read_bytes() == before
    conn = sqlite3.connect(tmp_path / "l.derived.db")
    with Log.open(db, readonly=True) as log:
        books = Investigation(log).as_of()
    rows = conn.execute("SELECT entity, account, asset, balance_minor, balance, scale FROM balances").fetchall()
    assert {(e, a, s): m for e, a, s, m, _, _ in rows} == dict(books.balances)
    assert all(Decimal(text) == ev.from_minor(m, scale) for _, _, _, m, text, scale in rows)
    # Per asset, postings sum to the final balances (in minor units, in Python, never SQL SUM on text).
    totals: dict = {}
    for e, a, s, delta in conn.execute("SELECT entity, account, asset, delta_minor FROM postings"):
        totals[(e, a, s)] = totals.get((e, a, s), 0) + delta
    assert {k: v for k, v in totals.items() if v} == dict(books.balances)
    violations = conn.execute("SELECT invariant, subject, seq, closed_seq FROM violations ORDER BY seq, invariant").fetchall()
    assert ("segregation", "venue/USD", 17, None) in violations
    assert ("own-token-concentration", "venue", 12, 20) in violations
    assert conn.execute("SELECT count(*) FROM prices").fetchone()[0] == 2
    # Rerunning rebuilds the same tables (not appended twice).
    CliRunner().invoke(cli, ["materialize", "--db", str(db)])
    assert conn.execute("SELECT count(*) FROM balances").fetchone()[0] == len(rows)


def test_cli_history_balances_diff_snapshot_export(tmp_path):
    db = str(tmp_path / "l.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["append", "small-example", "--db", db]).exit_code == 0
    snap = runner.invoke(cli, ["snapshot", "--db", db, "--every", "5"])
    assert snap.exit_code == 0 and "4 stored" in snap.output
    hist = runner.invoke(cli, ["history", "venue:fund", "--db", db, "--format", "csv"])
    assert hist.exit_code == 0
    assert hist.output.splitlines()[1:] and "-5000000.00" in hist.output
    bal = runner.invoke(cli, ["balances", "--db", db, "--seq", "18", "--format", "json"])
    data = json.loads(bal.output)
    assert data["seq"] == 18
    sheet = data["balance_sheets"]["venue"]
    assert (sheet["total_assets"], sheet["total_liabilities"]) == ("11000000.00", "7000000.00")
    assert runner.invoke(cli, ["diff", "16", "22", "--db", db]).exit_code == 0
    exported = runner.invoke(cli, ["export", "--db", db, "--what", "violations", "--format", "csv"])
    assert exported.exit_code == 0 and exported.output.startswith("at,closed_at") is False
    assert "segregation" in exported.output
    bad = runner.invoke(cli, ["history", "nocolon", "--db", db])
    assert bad.exit_code == 2 and "Error:" in bad.output


# -- amounts beyond 64 bits in the derived tables ------------------------------------------------------
BIG_ETH = """
[[assets]]
asset = "ETH"
name = "Ether"
scale = 18
kind = "crypto"

[[events]]
id = "eth-1"
type = "deposit"
account = "ex:cust"
asset = "ETH"
amount = "9"
landed = "ex:custody"

[[events]]
id = "eth-2"
type = "deposit"
account = "ex:cust"
asset = "ETH"
amount = "9"
landed = "ex:custody"

[[events]]
id = "eth-3"
type = "deposit"
account = "ex:cust"
asset = "ETH"
amount = "0.000000000000000001"
landed = "ex:custody"
"""


def test_materialize_keeps_minor_units_beyond_64_bits_exact(tmp_path):
    """Two 9 ETH deposits at scale 18 are 9 x 10**18 minor units each (below 2**63 - 1 =
    9,223,372,036,854,775,807), but custody then holds 18 x 10**18, which SQLite INTEGER cannot.
    Plus one minor unit, so that a conversion through a float (REAL) would show: 18 x 10**18 + 1
    = 18,000,000,000,000,000,001 is not a double. Such values are stored as decimal TEXT, the
    ones that fit stay INTEGER (docs/forensics.md)."""
    path = write(tmp_path, BIG_ETH, name="eth")
    db = tmp_path / "eth.db"
    assert CliRunner().invoke(cli, ["append", str(path), "--db", str(db)]).exit_code == 0
    result = CliRunner().invoke(cli, ["materialize", "--db", str(db)])
    assert result.exit_code == 0, result.output
    nine = 9 * 10**18
    total = 2 * nine + 1  # 18,000,000,000,000,000,001 minor units = 18.000000000000000001 ETH
    assert total > 2**63 - 1
    conn = sqlite3.connect(tmp_path / "eth.derived.db")
    rows = {
        (e, a): (m, typeof, text)
        for e, a, m, typeof, text in conn.execute(
            "SELECT entity, account, balance_minor, typeof(balance_minor), balance FROM balances WHERE asset = 'ETH'"
        )
    }
    # Custody holds the total; the customer account is owed it (a liability, so negative in the
    # venue's books); the customer's side: a claim of +total and -total gone from outside.
    assert rows[("ex", "custody")] == (str(total), "text", "18.000000000000000001")
    assert rows[("ex", "cust")] == (str(-total), "text", "-18.000000000000000001")
    postings = conn.execute(
        "SELECT event_id, delta_minor, typeof(delta_minor), balance_after_minor, typeof(balance_after_minor) "
        "FROM postings WHERE asset = 'ETH' AND entity = 'ex' AND account = 'custody' ORDER BY seq"
    ).fetchall()
    assert postings == [
        ("eth-1", nine, "integer", nine, "integer"),  # fits: stays an INTEGER
        ("eth-2", nine, "integer", str(2 * nine), "text"),
        ("eth-3", 1, "integer", str(total), "text"),
    ]
    # Read back exactly: int() of either storage class gives the exact minor units.
    with Log.open(db, readonly=True) as log:
        books = Investigation(log).as_of()
    back = {(e, a, s): int(m) for e, a, s, m in conn.execute("SELECT entity, account, asset, balance_minor FROM balances")}
    assert back == dict(books.balances)
    sums: dict = {}
    for e, a, s, delta in conn.execute("SELECT entity, account, asset, delta_minor FROM postings"):
        sums[(e, a, s)] = sums.get((e, a, s), 0) + int(delta)
    assert {k: v for k, v in sums.items() if v} == dict(books.balances)
    # The exports carry the same exact integers (JSON numbers of any size, CSV digits).
    out = CliRunner().invoke(cli, ["export", "--db", str(db), "--what", "postings", "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    last = [json.loads(line) for line in out.output.splitlines() if '"eth-3"' in line and '"custody"' in line]
    assert [(r["delta_minor"], r["balance_after_minor"], r["balance_after"]) for r in last] == [(1, total, "18.000000000000000001")]


def test_trace_and_materialize_a_trillion_ether_exactly(tmp_path):
    """Amounts up to 10**38 - 1 minor units: the customers deposit 10**12 ETH and one wei
    (10**30 + 1 minor units, a single posting beyond 64 bits), the affiliate 2 x 10**12 ETH; the
    affiliate takes 1.5 x 10**12 ETH to its bank. By hand: FIFO sends the customers' deposit
    first, all of it (10**30 + 1 traced); LIBR sends the affiliate's own money, and all the
    customers' money stays in custody. No float could keep the last wei."""
    body = """
[[assets]]
asset = "ETH"
name = "Ether"
scale = 18
kind = "crypto"

[[events]]
id = "cust-in"
type = "deposit"
account = "ex:cust"
asset = "ETH"
amount = "1000000000000.000000000000000001"
landed = "ex:custody"

[[events]]
id = "aff-in"
type = "deposit"
account = "ex:aff"
asset = "ETH"
amount = "2000000000000"
landed = "ex:custody"

[[events]]
id = "taken"
type = "withdrawal"
account = "ex:aff"
asset = "ETH"
amount = "1500000000000"
paid_from = "ex:custody"
to = "aff:bank"
"""
    db = tmp_path / "big.db"
    assert CliRunner().invoke(cli, ["append", str(write(tmp_path, body, name="big")), "--db", str(db)]).exit_code == 0
    customers = Decimal("1000000000000.000000000000000001")
    with Log.open(db, readonly=True) as log:
        fifo = Investigation(log).trace(asset="ETH", deposits_into="ex:cust", rule="fifo")
        libr = Investigation(log).trace(asset="ETH", deposits_into="ex:cust", rule="libr")
    assert fifo.traced_in == libr.traced_in == customers
    assert fifo.holders == {"aff:bank": customers}
    assert libr.holders == {"ex:custody": customers}
    result = CliRunner().invoke(cli, ["materialize", "--db", str(db)])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(tmp_path / "big.derived.db")
    row = conn.execute(
        "SELECT delta_minor, typeof(delta_minor), delta FROM postings WHERE event_id = 'cust-in' AND account = 'custody'"
    ).fetchone()
    assert row == (str(10**30 + 1), "text", "1000000000000.000000000000000001")
    # Custody at the end: 10**30 + 1 + 2 x 10**30 - 1.5 x 10**30 = 1.5 x 10**30 + 1.
    (balance,) = conn.execute("SELECT balance_minor FROM balances WHERE asset = 'ETH' AND account = 'custody'").fetchone()
    assert int(balance) == 15 * 10**29 + 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "ftx:custdy"], "account: unknown account 'ftx:custdy' (did you mean 'ftx:custody'?)"),
        (["history", "ftx:custody", "--asset", "usdc"], "asset: unknown asset 'usdc' (did you mean 'USDC'?)"),
        (["trace", "--asset", "USDC", "--deposits-into", "fxt"], "deposits_into: unknown venue 'fxt' (did you mean 'ftx'?)"),
        (["trace", "--asset", "usdc", "--deposits-into", "ftx"], "asset: unknown asset 'usdc' (did you mean 'USDC'?)"),
        (["trace", "--asset", "USDC", "--deposits-into", "ftx:custody"], "'ftx:custody' is a customer-custody account; expected a customer account"),
    ],
)
def test_typos_in_names_are_errors_with_a_did_you_mean(ftx_db, args, message):
    """Before: '(no postings)', 'Tracing 0.00 USD' and an empty table, all with exit 0."""
    result = CliRunner().invoke(cli, [*args, "--db", str(ftx_db)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_implicit_accounts_of_known_entities_are_not_typos(ftx_db):
    result = CliRunner().invoke(cli, ["history", "alameda:claim:ftx:fiat-at", "--asset", "USD", "--db", str(ftx_db)])
    assert result.exit_code == 0, result.output
    assert "fiat-2022h1" in result.output


@pytest.fixture(scope="module")
def ftx_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("ftx") / "ledger.db"
    assert CliRunner().invoke(cli, ["append", "ftx-2022", "--db", str(path)]).exit_code == 0
    return path
