"""One measurement per process: ``run_case(name, ...)`` returns events, seconds, peak MB."""

from __future__ import annotations

import os
import resource
import sqlite3
import time
from itertools import islice
from typing import Any

import events as ev
from benchmarks.raw_process import raw_loop
from ledger.replay import Replay
from ledger.store import Head, Log, is_url, open_log
from ledger.synthetic import workload

CHUNK = 20_000


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _chunks(n: int, accounts: int):
    stream = workload(n, accounts=accounts)
    while True:
        chunk = list(islice(stream, CHUNK))
        if not chunk:
            return
        yield chunk


def _raw_connection(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, "
        "occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, payload TEXT NOT NULL, "
        "prev_hash BLOB NOT NULL, hash BLOB NOT NULL) STRICT"
    )
    return conn


_STAMP = "2026-01-01T00:00:00Z"
_NO_HASH = bytes(32)


def _rows(chunk: list[ev.Event], start: int) -> list[tuple[Any, ...]]:
    """The rows we store, but for the chain: each event's canonical JSON (one encoding, as the
    log makes it) and a constant recorded time and hashes. The raw baselines call this inside
    their clock (a writer of this table must encode its events); the ``_prebuilt`` variants
    call it before the clock starts, as the baseline did before issue 20."""
    rows = []
    for i, e in enumerate(chunk):
        text, at_text = ev.log_record(e)
        rows.append((start + i, e.id, e.type, at_text, _STAMP, text, _NO_HASH, _NO_HASH))
    return rows


def raw_insert_chunk(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """The raw batch writer: one transaction, one ``executemany`` of the rows."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")


def raw_commit_each(conn: sqlite3.Connection, batch: list[ev.Event]) -> None:
    """The raw durable writer: per event, its row encoded (as ``_rows`` does), one ``INSERT``
    and one ``COMMIT``."""
    for seq, event in enumerate(batch, 1):
        text, at_text = ev.log_record(event)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, event.id, event.type, at_text, _STAMP, text, _NO_HASH, _NO_HASH),
        )
        conn.execute("COMMIT")


def size_breakdown(db: str) -> dict[str, Any]:
    """Bytes on disk of the file at ``db`` (the ``-wal`` folded in: the connection is closed),
    and by table and index (SQLite's ``dbstat``), with the average stored length of each
    column of ``events``."""
    conn = sqlite3.connect(f"file:{os.path.abspath(db)}?mode=ro", uri=True)
    try:
        objects = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
        columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
        lengths = conn.execute(
            "SELECT " + ", ".join(f"avg(length(CAST({c} AS BLOB)))" for c in columns) + " FROM events"
        ).fetchone()
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    return {
        "db_bytes": os.path.getsize(db),
        "events": events,
        "objects_bytes": objects,
        "column_avg_bytes": {c: round(v or 0.0, 1) for c, v in zip(columns, lengths)},
    }


class _Clock:
    """Wall and CPU seconds (``time.process_time``) of the timed sections: the CPU figure is
    the steadier one on a shared machine, the wall one includes waiting for fsync."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> _Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu

    def result(self, events: int, **more: Any) -> dict[str, Any]:
        return {"events": events, "seconds": self.wall, "cpu_seconds": self.cpu, "peak_mb": _peak_mb(), **more}


def _append_batches(db: str, n: int, accounts: int, clock: _Clock | None = None) -> tuple[int, float]:
    """Append W(n) in chunks of CHUNK; return (events in the log, seconds spent in append)."""
    clock = clock or _Clock()
    with open_log(db, create=True) as log:  # an SQLite file or a postgresql:// URL
        for chunk in _chunks(n, accounts):
            with clock:
                log.append(chunk)
        return log.head().seq, clock.wall


def _eventsourcing_replay(db: str, n: int, accounts: int) -> dict[str, Any]:
    """The eventsourcing library's replay of the same log (benchmarks/peer_eventsourcing.py)."""
    from benchmarks.peer_eventsourcing import replay

    count, seconds = replay(db, CHUNK)
    return {"events": count, "seconds": seconds, "peak_mb": _peak_mb()}


def run_case(name: str, *, n: int, single: int, accounts: int, db: str) -> dict[str, Any]:
    if name == "batch_append":
        clock = _Clock()
        count, _ = _append_batches(db, n, accounts, clock)
        # The size on disk is an SQLite file's (dbstat); a PostgreSQL log has no file to measure.
        return clock.result(count, **({} if is_url(db) else {"size": size_breakdown(db)}))
    if name in ("raw_executemany", "raw_executemany_prebuilt"):
        # The raw baseline encodes the same payloads inside its clock (issue 20); the
        # _prebuilt variant makes its rows before the clock starts (the old baseline).
        inside = name == "raw_executemany"
        conn = _raw_connection(db)
        clock, seq = _Clock(), 1
        for chunk in _chunks(n, accounts):
            rows = None if inside else _rows(chunk, seq)
            with clock:
                if rows is None:
                    rows = _rows(chunk, seq)
                raw_insert_chunk(conn, rows)
            seq += len(rows)
        conn.close()
        return clock.result(seq - 1, size=size_breakdown(db))
    if name == "floor_append":
        # The least any append to this log does beyond the raw rows: encode each event
        # canonically, chain its hash and insert it into our table (its CHECKs and trigger
        # included), one transaction per chunk. Skipped: the duplicate-id look-up and every
        # reference check. It is the ceiling for "batch append" against raw executemany.
        clock = _Clock()
        with Log.open(db, create=True) as log:
            conn, head = log.connection, log.head()
            for chunk in _chunks(n, accounts):
                with clock:
                    conn.execute("BEGIN IMMEDIATE")
                    appended = log._insert(head, [(e, ev.log_record(e)) for e in chunk])
                    conn.execute("COMMIT")
                head = Head(appended[-1][0], appended[-1][2])
            # Untimed: the registry table a real append would have written, so that verify()
            # (which compares it with the events) proves the same chain a real append writes.
            registry = log.registry()
            conn.executemany(
                "INSERT INTO registry (kind, key, value) VALUES (?, ?, ?)",
                [(kind, key, value) for (kind, key), value in registry.rows().items()],
            )
            checked = log.verify().events_checked
        return clock.result(checked)
    if name == "single_append":
        batch = list(workload(single, accounts=min(accounts, 100)))
        with Log.open(db, create=True) as log, _Clock() as clock:
            for event in batch:
                log.append([event])
        return clock.result(len(batch))
    if name == "raw_single_commits":
        # One INSERT + COMMIT per event, its row encoded inside the clock (as batch above).
        batch = list(workload(single, accounts=min(accounts, 100)))
        conn = _raw_connection(db)
        with _Clock() as clock:
            raw_commit_each(conn, batch)
        return clock.result(len(batch))
    if name == "raw_single_commits_prebuilt":
        batch = list(workload(single, accounts=min(accounts, 100)))
        rows = _rows(batch, 1)
        conn = _raw_connection(db)
        with _Clock() as clock:
            for row in rows:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                conn.execute("COMMIT")
        return clock.result(len(rows))
    if name == "replay_invariants":
        with open_log(db, readonly=True) as log:
            t = time.perf_counter()
            summary = Replay(log, metrics=False).run()
            seconds = time.perf_counter() - t
        return {"events": summary.events, "seconds": seconds, "peak_mb": _peak_mb(), "breaches": sum(summary.breach_counts.values())}
    if name == "floor_replay":
        # The least any replay that hands events to the books does: read each stored row and
        # decode it into an event. The ceiling for "replay" against the raw loop.
        with Log.open(db, readonly=True) as log:
            t = time.perf_counter()
            count = 0
            for _ in log.iter_payloads():
                count += 1
            seconds = time.perf_counter() - t
            stored = log.head().seq
            if count != stored:
                raise AssertionError(f"decoded {count} of {stored} events")
        return {"events": count, "seconds": seconds, "peak_mb": _peak_mb()}
    if name == "raw_replay_loop":
        conn = sqlite3.connect(f"file:{os.path.abspath(db)}?mode=ro", uri=True)
        t = time.perf_counter()
        count, _ = raw_loop(conn)
        seconds = time.perf_counter() - t
        return {"events": count, "seconds": seconds, "peak_mb": _peak_mb()}
    if name == "eventsourcing_replay":
        return _eventsourcing_replay(db, n, accounts)
    if name == "as_of":
        import random

        from ledger.forensics import Investigation

        with Log.open(db) as log:
            inv = Investigation(log)
            t, cpu = time.perf_counter(), time.process_time()
            inv.build_snapshots(rebuild=True)
            build, build_cpu = time.perf_counter() - t, time.process_time() - cpu
            head = log.head().seq
            deltas = len(inv.deltas())
            rng = random.Random(1)
            latencies, cpus = [], []
            for _ in range(20):
                seq = rng.randint(1, head)
                t, cpu = time.perf_counter(), time.process_time()
                books = inv.as_of(seq=seq)
                latencies.append(time.perf_counter() - t)
                cpus.append(time.process_time() - cpu)
                if books.last_seq != seq:
                    raise AssertionError(f"as_of({seq}) gave the books at {books.last_seq}")
            warnings = list(inv.warnings)
        # The snapshot tables' pages on disk (full snapshots, deltas and their indexes).
        sizes = size_breakdown(db)["objects_bytes"]
        snapshot_bytes = sum(v for k, v in sizes.items() if "snapshot" in k)
        latencies.sort()
        cpus.sort()
        return {
            "events": head,
            "seconds": sum(latencies),
            "peak_mb": _peak_mb(),
            "snapshot_every": inv.every,
            "delta_every": inv.delta_every,
            "deltas": deltas,
            "snapshot_build_s": round(build, 3),
            "snapshot_build_cpu_s": round(build_cpu, 3),
            "snapshot_mb": round(snapshot_bytes / 2**20, 1),
            "as_of_median_s": round(latencies[len(latencies) // 2], 4),
            "as_of_max_s": round(latencies[-1], 4),
            "as_of_median_cpu_s": round(cpus[len(cpus) // 2], 4),
            "as_of_max_cpu_s": round(cpus[-1], 4),
            "queries": len(latencies),
            "warnings": warnings[:3],
        }
    if name == "scale":
        # The end-to-end target: append N events (batches of CHUNK, as a loader would) and
        # replay them with every invariant, in one process. Generating W(N) is not timed.
        count, append_s = _append_batches(db, n, accounts)
        with Log.open(db, readonly=True) as log:
            t = time.perf_counter()
            summary = Replay(log, metrics=False).run()
            replay_s = time.perf_counter() - t
        return {
            "events": count,
            "seconds": append_s + replay_s,
            "append_s": round(append_s, 3),
            "replay_s": round(replay_s, 3),
            "peak_mb": _peak_mb(),
            "breaches": sum(summary.breach_counts.values()),
            "db_mb": round(os.path.getsize(db) / 2**20, 1),
        }
    if name == "scale_append":
        # The writer half of --scale --follow: append W(n) to a log that a follower replays.
        started = time.perf_counter()
        count, append_s = _append_batches(db, n, accounts)
        return {"events": count, "seconds": append_s, "wall_s": time.perf_counter() - started, "peak_mb": _peak_mb()}
    if name == "scale_follow":
        # The reader half: replay the log with every invariant while it is being written,
        # following it until the n-th event (bankrun replay --follow --to-seq n).
        with Log.open(db, readonly=True) as log:
            t = time.perf_counter()
            summary = Replay(log.follow(to_seq=n, poll=0.05), metrics=False).run()
            seconds = time.perf_counter() - t
        return {
            "events": summary.events,
            "seconds": seconds,
            "peak_mb": _peak_mb(),
            "breaches": sum(summary.breach_counts.values()),
            "digest": summary.digest,
        }
    raise ValueError(f"unknown case {name}")

