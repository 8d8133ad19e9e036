"""F4-F7: disk full, I/O interruption and locks give a clear typed error and leave the log
unchanged; the same Log object keeps working afterwards (its in-memory registry rolled back)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from decimal import Decimal

import pytest

import events as ev
from ledger.errors import BusyError, StorageError
from ledger.store import Log
from ledger.testing.strategies import START, cast_events
from tests.reliability.helpers import integrity_ok, signature


def _deposits(first: int, count: int, *, big: bool = False) -> list[ev.Event]:
    return [
        ev.Deposit(
            id=f"d{i}", at=START + timedelta(minutes=i), source=("T",), account="ex:cust",
            asset="USD", amount=Decimal(i), landed="ex:custody", note=("x" * 2000 if big else None),
        )
        for i in range(first, first + count)
    ]


@pytest.fixture
def log(tmp_path):
    log = Log.open(tmp_path / "ledger.db", create=True)
    log.append(cast_events())
    yield log
    log.close()


def test_disk_full_is_a_storage_error_and_changes_nothing(log, tmp_path):
    log.append(_deposits(1, 5))
    before = signature(tmp_path / "ledger.db")
    pages = log.connection.execute("PRAGMA page_count").fetchone()[0]
    log.connection.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now "full"
    with pytest.raises(StorageError, match="disk full"):
        log.append(_deposits(6, 300, big=True))
    assert signature(tmp_path / "ledger.db") == before
    assert integrity_ok(tmp_path / "ledger.db")
    # Space again: the same object appends, and the registry did not keep the failed batch.
    log.connection.execute("PRAGMA max_page_count = 1073741823")
    result = log.append(_deposits(6, 300, big=True))
    assert len(result.appended) == 300
    log.verify()


def test_interrupted_statement_is_a_storage_error_and_changes_nothing(log, tmp_path):
    before = signature(tmp_path / "ledger.db")
    calls = {"n": 0}

    def interrupt_after_a_while() -> int:
        calls["n"] += 1
        return 1 if calls["n"] > 50 else 0

    log.connection.set_progress_handler(interrupt_after_a_while, 100)
    with pytest.raises(StorageError):
        log.append(_deposits(1, 500))
    log.connection.set_progress_handler(None, 0)
    assert signature(tmp_path / "ledger.db") == before
    assert len(log.append(_deposits(1, 500)).appended) == 500
    log.verify()


def test_lock_held_by_another_process_gives_busy_error_not_a_hang(tmp_path):
    db = tmp_path / "ledger.db"
    with Log.open(db, create=True) as log:
        log.append(cast_events())
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys, time
                conn = sqlite3.connect({str(db)!r}, isolation_level=None)
                conn.execute("BEGIN IMMEDIATE")
                print("LOCKED", flush=True)
                time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "LOCKED"
        before = signature(db)
        with Log.open(db, busy_timeout_ms=300) as log:
            started = time.monotonic()
            with pytest.raises(BusyError, match="locked by another process"):
                log.append(_deposits(1, 1))
            waited = time.monotonic() - started
        assert 0.25 <= waited < 5, waited
        assert signature(db) == before
    finally:
        holder.kill()
        holder.wait()
    with Log.open(db) as log:  # the lock is gone: appending works again
        assert len(log.append(_deposits(1, 1)).appended) == 1


def test_not_a_database_is_a_storage_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError):
        Log.open(path)


def test_missing_file_is_a_storage_error_naming_init(tmp_path):
    with pytest.raises(StorageError, match="bankrun init"):
        Log.open(tmp_path / "absent.db")


def test_pragmas_are_a_tested_promise(log):
    conn = log.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA recursive_triggers").fetchone()[0] == 1
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
