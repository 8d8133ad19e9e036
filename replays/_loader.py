"""Timeline files (TOML by hand, JSON Lines by machine) into validated events.

The whole file is read and checked before anything is written; every problem found (up to 20)
is reported with ``file:line`` and the field path. See ``docs/timeline-format.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import attrs

import events as ev
from events import Event, EventValueError
from events._codec import refuse_duplicate_keys
from ledger.errors import InputError, Problem
from ledger.registry import Registry

SUPPORTED_SCHEMA_VERSIONS = (1,)
MAX_RECORD_BYTES = 1_000_000
MAX_FILE_BYTES = 512 * 1024 * 1024
_DECLARATIONS = (
    ("entities", "entity_registered", "entity"),
    ("assets", "asset_listed", "asset"),
    ("accounts", "account_opened", "account"),
)
_TOML_ERROR = re.compile(r"^(?P<msg>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_TOML_HEADER = re.compile(r"^\s*\[\[\s*(?P<name>[A-Za-z_]+)\s*\]\]")
_ANY_HEADER = re.compile(r"^\s*\[")
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_\-]+)\s*=")


@attrs.frozen
class Timeline:
    """A validated history read from a file.

    Attributes:
        name: what ``ledger replay NAME`` calls it.
        path: the file it came from.
        events: the events, declarations first, in file order.
        where: ``file:line`` of each event, parallel to ``events``.
        sources: citation key -> citation.
        quote: reporting currency for the replay.
    """

    name: str
    path: str
    events: list[Event]
    where: list[str]
    sources: dict[str, str] = attrs.field(factory=dict)
    title: str = ""
    description: str = ""
    quote: str = "USD"
    as_of: dt.datetime | None = None

    def check(self) -> None:
        """Dry-run the events against an empty history (references, scales, impossibilities).

        Raises :class:`InputError` with every problem (up to 20), each with ``file:line``.
        """
        registry = Registry()
        problems: list[Problem] = []
        for index, event in enumerate(self.events):
            try:
                registry.apply(event)
            except EventValueError as exc:
                problems.append(_problem(self.where[index], index, event.id, str(exc)))
                if len(problems) >= InputError.MAX_PROBLEMS:
                    break
        if problems:
            raise InputError(problems, source=self.path)


def _problem(where: str, index: int | None, event_id: str | None, message: str) -> Problem:
    field, sep, rest = message.partition(": ")
    if sep and index is not None and re.fullmatch(r"[A-Za-z_][\w\[\]\.]*", field):
        message = f"events[{index}].{field}: {rest}"
    return Problem(message, index=index, event_id=event_id, field=field if sep else "", where=where)


# -- reading bytes ---------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{path}: file too large ({len(data)} bytes)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{path}: file is not UTF-8 (it looks like UTF-16); save it as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark is accepted and dropped
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"{path}:{line}:{col}: not valid UTF-8 at byte {exc.start} (line {line}, column {col})"
        ) from None


# -- TOML ------------------------------------------------------------------------------------------
def _instant(value: Any, field: str) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise EventValueError(
                f"{field}: timestamp must include a UTC offset (write 'Z' or '+00:00'), "
                f"got local date-time {value.isoformat()}"
            )
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, dt.time):
        raise EventValueError(f"{field}: a time without a date is not a timestamp")
    return value


def _record_to_event(record: dict[str, Any]) -> Event:
    record = dict(record)
    for key in ("at", "maturity"):
        if key in record:
            record[key] = _instant(record[key], key)
    return ev.from_dict(record)


class _LineIndex:
    """Finds the line of the k-th ``[[section]]`` header and of a key inside that block."""

    def __init__(self, text: str) -> None:
        # Lines as TOML counts them: str.splitlines() would also split at U+2028, NEL...
        self.lines = text.split("\n")
        self.headers: dict[str, list[int]] = {}
        for number, line in enumerate(self.lines, start=1):
            match = _TOML_HEADER.match(line)
            if match:
                self.headers.setdefault(match["name"], []).append(number)

    def block(self, section: str, index: int) -> int:
        found = self.headers.get(section, [])
        return found[index] if index < len(found) else 0

    def key(self, section: str, index: int, key: str) -> int:
        start = self.block(section, index)
        if not start:
            return 0
        for number in range(start + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if _ANY_HEADER.match(line):
                break
            match = _KEY.match(line)
            if match and match["key"] == key:
                return number
        return start


def load_toml(path: str | Path) -> Timeline:
    """Read and validate a TOML timeline. Raises :class:`InputError` naming file:line:field."""
    path = Path(path)
    text = _read_text(path)
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_ERROR.match(str(exc))
        if match:
            raise InputError(
                f"{path}:{match['line']}:{match['col']}: invalid TOML: {match['msg']}"
            ) from None
        raise InputError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid TOML: input too deeply nested") from None
    except ValueError as exc:  # int() refusing a 5000-digit literal; tomllib gives no line
        line, field = 1, "value"
        index = _LineIndex(text)
        for number, text_line in enumerate(index.lines, start=1):
            if re.search(r"\d{500}", text_line):
                match = _KEY.match(text_line)
                line, field = number, match["key"] if match else field
                # The [[section]] block it is in, as other field errors name it: events[3].amount
                blocks = [(start, name, i) for name, starts in index.headers.items()
                          for i, start in enumerate(starts) if start < number]
                if blocks:
                    _, name, i = max(blocks)
                    field = f"{name}[{i}].{field}"
                break
        raise InputError(f"{path}:{line}: {field}: number too large ({exc})") from None
    lines = _LineIndex(text)
    if "schema_version" not in data:
        raise InputError(f"{path}:1: missing schema_version (write 'schema_version = 1' first)")
    version = data["schema_version"]
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        raise InputError(
            f"{path}:{_find_line(lines.lines, 'schema_version')}: "
            f"unsupported schema_version {version!r} (supported: "
            + ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
            + ")"
        )
    known = {"schema_version", "timeline", "sources", "events"} | {d[0] for d in _DECLARATIONS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{path}: unknown top-level key {unknown[0]!r} (expected: {', '.join(sorted(known))})")
    meta = data.get("timeline", {})
    sources = data.get("sources", {})
    if not isinstance(meta, dict) or not isinstance(sources, dict):
        raise InputError(f"{path}: [timeline] and [sources] must be tables")
    for key, citation in sources.items():
        if not isinstance(citation, str) or not citation.strip():
            raise InputError(f"{path}:{_find_line(lines.lines, key)}: sources.{key}: must be a citation string")

    problems: list[Problem] = []
    out: list[Event] = []
    where: list[str] = []

    def add(section: str, index: int, record: Any) -> None:
        line = lines.block(section, index)
        if not isinstance(record, dict):
            problems.append(Problem(f"{section}[{index}]: expected a table", where=f"{path}:{line}"))
            return
        try:
            event = _record_to_event(record)
        except EventValueError as exc:
            field, _, _ = str(exc).partition(":")
            key_line = lines.key(section, index, field) or line
            message = str(exc)
            problems.append(
                Problem(
                    f"{section}[{index}].{message}",
                    index=len(out),
                    event_id=record.get("id") if isinstance(record.get("id"), str) else None,
                    field=field,
                    where=f"{path}:{key_line}",
                )
            )
            return
        out.append(event)
        where.append(f"{path}:{line}")

    for section, type_name, key in _DECLARATIONS:
        items = data.get(section, [])
        if not isinstance(items, list):
            raise InputError(f"{path}: {section} must be an array of tables ([[{section}]])")
        for index, record in enumerate(items):
            if isinstance(record, dict):
                record = dict(record)
                if "type" in record and record["type"] != type_name:
                    problems.append(Problem(f"{section}[{index}].type: must be {type_name!r} here", where=f"{path}:{lines.block(section, index)}"))
                    continue
                record["type"] = type_name
                if "id" not in record and isinstance(record.get(key), str):
                    record["id"] = f"{key}:{record[key]}"
            add(section, index, record)
    items = data.get("events", [])
    if not isinstance(items, list):
        raise InputError(f"{path}: events must be an array of tables ([[events]])")
    for index, record in enumerate(items):
        add("events", index, record)
    if not out and not problems:
        raise InputError(f"{path}: no events")
    as_of = None
    if "as_of" in meta:
        try:
            as_of = ev._fields.utc_instant(_instant(meta["as_of"], "timeline.as_of"), field="timeline.as_of")
        except EventValueError as exc:
            problems.append(Problem(str(exc), where=f"{path}:{_find_line(lines.lines, 'as_of')}"))
    timeline = Timeline(
        name=str(meta.get("name") or _default_name(path)),
        path=str(path),
        events=out,
        where=where,
        sources={str(k): v for k, v in sources.items()},
        title=str(meta.get("title", "")),
        description=str(meta.get("description", "")),
        quote=str(meta.get("quote", "USD")),
        as_of=as_of,
    )
    problems += _file_rules(timeline, require_sources=True)
    if problems:
        raise InputError(problems[: InputError.MAX_PROBLEMS], source=str(path))
    return timeline


def _find_line(lines: list[str], key: str) -> int:
    for number, line in enumerate(lines, start=1):
        match = _KEY.match(line)
        if match and match["key"] == key:
            return number
    return 1


def _default_name(path: Path) -> str:
    return path.stem.replace("_", "-")


def _file_rules(timeline: Timeline, *, require_sources: bool) -> list[Problem]:
    """Rules over the whole file: unique ids, time order, sources resolve, as_of."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    previous: Event | None = None
    previous_where = ""
    for index, event in enumerate(timeline.events):
        here = timeline.where[index]
        if event.id in seen:
            first = timeline.where[seen[event.id]]
            problems.append(
                Problem(
                    f"id: duplicate event_id {event.id!r} ({_line_of(first)} and {_line_of(here)})",
                    index=index, event_id=event.id, field="id", where=here,
                )
            )
        else:
            seen[event.id] = index
        if previous is not None and event.at < previous.at:
            problems.append(
                Problem(
                    f"at: {ev.format_instant(event.at)} ({_line_of(here)}) is before "
                    f"{ev.format_instant(previous.at)} ({_line_of(previous_where)}); "
                    "events must be in time order",
                    index=index, event_id=event.id, field="at", where=here,
                )
            )
        if timeline.as_of is not None and event.at > timeline.as_of:
            problems.append(
                Problem(
                    f"at: {ev.format_instant(event.at)} is after as_of {ev.format_instant(timeline.as_of)}",
                    index=index, event_id=event.id, field="at", where=here,
                )
            )
        if require_sources:
            for key in event.source:
                if key not in timeline.sources:
                    problems.append(
                        Problem(
                            f"source: {key!r} is not in the [sources] table",
                            index=index, event_id=event.id, field="source", where=here,
                        )
                    )
        previous, previous_where = event, here
    return problems


def _line_of(where: str) -> str:
    return "line " + where.rsplit(":", 1)[-1]


# -- JSON Lines ------------------------------------------------------------------------------------
def _int_or_decimal(literal: str) -> int | Decimal:
    # Python refuses int() of more than 4300 digits; a Decimal is then refused by the field's
    # own check ("amount: number too large"), which names the field.
    return int(literal) if len(literal) <= 100 else Decimal(literal)


def _decode_record(text: str) -> Any:
    # As decode_json_record, but NaN and Infinity decode to non-finite Decimals so that the
    # field they are in refuses them by name (every field refuses a non-finite Decimal).
    return json.loads(
        text,
        parse_float=Decimal,
        parse_int=_int_or_decimal,
        parse_constant=Decimal,
        object_pairs_hook=refuse_duplicate_keys,
    )


def decode_json_record(text: str) -> dict[str, Any]:
    """Decode one JSON object strictly: exact decimals, no NaN/Infinity, no duplicate keys."""
    return ev.decode_json(text)


def load_jsonl(path: str | Path) -> Timeline:
    """Read and validate a JSON Lines file of events (one canonical record per line)."""
    path = Path(path)
    text = _read_text(path)
    problems: list[Problem] = []
    out: list[Event] = []
    where: list[str] = []
    # Split at "\n" only: canonical JSON keeps U+2028, U+2029 and NEL unescaped inside strings,
    # and str.splitlines() would cut a record there.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        here = f"{path}:{number}"
        if len(line) > MAX_RECORD_BYTES:
            problems.append(Problem(f"record too large ({len(line)} characters)", where=here))
            continue
        try:
            record = _decode_record(line)
            if not isinstance(record, dict):
                raise EventValueError(f"event: expected a JSON object, got {type(record).__name__}")
            event = ev.from_dict(record)
        except json.JSONDecodeError as exc:
            problems.append(Problem(f"invalid JSON: {exc.msg}", where=f"{here}:{exc.colno}"))
        except RecursionError:
            problems.append(Problem("input too deeply nested", where=here))
        except EventValueError as exc:
            problems.append(Problem(str(exc), index=len(out), field=str(exc).partition(":")[0], where=here))
        except (ValueError, ArithmeticError) as exc:  # e.g. int() limit on a 5000-digit literal
            problems.append(Problem(f"invalid number: {exc}", where=here))
        else:
            out.append(event)
            where.append(here)
        if len(problems) >= InputError.MAX_PROBLEMS:
            break
    if not out and not problems:
        raise InputError(f"{path}: no events")
    timeline = Timeline(name=_default_name(path), path=str(path), events=out, where=where)
    problems += _file_rules(timeline, require_sources=False)
    if problems:
        raise InputError(problems[: InputError.MAX_PROBLEMS], source=str(path))
    return timeline


def dump_jsonl(items: Iterable[Event], out: TextIO) -> int:
    """Write events as canonical JSON Lines; returns how many were written."""
    count = 0
    for event in items:
        out.write(ev.canonical_json(event))
        out.write("\n")
        count += 1
    return count


# -- finding timelines -----------------------------------------------------------------------------
def bundled_paths() -> Iterator[Path]:
    """Paths of the timelines shipped with the package."""
    root = resources.files("replays")
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            yield Path(str(entry))


def bundled() -> list[Timeline]:
    """The bundled timelines, loaded."""
    return [load_toml(p) for p in bundled_paths()]


def resolve(name_or_path: str | Path) -> Path:
    """A file path for ``name_or_path``: an existing file, or a bundled timeline's name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    wanted = str(name_or_path)
    for candidate in bundled_paths():
        if wanted in (candidate.stem, candidate.stem.replace("_", "-"), candidate.name):
            return candidate
    names = ", ".join(p.stem.replace("_", "-") for p in bundled_paths())
    raise InputError(f"{wanted}: no such file or bundled timeline (bundled: {names})")


def load_timeline(name_or_path: str | Path) -> Timeline:
    """Load a timeline by bundled name or path; ``.jsonl`` is JSON Lines, anything else TOML."""
    path = resolve(name_or_path)
    if path.suffix in (".jsonl", ".ndjson"):
        return load_jsonl(path)
    return load_toml(path)
