"""Timeline files (TOML by hand, JSON Lines by machine) into validated events.

The whole file is read and checked before anything is written; every problem found (up to 20)
is reported with ``file:line`` and the field path. See ``docs/timeline-format.md``.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import tomllib
import unicodedata
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
#: The largest TOML file read. tomllib builds the whole document in memory, and the loader keeps
#: the text, its lines and the events: a TOML costs about 16 times its size at peak (16 MiB:
#: about 260 MiB to load, 276 MiB for ``ledger append``; docs/timeline-format.md). Bigger
#: histories go in JSON Lines, which stream (:func:`iter_jsonl`).
MAX_TOML_BYTES = 16 * 1024 * 1024
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
def _too_large_toml(path: Path, size: int) -> InputError:
    return InputError(
        f"{path}: TOML file too large ({size:,} bytes; the limit is {MAX_TOML_BYTES:,} bytes, "
        f"{MAX_TOML_BYTES // (1024 * 1024)} MiB, because reading a TOML takes about 16 times its "
        "size in memory); write bigger histories as JSON Lines (.jsonl, one event a line, "
        "read a line at a time: see docs/timeline-format.md)"
    )


def _read_text(path: Path, *, toml: bool = False) -> str:
    if toml:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0  # read_bytes below names the problem
        if size > MAX_TOML_BYTES:
            raise _too_large_toml(path, size)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if toml and len(data) > MAX_TOML_BYTES:  # not a regular file, or it grew since stat()
        raise _too_large_toml(path, len(data))
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{path}: file too large ({len(data)} bytes)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{path}: file is not UTF-8 (it looks like UTF-16); save it as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark is accepted and dropped
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data, exc.start) from None


def _not_utf8(path: Path, data: bytes, start: int, *, line: int | None = None, col: int | None = None) -> InputError:
    if line is None:
        line = data.count(b"\n", 0, start) + 1
    if col is None:
        col = start - (data.rfind(b"\n", 0, start) + 1) + 1
    return InputError(f"{path}:{line}:{col}: not valid UTF-8 at byte {start} (line {line}, column {col})")


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


# TOML tokens that can hold a date-time literal or look like one: strings and comments (skipped),
# table headers (to name the field), and date-times or times with a fraction of a second.
_TOML_TOKENS = re.compile(
    r'(?P<skip>"""(?:\\[\s\S]|[^\\])*?"""(?:"{0,2})'
    r"|'''[\s\S]*?'''(?:'{0,2})"
    r'|"(?:\\.|[^"\\\n])*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*)"
    r"|(?m:^[ \t]*\[\[[ \t]*(?P<aot>[A-Za-z0-9_-]+)[ \t]*\]\])"
    r"|(?m:^[ \t]*\[[ \t]*(?P<table>[A-Za-z0-9_-]+)[ \t]*\])"
    r"|(?P<dt>(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ])?[0-9]{2}:[0-9]{2}:[0-9]{2}\.(?P<frac>[0-9]+)"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?)"
)
_LONG_FRACTION = re.compile(r":[0-9]{2}\.[0-9]{7}")
_KEY_BEFORE = re.compile(r"(?P<key>[A-Za-z0-9_-]+)[ \t]*=[ \t]*$")


def _sub_microsecond(path: Path, text: str) -> list[Problem]:
    """Date-time literals with more than 6 digits below the second, which tomllib truncates.

    Looks at the raw text (outside strings and comments), since the parsed value has already
    lost the digits. Each is named ``file:line: section[i].key``.
    """
    if not _LONG_FRACTION.search(text):
        return []  # the common case: one fast scan
    problems: list[Problem] = []
    section = ""
    counts: dict[str, int] = {}
    line, scanned = 1, 0
    for match in _TOML_TOKENS.finditer(text):
        if match["aot"]:
            counts[match["aot"]] = counts.get(match["aot"], -1) + 1
            section = f"{match['aot']}[{counts[match['aot']]}]"
        elif match["table"]:
            section = match["table"]
        elif match["dt"] and len(match["frac"]) > 6:
            start = match.start()
            line += text.count("\n", scanned, start)
            scanned = start
            line_start = text.rfind("\n", 0, start) + 1
            key = _KEY_BEFORE.search(text, line_start, start)
            field = key["key"] if key else "value"
            field = f"{section}.{field}" if section else field
            problems.append(
                Problem(
                    f"{field}: {match['dt']} has {len(match['frac'])} digits below the second; "
                    "TOML date-times are read to the microsecond and the rest would be dropped "
                    "silently: write at most 6 fractional digits",
                    field=field,
                    where=f"{path}:{line}",
                )
            )
            if len(problems) >= InputError.MAX_PROBLEMS:
                break
    return problems


def _table_key_line(lines: list[str], table: str, key: str) -> int:
    """The line of ``key`` in the ``[table]`` block; the header's line without it; else 1."""
    header = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]")
    for start, text in enumerate(lines, start=1):
        if header.match(text):
            for number in range(start + 1, len(lines) + 1):
                line = lines[number - 1]
                if _ANY_HEADER.match(line):
                    break
                match = _KEY.match(line)
                if match and match["key"] == key:
                    return number
            return start
    return 1


def _quote_problem(path: Path, meta: dict[str, Any], out: list[Event], lines: list[str]) -> tuple[str, Problem | None]:
    """The timeline's quote asset, and a problem unless it is one of the assets the file lists.

    A file that lists no assets (more events for a log that has them) keeps the default USD.
    """
    listed = [e.asset for e in out if isinstance(e, ev.AssetListed)]
    where = f"{path}:{_table_key_line(lines, 'timeline', 'quote')}"
    shown = ", ".join(listed) or "none"
    if "quote" not in meta:
        if listed and "USD" not in listed:
            return "USD", Problem(
                f"timeline.quote: not given, and the default 'USD' is not one of the assets this "
                f"file lists ({shown}); write quote = \"...\" in [timeline]",
                field="timeline.quote", where=where,
            )
        return "USD", None
    quote = meta["quote"]
    if not isinstance(quote, str):
        return str(quote), Problem(
            f"timeline.quote: must be the name of a listed asset (a string such as \"USD\"), "
            f"got {type(quote).__name__} {quote!r}",
            field="timeline.quote", where=where,
        )
    quote = unicodedata.normalize("NFC", quote)
    if quote not in listed:
        return quote, Problem(
            f"timeline.quote: {quote!r} is not one of the assets this file lists ({shown}); "
            "the replay values everything in the quote asset",
            field="timeline.quote", where=where,
        )
    return quote, None


def load_toml(path: str | Path) -> Timeline:
    """Read and validate a TOML timeline. Raises :class:`InputError` naming file:line:field."""
    path = Path(path)
    text = _read_text(path, toml=True)
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
        line_index = _LineIndex(text)
        for number, text_line in enumerate(line_index.lines, start=1):
            if re.search(r"\d{500}", text_line):
                match = _KEY.match(text_line)
                line, field = number, match["key"] if match else field
                # The [[section]] block it is in, as other field errors name it: events[3].amount
                blocks = [(start, name, i) for name, starts in line_index.headers.items()
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

    problems: list[Problem] = _sub_microsecond(path, text)
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
    quote, quote_problem = _quote_problem(path, meta, out, lines.lines)
    if quote_problem is not None:
        problems.append(quote_problem)
    timeline = Timeline(
        name=str(meta.get("name") or _default_name(path)),
        path=str(path),
        events=out,
        where=where,
        sources={str(k): v for k, v in sources.items()},
        title=str(meta.get("title", "")),
        description=str(meta.get("description", "")),
        quote=quote,
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
            problems.append(_order_problem(event, here, previous, previous_where, index))
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


def _order_problem(event: Event, here: str, previous: Event, previous_where: str, index: int) -> Problem:
    return Problem(
        f"at: {ev.format_instant(event.at)} ({_line_of(here)}) is before "
        f"{ev.format_instant(previous.at)} ({_line_of(previous_where)}); "
        "events must be in time order",
        index=index, event_id=event.id, field="at", where=here,
    )


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


def _jsonl_record(line: str, here: str, index: int) -> Event | Problem:
    """One JSON Lines record (a line without its newline) as an event, or what is wrong with it.

    ``index`` is the event's place among the valid events before it (``Problem.index``).
    """
    if len(line) > MAX_RECORD_BYTES:
        return Problem(f"record too large ({len(line)} characters)", where=here)
    try:
        record = _decode_record(line)
        if not isinstance(record, dict):
            raise EventValueError(f"event: expected a JSON object, got {type(record).__name__}")
        return ev.from_dict(record)
    except json.JSONDecodeError as exc:
        return Problem(f"invalid JSON: {exc.msg}", where=f"{here}:{exc.colno}")
    except RecursionError:
        return Problem("input too deeply nested", where=here)
    except EventValueError as exc:
        return Problem(str(exc), index=index, field=str(exc).partition(":")[0], where=here)
    except (ValueError, ArithmeticError) as exc:  # e.g. int() limit on a 5000-digit literal
        return Problem(f"invalid number: {exc}", where=here)


def load_jsonl(path: str | Path) -> Timeline:
    """Read and validate a JSON Lines file of events (one canonical record per line).

    The whole file is held in memory (up to 512 MiB); :func:`iter_jsonl` streams instead.
    """
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
        result = _jsonl_record(line, here, len(out))
        if isinstance(result, Problem):
            problems.append(result)
        else:
            out.append(result)
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


# A record of MAX_RECORD_BYTES characters is at most 4 bytes a character, plus "\r\n".
_READ_LIMIT = 4 * MAX_RECORD_BYTES + 2


def iter_jsonl(path: str | Path) -> Iterator[tuple[Event, str]]:
    """Stream a JSON Lines file of events: yield ``(event, "file:line")`` one line at a time.

    Memory stays bounded whatever the file's size (one line, at most about 4 MB, at a time).
    Each line is checked with the rules and messages of :func:`load_jsonl`, and so is time
    order. Problems (up to ``InputError.MAX_PROBLEMS``, the lines' own first and then time order,
    as :func:`load_jsonl` lists them) are collected and raised together as one
    :class:`InputError` after the last line read; events are yielded only up to the first
    problem, so a consumer that appends them in one transaction and rolls back on the error
    writes nothing. A file that is not UTF-8 is refused at once, as :func:`load_jsonl` does.

    Unlike :func:`load_jsonl` it does not look for an id repeated inside the file (that would
    keep every id in memory): the log answers a repeated id (already recorded: skipped when the
    content is identical, a conflict when it differs).
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    problems: list[Problem] = []  # the lines' own problems
    order: list[Problem] = []  # events out of time order, reported after them as load_jsonl does
    valid = 0
    previous: Event | None = None
    previous_where = ""
    offset = 0  # bytes read before this line, after a byte order mark
    number = 0
    with handle:
        while len(problems) < InputError.MAX_PROBLEMS:
            try:
                raw = handle.readline(_READ_LIMIT)
            except OSError as exc:
                raise InputError(f"{path}: cannot read ({exc.strerror})") from None
            if not raw:
                break
            number += 1
            complete = raw.endswith(b"\n") or len(raw) < _READ_LIMIT
            if number == 1:
                if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise InputError(f"{path}: file is not UTF-8 (it looks like UTF-16); save it as UTF-8")
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]  # a UTF-8 byte order mark is accepted and dropped
            here = f"{path}:{number}"
            if not complete:
                size, offset = _skip_long_line(handle, path, raw, number, offset)
                problems.append(Problem(f"record too large ({size} characters)", where=here))
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, b"", offset + exc.start, line=number, col=exc.start + 1) from None
            offset += len(raw)
            if line.endswith("\n"):
                line = line[:-1]
            if not line.strip():
                continue
            result = _jsonl_record(line, here, valid)
            if isinstance(result, Problem):
                problems.append(result)
                continue
            if previous is not None and result.at < previous.at:
                if len(order) < InputError.MAX_PROBLEMS:
                    order.append(_order_problem(result, here, previous, previous_where, valid))
            elif not problems and not order:
                yield result, here
            valid += 1
            previous, previous_where = result, here
    if not valid and not problems:
        raise InputError(f"{path}: no events")
    problems += order
    if problems:
        raise InputError(problems[: InputError.MAX_PROBLEMS], source=str(path))


def _skip_long_line(handle: Any, path: Path, first: bytes, number: int, offset: int) -> tuple[int, int]:
    """Read past the rest of a line too long to be a record, a chunk at a time; return its
    length in characters (without the newline, as :func:`load_jsonl` counts) and the offset
    after it. A byte that is not UTF-8 is refused as :func:`load_jsonl` refuses it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    start = offset
    chunk = first
    while chunk:
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(chunk, final=chunk.endswith(b"\n"))
        except UnicodeDecodeError as exc:
            at = offset - pending + exc.start
            raise _not_utf8(path, b"", at, line=number, col=at - start + 1) from None
        size += len(text) - text.endswith("\n")
        offset += len(chunk)
        if chunk.endswith(b"\n"):
            break
        chunk = handle.readline(_READ_LIMIT)
    return size, offset


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
