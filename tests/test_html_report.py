"""`bankrun report`: the HTML page's data and chart specs, read straight from the file.

The page carries its charts as Vega-Lite specs in one JSON block (``#report-data``); these
tests read that block and check it against the replay (the browser tests in
``test_html_report_browser.py`` check what Chromium draws from it).
"""

from __future__ import annotations

import itertools
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("vl_convert", reason="the report extra (vl-convert-python) is not installed")

import replays
from ledger.cli import cli
from ledger.html import _collect, build_report
from ledger.policy import Policy
from ledger.replay import books_at, replay
from ledger.store import Log

DATA_BLOCK = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def page_data(page: str) -> dict[str, Any]:
    match = DATA_BLOCK.search(page)
    assert match, "the page has no #report-data block"
    return json.loads(match.group(1))


def chart_values(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Every inline dataset of a spec (its layers and concatenated views included)."""
    found = []
    if "data" in spec and "values" in spec["data"]:
        found.append(spec["data"]["values"])
    for key in ("layer", "vconcat", "hconcat"):
        for sub in spec.get(key, []):
            found += chart_values(sub)
    return found


def floats_in(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats_in(v)]
    return []


@pytest.fixture(scope="module")
def ftx_page() -> str:
    timeline = replays.load_timeline("ftx-2022")
    return build_report(timeline, policy=Policy(quote=timeline.quote), title="ftx-2022", sources=timeline.sources)


@pytest.fixture(scope="module")
def ftx_summary():
    return replay("ftx-2022").run()


def test_page_is_self_contained(ftx_page: str) -> None:
    # Nothing is loaded from anywhere: no src/href to another resource, and a CSP that forbids it.
    markup = re.sub(r"<script[^>]*>.*?</script>", "<script></script>", ftx_page, flags=re.S)
    assert not re.search(r"<(script|link|img|iframe|object|embed)[^>]+(src|href|data)=", markup)
    assert not re.search(r"""(href|src)=["']?(https?:|//)""", markup)
    assert "default-src 'none'" in ftx_page
    assert ftx_page.count("<script") == 3  # the data, the charting library, the page's own
    assert "</script" not in DATA_BLOCK.search(ftx_page).group(1)


def test_breach_markers_are_the_events_that_opened_a_breach(ftx_page: str, ftx_summary) -> None:
    data = page_data(ftx_page)
    money = data["specs"]["timeline"]["vconcat"][0]
    markers = [values for values in chart_values(money) if values and "invariants" in values[0]]
    assert markers, "the money chart has no breach markers"
    by_seq = {m["seq"]: m for m in markers[0]}
    for name, first in ftx_summary.first_breaches.items():
        marker = by_seq[first.seq]
        assert marker["at"] == first.at and marker["event_id"] == first.event_id
        assert name in marker["invariants"].split()
        assert marker["source"] == ", ".join(first.source)
    assert by_seq[38]["at"] == "2019-12-31T00:00:00Z" and by_seq[38]["event_id"] == "fiat-2019"
    assert by_seq[128]["at"] == "2022-11-06T19:00:00Z" and by_seq[128]["event_id"] == "run-2022-11-06-d"
    # Only events that opened a breach are marked, each once.
    opened = sorted({v.seq for v in _all_violations("ftx-2022")})
    assert sorted(by_seq) == opened


def _all_violations(name: str) -> list:
    out = []
    for step in replay(name):
        out += step.opened
    return out


def test_money_is_exact_decimal_text(ftx_page: str, ftx_summary) -> None:
    data = page_data(ftx_page)
    datasets = [v for spec in data["specs"].values() for v in chart_values(spec)]
    assert floats_in([datasets, data["sheets"]]) == [], "a float in the page data: money must stay decimal text"
    series = chart_values(data["specs"]["timeline"]["vconcat"][0])[0]
    last = series[-1]
    final = ftx_summary.final_metrics
    assert last["venue"] == final["venue"] == "ftx"
    assert Decimal(last["owed"]) == Decimal(final["customer_liabilities"]) == Decimal("8910000000")
    assert Decimal(last["custody"]) == Decimal(final["custody"])
    assert last["ratio"] == final["reserve_ratio"]
    # The chart parses the strings to numbers in the browser, only to place marks.
    parse = data["specs"]["timeline"]["vconcat"][0]["layer"][0]["data"]["format"]["parse"]
    assert parse["owed"] == parse["custody"] == parse["liquid"] == "number"


def test_bands_cover_every_invariant(ftx_page: str, ftx_summary) -> None:
    bands = page_data(ftx_page)["specs"]["bands"]["data"]["values"]
    names = [inv["name"] for inv in ftx_summary.invariants]
    assert {b["invariant"] for b in bands} == set(names)
    for name in names:
        mine = [b for b in bands if b["invariant"] == name]
        if name in ftx_summary.first_breaches:
            broken = [b for b in mine if b["state"] == "broken"]
            assert len(broken) == ftx_summary.breach_counts[name]
            assert min(b["start_seq"] for b in broken) == ftx_summary.first_breaches[name].seq
        else:
            assert [(b["subject"], b["state"]) for b in mine] == [("every subject", "held")]
    # Per subject, runs follow each other without a gap or an overlap.
    rows: dict[str, list[dict[str, Any]]] = {}
    for b in bands:
        rows.setdefault(b["row"], []).append(b)
    for runs in rows.values():
        for before, after in itertools.pairwise(runs):
            assert before["end_seq"] == after["start_seq"] and before["state"] != after["state"]


def test_loans_chart_shows_every_loan_whose_coverage_broke(ftx_page: str) -> None:
    data = page_data(ftx_page)
    loans = data["specs"]["loans"]["layer"][0]["data"]["values"]
    broke = {v.subject for v in _all_violations("ftx-2022") if v.invariant == "collateral-coverage"}
    assert broke and broke <= {p["loan"] for p in loans}
    low = [p for p in loans if Decimal(p["coverage"]) < 1]
    assert low, "ftx-2022 has under-secured loans"


def test_balance_sheets_are_the_books_at_each_step(ftx_page: str) -> None:
    sheets = page_data(ftx_page)["sheets"]
    steps = sheets["steps"]
    timeline = replays.load_timeline("ftx-2022")
    assert [s["seq"] for s in steps] == list(range(1, len(timeline.events) + 1))  # every step
    for step in (steps[60], steps[130], steps[-1]):
        books = books_at(timeline, policy=Policy(), seq=step["seq"])
        for entity in ("ftx", "alameda"):
            expected = books.balance_sheet(entity)
            shown = sheets["pool"][step["sheets"][entity]]
            assert Decimal(shown["equity"]) == expected["equity"]
            assert {k: Decimal(v) for k, v in shown["assets"]} == expected["assets"]
            assert {k: Decimal(v) for k, v in shown["liabilities"]} == expected["liabilities"]


def test_sources_resolved_from_the_timeline(ftx_page: str) -> None:
    timeline = replays.load_timeline("ftx-2022")
    cited = {key for event in timeline.events for key in event.source}
    for key in cited:
        row = re.search(rf'<tr id="source-{key}"><td><b>{key}</b></td><td>(.*?)</td>', ftx_page)
        assert row and "not resolved" not in row.group(1), key
    assert "CoinDesk" in re.search(r'<tr id="source-S01">.*?</tr>', ftx_page).group(0)


def test_assertions_table_has_every_match_and_miss(ftx_page: str, ftx_summary) -> None:
    table = re.search(r'<table id="assertions">.*?</table>', ftx_page, re.S).group(0)
    assert table.count("<tr class=") == len(ftx_summary.assertions)
    misses = [a for a in ftx_summary.assertions if not a["ok"]]
    assert table.count('<tr class="miss">') == len(misses) == 1
    assert "3,728,200,000" in table  # the gap on the leaked June 2022 balance sheet, exact


def test_downsampling_keeps_every_breach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_collect, "MAX_POINTS", 20)
    monkeypatch.setattr(_collect, "BUCKETS", 10)
    monkeypatch.setattr(_collect, "MAX_SHEET_STEPS", 15)
    timeline = replays.load_timeline("ftx-2022")
    data, summary = _collect.collect(replay(timeline), total=len(timeline.events))
    kept = set(data["kept_seqs"])
    assert not data["every_step"] and len(data["sheet_steps"]) < len(timeline.events)
    assert len(kept) < len(timeline.events)
    assert {m["seq"] for m in data["markers"]} == {v["seq"] for v in data["violations"]}
    for v in data["violations"]:
        assert v["seq"] in kept, v
        if v["closed_seq"] is not None:
            assert v["closed_seq"] in kept, v
    for a in summary.assertions:
        assert a["seq"] in kept
    assert len(data["violations"]) == sum(summary.breach_counts.values())
    # The lowest reserve ratio of the whole history survives the cut.
    ratios = [Decimal(s.metrics["reserve_ratio"]) for s in replay(timeline) if "reserve_ratio" in s.metrics]
    assert min(Decimal(r["ratio"]) for r in data["series"] if r["ratio"]) == min(ratios)


def test_every_bundled_timeline_renders() -> None:
    for timeline in replays.bundled():
        page = build_report(timeline, policy=Policy(quote=timeline.quote), title=timeline.name)
        data = page_data(page)
        assert data["specs"]["timeline"] and data["specs"]["bands"]


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_timeline_then_stored_log(tmp_path: Path) -> None:
    db, out = str(tmp_path / "l.db"), tmp_path / "r.html"
    result = run_cli("report", "ftx-2022", "--db", db, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "report: replaying 190 events" in result.stderr and "report: wrote" in result.stderr
    page = out.read_text(encoding="utf-8")
    with Log.open(db, readonly=True) as log:
        assert log.ledger_id in page and log.head().hash_hex in page
    assert "verified" in page
    # The stored log alone: its citation keys resolved from the bundled timeline it matches.
    out2 = tmp_path / "r2.html"
    result = run_cli("report", "--db", db, "-o", str(out2))
    assert result.exit_code == 0, result.output
    stored = out2.read_text(encoding="utf-8")
    assert "resolved from the bundled timeline ftx-2022" in stored
    assert "not resolved" not in stored
    assert page_data(stored)["breaches"] == page_data(page)["breaches"]


def test_cli_stored_log_without_a_matching_timeline(tmp_path: Path) -> None:
    from ledger.synthetic import workload

    db = str(tmp_path / "w.db")
    with Log.open(db, create=True) as log:
        log.append(list(workload(300, accounts=20)))
    out = tmp_path / "w.html"
    assert run_cli("report", "--db", db, "-o", str(out)).exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert "no bundled timeline matches" in page
    assert '<tr id="source-W"><td><b>W</b></td><td><span class="bad">not resolved</span>' in page
    # --sources names the timeline to resolve keys from (here one that lacks W: still unresolved).
    assert run_cli("report", "--db", db, "--sources", "ftx-2022", "-o", str(out)).exit_code == 0
    assert "given with --sources" in out.read_text(encoding="utf-8")


def test_cli_refuses_a_log_that_does_not_verify(tmp_path: Path) -> None:
    from test_tamper import Tamper

    db, out = str(tmp_path / "l.db"), tmp_path / "r.html"
    assert run_cli("report", "ftx-2022", "--db", db, "-o", str(out)).exit_code == 0
    out.unlink()
    with Tamper(Path(db)) as t:  # one stored payload edited behind the log's back
        payload = t.conn.execute("SELECT payload FROM events WHERE seq = 100").fetchone()[0]
        t.set(100, "payload", payload.replace("2022", "2021", 1))
    result = CliRunner().invoke(cli, ["report", "--db", db, "-o", str(out)])
    assert result.exit_code == 3, result.output
    assert "verification failed" in result.stderr
    assert not out.exists()


def test_cli_output_folder_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "small-example", "--no-record", "-o", str(tmp_path / "no" / "r.html")])
    assert result.exit_code == 4, result.output
    assert "cannot write" in result.stderr


def test_a_long_balance_sheet_keeps_its_largest_lines_and_the_exact_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.synthetic import workload

    monkeypatch.setattr(_collect, "MAX_SHEET_LINES", 5)
    history = list(workload(400, accounts=40))
    books = books_at(history)
    sheets = _collect._balance_sheets(books)
    for entity, shown in sheets.items():
        expected = books.balance_sheet(entity)
        assert Decimal(shown["total_assets"]) == expected["total_assets"]
        assert Decimal(shown["equity"]) == expected["equity"]
        for side in ("assets", "liabilities"):
            lines = expected[side]
            if len(lines) <= 5:
                assert {k: Decimal(v) for k, v in shown[side]} == lines
                continue
            *largest, (label, rest) = shown[side]
            assert label == f"{len(lines) - 4:,} other lines"
            assert len(largest) == 4 and all(Decimal(v) == lines[k] for k, v in largest)
            assert min(Decimal(v) for _, v in largest) >= max(v for k, v in lines.items() if k not in dict(largest))
            # The rest is its lines' exact sum, rounded once (each line alone is rounded too: the
            # two differ by at most half a cent a line).
            others = [v for k, v in lines.items() if k not in dict(largest)]
            assert abs(Decimal(rest) - sum(others, Decimal(0))) <= Decimal("0.005") * len(others)
    assert any(len(books.balance_sheet(e)["liabilities"]) > 5 for e in sheets)  # the cap was used


def test_a_bank_is_drawn_by_its_deposits_equity_and_liquidity() -> None:
    """The bank's page: depositors owed, liquid assets and equity at market and at book (the
    gap that amortized cost hid), the liquidity coverage against its rule; no custody line."""
    page = build_report("first-republic-2023")
    data = page_data(page)
    timeline = data["specs"]["timeline"]
    money, ratio = timeline["vconcat"][0], timeline["vconcat"][1]
    assert money["title"]["text"].startswith("Depositors owed, liquid assets and equity")
    fold = money["layer"][0]["transform"][0]["fold"]
    assert fold == ["owed", "liquid", "equity", "equity_book"]
    assert ratio["title"]["text"].startswith("Liquidity coverage")
    assert ratio["layer"][1]["data"]["values"] == [{"threshold": "1"}]
    rows = [r for r in money["layer"][0]["data"]["values"] if r["venue"] == "frb"]
    assert rows and all("custody" not in r for r in rows)
    # At the 2022 year-end mark of the loans (seq 57, a breach: always kept), equity at market
    # is below zero while at book it is not.
    books = books_at("first-republic-2023", seq=57)
    (at_mark,) = [r for r in rows if r["seq"] == 57]
    assert Decimal(at_mark["equity"]) == books.round_value(books.equity("frb")) < 0
    assert Decimal(at_mark["equity_book"]) == books.round_value(books.equity_book("frb")) > 0
    assert "equity at book" in page and "owes depositors" in page and "held in custody" not in page
