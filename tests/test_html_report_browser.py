"""The ftx-2022 report in a real browser: Debian's Chromium, driven headless by Playwright.

Outside CI a missing Chromium (or Playwright) skips these tests with a message; with CI=true
they must run (``.ci/run`` installs Chromium with apt-get), so a missing one fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import replays
from ledger.policy import Policy
from ledger.replay import books_at, replay

CHROMIUM = os.environ.get("LEDGER_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# As root Chromium needs --no-sandbox; the rest keep it from reaching the network on its own.
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true: the browser tests must run, but {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="ledger-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                viewport={"width": 1440, "height": 900},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _missing():
        pytest.skip("browser tests skipped")
    from ledger.html import build_report

    timeline = replays.load_timeline("ftx-2022")
    page = build_report(timeline, policy=Policy(quote=timeline.quote), title="ftx-2022", sources=timeline.sources)
    path = tmp_path_factory.mktemp("report") / "ftx-2022.html"
    path.write_text(page, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def loaded(browser: Any, report_file: Path) -> Iterator[dict[str, Any]]:
    page = browser.new_page()
    messages: list[tuple[str, str]] = []
    requests: list[str] = []
    page.on("console", lambda m: messages.append((m.type, m.text)))
    page.on("pageerror", lambda e: messages.append(("pageerror", str(e))))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report_file.as_uri())
    page.wait_for_function("document.body.dataset.ready !== undefined", timeout=60_000)
    yield {"page": page, "messages": messages, "requests": requests, "url": report_file.as_uri()}
    page.close()


def test_loads_with_no_console_error_and_no_network(loaded: dict[str, Any]) -> None:
    page = loaded["page"]
    assert page.evaluate("document.body.dataset.ready") == "1"
    errors = [m for m in loaded["messages"] if m[0] in ("error", "pageerror")]
    assert errors == []
    assert loaded["requests"] == [loaded["url"]], "the page asked for something besides itself"


def test_every_chart_renders_marks(loaded: dict[str, Any]) -> None:
    page = loaded["page"]
    charts = page.evaluate("Array.from(document.querySelectorAll('[id^=chart-]')).map(e => e.id)")
    assert sorted(charts) == ["chart-bands", "chart-loans", "chart-timeline"]
    for chart in charts:
        counts = page.evaluate(
            """id => {
              const root = document.getElementById(id);
              const out = {};
              for (const g of root.querySelectorAll('svg g.role-mark')) {
                const kind = Array.from(g.classList).find(c => c.startsWith('mark-'));
                const drawn = Array.from(g.querySelectorAll('path, line, rect, text'))
                  .filter(e => (e.getAttribute('d') || e.tagName !== 'path')).length;
                out[kind] = (out[kind] || 0) + drawn;
              }
              return out;
            }""",
            chart,
        )
        assert counts, f"{chart} drew no marks"
        assert sum(counts.values()) > 0, (chart, counts)
    timeline = page.evaluate(
        """() => { const out = {};
          for (const g of document.querySelectorAll('#chart-timeline svg g.role-mark')) {
            const kind = Array.from(g.classList).find(c => c.startsWith('mark-'));
            out[kind] = (out[kind] || 0) + g.children.length; }
          return out; }"""
    )
    assert timeline.get("mark-line", 0) >= 5  # owed, custody, liquid, the ratio, a price per asset
    assert timeline.get("mark-rule", 0) > 0


def test_breach_markers_with_their_dates(loaded: dict[str, Any]) -> None:
    # What the browser drew, read from Vega's scene graph: every breach-marker item, its date.
    drawn = loaded["page"].evaluate(
        """() => {
          const seen = [];
          const walk = (node) => {
            if (!node) return;
            if (node.datum && node.datum.invariants !== undefined && node.mark && node.mark.marktype === 'rule')
              seen.push({seq: node.datum.seq, at: new Date(node.datum.at).toISOString(), id: node.datum.event_id});
            (node.items || []).forEach(walk);
          };
          walk(window.REPORT_VIEWS[0].scenegraph().root);
          return seen;
        }"""
    )
    summary = replay("ftx-2022").run()
    shown = {(m["seq"], m["at"][:19], m["id"]) for m in drawn}
    for first in summary.first_breaches.values():
        assert (first.seq, first.at[:19], first.event_id) in shown, first
    opened = {v.seq for step in replay("ftx-2022") for v in step.opened}
    assert {m["seq"] for m in drawn} == opened
    assert (38, "2019-12-31T00:00:00", "fiat-2019") in shown
    assert (128, "2022-11-06T19:00:00", "run-2022-11-06-d") in shown


def test_moving_the_step_changes_the_balance_sheet(loaded: dict[str, Any]) -> None:
    page = loaded["page"]
    timeline = replays.load_timeline("ftx-2022")

    def sheet() -> dict[str, str]:
        return page.evaluate(
            """() => ({where: document.getElementById('sheet-where').textContent,
                       assets: document.getElementById('sheet-assets').innerText,
                       equity: document.getElementById('sheet-equity').textContent})"""
        )

    page.select_option("#sheet-entity", "alameda")
    at_end = sheet()
    for index in (len(timeline.events) - 1, 100):
        page.eval_on_selector(
            "#sheet-step", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", index
        )
        shown = sheet()
        books = books_at(timeline, policy=Policy(), seq=index + 1)
        equity = books.balance_sheet("alameda")["equity"]
        assert shown["where"].startswith(f"after seq {index + 1} ")
        words = shown["equity"].split()
        assert words[0] == "equity" and words[2] == "USD"
        assert Decimal(words[1].replace(",", "")) == equity  # exact: the books' own digits
    assert shown != at_end


def test_screenshot(loaded: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "ftx-2022-report.png"
    loaded["page"].evaluate("window.scrollTo(0, 0)")
    loaded["page"].screenshot(path=str(target))
    assert target.stat().st_size > 20_000
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tooltip_on_a_breach_marker(loaded: dict[str, Any]) -> None:
    page = loaded["page"]
    first = replay("ftx-2022").run().first_breaches["segregation"]
    # The triangles along the money chart's top are drawn in the markers' data order.
    box = page.evaluate(
        """seq => {
          const index = window.REPORT.breaches.findIndex(m => m.seq === seq);
          const marks = document.querySelectorAll('#chart-timeline g.mark-symbol.concat_0_layer_2_marks path');
          const r = marks[index] && marks[index].getBoundingClientRect();
          return r && {x: r.left + r.width / 2, y: r.top + r.height / 2};
        }""",
        first.seq,
    )
    assert box, "no marker symbol for the first segregation breach"
    page.mouse.move(box["x"], box["y"])
    page.wait_for_selector("#vg-tooltip-element.visible", timeout=5_000)
    text = page.inner_text("#vg-tooltip-element")
    assert first.event_id in text and "S35" in text
