"""Entity kinds, and which standard invariant applies to which: declared here, in one place.

An entity's ``kind`` (``entity_registered``) puts it in a *family*; each standard invariant
names the families it holds to account. A bank is not a custodian of segregated assets, so
``segregation`` and ``reserve-ratio`` do not apply to it; capital and liquidity rules do. The
table is documented in ``docs/invariants.md`` (a test holds the page to it).
"""

from __future__ import annotations

from typing import Final

#: kind -> family.
FAMILY: Final[dict[str, str]] = {
    "exchange": "custodial",
    "custodian": "custodial",
    "bank": "bank",
    "lender": "lender",
    "trading_firm": "fund",
    "fund": "fund",
    "market_maker": "fund",
    "investor": "fund",
    "protocol": "protocol",
    "insurer": "authority",
    "resolution_authority": "authority",
    "central_bank": "authority",
    "regulator": "authority",
    "customer_pool": "generic",
    "other": "generic",
}

FAMILIES: Final = ("custodial", "bank", "lender", "fund", "protocol", "authority", "generic")
_ALL: Final = frozenset(FAMILIES)

#: invariant name -> the families it applies to. Invariants not named here apply to all.
#: ``segregation``/``reserve-ratio`` keep their old reach over generic entities with customer
#: accounts, so timelines written before kinds mattered keep their meaning.
APPLIES: Final[dict[str, frozenset[str]]] = {
    "segregation": frozenset({"custodial", "generic"}),
    "reserve-ratio": frozenset({"custodial", "generic"}),
    "reserves-cover-liabilities": frozenset({"custodial", "generic"}),
    "solvency": _ALL - {"authority"},
    "liquidity-coverage": frozenset({"bank", "lender"}),
    "capital-ratio": frozenset({"bank"}),
}

#: How the summary speaks of an entity's customer money, per family.
CUSTOMER_WORDS: Final[dict[str, str]] = {
    "custodial": "owes customers",
    "bank": "owes depositors",
    "lender": "owes depositors",
    "protocol": "owes depositors",
}


def family(kind: str | None) -> str:
    """The family of ``kind`` (``generic`` for an unknown or missing kind)."""
    return FAMILY.get(kind or "other", "generic")


def applies(invariant: str, kind: str | None) -> bool:
    """Whether the standard invariant ``invariant`` holds an entity of ``kind`` to account."""
    reach = APPLIES.get(invariant)
    return reach is None or family(kind) in reach
