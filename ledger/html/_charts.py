"""The report's charts as Vega-Lite specifications: plain data, checked directly by the tests.

Every figure in the data is a decimal string; each spec's ``format.parse`` turns it into a
number in the browser only to place the marks (tooltips show the strings).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # an identifier; never fetched

MEASURES = {
    "owed": "owed to customers",
    "custody": "held in custody",
    "liquid": "liquid reserves (after haircuts)",
}
COLOURS = {"owed": "#c0392b", "custody": "#2471a3", "liquid": "#27ae60"}
#: A bank's or a lender's lines: it is drawn by its deposits and its equity, not by custody.
DEPOSIT_MEASURES = {
    "owed": "owed to depositors",
    "liquid": "liquid assets (after haircuts)",
    "equity": "equity at market value",
    "equity_book": "equity at book value",
}
DEPOSIT_COLOURS = {"owed": "#c0392b", "liquid": "#27ae60", "equity": "#2471a3", "equity_book": "#85929e"}


def deposit_mode(data: dict[str, Any]) -> bool:
    """Whether the venues drawn are deposit-takers (banks, lenders): no row has custody."""
    return bool(data["series"]) and all("custody" not in row for row in data["series"])
STATE_COLOURS = {"held": "#a9dfbf", "broken": "#e74c3c"}

_X: dict[str, Any] = {
    "field": "at",
    "type": "temporal",
    "scale": {"type": "utc"},
    "title": None,
    "axis": {"labelOverlap": True},
}


def _epoch_ms(at: str) -> int:
    """'2019-12-31T00:00:00Z' -> milliseconds since 1970 (the axis domain; whole ms, exact)."""
    when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return int((when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


def time_domain(data: dict[str, Any]) -> list[int]:
    """From the first drawn point (a venue's figures, a price, a breach) to the last event."""
    firsts = [rows[0]["at"] for rows in (data["series"], data["prices"], data["markers"]) if rows]
    lasts = [rows[-1]["at"] for rows in (data["series"], data["prices"]) if rows]
    if not firsts:
        return []
    return [_epoch_ms(min(firsts)), _epoch_ms(max(lasts or firsts))]


def _values(
    rows: list[dict[str, Any]], numbers: tuple[str, ...], dates: tuple[str, ...] = ("at",)
) -> dict[str, Any]:
    parse = {name: "number" for name in numbers}
    for name in dates:
        parse[name] = "date"
    return {"values": rows, "format": {"parse": parse}}


def _label_expr(measures: dict[str, str] = MEASURES) -> str:
    keys = list(measures)
    expr = json.dumps(measures[keys[-1]])
    for key in reversed(keys[:-1]):
        expr = f"datum.measure === {json.dumps(key)} ? {json.dumps(measures[key])} : ({expr})"
    return expr


def timeline_spec(
    data: dict[str, Any], *, quote: str, min_reserve_ratio: str, min_liquidity_coverage: str = "1"
) -> dict[str, Any]:
    """Money per venue (owed, custody, liquid reserves), the reserve ratio and the asset prices,
    one above the other on a shared time axis; every event that opened a breach is a red rule
    on each, with its id, detail and sources on hover (a click scrolls to its row).

    For deposit-takers (:func:`deposit_mode`) the money is what depositors are owed, liquid
    assets and equity at market and at book, and the ratio is the liquidity coverage."""
    series = data["series"]
    deposits = deposit_mode(data)
    measures = DEPOSIT_MEASURES if deposits else MEASURES
    colours = DEPOSIT_COLOURS if deposits else COLOURS
    money_title = (
        f"Depositors owed, liquid assets and equity at market and at book ({quote})"
        if deposits
        else f"Customers owed against what was there ({quote})"
    )
    ratio_title = (
        f"Liquidity coverage: liquid assets / deposits expected to run (rule at {min_liquidity_coverage})"
        if deposits
        else f"Reserve ratio: liquid reserves / customers owed (rule at {min_reserve_ratio})"
    )
    threshold = min_liquidity_coverage if deposits else min_reserve_ratio
    markers = _values(data["markers"], ())
    brush = {"name": "span", "select": {"type": "interval", "encodings": ["x"]}}
    domain = time_domain(data)
    full_scale: dict[str, Any] = {"type": "utc", **({"domain": domain} if domain else {})}
    x_full = {**_X, "scale": full_scale}
    # Zoomed by the brush on the prices chart; the whole history when nothing is brushed.
    x_zoom = {**_X, "scale": {**full_scale, "domainRaw": {"expr": "span.at || null"}}}
    marker_layer = {
        "data": markers,
        "mark": {"type": "rule", "color": "#e74c3c", "strokeWidth": 1.2, "opacity": 0.55},
        "encoding": {
            "x": x_zoom,
            "tooltip": [
                {"field": "event_id", "title": "breach opened by"},
                {"field": "at", "type": "nominal", "title": "at (UTC)"},
                {"field": "seq", "type": "nominal"},
                {"field": "invariants"},
                {"field": "detail"},
                {"field": "source", "title": "sources"},
            ],
        },
    }
    tick_layer = {
        "data": markers,
        "mark": {
            "type": "point",
            "shape": "triangle-up",
            "color": "#c0392b",
            "filled": True,
            "size": 60,
            "yOffset": 0,
        },
        "encoding": {
            "x": x_zoom,
            "y": {"value": 0},
            "tooltip": marker_layer["encoding"]["tooltip"],
        },
    }
    money = {
        "height": 230,
        "title": {
            "text": money_title,
            "anchor": "start",
            "fontSize": 13,
        },
        "layer": [
            {
                "data": _values(series, tuple(measures)),
                "transform": [
                    {"fold": list(measures), "as": ["measure", "value"]},
                    {"calculate": _label_expr(measures), "as": "what"},
                ],
                "mark": {"type": "line", "interpolate": "step-after", "clip": True},
                "encoding": {
                    "x": x_zoom,
                    "y": {
                        "field": "value",
                        "type": "quantitative",
                        "title": quote,
                        "axis": {"format": "~s"},
                    },
                    "color": {
                        "field": "what",
                        "type": "nominal",
                        "title": None,
                        "scale": {
                            "domain": list(measures.values()),
                            "range": list(colours.values()),
                        },
                        "legend": {"orient": "top-left", "labelLimit": 280},
                    },
                    "strokeDash": {
                        "field": "venue",
                        "type": "nominal",
                        "title": "venue",
                        "legend": {"orient": "top-right"},
                    },
                    "tooltip": [
                        {"field": "at", "type": "nominal", "title": "at (UTC)"},
                        {"field": "event_id", "title": "event"},
                        {"field": "venue"},
                        {"field": "what"},
                        {"field": "value", "type": "quantitative", "format": ",.2f"},
                    ],
                },
            },
            marker_layer,
            tick_layer,
        ],
    }
    ratio = {
        "height": 110,
        "title": {
            "text": ratio_title,
            "anchor": "start",
            "fontSize": 13,
        },
        "layer": [
            {
                "data": _values([r for r in series if r.get("ratio") is not None], ("ratio",)),
                "mark": {
                    "type": "line",
                    "interpolate": "step-after",
                    "color": "#7d3c98",
                    "clip": True,
                },
                "encoding": {
                    "x": x_zoom,
                    "y": {"field": "ratio", "type": "quantitative", "title": "ratio"},
                    "detail": {"field": "venue"},
                    "tooltip": [
                        {"field": "at", "type": "nominal", "title": "at (UTC)"},
                        {"field": "venue"},
                        {"field": "event_id", "title": "event"},
                        {"field": "ratio", "type": "nominal"},
                    ],
                },
            },
            {
                "data": {
                    "values": [{"threshold": threshold}],
                    "format": {"parse": {"threshold": "number"}},
                },
                "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#555"},
                "encoding": {"y": {"field": "threshold", "type": "quantitative"}},
            },
            marker_layer,
        ],
    }
    prices = {
        "height": 110,
        "title": {
            "text": f"Asset prices ({quote}, log scale); drag here to zoom every chart, double-click to reset",
            "anchor": "start",
            "fontSize": 13,
        },
        "layer": [
            {
                "data": _values(data["prices"], ("price",)),
                "params": [brush],
                "mark": {"type": "line", "interpolate": "step-after"},
                "encoding": {
                    "x": x_full,
                    "y": {
                        "field": "price",
                        "type": "quantitative",
                        "scale": {"type": "log"},
                        "title": quote,
                    },
                    "color": {
                        "field": "asset",
                        "type": "nominal",
                        "title": "asset",
                        "legend": {"orient": "top-left"},
                    },
                    "tooltip": [
                        {"field": "at", "type": "nominal", "title": "at (UTC)"},
                        {"field": "asset"},
                        {"field": "price", "type": "nominal"},
                    ],
                },
            },
            marker_layer | {"encoding": {**marker_layer["encoding"], "x": x_full}},
        ],
    }
    return {
        "$schema": SCHEMA,
        "vconcat": [money, ratio, prices],
        "spacing": 14,
        # Each chart its own colours and legend (a shared colour scale would hide the prices).
        "resolve": {
            "scale": {"color": "independent", "strokeDash": "independent"},
            "legend": {"color": "independent", "strokeDash": "independent"},
        },
        "config": _CONFIG,
    }


def bands_spec(data: dict[str, Any]) -> dict[str, Any]:
    """Per invariant and subject, when it held (green) and when it was broken (red)."""
    rows = sorted({b["row"] for b in data["bands"]}, key=[b["row"] for b in data["bands"]].index)
    return {
        "$schema": SCHEMA,
        "width": "container",
        "height": {"step": 18},
        "data": _values(data["bands"], (), ("start", "end")),
        "mark": {"type": "bar", "height": {"band": 0.8}},
        "encoding": {
            "y": {
                "field": "row",
                "type": "nominal",
                "sort": rows,
                "title": None,
                "axis": {"labelLimit": 360},
            },
            "x": {
                "field": "start",
                "type": "temporal",
                "scale": {"type": "utc"},
                "title": None,
                "axis": {"orient": "top", "labelOverlap": True},
            },
            "x2": {"field": "end"},
            "color": {
                "field": "state",
                "type": "nominal",
                "title": None,
                "scale": {"domain": list(STATE_COLOURS), "range": list(STATE_COLOURS.values())},
                "legend": {"orient": "bottom"},
            },
            "tooltip": [
                {"field": "invariant"},
                {"field": "subject"},
                {"field": "state"},
                {"field": "start_seq", "title": "from seq"},
                {"field": "end_seq", "title": "to seq"},
            ],
        },
        "config": _CONFIG,
    }


def loans_spec(data: dict[str, Any], *, min_coverage: str) -> dict[str, Any]:
    """Collateral coverage (haircut collateral / debt) of each loan drawn, with the rule."""
    return {
        "$schema": SCHEMA,
        "width": "container",
        "height": 220,
        "layer": [
            {
                "data": _values(data["loans"], ("coverage",)),
                "mark": {
                    "type": "line",
                    "interpolate": "step-after",
                    "point": {"size": 18},
                    "clip": True,
                },
                "encoding": {
                    "x": _X,
                    "y": {
                        "field": "coverage",
                        "type": "quantitative",
                        "title": "coverage",
                        "scale": {"domain": [0, 3], "clamp": True},
                    },
                    "color": {
                        "field": "loan",
                        "type": "nominal",
                        "title": "loan or secured account",
                    },
                    "tooltip": [
                        {"field": "loan"},
                        {"field": "at", "type": "nominal", "title": "at (UTC)"},
                        {"field": "coverage", "type": "nominal"},
                        {
                            "field": "collateral",
                            "type": "nominal",
                            "title": "collateral after haircuts",
                        },
                        {"field": "debt", "type": "nominal"},
                    ],
                },
            },
            {
                "data": {
                    "values": [{"threshold": min_coverage}],
                    "format": {"parse": {"threshold": "number"}},
                },
                "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#555"},
                "encoding": {"y": {"field": "threshold", "type": "quantitative"}},
            },
        ],
        "config": _CONFIG,
    }


_CONFIG = {
    "font": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 11, "gridColor": "#eee"},
    "legend": {"labelFontSize": 11, "symbolSize": 80},
}
