"""Fund tracing, properties for every rule (Hypothesis; profiles in ``tests/conftest.py``).

Random histories over the standard cast (``tests/scenario.py``) and a customer wallet, with
everything the tracer must follow: deposits from outside or from the holder's own account
(re-deposits), routed deposits (fiat@), withdrawals to the holder's account or outside,
transfers between holdings that may overdraw, money from and to the outside world, loans,
repayments, collateral pledged, released and seized. Properties, for fifo, pro-rata and libr:

- at every place, the traced amount is positive and never more than the place's balance in the
  books; only places hold traced money, and only the outside receives what left;
- the traced total is conserved: traced in = held at places + left to the outside;
- no flow carries more than the event moved;
- traced in is at least what came from outside, at most everything deposited;
- when every unit in the model came from traced deposits and nothing is overdrawn, every place
  holds exactly its balance traced, whatever the rule;
- across random trades of BTC for USD (either way, any payment, the market among the parties),
  per asset: traced in + received in trades = held + left, each place within its balance.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario import START, cast_events

import events as ev
from ledger.books import CUSTODY, EXTERNAL, HOLDINGS, PLEDGED
from ledger.forensics import Investigation
from ledger.store import Log

RULES = ("fifo", "pro-rata", "libr")
PLACES = (HOLDINGS, CUSTODY, PLEDGED)
T = ("T",)
HOLDINGS_ACCOUNTS = ("ex:custody", "ex:treasury", "aff:bank", "bank:vault", "cust:wallet")
OWN = {"ex:cust": "cust:wallet", "ex:aff": "aff:bank"}  # a customer account -> the holder's own holdings


def cents(minor: int) -> Decimal:
    return ev.from_minor(minor, 2)


@st.composite
def tracing_histories(draw, *, pure: bool = False, max_events: int = 30):
    """(events, amounts of the deposits into ex: by id, of those from outside by id).

    ``pure``: no money from the outside except customer deposits, no loans, no moves beyond the
    balance, so every unit in the model is traced when every deposit into ``ex`` is traced.
    """
    out = cast_events() + [
        ev.AccountOpened(id="account:cust:wallet", at=START, source=T, account="cust:wallet", purpose="corporate"),
        ev.CreditLineGranted(id="cl-aff", at=START, source=T, account="ex:aff", asset="USD", limit="10000000"),
        ev.CreditLineGranted(id="cl-cust", at=START, source=T, account="ex:cust", asset="USD", limit="10000000"),
    ]
    balance = dict.fromkeys(HOLDINGS_ACCOUNTS, 0)
    loans: dict[str, int] = {}
    pledged: dict[str, int] = {}
    deposits: dict[str, int] = {}
    from_outside: dict[str, int] = {}
    at = START
    amounts = st.sampled_from([1, 2, 50, 100, 1_000, 5_000, 10_000]) | st.integers(1, 20_000)

    def emit(cls, **fields):
        nonlocal at
        at = at + timedelta(minutes=1)
        out.append(cls(id=f"e{len(out)}", at=at, source=T, **fields))
        return out[-1].id

    def amount(most: int | None = None) -> int:
        if most is not None and most <= 0:
            return 0
        minor = draw(amounts)
        return minor if most is None else min(minor, most)

    kinds = ["deposit", "withdrawal", "transfer", "pledge", "release", "seize"]
    if not pure:
        kinds += ["seed", "spend", "loan", "repay"]
    for _ in range(draw(st.integers(1, max_events))):
        kind = draw(st.sampled_from(kinds))
        account = draw(st.sampled_from(sorted(OWN)))
        if kind == "deposit":
            how = draw(st.sampled_from(["outside", "own", "routed"]))
            if how == "own":
                minor = amount(balance[OWN[account]] if pure else None)
                if not minor:
                    continue
                balance[OWN[account]] -= minor
                landed = draw(st.sampled_from(["ex:custody", "ex:treasury"]))
                balance[landed] += minor
                deposits[emit(ev.Deposit, account=account, asset="USD", amount=cents(minor), landed=landed, from_account=OWN[account])] = minor
            elif how == "routed" and account == "ex:cust":
                minor = amount()
                balance["aff:bank"] += minor
                event_id = emit(ev.Deposit, account=account, asset="USD", amount=cents(minor), landed="aff:bank", owed_by="ex:aff")
                deposits[event_id] = from_outside[event_id] = minor
            else:
                minor = amount()
                landed = draw(st.sampled_from(["ex:custody", "ex:treasury"]))
                balance[landed] += minor
                event_id = emit(ev.Deposit, account=account, asset="USD", amount=cents(minor), landed=landed)
                deposits[event_id] = from_outside[event_id] = minor
        elif kind == "withdrawal":
            paid_from = draw(st.sampled_from(["ex:custody", "ex:treasury"]))
            minor = amount(balance[paid_from])  # the books refuse to overpay; do not ask
            if not minor:
                continue
            to = draw(st.sampled_from([None, OWN[account]]))
            balance[paid_from] -= minor
            if to is not None:
                balance[to] += minor
            emit(ev.Withdrawal, account=account, asset="USD", amount=cents(minor), paid_from=paid_from, to=to)
        elif kind == "transfer":
            src, dst = draw(st.lists(st.sampled_from(HOLDINGS_ACCOUNTS), min_size=2, max_size=2, unique=True))
            minor = amount(balance[src] if pure else None)  # may overdraw when not pure
            if not minor:
                continue
            balance[src] -= minor
            balance[dst] += minor
            emit(ev.Transfer, from_account=src, to_account=dst, asset="USD", amount=cents(minor))
        elif kind == "seed":
            dst = draw(st.sampled_from(HOLDINGS_ACCOUNTS))
            minor = amount()
            balance[dst] += minor
            emit(ev.Transfer, from_account="world:market", to_account=dst, asset="USD", amount=cents(minor))
        elif kind == "spend":
            src = draw(st.sampled_from(HOLDINGS_ACCOUNTS))
            minor = amount()
            balance[src] -= minor
            emit(ev.Transfer, from_account=src, to_account="world:market", asset="USD", amount=cents(minor))
        elif kind == "loan":
            minor = amount()
            loan = f"L{len(loans) + 1}"
            loans[loan] = minor
            balance["bank:vault"] -= minor
            balance["aff:bank"] += minor
            emit(ev.LoanOpened, loan=loan, lender="bank", borrower="aff", asset="USD", principal=cents(minor),
                 disbursed_from="bank:vault", disbursed_to="aff:bank")
        elif kind == "repay":
            open_loans = sorted(k for k, v in loans.items() if v > 0)
            if not open_loans:
                continue
            loan = draw(st.sampled_from(open_loans))
            minor = amount(loans[loan])
            loans[loan] -= minor
            balance["aff:bank"] -= minor
            balance["bank:vault"] += minor
            emit(ev.LoanRepaid, loan=loan, amount=cents(minor), paid_from="aff:bank", paid_to="bank:vault")
        elif kind == "pledge":
            # Collateral secures the affiliate's account at the venue (no loan needed).
            minor = amount(balance["aff:bank"] if pure else None)
            if not minor:
                continue
            balance["aff:bank"] -= minor
            pledged["ex:aff"] = pledged.get("ex:aff", 0) + minor
            emit(ev.CollateralPledged, account="ex:aff", asset="USD", amount=cents(minor), from_account="aff:bank")
        elif kind in ("release", "seize"):
            minor = amount(pledged.get("ex:aff", 0))
            if not minor:
                continue
            pledged["ex:aff"] -= minor
            if kind == "release":
                balance["aff:bank"] += minor
                emit(ev.CollateralReleased, account="ex:aff", asset="USD", amount=cents(minor), to_account="aff:bank")
            else:
                balance["ex:treasury"] += minor
                emit(ev.CollateralSeized, account="ex:aff", asset="USD", amount=cents(minor), to_account="ex:treasury")
    return out, deposits, from_outside


def _event_amount(event) -> Decimal:
    return event.principal if isinstance(event, ev.LoanOpened) else event.amount


def _check(log, history, deposits, from_outside, *, rule, cut):
    until = history[cut - 1].at
    result = Investigation(log).trace(asset="USD", deposits_into="ex", rule=rule, until=until)
    books = Investigation(log).as_of(seq=result.until_seq)
    assert result.until_seq == cut
    held, left = {}, {}
    for node, amount in result.holders.items():
        deficit = node.startswith("(deficit) ")
        entity, _, account = node.removeprefix("(deficit) ").partition(":")
        cls = books.classify(entity, account)[0]
        assert amount > 0, (rule, node, amount)
        if deficit:  # traced money that made good a negative balance of a place: it left
            assert cls in PLACES, node
            left[node] = amount
        elif cls == EXTERNAL:  # the world outside the model
            left[node] = amount
        else:
            assert cls in PLACES, node
            balance = books.amount(books.balances.get((entity, account, "USD"), 0), "USD")
            assert amount <= balance, (rule, node, amount, balance)
            held[node] = amount
    assert result.traced_in == sum(result.holders.values(), Decimal(0))
    assert (result.held, result.left) == (held, left)
    by_id = {e.id: e for e in history[:cut]}
    for flow in result.flows:
        assert Decimal(0) < flow.amount <= _event_amount(by_id[flow.event_id]), (rule, flow)
    ids = set(by_id)
    deposited = sum(m for i, m in deposits.items() if i in ids)
    outside = sum(m for i, m in from_outside.items() if i in ids)
    assert cents(outside) <= result.traced_in <= cents(deposited)
    return result, books


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(drawn=tracing_histories(), data=st.data())
def test_traced_money_is_capped_at_each_place_and_conserved(tmp_path_factory, drawn, data):
    history, deposits, from_outside = drawn
    n, first = len(history), len(cast_events()) + 3  # the money events start after the setup
    cut = data.draw(st.integers(max(first, n - 5), n), label="cut")
    with Log.open(tmp_path_factory.mktemp("tr") / "l.db", create=True) as log:
        log.append(history)
        for rule in RULES:
            _check(log, history, deposits, from_outside, rule=rule, cut=cut)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(drawn=tracing_histories(pure=True))
def test_when_all_money_is_traced_every_place_holds_its_balance_traced(tmp_path_factory, drawn):
    history, deposits, from_outside = drawn
    with Log.open(tmp_path_factory.mktemp("pure") / "l.db", create=True) as log:
        log.append(history)
        for rule in RULES:
            result, books = _check(log, history, deposits, from_outside, rule=rule, cut=len(history))
            positive = {
                f"{e}:{a}": books.amount(m, s)
                for (e, a, s), m in books.balances.items()
                if s == "USD" and m > 0 and books.classify(e, a)[0] in PLACES
            }
            assert result.held == positive, rule
            # Only customers' withdrawals leave, to their own side of the outside world.
            assert set(result.left) <= {"cust:external", "aff:external"}, rule
            assert not any(node.startswith("(deficit)") for node in result.holders)


# -- across trades: traced value continues in the asset received -----------------------------------
PLACES_OF = {
    "ex": ("ex:custody", "ex:treasury"),
    "aff": ("aff:bank",),
    "bank": ("bank:vault",),
    "world": ("world:market",),
}


@st.composite
def trading_histories(draw, max_events: int = 25):
    """Customer USD deposits into ``ex``, transfers of USD and BTC between holdings, and trades
    of BTC for USD (either way round, any payment, overdrafts allowed) between any two entities,
    the market among them."""
    out = cast_events()
    at = START
    amounts = st.sampled_from([1, 3, 7, 100, 10_000]) | st.integers(1, 50_000)

    def emit(cls, **fields):
        nonlocal at
        at = at + timedelta(minutes=1)
        out.append(cls(id=f"e{len(out)}", at=at, source=T, **fields))

    def units(asset: str, minor: int) -> Decimal:
        return ev.from_minor(minor, 2 if asset == "USD" else 8)

    for _ in range(draw(st.integers(1, max_events))):
        kind = draw(st.sampled_from(["deposit", "deposit", "transfer", "trade", "trade", "trade"]))
        if kind == "deposit":
            landed = draw(st.sampled_from(["ex:custody", "ex:treasury"]))
            emit(ev.Deposit, account="ex:cust", asset="USD", amount=units("USD", draw(amounts)), landed=landed)
        elif kind == "transfer":
            asset = draw(st.sampled_from(["USD", "BTC"]))
            src, dst = draw(st.lists(st.sampled_from([p for ps in PLACES_OF.values() for p in ps]), min_size=2, max_size=2, unique=True))
            emit(ev.Transfer, from_account=src, to_account=dst, asset=asset, amount=units(asset, draw(amounts)))
        else:
            seller, buyer = draw(st.lists(st.sampled_from(sorted(PLACES_OF)), min_size=2, max_size=2, unique=True))
            asset, pay = draw(st.sampled_from([("BTC", "USD"), ("USD", "BTC")]))
            emit(
                ev.Trade,
                asset=asset,
                amount=units(asset, draw(amounts)),
                price="1",
                pay_asset=pay,
                paid=units(pay, draw(amounts)),
                seller_from=draw(st.sampled_from(PLACES_OF[seller])),
                seller_to=draw(st.sampled_from(PLACES_OF[seller])),
                buyer_from=draw(st.sampled_from(PLACES_OF[buyer])),
                buyer_to=draw(st.sampled_from(PLACES_OF[buyer])),
            )
    return out


def _check_asset(books, asset: str, held: dict, left: dict, total: Decimal) -> None:
    for node, amount in held.items():
        entity, _, account = node.partition(":")
        assert books.classify(entity, account)[0] in PLACES, node
        assert Decimal(0) < amount <= books.amount(books.balances.get((entity, account, asset), 0), asset), (node, amount)
    for node, amount in left.items():
        assert amount > 0, node
        if not node.startswith("("):
            entity, _, account = node.partition(":")
            assert books.classify(entity, account)[0] == EXTERNAL, node
    assert sum(held.values(), Decimal(0)) + sum(left.values(), Decimal(0)) == total


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(history=trading_histories())
def test_traced_value_is_capped_and_conserved_per_asset_across_trades(tmp_path_factory, history):
    """Per asset: traced in (deposits, for USD) + received in trades = held + left (what was
    traded away included); each place holds at most its balance; every flow is positive and
    in its own asset."""
    with Log.open(tmp_path_factory.mktemp("trades") / "l.db", create=True) as log:
        log.append(history)
        books = Investigation(log).as_of()
        for rule in RULES:
            result = Investigation(log).trace(asset="USD", deposits_into="ex", rule=rule)
            _check_asset(books, "USD", result.held, result.left, result.traced_in + result.received)
            assert all(f.amount > 0 and f.asset == "USD" for f in result.flows)
            assert set(result.assets) <= {"BTC"}
            for name, other in result.assets.items():
                _check_asset(books, name, other.held, other.left, other.received)
                assert all(f.amount > 0 and f.asset == name for f in other.flows)
