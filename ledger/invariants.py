"""Invariants: named, incremental checks run after every event.

An invariant is any object with ``name``, ``meaning`` and ``check(ctx)`` (and optionally
``event_types``, the event types it reacts to). ``check`` looks only at
what the event touched (``ctx.change``) and yields a :class:`Status` per subject it looked at:
ok or not, the observed value and the threshold, in any order. The replay engine turns a subject
that stops being ok into an *opened* violation and one that becomes ok again into a *closed* one,
and reports them in invariant order, then by subject, whatever order they came in. Each check
costs O(subjects touched x assets of one entity), never a rescan of all accounts.

Write your own by giving an object those three members (no subclassing needed), for example::

    class NoBigWithdrawals:
        name = "no-big-withdrawals"
        meaning = "no single withdrawal above 1,000,000 USD"

        def check(self, ctx):
            e = ctx.event
            if e.type == "withdrawal" and e.asset == "USD":
                yield Status(e.account, e.amount <= 1_000_000, str(e.amount), "1000000")
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple, Protocol

import events as ev
from ledger.books import (
    CUSTODY,
    CUSTOMER,
    HOLDINGS,
    SUM_CONTEXT,
    VALUE_CONTEXT,
    ZERO,
    Books,
    Change,
)
from ledger.policy import Policy


class Status(NamedTuple):
    """The state of one subject of one invariant after an event.

    Attributes:
        subject: what is checked (``ftx/USD``, a loan id, an account).
        ok: whether the invariant holds for it.
        observed: the value seen, as text.
        threshold: the bound it is held to, as text.
        detail: a plain-language sentence for a person.

    A named tuple (immutable, cheap to build): invariants yield one per subject per event.
    """

    subject: str
    ok: bool
    observed: str = ""
    threshold: str = ""
    detail: str = ""


class Context(NamedTuple):
    """What an invariant sees: the books after the event, the event, what it changed."""

    books: Books
    policy: Policy
    event: ev.Event
    change: Change
    seq: int


class Invariant(Protocol):
    """``name``, ``meaning`` and ``check(ctx)``; optionally ``event_types``: a set of event type
    names the invariant reacts to (the replay then calls ``check`` only for those events).
    Without it, ``check`` is called after every event."""

    name: str
    meaning: str

    def check(self, ctx: Context) -> Iterable[Status]: ...


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    return VALUE_CONTEXT.divide(numerator, denominator)


def _scaled(base: Decimal, bound: Decimal) -> Decimal:
    """``base x bound``, exactly: a ratio ``x / base`` is compared with ``bound`` as
    ``x`` against this product, so no rounded ratio decides a check (and no division is paid
    for a subject that is fine; the ratio is computed only to report a breach)."""
    return SUM_CONTEXT.multiply(base, bound)


def fmt_ratio(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.0001"), context=VALUE_CONTEXT))


def fmt_value(books: Books, value: Decimal) -> str:
    return f"{books.round_value(value):,f} {books.quote}"


class Conservation:
    """Every event's postings sum to zero per entity and asset. A failure is a bug, not history."""

    name: ClassVar[str] = "conservation"
    meaning: ClassVar[str] = "every event's postings balance per entity and asset"

    def check(self, ctx: Context) -> Iterator[Status]:
        sums: dict[tuple[str, str], int] = {}
        for entity, _, asset, delta in ctx.change.postings:
            key = (entity, asset)
            sums[key] = sums.get(key, 0) + delta
        for (entity, asset), total in sums.items():  # postings order: deterministic
            if total == 0:
                yield Status(f"{entity}/{asset}", True)
                continue
            yield Status(
                f"{entity}/{asset}",
                False,
                observed=f"{ctx.books.format(total, asset)} {asset}",
                threshold="0",
                detail=f"the postings of {ctx.event.id} do not balance for {entity} in {asset}",
            )


class NoUnauthorisedNegative:
    """Holdings never go below zero; a customer account only as far as its credit line."""

    name: ClassVar[str] = "no-unauthorised-negative"
    meaning: ClassVar[str] = "no balance below zero beyond an explicit, recorded credit line"

    def check(self, ctx: Context) -> Iterator[Status]:
        books = ctx.books
        balances, limits = books.balances, books.limits
        for key in ctx.change.accounts:
            entity, account, asset = key
            cls, holder = books.classify(entity, account)
            if cls == HOLDINGS or cls == CUSTODY:
                balance = balances.get(key, 0)
                if balance >= 0:
                    yield Status(f"{entity}:{account}/{asset}", True)
                    continue
                yield Status(
                    f"{entity}:{account}/{asset}",
                    False,
                    observed=f"{books.format(balance, asset)} {asset}",
                    threshold="0",
                    detail=f"{entity}:{account} holds less than nothing: {books.format(balance, asset)} {asset}",
                )
            elif cls == CUSTOMER:
                ref = f"{entity}:{account}"
                balance = -balances.get(key, 0)  # the holder's view of a customer account
                limit = limits.get((ref, asset), 0) if limits else 0
                if balance >= -limit:
                    yield Status(f"{ref}/{asset}", True)
                    continue
                yield Status(
                    f"{ref}/{asset}",
                    False,
                    observed=f"{books.format(balance, asset)} {asset}",
                    threshold=f"-{books.format(limit, asset)} {asset}" if limit else f"0 {asset}",
                    detail=(
                        f"{holder}'s account at {entity} is at {books.format(balance, asset)} {asset}"
                        + (
                            f", beyond its credit line of {books.format(limit, asset)}"
                            if limit
                            else " with no credit line recorded"
                        )
                    ),
                )


class Segregation:
    """Per venue and asset, customer-custody holdings cover what customers are owed."""

    name: ClassVar[str] = "segregation"
    meaning: ClassVar[str] = "per venue and asset, segregated customer holdings >= customer liabilities"

    def check(self, ctx: Context) -> Iterator[Status]:
        books = ctx.books
        for venue, asset in ctx.change.venue_assets:
            if venue not in books.venues or not books.applies(self.name, venue):
                continue
            owed = books.cust_liab.get((venue, asset), 0)
            held = books.custody.get((venue, asset), 0)
            if held >= owed:
                yield Status(f"{venue}/{asset}", True)
                continue
            yield Status(
                f"{venue}/{asset}",
                False,
                observed=f"{books.format(held, asset)} {asset} in custody",
                threshold=f"{books.format(owed, asset)} {asset} owed",
                detail=(
                    f"{venue} owes customers {books.format(owed, asset)} {asset} but holds "
                    f"{books.format(held, asset)} in segregated custody "
                    f"(short {books.format(owed - held, asset)})"
                ),
            )


def _venues_touched(ctx: Context) -> list[str]:
    """Venues whose reserves may have moved, computed once per event."""
    change = ctx.change
    if change.venues_touched is None:
        books = ctx.books
        venues = {v for v, _ in change.venue_assets} | (change.entities & books.venues)
        for asset, _ in change.repriced:
            venues |= books.asset_entities.get(asset, set()) & books.venues
        change.venues_touched = list(venues)
    return change.venues_touched


def _entities_touched(ctx: Context) -> list[str]:
    """Entities whose balance sheet may have moved, computed once per event."""
    change = ctx.change
    if change.entities_touched is None:
        entities = change.entities
        for asset, _ in change.repriced:
            entities = entities | ctx.books.asset_entities.get(asset, set())
        change.entities_touched = list(entities)
    return change.entities_touched


class ReserveRatio:
    """Liquid, haircut-valued holdings of a venue against what it owes customers."""

    name: ClassVar[str] = "reserve-ratio"
    meaning: ClassVar[str] = "liquid haircut reserves / customer liabilities >= policy minimum"

    def check(self, ctx: Context) -> Iterator[Status]:
        books, minimum = ctx.books, ctx.policy.min_reserve_ratio
        for venue in _venues_touched(ctx):
            if not books.applies(self.name, venue):
                continue
            owed = books.customer_liabilities(venue)
            if owed <= 0:
                yield Status(venue, True)
                continue
            reserves = books.liquid_reserves(venue)
            if reserves >= _scaled(owed, minimum):
                yield Status(venue, True)
                continue
            ratio = _ratio(reserves, owed)
            yield Status(
                venue,
                False,
                observed=fmt_ratio(ratio),
                threshold=fmt_ratio(minimum),
                detail=(
                    f"{venue}'s liquid reserves ({fmt_value(books, reserves)} after haircuts) "
                    f"cover {fmt_ratio(ratio)} of the {fmt_value(books, owed)} it owes customers"
                ),
            )


class CollateralCoverage:
    """Each secured debt (a loan or a customer account with collateral) is covered."""

    name: ClassVar[str] = "collateral-coverage"
    meaning: ClassVar[str] = "per secured loan or account, haircut collateral >= debt x margin"

    def check(self, ctx: Context) -> Iterator[Status]:
        books, margin = ctx.books, ctx.policy.min_collateral_coverage
        targets = {t for t in ctx.change.targets if t in books.collateral}
        for asset, before in ctx.change.repriced:
            targets |= books.repriced_targets(asset, before)
        for target in targets:
            debt = books.secured_debt(target)
            if debt <= 0:
                yield Status(target, True)
                continue
            value = books.collateral_value(target)
            if value >= _scaled(debt, margin):
                yield Status(target, True)
                continue
            ratio = _ratio(value, debt)
            yield Status(
                target,
                False,
                observed=fmt_ratio(ratio),
                threshold=fmt_ratio(margin),
                detail=(
                    f"collateral against {target} is worth {fmt_value(books, value)} after "
                    f"haircuts for a debt of {fmt_value(books, debt)} (coverage {fmt_ratio(ratio)})"
                ),
            )


class OwnTokenConcentration:
    """How much of an entity's assets are tokens it or its affiliates issued."""

    name: ClassVar[str] = "own-token-concentration"
    meaning: ClassVar[str] = "share of assets in self- or affiliate-issued tokens <= policy maximum"

    def check(self, ctx: Context) -> Iterator[Status]:
        books, maximum = ctx.books, ctx.policy.max_own_token_share
        for entity in _entities_touched(ctx):
            own = books.own_token_value(entity)
            total = books.total_assets(entity) if own > 0 else ZERO
            if own <= 0 or total <= 0:
                yield Status(entity, True)
                continue
            if own <= _scaled(total, maximum):
                yield Status(entity, True)
                continue
            share = _ratio(own, total)
            yield Status(
                entity,
                False,
                observed=fmt_ratio(share),
                threshold=fmt_ratio(maximum),
                detail=(
                    f"{fmt_ratio(share)} of {entity}'s {fmt_value(books, total)} of assets are "
                    f"tokens issued by itself or an affiliate ({fmt_value(books, own)})"
                ),
            )


class RelatedPartyExposure:
    """Claims on affiliates against customer liabilities (venues) or total assets (others)."""

    name: ClassVar[str] = "related-party-exposure"
    meaning: ClassVar[str] = (
        "claims on affiliates / customer liabilities (venues) or total assets <= policy maximum"
    )

    def check(self, ctx: Context) -> Iterator[Status]:
        books, maximum = ctx.books, ctx.policy.max_related_party_exposure
        for entity in _entities_touched(ctx):
            exposure = books.related_exposure(entity)
            if exposure <= 0:
                yield Status(entity, True)
                continue
            is_venue = entity in books.venues
            base = books.customer_liabilities(entity) if is_venue else books.total_assets(entity)
            if base <= 0:
                yield Status(entity, True)
                continue
            if exposure <= _scaled(base, maximum):
                yield Status(entity, True)
                continue
            share = _ratio(exposure, base)
            against = "customer liabilities" if is_venue else "total assets"
            yield Status(
                entity,
                False,
                observed=fmt_ratio(share),
                threshold=fmt_ratio(maximum),
                detail=(
                    f"{entity} is owed {fmt_value(books, exposure)} by affiliates, "
                    f"{fmt_ratio(share)} of its {against} ({fmt_value(books, base)})"
                ),
            )


class WithdrawalsHonoured:
    """A withdrawal request that is not paid is a violation, until the venue pays again."""

    name: ClassVar[str] = "withdrawals-honoured"
    meaning: ClassVar[str] = "every withdrawal request is paid"
    event_types: ClassVar[frozenset[str]] = frozenset({"withdrawal"})

    def check(self, ctx: Context) -> Iterator[Status]:
        change = ctx.change
        if change.withdrawal_refused is not None:
            event = ctx.event
            assert isinstance(event, ev.Withdrawal)
            venue = event.account.partition(":")[0]
            yield Status(
                venue,
                False,
                observed=f"{ev.format_decimal(event.amount)} {event.asset} not paid",
                threshold="paid on request",
                detail=f"a withdrawal of {event.amount:,f} {event.asset} from {event.account} was not paid: {change.withdrawal_refused}",
            )
        elif change.withdrawal_paid is not None:
            yield Status(change.withdrawal_paid, True)


class Assertions:
    """Every ``balance_asserted`` matches the books within its tolerance."""

    name: ClassVar[str] = "assertions"
    meaning: ClassVar[str] = "each figure from the public record matches the books within its tolerance"
    event_types: ClassVar[frozenset[str]] = frozenset({"balance_asserted"})

    def check(self, ctx: Context) -> Iterator[Status]:
        event = ctx.event
        if not isinstance(event, ev.BalanceAsserted):
            return
        result = assertion_result(ctx.books, event)
        yield Status(
            result["subject"],
            result["ok"],
            observed=result["actual"],
            threshold=result.get("bound", f"{result['expected']} ± {result['tolerance']}"),
            detail=result["detail"],
        )


def _bound_text(event: ev.BalanceAsserted, expected: str) -> str:
    tolerance = ev.format_decimal(event.tolerance)
    if event.one_sided == "at_least":
        return f">= {expected}" + (f" - {tolerance}" if event.tolerance else "")
    if event.one_sided == "at_most":
        return f"<= {expected}" + (f" + {tolerance}" if event.tolerance else "")
    return f"{expected} ± {tolerance}"


def _holds(event: ev.BalanceAsserted, gap: Decimal) -> bool:
    """Whether a figure ``gap`` away from the record (books - record) matches it."""
    if event.one_sided == "at_least":
        return gap >= -event.tolerance
    if event.one_sided == "at_most":
        return gap <= event.tolerance
    return gap.copy_abs() <= event.tolerance


_BOUND_WORDS = {"equal": "was", "at_least": "was at least", "at_most": "was at most"}


def assertion_result(books: Books, event: ev.BalanceAsserted) -> dict[str, Any]:
    """Compare one assertion with the books: subject, ok, actual, expected, gap, detail."""
    subject = "/".join(
        x for x in (event.entity, event.measure, event.account or "", event.asset or "", event.loan or "") if x
    )
    what = event.measure.replace("_", " ")
    if event.measure in ev.RATIO_MEASURES:
        return _ratio_result(books, event, subject, what)
    actual = books.measure(event.entity, event.measure, asset=event.asset, account=event.account)
    assert actual is not None
    if event.measure == "balance":
        unit = event.asset
        actual_r = actual
    else:
        unit = event.quote
        if unit != books.quote:
            # The books value in the policy quote; restate in the figure's own quote asset.
            price = books.price(unit) if unit in books.registry.assets else None
            if price is None:
                return {
                    "subject": subject,
                    "ok": False,
                    "actual": "unpriced",
                    "expected": f"{ev.format_decimal(event.expected)} {unit}",
                    "tolerance": ev.format_decimal(event.tolerance),
                    "gap": "unknown",
                    "detail": (
                        f"the record states {event.entity} {what} in "
                        f"{unit}, which has no price in {books.quote} yet: it cannot be compared"
                    ),
                }
            actual = VALUE_CONTEXT.divide(actual, price)
        scale = books.registry.assets[unit].scale if unit in books.registry.assets else 2
        actual_r = actual.quantize(Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_EVEN, context=VALUE_CONTEXT)
    gap = SUM_CONTEXT.subtract(actual_r, event.expected)  # exact: 28 digits would round
    expected = f"{ev.format_decimal(event.expected)} {unit}"
    return {
        "subject": subject,
        "ok": _holds(event, gap),
        "actual": f"{ev.format_decimal(actual_r)} {unit}",
        "expected": expected,
        "bound": _bound_text(event, expected),
        "tolerance": ev.format_decimal(event.tolerance),
        "gap": f"{ev.format_decimal(gap)} {unit}",
        "detail": (
            f"the record says {event.entity} {what}"
            + (f" of {event.asset}" if event.asset and event.measure != "balance" else "")
            + f" {_BOUND_WORDS[event.one_sided]} {event.expected:,f} {unit} (± {event.tolerance:,f}); "
            + f"the books say {actual_r:,f} (gap {gap:,f})"
            + _unpriced_note(books, event)
        ),
    }


def _unpriced_note(books: Books, event: ev.BalanceAsserted) -> str:
    """For a value in the quote: what the entity has or owes that has no price (not counted)."""
    if event.measure == "balance":
        return ""
    unpriced = books.unpriced_holdings(event.entity)
    if not unpriced:
        return ""
    return "; not counted, unpriced: " + ", ".join(f"{amount.normalize():,f} {what}" for what, amount in unpriced.items())


def _ratio_result(books: Books, event: ev.BalanceAsserted, subject: str, what: str) -> dict[str, Any]:
    """A ratio measure: a plain fraction, compared at the finer of the record's decimals and
    its tolerance's (at least 4)."""
    of = f" of loan {event.loan}" if event.loan else ""
    actual = books.measure(event.entity, event.measure, asset=event.asset, account=event.account, loan=event.loan)
    expected = ev.format_decimal(event.expected)
    if actual is None:
        return {
            "subject": subject,
            "ok": False,
            "actual": "undefined",
            "expected": expected,
            "bound": _bound_text(event, expected),
            "tolerance": ev.format_decimal(event.tolerance),
            "gap": "unknown",
            "detail": f"the record states {event.entity}'s {what}{of}; the books have no denominator for it (nothing to divide by)",
        }
    places = max(4, -event.expected.as_tuple().exponent, -event.tolerance.as_tuple().exponent)  # type: ignore[operator]
    actual_r = actual.quantize(Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_EVEN, context=VALUE_CONTEXT)
    gap = SUM_CONTEXT.subtract(actual_r, event.expected)
    return {
        "subject": subject,
        "ok": _holds(event, gap),
        "actual": ev.format_decimal(actual_r),
        "expected": expected,
        "bound": _bound_text(event, expected),
        "tolerance": ev.format_decimal(event.tolerance),
        "gap": ev.format_decimal(gap),
        "detail": (
            f"the record says {event.entity}'s {what}{of} {_BOUND_WORDS[event.one_sided]} {expected} "
            f"(± {ev.format_decimal(event.tolerance)}); the books say {ev.format_decimal(actual_r)} "
            f"(gap {ev.format_decimal(gap)})"
        ),
    }


class ReservesCoverLiabilities:
    """Per venue and asset, segregated custody after haircuts covers what customers are owed:
    the reserves statement of a proof of reserves (``ledger proof reserves``), checked at every
    step. Not standard: the policy switch ``proof_of_reserves = true`` adds it.

    Covered when ``custody x (1 - haircut) >= owed`` in the asset's own units, exactly (for a
    priced asset the same as comparing the market values; prices cancel, so a price update
    cannot change it and only events that post to a venue's custody or customer accounts are
    looked at).
    """

    name: ClassVar[str] = "reserves-cover-liabilities"
    meaning: ClassVar[str] = (
        "per venue and asset, customer-custody holdings after haircuts >= customer liabilities"
    )

    def check(self, ctx: Context) -> Iterator[Status]:
        books = ctx.books
        for venue, asset in ctx.change.venue_assets:
            if venue not in books.venues or not books.applies(self.name, venue):
                continue
            owed = books.cust_liab.get((venue, asset), 0)
            held = books.custody.get((venue, asset), 0)
            haircut = books.haircut(asset, owner=venue)
            kept = SUM_CONTEXT.multiply(max(held, 0), SUM_CONTEXT.subtract(1, haircut))
            if kept >= owed:
                yield Status(f"{venue}/{asset}", True)
                continue
            reserve = Decimal(kept).scaleb(-books.registry.scale(asset), SUM_CONTEXT)
            cut = ev.format_decimal(haircut)
            yield Status(
                f"{venue}/{asset}",
                False,
                observed=f"{reserve:,f} {asset} reserves after a {cut} haircut",
                threshold=f"{books.format(owed, asset)} {asset} owed",
                detail=(
                    f"{venue} owes customers {books.format(owed, asset)} {asset}; its custody of "
                    f"{books.format(held, asset)} counts as {reserve:,f} after a {cut} haircut "
                    f"(short {SUM_CONTEXT.subtract(books.amount(owed, asset), reserve):,f})"
                ),
            )


class Solvency:
    """Equity at market value is not negative; equity at book value is reported beside it."""

    name: ClassVar[str] = "solvency"
    meaning: ClassVar[str] = "equity at market value >= 0 (assets at market cover liabilities)"

    def check(self, ctx: Context) -> Iterator[Status]:
        books = ctx.books
        for entity in _entities_touched(ctx):
            if not books.applies(self.name, entity):
                continue
            assets = books.total_assets(entity)
            liabilities = books.total_liabilities(entity)
            if assets >= liabilities:
                yield Status(entity, True)
                continue
            equity = VALUE_CONTEXT.subtract(assets, liabilities)
            book = books.equity_book(entity)
            at_book = (
                f"; at book value its equity is {fmt_value(books, book)}"
                if books.cost_keys.get(entity)
                else ""
            )
            unpriced = books.unpriced_holdings(entity)
            yield Status(
                entity,
                False,
                observed=fmt_value(books, equity),
                threshold=f"0 {books.quote}",
                detail=(
                    f"{entity}: liabilities of {fmt_value(books, liabilities)} exceed its assets at "
                    f"market value ({fmt_value(books, assets)}): equity {fmt_value(books, equity)}"
                    + at_book
                    + (f" (unpriced, not counted: {', '.join(unpriced)})" if unpriced else "")
                ),
            )


class LiquidityCoverage:
    """Liquid assets after haircuts cover the deposits that can run, weighted by run-off rates
    (the idea of Basel III's liquidity coverage ratio): banks and lenders."""

    name: ClassVar[str] = "liquidity-coverage"
    meaning: ClassVar[str] = (
        "liquid assets after haircuts / run-off-weighted deposits >= policy minimum (banks, lenders)"
    )

    def check(self, ctx: Context) -> Iterator[Status]:
        books, minimum = ctx.books, ctx.policy.min_liquidity_coverage
        for entity in _entities_touched(ctx):
            if not books.applies(self.name, entity):
                continue
            outflows = books.runoff_outflows(entity)
            if outflows <= 0:
                yield Status(entity, True)
                continue
            liquid = books.liquid_assets(entity)
            if liquid >= _scaled(outflows, minimum):
                yield Status(entity, True)
                continue
            ratio = _ratio(liquid, outflows)
            yield Status(
                entity,
                False,
                observed=fmt_ratio(ratio),
                threshold=fmt_ratio(minimum),
                detail=(
                    f"{entity}: liquid assets of {fmt_value(books, liquid)} after haircuts cover "
                    f"{fmt_ratio(ratio)} of the {fmt_value(books, outflows)} of deposits expected to "
                    f"run (run-off-weighted, of {fmt_value(books, books.customer_liabilities(entity))} "
                    f"owed to depositors, {fmt_value(books, books.insured_deposits(entity))} insured)"
                ),
            )


class CapitalRatio:
    """Equity at book value against risk-weighted assets (or total assets): banks."""

    name: ClassVar[str] = "capital-ratio"
    meaning: ClassVar[str] = (
        "equity at book / risk-weighted assets (or total assets, leverage) >= policy minimum (banks)"
    )

    def check(self, ctx: Context) -> Iterator[Status]:
        books, policy = ctx.books, ctx.policy
        minimum = policy.min_capital_ratio
        leverage = policy.capital_basis == "leverage"
        for entity in _entities_touched(ctx):
            if not books.applies(self.name, entity):
                continue
            base = books.total_assets_book(entity) if leverage else books.risk_weighted_assets(entity)
            equity = books.equity_book(entity)
            if base <= 0:
                yield Status(entity, equity >= 0, fmt_value(books, equity), "0", (
                    "" if equity >= 0 else f"{entity} has negative capital ({fmt_value(books, equity)} at book)"
                ))
                continue
            if equity >= _scaled(base, minimum):
                yield Status(entity, True)
                continue
            ratio = _ratio(equity, base)
            against = "total assets at book" if leverage else "risk-weighted assets"
            yield Status(
                entity,
                False,
                observed=fmt_ratio(ratio),
                threshold=fmt_ratio(minimum),
                detail=(
                    f"{entity}: equity at book value ({fmt_value(books, equity)}) is {fmt_ratio(ratio)} "
                    f"of its {against} ({fmt_value(books, base)}); the minimum is {fmt_ratio(minimum)}"
                ),
            )


class LoanHealth:
    """Per loan with a liquidation threshold: collateral at market x threshold covers the debt."""

    name: ClassVar[str] = "loan-health"
    meaning: ClassVar[str] = "per loan with a liquidation threshold, health factor >= 1"

    def check(self, ctx: Context) -> Iterator[Status]:
        books = ctx.books
        loans: set[str] = set()
        for target in ctx.change.targets:
            loans.update(books.health_loans(target))
        for asset, _ in ctx.change.repriced:
            loans |= books.health_index.get(asset, set())
        for loan in loans:
            health = books.loan_health(loan)
            if health is None or health >= 1:
                yield Status(loan, True)
                continue
            info = books.registry.loans[loan]
            target = loan if info.pool is None else f"pool:{info.pool}"
            yield Status(
                loan,
                False,
                observed=fmt_ratio(health),
                threshold="1.0000",
                detail=(
                    f"loan {loan}: collateral{' pooled in ' + info.pool if info.pool else ''} worth "
                    f"{fmt_value(books, books.collateral_value(target, haircut=False))} at market, at a "
                    f"liquidation threshold of {info.threshold}, covers {fmt_ratio(health)} of a debt of "
                    f"{fmt_value(books, books.secured_debt(target))}: it can be liquidated"
                ),
            )


STANDARD: tuple[Any, ...] = (
    Conservation(),
    NoUnauthorisedNegative(),
    Segregation(),
    ReserveRatio(),
    CollateralCoverage(),
    OwnTokenConcentration(),
    RelatedPartyExposure(),
    WithdrawalsHonoured(),
    Assertions(),
    Solvency(),
    LiquidityCoverage(),
    CapitalRatio(),
    LoanHealth(),
)
STANDARD_NAMES: tuple[str, ...] = tuple(inv.name for inv in STANDARD)


def standard_invariants(policy: Policy | None = None) -> list[Any]:
    """The standard set, minus those the policy disables."""
    disabled = policy.disabled if policy is not None else frozenset()
    chosen = [inv for inv in STANDARD if inv.name not in disabled]
    if policy is not None and policy.proof_of_reserves:
        chosen.append(ReservesCoverLiabilities())
    return chosen
