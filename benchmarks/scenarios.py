"""Scenario benchmarks (issue 18): a 20-step bisection on ftx-2022, and a 20 x 20 stress grid
on the 100,000-event synthetic history W(100,000) on two cores: the frontier searched (the
target row) and, for comparison, every cell replayed.

    python -m benchmarks.scenarios              # both rows, best of --repeat runs
    python -m benchmarks.scenarios --quick      # tiny sizes: checks the harness
    python -m benchmarks.scenarios --no-scan    # without the every-cell grid row

Targets (read from the table, never asserted): bisection < 2 s; grid < 60 s. The grid's time
includes forking (the prefix replayed once by the reference with the watched invariants, the
books' state taken, and once by the fast core, its state pickled) and the pool's start; the history's generation is outside the clock. Results go to
``benchmarks/results/scenarios.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from typing import Any

from ledger import synthetic
from ledger.policy import Policy
from ledger.scenarios._engine import History, load_history
from ledger.scenarios._stress import grid, parse_shock, stress


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bisection(repeat: int) -> dict[str, Any]:
    """FTT's price at which Alameda's FTX line stops being covered on 2022-06-30: 20 steps."""
    history = load_history("ftx-2022")
    at = dt.datetime(2022, 6, 30, tzinfo=dt.UTC)
    until = dt.datetime(2022, 6, 30, 23, 59, 59, 999999, tzinfo=dt.UTC)
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = stress(
            history,
            at=at,
            until=until,
            shock=parse_shock("price:FTT"),
            invariants=["collateral-coverage"],
            subject="ftx:alameda",
            tolerance=Decimal("1E-12"),
            steps=20,
        )
        times.append(time.perf_counter() - started)
    assert result is not None
    return {
        "case": "bisection ftx-2022 price:FTT collateral-coverage(ftx:alameda) at 2022-06-30",
        "steps": result.steps,
        "runs": len(result.trials) + 1,
        "found": str(result.found),
        "breaking_value": result.breach.price if result.breach else None,
        "seconds_best": round(min(times), 3),
        "seconds_all": [round(t, 3) for t in times],
        "target_seconds": 2,
    }


def grid_row(
    n: int,
    size: int,
    jobs: int,
    repeat: int,
    fork_at: int,
    accounts: int = 10_000,
    method: str = "search",
) -> dict[str, Any]:
    """A size x size grid: TOK's price fall (0 to 60%) x a USD withdrawal wave at the venue (0 to
    150M; its custody holds 93M at the fork), against
    collateral-coverage and withdrawals-honoured, forked at event ``fork_at``; ``method``:
    ``search`` (the frontier searched, the other cells inferred) or ``scan`` (every cell)."""
    events = list(synthetic.workload(n, accounts=accounts))
    history = History(f"W({n})", events, "USD", Policy())
    at = events[fork_at].at
    times = []
    cpu = []
    parent = []
    loads = []
    result = None
    for _ in range(repeat):
        loads.append(round(os.getloadavg()[0], 2))
        started = time.perf_counter()
        before, own = _cpu(), time.process_time()
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            result = grid(
                history,
                at=at,
                shocks=(
                    parse_shock("price:TOK=0:0.6"),
                    parse_shock("withdrawals:ex/USD=0:150000000"),
                ),
                invariants=["collateral-coverage", "withdrawals-honoured"],
                size=(size, size),
                executor=pool,
                chunks=4 * jobs,
                jobs=jobs,
                method=method,
            )
        times.append(time.perf_counter() - started)
        cpu.append(_cpu() - before)
        parent.append(time.process_time() - own)
    assert result is not None
    broke = sum(1 for row in result.broke for cell in row if cell)
    return {
        "case": f"grid {size}x{size} ({method}) on W({n}) forked at event {fork_at} ({len(events) - fork_at} events after), {jobs} workers",
        "method": result.method,
        "cells": size * size,
        "runs": result.runs,
        "cells_broken": broke,
        "frontier": [None if y is None else str(y) for y in result.frontier],
        "seconds_best": round(min(times), 3),
        "seconds_all": [round(t, 3) for t in times],
        # CPU seconds of this process and its workers: less sensitive than the wall clock to
        # other work on a shared machine (wall >= cpu / jobs when the cores are ours).
        "cpu_seconds_all": [round(c, 3) for c in cpu],
        # of which this process (the fork: the prefix replayed by the reference and by the core)
        "parent_cpu_seconds_all": [round(c, 3) for c in parent],
        "load_average_1min_at_start": loads,
        "target_seconds": 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scenarios", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--fork-at", type=int, default=None, help="the fork's event index (default: n - 5,000)"
    )
    parser.add_argument(
        "--no-scan", action="store_true", help="skip the grid row that replays every cell"
    )
    parser.add_argument("--output", default="benchmarks/results/scenarios.json")
    args = parser.parse_args()
    if args.quick:
        args.n, args.size, args.repeat, args.accounts = 5_000, 3, 1, 100
    fork_at = args.fork_at if args.fork_at is not None else max(0, args.n - min(5_000, args.n // 2))
    rows = [bisection(args.repeat)]
    print(json.dumps(rows[-1]), flush=True)
    rows.append(
        grid_row(args.n, args.size, args.jobs, args.repeat, fork_at, args.accounts, "search")
    )
    print(json.dumps(rows[-1]), flush=True)
    if not args.no_scan:
        rows.append(
            grid_row(
                args.n,
                args.size,
                args.jobs,
                1 if args.quick else max(1, args.repeat - 1),
                fork_at,
                args.accounts,
                "scan",
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    document = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "rows": rows,
    }
    if not args.quick:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
    for row in rows:
        print(
            f"{row['case']}: best {row['seconds_best']} s of {row['seconds_all']} (target < {row['target_seconds']} s)"
        )


if __name__ == "__main__":
    main()
