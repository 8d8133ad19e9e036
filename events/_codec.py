"""Canonical JSON for events: the bytes that are hashed, stored and exported.

Canonical form: UTF-8 JSON, keys sorted, separators ``(",", ":")``, no floats (amounts and
prices are decimal strings, scales are ints), timestamps as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``,
optional fields left out when empty, and ``"v"`` (the schema version) in every record.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import attrs

from events import _fields, _money
from events._errors import EventValueError
from events._model import EVENT_TYPES, Event

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
_ENVELOPE = ("type", "v")


def _encode_value(kind: str, value: Any) -> Any:
    if kind in ("amount", "amount0", "signed", "price", "decimal"):
        return _money.format_decimal(value)
    if kind == "instant":
        return _fields.format_instant(value)
    if kind == "sources":
        return list(value)
    return value


_PLAIN_KINDS = frozenset({"id", "text", "int"})
_FIELD_KINDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _field_kinds(cls: type) -> tuple[tuple[str, str], ...]:
    kinds = _FIELD_KINDS.get(cls)
    if kinds is None:
        kinds = _FIELD_KINDS[cls] = tuple((f.name, f.metadata["kind"]) for f in attrs.fields(cls))
    return kinds


def to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict (strings and ints only, no ``None``)."""
    out: dict[str, Any] = {"type": event.type, "v": SCHEMA_VERSION}
    for name, kind in _field_kinds(type(event)):
        value = getattr(event, name)
        if value is None:
            continue
        out[name] = value if kind in _PLAIN_KINDS else _encode_value(kind, value)
    return out


def canonical_json(event: Event) -> str:
    """Canonical JSON text of ``event`` (see the module docstring)."""
    return json.dumps(to_dict(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(event: Event) -> bytes:
    """UTF-8 bytes of :func:`canonical_json`: what the log hashes."""
    return canonical_json(event).encode("utf-8")


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
