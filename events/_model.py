"""The vocabulary: every fact the ledger can record, as frozen attrs classes.

Events are facts, never decisions. Each one has ``id`` (stable, the idempotency key), ``at``
(when it took effect, UTC), ``source`` (citation keys: forensic provenance) and an optional
``note``. Field values are validated when the event is built; checks that need the history
(does the asset exist, is the amount within its scale, is the loan open) belong to the log.

Account references are ``"entity:account"``. Accounts are opened explicitly with
:class:`AccountOpened`, and their ``purpose`` says what the money in them is for:

- ``customer-custody``: holdings that an entity keeps for its customers (segregated);
- ``corporate``: the entity's own holdings (treasury, bank, trading);
- ``customer``: a customer's account *at a venue*. Its balance is what the venue owes the
  holder; a negative balance is what the holder owes the venue (FTX's "allow negative").
- ``external``: the world outside the model (a market, the public); it may go negative and is
  left out of the invariants. Opening positions come from it.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from events import _fields, _money
from events._errors import EventValueError

ENTITY_KINDS = (
    "exchange",
    "trading_firm",
    "lender",
    "customer_pool",
    "investor",
    "market_maker",
    "regulator",
    "other",
)
ASSET_KINDS = ("fiat", "stablecoin", "crypto", "exchange_token")
ACCOUNT_PURPOSES = ("customer-custody", "corporate", "customer", "external")
MEASURES = (
    "balance",
    "holdings_value",
    "total_assets",
    "total_liabilities",
    "equity",
    "customer_liabilities",
    "customer_shortfall",
)
VALUED_MEASURES = tuple(m for m in MEASURES if m != "balance")
MAX_SCALE = 18


def _conv(func: Any, name: str) -> Any:
    return functools.partial(func, field=name)


def _converted(func: Any, name: str, kind: str, **kw: Any) -> Any:
    return attrs.field(converter=_conv(func, name), metadata={"kind": kind}, **kw)


def _id(name: str, **kw: Any) -> Any:
    return attrs.field(converter=_conv(_fields.identifier, name), metadata={"kind": "id"}, **kw)


def _ref(name: str) -> Any:
    return attrs.field(converter=_conv(_fields.account_ref, name), metadata={"kind": "id"})


def _opt(kind: str, func: Any, name: str) -> Any:
    def convert(value: object) -> Any:
        return None if value is None else func(value, field=name)

    return attrs.field(default=None, converter=convert, metadata={"kind": kind})


def _amount(name: str = "amount") -> Any:
    return attrs.field(converter=_conv(_money.positive_amount, name), metadata={"kind": "amount"})


def _choice(name: str, choices: tuple[str, ...]) -> Any:
    def convert(value: object) -> str:
        return _fields.one_of(value, choices, field=name)

    return attrs.field(converter=convert, metadata={"kind": "id"})


@attrs.define(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries.

    Attributes:
        id: stable identifier, the idempotency key of the log.
        at: when the fact took effect (timezone-aware; stored as UTC).
        source: citation keys into the timeline's source table.
        note: free text: the record's own words, ranges, how a figure was chosen.
    """

    type: ClassVar[str] = ""

    id: str = _id("id")
    at: datetime = attrs.field(converter=_fields.utc_instant, metadata={"kind": "instant"})
    source: tuple[str, ...] = attrs.field(converter=_fields.sources, metadata={"kind": "sources"})
    note: str | None = _opt("text", _fields.free_text, "note")


def _opt_id(name: str) -> Any:
    return _opt("id", _fields.identifier, name)


def _opt_ref(name: str) -> Any:
    return _opt("id", _fields.account_ref, name)


@attrs.define(frozen=True, slots=True, kw_only=True)
class EntityRegistered(Event):
    """An entity enters the record: an exchange, a trading firm, a lender, a customer pool.

    Attributes:
        entity: short identifier used in account references (``ftx``, ``alameda``).
        name: legal or common name.
        kind: one of :data:`ENTITY_KINDS`.
        group: entities sharing a group are affiliates (related parties), e.g. ``sbf``.
    """

    type: ClassVar[str] = "entity_registered"
    entity: str = _id("entity")
    name: str = _converted(_fields.free_text, "name", "text")
    kind: str = _choice("kind", ENTITY_KINDS)
    group: str | None = _opt_id("group")


@attrs.define(frozen=True, slots=True, kw_only=True)
class AssetListed(Event):
    """An asset that amounts can be held in.

    Attributes:
        asset: ticker (``USD``, ``FTT``).
        scale: decimal places an amount may have; amounts finer than this are refused.
        kind: one of :data:`ASSET_KINDS`; it selects the valuation haircut.
        issuer: the entity that issued the asset, where it is self-issued (FTT: ``ftx``).
    """

    type: ClassVar[str] = "asset_listed"
    asset: str = _id("asset")
    name: str = _converted(_fields.free_text, "name", "text")
    scale: int = attrs.field(metadata={"kind": "int"})
    kind: str = _choice("kind", ASSET_KINDS)
    issuer: str | None = _opt_id("issuer")

    @scale.validator
    def _check_scale(self, _attribute: Any, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventValueError(f"scale: expected an integer, got {type(value).__name__}")
        if not 0 <= value <= MAX_SCALE:
            raise EventValueError(f"scale: must be between 0 and {MAX_SCALE}, got {value}")


@attrs.define(frozen=True, slots=True, kw_only=True)
class AccountOpened(Event):
    """An account of an entity.

    Attributes:
        account: ``entity:name``; the entity must be registered.
        purpose: one of :data:`ACCOUNT_PURPOSES`.
        holder: for ``customer`` accounts, the entity the venue owes.
    """

    type: ClassVar[str] = "account_opened"
    account: str = _ref("account")
    purpose: str = _choice("purpose", ACCOUNT_PURPOSES)
    holder: str | None = _opt_id("holder")

    def __attrs_post_init__(self) -> None:
        if self.purpose == "customer" and self.holder is None:
            raise EventValueError("holder: required for a customer account")
        if self.purpose != "customer" and self.holder is not None:
            raise EventValueError("holder: only customer accounts have a holder")


@attrs.define(frozen=True, slots=True, kw_only=True)
class Deposit(Event):
    """A customer deposit at a venue, and where the money physically landed.

    Attributes:
        account: the customer account at the venue that is credited.
        asset, amount: what was deposited.
        landed: the holdings account that received the money. It may belong to another entity
            (FTX customers' fiat landed in Alameda's bank accounts: "fiat@ftx.com").
        owed_by: when ``landed`` belongs to another entity, the customer account at the venue
            that records that entity's debt to the venue (FTX's "fiat@" sub-account).
        from_account: the holder's own holdings account the money came from (omit: it came
            from outside the model).
    """

    type: ClassVar[str] = "deposit"
    account: str = _ref("account")
    asset: str = _id("asset")
    amount: Decimal = _amount()
    landed: str = _ref("landed")
    owed_by: str | None = _opt_ref("owed_by")
    from_account: str | None = _opt_ref("from_account")


@attrs.define(frozen=True, slots=True, kw_only=True)
class Withdrawal(Event):
    """A customer asks a venue to pay out.

    Whether it is honoured is the books' decision: a withdrawal that the paying account cannot
    cover, or one after :class:`WithdrawalsHalted`, is recorded as not honoured.

    Attributes:
        account: the customer account at the venue that is debited.
        paid_from: the venue's holdings account that pays.
        to: the holder's own holdings account that receives (omit: leaves the model).
    """

    type: ClassVar[str] = "withdrawal"
    account: str = _ref("account")
    asset: str = _id("asset")
    amount: Decimal = _amount()
    paid_from: str = _ref("paid_from")
    to: str | None = _opt_ref("to")


@attrs.define(frozen=True, slots=True, kw_only=True)
class Transfer(Event):
    """Moves an amount between two accounts (holdings or customer accounts).

    Between customer accounts of one venue it is a book transfer; between holdings it moves
    money. Across entities it is a payment that changes both entities' equity.
    """

    type: ClassVar[str] = "transfer"
    from_account: str = _ref("from_account")
    to_account: str = _ref("to_account")
    asset: str = _id("asset")
    amount: Decimal = _amount()

    def __attrs_post_init__(self) -> None:
        if self.from_account == self.to_account:
            raise EventValueError("to_account: must differ from from_account")


@attrs.define(frozen=True, slots=True, kw_only=True)
class LoanOpened(Event):
    """A loan is disbursed.

    Attributes:
        loan: loan identifier, unique in the log.
        lender, borrower: entities.
        asset, principal: what was lent.
        disbursed_from: lender's holdings account; disbursed_to: borrower's holdings account.
        rate: annual interest rate as a decimal fraction (``0.05``), informational.
        maturity: when it falls due, informational.
    """

    type: ClassVar[str] = "loan_opened"
    loan: str = _id("loan")
    lender: str = _id("lender")
    borrower: str = _id("borrower")
    asset: str = _id("asset")
    principal: Decimal = _amount("principal")
    disbursed_from: str = _ref("disbursed_from")
    disbursed_to: str = _ref("disbursed_to")
    rate: Decimal | None = _opt("decimal", _money.non_negative_amount, "rate")
    maturity: datetime | None = _opt("instant", _fields.utc_instant, "maturity")

    def __attrs_post_init__(self) -> None:
        if self.lender == self.borrower:
            raise EventValueError("borrower: must differ from lender")


@attrs.define(frozen=True, slots=True, kw_only=True)
class LoanRepaid(Event):
    """(Part of) a loan's principal is paid back; never more than is outstanding."""

    type: ClassVar[str] = "loan_repaid"
    loan: str = _id("loan")
    amount: Decimal = _amount()
    paid_from: str = _ref("paid_from")
    paid_to: str = _ref("paid_to")


@attrs.define(frozen=True, slots=True, kw_only=True)
class LoanDefaulted(Event):
    """The borrower failed to pay; the loan stays outstanding until seized or written off."""

    type: ClassVar[str] = "loan_defaulted"
    loan: str = _id("loan")


def _exactly_one_target(event: Any) -> None:
    if (event.loan is None) == (event.account is None):
        raise EventValueError("loan: give exactly one of 'loan' or 'account' (what is secured)")


@attrs.define(frozen=True, slots=True, kw_only=True)
class CollateralPledged(Event):
    """Collateral is posted against a loan, or against a customer account's negative balance.

    Attributes:
        loan / account: what the collateral secures (exactly one).
        asset, amount: the collateral.
        from_account: the pledgor's holdings account the collateral leaves.
    """

    type: ClassVar[str] = "collateral_pledged"
    asset: str = _id("asset")
    amount: Decimal = _amount()
    from_account: str = _ref("from_account")
    loan: str | None = _opt_id("loan")
    account: str | None = _opt_ref("account")

    def __attrs_post_init__(self) -> None:
        _exactly_one_target(self)


@attrs.define(frozen=True, slots=True, kw_only=True)
class CollateralReleased(Event):
    """Pledged collateral returns to the pledgor (never more than is pledged)."""

    type: ClassVar[str] = "collateral_released"
    asset: str = _id("asset")
    amount: Decimal = _amount()
    to_account: str = _ref("to_account")
    loan: str | None = _opt_id("loan")
    account: str | None = _opt_ref("account")

    def __attrs_post_init__(self) -> None:
        _exactly_one_target(self)


@attrs.define(frozen=True, slots=True, kw_only=True)
class CollateralSeized(Event):
    """The secured party takes pledged collateral.

    Attributes:
        to_account: the secured party's holdings account that receives it.
        credited: how much of the debt the seizure settles; may be 0.
        credited_asset: the asset ``credited`` is in (a loan's own asset when omitted).
    """

    type: ClassVar[str] = "collateral_seized"
    asset: str = _id("asset")
    amount: Decimal = _amount()
    to_account: str = _ref("to_account")
    credited: Decimal = _converted(_money.non_negative_amount, "credited", "amount0", default=Decimal(0))
    credited_asset: str | None = _opt_id("credited_asset")
    loan: str | None = _opt_id("loan")
    account: str | None = _opt_ref("account")

    def __attrs_post_init__(self) -> None:
        _exactly_one_target(self)
        if self.account is not None and self.credited and self.credited_asset is None:
            raise EventValueError(
                "credited_asset: required when seizing against an account with credited > 0"
            )


@attrs.define(frozen=True, slots=True, kw_only=True)
class PriceUpdated(Event):
    """The market price of ``asset`` in ``quote`` units (exact decimal, > 0)."""

    type: ClassVar[str] = "price_updated"
    asset: str = _id("asset")
    quote: str = _id("quote")
    price: Decimal = _converted(_money.positive_price, "price", "price")

    def __attrs_post_init__(self) -> None:
        if self.asset == self.quote:
            raise EventValueError("quote: must differ from asset")


@attrs.define(frozen=True, slots=True, kw_only=True)
class TokensMinted(Event):
    """The issuer creates new units of its own token into one of its holdings accounts."""

    type: ClassVar[str] = "tokens_minted"
    asset: str = _id("asset")
    amount: Decimal = _amount()
    to_account: str = _ref("to_account")


@attrs.define(frozen=True, slots=True, kw_only=True)
class CreditLineGranted(Event):
    """The explicit, dated "allow negative" exemption for a customer account at a venue.

    Attributes:
        account: the customer account that may go negative.
        asset: the asset the limit is in.
        limit: how far below zero the balance may go (replaces any earlier limit; 0 revokes).
    """

    type: ClassVar[str] = "credit_line_granted"
    account: str = _ref("account")
    asset: str = _id("asset")
    limit: Decimal = _converted(_money.non_negative_amount, "limit", "amount0")


@attrs.define(frozen=True, slots=True, kw_only=True)
class WithdrawalsHalted(Event):
    """A venue stops paying withdrawals."""

    type: ClassVar[str] = "withdrawals_halted"
    venue: str = _id("venue")


@attrs.define(frozen=True, slots=True, kw_only=True)
class WithdrawalsResumed(Event):
    """A venue pays withdrawals again."""

    type: ClassVar[str] = "withdrawals_resumed"
    venue: str = _id("venue")


@attrs.define(frozen=True, slots=True, kw_only=True)
class BankruptcyFiled(Event):
    """An entity files for bankruptcy (or is put into provisional liquidation)."""

    type: ClassVar[str] = "bankruptcy_filed"
    entity: str = _id("entity")
    court: str | None = _opt("text", _fields.free_text, "court")
    case: str | None = _opt("text", _fields.free_text, "case")


@attrs.define(frozen=True, slots=True, kw_only=True)
class Disclosure(Event):
    """A public statement or document that moves no money (a tweet, a leak, a filing)."""

    type: ClassVar[str] = "disclosure"
    entity: str = _id("entity")
    title: str = _converted(_fields.free_text, "title", "text")


@attrs.define(frozen=True, slots=True, kw_only=True)
class BalanceAsserted(Event):
    """What the public record says a figure was at ``at``; replay compares the books with it.

    Attributes:
        entity: whose figure it is.
        measure: one of :data:`MEASURES`. ``balance`` is a quantity of ``asset`` in ``account``;
            the others are values in ``quote`` (``holdings_value`` for one ``asset``).
        expected: the figure as reported (may be negative for a balance or equity).
        tolerance: how far the books may differ and still match (same unit as ``expected``).
    """

    type: ClassVar[str] = "balance_asserted"
    entity: str = _id("entity")
    measure: str = _choice("measure", MEASURES)
    expected: Decimal = _converted(_money.signed_amount, "expected", "signed")
    tolerance: Decimal = _converted(_money.non_negative_amount, "tolerance", "amount0")
    asset: str | None = _opt_id("asset")
    account: str | None = _opt_ref("account")
    quote: str | None = _opt_id("quote")

    def __attrs_post_init__(self) -> None:
        if self.measure == "balance":
            if self.account is None or self.asset is None:
                raise EventValueError("account: a 'balance' assertion needs account and asset")
        elif self.quote is None:
            raise EventValueError(f"quote: a '{self.measure}' assertion needs a quote asset")
        if self.measure == "holdings_value" and self.asset is None:
            raise EventValueError("asset: a 'holdings_value' assertion needs an asset")


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        EntityRegistered,
        AssetListed,
        AccountOpened,
        Deposit,
        Withdrawal,
        Transfer,
        LoanOpened,
        LoanRepaid,
        LoanDefaulted,
        CollateralPledged,
        CollateralReleased,
        CollateralSeized,
        PriceUpdated,
        TokensMinted,
        CreditLineGranted,
        WithdrawalsHalted,
        WithdrawalsResumed,
        BankruptcyFiled,
        Disclosure,
        BalanceAsserted,
    )
}
