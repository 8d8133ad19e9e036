"""Shared helpers for the reliability suite: log signatures and a killable writer."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path


def signature(path: Path) -> tuple[int, str, int, str]:
    """(head seq, head hash, row count, SHA-256 over every events row): "log unchanged" means equal."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()
    head = rows[-1] if rows else None
    return (head[0] if head else 0, bytes(head[-1]).hex() if head else "", len(rows), digest)


def integrity_ok(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def start_writer(db: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.testing.writer", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
