"""The eventsourcing library's replay of the benchmark workload (a peer row, optional).

``pip install -e '.[bench]'`` (or ``pip install eventsourcing``) to include it in
``python -m benchmarks``. The log's payloads are recorded (untimed) as one aggregate's domain
events in the library's SQLite application recorder; the timed replay reads its notification
log in pages, turns each notification back into a domain event object with the library's
mapper (topic, JSON transcoder, timestamp) and adds integer minor units into a dict of
balances, as the raw loop does: what a user of the library would write to replay the same
history.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, UUIDAsHex
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore


@dataclass(frozen=True)
class LedgerFact(DomainEvent):
    """One of our events, carried as its payload dict."""

    data: dict[str, Any]


def replay(db: str, chunk: int) -> tuple[int, float]:
    """(events replayed, seconds) for the library's notification-log replay of ``db``'s log."""
    path = db + ".eventsourcing"
    if os.path.exists(path):
        os.remove(path)
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    mapper: Mapper[uuid.UUID] = Mapper(transcoder=transcoder)
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(path))
    recorder.create_table()
    origin = uuid.uuid5(uuid.NAMESPACE_URL, "ledger-benchmark")
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    import orjson

    conn = sqlite3.connect(f"file:{os.path.abspath(db)}?mode=ro", uri=True)
    batch = []
    for seq, payload in conn.execute("SELECT seq, payload FROM events ORDER BY seq"):
        fact = LedgerFact(originator_id=origin, originator_version=seq, timestamp=stamp, data=orjson.loads(payload))
        batch.append(mapper.to_stored_event(fact))
        if len(batch) == chunk:
            recorder.insert_events(batch)
            batch = []
    if batch:
        recorder.insert_events(batch)
    balances: dict[tuple[str, str], int] = {}
    scales: dict[str, int] = {}
    count = 0
    t = time.perf_counter()
    start = 1
    while True:
        page = recorder.select_notifications(start, chunk)
        if not page:
            break
        for notification in page:
            data = mapper.to_domain_event(notification).data  # type: ignore[attr-defined]
            count += 1
            kind = data["type"]
            if kind == "deposit" or kind == "withdrawal" or kind == "transfer":
                asset = data["asset"]
                whole, _, frac = data["amount"].partition(".")
                units = int(whole + frac.ljust(scales[asset], "0"))
                if kind == "deposit":
                    key = (data["account"], asset)
                    balances[key] = balances.get(key, 0) + units
                elif kind == "withdrawal":
                    key = (data["account"], asset)
                    balances[key] = balances.get(key, 0) - units
                else:
                    src = (data["from_account"], asset)
                    dst = (data["to_account"], asset)
                    balances[src] = balances.get(src, 0) - units
                    balances[dst] = balances.get(dst, 0) + units
            elif kind == "asset_listed":
                scales[data["asset"]] = data["scale"]
        start = page[-1].id + 1
    seconds = time.perf_counter() - t
    os.remove(path)
    return count, seconds
