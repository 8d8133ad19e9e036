"""Hypothesis strategies for events, prices, policies and valid histories.

- :func:`events` / :func:`event_of`: single events with valid field values (for codec and
  storage tests: references are not checked against any history).
- :func:`histories`: whole histories that a log accepts, over the standard cast
  (:data:`CAST`): entities, assets and accounts declared first, amounts within scale, loans
  repaid only while open, collateral released only while pledged, holdings never overdrawn.
  ``histories(general=True)`` adds the general model over :data:`GENERAL_CAST` (banks and
  lenders, deposit insurance, valuation bases, chained prices, trades, impairments, pools,
  margin calls, a resolution: every event type, entity kind, asset kind and basis).
- :func:`amounts`, :func:`prices`, :func:`policies`, :func:`instants`, :func:`identifiers`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

import events as ev
from ledger.policy import (
    CAPITAL_BASES,
    DEFAULT_HAIRCUTS,
    DEFAULT_RISK_WEIGHTS,
    DEFAULT_RUN_OFF,
    Policy,
)

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
    """Policies with thresholds, haircuts, run-off rates and risk weights in sensible ranges
    (both capital bases: risk-weighted and leverage)."""
    fraction = st.integers(0, 100).map(lambda p: Decimal(p) / 100)
    return st.builds(
        lambda rr, cov, own, rel, cuts, general: Policy(
            min_reserve_ratio=rr,
            min_collateral_coverage=cov,
            max_own_token_share=own,
            max_related_party_exposure=rel,
            haircuts=dict(zip(DEFAULT_HAIRCUTS, cuts)),
            **general,
        ),
        st.integers(50, 150).map(lambda p: Decimal(p) / 100),
        st.integers(50, 200).map(lambda p: Decimal(p) / 100),
        fraction,
        fraction,
        st.lists(fraction, min_size=len(DEFAULT_HAIRCUTS), max_size=len(DEFAULT_HAIRCUTS)),
        st.fixed_dictionaries(
            {
                "min_capital_ratio": st.integers(0, 30).map(lambda p: Decimal(p) / 100),
                "capital_basis": st.sampled_from(CAPITAL_BASES),
                "min_liquidity_coverage": st.integers(50, 200).map(lambda p: Decimal(p) / 100),
                "run_off": st.lists(fraction, min_size=len(DEFAULT_RUN_OFF), max_size=len(DEFAULT_RUN_OFF)).map(
                    lambda rates: dict(zip(DEFAULT_RUN_OFF, rates))
                ),
                "risk_weights": st.lists(
                    st.integers(0, 1250).map(lambda p: Decimal(p) / 100),
                    min_size=len(DEFAULT_RISK_WEIGHTS),
                    max_size=len(DEFAULT_RISK_WEIGHTS),
                ).map(lambda weights: dict(zip(DEFAULT_RISK_WEIGHTS, weights))),
            }
        ),
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
        "loan_opened": {"loan": ids, "lender": st.just("lender"), "borrower": st.just("borrower"), "asset": ids, "principal": amount, "disbursed_from": refs, "disbursed_to": refs, "rate": st.none() | st.integers(0, 100).map(lambda p: Decimal(p) / 100), "maturity": st.none() | instants(), "liquidation_threshold": st.none() | st.integers(1, 100).map(lambda p: Decimal(p) / 100), "pool": st.none() | ids},
        "loan_repaid": {"loan": ids, "amount": amount, "paid_from": refs, "paid_to": refs},
        "loan_defaulted": {"loan": ids},
        "collateral_pledged": {"asset": ids, "amount": amount, "from_account": refs, "loan": ids, "account": st.none()},
        "collateral_released": {"asset": ids, "amount": amount, "to_account": refs, "loan": st.none(), "account": refs},
        "collateral_seized": {"asset": ids, "amount": amount, "to_account": refs, "credited": st.integers(0, 10**6).map(Decimal), "credited_asset": st.none(), "loan": ids, "account": st.none()},
        "price_updated": {"asset": st.just("FTT"), "quote": st.sampled_from(("USD", "ETH", "BTC")), "price": prices()},
        "tokens_minted": {"asset": ids, "amount": amount, "to_account": refs},
        "credit_line_granted": {"account": refs, "asset": ids, "limit": st.integers(0, 10**12).map(Decimal)},
        "withdrawals_halted": {"venue": ids},
        "withdrawals_resumed": {"venue": ids},
        "bankruptcy_filed": {"entity": ids, "court": st.none() | st.just("D. Del."), "case": st.none() | st.just("22-11068")},
        "disclosure": {"entity": ids, "title": st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s))},
        "balance_asserted": {"entity": ids, "measure": st.sampled_from(ev.MEASURES), "expected": st.integers(-10**12, 10**12).map(Decimal), "tolerance": st.integers(0, 10**6).map(Decimal), "asset": st.none(), "account": st.none(), "quote": st.just("USD"), "bound": st.none() | st.sampled_from(ev.BOUNDS)},
        "trade": {"asset": st.just("BTC"), "amount": amount, "price": prices(), "pay_asset": st.just("USD"), "seller_from": st.just("s:from"), "seller_to": st.just("s:to"), "buyer_from": st.just("b:from"), "buyer_to": st.just("b:to"), "paid": st.none() | amounts(scale=2)},
        "holding_impaired": {"account": refs, "asset": ids, "book_price": st.integers(0, 10**8).map(lambda m: ev.from_minor(m, 2))},
        "loan_impaired": {"loan": ids, "amount": amount},
        "deposit_insurance": {"insurer": st.just("fdic"), "venue": ids.filter(lambda s: s != "fdic"), "asset": ids, "limit": st.integers(0, 10**7).map(Decimal)},
        "insurer_payout": {"insurer": ids, "account": refs, "asset": ids, "amount": amount, "paid_from": refs, "to": st.none() | refs},
        "resolution": {"entity": st.just("failed"), "authority": ids, "method": st.sampled_from(ev.RESOLUTION_METHODS), "to_entity": st.none() | st.just("bridge"), "accounts": st.none()},
        "margin_call": {"loan": st.none(), "pool": st.none(), "amount": st.none() | amount, "due": st.none() | instants()},
    }
    return {**base, **table[cls.type]}


def _fix_up(draw: st.DrawFn, type_name: str, kw: dict[str, Any]) -> dict[str, Any]:
    """Satisfy the vocabulary's cross-field rules (one of several targets, ratio measures...)."""
    if type_name == "account_opened":
        if draw(st.booleans()):
            kw.update(purpose="customer", holder="holder")
            kw["liability_class"] = draw(st.none() | st.sampled_from(("retail", "corporate", "wholesale", "operational")))
            kw["depositors"] = draw(st.none() | st.integers(1, 10**6))
            if kw["account"].startswith("holder:"):
                kw["account"] = "venue:" + kw["account"].partition(":")[2]
        elif kw["purpose"] != "external":
            kw["basis"] = draw(st.none() | st.sampled_from(ev.BASES))
    elif type_name == "loan_opened" and kw["pool"] is not None and kw["liquidation_threshold"] is None:
        kw["liquidation_threshold"] = Decimal("0.8")
    elif type_name.startswith("collateral_"):
        target = draw(st.sampled_from(("loan", "account", "pool")))
        kw.update(loan=None, account=None)
        kw[target] = draw(account_refs()) if target == "account" else draw(identifiers())
        if type_name == "collateral_seized":
            if target == "pool":
                kw["credited"] = Decimal(0)
            elif target == "account" and kw["credited"]:
                kw["credited_asset"] = "USD"
    elif type_name == "margin_call":
        kw["loan" if draw(st.booleans()) else "pool"] = draw(identifiers())
    elif type_name == "resolution" and kw["to_entity"] is not None and draw(st.booleans()):
        kw["accounts"] = [f"failed:{name}" for name in draw(st.lists(identifiers(), min_size=1, max_size=3, unique=True))]
    elif type_name == "balance_asserted":
        measure = kw["measure"]
        if measure == "balance":
            kw.update(account=draw(account_refs()), asset=draw(identifiers()), quote=None)
        elif measure in ev.RATIO_MEASURES:
            kw.update(quote=None, expected=ev.from_minor(draw(st.integers(-(10**4), 10**5)), 4), tolerance=Decimal("0.0001"))
            if measure in ev.LOAN_MEASURES:
                kw["loan"] = draw(identifiers())
        elif measure == "holdings_value":
            kw["asset"] = draw(identifiers())
    return kw


@st.composite
def _event_of(draw: st.DrawFn, type_name: str) -> ev.Event:
    cls = ev.EVENT_TYPES[type_name]
    kw = draw(st.fixed_dictionaries(_fields_for(cls)))
    return cls(**_fix_up(draw, type_name, kw))


def event_of(type_name: str) -> st.SearchStrategy[ev.Event]:
    """Events of one type with valid field values (references are not checked)."""
    return _event_of(type_name)


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
    general: bool = False,
) -> list[ev.Event]:
    """A valid history: the standard cast, then ``min_events..max_events`` money events.

    Every event is accepted by the log (references, scales, repayments within what is
    outstanding, releases within what is pledged) and holdings are never overdrawn, so
    ``conservation`` and ``no-unauthorised-negative`` hold. Other invariants may break: a
    history is allowed to be bad. ``routing`` allows deposits that land in the affiliate's
    bank (the fiat@ pattern).

    ``general`` adds the general model (:data:`GENERAL_CAST`, declared after the standard
    cast, with some entity kinds and account fields drawn): a bank and a lender taking
    insured and uninsured deposits (liability classes, pooled depositors), deposit insurance
    and insurer payouts, holdings carried at every basis, bonds, MBS, a loan book, securities
    and a staking token, prices in other quotes (chains, and now and then a cycle or a
    missing link), trades, holding and loan impairments, loans with liquidation thresholds
    and collateral pools, pledges to pools and to accounts, margin calls, mints, halts,
    disclosures, bankruptcy filings, at most one resolution, and one-sided and ratio
    assertions. Across examples every event type, entity kind, asset kind and basis appears,
    and every standard invariant but conservation and no-unauthorised-negative can break.
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
    gen: GeneralModel | None = None

    def emit(cls: type[ev.Event], **fields: Any) -> None:
        nonlocal serial, at
        serial += 1
        at = at + timedelta(minutes=1)
        out.append(cls(id=f"h{serial}", at=at, source=SOURCE, **fields))

    def amount(asset: str, most: int) -> tuple[int, Decimal]:
        minor = draw(st.integers(1, most))
        return minor, ev.from_minor(minor, SCALES[asset])

    if general:
        gen = GeneralModel(draw, emit, held, owed)
        out += gen.cast(START)
    while serial < n:
        if gen is not None and draw(st.booleans()):
            gen.step()
            continue
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


# -- the general model: banks, lenders, deposit insurance, valuation bases, pools -----------------
#: Declared after :data:`CAST` by ``histories(general=True)``. A kind given as a tuple is drawn
#: from it (so that, across examples, every entity kind is seen); ``bank`` is always a bank.
GENERAL_CAST: tuple[tuple[str, dict[str, Any]], ...] = (
    ("entity_registered", {"entity": "bk", "name": "A bank", "kind": "bank"}),
    ("entity_registered", {"entity": "bridge", "name": "Bridge or acquirer", "kind": ("bank", "lender", "custodian", "other")}),
    ("entity_registered", {"entity": "ins", "name": "Insurer and resolution authority", "kind": ("insurer", "resolution_authority", "central_bank", "regulator")}),
    ("entity_registered", {"entity": "fund", "name": "A fund", "kind": ("fund", "market_maker", "investor", "trading_firm")}),
    ("entity_registered", {"entity": "proto", "name": "A lending protocol", "kind": "protocol"}),
    ("asset_listed", {"asset": "ETH", "name": "Ether", "scale": 8, "kind": "crypto"}),
    ("asset_listed", {"asset": "STETH", "name": "Staked ether", "scale": 8, "kind": "staked"}),
    ("asset_listed", {"asset": "USDC", "name": "A stablecoin", "scale": 6, "kind": "stablecoin"}),
    ("asset_listed", {"asset": "TB", "name": "Treasury bond", "scale": 2, "kind": "bond"}),
    ("asset_listed", {"asset": "MBS", "name": "Agency MBS", "scale": 2, "kind": "mbs"}),
    ("asset_listed", {"asset": "LN", "name": "A loan book", "scale": 2, "kind": "loan"}),
    ("asset_listed", {"asset": "SEC", "name": "A security", "scale": 0, "kind": "security"}),
    ("account_opened", {"account": "bk:cash", "purpose": "corporate"}),
    ("account_opened", {"account": "bk:htm", "purpose": "corporate", "basis": "amortized_cost"}),
    ("account_opened", {"account": "bk:afs", "purpose": "corporate", "basis": "available_for_sale"}),
    ("account_opened", {"account": "bk:retail", "purpose": "customer", "holder": "cust", "liability_class": "retail", "depositors": (1, 10, 1000)}),
    ("account_opened", {"account": "bk:corp", "purpose": "customer", "holder": "fund", "liability_class": (None, "corporate", "operational", "wholesale", "brokered")}),
    ("account_opened", {"account": "bk:big", "purpose": "customer", "holder": "aff"}),
    ("account_opened", {"account": "bank:dep", "purpose": "customer", "holder": "cust", "liability_class": (None, "retail"), "depositors": (None, 50)}),
    ("account_opened", {"account": "cust:bank", "purpose": "corporate"}),
    ("account_opened", {"account": "fund:cash", "purpose": "corporate"}),
    ("account_opened", {"account": "fund:book", "purpose": "corporate", "basis": (None, "fair_value", "available_for_sale", "amortized_cost")}),
    ("account_opened", {"account": "proto:pool", "purpose": "corporate"}),
    ("account_opened", {"account": "ins:fund", "purpose": "corporate"}),
    ("account_opened", {"account": "bridge:cash", "purpose": "corporate"}),
    ("account_opened", {"account": "bridge:dep", "purpose": "customer", "holder": "fund", "depositors": (None, 20)}),
)
GENERAL_SCALES = {**SCALES, "ETH": 8, "STETH": 8, "USDC": 6, "TB": 2, "MBS": 2, "LN": 2, "SEC": 0}
#: Holdings accounts of the general model's parties (the first is where each one pays from).
_PARTY_ACCOUNTS = {
    "bk": ["bk:cash", "bk:htm", "bk:afs"],
    "bank": ["bank:vault"],
    "fund": ["fund:cash", "fund:book"],
    "proto": ["proto:pool"],
    "aff": ["aff:bank"],
    "cust": ["cust:bank"],
    "ins": ["ins:fund"],
    "ex": ["ex:treasury"],
    "bridge": ["bridge:cash"],
}
_HOLDER_ACCOUNT = {"cust": "cust:bank", "fund": "fund:cash", "aff": "aff:bank"}
_PRICED = ("BTC", "TOK", "ETH", "STETH", "USDC", "TB", "MBS", "LN", "SEC")
_GENERAL_KINDS = (
    "seed", "bank_deposit", "bank_deposit", "bank_deposit", "bank_withdraw", "bank_withdraw",
    "trade", "invest", "invest", "price", "price", "price", "impair_holding", "loan", "loan",
    "repay", "pledge", "pledge", "release", "seize", "default", "impair_loan", "insure", "payout",
    "margin_call", "resolve", "assert", "assert", "assert", "mint", "halt", "disclose",
)


class GeneralModel:
    """The general model's part of a history (see ``histories(general=True)``): declares
    :data:`GENERAL_CAST` (:meth:`cast`) and draws one of its events at a time (:meth:`step`),
    valid given what it has emitted. ``emit(cls, **fields)`` appends an event; ``held`` and
    ``owed`` are the history's tracked holdings and customer balances (minor units), shared
    with the caller's own events so that holdings are never overdrawn."""

    def __init__(self, draw: st.DrawFn, emit: Any, held: dict[tuple[str, str], int], owed: dict[tuple[str, str], int]) -> None:
        self.draw, self.emit, self.held, self.owed = draw, emit, held, owed
        self._ratio_turn = 0
        # customer account -> (venue, holder); grows when a resolution moves a deposit book
        self.deposits = {"bk:retail": ("bk", "cust"), "bk:corp": ("bk", "fund"), "bk:big": ("bk", "aff"), "bank:dep": ("bank", "cust"), "bridge:dep": ("bridge", "fund")}
        self.parties = {k: list(v) for k, v in _PARTY_ACCOUNTS.items()}
        self.cost_accounts = ["bk:htm", "bk:afs"]
        self.loans: dict[str, dict[str, Any]] = {}  # loan -> lender, borrower, asset, out, impaired, pool
        self.pledges: dict[tuple[str, str], int] = {}  # (target, asset) -> minor
        self.halted: set[str] = set()
        self.resolved = False
        self.quotes: dict[str, str] = {}  # asset -> the quote of its latest price here

    def cast(self, start: datetime) -> list[ev.Event]:
        out: list[ev.Event] = []
        for i, (type_name, template) in enumerate(GENERAL_CAST):
            fields = {k: self.draw(st.sampled_from(v)) if isinstance(v, tuple) else v for k, v in template.items()}
            fields = {k: v for k, v in fields.items() if v is not None}
            if fields.get("basis") is None and template.get("basis") is not None:
                pass  # drawn as omitted: fair value
            elif fields.get("basis") in ("available_for_sale", "amortized_cost") and fields["account"] not in self.cost_accounts:
                self.cost_accounts.append(fields["account"])
            out.append(ev.EVENT_TYPES[type_name](id=f"gcast-{i}", at=start, source=SOURCE, **fields))
        return out

    # -- helpers ------------------------------------------------------------------------------
    def _amount(self, asset: str, most: int) -> tuple[int, Decimal]:
        minor = self.draw(st.integers(1, most))
        return minor, ev.from_minor(minor, GENERAL_SCALES[asset])

    def _add(self, account: str, asset: str, minor: int) -> None:
        if account != "world:market":
            self.held[(account, asset)] = self.held.get((account, asset), 0) + minor

    def _have(self, account: str, asset: str) -> int:
        return 10**12 if account == "world:market" else self.held.get((account, asset), 0)

    def _assets_of(self, account: str) -> list[str]:
        return sorted(a for (acc, a), m in self.held.items() if acc == account and m > 0)

    def step(self) -> None:
        kind = self.draw(st.sampled_from(_GENERAL_KINDS))
        getattr(self, "_" + kind)()

    # -- event kinds ----------------------------------------------------------------------------
    def _seed(self, account: str | None = None) -> None:
        if account is None:
            account = self.draw(st.sampled_from(sorted(a for accounts in self.parties.values() for a in accounts)))
        asset = self.draw(st.sampled_from(sorted(GENERAL_SCALES)))
        # The bank's own capital is thin (its money comes from depositors): losses show.
        minor, amt = self._amount(asset, 10 ** (GENERAL_SCALES[asset] + (4 if account.startswith("bk:") else 7)))
        self._add(account, asset, minor)
        self.emit(ev.Transfer, from_account="world:market", to_account=account, asset=asset, amount=amt)

    def _bank_deposit(self, venue: str | None = None, asset: str | None = None) -> None:
        account = self.draw(st.sampled_from(sorted(a for a, (v, _) in self.deposits.items() if venue in (None, v))))
        venue, holder = self.deposits[account]
        if asset is None:
            asset = self.draw(st.sampled_from(("USD", "USD", "USDC")))
        source = self.draw(st.sampled_from((None, _HOLDER_ACCOUNT[holder])))
        have = 10 ** (GENERAL_SCALES[asset] + 7) if source is None else self._have(source, asset)
        if have <= 0:
            return
        minor, amt = self._amount(asset, have)
        landed = self.parties[venue][0]
        self.owed[(account, asset)] = self.owed.get((account, asset), 0) + minor
        self._add(landed, asset, minor)
        if source is not None:
            self.held[(source, asset)] -= minor
        self.emit(ev.Deposit, account=account, asset=asset, amount=amt, landed=landed, from_account=source)

    def _bank_withdraw(self) -> None:
        account = self.draw(st.sampled_from(sorted(self.deposits)))
        venue, holder = self.deposits[account]
        asset = self.draw(st.sampled_from(("USD", "USDC")))
        paid_from = self.parties[venue][0]
        have = min(self.owed.get((account, asset), 0), self._have(paid_from, asset))
        if have <= 0:
            return
        minor, amt = self._amount(asset, have)
        to = self.draw(st.sampled_from((None, _HOLDER_ACCOUNT[holder])))
        if venue not in self.halted:  # a halted venue refuses: nothing moves
            self.owed[(account, asset)] -= minor
            self.held[(paid_from, asset)] -= minor
            if to is not None:
                self._add(to, asset, minor)
        self.emit(ev.Withdrawal, account=account, asset=asset, amount=amt, paid_from=paid_from, to=to)

    def _trade(self) -> None:
        seller, buyer = self.draw(st.lists(st.sampled_from(("bk", "fund", "proto", "aff", "world", "bank")), min_size=2, max_size=2, unique=True))
        accounts = {**self.parties, "world": ["world:market"]}
        seller_from = self.draw(st.sampled_from(accounts[seller]))
        assets = sorted(GENERAL_SCALES) if seller == "world" else self._assets_of(seller_from)
        if not assets:
            return
        asset = self.draw(st.sampled_from(assets))
        pay_asset = self.draw(st.sampled_from(sorted(a for a in ("USD", "USDC", "ETH", "BTC") if a != asset)))
        buyer_from = self.draw(st.sampled_from(accounts[buyer]))
        budget = self._have(buyer_from, pay_asset)
        if budget <= 0:
            return
        scale, pay_scale = GENERAL_SCALES[asset], GENERAL_SCALES[pay_asset]
        if self.draw(st.booleans()):
            # amount x price exact at pay_asset's scale: no 'paid' needed
            step = 10 ** max(scale - pay_scale, 0)
            units = self._have(seller_from, asset) // step
            if units <= 0:
                return
            minor = self.draw(st.integers(1, min(units, 10**9))) * step
            price = Decimal(self.draw(st.integers(1, 10**4)))
            paid = None
            payment = ev.to_minor(ev.from_minor(minor, scale) * price, pay_scale)
        else:
            minor = self.draw(st.integers(1, self._have(seller_from, asset)))
            payment = self.draw(st.integers(1, budget))
            price = ev.from_minor(self.draw(st.integers(1, 10**12)), 6)
            paid = ev.from_minor(payment, pay_scale)
        if payment > budget:
            return
        seller_to = self.draw(st.sampled_from(accounts[seller]))
        buyer_to = self.draw(st.sampled_from(accounts[buyer]))
        if seller != "world":
            self.held[(seller_from, asset)] -= minor
        self._add(buyer_to, asset, minor)
        if buyer != "world":
            self.held[(buyer_from, pay_asset)] -= payment
        self._add(seller_to, pay_asset, payment)
        self.emit(ev.Trade, asset=asset, amount=ev.from_minor(minor, scale), price=price, pay_asset=pay_asset, paid=paid, seller_from=seller_from, seller_to=seller_to, buyer_from=buyer_from, buyer_to=buyer_to)

    def _invest(self) -> None:
        """A deposit-taker buys securities, a loan book or crypto from the market with its cash."""
        buyer = self.draw(st.sampled_from(("bk", "bk", "bank", "bridge")))
        cash = self.parties[buyer][0]
        pay_asset = self.draw(st.sampled_from(("USD", "USDC")))
        if self._have(cash, pay_asset) <= 0 and buyer in ("bk", "bank"):
            self._bank_deposit(buyer, pay_asset)  # with depositors' money
        budget = self._have(cash, pay_asset)
        if budget <= 0:
            return
        asset = self.draw(st.sampled_from(("TB", "MBS", "LN", "SEC", "ETH", "STETH")))
        to = self.draw(st.sampled_from(self.parties[buyer]))
        minor = self.draw(st.integers(1, 10 ** (GENERAL_SCALES[asset] + 6)))
        payment = self.draw(st.integers(1, budget))
        self.held[(cash, pay_asset)] -= payment
        self._add(to, asset, minor)
        self.emit(ev.Trade, asset=asset, amount=ev.from_minor(minor, GENERAL_SCALES[asset]), price=Decimal(1), pay_asset=pay_asset, paid=ev.from_minor(payment, GENERAL_SCALES[pay_asset]), seller_from="world:market", seller_to="world:market", buyer_from=cash, buyer_to=to)

    def _default(self) -> None:
        if not self.loans:
            self._loan()
        open_loans = sorted(k for k, v in self.loans.items() if v["out"] > 0)
        if open_loans:
            self.emit(ev.LoanDefaulted, loan=self.draw(st.sampled_from(open_loans)))

    def _price(self) -> None:
        asset = self.draw(st.sampled_from((*_PRICED, "USD")))
        others = sorted(a for a in (*_PRICED, "USD") if a != asset)
        # Mostly in the quote; else in another asset: a chain, or now and then a cycle or a
        # quote that has no price itself (a missing link).
        quote = self.draw(st.sampled_from(("USD", "USD", *others)))
        chained = sorted((a, q) for a, q in self.quotes.items() if q != "USD")
        if chained and self.draw(st.integers(0, 5)) == 0:
            quote, asset = self.draw(st.sampled_from(chained))  # back the other way: a cycle
        if quote == asset:
            return
        self.quotes[asset] = quote
        if asset == "STETH" and self.draw(st.booleans()):
            quote, price = "ETH", ev.from_minor(self.draw(st.integers(50, 110)), 2)
            self.quotes[asset] = quote
        else:
            price = ev.from_minor(self.draw(st.integers(1, 10**10)), 4)
        self.emit(ev.PriceUpdated, asset=asset, quote=quote, price=price)

    def _impair_holding(self) -> None:
        account = self.draw(st.sampled_from(self.cost_accounts))
        assets = self._assets_of(account) or sorted(GENERAL_SCALES)
        asset = self.draw(st.sampled_from(assets))
        book_price = ev.from_minor(self.draw(st.integers(0, 10**8)), 2)
        self.emit(ev.HoldingImpaired, account=account, asset=asset, book_price=book_price)

    def _loan(self) -> None:
        lender = self.draw(st.sampled_from(("bk", "bank", "proto")))
        borrower = self.draw(st.sampled_from(("fund", "aff")))
        source = self.parties[lender][0]
        assets = self._assets_of(source)
        if not assets:  # the lender is funded first: by depositors (the bank) or the market
            if lender == "bk":
                self._bank_deposit("bk")
            else:
                self._seed(source)
                self._seed(source)
            assets = self._assets_of(source)
        if not assets:
            return
        asset = self.draw(st.sampled_from(assets))
        minor, amt = self._amount(asset, self._have(source, asset))
        threshold = self.draw(st.none() | st.integers(1, 100).map(lambda p: Decimal(p) / 100))
        # A protocol's loans are mostly pooled (a DeFi position), in whatever it holds.
        pool = self.draw(st.sampled_from((None, f"P-{lender}-{borrower}", *(("P-proto-" + borrower,) * 2 if lender == "proto" else ()))))
        loan = f"G{len(self.loans) + 1}"
        dest = _HOLDER_ACCOUNT[borrower]
        self.loans[loan] = {"lender": lender, "borrower": borrower, "asset": asset, "out": minor, "impaired": 0, "pool": pool}
        self.held[(source, asset)] -= minor
        self._add(dest, asset, minor)
        self.emit(ev.LoanOpened, loan=loan, lender=lender, borrower=borrower, asset=asset, principal=amt, disbursed_from=source, disbursed_to=dest, liquidation_threshold=threshold, pool=pool)

    def _repay(self) -> None:
        open_loans = sorted(k for k, v in self.loans.items() if v["out"] > 0)
        if not open_loans:
            return
        loan = self.draw(st.sampled_from(open_loans))
        info = self.loans[loan]
        paid_from, paid_to = _HOLDER_ACCOUNT[info["borrower"]], self.parties[info["lender"]][0]
        have = min(info["out"], self._have(paid_from, info["asset"]))
        if have <= 0:
            return
        minor, amt = self._amount(info["asset"], have)
        info["out"] -= minor
        info["impaired"] = min(info["impaired"], info["out"])
        self.held[(paid_from, info["asset"])] -= minor
        self._add(paid_to, info["asset"], minor)
        self.emit(ev.LoanRepaid, loan=loan, amount=amt, paid_from=paid_from, paid_to=paid_to)

    def _targets(self) -> list[tuple[str, str, str]]:
        """(target key, event field, value) of what can be secured: loans, pools, ``ex:aff``."""
        found = [(loan, "loan", loan) for loan in sorted(self.loans)]
        found += [(f"pool:{p}", "pool", p) for p in sorted({v["pool"] for v in self.loans.values() if v["pool"]})]
        return [*found, ("ex:aff", "account", "ex:aff")]

    def _pledgor_account(self, target: str) -> str:
        if target == "ex:aff":
            return "aff:bank"
        borrower = target.split("-")[2] if target.startswith("pool:") else self.loans[target]["borrower"]
        return _HOLDER_ACCOUNT[borrower]

    def _pledge(self) -> None:
        if not self.loans:
            self._loan()
        target, field, value = self.draw(st.sampled_from(self._targets()))
        source = self._pledgor_account(target)
        assets = self._assets_of(source)
        if not assets:
            return
        asset = self.draw(st.sampled_from(assets))
        minor, amt = self._amount(asset, self._have(source, asset))
        self.held[(source, asset)] -= minor
        self.pledges[(target, asset)] = self.pledges.get((target, asset), 0) + minor
        self.emit(ev.CollateralPledged, asset=asset, amount=amt, from_account=source, **{field: value})

    def _pledged(self) -> tuple[str, str, str, str] | None:
        found = sorted(k for k, v in self.pledges.items() if v > 0)
        if not found:
            return None
        target, asset = self.draw(st.sampled_from(found))
        field, value = ("account", target) if target == "ex:aff" else ("pool", target[5:]) if target.startswith("pool:") else ("loan", target)
        return target, asset, field, value

    def _release(self) -> None:
        picked = self._pledged()
        if picked is None:
            return
        target, asset, field, value = picked
        minor, amt = self._amount(asset, self.pledges[(target, asset)])
        self.pledges[(target, asset)] -= minor
        to = self._pledgor_account(target)
        self._add(to, asset, minor)
        self.emit(ev.CollateralReleased, asset=asset, amount=amt, to_account=to, **{field: value})

    def _seize(self) -> None:
        picked = self._pledged()
        if picked is None:
            return
        target, asset, field, value = picked
        minor, amt = self._amount(asset, self.pledges[(target, asset)])
        self.pledges[(target, asset)] -= minor
        extra: dict[str, Any] = {}
        if field == "loan":
            info = self.loans[target]
            to = self.parties[info["lender"]][0]
            credited = self.draw(st.integers(0, info["out"]))
            info["out"] -= credited
            info["impaired"] = min(info["impaired"], info["out"])
            extra["credited"] = ev.from_minor(credited, GENERAL_SCALES[info["asset"]])
        elif field == "pool":
            to = self.parties[target.split("-")[1]][0]
        else:
            to = "ex:treasury"
            credit = self.draw(st.integers(0, max(-self.owed.get(("ex:aff", "USD"), 0), 0)))
            if credit:  # settles (part of) what the affiliate owes the venue, never more
                self.owed[("ex:aff", "USD")] = self.owed.get(("ex:aff", "USD"), 0) + credit
                extra.update(credited=ev.from_minor(credit, 2), credited_asset="USD")
        self._add(to, asset, minor)
        self.emit(ev.CollateralSeized, asset=asset, amount=amt, to_account=to, **{field: value}, **extra)

    def _impair_loan(self) -> None:
        if not self.loans:
            self._loan()
        room = sorted(k for k, v in self.loans.items() if v["out"] > v["impaired"])
        if not room:
            return
        loan = self.draw(st.sampled_from(room))
        info = self.loans[loan]
        minor, amt = self._amount(info["asset"], info["out"] - info["impaired"])
        info["impaired"] += minor
        self.emit(ev.LoanImpaired, loan=loan, amount=amt)

    def _insure(self) -> None:
        venue = self.draw(st.sampled_from(("bk", "bank", "bridge", "ex")))
        asset = self.draw(st.sampled_from(("USD", "USDC")))
        limit = ev.from_minor(self.draw(st.sampled_from((0, 25_000_000, 100_000, 10**9))), 2)
        self.emit(ev.DepositInsurance, insurer="ins", venue=venue, asset=asset, limit=limit)

    def _payout(self) -> None:
        candidates = sorted((acc, a) for (acc, a), m in self.owed.items() if m > 0 and acc in self.deposits)
        if not candidates:
            return
        account, asset = self.draw(st.sampled_from(candidates))
        if self._have("ins:fund", asset) <= 0:  # the insurer is funded first
            funding = 10 ** (GENERAL_SCALES[asset] + 8)
            self._add("ins:fund", asset, funding)
            self.emit(ev.Transfer, from_account="world:market", to_account="ins:fund", asset=asset, amount=ev.from_minor(funding, GENERAL_SCALES[asset]))
        have = min(self.owed[(account, asset)], self._have("ins:fund", asset))
        if have <= 0:
            return
        minor, amt = self._amount(asset, have)
        holder = self.deposits[account][1]
        to = self.draw(st.sampled_from((None, _HOLDER_ACCOUNT[holder])))
        self.owed[(account, asset)] -= minor
        self.held[("ins:fund", asset)] -= minor
        if to is not None:
            self._add(to, asset, minor)
        self.emit(ev.InsurerPayout, insurer="ins", account=account, asset=asset, amount=amt, paid_from="ins:fund", to=to)

    def _margin_call(self) -> None:
        if not self.loans:
            self._loan()
        targets = [t for t in self._targets() if t[1] != "account"]
        if not targets:
            return
        _, field, value = self.draw(st.sampled_from(targets))
        amount = self.draw(st.none() | st.integers(1, 10**9).map(lambda m: ev.from_minor(m, 2)))
        self.emit(ev.MarginCall, amount=amount, **{field: value})

    def _resolve(self) -> None:
        if self.resolved:
            return
        self.resolved = True
        method = self.draw(st.sampled_from(ev.RESOLUTION_METHODS))
        books = ["bk:cash", "bk:htm", "bk:afs", "bk:retail", "bk:corp", "bk:big"]
        moved: list[str] = []
        to_entity = None
        if method != "receivership" or self.draw(st.booleans()):
            to_entity = "bridge"  # takes over some accounts, or none (the deposit cover moves still)
            moved = self.draw(st.lists(st.sampled_from(books), min_size=0, max_size=len(books), unique=True))
        for ref in moved:
            new_ref = "bridge:" + ref.partition(":")[2]
            for table in (self.held, self.owed):
                for (account, asset), minor in list(table.items()):
                    if account == ref:
                        table[(new_ref, asset)] = table.get((new_ref, asset), 0) + minor
                        table[(ref, asset)] = 0
            if ref in self.deposits:
                self.deposits[new_ref] = ("bridge", self.deposits[ref][1])
            elif new_ref not in self.parties["bridge"]:
                self.parties["bridge"].append(new_ref)
                if ref in self.cost_accounts:
                    self.cost_accounts.append(new_ref)
        self.emit(ev.Resolution, entity="bk", authority="ins", method=method, to_entity=to_entity, accounts=moved or None)

    def _assert(self) -> None:
        family = self.draw(st.sampled_from(("ratio", "loan", "value")))
        if family == "ratio" and self._ratio_turn == 0:
            # The first ratio assertion of a history states every entity-level ratio, in turn:
            # Hypothesis favours a list's first elements, and which measures come up must not
            # depend on its version (every ratio measure is generated).
            for _ in range(len(ev.RATIO_MEASURES) - len(ev.LOAN_MEASURES)):
                self._assert_one(family)
            return
        self._assert_one(family)

    def _assert_one(self, family: str) -> None:
        entity = self.draw(st.sampled_from(("bk", "bank", "fund", "proto", "bridge", "ex")))
        if family == "ratio":
            ratios = [m for m in ev.RATIO_MEASURES if m not in ev.LOAN_MEASURES]
            measure = ratios[self._ratio_turn % len(ratios)]
            self._ratio_turn += 1
        elif family == "loan":
            measure = self.draw(st.sampled_from(ev.LOAN_MEASURES))
        else:
            measure = self.draw(st.sampled_from([m for m in ev.MEASURES if m not in ev.RATIO_MEASURES]))
        bound = self.draw(st.sampled_from((None, "equal", "at_least", "at_most")))
        fields: dict[str, Any] = {"entity": entity, "measure": measure, "bound": bound}
        if measure == "balance":
            account = self.draw(st.sampled_from(sorted(a for accounts in self.parties.values() for a in accounts)))
            asset = self.draw(st.sampled_from(sorted(GENERAL_SCALES)))
            scale = GENERAL_SCALES[asset]
            fields.update(account=account, asset=asset, expected=ev.from_minor(self.draw(st.integers(-(10**9), 10**9)), scale), tolerance=ev.from_minor(1, scale))
        elif measure in ev.RATIO_MEASURES:
            if measure in ev.LOAN_MEASURES:
                if not self.loans:
                    self._loan()
                if not self.loans:
                    return
                fields["loan"] = self.draw(st.sampled_from(sorted(self.loans)))
            fields.update(expected=ev.from_minor(self.draw(st.integers(-(10**4), 2 * 10**4)), 4), tolerance="0.0001")
        else:
            quote = self.draw(st.sampled_from(("USD", "USD", "ETH")))
            scale = GENERAL_SCALES[quote]
            fields.update(quote=quote, expected=ev.from_minor(self.draw(st.integers(-(10**12), 10**12)), scale), tolerance=ev.from_minor(100, scale))
            if measure == "holdings_value":
                fields["asset"] = self.draw(st.sampled_from(sorted(GENERAL_SCALES)))
        self.emit(ev.BalanceAsserted, **fields)

    def _mint(self) -> None:
        minor, amt = self._amount("TOK", 10**9)
        self._add("ex:treasury", "TOK", minor)
        self.emit(ev.TokensMinted, asset="TOK", amount=amt, to_account="ex:treasury")

    def _halt(self) -> None:
        # A halted venue resumes as often as another halts (drawn directly, not left to the
        # chance of drawing the same venue twice), so resumptions are generated at every seed.
        if self.halted:  # the next halt draw resumes it: no chance involved
            venue = sorted(self.halted)[0]
        else:
            venue = self.draw(st.sampled_from(("bk", "bank", "bridge", "ex")))
        if venue in self.halted:
            self.halted.discard(venue)
            self.emit(ev.WithdrawalsResumed, venue=venue)
        else:
            self.halted.add(venue)
            self.emit(ev.WithdrawalsHalted, venue=venue)

    def _disclose(self) -> None:
        entity = self.draw(st.sampled_from(("bk", "bank", "fund", "proto", "ex")))
        if self.draw(st.booleans()):
            self.emit(ev.BankruptcyFiled, entity=entity, court="D. Del.")
        else:
            self.emit(ev.Disclosure, entity=entity, title="A filing")
