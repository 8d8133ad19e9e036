"""Worker functions for the concurrency tests (module-level so the spawn context can import them)."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import events as ev
from ledger.errors import BusyError, ConflictError, HeadMismatchError
from ledger.store import Log
from ledger.testing.strategies import START


def deposit(event_id: str, amount: int = 1, minute: int = 1) -> ev.Event:
    return ev.Deposit(
        id=event_id, at=START + timedelta(minutes=minute), source=("T",), account="ex:cust",
        asset="USD", amount=Decimal(amount), landed="ex:custody",
    )


def append_distinct(db: str, worker: int, count: int) -> list[tuple[int, int, int, str]]:
    """Append ``count`` events one by one; return (start_ns, end_ns, seq, outcome) per append."""
    out = []
    with Log.open(db) as log:
        for i in range(count):
            event = deposit(f"p{worker}-{i}")
            start = time.monotonic_ns()
            try:
                result = log.append([event])
                outcome = "appended" if result.appended else "existing"
                seq = result.appended[0][0] if result.appended else result.existing[0][0]
            except BusyError:
                outcome, seq = "busy", -1
            out.append((start, time.monotonic_ns(), seq, outcome))
    return out


def append_same(db: str, ids: list[str]) -> list[tuple[str, str, int]]:
    """Append the same ids (identical content in every process); return (id, outcome, seq)."""
    out = []
    with Log.open(db) as log:
        for event_id in ids:
            result = log.append([deposit(event_id, amount=7)])
            if result.appended:
                out.append((event_id, "appended", result.appended[0][0]))
            else:
                out.append((event_id, "existing", result.existing[0][0]))
    return out


def append_conflicting(db: str, worker: int, ids: list[str]) -> list[tuple[str, str, str]]:
    """Race on ids with this worker's own amount; return (id, outcome, detail)."""
    out = []
    with Log.open(db) as log:
        for event_id in ids:
            try:
                result = log.append([deposit(event_id, amount=100 + worker)])
                out.append((event_id, "appended" if result.appended else "existing", ""))
            except ConflictError as exc:
                out.append((event_id, "conflict", ",".join(exc.fields)))
    return out


def append_optimistic(db: str, worker: int, successes: int) -> tuple[int, int]:
    """Read the head, append with expected_head, retry on mismatch; return (successes, retries)."""
    done = retries = 0
    with Log.open(db) as log:
        while done < successes:
            head = log.head().seq
            try:
                log.append([deposit(f"o{worker}-{done}")], expected_head=head)
                done += 1
            except HeadMismatchError:
                retries += 1
    return done, retries


def tail_reader(db: str, stop_at: int, timeout_s: float) -> tuple[bool, int]:
    """Poll for new rows until ``stop_at`` is seen; return (no hole ever seen, last seq)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    last, ok = 0, True
    deadline = time.monotonic() + timeout_s
    while last < stop_at and time.monotonic() < deadline:
        rows = [r[0] for r in conn.execute("SELECT seq FROM events WHERE seq > ? ORDER BY seq", (last,))]
        if rows:
            if rows[0] != last + 1 or rows != list(range(rows[0], rows[0] + len(rows))):
                ok = False
            last = rows[-1]
        else:
            time.sleep(0.002)
    conn.close()
    return ok, last
