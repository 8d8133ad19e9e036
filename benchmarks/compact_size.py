"""Bytes on disk per event: the log as stored today against raw tables and a compact prototype.

    python -m benchmarks.compact_size [--n 200000] [--accounts 10000]

A measurement for a design decision (issue 20), not a format: it writes W(N) with ``Log.append``
(today's format), then copies the same stored rows into

- ``raw``: the raw baseline table of ``python -m benchmarks`` (the same eight columns, no
  checks, no trigger, no registry);
- ``raw-min``: only what a raw replay reads (``seq INTEGER PRIMARY KEY, payload TEXT``);
- ``compact``: a prototype of a smaller log: the payload without the keys that have columns
  (``id``, ``type``, ``at``, ``v``), the type as a small integer, both times as integer
  microseconds, no ``prev_hash`` column (it is the previous row's ``hash``), the event_id
  index kept (idempotent appends need it), the registry table as today;
- ``compact-noid``: ``compact`` with the event_id index on the first 8 bytes of SHA-256(id) as
  an integer instead of the text (a collision would only cost a look-up of the full id).

For each it prints the file's bytes per event and the bytes by table and index (SQLite's
``dbstat``), and checks that every compact row gives back the stored canonical payload byte
for byte (so that the chain's hashes, computed over it, would be unchanged).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime
from itertools import islice

import orjson

from ledger.store import Log
from ledger.synthetic import workload

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(text: str) -> int:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = stamp - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _instant(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:06d}Z" if fraction else stamp + "Z"


def _connect(path: str, schema: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(schema)
    return conn


RAW = (
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, "
    "occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, payload TEXT NOT NULL, "
    "prev_hash BLOB NOT NULL, hash BLOB NOT NULL) STRICT;"
)
RAW_MIN = "CREATE TABLE events (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL) STRICT;"
COMPACT = (
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, type INTEGER NOT NULL, "
    "occurred_at INTEGER NOT NULL, recorded_at INTEGER NOT NULL, rest TEXT NOT NULL, "
    "hash BLOB NOT NULL) STRICT;"
    "CREATE TABLE registry (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
    "PRIMARY KEY (kind, key)) STRICT, WITHOUT ROWID;"
)
COMPACT_NOID = COMPACT.replace("event_id TEXT NOT NULL UNIQUE", "id_key INTEGER NOT NULL").replace(
    "STRICT;CREATE TABLE registry", "STRICT;CREATE INDEX events_id_key ON events (id_key);CREATE TABLE registry"
)


def _sizes(path: str, events: int) -> tuple[float, dict[str, float], dict[str, float]]:
    """Bytes per event: of the file, of each table and index, and the average stored length
    of each column of ``events`` (an integer counts its SQLite serial size, 0 to 8 bytes)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        objects = {name: size / events for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")}
        columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
        serial = "CASE WHEN typeof({c}) = 'integer' THEN (CASE WHEN abs({c}) < 128 THEN 1 WHEN abs({c}) < 32768 THEN 2 WHEN abs({c}) < 8388608 THEN 3 WHEN abs({c}) < 2147483648 THEN 4 WHEN abs({c}) < 140737488355328 THEN 6 ELSE 8 END) ELSE length(CAST({c} AS BLOB)) END"
        lengths = conn.execute(
            "SELECT " + ", ".join("avg(" + serial.format(c=c) + ")" for c in columns) + " FROM events"
        ).fetchone()
    finally:
        conn.close()
    return os.path.getsize(path) / events, objects, dict(zip(columns, lengths))


def _restore(event_id: str, type_name: str, occurred: int, rest: str) -> str:
    """The canonical payload from a compact row (what the chain hashes)."""
    data = orjson.loads(rest)
    data.update(id=event_id, type=type_name, at=_instant(occurred), v=1)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compact_size")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-size-") as tmp:
        ours = os.path.join(tmp, "ours.db")
        with Log.open(ours, create=True) as log:
            stream = workload(args.n, accounts=args.accounts)
            while chunk := list(islice(stream, 20_000)):
                log.append(chunk)
            rows = list(log.stored_rows())
            registry_rows = list(log.connection.execute("SELECT kind, key, value FROM registry"))
        n = len(rows)
        types = {name: code for code, name in enumerate(sorted({row[2] for row in rows}))}
        names = {code: name for name, code in types.items()}
        results = {"ours (format 1)": _sizes(ours, n)}

        raw = _connect(os.path.join(tmp, "raw.db"), RAW)
        raw.execute("BEGIN")
        raw.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        raw.execute("COMMIT")
        raw.close()
        results["raw (same columns)"] = _sizes(os.path.join(tmp, "raw.db"), n)

        raw_min = _connect(os.path.join(tmp, "raw-min.db"), RAW_MIN)
        raw_min.execute("BEGIN")
        raw_min.executemany("INSERT INTO events VALUES (?, ?)", ((r[0], r[5]) for r in rows))
        raw_min.execute("COMMIT")
        raw_min.close()
        results["raw-min (seq, payload)"] = _sizes(os.path.join(tmp, "raw-min.db"), n)

        compact_rows = []
        for seq, event_id, type_name, occurred, recorded, payload, _prev, hash_ in rows:
            data = orjson.loads(payload)
            for key in ("id", "type", "at", "v"):
                del data[key]
            rest = orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8")
            at = _micros(occurred)
            if _restore(event_id, type_name, at, rest) != payload:
                raise SystemExit(f"seq {seq}: the compact row does not give back the stored payload")
            compact_rows.append((seq, event_id, types[type_name], at, _micros(recorded), rest, hash_))
        for label, schema, key in (
            ("compact", COMPACT, lambda eid: eid),
            ("compact-noid", COMPACT_NOID, lambda eid: int.from_bytes(hashlib.sha256(eid.encode()).digest()[:8], "big", signed=True)),
        ):
            path = os.path.join(tmp, f"{label}.db")
            conn = _connect(path, schema)
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((s, key(e), t, o, r, p, h) for s, e, t, o, r, p, h in compact_rows),
            )
            conn.executemany("INSERT INTO registry VALUES (?, ?, ?)", registry_rows)
            conn.execute("COMMIT")
            conn.close()
            results[label] = _sizes(path, n)
        assert names  # the type codes would live in the meta table
    print(f"W({n:,}) over {args.accounts:,} accounts: bytes on disk per event (file, then by table and index)")
    base = results["raw (same columns)"][0]
    for label, (per_event, objects, columns) in results.items():
        parts = ", ".join(f"{name} {size:.0f}" for name, size in sorted(objects.items(), key=lambda kv: -kv[1]) if size >= 0.5)
        print(f"  {label:<24} {per_event:>6.1f} B/event ({per_event / base:.2f}x raw)   {parts}")
        print("  " + " " * 24 + "   columns: " + ", ".join(f"{c} {v:.1f}" for c, v in columns.items()))


if __name__ == "__main__":
    sys.exit(main())
