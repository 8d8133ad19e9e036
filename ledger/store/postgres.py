"""The PostgreSQL log: one history shared by a team on a server, the same contract as SQLite.

Open it by URL (``postgresql://user@host/db``; ``?options=-csearch_path%3Dname`` picks the
schema that holds it). Needs ``pip install 'ftx-ledger[postgres]'`` (psycopg 3).

Write path: one transaction per batch. Its first statement takes a transaction-level advisory
lock keyed by the ledger's id (``pg_advisory_xact_lock``), so appends to one ledger are
serialised while reads never wait; the head is read after the lock, so seq = head + 1 and
prev_hash = head hash are written in the same transaction that read them, and the lock is
released only by COMMIT or ROLLBACK. The rows go in with COPY; a BEFORE INSERT trigger refuses
any seq that does not continue the log, and triggers refuse UPDATE, DELETE and TRUNCATE. The
role that appends needs only INSERT on ``events`` (see ``docs/postgres.md`` and
:func:`grant`). A NOTIFY in the same transaction wakes followers once it commits; they read by
seq, so a lost or merged notification costs at most one poll interval, never an event.

The hash chain, the canonical payloads, the registry checks and the strict verify walk are the
SQLite log's own (``ledger.store._shared``): a log copied between the two keeps every hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import events as ev
from events import Event
from ledger.errors import (
    BusyError,
    FormatError,
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
    utc_now,
)
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

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]
    pg_errors = None  # type: ignore[assignment]

DEFAULT_BUSY_TIMEOUT_MS = 5000
#: The NOTIFY channel of a ledger is this prefix and the ledger id's hex digits.
CHANNEL_PREFIX = "ledger_"


def _schema_sql(schema: str) -> list[str]:
    """The log's tables, functions and triggers in ``schema`` (names quoted, schema baked into
    the trigger functions so that a caller's search_path cannot redirect them)."""
    s = _quote(schema)
    return [
        f"""CREATE TABLE {s}.meta (
    key text PRIMARY KEY,
    value text NOT NULL
)""",
        f"""CREATE TABLE {s}.events (
    seq bigint PRIMARY KEY CHECK (seq >= 1),
    event_id text NOT NULL UNIQUE,
    type text NOT NULL,
    occurred_at text NOT NULL,
    recorded_at text NOT NULL,
    payload text NOT NULL,
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash bytea NOT NULL CHECK (length(hash) = 32)
)""",
        f"""CREATE TABLE {s}.registry (
    kind text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (kind, key)
)""",
        f"CREATE FUNCTION {s}.ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn${_REFUSE_BODY}$fn$",
        f"CREATE FUNCTION {s}.ledger_gapless() RETURNS trigger LANGUAGE plpgsql AS $fn${_gapless_body(schema)}$fn$",
        f"CREATE FUNCTION {s}.ledger_fixed_meta() RETURNS trigger LANGUAGE plpgsql AS $fn${_FIXED_META_BODY}$fn$",
        *(_trigger_sql(schema, name) for name in _TRIGGERS),
    ]


_REFUSE_BODY = """
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP USING ERRCODE = 'P0001';
END
"""

_FIXED_META_BODY = """
BEGIN
    IF OLD.key IN ('ledger_id', 'format') THEN
        RAISE EXCEPTION 'meta key % is fixed when the log is created', OLD.key USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
"""


def _gapless_body(schema: str) -> str:
    return f"""
BEGIN
    IF NEW.seq IS DISTINCT FROM (SELECT coalesce(max(seq), 0) + 1 FROM {_quote(schema)}.events) THEN
        RAISE EXCEPTION 'seq must continue the log without a gap (got %)', NEW.seq USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END
"""


#: trigger name -> (table, timing and events, level, function)
_TRIGGERS = {
    "events_refuse_update": ("events", "BEFORE UPDATE", "ROW", "ledger_refuse_change"),
    "events_refuse_delete": ("events", "BEFORE DELETE", "ROW", "ledger_refuse_change"),
    "events_refuse_truncate": ("events", "BEFORE TRUNCATE", "STATEMENT", "ledger_refuse_change"),
    "events_gapless": ("events", "BEFORE INSERT", "ROW", "ledger_gapless"),
    "meta_fixed": ("meta", "BEFORE DELETE OR UPDATE", "ROW", "ledger_fixed_meta"),
}


def _trigger_sql(schema: str, name: str) -> str:
    table, when, level, function = _TRIGGERS[name]
    s = _quote(schema)
    return f"CREATE TRIGGER {name} {when} ON {s}.{table} FOR EACH {level} EXECUTE FUNCTION {s}.{function}()"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def redact(url: str) -> str:
    """``url`` without its password, for messages and the log's ``path``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def lock_key(ledger_id: str) -> int:
    """The advisory lock that serialises appends to one ledger: a signed 64-bit key."""
    return int.from_bytes(hashlib.sha256(ledger_id.encode()).digest()[:8], "big", signed=True)


def channel(ledger_id: str) -> str:
    """The LISTEN/NOTIFY channel that wakes a ledger's followers."""
    return CHANNEL_PREFIX + re.sub(r"[^0-9a-z]", "", ledger_id.lower())[:48]


def _need_driver() -> None:
    if psycopg is None:
        raise StorageError(
            "a postgresql:// log needs psycopg 3: pip install 'ftx-ledger[postgres]'"
        )


def _translate(exc: Exception, name: str) -> LedgerError:
    """Driver errors, mapped by class onto the ledger's own."""
    if isinstance(exc, (pg_errors.LockNotAvailable, pg_errors.QueryCanceled)):
        return BusyError(
            f"{name}: another writer held the ledger's append lock past the busy timeout; "
            "retry, or find the session holding it (pg_locks, locktype 'advisory')"
        )
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return StorageError(f"{name}: permission denied ({_first_line(exc)}); see docs/postgres.md for the roles")
    if isinstance(exc, pg_errors.DiskFull):
        return StorageError(f"{name}: disk full on the server ({_first_line(exc)}); nothing was written")
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return StorageError(f"{name}: opened read-only; nothing was written")
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(f"{name}: the server cannot be reached or closed the connection ({_first_line(exc)})")
    return StorageError(f"{name}: storage error: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresLog:
    """An append-only, tamper-evident event log in a PostgreSQL schema (see the module doc).

    Open with :meth:`PostgresLog.open` (or :func:`ledger.store.open_log`). One object is one
    connection; use one per thread or process. Methods raise :class:`LedgerError` subclasses,
    never psycopg's errors.
    """

    def __init__(
        self,
        conn: Any,
        url: str,
        schema: str,
        ledger_id: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        readonly: bool = False,
        owns_connection: bool = True,
    ) -> None:
        self._conn = conn
        self._owns_connection = owns_connection
        self.url = url
        self.path = redact(url)
        self.schema = schema
        self.ledger_id = ledger_id
        self.readonly = readonly
        self._clock = clock
        self._lock_key = lock_key(ledger_id)
        self._listener: Any = None
        self._registry: Registry | None = None
        self._registry_seq = -1
        self._registry_checked = False

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str,
        *,
        create: bool = False,
        readonly: bool = False,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        clock: Callable[[], datetime] = utc_now,
        ledger_id: str | None = None,
    ) -> PostgresLog:
        """Open the log in the database (and schema) ``url`` names.

        ``create=True`` creates the log's tables and triggers in an empty schema; a schema that
        holds other tables is refused untouched (:class:`NotALedgerError`), as is one without
        the log's tables when ``create`` is not given. ``readonly=True`` runs every
        transaction read-only: nothing is written. Opening for writing checks the triggers
        (:class:`VerificationError` if one is missing, disabled or altered). The server must
        be reachable and the database UTF-8 (:class:`StorageError`). ``ledger_id``: the id of
        a log created now (a copy keeps its source's); a new id otherwise.
        """
        _need_driver()
        name = redact(url)
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StorageError(f"{name}: cannot connect ({_first_line(exc)})") from None
        try:
            conn.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
            if readonly:
                conn.execute("SET default_transaction_read_only = on")
            encoding = _scalar(conn, "SHOW server_encoding")
            if encoding.upper() not in ("UTF8", "UTF-8"):
                raise StorageError(
                    f"{name}: the database's encoding is {encoding}; a ledger needs UTF8 "
                    "(createdb -E UTF8) so that payloads keep their bytes"
                )
            schema = _scalar(conn, "SELECT current_schema()")
            if schema is None:
                raise StorageError(f"{name}: no schema to hold the log (check search_path)")
            tables = _tables(conn, schema)
            if not {"meta", "events"} <= tables:
                if tables or not create or readonly:
                    if not create or readonly:
                        found = f" (its tables: {', '.join(sorted(tables)[:8])})" if tables else ""
                        raise NotALedgerError(
                            f"{name}: not a ledger database{found}; nothing was changed"
                            + ("" if tables else "; create one with 'bankrun init'")
                        )
                    raise NotALedgerError(
                        f"{name}: schema {schema} holds other tables "
                        f"({', '.join(sorted(tables)[:8])}), not a ledger; nothing was changed"
                    )
                _create(conn, schema, ledger_id or str(uuid.uuid4()))
            ledger_id = _ledger_identity(conn, schema, name)
            if not readonly:
                problems = schema_problems(conn, schema)
                if problems:
                    raise VerificationError(
                        f"{name}: {problems[0]}; refusing to write to it (run 'bankrun verify')",
                        kind="schema",
                    )
        except BaseException as exc:
            conn.close()
            if psycopg is not None and isinstance(exc, psycopg.Error):
                raise _translate(exc, name) from None
            raise
        return cls(conn, url, schema, ledger_id, clock=clock, readonly=readonly)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._owns_connection:
            self._conn.close()

    def __enter__(self) -> PostgresLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _q(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        try:
            return self._conn.execute(sql, params)
        except psycopg.Error as exc:
            raise _translate(exc, self.path) from None

    # -- reading -------------------------------------------------------------------------------
    def head(self) -> Head:
        """The last seq and hash (``Head(0, 32 zero bytes)`` for an empty log)."""
        row = self._q("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return Head(0, GENESIS_HASH) if row is None else Head(row[0], bytes(row[1]))

    def __len__(self) -> int:
        return self.head().seq

    def iter_records(
        self, *, from_seq: int = 1, to_seq: int | None = None, batch_size: int = 2000
    ) -> Iterator[Record]:
        """Stream stored events in seq order, ``from_seq..to_seq`` inclusive, in pages."""
        columns = "seq, payload, recorded_at, prev_hash, hash"
        for seq, payload, recorded_at, prev_hash, hash_ in self._pages(columns, from_seq, to_seq, batch_size):
            event = _shared.decode_stored(seq, payload)
            yield Record(seq, event, recorded_at, bytes(prev_hash), bytes(hash_), payload)

    def iter_payloads(
        self, *, from_seq: int = 1, to_seq: int | None = None, batch_size: int = 2000
    ) -> Iterator[tuple[int, Event, str]]:
        """Stream ``(seq, event, canonical payload)`` in seq order: what a replay reads."""
        decode = _shared.decode_stored
        for seq, payload in self._pages("seq, payload", from_seq, to_seq, batch_size):
            yield seq, decode(seq, payload), payload

    def _pages(
        self, columns: str, from_seq: int, to_seq: int | None, batch_size: int
    ) -> Iterator[tuple[Any, ...]]:
        # Each page is one statement (autocommit): it sees every batch committed before it,
        # whole, and none that is not. Commits are serialised by the append lock and take
        # seqs in order, so what is visible is always a prefix of the log.
        last = max(from_seq, 1) - 1
        while True:
            if to_seq is not None and last >= to_seq:
                return
            hi = last + batch_size if to_seq is None else min(last + batch_size, to_seq)
            rows = self._q(
                f"SELECT {columns} FROM events WHERE seq > %s AND seq <= %s ORDER BY seq", (last, hi)
            ).fetchall()
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
        row = self._q("SELECT seq FROM events WHERE event_id = %s", (event_id,)).fetchone()
        if row is None:
            return None
        return next(self.iter_records(from_seq=row[0], to_seq=row[0]))

    def hash_at(self, seq: int) -> bytes | None:
        """The stored hash of the row at ``seq``, or None."""
        row = self._q("SELECT hash FROM events WHERE seq = %s", (seq,)).fetchone()
        return None if row is None else bytes(row[0])

    def seq_at(self, at: datetime) -> int:
        """The last seq whose effective time is <= ``at`` (0 if none)."""
        return self._last_seq_where("occurred_at", _shared.aware(at, "at"), inclusive=True)

    def seq_before(self, at: datetime) -> int:
        """The last seq whose effective time is < ``at`` (0 if none)."""
        return self._last_seq_where("occurred_at", _shared.aware(at, "at"), inclusive=False)

    def seq_recorded(self, recorded: datetime) -> int:
        """The last seq recorded at or before ``recorded`` (what the log knew then)."""
        return self._last_seq_where("recorded_at", _shared.aware(recorded, "recorded"), inclusive=True)

    def _last_seq_where(self, column: str, instant: datetime, *, inclusive: bool) -> int:
        assert column in ("occurred_at", "recorded_at")

        def value_at(seq: int) -> str:
            return self._q(f"SELECT {column} FROM events WHERE seq = %s", (seq,)).fetchone()[0]

        return _shared.last_seq_where(value_at, self.head().seq, instant, inclusive=inclusive)

    def registry(self) -> Registry:
        """The registry (entities, assets, accounts, loans) as of the head."""
        self._refresh_registry(self.head().seq)
        assert self._registry is not None
        return self._registry

    def _refresh_registry(self, head_seq: int) -> None:
        """Bring the cached registry to ``head_seq`` from the events that change it (the
        registry table is never read back as truth)."""
        if self._registry is not None and self._registry_seq == head_seq:
            return
        if self._registry is None:
            registry, start = Registry(), 1
        else:
            registry, start = self._registry, self._registry_seq + 1
        rows = self._q(
            "SELECT seq, payload FROM events WHERE seq >= %s AND seq <= %s AND type = ANY(%s) ORDER BY seq",
            (start, head_seq, list(Registry.CHANGING_TYPES)),
        ).fetchall()
        try:
            apply_to_registry(registry, rows)
        except VerificationError:
            self._registry = None
            raise
        row = self._q("SELECT occurred_at FROM events WHERE seq = %s", (head_seq,)).fetchone()
        registry.state["last_at"] = ev.parse_instant(row[0]) if row is not None else None
        self._registry, self._registry_seq = registry, head_seq

    def _stored_registry(self) -> dict[tuple[str, str], str] | str:
        try:
            rows = self._conn.execute("SELECT kind, key, value FROM registry WHERE kind != 'state'").fetchall()
        except psycopg.Error as exc:
            return f"the registry table cannot be read ({_first_line(exc)})"
        return {(kind, key): value for kind, key, value in rows}

    def _check_before_extending(self, head: Head) -> None:
        """Once per connection, before its first append: the head row continues the chain and
        the registry table matches the registry rebuilt from the events."""
        if head.seq:
            rows = self._q(
                "SELECT seq, recorded_at, convert_to(payload, 'UTF8'), prev_hash, hash FROM events "
                "WHERE seq >= %s ORDER BY seq",
                (head.seq - 1,),
            ).fetchall()
            check_head_row(self.path, head.seq, rows)
        assert self._registry is not None
        stored = self._stored_registry()
        found = stored if isinstance(stored, str) else registry_difference(self._registry, stored)
        if found:
            raise VerificationError(
                f"{self.path}: {found}; the database was changed outside the ledger, so it is not "
                "extended (run 'bankrun verify')",
                kind="registry",
            )
        self._registry_checked = True

    # -- following -----------------------------------------------------------------------------
    def follow(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        poll: float = 0.5,
        idle_timeout: float | None = None,
    ) -> Following:
        """Stream ``(seq, event, payload)`` and keep going as other writers append; at the head,
        wait for a NOTIFY (at most ``poll`` seconds) and read on by seq. See ``EventLog.follow``."""
        return follow_log(self, from_seq=from_seq, to_seq=to_seq, poll=poll, idle_timeout=idle_timeout)

    def wait(self, timeout: float) -> None:
        """Wait until a writer commits to this ledger, at most ``timeout`` seconds.

        The first call only starts listening and returns at once, so that an append committed
        between the caller's last read and the LISTEN is read on the next pass, not missed."""
        if self._listener is None:
            try:
                self._listener = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                self._listener.execute(f"LISTEN {channel(self.ledger_id)}")
            except psycopg.Error as exc:
                raise _translate(exc, self.path) from None
            return
        try:
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error as exc:
            raise _translate(exc, self.path) from None

    # -- writing -------------------------------------------------------------------------------
    def append(
        self,
        events: Iterable[Event],
        *,
        expected_head: int | None = None,
        where: Sequence[str] | None = None,
        guard: Callable[[Registry, Sequence[Event]], None] | None = None,
    ) -> AppendResult:
        """Append ``events`` atomically: all of them or none. Idempotency, ``expected_head``,
        the checks against the history, ``where`` and ``guard`` are those of the SQLite log
        (:meth:`ledger.store.sqlite.Log.append`)."""
        batch = list(events)
        if not batch:
            return AppendResult([], [], self.head())
        where_list = list(where) if where is not None else None
        appended: list[tuple[int, str]] = []
        existing: list[tuple[int, str]] = []
        head = self._append_chunks(
            [(batch, where_list)], expected_head=expected_head, guard=guard,
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
        ``chunk_size`` events in memory at a time (see the SQLite log's ``append_stream``)."""
        if chunk_size < 1:
            raise InputError("chunk_size: must be >= 1")
        counts = [0, 0]
        chunks = _shared.chunked(items, chunk_size)
        head = self._append_chunks(chunks, expected_head=expected_head, guard=None, counts=counts)
        return StreamResult(counts[0], counts[1], head)

    def _append_chunks(
        self,
        chunks: Iterable[tuple[list[Event], list[str] | None]],
        *,
        expected_head: int | None,
        guard: Callable[[Registry, Sequence[Event]], None] | None,
        appended: list[tuple[int, str]] | None = None,
        existing: list[tuple[int, str]] | None = None,
        counts: list[int] | None = None,
    ) -> Head:
        """One transaction over every chunk: lock, check, COPY, registry, NOTIFY, commit."""
        if self.readonly:
            raise StorageError(f"{self.path}: opened read-only; nothing was written")
        conn = self._conn
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                registry, head = _shared.extend_locked(
                    self, chunks, expected_head=expected_head, guard=guard,
                    appended=appended, existing=existing, counts=counts,
                )
                changed = dirty_registry_rows(registry)
                if changed:
                    with conn.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO registry (kind, key, value) VALUES (%s, %s, %s) "
                            "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
                            changed,
                        )
                conn.execute("SELECT pg_notify(%s, %s)", (channel(self.ledger_id), str(head.seq)))
        except psycopg.Error as exc:
            _shared.roll_back(self)
            raise _translate(exc, self.path) from None
        except BaseException:
            _shared.roll_back(self)
            raise
        registry.commit()
        self._registry_seq = head.seq
        return head

    def _find(self, batch: list[Event]) -> dict[str, tuple[int, str]]:
        rows = self._conn.execute(
            "SELECT seq, event_id, payload FROM events WHERE event_id = ANY(%s)", ([e.id for e in batch],)
        ).fetchall()
        return {eid: (seq, payload) for seq, eid, payload in rows}

    def _insert(self, head: Head, items: list[tuple[Event, tuple[str, str]]]) -> list[tuple[int, str, bytes]]:
        if not items:
            return []
        rows, out = chain_rows(head, items, ev.format_instant(self._clock()))
        with self._conn.cursor() as cur:
            if len(rows) < 8:
                cur.executemany(
                    "INSERT INTO events (seq, event_id, type, occurred_at, recorded_at, payload, "
                    "prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )
            else:
                with cur.copy(
                    "COPY events (seq, event_id, type, occurred_at, recorded_at, payload, prev_hash, hash) "
                    "FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
        return out

    def copy_rows(
        self, rows: Sequence[tuple[int, str, str, str, str, str, bytes, bytes]],
        registry_rows: Sequence[tuple[str, str, str]],
    ) -> None:
        """Insert rows exactly as another log stored them, and the registry rows they change
        (``bankrun copy``): one transaction, under the append lock, each row checked to continue
        this log's chain (:class:`VerificationError` if not; nothing is written)."""
        conn = self._conn
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                check_continues(self.head(), rows, self.path)
                with conn.cursor() as cur:
                    with cur.copy(
                        "COPY events (seq, event_id, type, occurred_at, recorded_at, payload, prev_hash, hash) "
                        "FROM STDIN"
                    ) as copy:
                        for row in rows:
                            copy.write_row(row)
                    if registry_rows:
                        cur.executemany(
                            "INSERT INTO registry (kind, key, value) VALUES (%s, %s, %s) "
                            "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
                            registry_rows,
                        )
                if rows:
                    conn.execute("SELECT pg_notify(%s, %s)", (channel(self.ledger_id), str(rows[-1][0])))
        except psycopg.Error as exc:
            raise _translate(exc, self.path) from None
        self._registry, self._registry_seq, self._registry_checked = None, -1, False

    def stored_rows(self, *, from_seq: int = 1, batch_size: int = 5000) -> Iterator[tuple[Any, ...]]:
        """The stored rows ``(seq, event_id, type, occurred_at, recorded_at, payload, prev_hash,
        hash)`` in seq order, exactly as stored (``bankrun copy``)."""
        for row in self._pages(
            "seq, event_id, type, occurred_at, recorded_at, payload, prev_hash, hash", from_seq, None, batch_size
        ):
            yield (*row[:6], bytes(row[6]), bytes(row[7]))

    # -- metadata ------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A metadata value (``ledger_id``, ``format``, ``quote``...), or None."""
        row = self._q("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        """Record a metadata value (not part of the hash chain; ``ledger_id`` cannot change)."""
        if key in ("ledger_id", "format"):
            raise StorageError(f"meta key {key!r} is fixed when the log is created")
        self._q(
            "INSERT INTO meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- tamper evidence -----------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        """The current head as a :class:`Checkpoint` to keep outside the database."""
        head = self.head()
        return Checkpoint(self.ledger_id, head.seq, head.hash_hex, ev.format_instant(utc_now()))

    def verify(
        self, checkpoints: Iterable[Checkpoint] = (), *, progress: Callable[[int], None] | None = None
    ) -> VerifyResult:
        """Walk the whole chain in one snapshot; raise :class:`VerificationError` naming the first
        bad seq. The checks are the SQLite log's (``ChainWalk``), then the triggers and their
        functions, then the registry table against the registry the events give."""
        walk = ChainWalk(self.ledger_id, checkpoints)
        conn = self._conn
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                with conn.cursor(name="ledger_verify") as cur:
                    cur.itersize = 5000
                    cur.execute(
                        "SELECT seq, convert_to(event_id, 'UTF8'), convert_to(type, 'UTF8'), "
                        "convert_to(occurred_at, 'UTF8'), convert_to(recorded_at, 'UTF8'), "
                        "convert_to(payload, 'UTF8'), prev_hash, hash FROM events ORDER BY seq"
                    )
                    for seq, *raw, prev_hash, hash_ in cur:
                        walk.row(seq, raw, prev_hash, hash_)
                        if progress is not None and not seq % PROGRESS_EVERY:
                            progress(seq)
                head = walk.finish()
                problems = schema_problems(conn, self.schema)
                stored = self._stored_registry()
        except psycopg.Error as exc:
            raise _translate(exc, self.path) from None
        if problems:
            raise VerificationError(
                f"{problems[0]}"
                + (f" (and {len(problems) - 1} more schema problem(s))" if len(problems) > 1 else "")
                + ": the log's append-only protection was changed outside the ledger",
                kind="schema",
            )
        found = stored if isinstance(stored, str) else registry_difference(walk.registry, stored)
        if found:
            raise VerificationError(
                f"{found}: the registry table was changed outside the ledger "
                "(the events verify; appending is refused until the table matches them)",
                kind="registry",
            )
        return VerifyResult(head.seq, head, walk.matched)


class PostgresPool:
    """Connections to one PostgreSQL log, pooled (psycopg_pool), for a service with many
    threads: each ``with pool.log() as log:`` borrows a connection as a :class:`PostgresLog`
    and gives it back at the end of the block. The log is checked once, when the pool opens
    (tables, triggers, format); the registry a borrower rebuilt is handed to the next one, so
    a borrow does not rebuild it (one borrower holds it at a time: never shared while in use).
    Appends from any number of threads stay gapless: they serialise on the ledger's advisory
    lock in the server, as separate processes do.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        readonly: bool = False,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        timeout: float = 30.0,
    ) -> None:
        _need_driver()
        import psycopg_pool

        with PostgresLog.open(url, readonly=readonly, busy_timeout_ms=busy_timeout_ms) as probe:
            self.ledger_id, self.schema, self.path = probe.ledger_id, probe.schema, probe.path
        self.url, self.readonly = url, readonly
        self._busy_timeout_ms = busy_timeout_ms
        self._spare: tuple[Registry, int, bool] | None = None
        self._spare_lock = threading.Lock()
        try:
            self._pool = psycopg_pool.ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                kwargs={"autocommit": True, "connect_timeout": 10},
                configure=self._configure,
                timeout=timeout,
                open=True,
            )
        except psycopg.Error as exc:
            raise StorageError(f"{self.path}: cannot open a connection pool ({_first_line(exc)})") from None

    def _configure(self, conn: Any) -> None:
        conn.execute(f"SET lock_timeout = {int(self._busy_timeout_ms)}")
        if self.readonly:
            conn.execute("SET default_transaction_read_only = on")

    @contextlib.contextmanager
    def log(self) -> Iterator[PostgresLog]:
        """Borrow a connection as a log for the ``with`` block (it goes back to the pool)."""
        try:
            borrowed = self._pool.connection()
            conn = borrowed.__enter__()
        except psycopg.Error as exc:  # the pool's timeout, or the server gone
            raise StorageError(f"{self.path}: no connection from the pool ({_first_line(exc)})") from None
        log = PostgresLog(
            conn, self.url, self.schema, self.ledger_id, readonly=self.readonly, owns_connection=False
        )
        with self._spare_lock:
            if self._spare is not None:
                log._registry, log._registry_seq, log._registry_checked = self._spare
                self._spare = None
        try:
            yield log
        finally:
            log.close()
            if log._registry is not None:
                with self._spare_lock:
                    if self._spare is None or self._spare[1] <= log._registry_seq:
                        self._spare = (log._registry, log._registry_seq, log._registry_checked)
            borrowed.__exit__(None, None, None)

    def stats(self) -> dict[str, int]:
        """The pool's counters (psycopg_pool): connections open, idle, requests served..."""
        return dict(self._pool.get_stats())

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scalar(conn: Any, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


def _tables(conn: Any, schema: str) -> set[str]:
    return {
        name
        for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    }


def _create(conn: Any, schema: str, ledger_id: str) -> None:
    with conn.transaction():
        # Two processes creating the same log at once: the second waits here, then finds it.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("create:" + schema),))
        if {"meta", "events"} <= _tables(conn, schema):
            return
        for statement in _schema_sql(schema):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('ledger_id', %s), ('format', %s)",
            (ledger_id, LOG_FORMAT),
        )


def _ledger_identity(conn: Any, schema: str, name: str) -> str:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('ledger_id', 'format')").fetchall())
    except psycopg.Error:
        raise NotALedgerError(f"{name}: not a ledger database (unreadable meta table)") from None
    ledger_id = meta.get("ledger_id")
    if not isinstance(ledger_id, str) or not ledger_id:
        raise NotALedgerError(f"{name}: not a ledger database (no ledger_id)")
    fmt = meta.get("format")
    if not isinstance(fmt, str) or not fmt.isdigit():
        raise NotALedgerError(f"{name}: not a ledger database (log format {fmt!r} is not a version)")
    if int(fmt) > int(LOG_FORMAT):
        raise FormatError(
            f"{name}: written in log format {fmt}; this program reads format {LOG_FORMAT} and "
            f"older: upgrade ftx-ledger to a version that reads format {fmt}"
        )
    return ledger_id


def _squash(sql: str) -> str:
    return " ".join(sql.split())


def schema_problems(conn: Any, schema: str) -> list[str]:
    """What differs between the database's triggers (and their functions) and the log's own: a
    missing, disabled or altered append-only trigger, an unknown trigger on ``events``."""
    expected_functions = {
        "ledger_refuse_change": _REFUSE_BODY,
        "ledger_gapless": _gapless_body(schema),
        "ledger_fixed_meta": _FIXED_META_BODY,
    }
    functions = dict(
        conn.execute(
            "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = ANY(%s)",
            (schema, list(expected_functions)),
        ).fetchall()
    )
    triggers = {
        name: (enabled, definition)
        for name, enabled, definition in conn.execute(
            "SELECT t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname IN ('events', 'meta', 'registry') AND NOT t.tgisinternal",
            (schema,),
        ).fetchall()
    }
    problems = []
    for name in _TRIGGERS:
        what = f"the append-only trigger {name}"
        if name not in triggers:
            problems.append(f"{what} is missing")
            continue
        enabled, definition = triggers[name]
        if enabled == "D":
            problems.append(f"{what} is disabled")
        elif _squash(definition).replace(f"{_quote(schema)}.", "").replace(f"{schema}.", "") != _squash(
            _trigger_sql(schema, name)
        ).replace(f"{_quote(schema)}.", ""):
            problems.append(f"{what} was altered (its definition is not the ledger's)")
    for function, body in expected_functions.items():
        if function not in functions:
            problems.append(f"the trigger function {function} is missing")
        elif _squash(functions[function]) != _squash(body):
            problems.append(f"the trigger function {function} was altered (its body is not the ledger's)")
    problems += [f"an unknown trigger {name} is defined on the log" for name in sorted(set(triggers) - set(_TRIGGERS))]
    return problems


def grant(url: str, *, writer: str | None = None, reader: str | None = None) -> None:
    """Give existing roles their rights on the log at ``url`` (run as the log's owner).

    ``writer`` may read everything and INSERT into ``events`` (never UPDATE, DELETE or
    TRUNCATE it), and write the registry and meta tables that an append updates; ``reader``
    may only SELECT. Neither owns the tables, so neither can drop or disable a trigger.
    """
    _need_driver()
    log = PostgresLog.open(url)
    try:
        s = _quote(log.schema)
        statements = []
        for role in (r for r in (writer, reader) if r):
            statements += [
                f"GRANT USAGE ON SCHEMA {s} TO {_quote(role)}",
                f"GRANT SELECT ON {s}.events, {s}.meta, {s}.registry TO {_quote(role)}",
            ]
        if writer:
            w = _quote(writer)
            statements += [
                f"GRANT INSERT ON {s}.events TO {w}",
                f"GRANT INSERT, UPDATE ON {s}.registry, {s}.meta TO {w}",
            ]
        with log._conn.transaction():
            for statement in statements:
                log._conn.execute(statement)
    except psycopg.Error as exc:
        raise _translate(exc, log.path) from None
    finally:
        log.close()
