"""Hypothesis strategies for events, prices, policies and valid histories.

- :func:`events` / :func:`event_of`: single events with valid field values (for codec and
  storage tests: references are not checked against any history).
- :func:`histories`: whole histories that a log accepts, over the standard cast
  (:data:`CAST`): entities, assets and accounts declared first, amounts within scale, loans
  repaid only while open, collateral released only while pledged, holdings never overdrawn.
- :func:`amounts`, :func:`prices`, :func:`policies`, :func:`instants`, :func:`identifiers`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

import events as ev
from ledger.policy import DEFAULT_HAIRCUTS, Policy

START = datetime(2022, 1, 1, tzinfo=UTC)
SOURCE = ("T",)

_ID_ALPHABET = st.characters(
    min_codepoint=33, max_codepoint=0x2FF, blacklist_categories=("Cc", "Cf", "Cs", "Zs")
)


def identifiers() -> st.SearchStrategy[str]:
    """Non-empty identifiers (letters, digits, punctuation, some accented letters)."""
    return st.text(_ID_ALPHABET, min_size=1, max_size=20)


def account_refs() -> st.SearchStrategy[str]:
    return st.builds(lambda a, b: f"{a}:{b}", identifiers().filter(lambda s: ":" not in s), identifiers())


def instants() -> st.SearchStrategy[datetime]:
    """Timezone-aware instants (any offset; events store them as UTC)."""
    offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    return st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
    )


def amounts(*, scale: int = 2, max_minor: int = 10**15) -> st.SearchStrategy[Decimal]:
    """Strictly positive exact amounts with at most ``scale`` decimal places."""
    return st.integers(1, max_minor).map(lambda m: ev.from_minor(m, scale))


def prices() -> st.SearchStrategy[Decimal]:
    """Positive exact prices with up to 8 decimal places."""
    return st.integers(1, 10**14).map(lambda m: ev.from_minor(m, 8))


def policies() -> st.SearchStrategy[Policy]:
    """Policies with thresholds and haircuts in sensible ranges."""
    fraction = st.integers(0, 100).map(lambda p: Decimal(p) / 100)
    return st.builds(
        lambda rr, cov, own, rel, cuts: Policy(
            min_reserve_ratio=rr,
            min_collateral_coverage=cov,
            max_own_token_share=own,
            max_related_party_exposure=rel,
            haircuts=dict(zip(DEFAULT_HAIRCUTS, cuts)),
        ),
        st.integers(50, 150).map(lambda p: Decimal(p) / 100),
        st.integers(50, 200).map(lambda p: Decimal(p) / 100),
        fraction,
        fraction,
        st.lists(fraction, min_size=len(DEFAULT_HAIRCUTS), max_size=len(DEFAULT_HAIRCUTS)),
    )


def _common() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "id": identifiers(),
        "at": instants(),
        "source": st.lists(identifiers(), min_size=1, max_size=3, unique=True),
        "note": st.none() | st.text(max_size=40).filter(lambda s: "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
    }


def _fields_for(cls: type[ev.Event]) -> dict[str, st.SearchStrategy[Any]]:
    ids = identifiers()
    refs = account_refs()
    amount = amounts(scale=8)
    base = _common()
    table: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "entity_registered": {"entity": ids, "name": st.text(min_size=1, max_size=30).filter(str.strip), "kind": st.sampled_from(ev.ENTITY_KINDS), "group": st.none() | ids},
        "asset_listed": {"asset": ids, "name": st.just("An asset"), "scale": st.integers(0, 18), "kind": st.sampled_from(ev.ASSET_KINDS), "issuer": st.none() | ids},
        "account_opened": {"account": refs, "purpose": st.sampled_from(("customer-custody", "corporate", "external")), "holder": st.none()},
        "deposit": {"account": refs, "asset": ids, "amount": amount, "landed": refs, "owed_by": st.none() | refs},
        "withdrawal": {"account": refs, "asset": ids, "amount": amount, "paid_from": refs, "to": st.none() | refs},
        "transfer": {"from_account": st.just("a:x"), "to_account": st.just("b:y"), "asset": ids, "amount": amount},
        "loan_opened": {"loan": ids, "lender": st.just("lender"), "borrower": st.just("borrower"), "asset": ids, "principal": amount, "disbursed_from": refs, "disbursed_to": refs, "rate": st.none() | st.integers(0, 100).map(lambda p: Decimal(p) / 100), "maturity": st.none() | instants()},
        "loan_repaid": {"loan": ids, "amount": amount, "paid_from": refs, "paid_to": refs},
        "loan_defaulted": {"loan": ids},
        "collateral_pledged": {"asset": ids, "amount": amount, "from_account": refs, "loan": ids, "account": st.none()},
        "collateral_released": {"asset": ids, "amount": amount, "to_account": refs, "loan": st.none(), "account": refs},
        "collateral_seized": {"asset": ids, "amount": amount, "to_account": refs, "credited": st.integers(0, 10**6).map(Decimal), "credited_asset": st.none(), "loan": ids, "account": st.none()},
        "price_updated": {"asset": st.just("FTT"), "quote": st.just("USD"), "price": prices()},
        "tokens_minted": {"asset": ids, "amount": amount, "to_account": refs},
        "credit_line_granted": {"account": refs, "asset": ids, "limit": st.integers(0, 10**12).map(Decimal)},
        "withdrawals_halted": {"venue": ids},
        "withdrawals_resumed": {"venue": ids},
        "bankruptcy_filed": {"entity": ids, "court": st.none() | st.just("D. Del."), "case": st.none() | st.just("22-11068")},
        "disclosure": {"entity": ids, "title": st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s))},
        "balance_asserted": {"entity": ids, "measure": st.just("total_assets"), "expected": st.integers(-10**12, 10**12).map(Decimal), "tolerance": st.integers(0, 10**6).map(Decimal), "asset": st.none(), "account": st.none(), "quote": st.just("USD")},
    }
    return {**base, **table[cls.type]}


def event_of(type_name: str) -> st.SearchStrategy[ev.Event]:
    """Events of one type with valid field values (references are not checked)."""
    cls = ev.EVENT_TYPES[type_name]
    return st.fixed_dictionaries(_fields_for(cls)).map(lambda kw: cls(**kw))


def events() -> st.SearchStrategy[ev.Event]:
    """Events of any type (see :func:`event_of`)."""
    return st.one_of([event_of(name) for name in sorted(ev.EVENT_TYPES)])


# -- valid histories over a standard cast ---------------------------------------------------------
CAST: tuple[tuple[str, dict[str, Any]], ...] = (
    ("entity_registered", {"entity": "ex", "name": "Exchange", "kind": "exchange", "group": "g"}),
    ("entity_registered", {"entity": "aff", "name": "Affiliate", "kind": "trading_firm", "group": "g"}),
    ("entity_registered", {"entity": "cust", "name": "Customers", "kind": "customer_pool"}),
    ("entity_registered", {"entity": "bank", "name": "Lender", "kind": "lender"}),
    ("entity_registered", {"entity": "world", "name": "Outside world", "kind": "other"}),
    ("asset_listed", {"asset": "USD", "name": "US dollar", "scale": 2, "kind": "fiat"}),
    ("asset_listed", {"asset": "BTC", "name": "Bitcoin", "scale": 8, "kind": "crypto"}),
    ("asset_listed", {"asset": "TOK", "name": "Exchange token", "scale": 4, "kind": "exchange_token", "issuer": "ex"}),
    ("account_opened", {"account": "ex:custody", "purpose": "customer-custody"}),
    ("account_opened", {"account": "ex:treasury", "purpose": "corporate"}),
    ("account_opened", {"account": "ex:cust", "purpose": "customer", "holder": "cust"}),
    ("account_opened", {"account": "ex:aff", "purpose": "customer", "holder": "aff"}),
    ("account_opened", {"account": "aff:bank", "purpose": "corporate"}),
    ("account_opened", {"account": "bank:vault", "purpose": "corporate"}),
    ("account_opened", {"account": "world:market", "purpose": "external"}),
)
SCALES = {"USD": 2, "BTC": 8, "TOK": 4}
CUSTOMER_ACCOUNTS = ("ex:cust", "ex:aff")


def cast_events(start: datetime = START) -> list[ev.Event]:
    """The declarations of the standard cast, all at ``start``."""
    return [
        ev.EVENT_TYPES[t](id=f"cast-{i}", at=start, source=SOURCE, **fields)
        for i, (t, fields) in enumerate(CAST)
    ]


@st.composite
def histories(
    draw: st.DrawFn,
    *,
    min_events: int = 0,
    max_events: int = 40,
    routing: bool = True,
) -> list[ev.Event]:
    """A valid history: the standard cast, then ``min_events..max_events`` money events.

    Every event is accepted by the log (references, scales, repayments within what is
    outstanding, releases within what is pledged) and holdings are never overdrawn, so
    ``conservation`` and ``no-unauthorised-negative`` hold. Other invariants may break: a
    history is allowed to be bad. ``routing`` allows deposits that land in the affiliate's
    bank (the fiat@ pattern).
    """
    out = cast_events()
    at = START
    held: dict[tuple[str, str], int] = {}  # (holdings account, asset) -> minor
    owed: dict[tuple[str, str], int] = {}  # (customer account, asset) -> holder balance
    loans: dict[str, int] = {}
    pledged: dict[str, int] = {}
    limits: dict[str, int] = {}  # credit line of ex:aff per asset
    n = draw(st.integers(min_events, max_events))
    serial = 0

    def emit(cls: type[ev.Event], **fields: Any) -> None:
        nonlocal serial, at
        serial += 1
        at = at + timedelta(minutes=1)
        out.append(cls(id=f"h{serial}", at=at, source=SOURCE, **fields))

    def amount(asset: str, most: int) -> tuple[int, Decimal]:
        minor = draw(st.integers(1, most))
        return minor, ev.from_minor(minor, SCALES[asset])

    while serial < n:
        kind = draw(st.sampled_from(("seed", "deposit", "withdraw", "transfer", "price", "loan", "repay", "pledge", "release", "credit")))
        asset = draw(st.sampled_from(("USD", "BTC", "TOK")))
        if kind == "seed":
            dest = draw(st.sampled_from(("ex:treasury", "aff:bank", "bank:vault")))
            minor, amt = amount(asset, 10**9)
            held[(dest, asset)] = held.get((dest, asset), 0) + minor
            emit(ev.Transfer, from_account="world:market", to_account=dest, asset=asset, amount=amt)
        elif kind == "deposit":
            account = draw(st.sampled_from(CUSTOMER_ACCOUNTS))
            minor, amt = amount(asset, 10**8)
            owed[(account, asset)] = owed.get((account, asset), 0) + minor
            if routing and account == "ex:cust" and draw(st.booleans()):
                debt = minor - owed.get(("ex:aff", asset), 0)
                if debt > limits.get(asset, 0):
                    # The affiliate's debt to the venue is covered by an explicit credit line.
                    limits[asset] = debt + draw(st.integers(0, 10**8))
                    emit(ev.CreditLineGranted, account="ex:aff", asset=asset, limit=ev.from_minor(limits[asset], SCALES[asset]))
                held[("aff:bank", asset)] = held.get(("aff:bank", asset), 0) + minor
                owed[("ex:aff", asset)] = owed.get(("ex:aff", asset), 0) - minor
                emit(ev.Deposit, account=account, asset=asset, amount=amt, landed="aff:bank", owed_by="ex:aff")
            else:
                held[("ex:custody", asset)] = held.get(("ex:custody", asset), 0) + minor
                emit(ev.Deposit, account=account, asset=asset, amount=amt, landed="ex:custody")
        elif kind == "withdraw":
            account = draw(st.sampled_from(CUSTOMER_ACCOUNTS))
            have = min(owed.get((account, asset), 0), held.get(("ex:custody", asset), 0))
            if have <= 0:
                continue
            minor, amt = amount(asset, have)
            owed[(account, asset)] -= minor
            held[("ex:custody", asset)] -= minor
            emit(ev.Withdrawal, account=account, asset=asset, amount=amt, paid_from="ex:custody")
        elif kind == "transfer":
            have = owed.get(("ex:cust", asset), 0)
            if have <= 0:
                continue
            minor, amt = amount(asset, have)
            owed[("ex:cust", asset)] -= minor
            owed[("ex:aff", asset)] = owed.get(("ex:aff", asset), 0) + minor
            emit(ev.Transfer, from_account="ex:cust", to_account="ex:aff", asset=asset, amount=amt)
        elif kind == "price":
            if asset == "USD":
                continue
            emit(ev.PriceUpdated, asset=asset, quote="USD", price=draw(prices()))
        elif kind == "loan":
            have = held.get(("bank:vault", "USD"), 0)
            if have <= 0:
                continue
            minor, amt = amount("USD", have)
            loan = f"loan{serial + 1}"
            loans[loan] = minor
            held[("bank:vault", "USD")] -= minor
            held[("aff:bank", "USD")] = held.get(("aff:bank", "USD"), 0) + minor
            emit(ev.LoanOpened, loan=loan, lender="bank", borrower="aff", asset="USD", principal=amt, disbursed_from="bank:vault", disbursed_to="aff:bank")
        elif kind == "repay":
            open_loans = sorted(k for k, v in loans.items() if v > 0)
            have = held.get(("aff:bank", "USD"), 0)
            if not open_loans or have <= 0:
                continue
            loan = draw(st.sampled_from(open_loans))
            minor, amt = amount("USD", min(have, loans[loan]))
            loans[loan] -= minor
            held[("aff:bank", "USD")] -= minor
            held[("bank:vault", "USD")] = held.get(("bank:vault", "USD"), 0) + minor
            emit(ev.LoanRepaid, loan=loan, amount=amt, paid_from="aff:bank", paid_to="bank:vault")
        elif kind == "pledge":
            have = held.get(("aff:bank", "TOK"), 0)
            if not loans or have <= 0:
                continue
            loan = draw(st.sampled_from(sorted(loans)))
            minor, amt = amount("TOK", have)
            pledged[loan] = pledged.get(loan, 0) + minor
            held[("aff:bank", "TOK")] -= minor
            emit(ev.CollateralPledged, loan=loan, asset="TOK", amount=amt, from_account="aff:bank")
        elif kind == "release":
            candidates = sorted(k for k, v in pledged.items() if v > 0)
            if not candidates:
                continue
            loan = draw(st.sampled_from(candidates))
            minor, amt = amount("TOK", pledged[loan])
            pledged[loan] -= minor
            held[("aff:bank", "TOK")] = held.get(("aff:bank", "TOK"), 0) + minor
            emit(ev.CollateralReleased, loan=loan, asset="TOK", amount=amt, to_account="aff:bank")
        else:
            debt = max(-owed.get(("ex:aff", asset), 0), 0)
            limits[asset] = debt + draw(st.integers(0, 10**10))
            emit(ev.CreditLineGranted, account="ex:aff", asset=asset, limit=ev.from_minor(limits[asset], SCALES[asset]))
    return out
