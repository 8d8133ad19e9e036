"""Hypothesis strategies for the foundation layer: every event type, and small valid histories.

Self-contained on purpose (it depends only on the vocabulary, ``events``, and on Hypothesis), so
that it can grow into the public testing kit:

- :func:`event_of` / :func:`any_event`: one event of a type (or of any type) with valid field
  values. References are not checked against a history: these are for the codec and storage.
- :func:`histories`: whole histories that the log accepts: entities, assets (with scales) and
  accounts declared first, then deposits, withdrawals, transfers, loans, repayments, pledges,
  releases and prices that only refer to what was declared, amounts within each asset's scale,
  repayments within what is outstanding and releases within what is pledged.
- :func:`base_history` and :func:`deposit`: a fixed small cast and deposits into it, for tests
  that need a history but no randomness (concurrency, tamper).
- :func:`to_jsonl` / :func:`to_toml`: write events as a timeline file the loader reads back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

import events as ev

START = datetime(2022, 1, 1, tzinfo=UTC)
SOURCE = ("S",)

# -- field values ---------------------------------------------------------------------------------
# Letters, digits, punctuation, symbols and combining marks: no controls, no separators, no
# surrogates. Identifiers are words of these joined by single spaces (never at the edges).
_ID_CATEGORIES = (
    "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Nd", "Nl", "No",
    "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So",
)


def identifiers(*, colon: bool = True, max_words: int = 2) -> st.SearchStrategy[str]:
    """Valid identifiers (any script, inner spaces, combining marks); ``colon=False`` for entities."""
    chars = st.characters(
        categories=_ID_CATEGORIES, exclude_characters="" if colon else ":", max_codepoint=0x2FFFF
    )
    word = st.text(chars, min_size=1, max_size=8)
    return st.lists(word, min_size=1, max_size=max_words).map(" ".join)


def account_refs() -> st.SearchStrategy[str]:
    """``entity:account`` references."""
    return st.builds(lambda e, a: f"{e}:{a}", identifiers(colon=False), identifiers())


def free_texts(*, min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Human text: anything but NUL and lone surrogates (controls, U+2028, NEL included)."""
    chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
    return st.text(chars, min_size=min_size, max_size=max_size)


_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def instants() -> st.SearchStrategy[datetime]:
    """Timezone-aware instants anywhere in years 1..9999, any offset, with microseconds."""
    return st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_OFFSETS
    )


def amounts(*, scale: int | None = None, max_minor: int = ev.MAX_MINOR) -> st.SearchStrategy[Decimal]:
    """Strictly positive exact amounts; at most ``scale`` decimal places (any of 0..18 if None)."""
    scales = st.just(scale) if scale is not None else st.integers(0, 18)
    return st.builds(ev.from_minor, st.integers(1, max_minor), scales)


def non_negative_amounts() -> st.SearchStrategy[Decimal]:
    return st.just(Decimal(0)) | amounts(max_minor=10**15)


def signed_amounts() -> st.SearchStrategy[Decimal]:
    return st.builds(lambda a, neg: -a if neg else a, non_negative_amounts(), st.booleans())


def prices() -> st.SearchStrategy[Decimal]:
    """Positive prices within the vocabulary's precision (<= 28 digits, <= 18 places)."""
    return st.builds(ev.from_minor, st.integers(1, 10**20), st.integers(0, 8))


def sources() -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(identifiers(max_words=1), min_size=1, max_size=3, unique=True).map(tuple)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


# -- one event of each type -----------------------------------------------------------------------
def _common() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "id": identifiers(),
        "at": instants(),
        "source": sources(),
        "note": _maybe(free_texts()),
    }


def _specific(type_name: str) -> dict[str, st.SearchStrategy[Any]]:
    ids, refs, amount = identifiers(), account_refs(), amounts()
    return {
        "entity_registered": {"entity": identifiers(colon=False), "name": free_texts(min_size=1), "kind": st.sampled_from(ev.ENTITY_KINDS), "group": _maybe(ids)},
        "asset_listed": {"asset": ids, "name": free_texts(min_size=1), "scale": st.integers(0, 18), "kind": st.sampled_from(ev.ASSET_KINDS), "issuer": _maybe(ids)},
        "account_opened": {"account": refs, "purpose": st.sampled_from(ev.ACCOUNT_PURPOSES)},
        "deposit": {"account": refs, "asset": ids, "amount": amount, "landed": refs, "owed_by": _maybe(refs), "from_account": _maybe(refs)},
        "withdrawal": {"account": refs, "asset": ids, "amount": amount, "paid_from": refs, "to": _maybe(refs)},
        "transfer": {"from_account": refs, "to_account": refs, "asset": ids, "amount": amount},
        "loan_opened": {"loan": ids, "lender": ids, "borrower": ids, "asset": ids, "principal": amount, "disbursed_from": refs, "disbursed_to": refs, "rate": _maybe(non_negative_amounts()), "maturity": _maybe(instants())},
        "loan_repaid": {"loan": ids, "amount": amount, "paid_from": refs, "paid_to": refs},
        "loan_defaulted": {"loan": ids},
        "collateral_pledged": {"asset": ids, "amount": amount, "from_account": refs},
        "collateral_released": {"asset": ids, "amount": amount, "to_account": refs},
        "collateral_seized": {"asset": ids, "amount": amount, "to_account": refs, "credited": non_negative_amounts(), "credited_asset": _maybe(ids)},
        "price_updated": {"asset": ids, "quote": ids, "price": prices()},
        "tokens_minted": {"asset": ids, "amount": amount, "to_account": refs},
        "credit_line_granted": {"account": refs, "asset": ids, "limit": non_negative_amounts()},
        "withdrawals_halted": {"venue": ids},
        "withdrawals_resumed": {"venue": ids},
        "bankruptcy_filed": {"entity": ids, "court": _maybe(free_texts()), "case": _maybe(free_texts())},
        "disclosure": {"entity": ids, "title": free_texts(min_size=1)},
        "balance_asserted": {"entity": ids, "measure": st.sampled_from(ev.MEASURES), "expected": signed_amounts(), "tolerance": non_negative_amounts(), "asset": _maybe(ids), "account": _maybe(refs), "quote": _maybe(ids), "bound": _maybe(st.sampled_from(ev.BOUNDS))},
        "trade": {"asset": ids, "amount": amount, "price": prices(), "pay_asset": ids, "paid": _maybe(amount)},
        "holding_impaired": {"account": refs, "asset": ids, "book_price": non_negative_amounts()},
        "loan_impaired": {"loan": ids, "amount": amount},
        "deposit_insurance": {"insurer": ids, "venue": ids, "asset": ids, "limit": non_negative_amounts()},
        "insurer_payout": {"insurer": ids, "account": refs, "asset": ids, "amount": amount, "paid_from": refs, "to": _maybe(refs)},
        "resolution": {"entity": identifiers(colon=False), "authority": ids, "method": st.sampled_from(ev.RESOLUTION_METHODS), "to_entity": _maybe(ids)},
        "margin_call": {"amount": _maybe(amount), "due": _maybe(instants())},
    }[type_name]


@st.composite
def _event(draw: st.DrawFn, type_name: str) -> ev.Event:
    cls = ev.EVENT_TYPES[type_name]
    fields = draw(st.fixed_dictionaries({**_common(), **_specific(type_name)}))
    # Cross-field rules of the vocabulary, satisfied by construction.
    if type_name == "account_opened":
        if fields["purpose"] == "customer":
            fields["holder"] = draw(identifiers())
            fields["liability_class"] = draw(_maybe(identifiers(max_words=1)))
            fields["depositors"] = draw(_maybe(st.integers(1, 10**9)))
        elif fields["purpose"] != "external":
            fields["basis"] = draw(_maybe(st.sampled_from(ev.BASES)))
    elif type_name == "transfer" and fields["from_account"] == fields["to_account"]:
        fields["to_account"] += "-2"
    elif type_name == "loan_opened":
        if fields["lender"] == fields["borrower"]:
            fields["borrower"] += "-2"
        fields["pool"] = draw(_maybe(identifiers()))
        fields["liquidation_threshold"] = draw(_maybe(st.integers(1, 10**6).map(lambda n: ev.from_minor(n, 6))))
    elif type_name == "trade":
        seller, buyer = draw(st.lists(identifiers(colon=False), min_size=2, max_size=2, unique=True))
        for side, who in (("seller", seller), ("buyer", buyer)):
            fields[f"{side}_from"] = f"{who}:{draw(identifiers())}"
            fields[f"{side}_to"] = f"{who}:{draw(identifiers())}"
        if fields["asset"] == fields["pay_asset"]:
            fields["pay_asset"] += "-2"
    elif type_name == "deposit_insurance" and fields["insurer"] == fields["venue"]:
        fields["venue"] += "-2"
    elif type_name == "resolution":
        if fields["to_entity"] == fields["entity"]:
            fields["to_entity"] += "-2"
        if fields["to_entity"] is not None and draw(st.booleans()):
            names = draw(st.lists(identifiers(), min_size=1, max_size=3, unique=True))
            fields["accounts"] = [f"{fields['entity']}:{name}" for name in names]
    elif type_name == "margin_call":
        fields["loan" if draw(st.booleans()) else "pool"] = draw(identifiers())
    elif type_name == "price_updated" and fields["asset"] == fields["quote"]:
        fields["quote"] += "-2"
    elif type_name.startswith("collateral_"):
        target = draw(st.sampled_from(("loan", "account", "pool")))
        if target == "loan":
            fields["loan"] = draw(identifiers())
        elif target == "pool":
            fields["pool"] = draw(identifiers())
            if type_name == "collateral_seized":
                fields["credited"] = Decimal(0)
        else:
            fields["account"] = draw(account_refs())
            if type_name == "collateral_seized" and fields["credited"] and fields["credited_asset"] is None:
                fields["credited_asset"] = draw(identifiers())
    elif type_name == "balance_asserted":
        if fields["measure"] == "balance":
            fields["account"] = fields["account"] or draw(account_refs())
            fields["asset"] = fields["asset"] or draw(identifiers())
        elif fields["measure"] in ev.RATIO_MEASURES:
            fields["quote"] = None
            if fields["measure"] in ev.LOAN_MEASURES:
                fields["loan"] = draw(identifiers())
        else:
            fields["quote"] = fields["quote"] or draw(identifiers())
            if fields["measure"] == "holdings_value":
                fields["asset"] = fields["asset"] or draw(identifiers())
    return cls(**fields)


def event_of(type_name: str) -> st.SearchStrategy[ev.Event]:
    """Events of one type with valid field values (references are not checked)."""
    if type_name not in ev.EVENT_TYPES:
        raise ValueError(f"unknown event type {type_name!r}")
    return _event(type_name)


def any_event() -> st.SearchStrategy[ev.Event]:
    """Events of any type (see :func:`event_of`)."""
    return st.one_of([event_of(name) for name in sorted(ev.EVENT_TYPES)])


# -- a fixed cast, for tests that need a history but no randomness --------------------------------
def base_history(start: datetime = START) -> list[ev.Event]:
    """A venue ``ex`` with custody and treasury, a lender ``bank``, customers ``cust`` with an
    account at the venue, and USD (scale 2) and BTC (scale 8). Every event at ``start``."""
    common = {"at": start, "source": SOURCE}
    return [
        ev.EntityRegistered(id="entity:ex", entity="ex", name="Exchange", kind="exchange", group="g", **common),
        ev.EntityRegistered(id="entity:aff", entity="aff", name="Affiliate", kind="trading_firm", group="g", **common),
        ev.EntityRegistered(id="entity:cust", entity="cust", name="Customers", kind="customer_pool", **common),
        ev.EntityRegistered(id="entity:bank", entity="bank", name="Lender", kind="lender", **common),
        ev.AssetListed(id="asset:USD", asset="USD", name="US dollar", scale=2, kind="fiat", **common),
        ev.AssetListed(id="asset:BTC", asset="BTC", name="Bitcoin", scale=8, kind="crypto", **common),
        ev.AccountOpened(id="account:ex:custody", account="ex:custody", purpose="customer-custody", **common),
        ev.AccountOpened(id="account:ex:treasury", account="ex:treasury", purpose="corporate", **common),
        ev.AccountOpened(id="account:ex:cust", account="ex:cust", purpose="customer", holder="cust", **common),
        ev.AccountOpened(id="account:aff:bank", account="aff:bank", purpose="corporate", **common),
        ev.AccountOpened(id="account:bank:vault", account="bank:vault", purpose="corporate", **common),
    ]


def deposit(event_id: str, amount: str | int | Decimal = "1.00", *, minute: int = 1, asset: str = "USD") -> ev.Deposit:
    """A deposit into ``ex:cust`` (landing in ``ex:custody``) ``minute`` minutes after START."""
    return ev.Deposit(
        id=event_id, at=START + timedelta(minutes=minute), source=SOURCE, account="ex:cust",
        asset=asset, amount=amount, landed="ex:custody",
    )


def linear_history(count: int) -> list[ev.Event]:
    """:func:`base_history` then ``count`` deposits ``d1..dN`` one minute apart."""
    return base_history() + [deposit(f"d{i}", f"{i}.{i % 100:02d}", minute=i) for i in range(1, count + 1)]


# -- valid histories ------------------------------------------------------------------------------
_ASSET_NAMES = ("USD", "BTC", "ETH")
_ENTITY_NAMES = ("ex", "alpha", "beta", "gamma")


@st.composite
def histories(draw: st.DrawFn, *, min_events: int = 0, max_events: int = 30) -> list[ev.Event]:
    """A history the log accepts. See the module docstring.

    Entity ``ex`` is the venue; every other entity ``E`` holds a customer account ``ex:E`` and
    a corporate account ``E:main``. Times never go backwards (equal times happen). Overdrafts
    and collateral pledged without holding it are allowed: history may be bad, the log only
    refuses what is malformed or impossible (repaying more than outstanding, releasing more
    than pledged).
    """
    at = START
    out: list[ev.Event] = []
    serial = 0

    def emit(cls: type[ev.Event], *, event_id: str | None = None, **fields: Any) -> None:
        nonlocal at, serial
        at = at + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
        serial += 1
        out.append(cls(id=event_id or f"h{serial}", at=at, source=SOURCE, **fields))

    entities = list(_ENTITY_NAMES[: draw(st.integers(2, len(_ENTITY_NAMES)))])
    for name in entities:
        emit(ev.EntityRegistered, event_id=f"entity:{name}", entity=name, name=name.title(),
             kind="exchange" if name == "ex" else draw(st.sampled_from(ev.ENTITY_KINDS)))
    scales = {}
    for name in _ASSET_NAMES[: draw(st.integers(1, len(_ASSET_NAMES)))]:
        scales[name] = draw(st.integers(0, 8))
        emit(ev.AssetListed, event_id=f"asset:{name}", asset=name, name=name, scale=scales[name],
             kind=draw(st.sampled_from(ev.ASSET_KINDS)))
    holders = [e for e in entities if e != "ex"]
    holdings = ["ex:custody", *(f"{e}:main" for e in entities)]
    customer = [f"ex:{h}" for h in holders]
    emit(ev.AccountOpened, event_id="account:ex:custody", account="ex:custody", purpose="customer-custody")
    for e in entities:
        emit(ev.AccountOpened, event_id=f"account:{e}:main", account=f"{e}:main", purpose="corporate")
    for h in holders:
        emit(ev.AccountOpened, event_id=f"account:ex:{h}", account=f"ex:{h}", purpose="customer", holder=h)

    assets = sorted(scales)
    loans: dict[str, tuple[str, str, str, int]] = {}  # id -> (lender, borrower, asset, outstanding)
    pledged: dict[tuple[str, str], int] = {}  # (loan, asset) -> minor units
    kinds = ["deposit", "withdrawal", "transfer", "book_transfer", "loan", "repay", "pledge", "release"]
    if len(assets) > 1:
        kinds.append("price")
    for _ in range(draw(st.integers(min_events, max_events))):
        kind = draw(st.sampled_from(kinds))
        asset = draw(st.sampled_from(assets))
        scale = scales[asset]
        minor = draw(st.integers(1, 10**12))
        amount = ev.from_minor(minor, scale)
        if kind == "deposit":
            emit(ev.Deposit, account=draw(st.sampled_from(customer)), asset=asset, amount=amount, landed="ex:custody")
        elif kind == "withdrawal":
            emit(ev.Withdrawal, account=draw(st.sampled_from(customer)), asset=asset, amount=amount, paid_from="ex:custody")
        elif kind == "transfer":
            src, dst = draw(st.lists(st.sampled_from(holdings), min_size=2, max_size=2, unique=True))
            emit(ev.Transfer, from_account=src, to_account=dst, asset=asset, amount=amount)
        elif kind == "book_transfer" and len(customer) > 1:
            src, dst = draw(st.lists(st.sampled_from(customer), min_size=2, max_size=2, unique=True))
            emit(ev.Transfer, from_account=src, to_account=dst, asset=asset, amount=amount)
        elif kind == "loan":
            lender, borrower = draw(st.lists(st.sampled_from(entities), min_size=2, max_size=2, unique=True))
            loan = f"loan{len(loans) + 1}"
            loans[loan] = (lender, borrower, asset, minor)
            emit(ev.LoanOpened, loan=loan, lender=lender, borrower=borrower, asset=asset, principal=amount,
                 disbursed_from=f"{lender}:main", disbursed_to=f"{borrower}:main")
        elif kind == "repay":
            open_loans = sorted(k for k, v in loans.items() if v[3] > 0)
            if not open_loans:
                continue
            loan = draw(st.sampled_from(open_loans))
            lender, borrower, loan_asset, outstanding = loans[loan]
            paid = draw(st.integers(1, outstanding))
            loans[loan] = (lender, borrower, loan_asset, outstanding - paid)
            emit(ev.LoanRepaid, loan=loan, amount=ev.from_minor(paid, scales[loan_asset]),
                 paid_from=f"{borrower}:main", paid_to=f"{lender}:main")
        elif kind == "pledge":
            if not loans:
                continue
            loan = draw(st.sampled_from(sorted(loans)))
            pledged[(loan, asset)] = pledged.get((loan, asset), 0) + minor
            emit(ev.CollateralPledged, loan=loan, asset=asset, amount=amount, from_account=f"{loans[loan][1]}:main")
        elif kind == "release":
            held = sorted(k for k, v in pledged.items() if v > 0)
            if not held:
                continue
            loan, pledged_asset = draw(st.sampled_from(held))
            back = draw(st.integers(1, pledged[(loan, pledged_asset)]))
            pledged[(loan, pledged_asset)] -= back
            emit(ev.CollateralReleased, loan=loan, asset=pledged_asset, amount=ev.from_minor(back, scales[pledged_asset]),
                 to_account=f"{loans[loan][1]}:main")
        elif kind == "price":
            base, quote = draw(st.lists(st.sampled_from(assets), min_size=2, max_size=2, unique=True))
            emit(ev.PriceUpdated, asset=base, quote=quote, price=draw(prices()))
    return out


# -- timeline files -------------------------------------------------------------------------------
def to_jsonl(items: list[ev.Event]) -> str:
    """Canonical JSON Lines, as ``bankrun export`` writes them."""
    return "".join(ev.canonical_json(e) + "\n" for e in items)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # A JSON string is a TOML basic string, except that TOML wants DEL escaped too.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(items: list[ev.Event], *, title: str = "generated") -> str:
    """A TOML timeline holding ``items`` as ``[[events]]`` tables (declarations included)."""
    keys = sorted({key for e in items for key in e.source})
    lines = ["schema_version = 1", "", "[timeline]", f"title = {_toml_value(title)}", "", "[sources]"]
    lines += [f"{_toml_value(key)} = \"a source\"" for key in keys]
    for event in items:
        lines += ["", "[[events]]"]
        data = ev.to_dict(event)
        data.pop("v")
        lines += [f"{name} = {_toml_value(data[name])}" for name in ["id", "type", *sorted(set(data) - {"id", "type"})]]
    return "\n".join(lines) + "\n"
