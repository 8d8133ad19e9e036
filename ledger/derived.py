"""Derived data kept beside a log, never inside the evidence unless asked.

Snapshots of the books and the projection tables (``bankrun snapshot``, ``bankrun materialize``)
are derived from the events: a cache and a convenience, not facts. By default they go into a
separate SQLite file beside the log (``ledger.db`` -> ``ledger.derived.db``), which names the
log it was built from (its ``ledger_id``) and the head (seq and hash) at the time, and is
refused against any other log. ``in_place`` writes them into the log's own file instead (the
first wave's behaviour), for a user who wants one file for the sqlite3 shell or Datasette.

A PostgreSQL log keeps its derived data in an SQLite file too (never in the server, where it
would need write rights on the shared log): by default ``ledger-<ledger_id>.derived.db`` in the
current directory (:func:`default_path_for`), or the file ``--out`` names; ``in_place`` is
refused for it.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import events as ev
from ledger.errors import NotALedgerError, StorageError
from ledger.store import Head, check_file, connect_readonly, is_url
from ledger.store.contract import EventLog

#: The version of the derived file's layout.
DERIVED_FORMAT = "1"

_META_SCHEMA = """
CREATE TABLE IF NOT EXISTS derived_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT
"""


def default_path(log_path: str | os.PathLike) -> str:
    """Where a log's derived data goes by default: ``x.db`` -> ``x.derived.db``."""
    path = Path(log_path)
    return str(path.with_name(f"{path.stem}.derived{path.suffix or '.db'}"))


def default_path_for(log: EventLog) -> str:
    """Where ``log``'s derived data goes by default: beside an SQLite file (:func:`default_path`);
    for a PostgreSQL log, ``ledger-<ledger_id>.derived.db`` in the current directory."""
    if is_url(log.path):
        return f"ledger-{log.ledger_id}.derived.db"
    return default_path(log.path)


class Derived:
    """A connection to where a log's derived data lives: the log's own file (``in_place``) or
    a derived file tied to that log. See the module docstring."""

    def __init__(self, conn: sqlite3.Connection, path: str, *, in_place: bool, writable: bool) -> None:
        self.connection = conn
        self.path = path
        self.in_place = in_place
        self.writable = writable

    @classmethod
    def in_log(cls, log: EventLog) -> Derived:
        """The log's own file (its connection): derived tables written in place. Only an SQLite
        log has one; a PostgreSQL log's derived data goes to a derived file (StorageError)."""
        connection = getattr(log, "connection", None)
        if not isinstance(connection, sqlite3.Connection):
            raise StorageError(
                f"{log.path}: a PostgreSQL log keeps derived data in a separate SQLite file, "
                "not in the shared database: leave out --in-place (and name the file with --out)"
            )
        return cls(connection, log.path, in_place=True, writable=not log.readonly)

    @classmethod
    def open(cls, path: str | os.PathLike, log: EventLog, *, create: bool = False) -> Derived:
        """Open the derived file at ``path`` for ``log``.

        ``create=True`` opens it for writing (making it if missing); otherwise it is opened
        read-only and writes nothing. Raises :class:`NotALedgerError` if the file is not a
        derived file (a ledger itself, another application's database) and
        :class:`StorageError` if it was built from another log.
        """
        path = os.fspath(path)
        if not is_url(log.path) and os.path.abspath(path) == os.path.abspath(log.path):
            raise StorageError(f"{path}: is the log itself; use the in-place option to write into the log")
        exists = os.path.lexists(path)
        if exists:
            check_file(path, create=False)
        elif not create:
            raise NotALedgerError(f"{path}: no derived file here; build one with 'bankrun snapshot'")
        try:
            if exists:
                conn, _ = connect_readonly(path, 5000)
                try:
                    _check_derived(conn, path, log)
                finally:
                    conn.close()
            if not create:
                conn, _ = connect_readonly(path, 5000)
                return cls(conn, path, in_place=False, writable=False)
            conn = sqlite3.connect(path, isolation_level=None, timeout=5)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(_META_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO derived_meta (key, value) VALUES ('ledger_id', ?), ('format', ?), "
                "('log_path', ?)",
                (log.ledger_id, DERIVED_FORMAT, log.path if is_url(log.path) else os.path.abspath(log.path)),
            )
            return cls(conn, path, in_place=False, writable=True)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the derived file ({exc})") from None

    def stamp(self, head: Head) -> None:
        """Record the log head the derived data was built from (and when)."""
        if self.in_place:
            return
        rows = [
            ("built_from_seq", str(head.seq)),
            ("built_from_hash", head.hash_hex),
            ("built_at", ev.format_instant(datetime.now(UTC))),
        ]
        self.connection.executemany(
            "INSERT INTO derived_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            rows,
        )

    def built_from(self) -> tuple[int, str] | None:
        """The ``(seq, head hash)`` of the log when this file was last built, if recorded."""
        if self.in_place:
            return None
        meta = dict(self.connection.execute("SELECT key, value FROM derived_meta"))
        if "built_from_seq" not in meta:
            return None
        return int(meta["built_from_seq"]), meta["built_from_hash"]

    def close(self) -> None:
        if not self.in_place:
            self.connection.close()


def _check_derived(conn: sqlite3.Connection, path: str, log: EventLog) -> None:
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "events" in tables and "meta" in tables:
        raise NotALedgerError(f"{path}: is a ledger, not a derived file; nothing was changed")
    if "derived_meta" not in tables:
        raise NotALedgerError(
            f"{path}: not a derived file of a ledger (no derived_meta table); nothing was changed"
        )
    meta = dict(conn.execute("SELECT key, value FROM derived_meta"))
    if meta.get("ledger_id") != log.ledger_id:
        raise StorageError(
            f"{path}: was built from ledger {meta.get('ledger_id')}, not from {log.path} "
            f"(ledger {log.ledger_id}); refused: name another --out file"
        )
    fmt = meta.get("format", "")
    if not fmt.isdigit() or int(fmt) > int(DERIVED_FORMAT):
        raise StorageError(f"{path}: derived file format {fmt!r} is not one this program reads")


