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
of ours over events/s of raw).

The comparison is held honest: every child is the same Python (``sys.executable``) reading the
same log file, and each run's output is read to check that it replayed every event of the log
(ours: the summary's event count; raw: its printed count): a run that replayed fewer stops
the benchmark. Bytecode: the raw process imports only the standard library, whose bytecode is
compiled at install; ours imports ~100 modules of this repository, which a shell with
``PYTHONDONTWRITEBYTECODE=1`` (this machine's) would compile from source in every run (~0.5 s
of CPU that no installed ``bankrun`` pays). So the children write and read bytecode in a
temporary ``PYTHONPYCACHEPREFIX`` (nothing is written into the tree) after one untimed warm-up
run of each case; ``--compile-each-run`` measures the other way (every child compiles).

Beside the replays it times the start-up alone, each in a fresh process: ``python -c pass``,
``bankrun --help`` and ``bankrun check`` on an empty log (rows ``python``, ``help``,
``check_empty``; no ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, standard output) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: an invariant broke (W(N) breaks some by design)
        raise SystemExit(f"{argv}: exit {done.returncode}: {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.stdout.decode("utf-8")


def _events_replayed(name: str, out: str) -> int | None:
    """How many events a replay case says it replayed (None for a start-up case)."""
    if name == "check_text":
        found = re.search(r"^Summary of .*?: (\d+) events replayed", out, flags=re.M)
        if found is None:
            raise SystemExit(f"{name}: no summary line in its output: {out[:500]!r}")
        return int(found.group(1))
    if name == "check_json":
        return int(json.loads(out)["events"])
    if name == "raw_process":
        return int(json.loads(out)["events"])
    return None


def _child_env(tmp: str, compile_each_run: bool) -> dict[str, str]:
    """The children's environment: this one, with bytecode cached in ``tmp`` (see the module
    doc) unless ``compile_each_run``."""
    env = {k: v for k, v in os.environ.items() if k != "LEDGER_DB"}
    if compile_each_run:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    return env


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
    parser.add_argument(
        "--compile-each-run",
        action="store_true",
        help="no bytecode cache: every child compiles this repository's modules (see above)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or os.path.join(tmp, "w.db")
        if not args.db:
            _build(db, args.n, args.accounts)
        with open_log(db, readonly=True) as log:
            events = log.head().seq
        empty = os.path.join(tmp, "empty.db")
        with open_log(empty, create=True):
            pass
        env = _child_env(tmp, args.compile_each_run)
        python = sys.executable
        cases = {
            "check_text": [python, "-m", "ledger", "check", "--db", db],
            "check_json": [python, "-m", "ledger", "check", "--db", db, "--format", "json"],
            "raw_process": [python, str(ROOT / "benchmarks" / "raw_process.py"), db],
            "python": [python, "-c", "pass"],
            "help": [python, "-m", "ledger", "--help"],
            "check_empty": [python, "-m", "ledger", "check", "--db", empty],
        }
        if not args.compile_each_run:  # fill the bytecode cache, untimed
            for argv in cases.values():
                _timed(argv, env)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        load_start = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, argv in cases.items():
                cpu, wall, out = _timed(argv, env)
                replayed = _events_replayed(name, out)
                if replayed is not None and replayed != events:
                    raise SystemExit(f"{name} replayed {replayed} events of the log's {events}")
                runs[name].append((cpu, wall))
    best = {name: (min(c for c, _ in r), min(w for _, w in r)) for name, r in runs.items()}
    raw_cpu, raw_wall = best["raw_process"]
    replays = ("check_text", "check_json")
    result = {
        "n": args.n,
        "events": events,
        "rounds": args.rounds,
        "bytecode": "compiled in every run" if args.compile_each_run else "cached after a warm-up",
        "load_1min": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "best_cpu_s": {name: round(b[0], 3) for name, b in best.items()},
        "best_wall_s": {name: round(b[1], 3) for name, b in best.items()},
        "ratio_cpu": {name: round(raw_cpu / best[name][0], 3) for name in replays},
        "ratio_wall": {name: round(raw_wall / best[name][1], 3) for name in replays},
        "all": {name: [[round(c, 3), round(w, 3)] for c, w in r] for name, r in runs.items()},
    }
    for name in cases:
        line = f"{name:12} best CPU {best[name][0]:7.2f} s  wall {best[name][1]:7.2f} s"
        if name in replays:
            line += f"  ratio (raw/ours) CPU {result['ratio_cpu'][name]:.3f}  wall {result['ratio_wall'][name]:.3f}"
        print(line)
    print(f"load (1 min) {result['load_1min']['start']} -> {result['load_1min']['end']}; bytecode {result['bytecode']}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
