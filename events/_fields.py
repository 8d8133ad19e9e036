"""Validating converters shared by the event classes."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from events._errors import EventValueError

MAX_ID_CHARS = 200
MAX_TEXT_CHARS = 10_000
#: The fraction of a second in ISO-8601 text ("." or ","); the log keeps microseconds.
_FRACTION = re.compile(r"[.,]([0-9]+)")
MAX_FRACTION_DIGITS = 6


def identifier(value: object, *, field: str) -> str:
    """A non-empty identifier, NFC-normalised, without control characters or padding.

    NFC normalisation makes "Résearch" typed with a combining accent and with a precomposed
    one the same identifier, so look-alike spellings cannot split one account in two.
    """
    if not isinstance(value, str):
        raise EventValueError(f"{field}: expected a string, got {type(value).__name__}")
    if value.isascii() and value.isprintable() and value and len(value) <= MAX_ID_CHARS:
        # Fast path: printable ASCII has no control or format characters and is already NFC.
        if value[0] != " " and value[-1] != " ":
            return value
    _check_encodable(value, field=field)
    text = unicodedata.normalize("NFC", value)
    if not text:
        raise EventValueError(f"{field}: must not be empty")
    if text != text.strip():
        raise EventValueError(f"{field}: {text!r} has leading or trailing white space")
    if len(text) > MAX_ID_CHARS:
        raise EventValueError(f"{field}: longer than {MAX_ID_CHARS} characters")
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch in "\t\n\r":
            raise EventValueError(f"{field}: invalid character {ch!r} in {text!r}")
    return text


def account_ref(value: object, *, field: str) -> str:
    """An account reference ``entity:account`` (both parts non-empty)."""
    text = identifier(value, field=field)
    entity, sep, name = text.partition(":")
    if not sep or not entity or not name:
        raise EventValueError(f"{field}: {text!r} is not an account reference 'entity:account'")
    return text


def positive_int(value: object, *, field: str) -> int:
    """A whole number >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventValueError(f"{field}: expected an integer, got {type(value).__name__}")
    if value < 1:
        raise EventValueError(f"{field}: must be at least 1, got {value}")
    return value


def account_refs(value: object, *, field: str) -> tuple[str, ...]:
    """A non-empty list of distinct account references."""
    if not isinstance(value, (list, tuple)):
        raise EventValueError(f"{field}: expected a list of account references, got {type(value).__name__}")
    refs = tuple(account_ref(item, field=f"{field}[{i}]") for i, item in enumerate(value))
    if not refs:
        raise EventValueError(f"{field}: must name at least one account")
    if len(set(refs)) != len(refs):
        raise EventValueError(f"{field}: repeated account")
    return refs


def free_text(value: object, *, field: str) -> str:
    """Human text (a note, a title): any printable characters, bounded length."""
    if not isinstance(value, str):
        raise EventValueError(f"{field}: expected a string, got {type(value).__name__}")
    _check_encodable(value, field=field)
    if len(value) > MAX_TEXT_CHARS:
        raise EventValueError(f"{field}: longer than {MAX_TEXT_CHARS} characters")
    if "\x00" in value:
        raise EventValueError(f"{field}: invalid character '\\x00'")
    return unicodedata.normalize("NFC", value)


def _check_encodable(value: str, *, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EventValueError(
            f"{field}: invalid character (lone surrogate) cannot be encoded for hashing"
        ) from None


def utc_instant(value: object, *, field: str = "at") -> datetime:
    """A timezone-aware instant, normalised to UTC. Naive datetimes are refused."""
    if isinstance(value, str):
        value = parse_instant(value, field=field)
    if not isinstance(value, datetime):
        raise EventValueError(f"{field}: expected a timestamp, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise EventValueError(
            f"{field}: timestamp must include a UTC offset (write 'Z' or '+00:00'), got {value}"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before the first representable instant
        raise EventValueError(f"{field}: {value.isoformat()} is out of range in UTC") from None


def parse_instant(text: str, *, field: str = "at") -> datetime:
    """Parse ISO-8601 text with an offset; a bare date means 00:00 UTC of that day.

    Digits below a microsecond are refused, not cut: ``datetime.fromisoformat`` would drop
    them silently, and two different instants would become one.
    """
    raw = text.strip()
    if len(raw) == 10 and raw[4:5] == "-" and raw[7:8] == "-":
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        except ValueError as exc:
            raise EventValueError(f"{field}: invalid date {text!r} ({exc})") from None
    if "." in raw or "," in raw:
        for digits in _FRACTION.findall(raw):
            if len(digits) > MAX_FRACTION_DIGITS:
                raise EventValueError(
                    f"{field}: {text!r} has {len(digits)} fractional digits; the log keeps "
                    f"microseconds: write at most {MAX_FRACTION_DIGITS}"
                )
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise EventValueError(f"{field}: invalid timestamp {text!r} ({exc})") from None
    if parsed.tzinfo is None:
        raise EventValueError(
            f"{field}: timestamp must include a UTC offset (write 'Z' or '+00:00'), got {text!r}"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise EventValueError(f"{field}: {text!r} is out of range in UTC") from None


def format_instant(value: datetime) -> str:
    """Canonical UTC text: ``2022-11-08T14:00:00Z`` (microseconds only when present)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # Not strftime: its %Y does not zero-pad years before 1000, which would not parse back.
    # %-formatting: about twice as fast as the f-string here, and this runs for every event.
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % (  # noqa: UP031
        value.year, value.month, value.day, value.hour, value.minute, value.second
    )
    if value.microsecond:
        return f"{text}.{value.microsecond:06d}Z"
    return text + "Z"


def one_of(value: object, choices: tuple[str, ...], *, field: str) -> str:
    text = identifier(value, field=field)
    if text not in choices:
        raise EventValueError(
            f"{field}: {text!r} is not one of: {', '.join(choices)}"
        )
    return text


def sources(value: object, *, field: str = "source") -> tuple[str, ...]:
    """One or more citation keys into the timeline's source table."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        raise EventValueError(
            f"{field}: expected a source key or a list of them, got {type(value).__name__}"
        )
    keys = tuple(identifier(item, field=f"{field}[{i}]") for i, item in enumerate(value))
    if not keys:
        raise EventValueError(f"{field}: at least one source key is required (provenance)")
    if len(set(keys)) != len(keys):
        raise EventValueError(f"{field}: repeated source key")
    return keys
