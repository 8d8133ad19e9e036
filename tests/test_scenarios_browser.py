"""The stress grid's frontier page in a real browser (Debian's Chromium, headless Playwright):
it loads with no console error and no network request, and draws one mark per grid cell and the
frontier line. Skipped like tests/test_html_report_browser.py when no Chromium is installed
(outside CI)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile

import pytest

from ledger.scenarios import load_history
from ledger.scenarios._stress import grid, parse_shock

CHROMIUM = os.environ.get("LEDGER_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
        import vl_convert  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install '.[test]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LEDGER_CHROMIUM)"
    return None


def test_the_frontier_page_draws_every_cell_and_the_frontier(tmp_path):
    missing = _missing()
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true: the browser tests must run, but {missing}")
        pytest.skip(f"browser test skipped: {missing}")
    from playwright.sync_api import sync_playwright

    from ledger.html.frontier import frontier_page

    result = grid(
        load_history("ftx-2022"),
        at=dt.datetime(2022, 11, 6, tzinfo=dt.UTC),
        until=dt.datetime(2022, 11, 6, 1, tzinfo=dt.UTC),
        shocks=(parse_shock("price:FTT=0:0.25"), parse_shock("withdrawals:ftx/USDC=0:4000000000")),
        invariants=["collateral-coverage", "withdrawals-honoured"],
        subject="ftx:alameda,ftx",
        size=(6, 5),
    )
    path = tmp_path / "frontier.html"
    path.write_text(frontier_page(result, title="ftx-2022"), encoding="utf-8")
    profile = tempfile.mkdtemp(prefix="ledger-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                viewport={"width": 1200, "height": 800},
            )
            try:
                page = context.new_page()
                messages: list[str] = []
                requests: list[str] = []
                page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
                page.on("request", lambda r: requests.append(r.url))
                page.goto(path.as_uri())
                page.wait_for_function("document.body.dataset.ready !== undefined", timeout=60_000)
                assert page.evaluate("document.body.dataset.ready") == "1", messages
                assert [m for m in messages if m.startswith(("error", "pageerror"))] == []
                assert requests == [path.as_uri()]
                marks = page.evaluate(
                    """() => { const out = {};
                      for (const g of document.querySelectorAll('#chart-frontier svg g.role-mark')) {
                        const kind = Array.from(g.classList).find(c => c.startsWith('mark-'));
                        out[kind] = (out[kind] || 0) + g.children.length; }
                      return out; }"""
                )
                assert marks.get("mark-rect") == 30  # one a cell
                assert (
                    marks.get("mark-line") == 1 and marks.get("mark-symbol") == 6
                )  # the frontier, a point a row
                rows = page.locator("#frontier-table tbody tr").all_inner_texts()
                assert rows[0].split("\t")[:2] == ["0", "4000000000"]
                assert rows[2].split("\t")[:2] == ["0.1", "0"]
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
