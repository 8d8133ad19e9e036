"""The books: events applied one at a time to per-entity, double-entry balances.

See ``docs/model.md`` for the accounting rules. Balances are integer minor units, signed and
debit-positive. Besides the balances, the books keep running aggregates (customer liabilities,
custody holdings, positive and negative totals, claims on affiliates) per entity and asset, so
that invariants and measures cost O(assets of one entity) per event, never a rescan of all
accounts.
"""

from __future__ import annotations

import bisect
import decimal
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple

import attrs

import events as ev
from events import Event
from ledger import kinds as _kinds
from ledger.policy import Policy
from ledger.registry import Registry

#: Exact arithmetic for values: enough digits that products and sums of amounts up to
#: ``MAX_MINOR`` (38 digits) and 28-digit prices never round. A value has at most 38 + 28
#: significant digits, from 10^66 (scale 0, a 28-digit whole price) down to 10^-36 (scale 18,
#: 18 price decimals): a sum of values spans at most 102 digits, plus one per tenfold terms.
#: The one rounding is to the quote's scale, half-even (ratios are divided to this precision).
VALUE_CONTEXT = decimal.Context(
    prec=150,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

#: For the running values: exact or an error, never a silent rounding (see VALUE_CONTEXT for
#: the digits a value needs; a haircut kept is a policy fraction of up to 64 digits).
SUM_CONTEXT = decimal.Context(
    prec=400, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow]
)

# Account classes (derived from the purpose, or from the implicit account's prefix).
HOLDINGS, CUSTODY, CUSTOMER, EXTERNAL, EQUITY, CLAIM, DUE_FROM, DUE_TO, LOAN, PLEDGED = (
    "holdings",
    "custody",
    "customer",
    "external",
    "equity",
    "claim",
    "due-from",
    "due-to",
    "loan",
    "pledged",
)
ALLOWANCE = "allowance"  # a lender's loss allowance on a loan (contra-asset, <= 0)
_OFF_SHEET = (EQUITY, EXTERNAL)
_DEPOSIT_TAKERS = ("bank", "lender")  # families whose deposits are weighted for run-off
#: The format of :meth:`Books.to_state` (snapshots). 3: the general model (entity kinds, book
#: values, quotes, deposit insurance, pools); a snapshot of an earlier version is rebuilt.
BOOKS_STATE_VERSION = 3
ZERO = Decimal(0)  # one shared zero (Decimals are immutable) for the hot read paths

Key = tuple[str, str, str]  # (entity, account, asset)
_ABSENT = object()  # "no entry" in the undo journal
_AGGREGATES = ("pos", "neg", "custody", "cust_liab", "held", "pledged_by", "related")


class Posting(NamedTuple):
    """One leg: ``delta`` minor units of ``asset`` to ``entity``'s ``account``."""

    entity: str
    account: str
    asset: str
    delta: int


@attrs.define
class Change:
    """What one event did to the books: its postings and what the invariants must look at."""

    postings: list[Posting] = attrs.field(factory=list)
    accounts: set[Key] = attrs.field(factory=set)
    entities: set[str] = attrs.field(factory=set)
    venue_assets: set[tuple[str, str]] = attrs.field(factory=set)
    targets: set[str] = attrs.field(factory=set)  # loans / secured accounts whose debt or collateral moved
    price_asset: str | None = None
    price_before: Decimal | None = None
    # Every asset whose price in the quote this event set or moved, with its price before:
    # a price in another quote reprices the assets chained through it too.
    repriced: list[tuple[str, Decimal | None]] = attrs.field(factory=list)
    withdrawal_refused: str | None = None  # reason, when a withdrawal request was not paid
    withdrawal_paid: str | None = None  # venue, when a withdrawal was paid
    notices: list[str] = attrs.field(factory=list)
    # Filled by the invariants on first use (several of them look at the same entities).
    entities_touched: list[str] | None = None
    venues_touched: list[str] | None = None


class Books:
    """Balances, prices, limits and running aggregates, built by :meth:`apply`.

    ``Books(policy)`` starts empty. ``apply(event)`` checks the event against the history (it
    raises :class:`ledger.registry.SemanticError` for impossible facts) and returns a
    :class:`Change`. Everything is plain dicts of ints and Decimals, so books can be pickled
    (snapshots) and compared.
    """

    def __init__(self, policy: Policy | None = None, *, registry: Registry | None = None) -> None:
        self.policy = policy or Policy()
        self.quote = self.policy.quote
        self.registry = registry or Registry()
        self.balances: dict[Key, int] = {}
        self.prices: dict[str, Decimal] = {}  # asset -> price in quote
        self.limits: dict[tuple[str, str], int] = {}  # (customer account ref, asset) -> minor
        self.halted: set[str] = set()
        self.bankrupt: set[str] = set()
        # running aggregates, minor units, keyed (entity, asset)
        self.pos: dict[tuple[str, str], int] = defaultdict(int)
        self.neg: dict[tuple[str, str], int] = defaultdict(int)
        self.custody: dict[tuple[str, str], int] = defaultdict(int)
        self.cust_liab: dict[tuple[str, str], int] = defaultdict(int)
        self.held: dict[tuple[str, str], int] = defaultdict(int)  # holdings + custody
        self.pledged_by: dict[tuple[str, str], int] = defaultdict(int)
        self.related: dict[tuple[str, str], int] = defaultdict(int)  # claims on affiliates
        self.entity_assets: dict[str, set[str]] = defaultdict(set)
        self.asset_entities: dict[str, set[str]] = defaultdict(set)
        self.venues: set[str] = set()  # entities with customer accounts
        # secured targets (loan id or customer account ref) -> pledged minor per asset
        self.collateral: dict[str, dict[str, int]] = {}
        # Break-price index for collateral coverage. A "simple" secured debt (collateral in one
        # asset A, debt only in the quote asset) is covered exactly when price(A) >= k, where
        # k = debt x margin / (collateral x (1 - haircut)). Keeping (k, target) sorted per A
        # means a price update rechecks only the debts whose k lies between the old and the new
        # price, not every loan. Other debts are rechecked on every update of their assets.
        self.cover_key: dict[str, tuple[str, Decimal]] = {}
        self.cover_index: dict[str, list[tuple[Decimal, str]]] = defaultdict(list)
        self.complex_targets: dict[str, set[str]] = defaultdict(set)
        self._complex_of: dict[str, set[str]] = {}
        self._class_cache: dict[tuple[str, str], tuple[str, str | None, bool]] = {}
        self.last_seq = 0
        self.last_at: Any = None
        self._undo: list[tuple[Any, ...]] | None = None
        self._haircuts: dict[tuple[str, str | None], Decimal] = {}
        self._keeps: dict[tuple[str, str], Decimal] = {}
        self._unit_prices: dict[str, Any] = {}
        self._own_tokens: dict[tuple[str, str], bool] = {}
        self._handlers: dict[str, Any] = {}
        # Running values in the quote, per venue, of what the reserve-ratio check reads after
        # every event: customer liabilities and haircut liquid reserves. Kept exactly (see
        # SUM_CONTEXT) as aggregates and prices move, so reading them is O(1) instead of a
        # sum over the venue's assets. tests/test_books.py holds them equal to the sums.
        self.liab_value: dict[str, Decimal] = defaultdict(Decimal)
        self.reserve_value: dict[str, Decimal] = defaultdict(Decimal)
        # Likewise per entity: the market value of its claims on affiliates (related-party
        # exposure), and the assets it has held that it or an affiliate issued (own tokens).
        self.related_value: dict[str, Decimal] = defaultdict(Decimal)
        self.own_assets: dict[str, set[str]] = defaultdict(set)
        # And the balance sheet's two totals at market, per entity (solvency reads them after
        # every event that touches the entity or reprices what it holds).
        self.assets_value: dict[str, Decimal] = defaultdict(Decimal)
        self.liabilities_value: dict[str, Decimal] = defaultdict(Decimal)
        self._applies: dict[tuple[str, str], bool] = {}
        # -- the general model (docs/model.md): kinds, prices in any quote, valuation bases,
        #    deposit insurance and run-off, risk weights, loan pools, resolution ------------------
        self.kinds: dict[str, str] = {}  # entity -> kind (entity_registered)
        self.quotes: dict[str, tuple[str, Decimal]] = {}  # asset -> (quote, price): latest price
        self.dependents: dict[str, set[str]] = defaultdict(set)  # quote -> assets priced in it
        self.unpriced_why: dict[str, str] = {}  # asset -> why its chain does not resolve
        # Book value (in the quote) of each holding carried at cost (amortized cost or AFS),
        # and per entity the keys that have one: book measures cost O(such holdings).
        self.book_value: dict[Key, Decimal] = {}
        self.cost_keys: dict[str, set[Key]] = defaultdict(set)
        self._entry_cost: dict[Key, Decimal] = {}  # the book value of units about to arrive
        self.insurance: dict[tuple[str, str], tuple[str, int]] = {}  # (venue, asset) -> (insurer, limit)
        self.customer_names: dict[str, set[str]] = defaultdict(set)  # venue -> customer accounts
        # Per deposit-taker (banks, lenders) and asset: the insured part of what depositors are
        # owed (minor) and the run-off-weighted total (minor x rate, exact), kept as postings move.
        self.insured: dict[tuple[str, str], int] = defaultdict(int)
        self.runoff: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        # Per bank and asset: positive balances x risk weight (minor, exact).
        self.rwa: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.pool_loans: dict[str, set[str]] = defaultdict(set)  # pool -> loans in it
        # asset -> loans with a liquidation threshold whose debt or collateral is in it
        self.health_index: dict[str, set[str]] = defaultdict(set)
        self.margin_calls: dict[str, tuple[str, Decimal | None, Any]] = {}  # target -> (event, amount, due)
        self.failed: dict[str, str] = {}  # entity -> resolution method
        self._family: dict[str, str] = {}
        self._weights: dict[tuple[str, str], Decimal] = {}

    # -- applying events ------------------------------------------------------------------------
    def apply(self, event: Event, *, seq: int | None = None, undoable: bool = False) -> Change:
        """Check ``event`` and apply it; return what changed. Raises on impossible facts.

        With ``undoable``, the books remember how to take the event back: call :meth:`undo`
        to do so, or :meth:`keep` to accept it. Either costs O(what the event touched).
        """
        if undoable:
            self.registry.begin()
            self._undo = [("meta", self.last_seq, self.last_at)]
        try:
            self.registry.apply(event)
            change = Change()
            handler = self._handlers.get(event.type)
            if handler is None and event.type not in self._handlers:
                handler = self._handlers[event.type] = getattr(self, "_on_" + event.type, None)
            if handler is not None:
                handler(event, change)
        except BaseException:
            if undoable:
                self.undo()
            raise
        loans = self.registry.loans
        for target in list(change.targets):
            loan = loans.get(target)
            if loan is not None and loan.pool is not None:
                change.targets.add(f"pool:{loan.pool}")  # a pooled loan's debt moves its pool's
        for target in change.targets:
            if target in self.collateral:
                self._reindex_cover(target)
        self.last_seq = seq if seq is not None else self.last_seq + 1
        self.last_at = event.at
        return change

    def _remember(self, *entry: Any) -> None:
        if self._undo is not None:
            self._undo.append(entry)

    def keep(self) -> None:
        """Accept the event applied with ``undoable=True``."""
        self._undo = None
        self.registry.commit()

    def undo(self) -> None:
        """Take back the event applied with ``undoable=True``, exactly."""
        entries, self._undo = self._undo, None
        assert entries is not None, "undo without an undoable apply"
        targets: set[str] = set()
        new_venues = [entry[1] for entry in entries if entry[0] == "venue"]
        for entry in reversed(entries):
            kind = entry[0]
            if kind == "post":
                _, entity, account, asset, delta = entry
                # A secured account's or a loan's debt moves back: its coverage is re-indexed.
                secured = account[len(LOAN) + 1 :] if account.startswith(f"{LOAN}:") else f"{entity}:{account}"
                if secured in self.collateral:
                    targets.add(secured)
                # ...and a pooled loan's moves its pool's, as in apply() (else the pool's entry in
                # the collateral index kept the asset of a loan taken back). The registry still
                # knows the loan here: it is rolled back below.
                pooled = self.registry.loans.get(secured) if account.startswith(f"{LOAN}:") else None
                if pooled is not None and pooled.pool is not None:
                    targets.add(f"pool:{pooled.pool}")
                key = (entity, account, asset)
                old = self.balances.get(key, 0)
                new = old - delta
                if new:
                    self.balances[key] = new
                else:
                    self.balances.pop(key, None)
                self._aggregate(entity, account, asset, old, new)
            elif kind == "dict":
                _, table, key, old_value = entry
                if old_value is _ABSENT:
                    table.pop(key, None)
                else:
                    table[key] = old_value
            elif kind == "price":
                _, asset, old_price = entry
                self._set_price(asset, old_price)
            elif kind == "set":
                _, members, member, present = entry
                (members.add if present else members.discard)(member)
            elif kind == "collateral":
                _, target, asset, old_minor = entry
                targets.add(target)
                held = self.collateral.setdefault(target, {})
                if old_minor is _ABSENT:
                    held.pop(asset, None)
                    if not held:
                        del self.collateral[target]
                else:
                    held[asset] = old_minor
            elif kind == "meta":
                _, self.last_seq, self.last_at = entry
            elif kind == "insurance":
                _, venue, asset, old_cover = entry
                self._set_insurance(venue, asset, old_cover)
        # Reversing a customer posting re-runs the aggregates, which mark the venue again.
        self.venues.difference_update(new_venues)
        self.registry.rollback()  # first: the index reads loans' outstanding amounts
        for target in targets:
            self._reindex_cover(target)

    def _minor(self, asset: str, amount: Decimal) -> int:
        return self.registry.minor(asset, amount)

    def classify(self, entity: str, account: str) -> tuple[str, str | None]:
        """(class, counterparty entity) of an account in ``entity``'s books."""
        cls, other, _ = self._class_cache.get((entity, account)) or self._account_class(entity, account)
        return cls, other

    def _account_class(self, entity: str, account: str) -> tuple[str, str | None, bool]:
        """(class, counterparty, counterparty is an affiliate), remembered per account.

        Safe to remember: an account's purpose, a loan's parties and an entity's group never
        change once recorded.
        """
        cached = self._class_cache.get((entity, account))
        if cached is not None:
            return cached
        info = self.registry.accounts.get(f"{entity}:{account}")
        if info is not None:
            if info.purpose == "customer":
                cls: str = CUSTOMER
                other: str | None = info.holder
            elif info.purpose == "customer-custody":
                cls, other = CUSTODY, None
            elif info.purpose == "external":
                cls, other = EXTERNAL, None
            else:
                cls, other = HOLDINGS, None
        elif account == EQUITY:
            cls, other = EQUITY, None
        elif account == EXTERNAL:
            cls, other = EXTERNAL, None
        else:
            prefix, _, rest = account.partition(":")
            if prefix == CLAIM:
                cls, other = CLAIM, rest.partition(":")[0]
            elif prefix in (DUE_FROM, DUE_TO):
                cls, other = prefix, rest
            elif prefix == LOAN:
                loan = self.registry.loans[rest]
                cls, other = LOAN, loan.borrower if loan.lender == entity else loan.lender
            elif prefix == PLEDGED:
                cls, other = PLEDGED, None
            elif prefix == ALLOWANCE:
                loan = self.registry.loans[rest]
                cls, other = ALLOWANCE, loan.borrower
            else:
                raise AssertionError(f"unknown account {entity}:{account}")
        related = other is not None and other != entity and self.registry.affiliated(entity, other)
        result = (cls, other, related)
        if cls != LOAN and cls != PLEDGED and cls != ALLOWANCE:
            # Per-loan accounts are not remembered: there is one set per loan ever made, most
            # of them settled long ago, and they are cheap to classify again.
            self._class_cache[(entity, account)] = result
        return result

    def _post(self, change: Change, entity: str, account: str, asset: str, delta: int) -> None:
        if delta == 0:
            return
        key = (entity, account, asset)
        old = self.balances.get(key, 0)
        new = old + delta
        if new:
            self.balances[key] = new
        else:
            self.balances.pop(key, None)
        change.postings.append(Posting(entity, account, asset, delta))
        change.accounts.add(key)
        change.entities.add(entity)
        was_venue = entity in self.venues
        if self._undo is not None:
            self._undo.append(("post", entity, account, asset, delta))
        cls = self._aggregate(entity, account, asset, old, new)
        if cls == HOLDINGS or cls == CUSTODY:
            info = self.registry.accounts.get(f"{entity}:{account}")
            if info is not None and info.basis is not None:
                self._carry(change, key, old, new)
        if cls == CUSTODY:
            change.venue_assets.add((entity, asset))
        elif cls == CUSTOMER:
            change.venue_assets.add((entity, asset))
            ref = f"{entity}:{account}"
            if ref in self.collateral:  # a secured account: its debt moved
                change.targets.add(ref)
            if not was_venue:
                # A new venue: its custody in every asset is now held to segregation.
                self._remember("venue", entity)
                change.venue_assets.update((entity, a) for a in self.entity_assets.get(entity, ()))

    def _aggregate(self, entity: str, account: str, asset: str, old: int, new: int) -> str:
        """Move the running aggregates from ``old`` to ``new`` for one account; return its class."""
        delta = new - old
        cls, _, related = self._class_cache.get((entity, account)) or self._account_class(entity, account)
        ea = (entity, asset)
        old_pos = old if old > 0 else 0
        new_pos = new if new > 0 else 0
        if cls == ALLOWANCE:
            # A contra-asset: a loss allowance (<= 0) reduces the lender's assets, not a liability.
            self.pos[ea] += delta
            self._add_value(self.assets_value, entity, asset, delta, None)
            if self._family_of(entity) == "bank":
                self._weigh(ea, cls, asset, delta)
            return cls
        if self._family_of(entity) == "bank" and new_pos != old_pos and cls != EQUITY and cls != EXTERNAL:
            self._weigh(ea, cls, asset, new_pos - old_pos)
        if cls != EQUITY and cls != EXTERNAL:
            if new_pos != old_pos:
                self.pos[ea] += new_pos - old_pos
                self._add_value(self.assets_value, entity, asset, new_pos - old_pos, None)
            if new_pos - new != old_pos - old:  # max(-balance, 0) moved
                self.neg[ea] += (new_pos - new) - (old_pos - old)
                self._add_value(self.liabilities_value, entity, asset, (new_pos - new) - (old_pos - old), None)
            assets = self.entity_assets[entity]
            if asset not in assets:
                self._note_asset(entity, asset)
        if cls == HOLDINGS or cls == CUSTODY:
            held_before = self.held[ea]
            held_after = self.held[ea] = held_before + delta
            if cls == CUSTODY:
                self.custody[ea] += delta
            moved = (held_after if held_after > 0 else 0) - (held_before if held_before > 0 else 0)
            if moved:
                self._add_value(self.reserve_value, entity, asset, moved, self._keep(asset, entity))
        elif cls == CUSTOMER:
            owed = (new_pos - new) - (old_pos - old)
            self.cust_liab[ea] += owed
            self.venues.add(entity)
            if owed:
                self._add_value(self.liab_value, entity, asset, owed, None)
                if self._family_of(entity) in _DEPOSIT_TAKERS:
                    self._move_deposit(entity, account, asset, old_pos - old, new_pos - new)
        elif cls == PLEDGED:
            self.pledged_by[ea] += delta
        if related and new_pos != old_pos:
            self.related[ea] += new_pos - old_pos
            self._add_value(self.related_value, entity, asset, new_pos - old_pos, None)
        return cls

    def _note_asset(self, entity: str, asset: str) -> None:
        """``entity`` has a balance in ``asset`` for the first time."""
        self.entity_assets[entity].add(asset)
        self.asset_entities[asset].add(entity)
        if self._is_own_token(entity, asset):
            self.own_assets[entity].add(asset)

    # -- the general model: kinds, deposits, risk weights, book values ----------------------------
    def kind_of(self, entity: str) -> str | None:
        return self.kinds.get(entity)

    def _family_of(self, entity: str) -> str:
        family = self._family.get(entity)
        if family is None:
            family = self._family[entity] = _kinds.family(self.kinds.get(entity))
        return family

    def applies(self, invariant: str, entity: str) -> bool:
        """Whether the standard invariant ``invariant`` holds ``entity`` to account (its kind)."""
        found = self._applies.get((invariant, entity))
        if found is None:  # kinds never change once registered
            found = self._applies[(invariant, entity)] = _kinds.applies(invariant, self.kinds.get(entity))
        return found

    def _weight(self, cls: str, asset: str) -> Decimal:
        weight = self._weights.get((cls, asset))
        if weight is None:
            if cls in (LOAN, ALLOWANCE, CUSTOMER):
                name = "loan_receivable"
            elif cls in (CLAIM, DUE_FROM, DUE_TO):
                name = "claim"
            else:
                name = self.registry.assets[asset].kind
            weight = self._weights[(cls, asset)] = self.policy.risk_weight(name)
        return weight

    def _weigh(self, ea: tuple[str, str], cls: str, asset: str, minor: int) -> None:
        weight = self._weight(cls, asset)
        if weight:
            self.rwa[ea] = SUM_CONTEXT.add(self.rwa[ea], SUM_CONTEXT.multiply(minor, weight))

    def _deposit_parts(self, venue: str, name: str, asset: str, owed: int) -> tuple[int, Decimal]:
        """(insured minor units, run-off-weighted minor units) of a deposit owing ``owed``."""
        if owed <= 0:
            return 0, ZERO
        info = self.registry.accounts.get(f"{venue}:{name}")
        cover = self.insurance.get((venue, asset))
        insured = 0
        if cover is not None and info is not None:
            insured = min(owed, cover[1] * (info.depositors or 1))
        rates = self.policy.run_off
        uninsured_rate = self.policy.run_off_rate(info.liability_class if info is not None else None)
        weighted = SUM_CONTEXT.add(
            SUM_CONTEXT.multiply(insured, rates.get("insured", ZERO)),
            SUM_CONTEXT.multiply(owed - insured, uninsured_rate),
        )
        return insured, weighted

    def _move_deposit(self, venue: str, name: str, asset: str, old_owed: int, new_owed: int) -> None:
        ea = (venue, asset)
        old_insured, old_weighted = self._deposit_parts(venue, name, asset, old_owed)
        new_insured, new_weighted = self._deposit_parts(venue, name, asset, new_owed)
        self.insured[ea] += new_insured - old_insured
        self.runoff[ea] = SUM_CONTEXT.add(self.runoff[ea], SUM_CONTEXT.subtract(new_weighted, old_weighted))

    def _set_insurance(self, venue: str, asset: str, cover: Any) -> None:
        """Set (or with ``_ABSENT`` end) a deposit cover and move the deposits' parts with it."""
        # Only deposit-takers (banks, lenders) keep insured and run-off parts: ``_aggregate``
        # moves them for those families alone, and ``from_state`` rebuilds them for those alone.
        # Moving them here for another venue (an exchange with a cover) left parts that later
        # postings never moved: stale insured deposits, a negative run-off, and books that
        # differed from the same books read back from their state.
        owed = {
            name: -self.balances.get((venue, name, asset), 0)
            for name in self.customer_names.get(venue, ())
            if self.balances.get((venue, name, asset), 0) < 0
        } if self._family_of(venue) in _DEPOSIT_TAKERS else {}
        for name, minor in owed.items():
            self._move_deposit(venue, name, asset, minor, 0)
        if cover is _ABSENT:
            self.insurance.pop((venue, asset), None)
        else:
            self.insurance[(venue, asset)] = cover
        for name, minor in owed.items():
            self._move_deposit(venue, name, asset, 0, minor)

    def _carry(self, change: Change, key: Key, old: int, new: int) -> None:
        """Move the book value of a holding carried at cost as its units move from old to new."""
        before = self.book_value.get(key, ZERO)
        if new > old:
            cost = self._entry_cost.pop(key, None)
            if cost is None:
                unit = self._unit_price(key[2])
                if unit is None:
                    cost = ZERO
                    change.notices.append(
                        f"{key[0]}:{key[1]} took in {key[2]} with no price: its book value starts at 0"
                    )
                else:
                    cost = SUM_CONTEXT.multiply(new - old, unit)
            after = SUM_CONTEXT.add(before, cost)
        elif new <= 0 or old <= 0:
            after = ZERO
        else:
            # Units leave at their average book value (150 digits; exact when all of it leaves).
            after = VALUE_CONTEXT.divide(VALUE_CONTEXT.multiply(before, new), old)
        self._remember("dict", self.book_value, key, self.book_value.get(key, _ABSENT))
        if new > 0 or after:
            self.book_value[key] = after
        else:
            self.book_value.pop(key, None)
        self._cost_key(key, key in self.book_value)

    def _cost_key(self, key: Key, present: bool) -> None:
        """Keep ``cost_keys`` exactly the holdings that have a book value (an entity with none
        has no entry), so that books continued from a snapshot hold the same index."""
        entity = key[0]
        old = self.cost_keys.get(entity)
        if (old is not None and key in old) == present:
            return
        self._remember("dict", self.cost_keys, entity, _ABSENT if old is None else old)
        members = set(old or ())  # a new set: the undo journal keeps the old one as it was
        (members.add if present else members.discard)(key)
        if members:
            self.cost_keys[entity] = members
        else:
            self.cost_keys.pop(entity, None)

    def _keep(self, asset: str, owner: str) -> Decimal:
        """The share of ``asset``'s value that counts as a liquid reserve of ``owner``."""
        keep = self._keeps.get((asset, owner))
        if keep is None:  # remembered, like the haircut it comes from
            keep = self._keeps[(asset, owner)] = SUM_CONTEXT.subtract(1, self.haircut(asset, owner=owner))
        return keep

    def _add_value(
        self, table: dict[str, Decimal], entity: str, asset: str, minor: int, keep: Decimal | None
    ) -> None:
        unit = self._unit_price(asset)
        if unit is None:
            return  # unpriced: worth nothing until its first price
        value = SUM_CONTEXT.multiply(minor, unit)
        if keep is not None:
            value = SUM_CONTEXT.multiply(value, keep)
        table[entity] = SUM_CONTEXT.add(table[entity], value)

    def _set_price(self, asset: str, price: Any) -> None:
        """Set (or, with ``_ABSENT``, forget) a price and move the running values with it."""
        before = self._unit_price(asset)
        if price is _ABSENT:
            self.prices.pop(asset, None)
        else:
            self.prices[asset] = price
        self._unit_prices.pop(asset, None)
        after = self._unit_price(asset)
        step = SUM_CONTEXT.subtract(after or 0, before or 0)
        if not step:
            return
        for entity in self.asset_entities.get(asset, ()):
            ea = (entity, asset)
            owed = self.cust_liab.get(ea, 0)
            if owed:
                self.liab_value[entity] = SUM_CONTEXT.add(
                    self.liab_value[entity], SUM_CONTEXT.multiply(owed, step)
                )
            held = self.held.get(ea, 0)
            if held > 0:
                moved = SUM_CONTEXT.multiply(SUM_CONTEXT.multiply(held, step), self._keep(asset, entity))
                self.reserve_value[entity] = SUM_CONTEXT.add(self.reserve_value[entity], moved)
            related = self.related.get(ea, 0)
            if related:
                self.related_value[entity] = SUM_CONTEXT.add(
                    self.related_value[entity], SUM_CONTEXT.multiply(related, step)
                )
            held_total = self.pos.get(ea, 0)
            if held_total:
                self.assets_value[entity] = SUM_CONTEXT.add(
                    self.assets_value[entity], SUM_CONTEXT.multiply(held_total, step)
                )
            owed_total = self.neg.get(ea, 0)
            if owed_total:
                self.liabilities_value[entity] = SUM_CONTEXT.add(
                    self.liabilities_value[entity], SUM_CONTEXT.multiply(owed_total, step)
                )

    def _rebuild_values(self) -> None:
        self.liab_value.clear()
        self.reserve_value.clear()
        self.related_value.clear()
        self.assets_value.clear()
        self.liabilities_value.clear()
        for (entity, asset), minor in self.pos.items():
            if minor:
                self._add_value(self.assets_value, entity, asset, minor, None)
        for (entity, asset), minor in self.neg.items():
            if minor:
                self._add_value(self.liabilities_value, entity, asset, minor, None)
        for (entity, asset), owed in self.cust_liab.items():
            if owed:
                self._add_value(self.liab_value, entity, asset, owed, None)
        for (entity, asset), claims in self.related.items():
            if claims:
                self._add_value(self.related_value, entity, asset, claims, None)
        for (entity, asset), held in self.held.items():
            if held > 0:
                self._add_value(self.reserve_value, entity, asset, held, self._keep(asset, entity))

    # -- state for snapshots (plain JSON, never pickle: snapshots may come from a file that
    #    someone else wrote, and loading them must not run code) ------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue from here, as JSON-ready data (policy not included).

        Minor amounts are JSON integers when they fit in 64 bits (as they always were) and
        decimal strings beyond (``"-1000000000000000000000000000002"``): orjson refuses to
        encode larger ints and decodes them as floats, and other JSON readers may too.
        """
        state = self.small_state(Registry.KINDS)
        state["balances"] = [[e, a, s, _int_out(m)] for (e, a, s), m in sorted(self.balances.items())]
        state["limits"] = [[r, a, _int_out(m)] for (r, a), m in sorted(self.limits.items())]
        state["collateral"] = {
            t: {a: _int_out(m) for a, m in sorted(c.items())} for t, c in sorted(self.collateral.items())
        }
        state["book_value"] = [[e, a, s, str(v)] for (e, a, s), v in sorted(self.book_value.items())]
        return state

    def small_state(self, registry_kinds: tuple[str, ...]) -> dict[str, Any]:
        """:meth:`to_state` without its four large tables (``balances``, ``limits``,
        ``collateral``, ``book_value``) and with the registry rows of ``registry_kinds`` only:
        the part of the state that snapshots (``ledger.snapshot_format``) store whole, beside
        their own layout of the large tables and of the registry's accounts, loans and pledges."""
        registry_rows = []
        for kind in registry_kinds:
            for key in sorted(self.registry._table(kind)):
                value = self.registry.encode(kind, key)
                if value is not None:
                    decoded = json.loads(value)
                    if kind == "pledge":
                        decoded = _int_out(decoded)
                    elif kind == "loan":
                        decoded["outstanding"] = _int_out(decoded["outstanding"])
                        if "impaired" in decoded:
                            decoded["impaired"] = _int_out(decoded["impaired"])
                    registry_rows.append([kind, key, decoded])
        return {
            "version": BOOKS_STATE_VERSION,
            "last_seq": self.last_seq,
            "last_at": ev.format_instant(self.last_at) if self.last_at is not None else None,
            "registry": registry_rows,
            "prices": {a: ev.format_decimal(p) for a, p in sorted(self.prices.items())},
            "halted": sorted(self.halted),
            "bankrupt": sorted(self.bankrupt),
            "venues": sorted(self.venues),
            "entity_assets": {e: sorted(a) for e, a in sorted(self.entity_assets.items())},
            # The running aggregates are derivable from the balances; storing them makes a
            # snapshot load in a few dict builds instead of one rebuild step per balance.
            "aggregates": {
                name: [[e, a, _int_out(m)] for (e, a), m in sorted(getattr(self, name).items()) if m]
                for name in _AGGREGATES
            },
            # Version 3: the general model. Insured and run-off parts and risk weights are
            # rebuilt from the balances on load; what cannot be derived is kept here.
            "kinds": dict(sorted(self.kinds.items())),
            "quotes": {a: [q, ev.format_decimal(p)] for a, (q, p) in sorted(self.quotes.items())},
            "insurance": [[v, a, i, _int_out(m)] for (v, a), (i, m) in sorted(self.insurance.items())],
            "pool_loans": {p: sorted(loans) for p, loans in sorted(self.pool_loans.items()) if loans},
            "margin_calls": {
                t: [c, None if a is None else str(a), None if d is None else ev.format_instant(d)]
                for t, (c, a, d) in sorted(self.margin_calls.items())
            },
            "failed": dict(sorted(self.failed.items())),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], policy: Policy | None = None) -> Books:
        """Books continued from :meth:`to_state` output; aggregates are rebuilt from balances.

        Raises ``ValueError`` naming the table for a minor amount that is not an exact integer
        (an int, or the decimal string :meth:`to_state` writes beyond 64 bits).
        """
        check_state_version(state)
        registry = Registry()
        registry.load_values(registry_values(state["registry"]))
        balances = {}
        for entity, account, asset, minor in state["balances"]:
            balances[(entity, account, asset)] = _int_in(minor, "balances")
        return cls.continued(
            state,
            policy,
            registry=registry,
            balances=balances,
            limits={(r, a): _int_in(m, "limits") for r, a, m in state["limits"]},
            collateral={
                t: {a: _int_in(m, "collateral") for a, m in c.items()} for t, c in state["collateral"].items()
            },
            book_value={(e, a, s): Decimal(v) for e, a, s, v in state["book_value"]},
        )

    @classmethod
    def continued(
        cls,
        small: dict[str, Any],
        policy: Policy | None,
        *,
        registry: Registry,
        balances: dict[Key, int],
        limits: dict[tuple[str, str], int],
        collateral: dict[str, dict[str, int]],
        book_value: dict[Key, Decimal],
    ) -> Books:
        """Books continued from a :meth:`small_state` and the large tables as the books hold
        them (taken over, not copied): what :meth:`from_state` and the snapshot reader share.
        Everything derivable is rebuilt here, under ``policy``."""
        books = cls(policy, registry=registry)
        books.kinds = dict(small["kinds"])
        for asset, (quote, price) in small["quotes"].items():
            books.quotes[asset] = (quote, Decimal(price))
            books.dependents[quote].add(asset)
        for asset in books.quotes:
            why = books._resolve(asset)[1]
            if why is not None:
                books.unpriced_why[asset] = why
        books.book_value = book_value
        for key in book_value:
            books.cost_keys[key[0]].add(key)
        books.insurance = {(v, a): (i, _int_in(m, "insurance")) for v, a, i, m in small["insurance"]}
        for pool, loans in small["pool_loans"].items():
            books.pool_loans[pool] = set(loans)
        books.margin_calls = {
            t: (c, None if a is None else Decimal(a), None if d is None else ev.parse_instant(d))
            for t, (c, a, d) in small["margin_calls"].items()
        }
        books.failed = dict(small["failed"])
        for ref, info in registry.accounts.items():
            if info.purpose == "customer":
                books.customer_names[info.entity].add(ref.partition(":")[2])
        for loan, loan_info in registry.loans.items():
            if loan_info.threshold is not None:
                books.health_index[loan_info.asset].add(loan)
        for pool, members in books.pool_loans.items():  # a pool's debt assets (see _on_loan_opened)
            for loan in books.health_loans(f"pool:{pool}"):
                for member in members:
                    books.health_index[registry.loans[member].asset].add(loan)
        books.last_seq = small["last_seq"]
        books.last_at = ev.parse_instant(small["last_at"]) if small["last_at"] else None
        books.prices = {a: Decimal(p) for a, p in small["prices"].items()}
        books.limits = limits
        books.halted = set(small["halted"])
        books.bankrupt = set(small["bankrupt"])
        books.collateral = collateral
        books.balances = balances
        aggregates = small.get("aggregates")
        if aggregates is None:
            for (entity, account, asset), minor in balances.items():
                books._aggregate(entity, account, asset, 0, minor)
        else:
            for name in _AGGREGATES:
                table = getattr(books, name)
                for entity, asset, minor in aggregates[name]:
                    table[(entity, asset)] = _int_in(minor, name)

        # The insured and run-off parts of deposits and the risk weights, from the balances of
        # the entities whose family keeps them: a deposit-taker's customer accounts, a bank's
        # every balance (both sums are exact, so their order does not matter).
        banks = set()
        for entity in books.kinds:
            family = books._family_of(entity)
            if family == "bank":
                banks.add(entity)
            elif family in _DEPOSIT_TAKERS:
                for name in books.customer_names.get(entity, ()):
                    for asset in small["entity_assets"].get(entity, ()):
                        minor = balances.get((entity, name, asset), 0)
                        if minor < 0:
                            books._move_deposit(entity, name, asset, 0, -minor)
        if banks:
            for (entity, account, asset), minor in balances.items():
                if entity not in banks:
                    continue
                account_cls = books.classify(entity, account)[0]
                if account_cls == CUSTOMER and minor < 0:
                    books._move_deposit(entity, account, asset, 0, -minor)
                if account_cls not in _OFF_SHEET and (account_cls == ALLOWANCE or minor > 0):
                    books._weigh((entity, asset), account_cls, asset, minor)
        books.venues |= set(small["venues"])
        for entity, assets in small["entity_assets"].items():
            for asset in assets:
                books._note_asset(entity, asset)
        books._rebuild_values()
        loans = registry.loans
        health_index = books.health_index
        for target, held in collateral.items():
            secured_loan = loans.get(target)
            if secured_loan is None:  # a pool or a secured account
                books._reindex_cover(target)
                for secured in books.health_loans(target):
                    for asset in held:
                        health_index[asset].add(secured)
                continue
            # A settled loan (nothing outstanding, no collateral left: most loans of a long
            # history) has no entry in the coverage index: _reindex_cover would add none.
            if secured_loan.outstanding or any(held.values()):
                books._reindex_cover(target)
            if secured_loan.threshold is not None:  # health_loans(target), for a loan
                for asset in held:
                    health_index[asset].add(target)
        return books

    def _move_out(self, change: Change, ref: str, asset: str, minor: int) -> str:
        """Take ``minor`` out of account ``ref``; return the entity whose value left."""
        entity, _, name = ref.partition(":")
        info = self.registry.accounts[ref]
        if info.purpose == "customer":
            holder = info.holder
            assert holder is not None
            self._post(change, entity, name, asset, minor)
            self._post(change, holder, f"claim:{ref}", asset, -minor)
            return holder
        self._post(change, entity, name, asset, -minor)
        return entity

    def _move_in(self, change: Change, ref: str, asset: str, minor: int) -> str:
        entity, _, name = ref.partition(":")
        info = self.registry.accounts[ref]
        if info.purpose == "customer":
            holder = info.holder
            assert holder is not None
            self._post(change, entity, name, asset, -minor)
            self._post(change, holder, f"claim:{ref}", asset, minor)
            return holder
        self._post(change, entity, name, asset, minor)
        return entity

    def _on_deposit(self, e: ev.Deposit, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        venue = e.account.partition(":")[0]
        holder = self._move_in(change, e.account, e.asset, minor)
        if e.from_account is not None:
            self._move_out(change, e.from_account, e.asset, minor)
        else:
            self._post(change, holder, EXTERNAL, e.asset, -minor)
        landed_entity, _, landed_name = e.landed.partition(":")
        self._post(change, landed_entity, landed_name, e.asset, minor)
        if landed_entity != venue:
            if e.owed_by is not None:
                # The venue books the landed entity's debt on its customer account there.
                self._move_out(change, e.owed_by, e.asset, minor)
                change.notices.append(
                    f"{ev.format_decimal(e.amount)} {e.asset} of customer money landed at "
                    f"{e.landed}, not with {venue}; owed on {e.owed_by}"
                )
            else:
                self._post(change, venue, f"due-from:{landed_entity}", e.asset, minor)
                self._post(change, landed_entity, f"due-to:{venue}", e.asset, -minor)
                change.notices.append(
                    f"{ev.format_decimal(e.amount)} {e.asset} of customer money landed at {e.landed}"
                )

    def _on_withdrawal(self, e: ev.Withdrawal, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        venue = e.account.partition(":")[0]
        if venue in self.halted:
            change.withdrawal_refused = f"{venue} has halted withdrawals"
            return
        available = self.balances.get((venue, e.paid_from.partition(":")[2], e.asset), 0)
        if available < minor:
            change.withdrawal_refused = (
                f"{e.paid_from} holds {self.format(available, e.asset)} {e.asset}, "
                f"cannot pay {e.amount:,f}"
            )
            return
        holder = self._move_out(change, e.account, e.asset, minor)
        self._post(change, venue, e.paid_from.partition(":")[2], e.asset, -minor)
        if e.to is not None:
            self._move_in(change, e.to, e.asset, minor)
        else:
            self._post(change, holder, EXTERNAL, e.asset, minor)
        change.withdrawal_paid = venue

    def _on_transfer(self, e: ev.Transfer, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        giver = self._move_out(change, e.from_account, e.asset, minor)
        taker = self._move_in(change, e.to_account, e.asset, minor)
        if giver != taker:
            self._post(change, giver, EQUITY, e.asset, minor)
            self._post(change, taker, EQUITY, e.asset, -minor)

    def _on_loan_opened(self, e: ev.LoanOpened, change: Change) -> None:
        minor = self._minor(e.asset, e.principal)
        self._move_out(change, e.disbursed_from, e.asset, minor)
        self._post(change, e.lender, f"loan:{e.loan}", e.asset, minor)
        self._move_in(change, e.disbursed_to, e.asset, minor)
        self._post(change, e.borrower, f"loan:{e.loan}", e.asset, -minor)
        change.targets.add(e.loan)
        if e.pool is not None:
            self._remember("set", self.pool_loans[e.pool], e.loan, False)
            self.pool_loans[e.pool].add(e.loan)
        if e.pool is not None:
            # A pooled loan's debt is its pool's: every loan in the pool with a threshold is
            # rechecked when the asset of any loan in it is repriced (before, a loan was indexed
            # under its own asset only, and a price move of another pool loan's asset, which
            # moves the pool's debt, was missed). Test: tests/test_replay.py, pooled loan rechecked.
            pool_assets = {self.registry.loans[m].asset for m in self.pool_loans[e.pool]}
            pool_assets.update(self.collateral.get(f"pool:{e.pool}", {}))
            for loan in self.health_loans(f"pool:{e.pool}"):
                for asset in pool_assets:
                    self._index_health(asset, loan)
        elif e.liquidation_threshold is not None:
            for asset in {e.asset, *self.collateral.get(e.loan, {})}:
                self._index_health(asset, e.loan)

    def _index_health(self, asset: str, loan: str) -> None:
        members = self.health_index[asset]
        if loan not in members:
            self._remember("set", members, loan, False)
            members.add(loan)

    def health_loans(self, target: str) -> list[str]:
        """The loans with a liquidation threshold that ``target`` (a loan or ``pool:ID``) secures."""
        if target.startswith("pool:"):
            loans = sorted(self.pool_loans.get(target[5:], ()))
        elif target in self.registry.loans:
            loans = [target]
        else:
            return []
        return [loan for loan in loans if self.registry.loans[loan].threshold is not None]

    def _on_loan_repaid(self, e: ev.LoanRepaid, change: Change) -> None:
        loan = self.registry.loans[e.loan]
        minor = self._minor(loan.asset, e.amount)
        self._move_out(change, e.paid_from, loan.asset, minor)
        self._post(change, loan.borrower, f"loan:{e.loan}", loan.asset, minor)
        self._post(change, loan.lender, f"loan:{e.loan}", loan.asset, -minor)
        self._move_in(change, e.paid_to, loan.asset, minor)
        self._release_allowance(change, e.loan)
        change.targets.add(e.loan)

    def _release_allowance(self, change: Change, loan_id: str) -> None:
        """Release the part of a loan's loss allowance above what is now outstanding (the
        registry caps the allowance at the outstanding debt when it is paid down): a recovery,
        the lender's equity rises by it. Without this a loan repaid in full kept its allowance."""
        loan = self.registry.loans[loan_id]
        held = -self.balances.get((loan.lender, f"{ALLOWANCE}:{loan_id}", loan.asset), 0)
        excess = held - loan.impaired
        if excess > 0:
            self._post(change, loan.lender, f"{ALLOWANCE}:{loan_id}", loan.asset, excess)
            self._post(change, loan.lender, EQUITY, loan.asset, -excess)
            change.notices.append(
                f"loan {loan_id}: {self.format(excess, loan.asset)} {loan.asset} of its loss "
                "allowance released (paid down below it)"
            )

    def _target(self, e: Any) -> str:
        if e.loan is not None:
            return e.loan
        return e.account if e.pool is None else f"pool:{e.pool}"

    def _on_collateral_pledged(self, e: ev.CollateralPledged, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        target = self._target(e)
        pledgor = self._move_out(change, e.from_account, e.asset, minor)
        self._post(change, pledgor, f"pledged:{target}", e.asset, minor)
        pledged = self.collateral.setdefault(target, {})
        self._remember("collateral", target, e.asset, pledged.get(e.asset, _ABSENT))
        pledged[e.asset] = pledged.get(e.asset, 0) + minor
        change.targets.add(target)
        for loan in self.health_loans(target):
            self._index_health(e.asset, loan)

    def _release(self, e: Any, change: Change, target: str, minor: int) -> str:
        pledgor = self.registry.pledgor(e.loan, e.account, e.pool)
        self._post(change, pledgor, f"pledged:{target}", e.asset, -minor)
        self._remember("collateral", target, e.asset, self.collateral[target][e.asset])
        self.collateral[target][e.asset] -= minor
        change.targets.add(target)
        return pledgor

    def _on_collateral_released(self, e: ev.CollateralReleased, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        self._release(e, change, self._target(e), minor)
        self._move_in(change, e.to_account, e.asset, minor)

    def _on_collateral_seized(self, e: ev.CollateralSeized, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        target = self._target(e)
        pledgor = self._release(e, change, target, minor)
        self._post(change, pledgor, EQUITY, e.asset, minor)
        taker = self._move_in(change, e.to_account, e.asset, minor)
        self._post(change, taker, EQUITY, e.asset, -minor)
        if not e.credited:
            return
        if e.loan is not None:
            loan = self.registry.loans[e.loan]
            credited = self._minor(loan.asset, e.credited)
            self._post(change, loan.lender, f"loan:{e.loan}", loan.asset, -credited)
            self._post(change, loan.lender, EQUITY, loan.asset, credited)
            self._post(change, loan.borrower, f"loan:{e.loan}", loan.asset, credited)
            self._post(change, loan.borrower, EQUITY, loan.asset, -credited)
            self._release_allowance(change, e.loan)
        else:
            asset, account = e.credited_asset, e.account
            assert asset is not None and account is not None  # one of loan / account (the event checks)
            credited = self._minor(asset, e.credited)
            holder = self._move_in(change, account, asset, credited)
            venue = account.partition(":")[0]
            self._post(change, venue, EQUITY, asset, credited)
            self._post(change, holder, EQUITY, asset, -credited)

    def _on_tokens_minted(self, e: ev.TokensMinted, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        issuer = self._move_in(change, e.to_account, e.asset, minor)
        self._post(change, issuer, EQUITY, e.asset, -minor)

    def _on_price_updated(self, e: ev.PriceUpdated, change: Change) -> None:
        if e.asset == self.quote:
            return  # the quote is worth 1 of itself, whatever it costs in another asset
        old = self.quotes.get(e.asset)
        self._remember("dict", self.quotes, e.asset, _ABSENT if old is None else old)
        if old is not None and old[0] != e.quote:
            self._remember("set", self.dependents[old[0]], e.asset, True)
            self.dependents[old[0]].discard(e.asset)
        if e.asset not in self.dependents[e.quote]:
            self._remember("set", self.dependents[e.quote], e.asset, False)
            self.dependents[e.quote].add(e.asset)
        self.quotes[e.asset] = (e.quote, e.price)
        # The asset, then every asset priced through it (breadth first, in name order).
        order, seen = [e.asset], {e.asset}
        for asset in order:
            for dependent in sorted(self.dependents.get(asset, ())):
                if dependent not in seen:
                    seen.add(dependent)
                    order.append(dependent)
        for asset in order:
            before = self.prices.get(asset)
            after, why = self._resolve(asset)
            old_why = self.unpriced_why.get(asset)
            if why != old_why:
                self._remember("dict", self.unpriced_why, asset, _ABSENT if old_why is None else old_why)
                if why is None:
                    self.unpriced_why.pop(asset, None)
                else:
                    self.unpriced_why[asset] = why
                    change.notices.append(f"{asset} is unpriced: {why}")
            if after != before or asset == e.asset:
                self._remember("price", asset, _ABSENT if before is None else before)
                self._set_price(asset, _ABSENT if after is None else after)
                change.repriced.append((asset, before))
        change.price_asset, change.price_before = change.repriced[0]

    def _resolve(self, asset: str) -> tuple[Decimal | None, str | None]:
        """The price of ``asset`` in the quote through its chain of quotes, or why there is none."""
        chain = [asset]
        price = Decimal(1)
        current = asset
        while True:
            link = self.quotes.get(current)
            if link is None:
                return None, (f"no price of {current} in {self.quote} (chain {' -> '.join(chain)})")
            quote, local = link
            price = VALUE_CONTEXT.multiply(price, local)
            if quote == self.quote:
                return price, None
            if quote in chain:
                return None, f"its prices form a cycle ({' -> '.join([*chain, quote])})"
            chain.append(quote)
            current = quote

    def unpriced(self, asset: str) -> str | None:
        """Why ``asset`` has no value in the quote (None when it has one)."""
        if asset == self.quote or asset in self.prices:
            return None
        return self.unpriced_why.get(asset, f"no price of {asset} in {self.quote} yet")

    def _on_entity_registered(self, e: ev.EntityRegistered, change: Change) -> None:
        self._remember("dict", self.kinds, e.entity, _ABSENT)
        self.kinds[e.entity] = e.kind
        self._family.pop(e.entity, None)
        self._applies.clear()

    def _on_account_opened(self, e: ev.AccountOpened, change: Change) -> None:
        if e.purpose == "customer":
            venue, _, name = e.account.partition(":")
            self._remember("set", self.customer_names[venue], name, False)
            self.customer_names[venue].add(name)

    def _on_trade(self, e: ev.Trade, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        payment = self.registry.minor(e.pay_asset, e.payment)
        seller = e.seller_from.partition(":")[0]
        buyer = e.buyer_from.partition(":")[0]
        # What the buyer paid is the book value of what it took in (when the payment has a value).
        if self._unit_price(e.pay_asset) is not None:
            buyer_key = (buyer, e.buyer_to.partition(":")[2], e.asset)
            self._entry_cost[buyer_key] = self.value(payment, e.pay_asset)
        sold_key = (seller, e.seller_from.partition(":")[2], e.asset)
        book_before = self.book_value.get(sold_key)
        self._move_out(change, e.seller_from, e.asset, minor)
        self._move_in(change, e.buyer_to, e.asset, minor)
        self._post(change, seller, EQUITY, e.asset, minor)
        self._post(change, buyer, EQUITY, e.asset, -minor)
        self._move_out(change, e.buyer_from, e.pay_asset, payment)
        self._move_in(change, e.seller_to, e.pay_asset, payment)
        self._post(change, buyer, EQUITY, e.pay_asset, payment)
        self._post(change, seller, EQUITY, e.pay_asset, -payment)
        self._entry_cost.clear()
        if book_before is not None and self._unit_price(e.pay_asset) is not None:
            cost = SUM_CONTEXT.subtract(book_before, self.book_value.get(sold_key, ZERO))
            gain = VALUE_CONTEXT.subtract(self.value(payment, e.pay_asset), cost)
            change.notices.append(
                f"{seller} sold {e.amount:,f} {e.asset} carried at {self.round_value(cost):,f} "
                f"{self.quote} for {self.round_value(self.value(payment, e.pay_asset)):,f}: "
                f"a realised {'gain' if gain >= 0 else 'loss'} of {self.round_value(abs(gain)):,f}"
            )

    def _on_holding_impaired(self, e: ev.HoldingImpaired, change: Change) -> None:
        entity, _, name = e.account.partition(":")
        key = (entity, name, e.asset)
        units = self.amount(max(self.balances.get(key, 0), 0), e.asset)
        before = self.book_value.get(key, ZERO)
        after = SUM_CONTEXT.multiply(units, e.book_price)
        self._remember("dict", self.book_value, key, self.book_value.get(key, _ABSENT))
        self.book_value[key] = after
        self._cost_key(key, True)
        change.entities.add(entity)
        change.accounts.add(key)
        moved = SUM_CONTEXT.subtract(before, after)
        change.notices.append(
            f"{e.account} {e.asset} written {'down' if moved >= 0 else 'up'} by "
            f"{self.round_value(abs(moved)):,f} {self.quote} to a book value of {self.round_value(after):,f}"
        )

    def _on_loan_impaired(self, e: ev.LoanImpaired, change: Change) -> None:
        loan = self.registry.loans[e.loan]
        minor = self._minor(loan.asset, e.amount)
        self._post(change, loan.lender, f"{ALLOWANCE}:{e.loan}", loan.asset, -minor)
        self._post(change, loan.lender, EQUITY, loan.asset, minor)
        change.targets.add(e.loan)

    def _on_deposit_insurance(self, e: ev.DepositInsurance, change: Change) -> None:
        old = self.insurance.get((e.venue, e.asset), _ABSENT)
        self._remember("insurance", e.venue, e.asset, old)
        limit = self._minor(e.asset, e.limit)
        self._set_insurance(e.venue, e.asset, (e.insurer, limit) if limit else _ABSENT)
        change.entities.add(e.venue)

    def _on_insurer_payout(self, e: ev.InsurerPayout, change: Change) -> None:
        minor = self._minor(e.asset, e.amount)
        venue = e.account.partition(":")[0]
        # The depositor's claim on the venue passes to the insurer (subrogation) for what it paid.
        holder = self._move_out(change, e.account, e.asset, minor)
        self._post(change, venue, f"due-to:{e.insurer}", e.asset, -minor)
        self._post(change, e.insurer, f"due-from:{venue}", e.asset, minor)
        self._move_out(change, e.paid_from, e.asset, minor)
        if e.to is not None:
            self._move_in(change, e.to, e.asset, minor)
        else:
            self._post(change, holder, EXTERNAL, e.asset, minor)

    def _on_resolution(self, e: ev.Resolution, change: Change) -> None:
        self._remember("dict", self.failed, e.entity, self.failed.get(e.entity, _ABSENT))
        self.failed[e.entity] = e.method
        change.entities.add(e.entity)
        if e.to_entity is None:
            return
        for ref in e.accounts or ():
            name = ref.partition(":")[2]
            new_ref = f"{e.to_entity}:{name}"
            info = self.registry.accounts[new_ref]
            if info.purpose == "customer" and name not in self.customer_names[e.to_entity]:
                self._remember("set", self.customer_names[e.to_entity], name, False)
                self.customer_names[e.to_entity].add(name)
            for asset in sorted(self.entity_assets.get(e.entity, ())):
                raw = self.balances.get((e.entity, name, asset), 0)
                if not raw:
                    continue
                book = self.book_value.get((e.entity, name, asset))
                if book is not None:
                    self._entry_cost[(e.to_entity, name, asset)] = book
                # The account leaves the failed entity's books and opens in the acquirer's, with
                # the same balance; each side's equity takes the difference, per asset.
                self._post(change, e.entity, name, asset, -raw)
                self._post(change, e.entity, EQUITY, asset, raw)
                self._post(change, e.to_entity, name, asset, raw)
                self._post(change, e.to_entity, EQUITY, asset, -raw)
                if info.purpose == "customer":
                    assert info.holder is not None
                    self._post(change, info.holder, f"claim:{ref}", asset, raw)
                    self._post(change, info.holder, f"claim:{new_ref}", asset, -raw)
        for (venue, asset), cover in list(self.insurance.items()):
            if venue == e.entity and (e.to_entity, asset) not in self.insurance:
                self._remember("insurance", e.to_entity, asset, _ABSENT)
                self._set_insurance(e.to_entity, asset, cover)
                # The cover moves the acquirer's insured part and run-off: its liquidity must be
                # looked at even when no balance of its moved (accounts none, or all empty).
                change.entities.add(e.to_entity)
        self._entry_cost.clear()
        change.notices.append(
            f"{e.entity} resolved by {e.authority} ({e.method.replace('_', ' ')}): "
            f"{len(e.accounts or ())} account(s) moved to {e.to_entity}"
        )

    def _on_margin_call(self, e: ev.MarginCall, change: Change) -> None:
        target = e.loan if e.loan is not None else f"pool:{e.pool}"
        self._remember("dict", self.margin_calls, target, self.margin_calls.get(target, _ABSENT))
        self.margin_calls[target] = (e.id, e.amount, e.due)
        change.targets.add(target)
        change.notices.append(
            f"margin call on {target}"
            + (f" for {e.amount:,f} {self.quote}" if e.amount is not None else "")
            + (f", due {ev.format_instant(e.due)}" if e.due is not None else "")
        )

    # -- the collateral break-price index --------------------------------------------------------
    def _reindex_cover(self, target: str) -> None:
        old = self.cover_key.pop(target, None)
        if old is not None:
            entries = self.cover_index[old[0]]
            entries.pop(bisect.bisect_left(entries, (old[1], target)))
        for asset in self._complex_of.pop(target, ()):
            self.complex_targets[asset].discard(target)
        if target not in self.collateral:
            return  # never secured (or its first pledge was taken back): nothing to cover
        held = [(a, m) for a, m in self.collateral[target].items() if m]
        debt_assets = self._debt_assets(target)
        if len(held) == 1 and debt_assets <= {self.quote} and held[0][0] != self.quote:
            asset, minor = held[0]
            debt = self.secured_debt(target)
            keep = VALUE_CONTEXT.multiply(
                self.amount(minor, asset), SUM_CONTEXT.subtract(1, self.collateral_haircut(asset))
            )
            if debt <= 0:
                k = Decimal(0)
            elif keep <= 0:
                k = Decimal("Infinity")
            else:
                k = VALUE_CONTEXT.divide(
                    VALUE_CONTEXT.multiply(debt, self.policy.min_collateral_coverage), keep
                )
            self.cover_key[target] = (asset, k)
            bisect.insort(self.cover_index[asset], (k, target))
        else:
            assets = {a for a, _ in held} | debt_assets
            if assets:  # a settled target (no collateral, no debt) needs no entry
                self._complex_of[target] = assets
            for asset in assets:
                self.complex_targets[asset].add(target)

    def _debt_assets(self, target: str) -> set[str]:
        loan = self.registry.loans.get(target)
        if loan is not None:
            return {loan.asset} if loan.outstanding else set()
        if target.startswith("pool:"):
            found: set[str] = set()
            for member in self.pool_loans.get(target[5:], ()):
                found |= self._debt_assets(member)
            return found
        venue, _, name = target.partition(":")
        return {
            a for a in self.entity_assets.get(venue, ()) if self.balances.get((venue, name, a), 0) > 0
        }

    def repriced_targets(self, asset: str, before: Decimal | None) -> set[str]:
        """Secured debts whose coverage may have changed when ``asset`` was repriced."""
        after = self.prices.get(asset, Decimal(0))
        low, high = sorted((before if before is not None else Decimal(0), after))
        entries = self.cover_index.get(asset, [])
        lo = bisect.bisect_left(entries, (low, ""))
        hi = bisect.bisect_right(entries, (high, "\U0010ffff"))
        found = {target for _, target in entries[lo:hi]}
        return found | self.complex_targets.get(asset, set())

    def _on_credit_line_granted(self, e: ev.CreditLineGranted, change: Change) -> None:
        key = (e.account, e.asset)
        self._remember("dict", self.limits, key, self.limits.get(key, _ABSENT))
        self.limits[key] = self._minor(e.asset, e.limit)
        venue, _, name = e.account.partition(":")
        change.accounts.add((venue, name, e.asset))

    def _on_withdrawals_halted(self, e: ev.WithdrawalsHalted, change: Change) -> None:
        self._remember("set", self.halted, e.venue, e.venue in self.halted)
        self.halted.add(e.venue)

    def _on_withdrawals_resumed(self, e: ev.WithdrawalsResumed, change: Change) -> None:
        self._remember("set", self.halted, e.venue, e.venue in self.halted)
        self.halted.discard(e.venue)

    def _on_bankruptcy_filed(self, e: ev.BankruptcyFiled, change: Change) -> None:
        self._remember("set", self.bankrupt, e.entity, e.entity in self.bankrupt)
        self.bankrupt.add(e.entity)

    # -- reading: quantities ----------------------------------------------------------------------
    def balance(self, ref: str, asset: str) -> int:
        """Minor units in account ``ref``; for a customer account, the *holder's* balance."""
        entity, _, name = ref.partition(":")
        raw = self.balances.get((entity, name, asset), 0)
        info = self.registry.accounts.get(ref)
        return -raw if info is not None and info.purpose == "customer" else raw

    def limit(self, ref: str, asset: str) -> int:
        return self.limits.get((ref, asset), 0)

    def format(self, minor: int, asset: str) -> str:
        """``minor`` units of ``asset`` for a person: grouped digits, the asset's decimals."""
        return f"{ev.from_minor(minor, self.registry.scale(asset)):,f}"  # f: never 1E-18

    def amount(self, minor: int, asset: str) -> Decimal:
        return ev.from_minor(minor, self.registry.scale(asset))

    def iter_balances(self, entity: str | None = None) -> Iterator[tuple[Key, int]]:
        """All non-zero balances, sorted by (entity, account, asset)."""
        for key in sorted(self.balances):
            if entity is None or key[0] == entity:
                yield key, self.balances[key]

    # -- reading: values --------------------------------------------------------------------------
    def price(self, asset: str) -> Decimal | None:
        """Latest price of ``asset`` in the quote (1 for the quote itself; None if never priced)."""
        if asset == self.quote:
            return Decimal(1)
        return self.prices.get(asset)

    def value(self, minor: int, asset: str) -> Decimal:
        """Exact market value of ``minor`` units of ``asset`` in the quote (0 if unpriced)."""
        if minor == 0:
            return Decimal(0)
        unit = self._unit_price(asset)
        if unit is None:
            return Decimal(0)
        return VALUE_CONTEXT.multiply(minor, unit)

    def _unit_price(self, asset: str) -> Decimal | None:
        # The value of one minor unit: price x 10^-scale (exact; the same digits and exponent
        # as pricing the amount and then shifting it). Remembered until the price changes.
        unit = self._unit_prices.get(asset, _ABSENT)
        if unit is _ABSENT:
            price = Decimal(1) if asset == self.quote else self.prices.get(asset)
            unit = None if price is None else price.scaleb(-self.registry.assets[asset].scale, VALUE_CONTEXT)
            self._unit_prices[asset] = unit
        return unit

    def haircut(self, asset: str, *, owner: str | None = None) -> Decimal:
        """Haircut of ``asset``; tokens issued by ``owner`` or an affiliate use ``affiliate_token``."""
        key = (asset, owner)
        cut = self._haircuts.get(key)
        if cut is None:
            # Assets, issuers and groups never change once declared, so this can be remembered.
            info = self.registry.assets[asset]
            if owner is not None and info.issuer is not None and self.registry.affiliated(owner, info.issuer):
                cut = self.policy.haircut("affiliate_token")
            else:
                cut = self.policy.haircut(info.kind)
            self._haircuts[key] = cut
        return cut

    def collateral_haircut(self, asset: str) -> Decimal:
        """Haircut of ``asset`` as collateral: the policy's ``collateral_haircuts`` for its kind
        (a loan book is pledgeable though not liquid), else its liquidity haircut."""
        return self.policy.collateral_haircut(self.registry.assets[asset].kind)

    def round_value(self, value: Decimal) -> Decimal:
        """Round a value once, to the quote's scale, half-even (0.125 -> 0.12, 0.135 -> 0.14)."""
        info = self.registry.assets.get(self.quote)
        scale = info.scale if info is not None else 2
        return value.quantize(
            Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_EVEN, context=VALUE_CONTEXT
        )

    def _sum(self, table: dict[tuple[str, str], int], entity: str) -> Decimal:
        total = Decimal(0)
        for asset in self.entity_assets.get(entity, ()):
            minor = table.get((entity, asset), 0)
            if minor:
                total = VALUE_CONTEXT.add(total, self.value(minor, asset))
        return total

    def total_assets(self, entity: str) -> Decimal:
        """Assets at market value: a running value, exact (the same as summing the assets)."""
        return self.assets_value.get(entity, ZERO)

    def total_liabilities(self, entity: str) -> Decimal:
        return self.liabilities_value.get(entity, ZERO)

    def equity(self, entity: str) -> Decimal:
        return VALUE_CONTEXT.subtract(self.total_assets(entity), self.total_liabilities(entity))

    def customer_liabilities(self, venue: str) -> Decimal:
        return self.liab_value.get(venue, ZERO)

    def custody_value(self, venue: str) -> Decimal:
        return self._sum(self.custody, venue)

    def customer_shortfall(self, venue: str) -> Decimal:
        gap = VALUE_CONTEXT.subtract(self.customer_liabilities(venue), self.custody_value(venue))
        return max(gap, Decimal(0))

    def holdings_value(self, entity: str, asset: str) -> Decimal:
        minor = self.held.get((entity, asset), 0) + self.pledged_by.get((entity, asset), 0)
        return self.value(minor, asset)

    def related_exposure(self, entity: str) -> Decimal:
        """Market value of ``entity``'s claims on its affiliates."""
        return self.related_value.get(entity, ZERO)

    def liquid_reserves(self, venue: str) -> Decimal:
        """Haircut value of the venue's holdings (custody and corporate), own tokens at 100% off."""
        return self.reserve_value.get(venue, ZERO)

    def own_token_value(self, entity: str) -> Decimal:
        """Market value of tokens issued by ``entity`` or an affiliate, held or pledged by it."""
        total = ZERO
        for asset in self.own_assets.get(entity, ()):
            total = VALUE_CONTEXT.add(total, self.holdings_value(entity, asset))
        return total

    def _is_own_token(self, entity: str, asset: str) -> bool:
        # Remembered: issuers and groups never change once declared.
        key = (entity, asset)
        own = self._own_tokens.get(key)
        if own is None:
            issuer = self.registry.assets[asset].issuer
            own = self._own_tokens[key] = issuer is not None and self.registry.affiliated(entity, issuer)
        return own

    def secured_debt(self, target: str) -> Decimal:
        """Value of what a secured target owes: a loan's outstanding principal, or an account's
        negative holder balance across assets."""
        loan = self.registry.loans.get(target)
        if loan is not None:
            return self.value(loan.outstanding, loan.asset)
        if target.startswith("pool:"):
            total = ZERO
            for member in sorted(self.pool_loans.get(target[5:], ())):
                total = VALUE_CONTEXT.add(total, self.secured_debt(member))
            return total
        venue, _, name = target.partition(":")
        total = Decimal(0)
        for asset in self.entity_assets.get(venue, ()):
            owed = self.balances.get((venue, name, asset), 0)
            if owed > 0:
                total = VALUE_CONTEXT.add(total, self.value(owed, asset))
        return total

    def collateral_value(self, target: str, *, haircut: bool = True) -> Decimal:
        total = Decimal(0)
        for asset, minor in self.collateral.get(target, {}).items():
            if minor:
                value = self.value(minor, asset)
                if haircut:
                    value = VALUE_CONTEXT.multiply(value, SUM_CONTEXT.subtract(1, self.collateral_haircut(asset)))
                total = VALUE_CONTEXT.add(total, value)
        return total

    # -- reading: the general model's measures -------------------------------------------------
    def _cost_gap(self, entity: str, basis: str | None = None) -> Decimal:
        """Sum over ``entity``'s holdings carried at cost (of one ``basis``, or both) of
        book value - market value: positive where the market is below book."""
        total = ZERO
        accounts = self.registry.accounts
        for key in sorted(self.cost_keys.get(entity, ())):
            info = accounts.get(f"{key[0]}:{key[1]}")
            if info is None or (basis is not None and info.basis != basis):
                continue
            market = self.value(max(self.balances.get(key, 0), 0), key[2])
            total = VALUE_CONTEXT.add(total, VALUE_CONTEXT.subtract(self.book_value.get(key, ZERO), market))
        return total

    def equity_book(self, entity: str) -> Decimal:
        """Equity with amortized-cost holdings at book value (AFS and the rest at market)."""
        return VALUE_CONTEXT.add(self.equity(entity), self._cost_gap(entity, "amortized_cost"))

    def total_assets_book(self, entity: str) -> Decimal:
        return VALUE_CONTEXT.add(self.total_assets(entity), self._cost_gap(entity, "amortized_cost"))

    def oci(self, entity: str) -> Decimal:
        """Other comprehensive income: unrealised gains less losses of available-for-sale holdings."""
        return -self._cost_gap(entity, "available_for_sale")

    def unrealised_loss(self, entity: str) -> Decimal:
        """Book value above market value over every holding carried at cost (negative: a gain)."""
        return self._cost_gap(entity)

    def _deposits_value(self, table: dict[tuple[str, str], Any], entity: str) -> Decimal:
        total = ZERO
        for asset in sorted(self.entity_assets.get(entity, ())):
            minor = table.get((entity, asset), 0)
            if minor:
                unit = self._unit_price(asset)
                if unit is not None:
                    total = VALUE_CONTEXT.add(total, VALUE_CONTEXT.multiply(minor, unit))
        return total

    def insured_deposits(self, entity: str) -> Decimal:
        """Value of the insured part of what ``entity`` owes its depositors (banks, lenders)."""
        return self._deposits_value(self.insured, entity)

    def uninsured_deposits(self, entity: str) -> Decimal:
        return VALUE_CONTEXT.subtract(self.customer_liabilities(entity), self.insured_deposits(entity))

    def runoff_outflows(self, entity: str) -> Decimal:
        """Run-off-weighted value of the deposits that can run (the LCR's net outflows)."""
        return self._deposits_value(self.runoff, entity)

    def liquid_assets(self, entity: str) -> Decimal:
        """Holdings at market after haircuts (a loan book's haircut is 1: not liquid), own
        tokens at 100% off, pledged collateral left out (it is encumbered)."""
        return self.liquid_reserves(entity)

    def risk_weighted_assets(self, entity: str) -> Decimal:
        """Positive balances x risk weight, amortized-cost holdings at book value (banks)."""
        total = self._deposits_value(self.rwa, entity)
        accounts = self.registry.accounts
        for key in sorted(self.cost_keys.get(entity, ())):
            info = accounts.get(f"{key[0]}:{key[1]}")
            if info is not None and info.basis == "amortized_cost":
                gap = VALUE_CONTEXT.subtract(
                    self.book_value.get(key, ZERO), self.value(max(self.balances.get(key, 0), 0), key[2])
                )
                total = VALUE_CONTEXT.add(total, VALUE_CONTEXT.multiply(gap, self._weight(HOLDINGS, key[2])))
        return total

    def capital_ratio(self, entity: str) -> Decimal | None:
        """Equity at book over risk-weighted assets (None when there are none)."""
        rwa = self.risk_weighted_assets(entity)
        return VALUE_CONTEXT.divide(self.equity_book(entity), rwa) if rwa > 0 else None

    def leverage_ratio(self, entity: str) -> Decimal | None:
        """Equity at book over total assets at book (None without assets)."""
        assets = self.total_assets_book(entity)
        return VALUE_CONTEXT.divide(self.equity_book(entity), assets) if assets > 0 else None

    def liquidity_coverage(self, entity: str) -> Decimal | None:
        """Liquid assets after haircuts over run-off-weighted outflows (None without outflows)."""
        outflows = self.runoff_outflows(entity)
        return VALUE_CONTEXT.divide(self.liquid_assets(entity), outflows) if outflows > 0 else None

    def loan_health(self, loan: str) -> Decimal | None:
        """Health factor of a loan with a liquidation threshold: collateral at market x threshold
        / debt, over its pool when it is in one (None without a threshold or a debt)."""
        info = self.registry.loans[loan]
        if info.threshold is None:
            return None
        target = loan if info.pool is None else f"pool:{info.pool}"
        debt = self.secured_debt(target)
        if debt <= 0:
            return None
        market = self.collateral_value(target, haircut=False)
        return VALUE_CONTEXT.divide(VALUE_CONTEXT.multiply(market, Decimal(info.threshold)), debt)

    def loan_ltv(self, loan: str) -> Decimal | None:
        info = self.registry.loans[loan]
        target = loan if info.pool is None else f"pool:{info.pool}"
        market = self.collateral_value(target, haircut=False)
        return VALUE_CONTEXT.divide(self.secured_debt(target), market) if market > 0 else None

    def unpriced_holdings(self, entity: str) -> dict[str, Decimal]:
        """Quantities ``entity`` has or owes (net of sign, assets and liabilities apart) in assets
        that have no price: shown as unpriced wherever a value is shown, never as 0."""
        found: dict[str, Decimal] = {}
        for asset in sorted(self.entity_assets.get(entity, ())):
            if self.unpriced(asset) is None:
                continue
            held = self.pos.get((entity, asset), 0)
            owed = self.neg.get((entity, asset), 0)
            if held:
                found[f"{asset} held"] = self.amount(held, asset)
            if owed:
                found[f"{asset} owed"] = self.amount(owed, asset)
        return found

    def unpriced_owed(self, venue: str, *, table: str = "cust_liab") -> dict[str, Decimal]:
        """What ``venue`` owes customers (or, ``table="custody"``, holds for them) in assets
        that have no price: left out of every value in the quote, and said beside it (a venue
        owing 2 ETH does not owe "0 USD")."""
        amounts = getattr(self, table)
        return {
            asset: self.amount(minor, asset).normalize()
            for asset in sorted(self.entity_assets.get(venue, ()))
            if (minor := amounts.get((venue, asset), 0)) > 0 and self.unpriced(asset) is not None
        }

    def measure(
        self,
        entity: str,
        measure: str,
        *,
        asset: str | None = None,
        account: str | None = None,
        loan: str | None = None,
    ) -> Decimal | None:
        """The figure a ``balance_asserted`` event names, computed from the books (exact).

        None for a ratio that has no denominator (no risk-weighted assets, no outflows, no debt).
        """
        if measure == "balance":
            assert account is not None and asset is not None
            return self.amount(self.balance(account, asset), asset)
        if measure == "holdings_value":
            assert asset is not None
            return self.holdings_value(entity, asset)
        if measure == "loan_health":
            assert loan is not None
            return self.loan_health(loan)
        if measure == "ltv":
            assert loan is not None
            return self.loan_ltv(loan)
        return {
            "total_assets": self.total_assets,
            "total_liabilities": self.total_liabilities,
            "equity": self.equity,
            "customer_liabilities": self.customer_liabilities,
            "customer_shortfall": self.customer_shortfall,
            "equity_book": self.equity_book,
            "total_assets_book": self.total_assets_book,
            "oci": self.oci,
            "unrealised_loss": self.unrealised_loss,
            "insured_deposits": self.insured_deposits,
            "uninsured_deposits": self.uninsured_deposits,
            "capital_ratio": self.capital_ratio,
            "leverage_ratio": self.leverage_ratio,
            "liquidity_coverage": self.liquidity_coverage,
        }[measure](entity)

    # -- views -------------------------------------------------------------------------------------
    def balance_sheet(self, entities: list[str] | str) -> dict[str, Any]:
        """Assets, liabilities and equity at market value, line by line.

        With several entities (a group) the sheet is consolidated: balances between them are
        dropped, as a consolidated statement would.
        """
        group = [entities] if isinstance(entities, str) else list(entities)
        members = set(group)
        assets: dict[str, Decimal] = defaultdict(Decimal)
        liabilities: dict[str, Decimal] = defaultdict(Decimal)
        for (entity, account, asset), minor in self.iter_balances():
            if entity not in members:
                continue
            cls, other = self.classify(entity, account)
            if cls in _OFF_SHEET or (len(members) > 1 and other in members):
                continue
            line = f"{_line_name(cls, account, other)} {asset}"
            if minor > 0 or cls == ALLOWANCE:  # an allowance is a (negative) asset line
                assets[line] = VALUE_CONTEXT.add(assets[line], self.value(minor, asset))
            else:
                liabilities[line] = VALUE_CONTEXT.add(liabilities[line], self.value(-minor, asset))
        total_a = total_l = ZERO
        for value in assets.values():  # not sum(): the default context rounds to 28 digits
            total_a = VALUE_CONTEXT.add(total_a, value)
        for value in liabilities.values():
            total_l = VALUE_CONTEXT.add(total_l, value)
        sheet: dict[str, Any] = {
            "entities": group,
            "quote": self.quote,
            "assets": {k: self.round_value(v) for k, v in sorted(assets.items())},
            "liabilities": {k: self.round_value(v) for k, v in sorted(liabilities.items())},
            "total_assets": self.round_value(total_a),
            "total_liabilities": self.round_value(total_l),
            "equity": self.round_value(VALUE_CONTEXT.subtract(total_a, total_l)),
        }
        # What a single entity's sheet adds under the general model, only where it applies
        # (so that sheets of entities without such holdings keep their shape).
        if len(group) == 1:
            entity = group[0]
            if self.cost_keys.get(entity):
                gap = self._cost_gap(entity, "amortized_cost")
                sheet["book"] = {
                    "total_assets": self.round_value(VALUE_CONTEXT.add(total_a, gap)),
                    "equity": self.round_value(VALUE_CONTEXT.add(VALUE_CONTEXT.subtract(total_a, total_l), gap)),
                    "oci": self.round_value(self.oci(entity)),
                    "unrealised_loss": self.round_value(self.unrealised_loss(entity)),
                }
            unpriced = self.unpriced_holdings(entity)
            if unpriced:
                sheet["unpriced"] = unpriced
        return sheet

    def group_members(self, group: str) -> list[str]:
        return sorted(e for e, g in self.registry.entities.items() if g == group)

    def coverage(self) -> list[dict[str, Any]]:
        """Customer coverage per venue and asset: what is owed, what is held in custody (for the
        venues held to segregation: a bank's or a lender's deposits are in :meth:`deposits`)."""
        rows = []
        for venue in sorted(self.venues):
            if not self.applies("segregation", venue):
                continue
            for asset in sorted(self.entity_assets.get(venue, ())):
                owed = self.cust_liab.get((venue, asset), 0)
                held = self.custody.get((venue, asset), 0)
                if owed or held:
                    rows.append(
                        {
                            "venue": venue,
                            "asset": asset,
                            "owed_to_customers": self.amount(owed, asset),
                            "in_custody": self.amount(held, asset),
                            "shortfall": self.amount(max(owed - held, 0), asset),
                        }
                    )
        return rows

    def deposits(self) -> list[dict[str, Any]]:
        """Per deposit-taker (a bank or a lender with customer accounts): what it owes
        depositors, the insured part, what is expected to run, its liquid assets, and its
        equity at market and at book with the ratios the standard invariants check."""
        rows = []
        for venue in sorted(self.venues):
            family = self._family_of(venue)
            if family not in _DEPOSIT_TAKERS:
                continue
            owed = self.customer_liabilities(venue)
            insured = self.insured_deposits(venue)

            def ratio(value: Decimal | None) -> Decimal | None:
                return None if value is None else value.quantize(Decimal("0.0001"), context=VALUE_CONTEXT)

            rows.append(
                {
                    "venue": venue,
                    "kind": self.kinds.get(venue),
                    "owed_to_depositors": self.round_value(owed),
                    "insured": self.round_value(insured),
                    "uninsured": self.round_value(VALUE_CONTEXT.subtract(owed, insured)),
                    "expected_to_run": self.round_value(self.runoff_outflows(venue)),
                    "liquid_assets": self.round_value(self.liquid_assets(venue)),
                    "liquidity_coverage": ratio(self.liquidity_coverage(venue)),
                    "equity": self.round_value(self.equity(venue)),
                    "equity_book": self.round_value(self.equity_book(venue)),
                    "capital_ratio": ratio(self.capital_ratio(venue)) if family == "bank" else None,
                    "unpriced": {a: str(m) for a, m in self.unpriced_owed(venue).items()},
                }
            )
        return rows

    def loans_view(self) -> list[dict[str, Any]]:
        """Loans and secured accounts: debt, collateral at market and haircut, loan-to-value."""
        rows = []
        targets = sorted(set(self.registry.loans) | set(self.collateral))
        for target in targets:
            debt = self.secured_debt(target)
            market = self.collateral_value(target, haircut=False)
            haircut = self.collateral_value(target)
            loan = self.registry.loans.get(target)
            pool = self.registry.pools.get(target[5:]) if target.startswith("pool:") else None
            if loan is not None:
                kind, lender, borrower = "loan", loan.lender, loan.borrower
            elif pool is not None:
                kind, lender, borrower = "pool", pool.lender, pool.borrower
            else:
                kind, lender = "account", target.partition(":")[0]
                borrower = self.registry.accounts[target].holder or ""
            extra: dict[str, Any] = {}
            if loan is not None and loan.threshold is not None:
                extra["liquidation_threshold"] = Decimal(loan.threshold)
                health = self.loan_health(target)
                extra["health_factor"] = (
                    None if health is None else health.quantize(Decimal("0.0001"), context=VALUE_CONTEXT)
                )
            if loan is not None and loan.pool is not None:
                # Its collateral is the pool's (the pool's own row): named here, not repeated.
                extra["pool"] = loan.pool
            if loan is not None and loan.impaired:
                extra["loss_allowance"] = self.amount(loan.impaired, loan.asset)
            if target in self.margin_calls:
                call, amount, due = self.margin_calls[target]
                extra["margin_call"] = {
                    "event": call,
                    "amount": amount,
                    "due": None if due is None else ev.format_instant(due),
                }
            rows.append(
                {
                    "target": target,
                    "kind": kind,
                    "lender": lender,
                    "borrower": borrower,
                    "asset": loan.asset if loan else None,
                    "outstanding": self.amount(loan.outstanding, loan.asset) if loan else None,
                    "debt_value": self.round_value(debt),
                    "collateral": {
                        a: self.amount(m, a) for a, m in sorted(self.collateral.get(target, {}).items()) if m
                    },
                    "collateral_market_value": self.round_value(market),
                    "collateral_haircut_value": self.round_value(haircut),
                    "ltv": (
                        VALUE_CONTEXT.divide(debt, market).quantize(Decimal("0.0001"), context=VALUE_CONTEXT)
                        if market
                        else None
                    ),
                    "defaulted": bool(loan and loan.defaulted),
                    **extra,
                }
            )
        return rows


# Minor amounts in the books' JSON state: ints within 64 bits, decimal strings beyond.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT_TEXT = re.compile(r"-?[0-9]{1,400}")


def _int_out(minor: int) -> int | str:
    return minor if _INT64_MIN <= minor <= _INT64_MAX else str(minor)


def _int_in(value: Any, table: str) -> int:
    if type(value) is int:
        return value
    if type(value) is str and _INT_TEXT.fullmatch(value):
        return int(value)
    raise ValueError(
        f"books state: {table}: expected an integer number of minor units (an int, or its "
        f"decimal digits in a string), got {value!r}"
    )


def check_state_version(state: dict[str, Any]) -> None:
    """Refuse (``ValueError``) a books state of another version than :data:`BOOKS_STATE_VERSION`."""
    if state.get("version") != BOOKS_STATE_VERSION:
        # Version 2 (before the general model) has no entity kinds, so the invariants that
        # depend on a kind could not be told apart: such a snapshot is rebuilt, not read.
        raise ValueError(
            f"unsupported books state version {state.get('version')!r} (expected {BOOKS_STATE_VERSION}; "
            "rebuild the snapshots with 'snapshot --rebuild')"
        )


def registry_values(rows: Any) -> list[tuple[str, str, Any]]:
    """The registry rows of a books state (``[kind, key, value]``), minor amounts checked, as
    :meth:`ledger.registry.Registry.load_values` takes them."""
    values = []
    for kind, key, value in rows:
        if kind == "pledge":
            value = _int_in(value, "registry pledge")
        elif kind == "loan":
            value = {**value, "outstanding": _int_in(value["outstanding"], "registry loan")}
            if "impaired" in value:
                value["impaired"] = _int_in(value["impaired"], "registry loan")
        values.append((kind, key, value))
    return values


def _line_name(cls: str, account: str, other: str | None) -> str:
    if cls == CUSTOMER:
        return f"customer account {account} (holder {other})"
    if cls == CLAIM:
        return f"claim on {account.removeprefix('claim:')}"
    if cls == LOAN:
        return f"{account} ({other})"
    if cls == ALLOWANCE:
        return f"loss allowance on loan:{account.removeprefix(ALLOWANCE + ':')} ({other})"
    return account
