"""The SQLite log: an append-only, hash-chained SQLite file (the embedded default).

Write path: raw ``sqlite3`` in autocommit mode with explicit ``BEGIN IMMEDIATE``, so that one
batch is one transaction and readers never see half of it. sqlite-utils stays off this path (it
opens plain ``BEGIN``, commits ``insert_all`` in chunks and turns ``Decimal`` into ``REAL``).

Tamper evidence: each row's ``hash`` is SHA-256 over a version tag, the previous row's hash, the
seq, the recorded time and the event's canonical bytes. :meth:`Log.verify` walks the chain and
names the first bad seq; checkpoints ``(ledger_id, seq, head_hash)`` kept outside the file catch
truncation and rewrites of the tail.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import events as ev
from events import Event, EventValueError
from ledger.errors import (
    BusyError,
    FormatError,
    HeadMismatchError,
    InputError,
    LedgerError,
    NotALedgerError,
    StorageError,
    VerificationError,
)
from ledger.registry import Registry
from ledger.store import _shared
from ledger.store._shared import (
    PROGRESS_EVERY,
    ChainWalk,
    apply_to_registry,
    chain_rows,
    check_continues,
    check_head_row,
    dirty_registry_rows,
    registry_difference,
)
from ledger.store._shared import aware as _aware
from ledger.store._shared import decode_stored as _decode_stored
from ledger.store._shared import utc_now as _utc_now
from ledger.store.contract import (
    GENESIS_HASH,
    LOG_FORMAT,
    AppendResult,
    Checkpoint,
    Following,
    Head,
    Record,
    StreamResult,
    VerifyResult,
    follow_log,
)

DEFAULT_DB = "ledger.db"
DEFAULT_BUSY_TIMEOUT_MS = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    payload TEXT NOT NULL CHECK (json_valid(payload)),
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE TRIGGER IF NOT EXISTS events_refuse_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_refuse_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_gapless BEFORE INSERT ON events
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM events)
BEGIN SELECT RAISE(ABORT, 'seq must continue the log without a gap'); END;
CREATE TABLE IF NOT EXISTS registry (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) STRICT, WITHOUT ROWID;
"""


_INSERT_EVENT = (
    "INSERT INTO events (seq, event_id, type, occurred_at, recorded_at, payload, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_REGISTRY = "INSERT OR REPLACE INTO registry (kind, key, value) VALUES (?, ?, ?)"


class _NotAllNew(Exception):
    """An append that assumed its events new found otherwise (see :meth:`Log.append`)."""


def _translate(exc: sqlite3.Error, path: str) -> LedgerError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return BusyError(
            f"{path}: the database is locked by another process and stayed locked past the "
            "busy timeout; retry, or find the process holding it"
        )
    if "full" in text:
        return StorageError(f"{path}: disk full while writing ({text}); nothing was written")
    if "not a database" in text or "malformed" in text:
        return StorageError(f"{path}: not a readable ledger database ({text})")
    return StorageError(f"{path}: storage error: {text}")


class Log:
    """An append-only, tamper-evident event log in one SQLite file.

    Open with :meth:`Log.open` (``create=True`` to make a new file). One ``Log`` object is one
    connection; use one per thread or process. All methods raise :class:`LedgerError` subclasses,
    never raw ``sqlite3`` errors.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        *,
        clock: Callable[[], datetime] = _utc_now,
        readonly: bool = False,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        frozen: tuple[int, int, int] | None = None,
    ) -> None:
        self._conn = conn
        self.path = path
        self._clock = clock
        self.readonly = readonly
        self._busy_timeout_ms = busy_timeout_ms
        # Set while a read-only log is read as an immutable file (no writer was there when it
        # was opened): the file's (inode, size, mtime) then, to notice a writer arriving.
        self._frozen = frozen
        self._registry: Registry | None = None
        self._registry_seq = -1
        self._registry_checked = False
        # The head this connection's own last append committed (None: unknown). Another
        # writer may have appended since: the fast append path relies on the table to notice
        # (see _append_fresh), every other path reads the head inside its transaction.
        self._head_written: Head | None = None
        self._write_cursor: sqlite3.Cursor | None = None
        self.ledger_id: str = _ledger_identity(conn, path)

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike = DEFAULT_DB,
        *,
        create: bool = False,
        readonly: bool = False,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        clock: Callable[[], datetime] = _utc_now,
        ledger_id: str | None = None,
    ) -> Log:
        """Open the log at ``path``.

        ``readonly=True`` opens evidence: nothing is written to the file or beside it (no
        ``-wal`` or ``-shm`` is created), so it works on write-blocked media, for a user who
        cannot write the directory, and on a full disk. A file that is not a ledger (another
        application's database, an empty file, a FIFO, a directory) is refused untouched.

        Raises :class:`NotALedgerError` for a missing file (without ``create``) or one that is
        not a ledger, :class:`FormatError` for a log written by a newer version,
        :class:`VerificationError` when opening for writing finds the append-only triggers
        missing or altered, :class:`BusyError` if it stays locked past ``busy_timeout_ms``.
        ``ledger_id``: the id of a log created now (a copy keeps its source's).
        """
        path = os.fspath(path)
        if readonly or not create or os.path.lexists(path):
            check_file(path, create=create and not readonly)
        try:
            if os.path.lexists(path) and os.path.getsize(path) > 0:
                # Look before writing anything: a foreign database must be left untouched.
                conn, frozen = connect_readonly(path, busy_timeout_ms)
                try:
                    _ledger_identity(conn, path)
                    if readonly:
                        return cls(
                            conn, path, clock=clock, readonly=True,
                            busy_timeout_ms=busy_timeout_ms, frozen=frozen,
                        )
                finally:
                    if not readonly:
                        conn.close()
                conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
                configure(conn, busy_timeout_ms=busy_timeout_ms)
                problems = schema_problems(conn)
                if problems:
                    conn.close()
                    raise VerificationError(
                        f"{path}: {problems[0]}; refusing to write to it (run 'bankrun verify')",
                        kind="schema",
                    )
            else:
                _create_whole(path, ledger_id, busy_timeout_ms)
                conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
                configure(conn, busy_timeout_ms=busy_timeout_ms)
                _ensure_schema(conn, ledger_id)  # (a no-op: the file came whole)
            return cls(conn, path, clock=clock, busy_timeout_ms=busy_timeout_ms)
        except sqlite3.Error as exc:
            raise _translate(exc, path) from None

    def _keep_fresh(self) -> None:
        """A read-only log read as an immutable file reopens as a live one when a writer
        arrives (a ``-wal`` appears) or has been and gone (the file changed)."""
        if self._frozen is None:
            return
        if not os.path.exists(self.path + "-wal") and _file_key(self.path) == self._frozen:
            return
        try:
            conn, frozen = connect_readonly(self.path, self._busy_timeout_ms)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        self._conn.close()
        self._conn, self._frozen, self._write_cursor = conn, frozen, None

    def close(self) -> None:
        self._write_cursor = None
        self._conn.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for read-only queries (never write to ``events``)."""
        return self._conn

    # -- reading -------------------------------------------------------------------------------
    def head(self) -> Head:
        """The last seq and hash (``Head(0, 32 zero bytes)`` for an empty log)."""
        try:
            self._keep_fresh()
            row = self._conn.execute(
                "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        return Head(0, GENESIS_HASH) if row is None else Head(row[0], bytes(row[1]))

    def __len__(self) -> int:
        return self.head().seq

    def iter_records(
        self, *, from_seq: int = 1, to_seq: int | None = None, batch_size: int = 2000
    ) -> Iterator[Record]:
        """Stream stored events in seq order, ``from_seq..to_seq`` inclusive.

        Reads in pages of ``batch_size`` by seq range, so memory does not grow with the log.
        """
        columns = "seq, payload, recorded_at, prev_hash, hash"
        for seq, payload, recorded_at, prev_hash, hash_ in self._pages(columns, from_seq, to_seq, batch_size):
            event = _decode_stored(seq, payload)
            yield Record(seq, event, recorded_at, bytes(prev_hash), bytes(hash_), payload)

    def iter_payloads(
        self, *, from_seq: int = 1, to_seq: int | None = None, batch_size: int = 2000
    ) -> Iterator[tuple[int, Event, str]]:
        """Stream ``(seq, event, canonical payload)`` in seq order: what a replay reads.

        Like :meth:`iter_records` without the chain columns (cheaper per row).
        """
        for seq, payload in self._pages("seq, payload", from_seq, to_seq, batch_size):
            yield seq, _decode_stored(seq, payload), payload

    def follow(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        poll: float = 0.5,
        idle_timeout: float | None = None,
    ) -> Following:
        """Stream ``(seq, event, payload)`` like :meth:`iter_payloads`, and keep going as other
        writers append: at the head, wait ``poll`` seconds and look again.

        Stops after ``to_seq``, after ``idle_timeout`` seconds without a new event, or when
        :meth:`Following.stop` is called (from another thread or a signal handler); otherwise
        it follows the log until the consumer stops iterating. Pass the result to
        :func:`ledger.replay.replay` to check every invariant as events land.
        """
        return follow_log(self, from_seq=from_seq, to_seq=to_seq, poll=poll, idle_timeout=idle_timeout)

    def wait(self, timeout: float) -> None:
        """At the head, while following: wait ``timeout`` seconds (SQLite has no wake-up)."""
        time.sleep(timeout)

    def _pages(
        self, columns: str, from_seq: int, to_seq: int | None, batch_size: int
    ) -> Iterator[tuple[Any, ...]]:
        last = max(from_seq, 1) - 1  # seqs start at 1: an empty first page must not end the scan
        while True:
            if to_seq is not None and last >= to_seq:
                return
            hi = last + batch_size if to_seq is None else min(last + batch_size, to_seq)
            try:
                self._keep_fresh()
                rows = self._conn.execute(
                    f"SELECT {columns} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq",
                    (last, hi),
                ).fetchall()
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from None
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def iter_events(self, *, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Event]:
        """Stream the events (without log metadata) in seq order."""
        for record in self.iter_records(from_seq=from_seq, to_seq=to_seq):
            yield record.event

    def get(self, event_id: str) -> Record | None:
        """The stored record of ``event_id``, or None."""
        row = self._conn.execute("SELECT seq FROM events WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        return next(self.iter_records(from_seq=row[0], to_seq=row[0]))

    def hash_at(self, seq: int) -> bytes | None:
        """The stored hash of the row at ``seq``, or None (what snapshots are tied to)."""
        try:
            self._keep_fresh()
            row = self._conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        return None if row is None else bytes(row[0])

    def seq_at(self, at: datetime) -> int:
        """The last seq whose effective time is <= ``at`` (0 if none).

        Effective times never go backwards in seq order (the log refuses that), so this is a
        binary search over seq: O(log N) point reads, no index needed.
        """
        return self._last_seq_where("occurred_at", _aware(at, "at"), inclusive=True)

    def seq_before(self, at: datetime) -> int:
        """The last seq whose effective time is < ``at`` (0 if none)."""
        return self._last_seq_where("occurred_at", _aware(at, "at"), inclusive=False)

    def seq_recorded(self, recorded: datetime) -> int:
        """The last seq recorded at or before ``recorded`` (what the log knew then).

        Assumes record times never go backwards in seq order (one writer clock); a clock set
        back between appends makes the answer approximate around that point.
        """
        return self._last_seq_where("recorded_at", _aware(recorded, "recorded"), inclusive=True)

    def _last_seq_where(self, column: str, instant: datetime, *, inclusive: bool) -> int:
        assert column in ("occurred_at", "recorded_at")
        conn = self._conn

        def value_at(seq: int) -> str:
            return conn.execute(f"SELECT {column} FROM events WHERE seq = ?", (seq,)).fetchone()[0]

        return _shared.last_seq_where(value_at, self.head().seq, instant, inclusive=inclusive)

    def registry(self) -> Registry:
        """The registry (entities, assets, accounts, loans) as of the head."""
        self._refresh_registry(self.head().seq)
        assert self._registry is not None
        return self._registry

    def _refresh_registry(self, head_seq: int) -> None:
        """Bring the cached registry to ``head_seq`` from the events themselves.

        The registry table is never read back as truth (a row edited outside the ledger must
        not let a malformed fact in): the registry is rebuilt from the events that change it,
        then kept current by applying what other writers appended.
        """
        if self._registry is not None and self._registry_seq == head_seq:
            return
        if self._registry is None:
            registry, start = Registry(), 1
        else:
            registry, start = self._registry, self._registry_seq + 1
        marks = ",".join("?" * len(Registry.CHANGING_TYPES))
        cursor = self._conn.execute(
            f"SELECT seq, payload FROM events WHERE seq >= ? AND seq <= ? AND type IN ({marks}) "
            "ORDER BY seq",
            (start, head_seq, *Registry.CHANGING_TYPES),
        )
        try:
            apply_to_registry(registry, cursor)
        except VerificationError:
            self._registry = None
            raise
        # The time of the last event is read from the log itself rather than stored in the
        # registry table: rewriting that row would cost every single-event commit a page.
        row = self._conn.execute(
            "SELECT occurred_at FROM events WHERE seq = ?", (head_seq,)
        ).fetchone()
        registry.state["last_at"] = ev.parse_instant(row[0]) if row is not None else None
        self._registry, self._registry_seq = registry, head_seq

    def _check_before_extending(self, head: Head) -> None:
        """Once per connection, before its first append: the head row must be the chain's (its
        hash recomputes, its prev_hash is its predecessor's hash) and the registry table must
        match the registry rebuilt from the events. Raises :class:`VerificationError`."""
        if head.seq:
            rows = self._conn.execute(
                "SELECT seq, recorded_at, CAST(payload AS BLOB), prev_hash, hash FROM events "
                "WHERE seq >= ? ORDER BY seq",
                (head.seq - 1,),
            ).fetchall()
            check_head_row(self.path, head.seq, rows)
        assert self._registry is not None
        problem = _registry_difference(self._registry, self._conn)
        if problem:
            raise VerificationError(
                f"{self.path}: {problem}; the file was changed outside the ledger, so it is not "
                "extended (run 'bankrun verify')",
                kind="registry",
            )
        self._registry_checked = True

    # -- writing -------------------------------------------------------------------------------
    def append(
        self,
        events: Iterable[Event],
        *,
        expected_head: int | None = None,
        where: Sequence[str] | None = None,
        guard: Callable[[Registry, Sequence[Event]], None] | None = None,
    ) -> AppendResult:
        """Append ``events`` atomically: all of them or none.

        - An id already recorded with identical content is skipped and reported as existing
          (idempotent retry); with different content it raises :class:`ConflictError`.
        - ``expected_head``: the seq the caller believes is the head; if another writer got
          there first, :class:`HeadMismatchError` and nothing is written.
        - Every event is checked against the history (unknown references, scale, time order,
          impossible repayments...). All problems found (up to 20) are raised together as one
          :class:`InputError`; ``where`` (one ``file:line`` per event) makes them point at the
          input.
        - ``guard`` (enforce mode) is called with the registry and the new events before
          anything is written; it raises to refuse the batch.
        """
        batch = list(events)
        if not batch:
            return AppendResult([], [], self.head())
        where_list = list(where) if where is not None else None
        appended: list[tuple[int, str]] = []
        existing: list[tuple[int, str]] = []
        chunks = [(batch, where_list)]
        if guard is None:
            # Most appends are of new events: write them without first looking their ids up
            # (a query and its bookkeeping on every call). The UNIQUE index on event_id
            # refuses an id that is stored; then, and whenever a check refuses the batch, the
            # transaction is rolled back and the append runs again the careful way below,
            # which skips the stored ids, reports conflicts and names the problems exactly
            # as before. (Not with a guard: enforce mode must see only the new events, once.)
            if not self.readonly:
                try:
                    return self._append_fresh(batch, where_list, expected_head)
                except _NotAllNew:
                    pass
        head = self._append_chunks(
            chunks, expected_head=expected_head, guard=guard,
            appended=appended, existing=existing,
        )
        return AppendResult(appended, existing, head)

    def append_stream(
        self,
        items: Iterable[tuple[Event, str]],
        *,
        expected_head: int | None = None,
        chunk_size: int = 5000,
    ) -> StreamResult:
        """Append a stream of ``(event, "file:line")`` pairs in one transaction, all or none,
        holding only ``chunk_size`` events in memory at a time (a JSON Lines file of any size:
        :func:`replays.iter_jsonl`). Checks, idempotency and errors are those of
        :meth:`append`; an error raised by the stream itself (a bad line) rolls back too.
        Returns counts, not ids (those would grow with the stream)."""
        if chunk_size < 1:
            raise InputError("chunk_size: must be >= 1")
        counts = [0, 0]
        chunks = _shared.chunked(items, chunk_size)
        head = self._append_chunks(chunks, expected_head=expected_head, guard=None, counts=counts)
        return StreamResult(counts[0], counts[1], head)

    def _append_fresh(
        self, batch: list[Event], where: list[str] | None, expected_head: int | None
    ) -> AppendResult:
        """The append of events assumed new, as one short path: what ``_append_chunks`` with
        ``extend_locked`` and ``check_chunk`` do for one chunk without a guard, less their
        general bookkeeping. Raises :class:`_NotAllNew`, having written nothing, whenever the
        assumption or a check fails, for :meth:`append` to run the careful path, which names
        every problem and reads everything afresh.

        The head is not read when this connection wrote it last (``_head_written``): if
        another writer appended since, the first row's seq is already stored, its PRIMARY KEY
        (or, for a log shortened outside the ledger, the gapless trigger) refuses the insert
        and the careful path reads the real head. A row is thus never chained to a stale head.
        """
        conn = self._conn
        # One cursor for the path's statements: Connection.execute makes a cursor a call.
        cursor = self._write_cursor
        if cursor is None:
            cursor = self._write_cursor = conn.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        registry = self._registry
        try:
            try:
                head = self._head_written
                if head is None:
                    head = self.head()
                elif expected_head is not None and expected_head != head.seq:
                    raise _NotAllNew  # the cached head may be stale: let the careful path judge
                self._head_written = None
                if expected_head is not None and expected_head != head.seq:
                    raise HeadMismatchError(expected_head, head.seq)
                if registry is None or self._registry_seq != head.seq:
                    self._refresh_registry(head.seq)
                    registry = self._registry
                    assert registry is not None
                if not self._registry_checked:
                    self._check_before_extending(head)
                registry.begin()
                if len(batch) > 1:
                    _shared.check_batch_ids(batch, where)
                log_record, apply = ev.log_record, registry.apply
                records = [log_record(e) for e in batch]
                for event in batch:
                    apply(event)  # the first problem sends the batch to the careful path
                recorded_at = _shared.recorded_stamp(self._clock)
                rows, appended, last = _shared.chain_new_rows(head, batch, records, recorded_at)
                if len(rows) == 1:
                    cursor.execute(_INSERT_EVENT, rows[0])
                else:
                    cursor.executemany(_INSERT_EVENT, rows)
                if registry._dirty:
                    cursor.executemany(_UPSERT_REGISTRY, dirty_registry_rows(registry))
                cursor.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.IntegrityError, InputError, EventValueError, _NotAllNew):
            _shared.roll_back(self)
            raise _NotAllNew from None
        except sqlite3.Error as exc:
            _shared.roll_back(self)
            raise _translate(exc, self.path) from None
        except BaseException:
            _shared.roll_back(self)
            raise
        registry.commit()
        self._registry_seq = last.seq
        self._head_written = last
        return AppendResult(appended, [], last)

    def _append_chunks(
        self,
        chunks: Iterable[tuple[list[Event], list[str] | None]],
        *,
        expected_head: int | None,
        guard: Callable[[Registry, Sequence[Event]], None] | None,
        appended: list[tuple[int, str]] | None = None,
        existing: list[tuple[int, str]] | None = None,
        counts: list[int] | None = None,
        assume_new: bool = False,
    ) -> Head:
        """One transaction over every chunk: check, insert, persist the registry, commit.

        ``assume_new`` (see :meth:`append`): raises :class:`_NotAllNew`, having written
        nothing, when an insert or a check fails, for the caller to run the careful append."""
        conn = self._conn
        self._head_written = None
        retry: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, InputError) if assume_new else ()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from None
            try:
                registry, head = _shared.extend_locked(
                    self, chunks, expected_head=expected_head, guard=guard,
                    appended=appended, existing=existing, counts=counts, assume_new=assume_new,
                )
                changed = dirty_registry_rows(registry)
                if changed:
                    conn.executemany(_UPSERT_REGISTRY, changed)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except retry:
            _shared.roll_back(self)
            raise _NotAllNew from None
        except sqlite3.Error as exc:
            _shared.roll_back(self)
            raise _translate(exc, self.path) from None
        except BaseException:
            _shared.roll_back(self)
            raise
        registry.commit()
        self._registry_seq = head.seq
        self._head_written = head
        return head

    def _find(self, batch: list[Event]) -> dict[str, tuple[int, str]]:
        """The stored ``(seq, payload)`` of each id of ``batch`` already in the log."""
        ids = [e.id for e in batch]
        found: dict[str, tuple[int, str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for seq, eid, payload in self._conn.execute(
                f"SELECT seq, event_id, payload FROM events WHERE event_id IN ({marks})", chunk
            ):
                found[eid] = (seq, payload)
        return found

    def _insert(
        self, head: Head, items: list[tuple[Event, tuple[str, str]]]
    ) -> list[tuple[int, str, bytes]]:
        rows, out = chain_rows(head, items, _shared.recorded_stamp(self._clock))
        self._conn.executemany(_INSERT_EVENT, rows)
        return out

    # -- copying -------------------------------------------------------------------------------
    def stored_rows(self, *, from_seq: int = 1, batch_size: int = 5000) -> Iterator[tuple[Any, ...]]:
        """The stored rows ``(seq, event_id, type, occurred_at, recorded_at, payload, prev_hash,
        hash)`` in seq order, exactly as stored (``bankrun copy``)."""
        columns = "seq, event_id, type, occurred_at, recorded_at, payload, prev_hash, hash"
        for row in self._pages(columns, from_seq, None, batch_size):
            yield (*row[:6], bytes(row[6]), bytes(row[7]))

    def copy_rows(
        self, rows: Sequence[tuple[int, str, str, str, str, str, bytes, bytes]],
        registry_rows: Sequence[tuple[str, str, str]],
    ) -> None:
        """Insert rows exactly as another log stored them, and the registry rows they change
        (``bankrun copy``): one transaction, each row checked to continue this log's chain
        (:class:`VerificationError` if not; nothing is written)."""
        conn = self._conn
        self._head_written = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                check_continues(self.head(), rows, self.path)
                conn.executemany(
                    "INSERT INTO events (seq, event_id, type, occurred_at, recorded_at, payload, "
                    "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if registry_rows:
                    conn.executemany(
                        "INSERT OR REPLACE INTO registry (kind, key, value) VALUES (?, ?, ?)", registry_rows
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        self._registry, self._registry_seq, self._registry_checked = None, -1, False

    # -- metadata ------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A metadata value (``ledger_id``, ``format``, ``quote``...), or None."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        """Record a metadata value (not part of the hash chain; ``ledger_id`` cannot change)."""
        if key in ("ledger_id", "format"):
            raise StorageError(f"meta key {key!r} is fixed when the log is created")
        try:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    # -- tamper evidence -----------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        """The current head as a :class:`Checkpoint` to keep outside the database."""
        head = self.head()
        return Checkpoint(
            self.ledger_id, head.seq, head.hash_hex, ev.format_instant(_utc_now())
        )

    def verify(
        self, checkpoints: Iterable[Checkpoint] = (), *, progress: Callable[[int], None] | None = None
    ) -> VerifyResult:
        """Walk the whole chain; raise :class:`VerificationError` naming the first bad seq.
        ``progress``, if given, is called with the seq reached every few thousand rows.

        Checks: seq is gapless from 1, each ``prev_hash`` is the previous row's hash, each
        ``hash`` recomputes, the indexed columns agree with the payload, the payload is
        canonical. Each checkpoint must belong to this ledger, be within the log (else
        truncation) and match the hash at its seq (else rewrite).
        """
        walk = ChainWalk(self.ledger_id, checkpoints)
        try:
            # Text columns are read as bytes and decoded by the walk: a damaged byte must be
            # reported as a bad row (VerificationError), not as a driver error for the file.
            cursor = self._conn.execute(
                "SELECT seq, CAST(event_id AS BLOB), CAST(type AS BLOB), CAST(occurred_at AS BLOB), "
                "CAST(recorded_at AS BLOB), CAST(payload AS BLOB), prev_hash, hash "
                "FROM events ORDER BY seq"
            )
            for seq, *raw, prev_hash, hash_ in cursor:
                walk.row(seq, raw, prev_hash, hash_)
                if progress is not None and not seq % PROGRESS_EVERY:
                    progress(seq)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        head = walk.finish()
        try:
            problems = schema_problems(self._conn)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        if problems:
            raise VerificationError(
                f"{problems[0]}"
                + (f" (and {len(problems) - 1} more schema problem(s))" if len(problems) > 1 else "")
                + ": the log's append-only protection was changed outside the ledger",
                kind="schema",
            )
        problem = _registry_difference(walk.registry, self._conn)
        if problem:
            raise VerificationError(
                f"{problem}: the registry table was changed outside the ledger "
                "(the events verify; appending is refused until the table matches them)",
                kind="registry",
            )
        return VerifyResult(head.seq, head, walk.matched)


_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_file(path: str, *, create: bool) -> None:
    """Refuse, before SQLite touches it, a path that cannot be a ledger (nothing is changed)."""
    if not os.path.lexists(path):
        if create:
            return
        raise NotALedgerError(f"{path}: no ledger here; create one with 'bankrun init'")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise NotALedgerError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise NotALedgerError(f"{path}: is a directory, not a ledger file")
    if not stat.S_ISREG(info.st_mode):
        raise NotALedgerError(
            f"{path}: is not a regular file (a FIFO, socket or device); a ledger is an SQLite file"
        )
    if info.st_size == 0 and create:
        # Another process may be creating this log this instant: give it a moment.
        deadline = time.monotonic() + 0.25
        while info.st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
            info = os.stat(path)
    if info.st_size == 0:
        raise NotALedgerError(f"{path}: is an empty file (0 bytes), not a ledger; nothing was changed")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise NotALedgerError(f"{path}: cannot be read ({exc.strerror})") from None
    if magic != _SQLITE_MAGIC:
        raise NotALedgerError(f"{path}: not an SQLite database, so not a ledger; nothing was changed")


def _file_key(path: str) -> tuple[int, int, int]:
    info = os.stat(path)
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def connect_readonly(path: str, busy_timeout_ms: int) -> tuple[sqlite3.Connection, tuple[int, int, int] | None]:
    """A connection that writes nothing, to the file or beside it.

    With no ``-wal`` beside the file, no writer is there and every committed event is in the
    file itself: it is read as immutable (SQLite then creates no ``-shm``/``-wal``, which is
    what makes write-blocked media readable). The file's identity is returned so that the log
    can notice a writer arriving and reopen live. With a ``-wal``, a writer is (or was) there:
    the connection reads through the write-ahead log like any reader.
    """
    uri = Path(path).resolve().as_uri()
    frozen: tuple[int, int, int] | None = None
    if os.path.exists(path + "-wal"):
        uri += "?mode=ro"
    else:
        frozen = _file_key(path)
        uri += "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout_ms / 1000)
        configure(conn, busy_timeout_ms=busy_timeout_ms, readonly=True)
    except sqlite3.OperationalError as exc:
        if frozen is None and "unable to open" in str(exc):
            raise StorageError(
                f"{path}: has a write-ahead log ({os.path.basename(path)}-wal) that cannot be "
                "read here without writing its index: a writer is active or did not close "
                "cleanly; copy the file with its -wal (and -shm) to writable storage and open "
                "the copy"
            ) from None
        raise
    return conn, frozen


def _ledger_identity(conn: sqlite3.Connection, path: str) -> str:
    """The ledger_id, after checking that this database is a ledger of a format we read."""
    tables = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if not {"meta", "events"} <= tables:
        found = f" (its tables: {', '.join(sorted(tables)[:8])})" if tables else ""
        raise NotALedgerError(
            f"{path}: not a ledger database{found}; nothing was changed"
        )
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('ledger_id', 'format')"))
    except sqlite3.Error:
        raise NotALedgerError(f"{path}: not a ledger database (unreadable meta table)") from None
    ledger_id = meta.get("ledger_id")
    if not isinstance(ledger_id, str) or not ledger_id:
        raise NotALedgerError(f"{path}: not a ledger database (no ledger_id); run 'bankrun init' on a new file")
    fmt = meta.get("format")
    if not isinstance(fmt, str) or not fmt.isdigit():
        raise NotALedgerError(f"{path}: not a ledger database (log format {fmt!r} is not a version)")
    if int(fmt) > int(LOG_FORMAT):
        raise FormatError(
            f"{path}: written in log format {fmt}; this program reads format {LOG_FORMAT} and "
            f"older: upgrade ftx-ledger to a version that reads format {fmt}"
        )
    return ledger_id


#: The log's tables and triggers whose definitions must be exactly ours.
_GUARDED = ("meta", "events", "registry", "events_refuse_update", "events_refuse_delete", "events_gapless")


@functools.cache
def _expected_schema() -> dict[str, str]:
    conn = sqlite3.connect(":memory:")
    try:
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        return {
            name: _squash(sql)
            for name, sql in conn.execute("SELECT name, sql FROM sqlite_master")
            if name in _GUARDED
        }
    finally:
        conn.close()


def _squash(sql: str | None) -> str:
    return " ".join((sql or "").replace("IF NOT EXISTS ", "").split())


def schema_problems(conn: sqlite3.Connection) -> list[str]:
    """What differs between the file's tables and triggers and the log's own definitions:
    a missing or altered append-only trigger, an altered events table."""
    found = {
        name: (kind, _squash(sql))
        for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master")
    }
    problems = []
    for name, sql in _expected_schema().items():
        kind = "trigger" if name.startswith("events_") else "table"
        what = f"the append-only trigger {name}" if kind == "trigger" else f"the {name} table"
        if name not in found:
            problems.append(f"{what} is missing")
        elif found[name] != (kind, sql):
            problems.append(f"{what} was altered (its definition is not the ledger's)")
    extra = sorted(
        name for name, (kind, _) in found.items() if kind == "trigger" and name not in _GUARDED
    )
    problems += [f"an unknown trigger {name} is defined on the log" for name in extra]
    return problems


def _registry_difference(registry: Registry, conn: sqlite3.Connection) -> str:
    """The first entry where the registry table differs from ``registry`` ("" if none)."""
    try:
        stored = {
            (kind, key): value
            for kind, key, value in conn.execute(
                "SELECT kind, key, value FROM registry WHERE kind != 'state'"
            )
        }
    except sqlite3.Error as exc:
        return f"the registry table cannot be read ({exc})"
    return registry_difference(registry, stored)


def configure(conn: sqlite3.Connection, *, busy_timeout_ms: int, readonly: bool = False) -> None:
    """Set and check the pragmas every connection must have (a tested promise)."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not readonly:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StorageError(f"could not switch the database to WAL (journal_mode={mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA recursive_triggers = ON")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert conn.execute("PRAGMA recursive_triggers").fetchone()[0] == 1
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def _create_whole(path: str, ledger_id: str | None, busy_timeout_ms: int) -> None:
    """Make a new, empty log at ``path`` that appears whole or not at all: the schema is
    written and committed in a file beside it, which is then linked to ``path`` (a link fails
    where a file already is, so a log another process made first is kept, not replaced). A
    process killed while creating leaves no file at ``path``, never an empty or schema-less
    one that no later open could take (at worst an unfinished ``.PATH.creating-*`` beside it)."""
    folder, name = os.path.split(os.path.abspath(path))
    temp = os.path.join(folder, f".{name}.creating-{uuid.uuid4().hex[:12]}")
    try:
        conn = sqlite3.connect(temp, isolation_level=None, timeout=busy_timeout_ms / 1000)
        try:
            configure(conn, busy_timeout_ms=busy_timeout_ms)
            _ensure_schema(conn, ledger_id)
        finally:
            conn.close()  # the last connection: its WAL is checkpointed into the file and removed
        descriptor = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # made by another process meanwhile: open that one
        except OSError:
            # A file system without hard links: a rename, after one more look (the window
            # in which another creator's log could be replaced is this one call).
            if not os.path.lexists(path):
                os.replace(temp, path)
        try:  # the new name itself made durable (best effort: not every system opens folders)
            descriptor = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(descriptor)
        except OSError:
            pass
        finally:
            os.close(descriptor)
    finally:
        for leftover in (temp, temp + "-wal", temp + "-shm"):
            if os.path.lexists(leftover):
                os.unlink(leftover)


def _ensure_schema(conn: sqlite3.Connection, ledger_id: str | None = None) -> None:
    # An existing log needs no write lock to open: readers must not wait for a writer.
    present = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE name IN ('meta', 'events', 'registry', "
            "'events_refuse_update', 'events_refuse_delete', 'events_gapless')"
        )
    }
    if len(present) == 6:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('ledger_id', ?)", (ledger_id or str(uuid.uuid4()),)
        )
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (LOG_FORMAT,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    out, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current)
        if sqlite3.complete_statement(text):
            out.append(text)
            current = []
    return out
