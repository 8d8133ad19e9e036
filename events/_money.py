"""Exact amounts and prices: parsing, validation, minor units.

Money is never a float. Amounts are ``Decimal`` values at the edges (files, JSON) and integer
minor units inside the books; the asset's ``scale`` (decimal places) links the two.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from events._errors import EventValueError

#: Largest amount, in minor units, that an event may carry: 10^38 - 1, every number of up to 38
#: digits (the u128 range TigerBeetle uses, 3.4 x 10^38, and a signed 128-bit integer, 1.7 x
#: 10^38, both hold it; so does SQL's DECIMAL(38)). At scale 18 that is 10^20 - 10^-18 units.
#: Balances and sums are Python ints: exact at any size. See docs/model.md, "Amounts".
MAX_MINOR = 10**38 - 1
#: How the limit is written in error messages.
MAX_MINOR_TEXT = "10^38 - 1"
_MAX_MINOR_DIGITS = len(str(MAX_MINOR))

#: Prices carry at most this many significant digits (FTT closes have 8, fiat rates ~10).
MAX_PRICE_DIGITS = 28
#: Prices carry at most this many decimal places.
MAX_PRICE_PLACES = 18

_MAX_LITERAL_CHARS = 64
# Enough digits that scaling any accepted literal never rounds (64-digit literals, scale <= 18).
_EXACT = decimal.Context(prec=100, traps=[decimal.Inexact, decimal.InvalidOperation])
# For normalising: wide enough that removing trailing zeros never rounds or underflows.
_WIDE = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation],
)


def _exponent(value: Decimal) -> int:
    """The exponent of a finite Decimal (``as_tuple`` types it as a letter for NaN and infinity)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), f"not a finite decimal: {value!r}"
    return exponent


def parse_decimal(value: object, *, field: str) -> Decimal:
    """Return ``value`` as a finite ``Decimal``.

    Accepts ``int`` (not ``bool``), ``Decimal`` and decimal strings such as ``"10.25"``.
    Raises :class:`EventValueError` for floats, bools, NaN, infinities, over-long literals and
    anything else, naming ``field``.
    """
    if isinstance(value, bool):
        raise EventValueError(f"{field}: expected integer or decimal string, got bool")
    if isinstance(value, float):
        raise EventValueError(
            f"{field}: floats are not exact money; write the amount as a decimal string "
            f"(for example \"{value!r}\")"
        )
    if isinstance(value, int):
        if abs(value) > 10**_MAX_LITERAL_CHARS:
            raise EventValueError(f"{field}: number too large")
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        text = value
        if len(text) > _MAX_LITERAL_CHARS:
            raise EventValueError(f"{field}: number literal too long ({len(text)} characters)")
        if not text or not _looks_decimal(text):
            bare = text.strip()
            if bare and bare != text and _looks_decimal(bare):
                # Refused, not stripped: the record says exactly what it says, or nothing.
                raise EventValueError(
                    f"{field}: {value!r} has leading or trailing white space; write the number alone"
                )
            raise EventValueError(f"{field}: expected integer or decimal string, got {value!r}")
        try:
            result = Decimal(text)
        except decimal.InvalidOperation:
            raise EventValueError(
                f"{field}: expected integer or decimal string, got {value!r}"
            ) from None
    else:
        raise EventValueError(
            f"{field}: expected integer or decimal string, got {type(value).__name__}"
        )
    if not result.is_finite():
        raise EventValueError(f"{field}: non-finite number not allowed ({value!r})")
    if result.adjusted() > _MAX_LITERAL_CHARS:
        raise EventValueError(f"{field}: number too large")
    # A Decimal passed in directly is not bounded by the literal length: bound its precision
    # too, so that no later step (normalising, scaling) has to round it.
    digits, exponent = result.as_tuple().digits, _exponent(result)
    if result and (len(digits) > _MAX_LITERAL_CHARS + 1 or exponent < -_MAX_LITERAL_CHARS):
        raise EventValueError(
            f"{field}: number too precise (more than {_MAX_LITERAL_CHARS} digits or decimal places)"
        )
    return result


def _looks_decimal(text: str) -> bool:
    # Plain decimal notation only: optional sign, digits, optional fraction. No exponents,
    # no "NaN"/"Infinity" spellings, no underscores (Decimal() would accept all of those).
    body = text[1:] if text[:1] in "+-" else text
    if not body:
        return False
    whole, _, frac = body.partition(".")
    if not whole and not frac:
        return False
    return (not whole or (whole.isascii() and whole.isdigit())) and (
        not frac or (frac.isascii() and frac.isdigit())
    )


def positive_amount(value: object, *, field: str = "amount") -> Decimal:
    """Parse ``value`` as a strictly positive exact amount (direction comes from the event type)."""
    amount = parse_decimal(value, field=field)
    if amount <= 0:
        raise EventValueError(f"{field}: amount must be > 0, got {_plain(amount)}")
    return _normalise(amount)


def non_negative_amount(value: object, *, field: str) -> Decimal:
    """Parse ``value`` as an exact amount >= 0."""
    amount = parse_decimal(value, field=field)
    if amount < 0:
        raise EventValueError(f"{field}: must be >= 0, got {_plain(amount)}")
    return _normalise(amount)


def signed_amount(value: object, *, field: str) -> Decimal:
    """Parse ``value`` as an exact amount of either sign (asserted balances may be negative)."""
    return _normalise(parse_decimal(value, field=field))


def exact_product(a: Decimal, b: Decimal) -> Decimal:
    """``a x b`` exactly (amounts of up to 38 digits times prices of up to 28), normalised."""
    return _normalise(decimal.Context(prec=100, traps=[decimal.Inexact]).multiply(a, b))


def fraction(value: object, *, field: str) -> Decimal:
    """A fraction in [0, 1] (a threshold, a rate), exact, at most 18 decimal places."""
    number = parse_decimal(value, field=field)
    if number < 0 or number > 1:
        raise EventValueError(f"{field}: must be a fraction between 0 and 1, got {_plain(number)}")
    number = _normalise(number)
    if max(0, -_exponent(number)) > MAX_PRICE_PLACES:
        raise EventValueError(f"{field}: at most {MAX_PRICE_PLACES} decimal places, got {_plain(number)}")
    return number


def positive_price(value: object, *, field: str = "price") -> Decimal:
    """Parse a price (quote units per one unit of the asset): finite, > 0, bounded precision."""
    price = parse_decimal(value, field=field)
    if price <= 0:
        raise EventValueError(f"{field}: price must be > 0, got {_plain(price)}")
    price = _normalise(price)
    places = max(0, -_exponent(price))
    if places > MAX_PRICE_PLACES or len(price.as_tuple().digits) > MAX_PRICE_DIGITS:
        raise EventValueError(
            f"{field}: price {_plain(price)} is too precise "
            f"(at most {MAX_PRICE_DIGITS} digits and {MAX_PRICE_PLACES} decimal places)"
        )
    return price


def _normalise(value: Decimal) -> Decimal:
    # One representation per value: "10.50" and "10.5" are the same amount, and "-0" is 0.
    # Exact: the default context (28 digits) would round long values, turn tiny ones into 0
    # and refuse to quantize large ones.
    if value == 0:
        return Decimal(0)
    value = value.normalize(_WIDE)
    if _exponent(value) > 0:
        value = value.quantize(Decimal(1), context=_WIDE)
    return value


def _plain(value: Decimal) -> str:
    return format(value, "f")


def format_decimal(value: Decimal) -> str:
    """Canonical text of an exact value: plain notation, no exponent, no trailing zeros."""
    return _plain(_normalise(value))


def decimal_places(value: Decimal) -> int:
    """Number of decimal places that ``value`` needs."""
    if not value:
        return 0
    digits, exponent = value.as_tuple().digits, _exponent(value)
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing))


def to_minor(amount: Decimal, scale: int, *, field: str = "amount", asset: str = "") -> int:
    """Convert an exact amount to integer minor units at ``scale`` decimal places.

    Raises :class:`EventValueError` when the amount is finer than the scale (never rounds) or
    exceeds :data:`MAX_MINOR`.
    """
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
        raise EventValueError(
            f"{field}: expected an exact amount (Decimal or int), got {type(amount).__name__}"
        )
    if not isinstance(amount, Decimal):
        amount = Decimal(amount)
    if not amount.is_finite():
        raise EventValueError(f"{field}: non-finite number not allowed ({amount})")
    if amount and amount.adjusted() + scale >= _MAX_MINOR_DIGITS:  # >= 10^38 minor units
        raise _beyond(amount, scale, field, asset)
    try:
        scaled = amount.scaleb(scale, _EXACT)
    except decimal.DecimalException:  # more digits than the context holds: too precise
        scaled = None
    if scaled is None or scaled != scaled.to_integral_value():
        places = decimal_places(amount)
        label = f" {asset}" if asset else ""
        raise EventValueError(
            f"{field}: {_plain(amount)}{label} has {places} decimal places; "
            f"{asset or 'the asset'} allows {scale}"
        )
    return int(scaled)


def _beyond(amount: Decimal, scale: int, field: str, asset: str) -> EventValueError:
    label = f" {asset}" if asset else ""
    if abs(amount.adjusted()) < _MAX_LITERAL_CHARS:
        shown = _plain(amount)
    else:  # "1E+1000" in plain notation would be a thousand digits
        shown = str(amount)
    largest = from_minor(MAX_MINOR, scale)
    return EventValueError(
        f"{field}: {shown}{label} exceeds the maximum of {MAX_MINOR_TEXT} minor units "
        f"({largest:,}{label} at scale {scale})"
    )


def from_minor(minor: int, scale: int) -> Decimal:
    """Exact ``Decimal`` for ``minor`` units at ``scale`` decimal places (any size, never rounded)."""
    # Decimal(int) is exact; scaleb in the default context (28 digits) would round a 38-digit
    # amount, so it runs in a context that holds every digit.
    return Decimal(minor).scaleb(-scale, _WIDE)
