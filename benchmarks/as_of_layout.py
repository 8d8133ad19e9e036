"""What an ``as_of`` load would cost in another layout: the prototype behind issue 20's as_of row.

    python -m benchmarks.as_of_layout LOG [--rounds 10]

LOG is a log with snapshots (``bankrun snapshot LOG``, or the ``as_of`` case of
``python -m benchmarks``). Its newest full snapshot (format 4, ``ledger/snapshot_format.py``) is
decoded two ways, each ``--rounds`` times with the cyclic collector off, CPU seconds
(``time.process_time``):

- **today**: ``full_tables(read_record(blob))``: zlib, orjson, then the reference books' dicts
  (a 3-tuple key per balance, an ``AccountInfo``/``LoanInfo`` per registry row);
- **columns**: the same tables re-packed (untimed) as the fast core would keep them: the names
  and the small part as JSON, every key column and integer value column as a packed
  ``array('q')``; the load is zlib, one orjson call and ``array.frombytes`` per column, and
  builds no object per row.

Nothing here changes the log or its snapshots. The gap between the two is what materialising
the reference ``Books`` costs a query; the columns figure is a floor for a design whose views
read the fast core's layout (``docs/performance.md``, "as_of: full snapshots and deltas").
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import statistics
import time
import zlib
from array import array
from typing import Any

import orjson

from ledger import snapshot_format as fmt


def _pack(record: dict[str, Any]) -> tuple[bytes, list[int], list[tuple[str, int, bool]]]:
    """The record's tables as one zlib blob of a JSON head and packed columns, with the byte
    size of each part and, per table, (name, key columns, values packed as ints)."""
    put = record["put"]
    head = {
        "names": record["names"],
        "small": record["small"],
        "entries": {name: put[name]["entries"] for name in ("accounts", "loans")},
    }
    parts, layout = [orjson.dumps(head)], []
    for name in fmt.TABLES:
        keys, values = put[name]["keys"], put[name]["values"]
        packed = name != "book_value" and all(
            type(v) is int and -(2**63) <= v < 2**63 for v in values
        )
        parts.extend(array("q", column).tobytes() for column in keys)
        parts.append(array("q", values).tobytes() if packed else orjson.dumps(values))
        layout.append((name, len(keys), packed))
    return zlib.compress(b"".join(parts), 6), [len(p) for p in parts], layout


def _load(blob: bytes, sizes: list[int], layout: list[tuple[str, int, bool]]) -> dict[str, Any]:
    raw = memoryview(zlib.decompress(blob))
    bounds = iter(zip(itertools.accumulate(sizes, initial=0), itertools.accumulate(sizes)))

    def part() -> memoryview:
        start, end = next(bounds)
        return raw[start:end]

    def ints() -> array[int]:
        column = array("q")
        column.frombytes(part())
        return column

    tables: dict[str, Any] = {"head": orjson.loads(part())}
    for name, columns, packed in layout:
        tables[name] = [ints() for _ in range(columns)] + [
            ints() if packed else orjson.loads(part())
        ]
    return tables


def _cpu_ms(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="an SQLite log with snapshots")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if not os.path.isfile(args.log):
        raise SystemExit(f"{args.log}: no such log file")
    conn = sqlite3.connect(f"file:{os.path.abspath(args.log)}?mode=ro", uri=True)
    row = conn.execute("SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        raise SystemExit(f"{args.log}: no snapshot (run 'bankrun snapshot {args.log}' first)")
    seq, blob = row
    record = fmt.read_record(blob)
    packed, sizes, layout = _pack(record)
    tables = fmt.full_tables(record)
    columns = _load(packed, sizes, layout)
    for name, _, _ in layout:  # the same rows either way
        if len(columns[name][-1]) != len(tables[name]):
            raise AssertionError(
                f"{name}: {len(columns[name][-1])} rows packed, {len(tables[name])} decoded"
            )
    with fmt.no_collection():
        today = _cpu_ms(lambda: fmt.full_tables(fmt.read_record(blob)), args.rounds)
        packed_ms = _cpu_ms(lambda: _load(packed, sizes, layout), args.rounds)
    rows = ", ".join(f"{name} {len(tables[name]):,}" for name in fmt.TABLES if tables[name])
    print(f"full snapshot at seq {seq:,}: {rows}")
    print(
        f"  today (JSON columns -> reference books' dicts): {len(blob):>9,} bytes  {today:7.1f} ms CPU (median)"
    )
    print(
        f"  packed columns (fast-core layout, no row objects): {len(packed):>6,} bytes  {packed_ms:7.1f} ms CPU (median)"
    )


if __name__ == "__main__":
    main()
