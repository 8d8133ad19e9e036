"""One time grammar for every command line option that names a time.

An instant (ISO 8601 with ``Z`` or an offset, to the microsecond), a date (``2022-11-07``) or
a month (``2022-11``), in UTC. A date or a month names a span: a point or the start of a range
takes its start; the end of a range (``--to``, ``--until``) takes its last microsecond, so that
``--to 2022-11-07`` includes the whole day.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import events as ev
from ledger.errors import InputError

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def parse_when(text: str | None, option: str, *, end: bool = False) -> datetime | None:
    """The instant ``text`` names (None for None); ``end`` takes a date's or month's last
    microsecond. Raises :class:`InputError` naming ``option`` and the forms it accepts."""
    if text is None:
        return None
    span = None
    if (m := _MONTH.fullmatch(text)) is not None:
        year, month = int(m[1]), int(m[2])
        if 1 <= month <= 12:
            first = datetime(year, month, 1, tzinfo=UTC)
            span = (first, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC))
    elif _DATE.fullmatch(text) is not None:
        try:
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            day = None
        if day is not None:
            span = (day, day + timedelta(days=1))
    if span is not None:
        return span[1] - timedelta(microseconds=1) if end else span[0]
    try:
        return ev.parse_instant(text, field=option)
    except ev.EventValueError as exc:
        reason = str(exc).removeprefix(f"{option}: ")
        # Python's own wording ("Invalid isoformat string") says nothing a user can act on.
        detail = "" if "isoformat" in reason else f" ({reason})"
        raise InputError(
            f"{option}: {text!r} is not a time{detail}: write an instant (2022-11-08T06:00:00Z, or "
            "with an offset such as +01:00), a date (2022-11-08) or a month (2022-11), in UTC"
        ) from None
