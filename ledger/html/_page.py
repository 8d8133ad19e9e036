"""The HTML page: one file, everything inlined (the charting library, CSS, script, data).

Tables are written here, server side, with the exact decimal strings; the charts are Vega-Lite
specs (``_charts``) drawn in the browser from the same data.
"""

from __future__ import annotations

import html
import json
from decimal import Decimal
from typing import Any

from ledger import report as text_report
from ledger.html import _assets, _charts
from ledger.html._collect import MAX_BREACH_ROWS, RULE


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _grouped(text: str | None) -> str:
    """Exact decimal text with thousands separators (display; the digits are unchanged)."""
    if text is None or text == "":
        return ""
    number, _, rest = str(text).partition(" ")
    try:
        value = Decimal(number)
    except ArithmeticError:
        return str(text)
    return f"{value:,f}" + (f" {rest}" if rest else "")


def _short(text: str | None) -> str:
    """8910000000 -> 8.91B (a KPI headline; the exact figure is in its title)."""
    if text is None or text == "":
        return "n/a"
    value = Decimal(text)
    for size, unit in (
        (Decimal(10) ** 12, "T"),
        (Decimal(10) ** 9, "B"),
        (Decimal(10) ** 6, "M"),
        (Decimal(10) ** 3, "k"),
    ):
        if abs(value) >= size:
            return f"{value / size:,.2f}{unit}"
    return f"{value:,f}"


def _when(at: str | None) -> str:
    return "" if not at else at[:16].replace("T", " ")


def _json_script(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def specs(data: dict[str, Any], meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The page's Vega-Lite specs by name (``timeline``, ``bands``, ``loans``)."""
    policy = meta["policy"]
    out = {
        "timeline": _charts.timeline_spec(
            data,
            quote=meta["quote"],
            min_reserve_ratio=policy["min_reserve_ratio"],
            min_liquidity_coverage=policy.get("min_liquidity_coverage", "1"),
        ),
        "bands": _charts.bands_spec(data),
    }
    if data["loans"]:
        out["loans"] = _charts.loans_spec(data, min_coverage=policy["min_collateral_coverage"])
    from ledger.html.frontier import frontier_spec

    for number, grid in enumerate(meta.get("frontiers", [])):
        out[f"frontier{number}"] = frontier_spec(grid)
    major = meta.get("vegalite_version", "6").split(".")[0]
    for spec in out.values():
        spec["$schema"] = f"https://vega.github.io/schema/vega-lite/v{major}.json"
    return out


def render(data: dict[str, Any], summary: Any, meta: dict[str, Any]) -> str:
    """The whole page as text. ``meta``: title, quote, policy, log, sources, sources_note."""
    chart_specs = specs(data, meta)
    first_sheet_entity = _default_entity(data, summary)
    payload = {
        "quote": meta["quote"],
        "specs": chart_specs,
        "sheets": {"steps": data["sheet_steps"], "pool": data["sheet_pool"]},
        "breaches": data["markers"],
    }
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may leave the page: no network request of any kind (checked by a browser test).
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(meta['title'])}: replay report</title>",
        f"<style>{_assets.CSS}</style>",
        "</head><body>",
        _header(data, summary, meta),
        _nav(bool(data["loans"])),
        "<main>",
        _kpis(data, summary, meta),
        '<section class="story" id="story">',
        '<div class="panel"><div id="chart-timeline" class="chart"></div></div>',
        _firsts(summary, data),
        "</section>",
        _bands_section(data),
        _loans_section(data, meta) if data["loans"] else "",
        _sheet_section(data, first_sheet_entity),
        _assertions_section(summary, meta),
        _breaches_section(data),
        _frontiers_section(meta),
        _sources_section(data, meta),
        _summary_section(summary, meta),
        f"<footer>{_e(RULE)} Kept {data['kept_steps']:,} of {summary.events:,} steps for the charts. "
        f"Charts: {_e(meta.get('libraries', ''))}. Made by <code>bankrun report</code>.</footer>",
        "</main>",
        f'<script type="application/json" id="report-data">{_json_script(payload)}</script>',
        f"<script>{_assets.vega_bundle()}</script>",
        f"<script>{_assets.SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _frontiers_section(meta: dict[str, Any]) -> str:
    """Stress grids (``bankrun stress --grid``): each frontier's chart and table."""
    grids = meta.get("frontiers", [])
    if not grids:
        return ""
    parts = ['<section id="frontiers"><h2>Stress frontiers</h2>',
             '<p class="lead">Each cell is the history forked with both shocks (red: broke). Replayed cells are '
             "drawn full; paler cells were inferred from their replayed neighbours, since a larger shock "
             "never mends a breach (<code>--full</code> replays every cell). The line is the frontier: "
             "per size of the first shock, the smallest size of the second that breaks "
             "(<code>bankrun stress --grid</code>, docs/scenarios.md).</p>"]
    for number, grid in enumerate(grids):
        window = f"from {_e(grid['at'])}" + (f" to {_e(grid['until'])}" if grid.get("until") else "")
        parts.append(f"<h3>{_e(grid['x'])} x {_e(grid['y'])}, {window}</h3>")
        parts.append(f'<div class="panel"><div id="chart-frontier{number}" class="chart"></div></div>')
        rows = "".join(
            f'<tr><td class="num">{_e(f["x"])}</td><td class="num">{_e(f["y"] if f["y"] is not None else "holds throughout")}</td>'
            f"<td>{'' if f['monotone'] else 'not monotone'}</td></tr>"
            for f in grid["frontier"]
        )
        parts.append(
            f'<table class="frontier"><thead><tr><th class="num">{_e(grid["x"])}</th>'
            f'<th class="num">smallest {_e(grid["y"])} that breaks</th><th></th></tr></thead><tbody>{rows}</tbody></table>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def _default_entity(data: dict[str, Any], summary: Any) -> str:
    venue = summary.final_metrics.get("venue")
    if venue:
        return venue
    last = data["sheet_steps"][-1]["sheets"] if data["sheet_steps"] else {}
    return sorted(last)[0] if last else ""


def _header(data: dict[str, Any], summary: Any, meta: dict[str, Any]) -> str:
    log = meta["log"]
    if log is None:
        integrity = "replayed in memory, not recorded in a log"
    else:
        state = {True: "verified", False: "NOT verified", None: "not verified (--no-verify)"}[
            log["verified"]
        ]
        integrity = (
            f"log <b>{_e(log['ledger_id'])}</b>, head seq {log['head_seq']:,}, "
            f"head <b>{_e(log['head_hash'][:16])}…</b>, {state}"
        )
    span = (
        f"{_when(data['first_at'])} to {_when(summary.last_at)} UTC"
        if data["first_at"]
        else "no events"
    )
    return (
        f"<header><h1>{_e(meta['title'])}</h1>"
        f'<div class="sub">{summary.events:,} events, {span} · values in {_e(meta["quote"])} · {integrity}</div></header>'
    )


def _nav(loans: bool) -> str:
    links = [
        ("story", "Story"),
        ("invariants", "Invariants"),
        ("loans", "Loans"),
        ("sheets", "Balance sheets"),
        ("record", "Record vs books"),
        ("breaches", "Breaches"),
        ("sources", "Sources"),
        ("summary", "Summary"),
    ]
    return (
        "<nav>"
        + "".join(f'<a href="#{k}">{v}</a>' for k, v in links if loans or k != "loans")
        + "</nav>"
    )


def _kpi(label: str, value: str, note: str = "", *, cls: str = "", title: str = "") -> str:
    return (
        f'<div class="kpi"><div class="label">{_e(label)}</div>'
        f'<div class="value {cls}" title="{_e(title)}">{_e(value)}</div><div class="note">{_e(note)}</div></div>'
    )


def _kpis(data: dict[str, Any], summary: Any, meta: dict[str, Any]) -> str:
    m = summary.final_metrics
    quote = meta["quote"]
    venue = m.get("venue", "")
    broke = summary.broke()
    misses = [a for a in summary.assertions if not a["ok"]]
    ratio = m.get("reserve_ratio")
    threshold = meta["policy"]["min_reserve_ratio"]
    low = ratio is not None and Decimal(ratio) < Decimal(threshold)
    tail = [
        _kpi(
            "invariants broken",
            f"{len(broke)} of {len(summary.invariants)}",
            f"{sum(summary.breach_counts.values()):,} breaches opened",
            cls="bad" if broke else "good",
        ),
        _kpi(
            "record vs books",
            f"{len(misses)} of {len(summary.assertions)} off" if summary.assertions else "none",
            "balance assertions that miss",
            cls="bad" if misses else "good",
        ),
    ]
    if m.get("family") in ("bank", "lender", "protocol"):
        # A deposit-taker's tiles: depositors, equity at market and at book, liquidity.
        coverage = m.get("liquidity_coverage")
        minimum = meta["policy"].get("min_liquidity_coverage", "1")
        cards = [
            _kpi(
                f"{venue} owes depositors",
                _short(m.get("customer_liabilities")),
                f"{quote}, {_short(m.get('insured'))} insured",
                title=_grouped(m.get("customer_liabilities")),
            ),
            _kpi(
                "equity at market",
                _short(m.get("equity")),
                f"{quote}, assets at fair value",
                cls="bad" if Decimal(m.get("equity", "0")) < 0 else "good",
                title=_grouped(m.get("equity")),
            ),
            _kpi(
                "equity at book",
                _short(m.get("equity_book")),
                f"{quote}, as the balance sheet carried it",
                cls="bad" if Decimal(m.get("equity_book", "0")) < 0 else "good",
                title=_grouped(m.get("equity_book")),
            ),
            _kpi(
                "liquidity coverage",
                coverage or "n/a",
                f"rule: at least {minimum}",
                cls="bad" if coverage is not None and Decimal(coverage) < Decimal(minimum) else "good",
            ),
            *tail,
        ]
        return '<section class="kpis">' + "".join(cards) + "</section>"
    cards = [
        _kpi(
            f"{venue} owes customers" if venue else "customers owed",
            _short(m.get("customer_liabilities")),
            f"{quote}, at the end",
            title=_grouped(m.get("customer_liabilities")),
        ),
        _kpi(
            "held in custody",
            _short(m.get("custody")),
            f"{quote}, segregated for them",
            title=_grouped(m.get("custody")),
        ),
        _kpi(
            "shortfall",
            _short(m.get("shortfall")),
            f"{quote} missing",
            cls="bad" if m.get("shortfall") not in (None, "0") else "good",
            title=_grouped(m.get("shortfall")),
        ),
        _kpi(
            "reserve ratio",
            ratio or "n/a",
            f"rule: at least {threshold}",
            cls="bad" if low else "good",
        ),
        *tail,
    ]
    return '<section class="kpis">' + "".join(cards) + "</section>"


def _firsts(summary: Any, data: dict[str, Any]) -> str:
    items = []
    for inv in summary.invariants:
        name = inv["name"]
        first = summary.first_breaches.get(name)
        if first is None:
            items.append(
                f'<li><span class="name good">{_e(name)}</span> <span class="when">held throughout</span></li>'
            )
            continue
        items.append(
            f'<li><span class="name bad">{_e(name)}</span> <span class="when">first broke '
            f'<a href="#breach-{first.seq}">{_e(_when(first.at))}</a>, seq {first.seq}, '
            f"{summary.breach_counts[name]:,}×</span><br>{_e(first.detail)} "
            f'<span class="when">[{_e(", ".join(first.source))}]</span></li>'
        )
    return (
        '<aside class="panel"><h3>What broke, and when</h3>'
        f'<ul class="firsts" id="first-breaches">{"".join(items)}</ul></aside>'
    )


def _bands_section(data: dict[str, Any]) -> str:
    return (
        '<h2 id="invariants">Invariants: when each held and when it broke</h2>'
        '<p class="lead">One row per invariant and subject that ever broke (red while broken); an invariant '
        "that never broke is one green row. Hover a band for its seq range.</p>"
        '<div class="panel"><div id="chart-bands" class="chart"></div></div>'
    )


def _loans_section(data: dict[str, Any], meta: dict[str, Any]) -> str:
    drawn, total = len(data["loans_drawn"]), data["loans_total"]
    note = (
        ""
        if drawn == total
        else (
            f" {drawn} of {total} loans are drawn: every loan whose coverage broke, then the largest by debt."
        )
    )
    rows = []
    for row in meta["loans_final"]:
        collateral = ", ".join(f"{_grouped(str(v))} {k}" for k, v in row["collateral"].items())
        rows.append(
            f"<tr><td>{_e(row['target'])}</td><td>{_e(row['lender'])}</td><td>{_e(row['borrower'])}</td>"
            f'<td class="num">{_e(_grouped(str(row["debt_value"])))}</td><td>{_e(collateral)}</td>'
            f'<td class="num">{_e(_grouped(str(row["collateral_haircut_value"])))}</td>'
            f'<td class="num">{_e(row["ltv"] if row["ltv"] is not None else "")}</td>'
            f"<td>{'defaulted' if row['defaulted'] else ''}</td></tr>"
        )
    return (
        '<h2 id="loans">Loans and their collateral coverage</h2>'
        f'<p class="lead">Coverage is the collateral\'s value after haircuts over the debt; below the dashed line '
        f"({_e(meta['policy']['min_collateral_coverage'])}) the loan is under-secured. The axis stops at 3.{_e(note)}</p>"
        '<div class="panel"><div id="chart-loans" class="chart"></div></div>'
        f'<h3 style="margin-top:12px">At the end ({_e(meta["quote"])})</h3>'
        '<div class="scroll"><table id="loans-table"><thead><tr><th>loan or account</th><th>lender</th><th>borrower</th>'
        '<th class="num">debt</th><th>collateral</th><th class="num">collateral after haircuts</th>'
        f'<th class="num">loan-to-value</th><th></th></tr></thead><tbody>{"".join(rows[:500])}</tbody></table></div>'
    )


def _sheet_section(data: dict[str, Any], entity: str) -> str:
    steps = data["sheet_steps"]
    entities = sorted({e for s in steps for e in s["sheets"]})
    names = data["entities"]
    options = "".join(
        f'<option value="{_e(e)}"{" selected" if e == entity else ""}>{_e(e)}'
        f"{' (' + _e(names[e]['name']) + ')' if e in names else ''}</option>"
        for e in entities
    )
    note = (
        "every step"
        if len(steps) >= data.get("kept_steps", 0) and data["every_step"]
        else f"{len(steps):,} steps"
    )
    return (
        '<h2 id="sheets">Balance sheet per entity, at any step</h2>'
        f'<p class="lead">Assets, liabilities and equity at market value after the chosen event ({_e(note)}). '
        "Move the slider or use the arrow keys.</p>"
        '<div class="panel"><div class="controls">'
        f'<label>entity <select id="sheet-entity">{options}</select></label>'
        f'<input type="range" id="sheet-step" min="0" max="{max(0, len(steps) - 1)}" value="{max(0, len(steps) - 1)}" '
        'aria-label="step">'
        '<span id="sheet-where"></span> <b id="sheet-equity"></b></div>'
        '<div class="sheet"><table><thead><tr><th>assets</th><th class="num">value</th></tr></thead>'
        '<tbody id="sheet-assets"></tbody></table>'
        '<table><thead><tr><th>liabilities</th><th class="num">value</th></tr></thead>'
        '<tbody id="sheet-liabilities"></tbody></table></div></div>'
    )


def _assertions_section(summary: Any, meta: dict[str, Any]) -> str:
    if not summary.assertions:
        return '<h2 id="record">The record against the books</h2><p class="lead">The history asserts no balances.</p>'
    rows = []
    for a in summary.assertions:
        rows.append(
            f'<tr class="{"" if a["ok"] else "miss"}"><td>{_e(a["seq"])}</td><td>{_e(_when(a["at"]))}</td>'
            f"<td>{_e(a['event_id'])}</td><td>{_e(a['subject'])}</td>"
            f'<td class="num">{_e(_grouped(a["expected"]))}</td><td class="num">± {_e(_grouped(a["tolerance"]))}</td>'
            f'<td class="num">{_e(_grouped(a["actual"]))}</td><td class="num">{_e(_grouped(a["gap"]))}</td>'
            f"<td>{'matches' if a['ok'] else '<b class=bad>misses</b>'}</td></tr>"
        )
    return (
        '<h2 id="record">The record against the books</h2>'
        '<p class="lead">Every <code>balance_asserted</code> event: what the public record says, and what the '
        "replayed books say at that moment.</p>"
        '<div class="scroll"><table id="assertions"><thead><tr><th>seq</th><th>at (UTC)</th><th>event</th>'
        '<th>subject</th><th class="num">record</th><th class="num">tolerance</th><th class="num">books</th>'
        f'<th class="num">gap</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _breaches_section(data: dict[str, Any]) -> str:
    violations = data["violations"]
    rows = []
    anchored: set[int] = set()
    for v in violations[:MAX_BREACH_ROWS]:
        anchor = "" if v["seq"] in anchored else f' id="breach-{v["seq"]}"'
        anchored.add(v["seq"])
        closed = (
            f"seq {v['closed_seq']}, {_when(v['closed_at'])}" if v["closed_seq"] else "still open"
        )
        rows.append(
            f"<tr{anchor}><td>{v['seq']}</td><td>{_e(_when(v['at']))}</td><td>{_e(v['event_id'])}</td>"
            f"<td>{_e(v['invariant'])}</td><td>{_e(v['subject'])}</td><td>{_e(v['detail'])}</td>"
            f"<td>{_e(', '.join(v['source']))}</td><td>{_e(closed)}</td></tr>"
        )
    more = ""
    if len(violations) > MAX_BREACH_ROWS:
        more = (
            f'<p class="lead">The first {MAX_BREACH_ROWS:,} of {len(violations):,} breaches; '
            "<code>bankrun export --what violations</code> lists them all (the charts draw every one).</p>"
        )
    return (
        f'<h2 id="breaches">Every breach ({len(violations):,})</h2>'
        '<p class="lead">Each violation, from the event that opened it to the one that closed it. A red rule on '
        "the charts is one of these events: click it to come here.</p>"
        f'{more}<div class="scroll"><table id="breach-table"><thead><tr><th>seq</th><th>at (UTC)</th><th>event</th>'
        "<th>invariant</th><th>subject</th><th>detail</th><th>sources</th><th>closed</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _sources_section(data: dict[str, Any], meta: dict[str, Any]) -> str:
    sources: dict[str, str] = meta["sources"]
    cited = data["cited"]
    keys = sorted(set(cited) | set(sources))
    rows = []
    for key in keys:
        use = cited.get(key)
        text = sources.get(key)
        shown = _e(text) if text is not None else '<span class="bad">not resolved</span>'
        rows.append(
            f'<tr id="source-{_e(key)}"><td><b>{_e(key)}</b></td><td>{shown}</td>'
            f'<td class="num">{use["count"] if use else 0:,}</td><td>{use["first_seq"] if use else ""}</td></tr>'
        )
    return (
        '<h2 id="sources">Sources</h2>'
        f'<p class="lead">{_e(meta["sources_note"])}</p>'
        '<div class="scroll"><table id="sources-table"><thead><tr><th>key</th><th>citation</th>'
        f'<th class="num">events citing it</th><th>first cited at seq</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _summary_section(summary: Any, meta: dict[str, Any]) -> str:
    lines = text_report.summary_text(summary, title=meta["title"], quote=meta["quote"])
    log = meta["log"]
    facts = [
        ("events replayed", f"{summary.events:,}"),
        ("history digest (SHA-256)", summary.digest),
    ]
    if log is None:
        facts.append(("log", "none: replayed in memory (--no-record)"))
    else:
        verified = {
            True: f"yes: the hash chain and every payload checked, {log['events_checked']:,} events",
            False: "no",
            None: "not checked (--no-verify)",
        }[log["verified"]]
        facts += [
            ("log file", log["path"]),
            ("ledger_id", log["ledger_id"]),
            ("head seq", f"{log['head_seq']:,}"),
            ("head hash", log["head_hash"]),
            ("verified", verified),
        ]
    policy = meta["policy"]
    facts.append(
        (
            "policy",
            ", ".join(f"{k} {v}" for k, v in policy.items() if not isinstance(v, (dict, list))),
        )
    )
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return (
        '<h2 id="summary">The replay\'s summary</h2>'
        f'<div class="panel"><dl class="facts" id="integrity">{dl}</dl></div>'
        f'<pre id="summary-text">{_e(chr(10).join(lines).strip())}</pre>'
    )
