"""Canonical JSON for events: the bytes that are hashed, stored and exported.

Canonical form: UTF-8 JSON, keys sorted, separators ``(",", ":")``, no floats (amounts and
prices are decimal strings, scales are ints), timestamps as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``,
optional fields left out when empty, and ``"v"`` (the schema version) in every record.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
import orjson

from events import _fields
from events._errors import EventValueError
from events._model import EVENT_TYPES, Event

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
_ENVELOPE = ("type", "v")


_DECIMAL_KINDS = frozenset({"amount", "amount0", "signed", "price", "decimal"})


def _plain_decimal(value: Decimal) -> str:
    # Event fields are normalised when the event is built (no trailing zeros, no "-0"), so
    # plain notation is already the canonical text.
    return format(value, "f")


def _encoder(kind: str) -> Any:
    if kind in _DECIMAL_KINDS:
        return _plain_decimal
    if kind == "instant":
        return _fields.format_instant
    if kind == "sources" or kind == "refs":
        return list
    return None


_FIELD_KINDS: dict[type, tuple[tuple[str, str], ...]] = {}
_ENCODERS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _field_kinds(cls: type) -> tuple[tuple[str, str], ...]:
    kinds = _FIELD_KINDS.get(cls)
    if kinds is None:
        kinds = _FIELD_KINDS[cls] = tuple((f.name, f.metadata["kind"]) for f in attrs.fields(cls))
    return kinds


def _encoders(cls: type) -> tuple[tuple[str, Any], ...]:
    encoders = _ENCODERS.get(cls)
    if encoders is None:
        encoders = _ENCODERS[cls] = tuple((n, _encoder(k)) for n, k in _field_kinds(cls))
    return encoders


def to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict (strings and ints only, no ``None``)."""
    out: dict[str, Any] = {"type": event.type, "v": SCHEMA_VERSION}
    for name, encode in _encoders(type(event)):
        value = getattr(event, name)
        if value is None:
            continue
        out[name] = value if encode is None else encode(value)
    return out


def canonical_bytes(event: Event) -> bytes:
    """Canonical UTF-8 JSON of ``event``: what the log hashes and stores.

    Encoded by orjson (keys sorted, no spaces, UTF-8 kept as is, control characters escaped);
    ``tests/test_events.py`` holds it byte-equal to the standard library's
    ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.
    """
    return orjson.dumps(to_dict(event), option=orjson.OPT_SORT_KEYS)


def log_record(event: Event) -> tuple[str, str]:
    """What the log stores for ``event``: its canonical JSON text and ``at`` as text.

    One encoding for both. Only the text is kept: orjson's bytes objects each hold on to a
    few kilobytes of memory, which would add up in a batch of thousands of events.
    """
    data = to_dict(event)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8"), data["at"]


def canonical_json(event: Event) -> str:
    """Canonical JSON text of ``event`` (see the module docstring)."""
    return canonical_bytes(event).decode("utf-8")


_DECODE_INFO: dict[type, tuple[dict[str, str], tuple[str, ...]]] = {}


def _decode_info(cls: type) -> tuple[dict[str, str], tuple[str, ...]]:
    info = _DECODE_INFO.get(cls)
    if info is None:
        fields = attrs.fields(cls)
        info = _DECODE_INFO[cls] = (
            {f.name: f.metadata["kind"] for f in fields},
            tuple(f.name for f in fields if f.default is attrs.NOTHING),
        )
    return info


def from_dict(data: dict[str, Any]) -> Event:
    """Build an event from a decoded record, strictly.

    Raises :class:`EventValueError` naming the field for an unknown type, an unknown or missing
    field, a wrong type, or an invalid value. Amounts may be decimal strings, ints or
    ``Decimal``; a float is refused.
    """
    if not isinstance(data, dict):
        raise EventValueError(f"event: expected an object, got {type(data).__name__}")
    type_name = data.get("type")
    if type_name is None:
        raise EventValueError("type: required")
    cls = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise EventValueError(
            f"type: unknown event type {type_name!r}; expected one of: "
            + ", ".join(sorted(EVENT_TYPES))
        )
    version = data.get("v", SCHEMA_VERSION)
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        raise EventValueError(
            f"v: unsupported schema_version {version!r} (supported: "
            + ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
            + ")"
        )
    kinds, required = _decode_info(cls)
    unknown = sorted(k for k in data if k not in kinds and k not in _ENVELOPE)
    if unknown:
        raise EventValueError(
            f"{unknown[0]}: unknown field for {type_name} (fields: {', '.join(kinds)})"
        )
    missing = [name for name in required if name not in data]
    if missing:
        raise EventValueError(f"{missing[0]}: required")
    kwargs = {}
    for name, value in data.items():
        if name in _ENVELOPE:
            continue
        kind = kinds[name]
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise EventValueError(f"{name}: expected an integer, got {type(value).__name__}")
        if kind in ("id", "text") and not isinstance(value, str) and value is not None:
            raise EventValueError(f"{name}: expected a string, got {type(value).__name__}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # attrs reports some shape errors as TypeError
        raise EventValueError(f"event: {exc}") from None


def from_json(text: str | bytes) -> Event:
    """Decode one JSON record (floats refused, decimals kept exact) into an event."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return from_dict(_DECODER.decode(text))


_REQUIRED = object()
_STORED_INFO: dict[type, tuple[tuple[str, Any, Any], ...]] = {}


def _stored_info(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    info = _STORED_INFO.get(cls)
    if info is None:
        rows = []
        for f in attrs.fields(cls):
            kind = f.metadata["kind"]
            if kind in _DECIMAL_KINDS:
                convert: Any = _STORED_DECIMALS[kind]
            elif kind == "instant":
                convert = _stored_instant
            elif kind == "sources":
                convert = _stored_sources
            elif kind == "refs":
                convert = _stored_refs
            elif kind == "int":
                convert = _stored_int
            else:
                convert = None  # text: from_stored checks that it is a string
            default = _REQUIRED if f.default is attrs.NOTHING else f.default
            rows.append((f.name, convert, default))
        info = _STORED_INFO[cls] = tuple(rows)
    return info


# Reading back converts types and checks only what would otherwise crash the books or pass a
# wrong sign silently (type, finiteness, sign); the full field rules are verify()'s job.
def _stored_decimal(text: Any, *, minimum: int | None = None) -> Decimal:
    if type(text) is not str:
        raise EventValueError(f"expected a decimal string, got {type(text).__name__}")
    value = Decimal(text)
    if not value.is_finite() or (minimum is not None and value < minimum):
        raise EventValueError(f"stored value {text!r} is out of range")
    return value


def _stored_positive(text: Any) -> Decimal:
    value = _stored_decimal(text, minimum=0)
    if not value:
        raise EventValueError(f"stored value {text!r} must be > 0")
    return value


_STORED_DECIMALS = {
    "amount": _stored_positive,
    "price": _stored_positive,
    "amount0": lambda text: _stored_decimal(text, minimum=0),
    "signed": _stored_decimal,
    "decimal": _stored_decimal,
}


def _stored_instant(text: Any) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise EventValueError(f"stored instant {text!r} has no offset")
    return value


def _stored_sources(value: Any) -> tuple[str, ...]:
    if type(value) is not list:
        raise EventValueError("source: expected a list of strings")
    for item in value:
        if type(item) is not str:
            raise EventValueError("source: expected a list of strings")
    return tuple(value)


def _stored_refs(value: Any) -> tuple[str, ...]:
    if type(value) is not list or not all(type(item) is str for item in value):
        raise EventValueError("accounts: expected a list of account references")
    return tuple(value)


def _stored_int(value: Any) -> int:
    if type(value) is not int:
        raise EventValueError(f"expected an integer, got {type(value).__name__}")
    return value


def from_stored(payload: str | bytes) -> Event:
    """Rebuild an event from a payload this library wrote (canonical JSON), without validation.

    The log stores only canonical payloads of events that passed every check when they were
    appended, and ``Log.verify`` re-decodes each one strictly (:func:`from_json`) and checks that
    it re-encodes to the same bytes. Reading the log back therefore converts types only (decimal
    strings, timestamps, source lists) and checks types, finiteness and signs, several times
    faster than :func:`from_json`. Raises :class:`EventValueError` (or ``ValueError``,
    ``ArithmeticError``, ``KeyError``, ``TypeError``) on a payload that is not even the right
    shape: the log's readers report that as a damaged log.
    """
    data = orjson.loads(payload)
    cls = EVENT_TYPES[data["type"]]
    if data.get("v") not in SUPPORTED_SCHEMA_VERSIONS:
        raise EventValueError(f"v: unsupported schema_version {data.get('v')!r}")
    event = cls.__new__(cls)
    setter = object.__setattr__
    for name, convert, default in _stored_info(cls):
        value = data.get(name)
        if value is None:
            if default is _REQUIRED:
                raise EventValueError(f"{name}: required")
            value = default
        elif convert is not None:
            value = convert(value)
        elif type(value) is not str:
            raise EventValueError(f"{name}: expected a string, got {type(value).__name__}")
        setter(event, name, value)
    return event


def refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for json: a repeated key is an error (json would keep the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EventValueError(f"{key}: duplicate key {key!r}")
        out[key] = value
    return out


def _exact_decimal(literal: str) -> Decimal:
    # JSON numbers with a fraction are read as exact decimals, never as binary floats.
    return Decimal(literal)


def _refuse_constant(literal: str) -> Any:
    raise EventValueError(f"non-finite number not allowed ({literal})")


def decode_json(text: str) -> Any:
    """Strict JSON: exact decimals, no NaN or Infinity, no duplicate keys."""
    return _DECODER.decode(text)


def diff_fields(a: Event, b: Event) -> list[str]:
    """Names of the fields whose canonical values differ, in a fixed order (type first)."""
    da, db = to_dict(a), to_dict(b)
    names = ["type"] + [k for k in sorted(set(da) | set(db)) if k != "type"]
    return [n for n in names if da.get(n) != db.get(n)]


# One decoder for every record (json.loads would build a new one per call when given hooks).
_DECODER = json.JSONDecoder(
    parse_float=_exact_decimal,
    parse_constant=_refuse_constant,
    object_pairs_hook=refuse_duplicate_keys,
)
