"""The reserves statement: a venue's segregated custody against what it owes its customers.

Per asset: what customers are owed (the root's sums of the proof of liabilities: the positive
holder balances of the venue's customer accounts), what the venue holds in ``customer-custody``
accounts, both at market value, and the custody after the policy's haircuts. An asset is
*covered* when ``custody x (1 - haircut) >= owed`` in the asset's own units (exact; for a priced
asset this is the same as comparing the two market values, and it still means something for an
asset with no price). In all: the haircut value of the custody against the market value owed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

import events as ev
from ledger.books import SUM_CONTEXT, VALUE_CONTEXT, ZERO, Books
from ledger.errors import ProofError
from ledger.proofs._venue import Refusal


@attrs.frozen
class ReserveLine:
    """One asset of a reserves statement (amounts exact, values rounded to the quote's scale).

    Attributes:
        asset: the asset; owed, custody: quantities (Decimal, asset units).
        price: in the quote (None if the asset was never priced); haircut: fraction ignored.
        owed_value, custody_value: market values; reserve_value: custody value after haircut.
        covered: ``custody x (1 - haircut) >= owed``.
    """

    asset: str
    owed: Decimal
    custody: Decimal
    price: Decimal | None
    haircut: Decimal
    owed_value: Decimal
    custody_value: Decimal
    reserve_value: Decimal
    covered: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "owed": ev.format_decimal(self.owed),
            "custody": ev.format_decimal(self.custody),
            "price": None if self.price is None else ev.format_decimal(self.price),
            "haircut": ev.format_decimal(self.haircut),
            "owed_value": ev.format_decimal(self.owed_value),
            "custody_value": ev.format_decimal(self.custody_value),
            "reserve_value": ev.format_decimal(self.reserve_value),
            "covered": self.covered,
        }


@attrs.frozen
class ReservesStatement:
    """A venue's reserves against its liabilities at one point.

    Attributes:
        venue, seq, at, quote: where and in what it was taken.
        lines: one per asset owed or held, by code.
        owed_value, reserve_value: totals (market value owed; haircut value of custody).
        ratio: reserve_value / owed_value (None when nothing is owed).
        covered: every asset covered (and so the totals too).
        refused: negative customer balances, left out of the liabilities (debts to the venue).
    """

    venue: str
    seq: int
    at: str | None
    quote: str
    lines: tuple[ReserveLine, ...]
    owed_value: Decimal
    reserve_value: Decimal
    ratio: Decimal | None
    covered: bool
    refused: tuple[Refusal, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "seq": self.seq,
            "at": self.at,
            "quote": self.quote,
            "assets": [line.to_dict() for line in self.lines],
            "owed_value": ev.format_decimal(self.owed_value),
            "reserve_value": ev.format_decimal(self.reserve_value),
            "ratio": None if self.ratio is None else ev.format_decimal(self.ratio),
            "covered": self.covered,
            "refused": [r.to_dict() for r in self.refused],
        }


def covered(books: Books, venue: str, asset: str) -> tuple[bool, int, int, Decimal]:
    """``(covered, owed, custody, haircut)`` of one asset, minor units; exact."""
    owed = books.cust_liab.get((venue, asset), 0)
    custody = books.custody.get((venue, asset), 0)
    haircut = books.haircut(asset, owner=venue)
    kept = SUM_CONTEXT.multiply(max(custody, 0), SUM_CONTEXT.subtract(1, haircut))
    return kept >= owed, owed, custody, haircut


def reserves_at(books: Books, venue: str) -> ReservesStatement:
    """The reserves statement of ``venue`` at the books' point (see the module docstring)."""
    if venue not in books.registry.entities:
        raise ProofError(
            f"--venue: unknown entity {venue!r} (known: {', '.join(sorted(books.registry.entities))})",
            kind="unknown-venue",
        )
    lines = []
    owed_total = reserve_total = ZERO
    for asset in sorted(books.entity_assets.get(venue, ())):
        ok, owed, custody, haircut = covered(books, venue, asset)
        if not owed and not custody:
            continue
        owed_value = books.value(owed, asset)
        custody_value = books.value(custody, asset)
        reserve_value = VALUE_CONTEXT.multiply(
            max(custody_value, ZERO), SUM_CONTEXT.subtract(1, haircut)
        )
        owed_total = VALUE_CONTEXT.add(owed_total, owed_value)
        reserve_total = VALUE_CONTEXT.add(reserve_total, reserve_value)
        lines.append(
            ReserveLine(
                asset=asset,
                owed=books.amount(owed, asset),
                custody=books.amount(custody, asset),
                price=books.price(asset),
                haircut=haircut,
                owed_value=books.round_value(owed_value),
                custody_value=books.round_value(custody_value),
                reserve_value=books.round_value(reserve_value),
                covered=ok,
            )
        )
    refused = []
    prefix = f"{venue}:"
    for ref, info in books.registry.accounts.items():
        if info.purpose == "customer" and ref.startswith(prefix):
            name = ref[len(prefix) :]
            for asset in sorted(books.entity_assets.get(venue, ())):
                holder = -books.balances.get((venue, name, asset), 0)
                if holder < 0:
                    refused.append(
                        Refusal(ref, info.holder, asset, holder, books.registry.scale(asset))
                    )
    ratio = None
    if owed_total > 0:
        ratio = VALUE_CONTEXT.divide(reserve_total, owed_total).quantize(
            Decimal("0.0001"), context=VALUE_CONTEXT
        )
    return ReservesStatement(
        venue=venue,
        seq=books.last_seq,
        at=ev.format_instant(books.last_at) if books.last_at is not None else None,
        quote=books.quote,
        lines=tuple(lines),
        owed_value=books.round_value(owed_total),
        reserve_value=books.round_value(reserve_total),
        ratio=ratio,
        covered=all(line.covered for line in lines),
        refused=tuple(sorted(refused, key=lambda r: (r.account, r.asset))),
    )
