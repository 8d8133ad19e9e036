"""Shared test settings and fixtures.

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE``; ``ci`` when ``CI`` is set, else ``dev``):

- ``ci``: 100 examples, 40 state-machine steps, derandomized, no example database: the same
  examples on every run, so CI is stable and a failure reproduces from the commit alone.
- ``dev``: 50 examples, example database on (failures are replayed first on the next run).
- ``explore``: 2,000 examples, 100 steps, random: run by hand or nightly.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from ledger.store import Log

settings.register_profile(
    "ci",
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("explore", max_examples=2000, stateful_step_count=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def head_signature(path: str | os.PathLike) -> tuple[int, str, int, str]:
    """``(head seq, head hash hex, count(*), SHA-256 over every events row in seq order)``.

    Two equal signatures mean "log unchanged" (SQLite ``crash.test`` style): same head, same
    number of rows, byte-identical rows. Read through a separate read-only connection.
    """
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        rows = 0
        head: tuple[int, str] = (0, "")
        for row in conn.execute("SELECT * FROM events ORDER BY seq"):
            rows += 1
            for value in row:
                digest.update(repr(value).encode("utf-8"))
                digest.update(b"\x1f")
            digest.update(b"\x1e")
            head = (row[0], bytes(row[-1]).hex())
        (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    finally:
        conn.close()
    assert count == rows
    return (head[0], head[1], count, digest.hexdigest())


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """Where a test's ledger lives (not created)."""
    return tmp_path / "ledger.db"


@pytest.fixture
def fresh_log(log_path: Path):
    """An empty, open :class:`Log` on ``log_path``; closed after the test."""
    log = Log.open(log_path, create=True)
    try:
        yield log
    finally:
        log.close()
