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

#: What an entity is; ``ledger.kinds`` says which invariants apply to which kind.
ENTITY_KINDS = (
    "exchange",
    "custodian",
    "bank",
    "lender",
    "trading_firm",
    "fund",
    "market_maker",
    "investor",
    "protocol",
    "insurer",
    "resolution_authority",
    "central_bank",
    "regulator",
    "customer_pool",
    "other",
)
#: ``bond``: government or agency debt; ``mbs``: agency mortgage-backed securities; ``loan``:
#: a loan book carried as units (1 unit = 1 of principal) priced at its fair value per unit;
#: ``security``: other securities; ``staked``: a liquid staking token (stETH).
ASSET_KINDS = (
    "fiat",
    "stablecoin",
    "crypto",
    "exchange_token",
    "bond",
    "mbs",
    "loan",
    "security",
    "staked",
)
ACCOUNT_PURPOSES = ("customer-custody", "corporate", "customer", "external")
#: How a holdings account is carried (see docs/model.md, "Valuation bases").
BASES = ("fair_value", "available_for_sale", "amortized_cost")
MEASURES = (
    "balance",
    "holdings_value",
    "total_assets",
    "total_liabilities",
    "equity",
    "customer_liabilities",
    "customer_shortfall",
    "equity_book",
    "total_assets_book",
    "oci",
    "unrealised_loss",
    "insured_deposits",
    "uninsured_deposits",
    "capital_ratio",
    "leverage_ratio",
    "liquidity_coverage",
    "loan_health",
    "ltv",
)
#: Measures that are plain fractions (no quote asset): ``expected = "0.1205"`` is 12.05%.
RATIO_MEASURES = ("capital_ratio", "leverage_ratio", "liquidity_coverage", "loan_health", "ltv")
LOAN_MEASURES = ("loan_health", "ltv")
VALUED_MEASURES = tuple(m for m in MEASURES if m != "balance" and m not in RATIO_MEASURES)
BOUNDS = ("equal", "at_least", "at_most")
RESOLUTION_METHODS = ("receivership", "bridge_bank", "purchase_and_assumption")
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


def _opt_choice(name: str, choices: tuple[str, ...]) -> Any:
    return _opt("id", lambda value, field: _fields.one_of(value, choices, field=field), name)


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
        basis: for holdings (``corporate``, ``customer-custody``), how they are carried: one
            of :data:`BASES`; ``fair_value`` when omitted.
        liability_class: for ``customer`` accounts, the class whose run-off rate the policy's
            ``[run_off]`` table gives (``retail``, ``corporate``, ``wholesale``...).
        depositors: for ``customer`` accounts, how many depositors a pooled account stands
            for (deposit insurance covers up to ``depositors x limit`` of it); 1 when omitted.
    """

    type: ClassVar[str] = "account_opened"
    account: str = _ref("account")
    purpose: str = _choice("purpose", ACCOUNT_PURPOSES)
    holder: str | None = _opt_id("holder")
    basis: str | None = _opt_choice("basis", BASES)
    liability_class: str | None = _opt_id("liability_class")
    depositors: int | None = _opt("int", _fields.positive_int, "depositors")

    def __attrs_post_init__(self) -> None:
        if self.purpose == "customer" and self.holder is None:
            raise EventValueError("holder: required for a customer account")
        if self.purpose != "customer" and self.holder is not None:
            raise EventValueError("holder: only customer accounts have a holder")
        if self.basis is not None and self.purpose not in ("corporate", "customer-custody"):
            raise EventValueError("basis: only holdings accounts (corporate, customer-custody) have a basis")
        if self.purpose != "customer":
            if self.liability_class is not None:
                raise EventValueError("liability_class: only customer accounts have a liability class")
            if self.depositors is not None:
                raise EventValueError("depositors: only customer accounts stand for depositors")


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
        liquidation_threshold: a fraction in (0, 1]: the loan is healthy while its
            collateral's market value x threshold >= its debt (health factor = that / debt).
        pool: a collateral pool the loan shares with the borrower's other loans in it (a DeFi
            position): pledges to the pool secure all of them together.
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
    liquidation_threshold: Decimal | None = _opt("decimal", _money.fraction, "liquidation_threshold")
    pool: str | None = _opt_id("pool")

    def __attrs_post_init__(self) -> None:
        if self.lender == self.borrower:
            raise EventValueError("borrower: must differ from lender")
        if self.liquidation_threshold is not None and self.liquidation_threshold == 0:
            raise EventValueError("liquidation_threshold: must be above 0 (a fraction in (0, 1])")


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
    if (event.loan is not None) + (event.account is not None) + (event.pool is not None) != 1:
        raise EventValueError("loan: give exactly one of 'loan', 'account' or 'pool' (what is secured)")


@attrs.define(frozen=True, slots=True, kw_only=True)
class CollateralPledged(Event):
    """Collateral is posted against a loan, or against a customer account's negative balance.

    Attributes:
        loan / account / pool: what the collateral secures (exactly one): a loan, a customer
            account's negative balance, or a collateral pool shared by several loans.
        asset, amount: the collateral.
        from_account: the pledgor's holdings account the collateral leaves.
    """

    type: ClassVar[str] = "collateral_pledged"
    asset: str = _id("asset")
    amount: Decimal = _amount()
    from_account: str = _ref("from_account")
    loan: str | None = _opt_id("loan")
    account: str | None = _opt_ref("account")
    pool: str | None = _opt_id("pool")

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
    pool: str | None = _opt_id("pool")

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
    pool: str | None = _opt_id("pool")

    def __attrs_post_init__(self) -> None:
        _exactly_one_target(self)
        if self.pool is not None and self.credited:
            raise EventValueError(
                "credited: a seizure from a pool settles no loan by itself; repay or seize per loan"
            )
        if self.account is not None and self.credited and self.credited_asset is None:
            raise EventValueError(
                "credited_asset: required when seizing against an account with credited > 0"
            )


@attrs.define(frozen=True, slots=True, kw_only=True)
class PriceUpdated(Event):
    """The market price of ``asset`` in ``quote`` units (exact decimal, > 0).

    Any quote counts: a price in another asset (stETH in ETH) is chained through that asset's
    own price to the timeline's quote. An asset's latest price, in whatever quote, is the one
    in force.
    """

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
class Trade(Event):
    """One atomic exchange: the seller gives ``amount`` of ``asset`` for ``paid`` of ``pay_asset``.

    Both legs are one event, so no state between them is ever seen (a swap written as two
    transfers shows a loss between the legs). The tracer follows value across it.

    Attributes:
        asset, amount: what the seller gives.
        price: of one unit of ``asset``, in ``pay_asset``.
        pay_asset: what the buyer pays in.
        paid: the exact payment; ``amount x price`` when omitted (then it must be exact at
            ``pay_asset``'s scale: state ``paid`` for a rounded payment).
        seller_from: the seller's account that gives ``asset``; seller_to: the seller's
            account that receives the payment.
        buyer_from: the buyer's account that pays; buyer_to: the buyer's account that
            receives ``asset``.
    """

    type: ClassVar[str] = "trade"
    asset: str = _id("asset")
    amount: Decimal = _amount()
    price: Decimal = _converted(_money.positive_price, "price", "price")
    pay_asset: str = _id("pay_asset")
    seller_from: str = _ref("seller_from")
    seller_to: str = _ref("seller_to")
    buyer_from: str = _ref("buyer_from")
    buyer_to: str = _ref("buyer_to")
    paid: Decimal | None = _opt("amount", _money.positive_amount, "paid")

    def __attrs_post_init__(self) -> None:
        if self.asset == self.pay_asset:
            raise EventValueError("pay_asset: must differ from asset (a trade exchanges two assets)")
        seller = {self.seller_from.partition(":")[0], self.seller_to.partition(":")[0]}
        buyer = {self.buyer_from.partition(":")[0], self.buyer_to.partition(":")[0]}
        if len(seller) != 1:
            raise EventValueError("seller_to: seller_from and seller_to must be accounts of one entity")
        if len(buyer) != 1:
            raise EventValueError("buyer_to: buyer_from and buyer_to must be accounts of one entity")
        if seller == buyer:
            raise EventValueError("buyer_from: the buyer must be another entity than the seller")

    @property
    def payment(self) -> Decimal:
        """``paid``, or ``amount x price`` exactly."""
        if self.paid is not None:
            return self.paid
        return _money.exact_product(self.amount, self.price)


@attrs.define(frozen=True, slots=True, kw_only=True)
class HoldingImpaired(Event):
    """A holding carried at cost is written down: its book value per unit falls to ``book_price``.

    Attributes:
        account: an ``amortized_cost`` or ``available_for_sale`` holdings account.
        asset: the holding.
        book_price: the new book value of one unit, in the timeline's quote (lower than before).
    """

    type: ClassVar[str] = "holding_impaired"
    account: str = _ref("account")
    asset: str = _id("asset")
    book_price: Decimal = _converted(_money.non_negative_amount, "book_price", "amount0")


@attrs.define(frozen=True, slots=True, kw_only=True)
class LoanImpaired(Event):
    """The lender recognises a credit loss on a loan: a loss allowance of ``amount`` (added to
    any earlier one; never above what is outstanding). The borrower still owes the whole debt."""

    type: ClassVar[str] = "loan_impaired"
    loan: str = _id("loan")
    amount: Decimal = _amount()


@attrs.define(frozen=True, slots=True, kw_only=True)
class DepositInsurance(Event):
    """Deposits of ``asset`` at ``venue`` are insured by ``insurer`` up to ``limit`` per
    depositor (replaces an earlier limit; 0 ends the cover)."""

    type: ClassVar[str] = "deposit_insurance"
    insurer: str = _id("insurer")
    venue: str = _id("venue")
    asset: str = _id("asset")
    limit: Decimal = _converted(_money.non_negative_amount, "limit", "amount0")

    def __attrs_post_init__(self) -> None:
        if self.insurer == self.venue:
            raise EventValueError("insurer: a venue cannot insure its own deposits")


@attrs.define(frozen=True, slots=True, kw_only=True)
class InsurerPayout(Event):
    """The insurer pays a depositor of a failed venue, and takes over that much of the claim.

    Attributes:
        account: the customer account at the venue whose holder is paid.
        paid_from: the insurer's holdings account.
        to: the holder's holdings account (omit: the money leaves the model).
    """

    type: ClassVar[str] = "insurer_payout"
    insurer: str = _id("insurer")
    account: str = _ref("account")
    asset: str = _id("asset")
    amount: Decimal = _amount()
    paid_from: str = _ref("paid_from")
    to: str | None = _opt_ref("to")


@attrs.define(frozen=True, slots=True, kw_only=True)
class Resolution(Event):
    """An authority resolves a failed entity (receivership, bridge bank, purchase and assumption).

    Attributes:
        entity: the failed entity (marked failed from here on).
        authority: the resolving authority (an FDIC, a central bank, a court's trustee).
        method: one of :data:`RESOLUTION_METHODS`.
        to_entity: the acquirer or bridge bank, when accounts move.
        accounts: the failed entity's accounts that move to ``to_entity`` whole (the deposit
            book, as customer accounts, and assets, as holdings): ``V:name`` becomes
            ``to_entity:name``.
    """

    type: ClassVar[str] = "resolution"
    entity: str = _id("entity")
    authority: str = _id("authority")
    method: str = _choice("method", RESOLUTION_METHODS)
    to_entity: str | None = _opt_id("to_entity")
    accounts: tuple[str, ...] | None = _opt("refs", _fields.account_refs, "accounts")

    def __attrs_post_init__(self) -> None:
        if self.accounts is not None and self.to_entity is None:
            raise EventValueError("to_entity: accounts move to an acquirer or bridge bank; name it")
        if self.to_entity is not None and self.to_entity == self.entity:
            raise EventValueError("to_entity: must differ from the failed entity")
        for ref in self.accounts or ():
            if ref.partition(":")[0] != self.entity:
                raise EventValueError(f"accounts: {ref!r} is not an account of {self.entity!r}")


@attrs.define(frozen=True, slots=True, kw_only=True)
class MarginCall(Event):
    """The secured party demands more collateral for a loan or a pool.

    Attributes:
        loan / pool: what the call is on (exactly one).
        amount: the collateral value demanded, in the timeline's quote, if the record says.
        due: when it must be met, if the record says.
    """

    type: ClassVar[str] = "margin_call"
    loan: str | None = _opt_id("loan")
    pool: str | None = _opt_id("pool")
    amount: Decimal | None = _opt("amount", _money.positive_amount, "amount")
    due: datetime | None = _opt("instant", _fields.utc_instant, "due")

    def __attrs_post_init__(self) -> None:
        if (self.loan is None) == (self.pool is None):
            raise EventValueError("loan: give exactly one of 'loan' or 'pool' (what the call is on)")


@attrs.define(frozen=True, slots=True, kw_only=True)
class BalanceAsserted(Event):
    """What the public record says a figure was at ``at``; replay compares the books with it.

    Attributes:
        entity: whose figure it is.
        measure: one of :data:`MEASURES`. ``balance`` is a quantity of ``asset`` in ``account``;
            the ratios (:data:`RATIO_MEASURES`) are plain fractions with no quote
            (``loan_health`` and ``ltv`` of one ``loan``); the others are values in ``quote``
            (``holdings_value`` for one ``asset``).
        expected: the figure as reported (may be negative for a balance or equity).
        tolerance: how far the books may differ and still match (same unit as ``expected``).
        bound: ``equal`` (the default), ``at_least`` ("more than $22B") or ``at_most``: a
            one-sided figure holds when the books are on its side of it, within the tolerance.
        loan: the loan a per-loan measure is of.
    """

    type: ClassVar[str] = "balance_asserted"
    entity: str = _id("entity")
    measure: str = _choice("measure", MEASURES)
    expected: Decimal = _converted(_money.signed_amount, "expected", "signed")
    tolerance: Decimal = _converted(_money.non_negative_amount, "tolerance", "amount0")
    asset: str | None = _opt_id("asset")
    account: str | None = _opt_ref("account")
    quote: str | None = _opt_id("quote")
    bound: str | None = _opt_choice("bound", BOUNDS)
    loan: str | None = _opt_id("loan")

    def __attrs_post_init__(self) -> None:
        if self.measure == "balance":
            if self.account is None or self.asset is None:
                raise EventValueError("account: a 'balance' assertion needs account and asset")
        elif self.measure in RATIO_MEASURES:
            if self.quote is not None:
                raise EventValueError(f"quote: '{self.measure}' is a ratio (a plain fraction); it has no quote")
        elif self.quote is None:
            raise EventValueError(f"quote: a '{self.measure}' assertion needs a quote asset")
        if self.measure == "holdings_value" and self.asset is None:
            raise EventValueError("asset: a 'holdings_value' assertion needs an asset")
        if (self.measure in LOAN_MEASURES) != (self.loan is not None):
            if self.loan is None:
                raise EventValueError(f"loan: a '{self.measure}' assertion needs the loan it is of")
            raise EventValueError(f"loan: only {' and '.join(LOAN_MEASURES)} are measures of a loan")

    @property
    def one_sided(self) -> str:
        """``equal``, ``at_least`` or ``at_most`` (``equal`` when omitted)."""
        return self.bound or "equal"


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
        Trade,
        HoldingImpaired,
        LoanImpaired,
        DepositInsurance,
        InsurerPayout,
        Resolution,
        MarginCall,
    )
}
