"""The HTML report's cost: build time, file size and render time in Chromium, ftx-2022 and W(N).

    python -m benchmarks.report_bench              # ftx-2022 and a 1,000,000-event synthetic log
    python -m benchmarks.report_bench --n 20000    # smaller
    python -m benchmarks.report_bench --db LOG     # an existing log instead of building W(N)

Render time is from navigation to every chart drawn (``document.body.dataset.ready``), in
Debian's Chromium driven by Playwright (skipped when either is missing). Prints a table and
writes JSON to ``benchmarks/results/report-N.json``. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

import replays
from ledger.html import build_report, matching_timeline
from ledger.policy import Policy
from ledger.store import Log
from ledger.synthetic import workload

CHROMIUM = os.environ.get("LEDGER_CHROMIUM", "/usr/bin/chromium")


def render_seconds(path: Path) -> float | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(CHROMIUM):
        return None
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"]
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=args, headless=True, viewport={"width": 1440, "height": 900}
        )
        page = context.new_page()
        start = time.perf_counter()
        page.goto(path.resolve().as_uri())
        page.wait_for_function("document.body.dataset.ready !== undefined", timeout=600_000)
        seconds = time.perf_counter() - start
        state = page.evaluate("document.body.dataset.ready")
        context.close()
    if state != "1":
        raise SystemExit(f"{path}: the page did not render ({state})")
    return seconds


def measure(name: str, source: Any, out: Path, **kwargs: Any) -> dict[str, Any]:
    start = time.perf_counter()
    page = build_report(source, progress=lambda text: print(f"  {name}: {text}", file=sys.stderr), **kwargs)
    build = time.perf_counter() - start
    out.write_text(page, encoding="utf-8")
    return {
        "name": name,
        "build_seconds": round(build, 2),
        "bytes": out.stat().st_size,
        "render_seconds": (lambda s: None if s is None else round(s, 2))(render_seconds(out)),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="events in the synthetic log W(N)")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--db", help="report this log instead of building W(N)")
    parser.add_argument("--output", default=None, help="JSON results (default benchmarks/results/report-N.json)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        timeline = replays.load_timeline("ftx-2022")
        rows.append(measure("ftx-2022", timeline, Path(tmp) / "ftx.html", policy=Policy(quote=timeline.quote),
                            title="ftx-2022", sources=timeline.sources))
        db = args.db or os.path.join(tmp, "w.db")
        if not args.db:
            print(f"building W({args.n:,}) in {db}", file=sys.stderr)
            stream = workload(args.n, accounts=args.accounts)
            with Log.open(db, create=True) as log:
                while chunk := list(islice(stream, 10_000)):
                    log.append(chunk)
        with Log.open(db, readonly=True) as log:
            matched = matching_timeline(log)
            rows.append(measure(f"log of {log.head().seq:,} events", log, Path(tmp) / "w.html", log=log,
                                sources=matched.sources if matched else {}))
    print(f"{'report':<26} {'build s':>8} {'MB':>7} {'render s':>9} {'peak MB':>8}")
    for r in rows:
        render = "n/a" if r["render_seconds"] is None else f"{r['render_seconds']:.2f}"
        print(f"{r['name']:<26} {r['build_seconds']:>8.2f} {r['bytes'] / 1e6:>7.2f} {render:>9} {r['peak_mb']:>8.1f}")
    output = Path(args.output or f"benchmarks/results/report-{args.n}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
