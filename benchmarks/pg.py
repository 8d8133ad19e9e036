"""PostgreSQL beside SQLite: ``python -m benchmarks --db postgresql://...``.

Batch append and replay with every invariant on each backend, and durable appends (one event a
commit) by 1, 4 and 8 writer processes at once: throughput over the whole run and p99 latency
of one append. Each PostgreSQL case gets a fresh schema (dropped after); each SQLite case a
fresh file. The URL must name a role that may create schemas. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

PG_CASES = ("writers",)
WRITERS = (1, 4, 8)


def _schema_url(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"-csearch_path={schema}"
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Schemas:
    """Fresh schemas on the server, dropped at the end."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)
        self.made: list[str] = []

    def new(self) -> str:
        schema = "bench_" + uuid.uuid4().hex[:10]
        self.conn.execute(f"CREATE SCHEMA {schema}")
        self.made.append(schema)
        return _schema_url(self.url, schema)

    def close(self) -> None:
        for schema in self.made:
            self.conn.execute(f"DROP SCHEMA {schema} CASCADE")
        self.conn.close()


def _case(case: str, n: int, single: int, accounts: int, db: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--case", case, "--n", str(n), "--single", str(single),
         "--accounts", str(accounts), "--db", db, *extra],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_writer(db: str, worker: int, count: int, start_at: float) -> dict[str, Any]:
    """One writer process: ``count`` durable appends of one event each, from ``start_at``."""
    from ledger.store import open_log
    from ledger.testing.writer import batch_events

    with open_log(db) as log:
        events = [batch_events(i, 1, prefix=f"b{worker}-", same_time=True)[0] for i in range(count)]
        log.head()
        while time.time() < start_at:
            time.sleep(0.001)
        latencies = []
        begun = time.time()
        for event in events:
            t = time.perf_counter_ns()
            log.append([event])
            latencies.append(time.perf_counter_ns() - t)
        return {"begun": begun, "ended": time.time(), "latencies_ns": latencies}


def _writers(db: str, writers: int, total: int) -> dict[str, Any]:
    from ledger.store import open_log
    from ledger.testing.strategies import cast_events

    with open_log(db, create=True) as log:
        log.append(cast_events())
    start_at = time.time() + 2.0  # every process connected and waiting before the clock starts
    per = max(total // writers, 1)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c",
             "import json, sys; from benchmarks.pg import run_writer; "
             f"print(json.dumps(run_writer({db!r}, {w}, {per}, {start_at})))"],
            stdout=subprocess.PIPE, text=True,
        )
        for w in range(writers)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"writer failed ({proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    latencies = sorted(x for r in results for x in r["latencies_ns"])
    wall = max(r["ended"] for r in results) - min(r["begun"] for r in results)
    with open_log(db, readonly=True) as log:
        checked = log.verify().events_checked
    return {
        "writers": writers,
        "events": len(latencies),
        "seconds": round(wall, 3),
        "events_per_s": round(len(latencies) / wall),
        "p50_ms": round(latencies[len(latencies) // 2] / 1e6, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e6, 2),
        "max_ms": round(latencies[-1] / 1e6, 2),
        "verified": checked,
    }


def run_pg_case(name: str, *, n: int, single: int, accounts: int, db: str, writers: int) -> dict[str, Any]:
    assert name == "writers"
    return _writers(db, writers, single)


def run_table(args: argparse.Namespace) -> None:
    """The PostgreSQL-beside-SQLite table (see the module docstring)."""
    url = args.db
    schemas = _Schemas(url)
    results: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            pg_log = schemas.new()
            sqlite_log = os.path.join(tmp, "batch.db")
            for backend, db in (("sqlite", sqlite_log), ("postgres", pg_log)):
                for case in ("batch_append", "replay_invariants"):
                    result = _case(case, args.n, args.single, args.accounts, db)
                    results[f"{backend}:{case}"] = result
                    print(f"  {backend:<9} {case:<18} {result['events']:>9} events  {result['seconds']:>8.3f} s", file=sys.stderr)
                for w in WRITERS:
                    where = os.path.join(tmp, f"writers-{w}.db") if backend == "sqlite" else schemas.new()
                    result = _case("writers", args.n, args.single, args.accounts, where, "--writers", str(w))
                    results[f"{backend}:writers-{w}"] = result
                    print(f"  {backend:<9} {w} writer(s)        {result['events']:>9} events  {result['seconds']:>8.3f} s", file=sys.stderr)
    finally:
        schemas.close()
    print()
    print(f"{'measurement':<40} {'SQLite':>14} {'PostgreSQL':>14}")
    for label, case in (("batch append (validated, chained), ev/s", "batch_append"), ("replay, all invariants, ev/s", "replay_invariants")):
        a, b = results[f"sqlite:{case}"], results[f"postgres:{case}"]
        print(f"{label:<40} {a['events'] / a['seconds']:>14,.0f} {b['events'] / b['seconds']:>14,.0f}")
    for w in WRITERS:
        a, b = results[f"sqlite:writers-{w}"], results[f"postgres:writers-{w}"]
        print(f"{f'durable append, {w} writer(s): ev/s':<40} {a['events_per_s']:>14,} {b['events_per_s']:>14,}")
        print(f"{'  p99 latency of one append, ms':<40} {a['p99_ms']:>14} {b['p99_ms']:>14}")
    import platform

    report = {
        "n": args.n, "single": args.single, "accounts": args.accounts,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "results": results,
    }
    path = args.output.replace("latest.json", "postgres.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, sort_keys=True)
    print(f"\nwrote {path}")
