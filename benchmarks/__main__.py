"""Measure the ledger against the raw limits of the machine, side by side.

    python -m benchmarks                 # default N = 200,000
    python -m benchmarks --n 1000000     # full size (minutes)
    python -m benchmarks --quick         # CI: tiny N, checks the harness only
    python -m benchmarks --scale 10000000  # append + replay N events end to end, one process
    python -m benchmarks --scale 10000000 --follow  # the replay follows the append (2 processes)
    python -m benchmarks --db postgresql://...  # PostgreSQL beside SQLite (benchmarks/pg.py)

For each measurement it prints events/s, the ratio to the raw baseline and peak memory (each
measurement runs in a fresh subprocess so peaks do not mix), and writes everything as JSON.
No timing is asserted: performance goals are read from the table, not enforced in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

#: Run ``--rounds`` times, interleaved (ours, raw, ours, raw...), so that load on the machine
#: falls on both sides of each ratio; the table shows the median ratio of the rounds.
APPEND_CASES = (
    "batch_append",
    "raw_executemany",
    "raw_executemany_prebuilt",
    "floor_append",
    "single_append",
    "raw_single_commits",
    "raw_single_commits_prebuilt",
)
CASES = (
    *APPEND_CASES,
    "replay_invariants",
    "raw_replay_loop",
    "floor_replay",
    "eventsourcing_replay",
    "as_of",
)
EXTRA_CASES = ("scale", "scale_append", "scale_follow")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[1])
    parser.add_argument("--n", type=int, default=200_000, help="events in the workload")
    parser.add_argument("--single", type=int, default=2_000, help="events for the per-event durable append cases")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness (CI)")
    parser.add_argument("--output", default="benchmarks/results/latest.json")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of the append cases (median ratio shown)"
    )
    parser.add_argument(
        "--scale", type=int, metavar="N",
        help="instead of the table: append N events and replay them with every invariant, timed end to end",
    )
    parser.add_argument(
        "--follow", action="store_true",
        help="with --scale: replay in a second process that follows the log as it is appended",
    )
    parser.add_argument("--case", choices=CASES + EXTRA_CASES + ("writers",), help=argparse.SUPPRESS)
    parser.add_argument(
        "--db", help="a postgresql:// URL: batch append, replay and 1/4/8 durable writers on it beside SQLite"
    )
    parser.add_argument("--writers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.single, args.accounts = 3_000, 200, 100
    if args.case == "writers":
        from benchmarks.pg import run_pg_case

        print(json.dumps(run_pg_case(args.case, n=args.n, single=args.single, accounts=args.accounts, db=args.db, writers=args.writers)))
        return
    if args.db and not args.case and args.db.startswith(("postgresql://", "postgres://")):
        from benchmarks.pg import run_table

        run_table(args)
        return
    if args.case:
        from benchmarks.cases import run_case

        print(json.dumps(run_case(args.case, n=args.n, single=args.single, accounts=args.accounts, db=args.db)))
        return
    if args.scale:
        (_scale_follow if args.follow else _scale)(args)
        return
    results = {}
    try:
        import eventsourcing  # noqa: F401 - the optional peer (pip install -e '.[bench]')

        cases = CASES
    except ImportError:
        cases = tuple(c for c in CASES if c != "eventsourcing_replay")
        print("  (eventsourcing is not installed: its peer row is left out)", file=sys.stderr)
    rounds: dict[str, list[dict]] = {}
    schedule = [(r, c) for r in range(max(args.rounds, 1)) for c in cases if c in APPEND_CASES]
    schedule += [(0, c) for c in cases if c not in APPEND_CASES]
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        for round_, case in schedule:
            db = os.path.join(tmp, f"{case}.db" if round_ == 0 else f"{case}-{round_}.db")
            if case in ("replay_invariants", "raw_replay_loop", "floor_replay", "eventsourcing_replay", "as_of"):
                db = os.path.join(tmp, "batch_append.db")  # replay the log the batch case wrote
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks", "--case", case, "--n", str(args.n),
                 "--single", str(args.single), "--accounts", str(args.accounts), "--db", db],
                check=True, capture_output=True, text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["wall_s"] = round(time.perf_counter() - started, 3)
            rounds.setdefault(case, []).append(result)
            results.setdefault(case, result)  # the first round's figures; every round below
            if round_:
                os.remove(db)  # only the first round's logs are read again
            print(f"  {case:<27} {result['events']:>9} events  {result['seconds']:>8.3f} s", file=sys.stderr)
    pairs = (
        ("batch append (validated, chained)", "batch_append", "raw_executemany"),
        ("  floor: encode, chain, insert only", "floor_append", "raw_executemany"),
        ("  against rows encoded before the clock", "batch_append", "raw_executemany_prebuilt"),
        ("durable append, one event a commit", "single_append", "raw_single_commits"),
        ("  against rows encoded before the clock", "single_append", "raw_single_commits_prebuilt"),
        ("replay, all invariants", "replay_invariants", "raw_replay_loop"),
        ("  floor: read and decode only", "floor_replay", "raw_replay_loop"),
        ("  peer: eventsourcing notification log", "eventsourcing_replay", "raw_replay_loop"),
        ("replay, all invariants, vs the peer", "replay_invariants", "eventsourcing_replay"),
    )
    rows = []
    print()
    print(f"{'measurement':<40} {'ours ev/s':>10} {'raw ev/s':>10} {'ratio':>6} {'rounds':>11} {'CPU ratio':>9} {'ours MB':>8} {'raw MB':>7}")
    for label, ours, raw in pairs:
        if ours not in results or raw not in results:
            continue
        # Round i of ours against round i of raw (run next to each other); the median ratio.
        pairs_run = list(zip(rounds[ours], rounds[raw])) if ours in APPEND_CASES else [(results[ours], results[raw])]
        ratios = sorted((a["events"] / a["seconds"]) / (b["events"] / b["seconds"]) for a, b in pairs_run)
        ratio = _median(ratios)
        ra = _median([a["events"] / a["seconds"] for a, _ in pairs_run])
        rb = _median([b["events"] / b["seconds"] for _, b in pairs_run])
        a, b = results[ours], results[raw]
        span = f"{ratios[0]:.2f}-{ratios[-1]:.2f}" if len(ratios) > 1 else ""
        # The same ratio in CPU seconds (the append cases measure both): steadier under load,
        # blind to fsync waits.
        cpu = [b["cpu_seconds"] / a["cpu_seconds"] * a["events"] / b["events"] for a, b in pairs_run if "cpu_seconds" in a and "cpu_seconds" in b]
        cpu_ratio = _median(cpu) if cpu else None
        rows.append({"measurement": label, "ours": ours, "raw": raw, "ours_events_per_s": round(ra), "raw_events_per_s": round(rb), "ratio": round(ratio, 3), "round_ratios": [round(r, 3) for r in ratios], "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 3), "ours_peak_mb": a["peak_mb"], "raw_peak_mb": b["peak_mb"]})
        cpu_text = "" if cpu_ratio is None else f"{cpu_ratio:.2f}"
        print(f"{label:<40} {ra:>10,.0f} {rb:>10,.0f} {ratio:>6.2f} {span:>11} {cpu_text:>9} {a['peak_mb']:>8.1f} {b['peak_mb']:>7.1f}")
    if "size" in results.get("batch_append", {}) and "size" in results.get("raw_executemany", {}):
        ours_size, raw_size = results["batch_append"]["size"], results["raw_executemany"]["size"]
        per_a = ours_size["db_bytes"] / ours_size["events"]
        per_b = raw_size["db_bytes"] / raw_size["events"]
        rows.append({"measurement": "log size on disk, bytes per event", "ours_bytes_per_event": round(per_a, 1), "raw_bytes_per_event": round(per_b, 1), "size_ratio": round(per_a / per_b, 3)})
        print(
            f"\nlog size on disk: {per_a:,.0f} bytes/event ({ours_size['db_bytes'] / 2**20:,.1f} MB) against "
            f"{per_b:,.0f} for the raw table of the same rows ({raw_size['db_bytes'] / 2**20:,.1f} MB): "
            f"{per_a / per_b:.2f}x"
        )
    q = results["as_of"]
    print(
        f"\nas_of at {q['queries']} random seqs of {q['events']:,} events (snapshots every "
        f"{q['snapshot_every']:,}, built in {q['snapshot_build_s']} s): median "
        f"{q['as_of_median_s'] * 1000:.0f} ms, max {q['as_of_max_s'] * 1000:.0f} ms, peak {q['peak_mb']} MB"
    )
    report = {
        "n": args.n,
        "single": args.single,
        "accounts": args.accounts,
        "rounds": args.rounds,
        "machine": _machine(),
        "results": results,
        "append_rounds": {case: runs for case, runs in rounds.items() if case in APPEND_CASES},
        "table": rows,
    }
    print()
    _write_json(args.output, report)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _machine() -> dict[str, object]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def _write_json(path: str, data: dict[str, object]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    print(f"wrote {path}")


def _case_command(case: str, n: int, accounts: int, db: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks", "--case", case, "--n", str(n), "--accounts", str(accounts), "--db", db]


def _scale(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-scale-") as tmp:
        db = os.path.join(tmp, "scale.db")
        started = time.perf_counter()
        out = subprocess.run(
            _case_command("scale", args.scale, args.accounts, db), check=True, capture_output=True, text=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["wall_s"] = round(time.perf_counter() - started, 3)
    n = result["events"]
    print(
        f"scale: {n:,} events appended in {result['append_s']:,.1f} s ({n / result['append_s']:,.0f} ev/s), "
        f"replayed with every invariant in {result['replay_s']:,.1f} s ({n / result['replay_s']:,.0f} ev/s)\n"
        f"total {result['seconds'] / 60:.1f} min (wall {result['wall_s'] / 60:.1f} min with generating the "
        f"workload), peak {result['peak_mb']} MB, log {result['db_mb']} MB, breaches {result['breaches']}"
    )
    _write_json(
        args.output.replace("latest.json", f"scale-{n}.json"),
        {"n": n, "accounts": args.accounts, "machine": _machine(), "scale": result},
    )


def _scale_follow(args: argparse.Namespace) -> None:
    """Append W(N) in one process while another replays it with every invariant as it lands
    (``bankrun replay --follow``): on two cores the replay no longer waits for the append."""
    from ledger.store import Log

    with tempfile.TemporaryDirectory(prefix="ledger-scale-") as tmp:
        db = os.path.join(tmp, "scale.db")
        Log.open(db, create=True).close()  # the follower opens it read-only
        started = time.perf_counter()
        writer = subprocess.Popen(_case_command("scale_append", args.scale, args.accounts, db), stdout=subprocess.PIPE, text=True)
        follower = subprocess.Popen(_case_command("scale_follow", args.scale, args.accounts, db), stdout=subprocess.PIPE, text=True)
        outputs = {}
        for name, proc in (("append", writer), ("replay", follower)):
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"{name} process failed ({proc.returncode})")
            outputs[name] = json.loads(out.strip().splitlines()[-1])
            outputs[name]["done_after_s"] = round(time.perf_counter() - started, 3)
        wall = time.perf_counter() - started
        db_mb = round(os.path.getsize(db) / 2**20, 1)
    a, r = outputs["append"], outputs["replay"]
    n = r["events"]
    print(
        f"scale --follow: {a['events']:,} events appended in {a['seconds']:,.1f} s of append calls "
        f"(writer done after {a['done_after_s']:,.1f} s, generating W(N) included); "
        f"the follower replayed {n:,} with every invariant and finished after {r['done_after_s']:,.1f} s\n"
        f"total wall {wall:,.1f} s = {wall / 60:.1f} min, peak {a['peak_mb']} MB (writer) / {r['peak_mb']} MB (replay), "
        f"log {db_mb} MB, breaches {r['breaches']}"
    )
    _write_json(
        args.output.replace("latest.json", f"scale-follow-{n}.json"),
        {"n": n, "accounts": args.accounts, "machine": _machine(), "wall_s": round(wall, 3), "db_mb": db_mb, **outputs},
    )


if __name__ == "__main__":
    main()
