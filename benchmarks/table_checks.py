"""What the events table's own checks cost a batch append, for a log-format v2 to weigh.

    python -m benchmarks.table_checks [--n 60000] [--rounds 5]

The same prebuilt rows of W(N) (canonical payloads, constant time and hashes) are inserted
with ``executemany`` in transactions of 20,000 (``synchronous = FULL``, WAL) into the raw
baseline table (``benchmarks.cases``) and into the log's format-1 table with its checks
removed one by one; CPU seconds (``time.process_time``) per row, best and median of the
rounds. Nothing here changes the log's format: it measures what a format without the
``json_valid`` CHECK or the gapless trigger would save (``docs/performance.md``, "Append and
log size").
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from typing import Any

import events as ev
from ledger.store.sqlite import SCHEMA, _statements
from ledger.synthetic import workload

CHUNK = 20_000
RAW = (
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, "
    "occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, payload TEXT NOT NULL, "
    "prev_hash BLOB NOT NULL, hash BLOB NOT NULL) STRICT"
)


def _variants() -> dict[str, list[str]]:
    ours = _statements(SCHEMA)
    no_json = [s.replace(" CHECK (json_valid(payload))", "") for s in ours]
    assert no_json != ours, "the format-1 schema no longer has the json_valid CHECK"
    return {
        "raw baseline table": [RAW],
        "format 1 (the log's table)": ours,
        "without the json_valid CHECK": no_json,
        "without json_valid and the gapless trigger": [s for s in no_json if "events_gapless" not in s],
    }


def _cpu_per_row(statements: list[str], rows: list[tuple[Any, ...]]) -> float:
    with tempfile.TemporaryDirectory(prefix="ledger-table-checks-") as tmp:
        conn = sqlite3.connect(os.path.join(tmp, "t.db"), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            for statement in statements:
                conn.execute(statement)
            started = time.process_time()
            for start in range(0, len(rows), CHUNK):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows[start : start + CHUNK])
                conn.execute("COMMIT")
            spent = time.process_time() - started
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == len(rows)
        finally:
            conn.close()
    return spent / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for seq, event in enumerate(workload(args.n, accounts=1000), 1):
        text, at_text = ev.log_record(event)
        rows.append((seq, event.id, event.type, at_text, "2026-01-01T00:00:00Z", text, bytes(32), bytes(32)))
    variants = _variants()
    spent: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # interleaved, so that load falls on every variant
        for name, statements in variants.items():
            spent[name].append(_cpu_per_row(statements, rows))
    raw = statistics.median(spent["raw baseline table"])
    print(f"{'table':<44} {'best us/row':>11} {'median':>7} {'vs raw':>7}")
    for name, values in spent.items():
        median = statistics.median(values)
        print(f"{name:<44} {min(values) * 1e6:>11.2f} {median * 1e6:>7.2f} {median / raw:>6.2f}x")


if __name__ == "__main__":
    main()
