"""A deterministic synthetic history, W(N), for load tests and benchmarks.

``workload(n, accounts=10_000, seed=0)`` yields exactly ``n`` valid events, lazily (it never
holds the history): a venue with ``accounts`` customer accounts, deposits and withdrawals,
book transfers between customers, loans from outside lenders to a trading firm secured by the
venue's token, repayments, and price updates. The generator tracks balances so that every
event is well formed and, under the default policy, every standard invariant holds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import events as ev

START = datetime(2020, 1, 1, tzinfo=UTC)
SOURCE = ("W",)
LENDERS = 5


def _setup(accounts: int) -> list[ev.Event]:
    at = START
    out: list[ev.Event] = [
        ev.EntityRegistered(id="ent-ex", at=at, source=SOURCE, entity="ex", name="Synthetic Exchange", kind="exchange"),
        ev.EntityRegistered(id="ent-mm", at=at, source=SOURCE, entity="mm", name="Synthetic Market Maker", kind="trading_firm"),
        ev.EntityRegistered(id="ent-cust", at=at, source=SOURCE, entity="cust", name="Synthetic customers", kind="customer_pool"),
        ev.EntityRegistered(id="ent-world", at=at, source=SOURCE, entity="world", name="Outside world", kind="other"),
    ]
    out += [
        ev.EntityRegistered(id=f"ent-l{i}", at=at, source=SOURCE, entity=f"l{i}", name=f"Lender {i}", kind="lender")
        for i in range(LENDERS)
    ]
    out += [
        ev.AssetListed(id="asset-USD", at=at, source=SOURCE, asset="USD", name="US dollar", scale=2, kind="fiat"),
        ev.AssetListed(id="asset-BTC", at=at, source=SOURCE, asset="BTC", name="Bitcoin", scale=8, kind="crypto"),
        ev.AssetListed(id="asset-TOK", at=at, source=SOURCE, asset="TOK", name="Exchange token", scale=4, kind="exchange_token", issuer="ex"),
    ]
    opened = [("ex:custody", "customer-custody"), ("ex:treasury", "corporate"), ("mm:bank", "corporate"), ("world:market", "external")]
    opened += [(f"l{i}:vault", "corporate") for i in range(LENDERS)]
    out += [ev.AccountOpened(id=f"acct-{ref}", at=at, source=SOURCE, account=ref, purpose=p) for ref, p in opened]
    out += [
        ev.AccountOpened(id=f"acct-ex:c{i:06d}", at=at, source=SOURCE, account=f"ex:c{i:06d}", purpose="customer", holder="cust")
        for i in range(accounts)
    ]
    out += [
        ev.PriceUpdated(id="px-BTC-0", at=at, source=SOURCE, asset="BTC", quote="USD", price=Decimal("20000")),
        ev.PriceUpdated(id="px-TOK-0", at=at, source=SOURCE, asset="TOK", quote="USD", price=Decimal("25")),
        # The venue's own capital, so liquid reserves exceed what it owes customers after haircuts.
        ev.Transfer(id="seed-ex", at=at, source=SOURCE, from_account="world:market", to_account="ex:treasury", asset="USD", amount=Decimal("100000000000")),
        ev.Transfer(id="seed-mm", at=at, source=SOURCE, from_account="world:market", to_account="mm:bank", asset="TOK", amount=Decimal("1000000000")),
    ]
    out += [
        ev.Transfer(id=f"seed-l{i}", at=at, source=SOURCE, from_account="world:market", to_account=f"l{i}:vault", asset="USD", amount=Decimal("100000000000"))
        for i in range(LENDERS)
    ]
    return out


def setup_size(accounts: int = 10_000) -> int:
    """How many of the first events are declarations and seed money."""
    return len(_setup(accounts))


def workload(n: int, *, accounts: int = 10_000, seed: int = 0) -> Iterator[ev.Event]:
    """Yield exactly ``n`` events of the synthetic history (see the module docstring)."""
    rng = random.Random(seed)
    emitted = 0
    for declared in _setup(accounts):
        if emitted == n:
            return
        yield declared
        emitted += 1
    balances: dict[tuple[int, str], int] = {}  # (account, asset) -> minor units
    scale = {"USD": 2, "BTC": 8}
    loans: list[tuple[str, int, int, Decimal]] = []  # (loan, outstanding cents, lender, TOK pledged)
    prices = {"BTC": 2_000_000, "TOK": 2500}  # in cents
    at = START
    serial = 0
    while emitted < n:
        serial += 1
        at = at + timedelta(seconds=1)
        roll = rng.random()
        acct = rng.randrange(accounts)
        ref = f"ex:c{acct:06d}"
        eid = f"w{serial}"
        event: ev.Event
        if roll < 0.40:
            asset = "USD" if rng.random() < 0.7 else "BTC"
            minor = rng.randint(1, 10**6) if asset == "USD" else rng.randint(1, 10**7)
            balances[(acct, asset)] = balances.get((acct, asset), 0) + minor
            event = ev.Deposit(id=eid, at=at, source=SOURCE, account=ref, asset=asset, amount=ev.from_minor(minor, scale[asset]), landed="ex:custody")
        elif roll < 0.65:
            asset = "USD" if rng.random() < 0.7 else "BTC"
            have = balances.get((acct, asset), 0)
            if have == 0:
                continue
            minor = rng.randint(1, have)
            balances[(acct, asset)] = have - minor
            event = ev.Withdrawal(id=eid, at=at, source=SOURCE, account=ref, asset=asset, amount=ev.from_minor(minor, scale[asset]), paid_from="ex:custody")
        elif roll < 0.85:
            asset = "USD" if rng.random() < 0.7 else "BTC"
            have = balances.get((acct, asset), 0)
            other = rng.randrange(accounts)
            if have == 0 or other == acct:
                continue
            minor = rng.randint(1, have)
            balances[(acct, asset)] = have - minor
            balances[(other, asset)] = balances.get((other, asset), 0) + minor
            event = ev.Transfer(id=eid, at=at, source=SOURCE, from_account=ref, to_account=f"ex:c{other:06d}", asset=asset, amount=ev.from_minor(minor, scale[asset]))
        elif roll < 0.90:
            asset = rng.choice(("BTC", "TOK"))
            # A bounded random walk (+-2%, kept within 80%..125% of the start) so that
            # collateral pledged at 4x stays above the margin.
            base = 2_000_000 if asset == "BTC" else 2500
            step = prices[asset] * rng.randint(-200, 200) // 10_000
            prices[asset] = min(max(prices[asset] + step, base * 8 // 10), base * 5 // 4)
            event = ev.PriceUpdated(id=eid, at=at, source=SOURCE, asset=asset, quote="USD", price=ev.from_minor(prices[asset], 2))
        elif roll < 0.95 or not loans:
            if len(loans) >= 200 or emitted + 2 > n:
                continue
            lender = rng.randrange(LENDERS)
            cents = rng.randint(10**6, 10**9)
            loan = f"loan{serial}"
            # Collateral worth four times the principal at the starting TOK price.
            tok = (Decimal(cents * 4) / Decimal(2500)).quantize(Decimal(1))
            loans.append((loan, cents, lender, tok))
            yield ev.LoanOpened(id=eid, at=at, source=SOURCE, loan=loan, lender=f"l{lender}", borrower="mm", asset="USD", principal=ev.from_minor(cents, 2), disbursed_from=f"l{lender}:vault", disbursed_to="mm:bank")
            emitted += 1
            event = ev.CollateralPledged(id=f"{eid}-c", at=at, source=SOURCE, loan=loan, asset="TOK", amount=tok, from_account="mm:bank")
        else:
            if emitted + 2 > n:
                continue
            index = rng.randrange(len(loans))
            loan, cents, lender, tok = loans[index]
            pay = cents if rng.random() < 0.5 else rng.randint(1, cents)
            yield ev.LoanRepaid(id=eid, at=at, source=SOURCE, loan=loan, amount=ev.from_minor(pay, 2), paid_from="mm:bank", paid_to=f"l{lender}:vault")
            emitted += 1
            if pay < cents:
                loans[index] = (loan, cents - pay, lender, tok)
                continue
            loans.pop(index)
            event = ev.CollateralReleased(id=f"{eid}-r", at=at, source=SOURCE, loan=loan, asset="TOK", amount=tok, to_account="mm:bank")
        yield event
        emitted += 1
