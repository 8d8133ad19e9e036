"""Scenario files (TOML): what changes, from where, validated before anything runs.

A scenario names a base history (a bundled timeline, a timeline file or a stored log), a fork
point, and the changes made from it: prices overridden or scaled, withdrawal waves injected,
events removed or replaced, the policy changed. :func:`load_scenario` reads a file and checks
every field; :meth:`Scenario.check` checks it against the base history. Every problem is named
``file:line: field: message`` and nothing runs on bad input. See ``docs/scenarios.md``.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

import events as ev
from ledger.errors import InputError, Problem
from ledger.policy import Policy

SCHEMA_VERSIONS = (1,)
_HEADER = re.compile(r"^\s*\[(?P<aot>\[)?\s*(?P<name>[A-Za-z0-9_.\-]+)\s*\]")
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_\-]+)\s*=")
_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>[smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@attrs.frozen
class PriceChange:
    """Prices of ``asset`` from ``start`` (None: the fork point) on.

    Exactly one of: ``scale`` (every price times this factor, and the price in force at the
    start too: a shock of -35% is a scale of 0.65), ``path`` (the prices replaced by these
    ``(at, price)`` points), ``step`` (the price set to this level at the start and held).
    """

    asset: str
    start: dt.datetime | None = None
    scale: Decimal | None = None
    path: tuple[tuple[dt.datetime, Decimal], ...] = ()
    step: Decimal | None = None
    quote: str | None = None


@attrs.frozen
class Wave:
    """A withdrawal wave at ``venue``: ``total`` spread evenly over ``window`` seconds in
    ``parts`` requests from ``start`` (None: the fork point). ``account``, ``asset`` and
    ``paid_from`` default to the venue's customer account owed the most, its asset, and the
    venue's custody account holding the most of it."""

    venue: str
    total: Decimal
    start: dt.datetime | None = None
    window: int = 3600
    parts: int = 10
    asset: str | None = None
    account: str | None = None
    paid_from: str | None = None


@attrs.frozen
class Fork:
    """Where the derived history leaves the base: at the first event with ``seq`` (the books
    after seq - 1 are shared), or at the first event at or after time ``at``."""

    seq: int | None = None
    at: dt.datetime | None = None


@attrs.frozen
class Scenario:
    """A validated scenario (see the module docstring)."""

    name: str
    base: str
    fork: Fork
    title: str = ""
    description: str = ""
    log: bool = False
    prices: tuple[PriceChange, ...] = ()
    waves: tuple[Wave, ...] = ()
    remove: tuple[str, ...] = ()
    replace: tuple[tuple[str, dict[str, Any]], ...] = ()
    policy: dict[str, Any] = attrs.field(factory=dict)
    path: str = ""
    #: ``field -> file:line`` for the checks made against the base history.
    where: dict[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    def policy_over(self, base: Policy) -> Policy:
        """``base`` with this scenario's policy keys changed (tables merged key by key)."""
        return evolve_policy(base, self.policy, where=self.path)


def evolve_policy(
    base: Policy, changes: dict[str, Any], *, where: str = "policy", text: str = ""
) -> Policy:
    """``base`` with the keys of ``changes`` (policy-file keys and values) changed; validated
    by :meth:`Policy.from_dict`, whose errors name ``where``."""
    if not changes:
        return base
    parsed = Policy.from_dict(changes, where=where, text=text)
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        new = getattr(parsed, key)
        if isinstance(value, dict):
            new = {**getattr(base, key), **{k: new[k] for k in value}}
        updates[key] = new
    return attrs.evolve(base, **updates)


class _Lines:
    """The line of a ``[table]``/``[[table]]`` block (the k-th) and of a key inside it."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.blocks: dict[str, list[int]] = {}
        for number, line in enumerate(self.lines, start=1):
            match = _HEADER.match(line)
            if match:
                self.blocks.setdefault(match["name"], []).append(number)

    def of(self, table: str = "", key: str = "", index: int = 0) -> int:
        if table:
            starts = self.blocks.get(table, [])
            if index >= len(starts):
                return 1
            start = starts[index]
        else:
            start = 0
        for number in range(start + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if _HEADER.match(line):
                break
            match = _KEY.match(line)
            if key and match and match["key"] == key:
                return number
        if not table:
            for number, line in enumerate(self.lines, start=1):  # a dotted or inline key
                match = _KEY.match(line)
                if key and match and match["key"] == key:
                    return number
        return start or 1


def parse_fraction(value: object, field: str) -> Decimal:
    """An exact decimal from a string or an integer: ``"-0.35"``, ``"-35%"``, ``2``. Never a
    float: TOML floats are read as decimals, but a percentage is best written as a string."""
    if isinstance(value, bool):
        raise ev.EventValueError(f'{field}: expected a decimal string such as "-0.35" or "-35%"')
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if not isinstance(value, str):
        raise ev.EventValueError(
            f'{field}: expected a decimal string such as "-0.35" or "-35%", got {type(value).__name__}'
        )
    text = value.strip().replace("_", "")
    percent = text.endswith("%")
    try:
        number = Decimal(text[:-1] if percent else text)
    except InvalidOperation:
        raise ev.EventValueError(f"{field}: not a decimal: {value!r}") from None
    if not number.is_finite():
        raise ev.EventValueError(f"{field}: must be finite, got {value!r}")
    return number / 100 if percent else number


def parse_duration(value: object, field: str) -> int:
    """Seconds from ``"90s"``, ``"30m"``, ``"6h"``, ``"2d"`` or an integer number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return int(match["n"]) * _UNITS[match["unit"]]
    raise ev.EventValueError(
        f'{field}: a duration such as "6h", "30m", "2d" or seconds, got {value!r}'
    )


def _instant(value: object, field: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ev.EventValueError(
                f"{field}: timestamp must include a UTC offset (write 'Z'), got {value.isoformat()}"
            )
        return value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        from ledger.when import parse_when

        try:
            parsed = parse_when(value, field)
        except Exception as exc:
            raise ev.EventValueError(f"{field}: {exc}") from None
        if parsed is not None:
            return parsed
    raise ev.EventValueError(f"{field}: expected a date or a UTC date-time, got {value!r}")


def _positive(value: object, field: str) -> Decimal:
    number = parse_fraction(value, field)
    if number <= 0:
        raise ev.EventValueError(f"{field}: must be > 0, got {number}")
    return number


_TOP = {
    "schema_version",
    "scenario",
    "fork",
    "prices",
    "withdrawals",
    "remove",
    "replace",
    "policy",
}
_SCENARIO_KEYS = {"name", "title", "description", "base", "log"}
_PRICE_KEYS = {"asset", "from", "shock", "scale", "path", "step", "quote"}
_WAVE_KEYS = {"venue", "total", "at", "window", "parts", "asset", "account", "paid_from"}


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file. Raises :class:`InputError` naming file:line: field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read scenario ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: scenario file is not UTF-8") from None
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        match = re.match(r"^(?P<msg>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$", str(exc))
        if match:
            raise InputError(
                f"{path}:{match['line']}:{match['col']}: invalid TOML: {match['msg']}"
            ) from None
        raise InputError(f"{path}: invalid TOML: {exc}") from None
    return scenario_from_dict(data, path=str(path), text=text)


def scenario_from_dict(data: dict[str, Any], *, path: str = "scenario", text: str = "") -> Scenario:
    """Validate parsed TOML (``text`` gives the lines errors name)."""
    lines = _Lines(text)
    problems: list[Problem] = []
    where: dict[str, str] = {}

    def problem(field: str, message: str, table: str = "", key: str = "", index: int = 0) -> None:
        line = lines.of(table, key, index)
        problems.append(Problem(f"{field}: {message}", field=field, where=f"{path}:{line}"))

    def guarded(field: str, table: str, key: str, index: int, fn: Any, *args: Any) -> Any:
        where[field] = f"{path}:{lines.of(table, key, index)}"
        try:
            return fn(*args)
        except ev.EventValueError as exc:
            message = str(exc)
            prefix = f"{field}: "
            problem(
                field,
                message[len(prefix) :] if message.startswith(prefix) else message,
                table,
                key,
                index,
            )
            return None

    version = data.get("schema_version")
    if version is None:
        raise InputError(f"{path}:1: missing schema_version (write 'schema_version = 1' first)")
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise InputError(
            f"{path}:{lines.of('', 'schema_version')}: unsupported schema_version {version!r} (supported: 1)"
        )
    for key in sorted(set(data) - _TOP):
        problem(key, f"unknown top-level key (expected: {', '.join(sorted(_TOP))})", "", key)

    meta = data.get("scenario", {})
    if not isinstance(meta, dict):
        meta = {}
        problem("scenario", "must be a table ([scenario])")
    for key in sorted(set(meta) - _SCENARIO_KEYS):
        problem(
            f"scenario.{key}",
            f"unknown key (expected: {', '.join(sorted(_SCENARIO_KEYS))})",
            "scenario",
            key,
        )
    name = meta.get("name", Path(path).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", name):
        problem(
            "scenario.name",
            f"letters, digits, '-', '_' and '.', at most 64, got {name!r}",
            "scenario",
            "name",
        )
        name = "scenario"
    base = meta.get("base")
    is_log = False
    if "log" in meta:
        if base is not None:
            problem(
                "scenario.log",
                "name one base: base (a timeline) or log (a stored log)",
                "scenario",
                "log",
            )
        base, is_log = meta["log"], True
    if not isinstance(base, str) or not base:
        problem(
            "scenario.base",
            'name the base history: base = "ftx-2022" (a bundled name or a timeline file) or log = "ledger.db"',
            "scenario",
            "base",
        )
        base = ""
    else:
        # A file is relative to the scenario's folder, as a reader of the file would expect.
        candidate = Path(path).parent / base
        if not Path(base).is_absolute() and candidate.exists():
            base = str(candidate)
    for key in ("title", "description"):
        if key in meta and not isinstance(meta[key], str):
            problem(f"scenario.{key}", "must be a string", "scenario", key)

    fork_data = data.get("fork", {})
    fork = Fork()
    if not isinstance(fork_data, dict) or not fork_data:
        problem("fork", "give the fork point: [fork] at = 2022-06-30T00:00:00Z, or seq = N", "fork")
    else:
        for key in sorted(set(fork_data) - {"seq", "at"}):
            problem(f"fork.{key}", "unknown key (expected: at, seq)", "fork", key)
        if "seq" in fork_data and "at" in fork_data:
            problem("fork", "give one of at and seq, not both", "fork", "seq")
        elif "seq" in fork_data:
            seq = fork_data["seq"]
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
                problem("fork.seq", f"a seq >= 1, got {seq!r}", "fork", "seq")
            else:
                fork = Fork(seq=seq)
                where["fork"] = f"{path}:{lines.of('fork', 'seq')}"
        elif "at" in fork_data:
            at = guarded("fork.at", "fork", "at", 0, _instant, fork_data["at"], "fork.at")
            if at is not None:
                fork = Fork(at=at)
                where["fork"] = f"{path}:{lines.of('fork', 'at')}"

    prices: list[PriceChange] = []
    items = data.get("prices", [])
    if not isinstance(items, list):
        problem("prices", "must be an array of tables ([[prices]])", "prices")
        items = []
    for i, item in enumerate(items):
        field = f"prices[{i}]"
        if not isinstance(item, dict):
            problem(field, "expected a table", "prices", index=i)
            continue
        for key in sorted(set(item) - _PRICE_KEYS):
            problem(
                f"{field}.{key}",
                f"unknown key (expected: {', '.join(sorted(_PRICE_KEYS))})",
                "prices",
                key,
                i,
            )
        asset = item.get("asset")
        if not isinstance(asset, str) or not asset:
            problem(f"{field}.asset", "name the asset", "prices", "asset", i)
            continue
        where[f"{field}.asset"] = f"{path}:{lines.of('prices', 'asset', i)}"
        kinds = [k for k in ("shock", "scale", "path", "step") if k in item]
        if len(kinds) != 1:
            problem(field, "give exactly one of shock, scale, path and step", "prices", index=i)
            continue
        start = (
            guarded(f"{field}.from", "prices", "from", i, _instant, item["from"], f"{field}.from")
            if "from" in item
            else None
        )
        change = PriceChange(asset=asset, start=start, quote=item.get("quote"))
        kind = kinds[0]
        if kind in ("shock", "scale"):
            number = guarded(
                f"{field}.{kind}", "prices", kind, i, parse_fraction, item[kind], f"{field}.{kind}"
            )
            if number is None:
                continue
            scale = 1 + number if kind == "shock" else number
            if scale <= 0:
                problem(
                    f"{field}.{kind}",
                    f"prices must stay above zero (a factor of {scale})",
                    "prices",
                    kind,
                    i,
                )
                continue
            change = attrs.evolve(change, scale=scale)
        elif kind == "step":
            level = guarded(
                f"{field}.step", "prices", "step", i, _positive, item["step"], f"{field}.step"
            )
            if level is None:
                continue
            change = attrs.evolve(change, step=level)
        else:
            points = item["path"]
            if not isinstance(points, list) or not points:
                problem(f"{field}.path", 'a list of {at = ..., price = "..."}', "prices", "path", i)
                continue
            parsed: list[tuple[dt.datetime, Decimal]] = []
            for j, point in enumerate(points):
                pfield = f"{field}.path[{j}]"
                if not isinstance(point, dict) or set(point) != {"at", "price"}:
                    problem(pfield, 'expected {at = ..., price = "..."}', "prices", "path", i)
                    continue
                when = guarded(
                    pfield + ".at", "prices", "path", i, _instant, point["at"], pfield + ".at"
                )
                price = guarded(
                    pfield + ".price",
                    "prices",
                    "path",
                    i,
                    _positive,
                    point["price"],
                    pfield + ".price",
                )
                if when is not None and price is not None:
                    if parsed and when < parsed[-1][0]:
                        problem(
                            pfield + ".at",
                            "the path's times must not go backwards",
                            "prices",
                            "path",
                            i,
                        )
                    parsed.append((when, price))
            change = attrs.evolve(change, path=tuple(parsed))
        prices.append(change)

    waves: list[Wave] = []
    items = data.get("withdrawals", [])
    if not isinstance(items, list):
        problem("withdrawals", "must be an array of tables ([[withdrawals]])", "withdrawals")
        items = []
    for i, item in enumerate(items):
        field = f"withdrawals[{i}]"
        if not isinstance(item, dict):
            problem(field, "expected a table", "withdrawals", index=i)
            continue
        for key in sorted(set(item) - _WAVE_KEYS):
            problem(
                f"{field}.{key}",
                f"unknown key (expected: {', '.join(sorted(_WAVE_KEYS))})",
                "withdrawals",
                key,
                i,
            )
        venue = item.get("venue")
        if not isinstance(venue, str) or not venue:
            problem(f"{field}.venue", "name the venue", "withdrawals", "venue", i)
            continue
        where[f"{field}.venue"] = f"{path}:{lines.of('withdrawals', 'venue', i)}"
        if "total" not in item:
            problem(f"{field}.total", "give the wave's total amount", "withdrawals", index=i)
            continue
        total = guarded(
            f"{field}.total", "withdrawals", "total", i, _positive, item["total"], f"{field}.total"
        )
        start = (
            guarded(f"{field}.at", "withdrawals", "at", i, _instant, item["at"], f"{field}.at")
            if "at" in item
            else None
        )
        window = guarded(
            f"{field}.window",
            "withdrawals",
            "window",
            i,
            parse_duration,
            item.get("window", 3600),
            f"{field}.window",
        )
        parts = item.get("parts", 10)
        if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= 10_000:
            problem(
                f"{field}.parts",
                f"a whole number of requests from 1 to 10000, got {parts!r}",
                "withdrawals",
                "parts",
                i,
            )
            continue
        refs = {}
        for key in ("asset", "account", "paid_from"):
            if key in item:
                if not isinstance(item[key], str) or not item[key]:
                    problem(f"{field}.{key}", "must be a name", "withdrawals", key, i)
                else:
                    refs[key] = item[key]
                    where[f"{field}.{key}"] = f"{path}:{lines.of('withdrawals', key, i)}"
        if total is None or window is None:
            continue
        waves.append(
            Wave(venue=venue, total=total, start=start, window=window, parts=parts, **refs)
        )

    remove = data.get("remove", [])
    if not isinstance(remove, list) or not all(isinstance(r, str) and r for r in remove):
        problem("remove", "a list of event ids", "", "remove")
        remove = []
    where["remove"] = f"{path}:{lines.of('', 'remove')}"
    replace: list[tuple[str, dict[str, Any]]] = []
    items = data.get("replace", [])
    if not isinstance(items, list):
        problem("replace", "must be an array of tables ([[replace]])", "replace")
        items = []
    for i, item in enumerate(items):
        field = f"replace[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            problem(
                f"{field}.id",
                'name the event to replace: id = "...", then the fields that change',
                "replace",
                "id",
                i,
            )
            continue
        if "type" in item:
            problem(
                f"{field}.type",
                "a replacement keeps the event's type (remove it and inject another)",
                "replace",
                "type",
                i,
            )
            continue
        where[field] = f"{path}:{lines.of('replace', 'id', i)}"
        for key in item:
            where[f"{field}.{key}"] = f"{path}:{lines.of('replace', key, i)}"
        replace.append((item["id"], {k: v for k, v in item.items() if k != "id"}))

    policy = data.get("policy", {})
    if not isinstance(policy, dict):
        problem("policy", "must be a table ([policy])", "policy")
        policy = {}
    elif policy:
        # Policy's own validation, with the lines of this file: the [policy] block's lines
        # are given to it as a policy file of their own (the other lines blank), so that its
        # messages name this file's lines.
        shifted = []
        current = ""
        for line in text.split("\n"):
            match = _HEADER.match(line)
            if match:
                current = match["name"]
                if current == "policy":
                    shifted.append("")
                elif current.startswith("policy."):
                    shifted.append(f"[{current[len('policy.') :]}]")
                else:
                    shifted.append("")
                continue
            shifted.append(line if current == "policy" or current.startswith("policy.") else "")
        try:
            evolve_policy(Policy(), policy, where=path, text="\n".join(shifted))
        except InputError as exc:  # its messages already start with file:line
            problems.extend(Problem(str(p), field="policy") for p in exc.problems)

    if problems:
        raise InputError(problems[: InputError.MAX_PROBLEMS], source=path)
    return Scenario(
        name=name,
        base=base,
        fork=fork,
        title=str(meta.get("title", "")),
        description=str(meta.get("description", "")),
        log=is_log,
        prices=tuple(prices),
        waves=tuple(waves),
        remove=tuple(remove),
        replace=tuple(replace),
        policy=dict(policy),
        path=path,
        where=where,
    )
