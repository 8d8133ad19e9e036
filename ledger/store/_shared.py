"""The parts of a log that do not depend on where it is stored.

Both backends call these, so that the checks, the error messages and the hash chain are one
code path: conflict detection on resubmitted ids, the rows a batch appends, the strict walk of
``verify``, the registry compared with its table, the bisection on the two clocks.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import events as ev
from events import Event, EventValueError
from ledger.errors import (
    ConflictError,
    FormatError,
    HeadMismatchError,
    InputError,
    Problem,
    VerificationError,
)
from ledger.registry import Registry
from ledger.store.contract import (
    GENESIS_HASH,
    Checkpoint,
    Head,
    chain_hash,
    chain_hasher,
    row_digest,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def recorded_stamp(clock: Callable[[], datetime]) -> str:
    """The recorded time of an append, read from ``clock``, as canonical text
    (``events.format_instant``'s). A UTC instant is formatted by ``datetime.isoformat`` (in C:
    the same digits, years zero-padded to four, microseconds only when present), which every
    append does once; ``tests/test_log.py`` holds the two equal."""
    now = clock()
    if now.tzinfo is UTC:
        return now.isoformat()[:-6] + "Z"  # drop '+00:00'
    return ev.format_instant(now)


def refuse_newer_version(seq: int, payload: str) -> None:
    """A payload of an event schema version newer than this program's is not tampering: say so."""
    try:
        version = json.loads(payload).get("v")
    except (ValueError, AttributeError, RecursionError):
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > ev.SCHEMA_VERSION:
        raise FormatError(
            f"seq {seq}: event schema version {version} is newer than this program reads "
            f"(version {ev.SCHEMA_VERSION}); upgrade ftx-ledger to read this log"
        )


def decode_stored(seq: int, payload: str) -> Event:
    try:
        # Stored payloads were validated on append and are checked strictly by verify();
        # reading them back only converts types (events.from_stored).
        return ev.from_stored(payload)
    except (EventValueError, ValueError, ArithmeticError, KeyError, TypeError, AttributeError) as exc:
        refuse_newer_version(seq, payload)
        raise VerificationError(
            f"seq {seq}: stored payload does not decode ({exc}); run 'bankrun verify'",
            seq=seq,
            kind="payload",
        ) from None


def aware(value: datetime, field: str) -> datetime:
    try:
        return ev._fields.utc_instant(value, field=field)
    except EventValueError as exc:
        raise InputError(str(exc)) from None


def instant_key(text: str) -> str:
    # Canonical instants are 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'; pad so they compare as text.
    if len(text) == 20:
        return text[:19] + ".000000Z"
    return text


def last_seq_where(value_at: Callable[[int], str], head_seq: int, instant: datetime, *, inclusive: bool) -> int:
    """The last seq whose time (``value_at(seq)``) is before ``instant`` (or equal, ``inclusive``).

    Times never go backwards in seq order, so this is a binary search: O(log N) point reads.
    """
    stamp = instant_key(ev.format_instant(instant))
    lo, hi = 0, head_seq  # invariant: the answer is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        key = instant_key(value_at(mid))
        if key < stamp or (inclusive and key == stamp):
            lo = mid
        else:
            hi = mid - 1
    return lo


def apply_to_registry(registry: Registry, rows: Iterable[tuple[int, str]]) -> None:
    """Apply stored ``(seq, payload)`` rows that change the registry; an impossible one is named."""
    for seq, payload in rows:
        try:
            registry.apply(decode_stored(seq, payload))
        except EventValueError as exc:
            raise VerificationError(
                f"seq {seq}: the stored event is impossible given the history before it "
                f"({exc}); run 'bankrun verify'",
                seq=seq,
                kind="history",
            ) from None


def check_head_row(
    name: str, head_seq: int, rows: Sequence[tuple[int, str, bytes, bytes, bytes]]
) -> None:
    """The head row ``(seq, recorded_at, payload, prev_hash, hash)`` must continue the chain:
    its hash recomputes and its prev_hash is its predecessor's hash (``rows`` holds the head and
    the row before it, if any)."""
    *before, (seq, recorded_at, payload, prev_hash, hash_) = rows
    expected_prev = bytes(before[0][4]) if before else GENESIS_HASH
    if bytes(prev_hash) != expected_prev or chain_hash(
        bytes(prev_hash), seq, recorded_at, bytes(payload)
    ) != bytes(hash_):
        raise VerificationError(
            f"{name}: the head row (seq {seq}) does not continue the hash chain; "
            "refusing to append (run 'bankrun verify')",
            seq=seq,
            kind="head",
        )


def split_existing(
    batch: list[Event],
    payloads: list[str],
    found: Mapping[str, tuple[int, str]],
    where: Sequence[str] | None = None,
) -> tuple[list[tuple[int, str]], list[int]]:
    """Which events of ``batch`` are already stored (``found``: id -> (seq, payload)) and which
    are fresh (their indexes). Raises :class:`ConflictError` for an id stored with other content."""
    if not found:  # the usual case: nothing of the batch is stored yet
        return [], list(range(len(batch)))
    existing: list[tuple[int, str]] = []
    fresh: list[int] = []
    for index, (event, payload) in enumerate(zip(batch, payloads)):
        hit = found.get(event.id)
        if hit is None:
            fresh.append(index)
            continue
        seq, stored = hit
        if stored != payload:
            old = ev.from_json(stored)
            fields = ev.diff_fields(old, event)
            first = fields[0]
            a, b = ev.to_dict(old).get(first), ev.to_dict(event).get(first)
            raise ConflictError(
                event.id, seq, fields, f"{first} ({a} ≠ {b})",
                where=where[index] if where is not None else "",
            )
        existing.append((seq, event.id))
    return existing, fresh


def chain_rows(
    head: Head, items: list[tuple[Event, tuple[str, str]]], recorded_at: str
) -> tuple[list[tuple[int, str, str, str, str, str, bytes, bytes]], list[tuple[int, str, bytes]]]:
    """The rows that append ``items`` (event, (canonical payload, occurred_at)) after ``head``:
    ``(seq, event_id, type, occurred_at, recorded_at, payload, prev_hash, hash)``, and the
    ``(seq, id, hash)`` of each."""
    prev, seq = head.hash, head.seq
    rows = []
    out = []
    digest_of = chain_hasher(recorded_at)
    for event, (text, at_text) in items:
        seq += 1
        digest = digest_of(prev, seq, text.encode("utf-8"))
        event_id = event.id
        rows.append((seq, event_id, event.type, at_text, recorded_at, text, prev, digest))
        out.append((seq, event_id, digest))
        prev = digest
    return rows, out


def chain_new_rows(
    head: Head, batch: Sequence[Event], records: Sequence[tuple[str, str]], recorded_at: str
) -> tuple[list[tuple[int, str, str, str, str, str, bytes, bytes]], list[tuple[int, str]], Head]:
    """``chain_rows`` for the fast append: the rows that append ``batch`` (with its
    ``records``, the events' (canonical payload, occurred_at)) after ``head``, their
    ``(seq, id)`` pairs and the new head. The same rows and hashes (``row_digest``)."""
    prev, seq = head.hash, head.seq
    stamp = recorded_at.encode("ascii") + b"\x00"
    rows = []
    appended = []
    for event, (text, at_text) in zip(batch, records):
        seq += 1
        digest = row_digest(prev, seq, stamp, text.encode("utf-8"))
        event_id = event.id
        rows.append((seq, event_id, event.type, at_text, recorded_at, text, prev, digest))
        appended.append((seq, event_id))
        prev = digest
    return rows, appended, Head(seq, prev)


def check_continues(head: Head, rows: Sequence[Sequence[object]], name: str) -> None:
    """Rows copied from another log (``seq, ..., prev_hash, hash``) must continue ``head``."""
    prev, seq = head.hash, head.seq
    for row in rows:
        row_seq = row[0]
        if row_seq != seq + 1 or bytes(row[6]) != prev:  # type: ignore[call-overload]
            raise VerificationError(
                f"{name}: row seq {row_seq} does not continue the log at seq {seq}; nothing was copied",
                seq=seq + 1,
                kind="chain",
            )
        seq, prev = seq + 1, bytes(row[7])  # type: ignore[call-overload]


def registry_difference(registry: Registry, stored: Mapping[tuple[str, str], str]) -> str:
    """The first entry where the registry table's rows (``stored``, without the 'state' kind)
    differ from ``registry`` ("" if none)."""
    expected = registry.rows()
    for entry in sorted(set(stored) | set(expected), key=lambda e: (str(e[0]), str(e[1]))):
        have, want = stored.get(entry), expected.get(entry)
        if have != want:
            kind, key = entry
            if want is None:
                return f"the registry table has a {kind} {key!r} that no event declares"
            if have is None:
                return f"the registry table lacks the {kind} {key!r} that the events declare"
            return f"the registry table's {kind} {key!r} is {have} but the events say {want}"
    return ""


def dirty_registry_rows(registry: Registry) -> list[tuple[str, str, str]]:
    """The registry rows an append changed, to write in its transaction."""
    return [
        (kind, key, value)
        for kind, key in sorted(registry._dirty)
        if (value := registry.encode(kind, key)) is not None
    ]


def chunked(
    items: Iterable[tuple[Event, str]], chunk_size: int
) -> Iterator[tuple[list[Event], list[str] | None]]:
    """``(event, where)`` pairs as ``(events, wheres)`` chunks of ``chunk_size``: what a
    streamed append holds in memory at a time."""
    if chunk_size < 1:
        raise InputError("chunk_size: must be >= 1")
    events: list[Event] = []
    places: list[str] = []
    for event, place in items:
        events.append(event)
        places.append(place)
        if len(events) >= chunk_size:
            yield events, places
            events, places = [], []
    if events:
        yield events, places


def check_chunk(
    registry: Registry,
    batch: list[Event],
    where: Sequence[str] | None,
    found: Callable[[list[Event]], Mapping[str, tuple[int, str]]],
    guard: Callable[[Registry, Sequence[Event]], None] | None,
) -> tuple[list[tuple[str, str]], list[tuple[int, str]], list[int]]:
    """Everything an append checks of one chunk before it writes, whatever the backend: ids
    unique in the chunk, the canonical records, which ids are already stored (``found`` looks
    them up) and identical, every new event against the history (up to
    ``InputError.MAX_PROBLEMS`` problems raised together), then the enforce-mode ``guard``.
    Returns ``(records, existing (seq, id) pairs, indexes of the new events)``."""
    if len(batch) > 1:
        check_batch_ids(batch, where)
    records = [ev.log_record(e) for e in batch]
    payloads = [text for text, _ in records]
    old, fresh = split_existing(batch, payloads, found(batch), where)
    problems: list[Problem] = []
    for index in fresh:
        try:
            registry.apply(batch[index])
        except EventValueError as exc:
            problems.append(problem(index, batch[index], exc, where))
            if len(problems) >= InputError.MAX_PROBLEMS:
                break
    if problems:
        raise InputError(problems)
    if guard is not None and fresh:
        guard(registry, [batch[i] for i in fresh])
    return records, old, fresh


def extend_locked(
    log: Any,
    chunks: Iterable[tuple[list[Event], list[str] | None]],
    *,
    expected_head: int | None,
    guard: Callable[[Registry, Sequence[Event]], None] | None,
    appended: list[tuple[int, str]] | None,
    existing: list[tuple[int, str]] | None,
    counts: list[int] | None,
    assume_new: bool = False,
) -> tuple[Registry, Head]:
    """The part of an append that both backends run inside their write lock (SQLite's
    ``BEGIN IMMEDIATE``, PostgreSQL's advisory lock): the head, the registry brought to it and
    checked before the connection's first append, then each chunk checked and inserted with
    ``log._find`` and ``log._insert``. Returns the registry (in a batch: the caller persists
    its dirty rows and commits, or rolls it back) and the new head.

    ``assume_new``: skip the look-up of stored ids (``log._find``) and treat every event as
    new. Only for a caller that lets the table's unique index on event_id refuse a stored id
    and then runs the append again without it (see the SQLite ``Log.append``)."""
    head = log.head()
    if expected_head is not None and expected_head != head.seq:
        raise HeadMismatchError(expected_head, head.seq)
    log._refresh_registry(head.seq)
    if not log._registry_checked:
        log._check_before_extending(head)
    registry = log._registry
    assert registry is not None
    registry.begin()
    find = _nothing_stored if assume_new else log._find
    for batch, where in chunks:
        records, old, fresh = check_chunk(registry, batch, where, find, guard)
        new = log._insert(head, [(batch[i], records[i]) for i in fresh])
        if new:
            head = Head(new[-1][0], new[-1][2])
        if appended is not None:
            appended.extend((seq, eid) for seq, eid, _ in new)
        if existing is not None:
            existing.extend(old)
        if counts is not None:
            counts[0] += len(new)
            counts[1] += len(old)
    return registry, head


def _nothing_stored(batch: list[Event]) -> Mapping[str, tuple[int, str]]:
    return {}


def roll_back(log: Any) -> None:
    """Undo what a failed append applied to the log's cached registry (if a batch was begun)."""
    registry = log._registry
    if registry is not None and registry._journal is not None:
        registry.rollback()


def check_batch_ids(batch: list[Event], where: Sequence[str] | None) -> None:
    seen: dict[str, int] = {}
    problems = []
    for index, event in enumerate(batch):
        if event.id in seen:
            first = seen[event.id]
            places = (
                two_places(where[first], where[index]) if where is not None else
                f" (events {first + 1} and {index + 1})"
            )
            problems.append(
                Problem(
                    f"id: duplicate event_id {event.id!r}{places}",
                    index=index,
                    event_id=event.id,
                    field="id",
                    where=where[index] if where is not None else "",
                )
            )
        else:
            seen[event.id] = index
    if problems:
        raise InputError(problems[: InputError.MAX_PROBLEMS])


def two_places(a: str, b: str) -> str:
    """' (line 15 and line 16)' for two lines of one file (as the loaders say it), else both."""
    file_a, _, line_a = a.rpartition(":")
    file_b, _, line_b = b.rpartition(":")
    if file_a == file_b and line_a.isdigit() and line_b.isdigit():
        return f" (line {line_a} and line {line_b})"
    return f" ({a} and {b})"


def problem(index: int, event: Event, exc: Exception, where: Sequence[str] | None) -> Problem:
    message = str(exc)
    field = message.partition(":")[0] if ":" in message else ""
    return Problem(
        f"event {event.id!r}: {message}" if where is not None else message,
        index=index,
        event_id=event.id,
        field=field,
        where=where[index] if where is not None else "",
    )


#: How many rows between two calls of a verify's ``progress`` (the seq reached).
PROGRESS_EVERY = 4096


class ChainWalk:
    """The strict walk of ``verify``, one stored row at a time, whatever the backend.

    Feed it every row in seq order (text columns as bytes, so that a damaged byte is a bad row
    rather than a driver error), then call :meth:`finish`. Raises :class:`VerificationError`
    naming the first bad seq: a gap, a broken link, a hash that does not recompute, a payload
    that is not a valid canonical event, indexed columns that disagree with it, an event the
    history makes impossible, a checkpoint that does not match or lies beyond the end.
    """

    def __init__(self, ledger_id: str, checkpoints: Iterable[Checkpoint]) -> None:
        self.cps = sorted(checkpoints, key=lambda c: c.seq)
        for cp in self.cps:
            if cp.ledger_id != ledger_id:
                raise VerificationError(
                    f"checkpoint is for ledger {cp.ledger_id}, this file is ledger {ledger_id}",
                    kind="ledger-id",
                )
        self.cp_seqs = [c.seq for c in self.cps]
        self.registry = Registry()
        self.expected_seq, self.prev = 1, GENESIS_HASH
        self.matched = 0

    def row(self, seq: int, raw: Sequence[bytes | None], prev_hash: object, hash_: object) -> None:
        """One row: ``raw`` is (event_id, type, occurred_at, recorded_at, payload) as bytes."""
        expected_seq = self.expected_seq
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "out of order"
            raise VerificationError(
                f"seq {expected_seq}: {what} (found seq {seq} next); rows were deleted or reordered",
                seq=expected_seq,
                kind="gap",
            )
        try:
            eid, typ, occurred, recorded, payload = (v.decode("utf-8") for v in raw)  # type: ignore[union-attr]
            recorded.encode("ascii")
        except (UnicodeError, AttributeError):  # AttributeError: a NULL
            raise VerificationError(
                f"seq {seq}: a column holds bytes that are not valid text; "
                "the row was edited or the file is damaged",
                seq=seq,
                kind="encoding",
            ) from None
        if not isinstance(prev_hash, (bytes, memoryview)) or bytes(prev_hash) != self.prev:
            raise VerificationError(
                f"seq {seq}: prev_hash does not match the hash of seq {seq - 1}; "
                "a row was inserted, deleted or reordered",
                seq=seq,
                kind="chain",
            )
        digest = chain_hash(self.prev, seq, recorded, bytes(raw[4]))  # type: ignore[arg-type]
        if not isinstance(hash_, (bytes, memoryview)) or digest != bytes(hash_):
            raise VerificationError(
                f"seq {seq}: hash does not match the row's content; the row was edited",
                seq=seq,
                kind="hash",
            )
        try:
            event = ev.from_json(payload)
        except (EventValueError, ValueError, RecursionError) as exc:
            refuse_newer_version(seq, payload)
            raise VerificationError(
                f"seq {seq}: payload is not a valid event ({exc})", seq=seq, kind="payload"
            ) from None
        if (
            ev.canonical_json(event) != payload
            or event.id != eid
            or event.type != typ
            or ev.format_instant(event.at) != occurred
        ):
            raise VerificationError(
                f"seq {seq}: indexed columns (event_id, type, occurred_at) or payload "
                "form disagree with the hashed payload; the row was edited",
                seq=seq,
                kind="columns",
            )
        try:
            self.registry.apply(event)
        except EventValueError as exc:
            raise VerificationError(
                f"seq {seq}: the event is impossible given the history before it ({exc}); "
                "it was appended past the ledger's checks (a forged registry table or "
                "another program)",
                seq=seq,
                kind="history",
            ) from None
        cps, cp_seqs = self.cps, self.cp_seqs
        i = bisect_right(cp_seqs, seq) - 1
        while i >= 0 and cp_seqs[i] == seq:
            if cps[i].head_hash != digest.hex():
                raise VerificationError(
                    f"seq {seq}: hash differs from the checkpoint taken at "
                    f"{cps[i].taken_at}; history up to seq {seq} was rewritten",
                    seq=seq,
                    kind="checkpoint",
                )
            self.matched += 1
            i -= 1
        self.prev = digest
        self.expected_seq += 1

    def finish(self) -> Head:
        """After the last row: checkpoints beyond the end mean truncation. Returns the head."""
        last = self.expected_seq - 1
        for cp in self.cps:
            if cp.seq > last:
                raise VerificationError(
                    f"log ends at seq {last} but a checkpoint names seq {cp.seq}: "
                    "the log was truncated",
                    seq=last + 1,
                    kind="truncation",
                )
            if cp.seq == 0:
                if cp.head_hash != GENESIS_HASH.hex():
                    raise VerificationError(
                        "a checkpoint at seq 0 must carry the empty log's hash (64 zeros)",
                        seq=0,
                        kind="checkpoint",
                    )
                self.matched += 1
        return Head(last, self.prev)
