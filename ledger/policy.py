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

    [haircuts]                         # fraction of market value ignored, per asset kind
    fiat = "0"
    stablecoin = "0.02"
    crypto = "0.25"
    exchange_token = "0.5"
    affiliate_token = "1"              # a venue's own or affiliate-issued token, for reserves
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
    "affiliate_token": Decimal("1"),
}


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

    def haircut(self, kind: str) -> Decimal:
        return self.haircuts.get(kind, DEFAULT_HAIRCUTS.get(kind, Decimal("0")))

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
        )
        try:
            for key, value in data.items():
                if key == "quote":
                    kwargs["quote"] = ev._fields.identifier(value, field="quote")
                elif key in numeric:
                    kwargs[key] = _fraction(value, key)
                elif key == "haircuts":
                    if not isinstance(value, dict):
                        raise ev.EventValueError("haircuts: must be a table")
                    cuts = dict(DEFAULT_HAIRCUTS)
                    for kind, cut in value.items():
                        if kind not in DEFAULT_HAIRCUTS:
                            raise ev.EventValueError(
                                f"haircuts.{kind}: unknown asset kind (expected: {', '.join(DEFAULT_HAIRCUTS)})"
                            )
                        cut = _fraction(cut, f"haircuts.{kind}")
                        if cut > 1:
                            raise ev.EventValueError(f"haircuts.{kind}: must be between 0 and 1")
                        cuts[kind] = cut
                    kwargs["haircuts"] = cuts
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
