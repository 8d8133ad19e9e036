"""What the log must know to refuse malformed facts: entities, assets, accounts, loans, pledges.

The registry checks references and impossibilities (an unknown account, an amount finer than the
asset's scale, repaying more than is outstanding, releasing collateral that is not pledged). It
never refuses a well-formed fact because it breaks a business rule: that is the invariants' job.

It is small (it grows with the number of accounts and loans, not events), journaled so that a
batch can be checked and rolled back, and persisted in the log's database so that reopening a
large log does not replay it.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Iterable
from typing import Any

import attrs

import events as ev
from events import Event, EventValueError
from events._fields import format_instant, parse_instant

_MISSING = object()
#: Account names the books use for their implicit accounts (see docs/model.md).
RESERVED_NAMES = ("equity", "external")
RESERVED_PREFIXES = ("claim", "due-from", "due-to", "loan", "pledged", "allowance")


@attrs.frozen
class AssetInfo:
    scale: int
    kind: str
    issuer: str | None


@attrs.frozen
class AccountInfo:
    entity: str
    purpose: str
    holder: str | None
    # Newer fields: persisted only when set (see LoanInfo).
    basis: str | None = None
    liability_class: str | None = None
    depositors: int | None = None

    @property
    def is_holdings(self) -> bool:
        return self.purpose in ("customer-custody", "corporate")


@attrs.frozen
class LoanInfo:
    lender: str
    borrower: str
    asset: str
    outstanding: int  # minor units of ``asset``
    defaulted: bool = False
    # Newer fields: persisted only when set, so that the registry rows of logs written before
    # them stay byte-identical (a writer compares its rebuilt registry with the table).
    threshold: str | None = None  # liquidation threshold, decimal text
    pool: str | None = None
    impaired: int = 0  # loss allowance, minor units of ``asset``


#: Fields left out of the persisted JSON while they hold their default.
_OPTIONAL: dict[str, dict[str, object]] = {
    "loan": {"threshold": None, "pool": None, "impaired": 0},
    "account": {"basis": None, "liability_class": None, "depositors": None},
}


#: The field names of each entry class, in definition order (see Registry.encode).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@attrs.frozen
class PoolInfo:
    """A collateral pool: several loans of one borrower from one lender, secured together."""

    lender: str
    borrower: str


def _paid_down(loan: LoanInfo, outstanding: int) -> LoanInfo:
    """``loan`` with ``outstanding`` left. A loss allowance is never above what is outstanding
    (``loan_impaired`` refuses more): paying the debt down below it releases the excess (the
    books post the release as a recovery). Before, a loan repaid in full kept its allowance,
    and the lender's assets stayed that much lower for good."""
    return attrs.evolve(loan, outstanding=outstanding, impaired=min(loan.impaired, outstanding))


class SemanticError(EventValueError):
    """A reference or amount that is impossible given the history (names the field)."""


class Registry:
    """Journaled maps of the things events refer to. See the module docstring."""

    KINDS = ("entity", "asset", "account", "loan", "pledge", "pool", "state")
    #: The event types that change an entry (the others only check references): a registry
    #: is rebuilt from these alone. A test holds this list to what ``apply`` does.
    CHANGING_TYPES = (
        "entity_registered",
        "asset_listed",
        "account_opened",
        "loan_opened",
        "loan_repaid",
        "loan_defaulted",
        "collateral_pledged",
        "collateral_released",
        "collateral_seized",
        "loan_impaired",
        "resolution",
    )

    def __init__(self) -> None:
        self.entities: dict[str, str | None] = {}  # entity -> group
        self.assets: dict[str, AssetInfo] = {}
        self.accounts: dict[str, AccountInfo] = {}
        self.loans: dict[str, LoanInfo] = {}
        self.pledges: dict[str, int] = {}  # "target|asset" -> minor units pledged
        self.pools: dict[str, PoolInfo] = {}
        self.state: dict[str, Any] = {"last_at": None}
        self._journal: list[tuple[dict, str, object]] | None = None
        self._dirty: set[tuple[str, str]] = set()
        self._last_minor: tuple[Any, str, int] = (None, "", 0)
        self._last_at_journaled = False
        self._handlers: dict[str, Any] = {}

    # -- journal -------------------------------------------------------------------------------
    def begin(self) -> None:
        self._journal = []
        self._last_at_journaled = False

    def rollback(self) -> None:
        assert self._journal is not None, "rollback without begin"
        for table, key, old in reversed(self._journal):
            if old is _MISSING:
                table.pop(key, None)
            else:
                table[key] = old
        self._journal = None
        self._dirty.clear()
        self._last_minor = (None, "", 0)

    def commit(self) -> set[tuple[str, str]]:
        """End the batch; return the (kind, key) entries changed, for persisting."""
        self._journal = None
        dirty, self._dirty = self._dirty, set()
        return dirty

    def _set(self, kind: str, table: dict, key: str, value: object) -> None:
        # Changes are journaled, and remembered for persisting, only inside a batch (begin ..
        # commit/rollback): a registry that only checks events (a replay's) keeps neither.
        if self._journal is not None:
            self._journal.append((table, key, table.get(key, _MISSING)))
            self._dirty.add((kind, key))
        table[key] = value

    # -- look-ups used by the books and the loader ---------------------------------------------
    def scale(self, asset: str) -> int:
        return self.assets[asset].scale

    def group_of(self, entity: str) -> str | None:
        return self.entities.get(entity)

    def affiliated(self, a: str, b: str) -> bool:
        if a == b:
            return True
        group = self.entities.get(a)
        return group is not None and group == self.entities.get(b)

    # -- checking ------------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Check ``event`` against the history so far and record what it declares.

        Raises :class:`SemanticError` (field-named) and changes nothing when the event is
        impossible.
        """
        last_at = self.state["last_at"]
        if last_at is not None and event.at < last_at:
            raise SemanticError(
                f"at: {format_instant(event.at)} is before the previous event's "
                f"{format_instant(last_at)}; events must be in time order"
            )
        handler = self._handlers.get(event.type)
        if handler is None:
            handler = self._handlers[event.type] = getattr(self, "_apply_" + event.type)
        handler(event)
        if last_at != event.at:
            # The one entry every event changes: journal its first change in a batch only
            # (rollback restores the oldest value), instead of once per event.
            if self._journal is not None and not self._last_at_journaled:
                self._journal.append((self.state, "last_at", last_at))
                self._last_at_journaled = True
            self.state["last_at"] = event.at  # not persisted: read from the head row on load

    def _entity(self, entity: str, field: str) -> None:
        if entity not in self.entities:
            raise SemanticError(f"{field}: unknown entity {entity!r} (no entity_registered before)")

    def _asset(self, asset: str, field: str = "asset") -> AssetInfo:
        info = self.assets.get(asset)
        if info is None:
            raise SemanticError(f"{field}: unknown asset {asset!r} (no asset_listed before)")
        return info

    def _account(self, ref: str, field: str, *purposes: str) -> AccountInfo:
        info = self.accounts.get(ref)
        if info is None:
            raise SemanticError(f"{field}: unknown account {ref!r} (no account_opened before)")
        if purposes and info.purpose not in purposes:
            raise SemanticError(
                f"{field}: account {ref!r} is a {info.purpose} account; "
                f"expected {' or '.join(purposes)}"
            )
        return info

    def _minor(self, asset: str, amount: Any, field: str) -> int:
        info = self._asset(asset)
        try:
            minor = ev.to_minor(amount, info.scale, field=field, asset=asset)
        except EventValueError as exc:
            raise SemanticError(str(exc)) from None
        self._last_minor = (amount, asset, minor)
        return minor

    def minor(self, asset: str, amount: Any) -> int:
        """``amount`` of ``asset`` in minor units; the books ask for the amount just checked,
        so the last conversion is remembered (the same Decimal object, the same asset)."""
        last_amount, last_asset, minor = self._last_minor
        if amount is last_amount and asset == last_asset:
            return minor
        return ev.to_minor(amount, self.assets[asset].scale)

    def _apply_entity_registered(self, e: ev.EntityRegistered) -> None:
        if e.entity in self.entities:
            raise SemanticError(f"entity: {e.entity!r} is already registered")
        self._set("entity", self.entities, e.entity, e.group)

    def _apply_asset_listed(self, e: ev.AssetListed) -> None:
        if e.asset in self.assets:
            raise SemanticError(f"asset: {e.asset!r} is already listed")
        if e.issuer is not None:
            self._entity(e.issuer, "issuer")
        self._set("asset", self.assets, e.asset, AssetInfo(e.scale, e.kind, e.issuer))

    def _apply_account_opened(self, e: ev.AccountOpened) -> None:
        entity, _, name = e.account.partition(":")
        self._entity(entity, "account")
        if name in RESERVED_NAMES or name.partition(":")[0] in RESERVED_PREFIXES:
            raise SemanticError(
                f"account: {name!r} is reserved for the books' own accounts "
                f"({', '.join(RESERVED_NAMES)}, and names starting with "
                f"{', '.join(p + ':' for p in RESERVED_PREFIXES)}); choose another name"
            )
        if e.account in self.accounts:
            raise SemanticError(f"account: {e.account!r} is already open")
        if e.holder is not None:
            self._entity(e.holder, "holder")
            if e.holder == entity:
                raise SemanticError("holder: a venue cannot hold a customer account at itself")
        info = AccountInfo(
            entity,
            e.purpose,
            e.holder,
            basis=None if e.basis == "fair_value" else e.basis,
            liability_class=e.liability_class,
            depositors=e.depositors,
        )
        self._set("account", self.accounts, e.account, info)

    def _apply_deposit(self, e: ev.Deposit) -> None:
        account = self._account(e.account, "account", "customer")
        venue = account.entity
        if e.from_account is not None:
            src = self._account(e.from_account, "from_account", "customer-custody", "corporate", "external")
            if src.entity != account.holder:
                raise SemanticError(
                    f"from_account: {e.from_account!r} is not an account of the holder {account.holder!r}"
                )
        landed = self._account(e.landed, "landed", "customer-custody", "corporate")
        self._minor(e.asset, e.amount, "amount")
        if e.owed_by is not None:
            if landed.entity == venue:
                raise SemanticError("owed_by: only for deposits that landed with another entity")
            owed = self._account(e.owed_by, "owed_by", "customer")
            if owed.entity != venue or owed.holder != landed.entity:
                raise SemanticError(
                    f"owed_by: {e.owed_by!r} must be an account at {venue!r} "
                    f"held by {landed.entity!r} (where the money landed)"
                )

    def _apply_withdrawal(self, e: ev.Withdrawal) -> None:
        account = self._account(e.account, "account", "customer")
        paid = self._account(e.paid_from, "paid_from", "customer-custody", "corporate")
        if paid.entity != account.entity:
            raise SemanticError(
                f"paid_from: {e.paid_from!r} is not an account of the venue {account.entity!r}"
            )
        if e.to is not None:
            to = self._account(e.to, "to", "customer-custody", "corporate", "external")
            if to.entity != account.holder:
                raise SemanticError(f"to: {e.to!r} is not an account of the holder {account.holder!r}")
        self._minor(e.asset, e.amount, "amount")

    def _apply_transfer(self, e: ev.Transfer) -> None:
        src = self._account(e.from_account, "from_account")
        dst = self._account(e.to_account, "to_account")
        if (src.purpose == "customer") != (dst.purpose == "customer"):
            raise SemanticError(
                "to_account: a transfer moves between two customer accounts of one venue, or "
                "between two holdings accounts; use deposit or withdrawal to cross between them"
            )
        if src.purpose == "customer" and src.entity != dst.entity:
            raise SemanticError(
                f"to_account: customer accounts at different venues ({src.entity!r}, "
                f"{dst.entity!r}); move money out with a withdrawal and in with a deposit"
            )
        self._minor(e.asset, e.amount, "amount")

    def _apply_loan_opened(self, e: ev.LoanOpened) -> None:
        if e.loan in self.loans:
            raise SemanticError(f"loan: {e.loan!r} is already open (loan ids are unique)")
        self._entity(e.lender, "lender")
        self._entity(e.borrower, "borrower")
        src = self._account(e.disbursed_from, "disbursed_from", "corporate", "customer-custody")
        dst = self._account(e.disbursed_to, "disbursed_to", "corporate", "customer-custody")
        if src.entity != e.lender:
            raise SemanticError(f"disbursed_from: {e.disbursed_from!r} is not the lender's")
        if dst.entity != e.borrower:
            raise SemanticError(f"disbursed_to: {e.disbursed_to!r} is not the borrower's")
        minor = self._minor(e.asset, e.principal, "principal")
        if e.pool is not None:
            pool = self.pools.get(e.pool)
            if pool is None:
                self._set("pool", self.pools, e.pool, PoolInfo(e.lender, e.borrower))
            elif (pool.lender, pool.borrower) != (e.lender, e.borrower):
                raise SemanticError(
                    f"pool: {e.pool!r} secures loans from {pool.lender!r} to {pool.borrower!r}; "
                    f"this loan is from {e.lender!r} to {e.borrower!r}"
                )
        threshold = None if e.liquidation_threshold is None else ev.format_decimal(e.liquidation_threshold)
        self._set(
            "loan",
            self.loans,
            e.loan,
            LoanInfo(e.lender, e.borrower, e.asset, minor, threshold=threshold, pool=e.pool),
        )

    def _loan(self, loan: str, field: str = "loan") -> LoanInfo:
        info = self.loans.get(loan)
        if info is None:
            raise SemanticError(f"{field}: unknown loan {loan!r} (no loan_opened before)")
        return info

    def _apply_loan_repaid(self, e: ev.LoanRepaid) -> None:
        loan = self._loan(e.loan)
        src = self._account(e.paid_from, "paid_from", "corporate", "customer-custody")
        dst = self._account(e.paid_to, "paid_to", "corporate", "customer-custody")
        if src.entity != loan.borrower:
            raise SemanticError(f"paid_from: {e.paid_from!r} is not the borrower's")
        if dst.entity != loan.lender:
            raise SemanticError(f"paid_to: {e.paid_to!r} is not the lender's")
        minor = self._minor(loan.asset, e.amount, "amount")
        if minor > loan.outstanding:
            raise SemanticError(
                f"amount: repays {ev.format_decimal(e.amount)} {loan.asset} but only "
                f"{ev.from_minor(loan.outstanding, self.scale(loan.asset))} is outstanding "
                f"on loan {e.loan!r}"
            )
        self._set("loan", self.loans, e.loan, _paid_down(loan, loan.outstanding - minor))

    def _apply_loan_defaulted(self, e: ev.LoanDefaulted) -> None:
        loan = self._loan(e.loan)
        if loan.outstanding == 0:
            raise SemanticError(f"loan: {e.loan!r} has nothing outstanding to default on")
        self._set("loan", self.loans, e.loan, attrs.evolve(loan, defaulted=True))

    def _apply_loan_impaired(self, e: ev.LoanImpaired) -> None:
        loan = self._loan(e.loan)
        minor = self._minor(loan.asset, e.amount, "amount")
        if loan.impaired + minor > loan.outstanding:
            raise SemanticError(
                f"amount: a loss allowance of {ev.from_minor(loan.impaired + minor, self.scale(loan.asset))} "
                f"{loan.asset} in all would exceed the "
                f"{ev.from_minor(loan.outstanding, self.scale(loan.asset))} outstanding on loan {e.loan!r}"
            )
        self._set("loan", self.loans, e.loan, attrs.evolve(loan, impaired=loan.impaired + minor))

    def pledgor(self, loan: str | None, account: str | None, pool: str | None = None) -> str:
        if loan is not None:
            return self.loans[loan].borrower
        if pool is not None:
            return self.pools[pool].borrower
        holder = self.accounts[account].holder  # type: ignore[index]
        assert holder is not None
        return holder

    def secured_party(self, loan: str | None, account: str | None, pool: str | None = None) -> str:
        if loan is not None:
            return self.loans[loan].lender
        if pool is not None:
            return self.pools[pool].lender
        return self.accounts[account].entity  # type: ignore[index]

    def _target(self, e: Any) -> str:
        """The secured target's key: a loan id, a customer account, or ``pool:ID``."""
        if e.loan is not None:
            self._loan(e.loan)
            return e.loan
        if e.pool is not None:
            if e.pool not in self.pools:
                raise SemanticError(f"pool: unknown pool {e.pool!r} (no loan_opened names it)")
            return f"pool:{e.pool}"
        self._account(e.account, "account", "customer")
        return e.account

    def _apply_collateral_pledged(self, e: ev.CollateralPledged) -> None:
        target = self._target(e)
        src = self._account(e.from_account, "from_account", "corporate", "customer-custody")
        pledgor = self.pledgor(e.loan, e.account, e.pool)
        if src.entity != pledgor:
            raise SemanticError(
                f"from_account: {e.from_account!r} is not the pledgor's ({pledgor!r})"
            )
        minor = self._minor(e.asset, e.amount, "amount")
        key = f"{target}|{e.asset}"
        self._set("pledge", self.pledges, key, self.pledges.get(key, 0) + minor)

    def _take_pledge(self, e: Any, owner: str, field: str) -> None:
        target = self._target(e)
        dst = self._account(e.to_account, "to_account", "corporate", "customer-custody")
        if dst.entity != owner:
            raise SemanticError(f"to_account: {e.to_account!r} is not {owner!r}'s")
        minor = self._minor(e.asset, e.amount, "amount")
        key = f"{target}|{e.asset}"
        pledged = self.pledges.get(key, 0)
        if minor > pledged:
            raise SemanticError(
                f"amount: {field} {ev.format_decimal(e.amount)} {e.asset} but only "
                f"{ev.from_minor(pledged, self.scale(e.asset))} is pledged against {target!r}"
            )
        self._set("pledge", self.pledges, key, pledged - minor)

    def _apply_collateral_released(self, e: ev.CollateralReleased) -> None:
        self._target(e)
        self._take_pledge(e, self.pledgor(e.loan, e.account, e.pool), "releases")

    def _apply_collateral_seized(self, e: ev.CollateralSeized) -> None:
        self._target(e)
        self._take_pledge(e, self.secured_party(e.loan, e.account, e.pool), "seizes")
        if e.credited_asset is not None:
            self._minor(e.credited_asset, e.credited, "credited")
        if e.loan is not None:
            loan = self.loans[e.loan]
            if e.credited_asset not in (None, loan.asset):
                raise SemanticError(
                    f"credited_asset: loan {e.loan!r} is in {loan.asset}, not {e.credited_asset}"
                )
            credited = self._minor(loan.asset, e.credited, "credited")
            if credited > loan.outstanding:
                raise SemanticError(
                    f"credited: {ev.format_decimal(e.credited)} {loan.asset} is more than the "
                    f"{ev.from_minor(loan.outstanding, self.scale(loan.asset))} outstanding"
                )
            self._set("loan", self.loans, e.loan, _paid_down(loan, loan.outstanding - credited))

    def _apply_price_updated(self, e: ev.PriceUpdated) -> None:
        self._asset(e.asset)
        self._asset(e.quote, "quote")

    def _apply_tokens_minted(self, e: ev.TokensMinted) -> None:
        info = self._asset(e.asset)
        dst = self._account(e.to_account, "to_account", "corporate", "customer-custody")
        if info.issuer is None or info.issuer != dst.entity:
            raise SemanticError(
                f"to_account: only the issuer of {e.asset} can mint it "
                f"(issuer: {info.issuer or 'none declared'})"
            )
        self._minor(e.asset, e.amount, "amount")

    def _apply_credit_line_granted(self, e: ev.CreditLineGranted) -> None:
        self._account(e.account, "account", "customer")
        self._minor(e.asset, e.limit, "limit")

    def _apply_withdrawals_halted(self, e: ev.WithdrawalsHalted) -> None:
        self._entity(e.venue, "venue")

    _apply_withdrawals_resumed = _apply_withdrawals_halted

    def _apply_bankruptcy_filed(self, e: ev.BankruptcyFiled) -> None:
        self._entity(e.entity, "entity")

    def _apply_disclosure(self, e: ev.Disclosure) -> None:
        self._entity(e.entity, "entity")

    def _apply_balance_asserted(self, e: ev.BalanceAsserted) -> None:
        self._entity(e.entity, "entity")
        if e.account is not None:
            self._account(e.account, "account")
        if e.asset is not None:
            self._asset(e.asset)
        if e.loan is not None:
            self._loan(e.loan)
        if e.measure in ev.RATIO_MEASURES:
            return  # a plain fraction: no asset's scale applies
        unit = e.asset if e.measure == "balance" else e.quote
        assert unit is not None
        self._minor(unit, e.expected.copy_abs(), "expected")
        self._minor(unit, e.tolerance, "tolerance")

    def _holdings(self, ref: str, field: str, entity: str | None = None) -> AccountInfo:
        info = self._account(ref, field, "corporate", "customer-custody", "external")
        if entity is not None and info.entity != entity:
            raise SemanticError(f"{field}: {ref!r} is not an account of {entity!r}")
        return info

    def _apply_trade(self, e: ev.Trade) -> None:
        seller = self._holdings(e.seller_from, "seller_from").entity
        self._holdings(e.seller_to, "seller_to", seller)
        buyer = self._holdings(e.buyer_from, "buyer_from").entity
        self._holdings(e.buyer_to, "buyer_to", buyer)
        self._minor(e.asset, e.amount, "amount")
        self._asset(e.pay_asset, "pay_asset")
        try:
            payment = e.payment
        except decimal.Inexact:
            raise SemanticError("price: amount x price has too many digits; state 'paid'") from None
        self._minor(e.pay_asset, payment, "paid" if e.paid is not None else "price")

    def _apply_holding_impaired(self, e: ev.HoldingImpaired) -> None:
        info = self._account(e.account, "account", "corporate", "customer-custody")
        if info.basis is None:
            raise SemanticError(
                f"account: {e.account!r} is carried at fair value (prices mark it); only an "
                "amortized_cost or available_for_sale holding is impaired"
            )
        self._asset(e.asset)

    def _apply_deposit_insurance(self, e: ev.DepositInsurance) -> None:
        self._entity(e.insurer, "insurer")
        self._entity(e.venue, "venue")
        self._minor(e.asset, e.limit, "limit")

    def _apply_insurer_payout(self, e: ev.InsurerPayout) -> None:
        self._entity(e.insurer, "insurer")
        account = self._account(e.account, "account", "customer")
        if account.entity == e.insurer:
            raise SemanticError("insurer: the insurer cannot pay out on its own deposits")
        self._account(e.paid_from, "paid_from", "corporate", "customer-custody")
        if self.accounts[e.paid_from].entity != e.insurer:
            raise SemanticError(f"paid_from: {e.paid_from!r} is not the insurer's")
        if e.to is not None:
            to = self._account(e.to, "to", "customer-custody", "corporate", "external")
            if to.entity != account.holder:
                raise SemanticError(f"to: {e.to!r} is not an account of the holder {account.holder!r}")
        self._minor(e.asset, e.amount, "amount")

    def _apply_resolution(self, e: ev.Resolution) -> None:
        self._entity(e.entity, "entity")
        self._entity(e.authority, "authority")
        if e.to_entity is not None:
            self._entity(e.to_entity, "to_entity")
        for index, ref in enumerate(e.accounts or ()):
            info = self._account(ref, f"accounts[{index}]")
            if info.purpose == "external":
                raise SemanticError(f"accounts[{index}]: {ref!r} is external; only the books' own accounts move")
            assert e.to_entity is not None
            moved = f"{e.to_entity}:{ref.partition(':')[2]}"
            if info.holder == e.to_entity:
                raise SemanticError(
                    f"accounts[{index}]: {ref!r} is held by {e.to_entity!r}; it cannot owe itself"
                )
            existing = self.accounts.get(moved)
            if existing is None:
                self._set("account", self.accounts, moved, attrs.evolve(info, entity=e.to_entity))
            elif (existing.purpose, existing.holder) != (info.purpose, info.holder):
                raise SemanticError(
                    f"accounts[{index}]: {moved!r} is already open as a {existing.purpose} account "
                    f"and cannot take {ref!r} over"
                )

    def _apply_margin_call(self, e: ev.MarginCall) -> None:
        if e.loan is not None:
            self._loan(e.loan)
        elif e.pool not in self.pools:
            raise SemanticError(f"pool: unknown pool {e.pool!r} (no loan_opened names it)")

    # -- persistence ---------------------------------------------------------------------------
    def encode(self, kind: str, key: str) -> str | None:
        """JSON text of one entry (None when it no longer exists)."""
        table = self._table(kind)
        if key not in table:
            return None
        value = table[key]
        if kind == "state":
            return json.dumps(format_instant(value) if value is not None else None)
        names = _FIELD_NAMES.get(type(value))
        if names is None:
            if not attrs.has(type(value)):
                return json.dumps(value)
            names = _FIELD_NAMES[type(value)] = tuple(f.name for f in attrs.fields(type(value)))
        # The dict attrs.asdict() would build (every field holds a str, an int, a bool or
        # None), made directly: every append persists the entries it changed through here.
        data = {name: getattr(value, name) for name in names}
        optional = _OPTIONAL.get(kind)
        if optional is not None:
            for name, default in optional.items():
                if data[name] == default:
                    del data[name]
        return json.dumps(data, sort_keys=True)

    def rows(self) -> dict[tuple[str, str], str]:
        """Every persisted entry as ``{(kind, key): json}``, as the log's registry table holds it."""
        return {
            (kind, key): text
            for kind in self.KINDS
            if kind != "state"
            for key in self._table(kind)
            if (text := self.encode(kind, key)) is not None
        }

    def load(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Rebuild from persisted ``(kind, key, json)`` rows."""
        self.load_values((kind, key, json.loads(text)) for kind, key, text in rows)

    def load_values(self, rows: Iterable[tuple[str, str, Any]]) -> None:
        """Rebuild from ``(kind, key, decoded value)`` rows (see :meth:`encode`)."""
        for kind, key, value in rows:
            if kind == "asset":
                value = AssetInfo(**value)
            elif kind == "account":
                value = AccountInfo(**value)
            elif kind == "loan":
                value = LoanInfo(**value)
            elif kind == "pool":
                value = PoolInfo(**value)
            elif kind == "state" and value is not None:
                value = parse_instant(value)
            self._table(kind)[key] = value

    def _table(self, kind: str) -> dict:
        tables: dict[str, dict] = {
            "entity": self.entities,
            "asset": self.assets,
            "account": self.accounts,
            "loan": self.loans,
            "pledge": self.pledges,
            "pool": self.pools,
            "state": self.state,
        }
        return tables[kind]
