"""Thresholds, haircuts and hard rules for valuation and invariants.

Defaults are documented here and in ``docs/invariants.md``; a TOML policy file overrides them::

    quote = "USD"
    min_reserve_ratio = "1.0"
    min_collateral_coverage = "1.0"
    max_own_token_share = "0.25"
    max_related_party_exposure = "0.25"
    enforce = ["segregation"]          # hard rules: refused at append, skipped in replay
    disabled = ["assertions"]          # invariants not checked at all
    proof_of_reserves = true           # also check reserves >= liabilities per venue and asset

    min_capital_ratio = "0.08"         # equity at book / risk-weighted (or total) assets
    capital_basis = "risk_weighted"    # or "leverage": equity at book / total assets at book
    min_liquidity_coverage = "1"       # liquid assets after haircuts / run-off-weighted outflows

    [haircuts]                         # fraction of market value ignored, per asset kind
    fiat = "0"
    stablecoin = "0.02"
    crypto = "0.25"
    exchange_token = "0.5"
    bond = "0"
    mbs = "0.15"
    loan = "1"                         # a loan book is not a liquid asset
    security = "0.5"
    staked = "0.25"
    affiliate_token = "1"              # a venue's own or affiliate-issued token, for reserves

    [run_off]                          # share of each liability class that can run (30 days)
    insured = "0.05"                   # the insured part of any deposit
    uninsured = "0.40"                 # the rest, unless its account's class is listed
    wholesale = "1"                    # e.g. a class named by accounts' liability_class

    [collateral_haircuts]              # pledged collateral, where unlike the liquidity haircut
    loan = "0.30"

    [risk_weights]                     # per asset kind, and loan_receivable / claim
    fiat = "0"
    mbs = "0.2"
    loan = "0.5"
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

import events as ev
from ledger.errors import InputError

DEFAULT_HAIRCUTS = {
    "fiat": Decimal("0"),
    "stablecoin": Decimal("0.02"),
    "crypto": Decimal("0.25"),
    "exchange_token": Decimal("0.5"),
    "bond": Decimal("0"),
    "mbs": Decimal("0.15"),
    "loan": Decimal("1"),
    "security": Decimal("0.5"),
    "staked": Decimal("0.25"),
    "affiliate_token": Decimal("1"),
}
#: Run-off rates (Basel III LCR's idea, simplified): ``insured`` for the insured part of a
#: deposit, ``uninsured`` for the rest unless the account's liability class is listed.
DEFAULT_RUN_OFF = {
    "insured": Decimal("0.05"),
    "uninsured": Decimal("0.40"),
    "retail": Decimal("0.10"),
    "operational": Decimal("0.25"),
    "corporate": Decimal("0.40"),
    "wholesale": Decimal("1"),
    "term": Decimal("0"),  # deposits that cannot be withdrawn within the 30 days
}
#: Haircuts of assets pledged as collateral, where they differ from the liquidity haircuts:
#: a loan book is not a liquid asset (haircut 1 for liquidity) but lenders such as a Federal
#: Home Loan Bank or a central bank's discount window lend against it at a discount.
DEFAULT_COLLATERAL_HAIRCUTS = {
    "loan": Decimal("0.30"),
    "mbs": Decimal("0.05"),
    "bond": Decimal("0.02"),
    "security": Decimal("0.30"),
}
#: Risk weights (Basel standardised approach, simplified), per asset kind; ``loan_receivable``
#: for loans an entity has made (``loan:ID``), ``claim`` for claims on venues and affiliates.
DEFAULT_RISK_WEIGHTS = {
    "fiat": Decimal("0"),
    "stablecoin": Decimal("1"),
    "crypto": Decimal("12.5"),
    "exchange_token": Decimal("12.5"),
    "bond": Decimal("0"),
    "mbs": Decimal("0.2"),
    "loan": Decimal("0.5"),
    "security": Decimal("1"),
    "staked": Decimal("12.5"),
    "loan_receivable": Decimal("1"),
    "claim": Decimal("1"),
}
CAPITAL_BASES = ("risk_weighted", "leverage")


def _fraction(value: object, field: str) -> Decimal:
    number = ev.parse_decimal(value, field=field)
    if number < 0:
        raise ev.EventValueError(f"{field}: must be >= 0, got {number}")
    return number


@attrs.frozen(kw_only=True)
class Policy:
    """Thresholds for the standard invariants (see the module docstring for the file format).

    Attributes:
        quote: the asset values are expressed in.
        min_reserve_ratio: liquid haircut reserves / customer liabilities must be >= this.
        min_collateral_coverage: haircut collateral / secured debt must be >= this.
        max_own_token_share: share of an entity's assets (or of a debt's collateral) in tokens
            issued by itself or an affiliate must be <= this.
        max_related_party_exposure: claims on affiliates / customer liabilities (venues) or
            total assets (others) must be <= this.
        haircuts: fraction of market value ignored, per asset kind, and ``affiliate_token``.
        enforce: invariants that are hard rules (refused at append, skipped in replay).
        disabled: invariants not checked.
        proof_of_reserves: also check ``reserves-cover-liabilities`` at every step (per venue
            and asset, customer-custody holdings after haircuts >= customer liabilities; see
            ``docs/proofs.md``). Off by default.
        min_capital_ratio: equity at book / risk-weighted assets (or total assets at book,
            with ``capital_basis = "leverage"``) must be >= this (banks).
        min_liquidity_coverage: liquid assets after haircuts / run-off-weighted liabilities
            must be >= this (banks and lenders).
        run_off: run-off rate per liability class (``insured``, ``uninsured`` and any class
            an account names).
        risk_weights: per asset kind, ``loan_receivable`` and ``claim``.
        collateral_haircuts: per asset kind, the haircut of pledged collateral where it
            differs from the liquidity haircut (a loan book: 0.30).
    """

    quote: str = "USD"
    min_reserve_ratio: Decimal = Decimal("1")
    min_collateral_coverage: Decimal = Decimal("1")
    max_own_token_share: Decimal = Decimal("0.25")
    max_related_party_exposure: Decimal = Decimal("0.25")
    haircuts: dict[str, Decimal] = attrs.field(factory=lambda: dict(DEFAULT_HAIRCUTS))
    enforce: frozenset[str] = frozenset()
    disabled: frozenset[str] = frozenset()
    proof_of_reserves: bool = False
    min_capital_ratio: Decimal = Decimal("0.08")
    capital_basis: str = "risk_weighted"
    min_liquidity_coverage: Decimal = Decimal("1")
    run_off: dict[str, Decimal] = attrs.field(factory=lambda: dict(DEFAULT_RUN_OFF))
    risk_weights: dict[str, Decimal] = attrs.field(factory=lambda: dict(DEFAULT_RISK_WEIGHTS))
    collateral_haircuts: dict[str, Decimal] = attrs.field(factory=lambda: dict(DEFAULT_COLLATERAL_HAIRCUTS))

    def haircut(self, kind: str) -> Decimal:
        return self.haircuts.get(kind, DEFAULT_HAIRCUTS.get(kind, Decimal("0")))

    def run_off_rate(self, liability_class: str | None) -> Decimal:
        """The run-off rate of the uninsured part of a deposit of ``liability_class``."""
        if liability_class is not None and liability_class in self.run_off:
            return self.run_off[liability_class]
        return self.run_off.get("uninsured", DEFAULT_RUN_OFF["uninsured"])

    def collateral_haircut(self, kind: str) -> Decimal:
        """The haircut of collateral of asset ``kind``: ``collateral_haircuts`` where listed,
        else the liquidity haircut."""
        if kind in self.collateral_haircuts:
            return self.collateral_haircuts[kind]
        return self.haircut(kind)

    def risk_weight(self, kind: str) -> Decimal:
        return self.risk_weights.get(kind, DEFAULT_RISK_WEIGHTS.get(kind, Decimal("1")))

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        """Read a policy file; errors name the file, line and key."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text, parse_float=Decimal)
        except OSError as exc:
            raise InputError(f"{path}: cannot read policy ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: invalid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: policy file is not UTF-8") from None
        return cls.from_dict(data, where=str(path), text=text)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "policy", text: str = "") -> Policy:
        from ledger.invariants import STANDARD_NAMES

        def line_of(path: str) -> str:
            """The line of ``key`` or ``table.key`` (the table's own header when key is absent)."""
            table, _, key = path.rpartition(".")
            current = ""
            header_line = 0
            for number, line in enumerate(text.splitlines(), start=1):
                stripped = line.strip()
                if stripped.startswith("[") and stripped.endswith("]"):
                    current = stripped.strip("[] ")
                    if current == table:
                        header_line = number
                    continue
                name = stripped.partition("=")[0].strip()
                if current == table and name == key:
                    return f"{where}:{number}"
            if header_line:
                return f"{where}:{header_line}"
            return where

        kwargs: dict[str, Any] = {}
        numeric = (
            "min_reserve_ratio",
            "min_collateral_coverage",
            "max_own_token_share",
            "max_related_party_exposure",
            "min_capital_ratio",
            "min_liquidity_coverage",
        )
        try:
            for key, value in data.items():
                if key == "quote":
                    kwargs["quote"] = ev._fields.identifier(value, field="quote")
                elif key in numeric:
                    kwargs[key] = _fraction(value, key)
                elif key in ("haircuts", "collateral_haircuts"):
                    if not isinstance(value, dict):
                        raise ev.EventValueError(f"{key}: must be a table")
                    cuts = dict(DEFAULT_HAIRCUTS if key == "haircuts" else DEFAULT_COLLATERAL_HAIRCUTS)
                    for kind, cut in value.items():
                        if kind not in DEFAULT_HAIRCUTS:
                            raise ev.EventValueError(
                                f"{key}.{kind}: unknown asset kind (expected: {', '.join(DEFAULT_HAIRCUTS)})"
                            )
                        cut = _fraction(cut, f"{key}.{kind}")
                        if cut > 1:
                            raise ev.EventValueError(f"{key}.{kind}: must be between 0 and 1")
                        cuts[kind] = cut
                    kwargs[key] = cuts
                elif key in ("run_off", "risk_weights"):
                    if not isinstance(value, dict):
                        raise ev.EventValueError(f"{key}: must be a table")
                    table = dict(DEFAULT_RUN_OFF if key == "run_off" else DEFAULT_RISK_WEIGHTS)
                    for name, rate in value.items():
                        ev._fields.identifier(name, field=f"{key}.{name}")
                        if key == "risk_weights" and name not in DEFAULT_RISK_WEIGHTS:
                            raise ev.EventValueError(
                                f"{key}.{name}: unknown (expected: {', '.join(DEFAULT_RISK_WEIGHTS)})"
                            )
                        rate = _fraction(rate, f"{key}.{name}")
                        if key == "run_off" and rate > 1:
                            raise ev.EventValueError(f"{key}.{name}: must be between 0 and 1")
                        table[name] = rate
                    kwargs[key] = table
                elif key == "capital_basis":
                    kwargs[key] = ev._fields.one_of(value, CAPITAL_BASES, field=key)
                elif key in ("enforce", "disabled"):
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        raise ev.EventValueError(f"{key}: must be a list of invariant names")
                    unknown = sorted(set(value) - set(STANDARD_NAMES))
                    if unknown:
                        raise ev.EventValueError(
                            f"{key}: unknown invariant {unknown[0]!r} (known: {', '.join(STANDARD_NAMES)})"
                        )
                    kwargs[key] = frozenset(value)
                elif key == "proof_of_reserves":
                    if not isinstance(value, bool):
                        raise ev.EventValueError(f"proof_of_reserves: must be true or false, got {value!r}")
                    kwargs[key] = value
                else:
                    raise ev.EventValueError(f"{key}: unknown policy key")
        except ev.EventValueError as exc:
            key = str(exc).partition(":")[0]
            raise InputError(f"{line_of(key)}: {exc}") from None
        return cls(**kwargs)
