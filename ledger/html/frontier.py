"""A stress grid's frontier as a self-contained HTML page (``bankrun stress --grid ... --html``).

The chart is a Vega-Lite spec (:func:`frontier_spec`, plain data): every cell of the grid, held
or broken, and the frontier (per size of the first shock, the smallest size of the second that
breaks) as a line. Figures are exact decimal strings in the data; the page inlines the same
charting library, CSS and security policy as the replay report (``bankrun report``).
"""

from __future__ import annotations

import html
import json
from typing import Any

from ledger.html import _assets

# A cell the frontier search inferred from monotonicity (not replayed) is drawn paler than
# one that was replayed.
STATE_COLOURS = {
    "held": "#a9dfbf",
    "broken": "#e74c3c",
    "held (inferred)": "#dff3e6",
    "broken (inferred)": "#f5b7b1",
}

_SCRIPT = """
(function () {
  var R = JSON.parse(document.getElementById("frontier-data").textContent);
  var el = document.getElementById("chart-frontier");
  vegaEmbed(el, R.spec, { actions: false, renderer: "svg", tooltip: { theme: "light" } }).then(function (result) {
    el.dataset.rendered = "1"; window.REPORT_VIEWS = [result.view]; document.body.dataset.ready = "1";
  }).catch(function (error) { console.error("chart failed: " + error); document.body.dataset.ready = "error"; });
})();
"""


def frontier_spec(grid: dict[str, Any], *, schema_major: str = "6") -> dict[str, Any]:
    """The Vega-Lite spec of a grid (``GridResult.to_dict()``): cells as rectangles coloured
    held/broken (paler where inferred, not replayed), the frontier as a line with points."""
    cells = [
        {
            "x": c["x"],
            "y": c["y"],
            "state": ("broken" if c["broke"] else "held")
            + ("" if c.get("run", True) else " (inferred)"),
            "event": (c["breach"] or {}).get("event_id", ""),
            "at": (c["breach"] or {}).get("at", ""),
        }
        for c in grid["cells"]
    ]
    states = [state for state in STATE_COLOURS if any(c["state"] == state for c in cells)]
    frontier = [{"x": f["x"], "y": f["y"]} for f in grid["frontier"] if f["y"] is not None]
    x_title, y_title = f"{grid['x']}: {grid['units'][0]}", f"{grid['y']}: {grid['units'][1]}"
    parse = {"format": {"parse": {"x": "number", "y": "number"}}}
    return {
        "$schema": f"https://vega.github.io/schema/vega-lite/v{schema_major}.json",
        "width": "container",
        "height": 420,
        "title": "Where it breaks: "
        + ", ".join(grid["invariants"])
        + (f" ({grid['subject']})" if grid.get("subject") else ""),
        "layer": [
            {
                "data": {"values": cells, **parse},
                "mark": {"type": "rect", "tooltip": True},
                "encoding": {
                    "x": {"field": "x", "type": "ordinal", "title": x_title, "sort": None},
                    "y": {"field": "y", "type": "ordinal", "title": y_title, "sort": "descending"},
                    "color": {
                        "field": "state",
                        "type": "nominal",
                        "title": None,
                        "scale": {
                            "domain": states,
                            "range": [STATE_COLOURS[state] for state in states],
                        },
                    },
                    "tooltip": [
                        {"field": "x", "title": grid["x"]},
                        {"field": "y", "title": grid["y"]},
                        {"field": "state"},
                        {"field": "event", "title": "breaks at"},
                        {"field": "at"},
                    ],
                },
            },
            {
                "data": {"values": frontier, **parse},
                "mark": {
                    "type": "line",
                    "point": True,
                    "color": "#17202a",
                    "interpolate": "step-after",
                },
                "encoding": {
                    "x": {"field": "x", "type": "ordinal", "sort": None},
                    "y": {"field": "y", "type": "ordinal", "sort": "descending"},
                },
            },
        ],
    }


def frontier_page(result: Any, *, title: str = "Stress grid") -> str:
    """The page of a :class:`~ledger.scenarios.GridResult` (or its ``to_dict()``) as text."""
    grid = result if isinstance(result, dict) else result.to_dict()
    major = _assets.vegalite_version().split(".")[0]
    spec = frontier_spec(grid, schema_major=major)
    e = lambda text: html.escape(str(text), quote=True)  # noqa: E731
    rows = []
    for f in grid["frontier"]:
        rows.append(
            f'<tr><td class="num">{e(f["x"])}</td><td class="num">{e(f["y"] if f["y"] is not None else "holds throughout")}</td>'
            f"<td>{'' if f['monotone'] else 'not monotone'}</td></tr>"
        )
    data = json.dumps({"spec": spec}, ensure_ascii=False, separators=(",", ":")).replace(
        "</", "<\\/"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}: stress frontier</title>",
        f"<style>{_assets.CSS}</style>",
        "</head><body>",
        f'<header><h1>{e(title)}</h1><div class="sub">from <b>{e(grid["at"])}</b>'
        + (f" to <b>{e(grid['until'])}</b>" if grid.get("until") else "")
        + f"; {len(grid['xs'])} x {len(grid['ys'])} cells, {e(_runs(grid))}</div></header>",
        "<main>",
        '<section id="frontier"><h2>Frontier</h2>',
        f'<p class="lead">Each cell is a replay from the fork with both shocks; red: {e(", ".join(grid["invariants"]))} broke. '
        "Paler cells were not replayed: the frontier search inferred them from the replayed ones, on the assumption "
        "that a larger shock never mends a breach (checked on every replayed cell). "
        "The line is the frontier: per size of the first shock, the smallest size of the second that breaks.</p>",
        '<div class="panel"><div id="chart-frontier" class="chart"></div></div>',
        f'<table id="frontier-table"><thead><tr><th class="num">{e(grid["x"])}</th><th class="num">smallest {e(grid["y"])} that breaks</th><th></th></tr></thead>',
        "<tbody>" + "".join(rows) + "</tbody></table>",
        "</section>",
        f"<footer>Charts: {e(_assets.library_versions())}. Made by <code>bankrun stress --grid</code>.</footer>",
        "</main>",
        f'<script type="application/json" id="frontier-data">{data}</script>',
        f"<script>{_assets.vega_bundle()}</script>",
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _runs(grid: dict[str, Any]) -> str:
    """How the cells were found: all replayed, or searched (how many replayed)."""
    cells = grid["cells"]
    ran = sum(1 for c in cells if c.get("run", True))
    if ran == len(cells):
        return "every cell replayed" + ("; NOT MONOTONE" if grid.get("contradiction") else "")
    return f"{ran} replayed, {len(cells) - ran} inferred from monotonicity"
