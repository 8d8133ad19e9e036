"""What a user runs: the CLI's whole-process replay of a stored log against a whole-process raw
loop over the same events (issue 20: >= 0.4x).

    python -m benchmarks.cli_process --n 200000 --rounds 5

Appends W(N) to a fresh log once (not timed), then runs, interleaved for ``--rounds`` rounds,
each in a fresh process: ``bankrun check --db LOG`` (text, the summary printed: the fast core
through ``Replay.run``), ``bankrun check --db LOG --format json``, and the raw loop
(``benchmarks/raw_process.py``: Python start-up, rows, ``json.loads``, ints into a dict).
Start-up, reading and the summary are inside every clock. It reports per process the CPU
seconds (user + system of the child, from ``getrusage``: less disturbed by other load than the
wall clock) and the wall seconds, the best of the rounds, and the ratios raw / ours (events/s
of ours over events/s of raw). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from ledger.store import open_log
from ledger.synthetic import workload

ROOT = Path(__file__).resolve().parent.parent


def _build(db: str, n: int, accounts: int) -> int:
    stream = workload(n, accounts=accounts)
    with open_log(db, create=True) as log:
        while chunk := list(islice(stream, 20_000)):
            log.append(chunk)
        return log.head().seq


def _timed(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process; its output is discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: an invariant broke (W(N) breaks some by design)
        raise SystemExit(f"{argv}: exit {done.returncode}: {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cli_process", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--db", help="an existing W(N) log to reuse (else a fresh one in a temporary folder)"
    )
    parser.add_argument("--output", default="benchmarks/results/cli_process.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or os.path.join(tmp, "w.db")
        events = _build(db, args.n, args.accounts) if not args.db else None
        python = sys.executable
        cases = {
            "check_text": [python, "-m", "ledger", "check", "--db", db],
            "check_json": [python, "-m", "ledger", "check", "--db", db, "--format", "json"],
            "raw_process": [python, str(ROOT / "benchmarks" / "raw_process.py"), db],
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, argv in cases.items():
                runs[name].append(_timed(argv))
    best = {name: (min(c for c, _ in r), min(w for _, w in r)) for name, r in runs.items()}
    raw_cpu, raw_wall = best["raw_process"]
    result = {
        "n": args.n,
        "events": events,
        "rounds": args.rounds,
        "best_cpu_s": {name: round(b[0], 3) for name, b in best.items()},
        "best_wall_s": {name: round(b[1], 3) for name, b in best.items()},
        "ratio_cpu": {
            name: round(raw_cpu / b[0], 3) for name, b in best.items() if name != "raw_process"
        },
        "ratio_wall": {
            name: round(raw_wall / b[1], 3) for name, b in best.items() if name != "raw_process"
        },
        "all": {name: [[round(c, 3), round(w, 3)] for c, w in r] for name, r in runs.items()},
    }
    for name in cases:
        line = f"{name:12} best CPU {best[name][0]:7.2f} s  wall {best[name][1]:7.2f} s"
        if name != "raw_process":
            line += f"  ratio (raw/ours) CPU {result['ratio_cpu'][name]:.3f}  wall {result['ratio_wall'][name]:.3f}"
        print(line)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
