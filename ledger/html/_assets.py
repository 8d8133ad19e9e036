"""The page's own CSS and JavaScript (inlined; the charting library comes from vl-convert)."""

from __future__ import annotations

import functools

CSS = """
:root { --ink:#1c2833; --muted:#5d6d7e; --line:#e5e8e8; --bad:#c0392b; --good:#1e8449; --bg:#f7f9f9; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif; color:var(--ink); background:var(--bg); }
header { background:#17202a; color:#fdfefe; padding:14px 24px 12px; }
header h1 { margin:0; font-size:20px; font-weight:600; }
header .sub { color:#aeb6bf; font-size:12.5px; margin-top:3px; }
header .sub b { color:#fdfefe; font-weight:600; }
nav { position:sticky; top:0; z-index:5; background:#fdfefe; border-bottom:1px solid var(--line); padding:6px 24px; font-size:13px; }
nav a { color:var(--muted); margin-right:16px; text-decoration:none; }
nav a:hover { color:var(--ink); }
main { padding:14px 24px 40px; max-width:1500px; }
.kpis { display:grid; grid-template-columns:repeat(6,minmax(0,1fr)); gap:10px; margin-bottom:12px; }
.kpi { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
.kpi .label { color:var(--muted); font-size:11.5px; text-transform:uppercase; letter-spacing:.03em; }
.kpi .value { font-size:21px; font-weight:600; margin-top:1px; }
.kpi .note { color:var(--muted); font-size:11.5px; }
.bad { color:var(--bad); } .good { color:var(--good); }
.story { display:grid; grid-template-columns:minmax(0,1fr) 330px; gap:12px; }
.panel { background:#fff; border:1px solid var(--line); border-radius:6px; padding:10px 14px; }
.chart { width:100%; }
.firsts { list-style:none; margin:0; padding:0; font-size:12.5px; }
.firsts li { padding:5px 0; border-bottom:1px solid var(--line); }
.firsts li:last-child { border-bottom:0; }
.firsts .name { font-weight:600; }
.firsts .when { color:var(--muted); }
.firsts a { color:inherit; }
h2 { font-size:16px; margin:26px 0 8px; }
h3 { font-size:13px; margin:0 0 6px; color:var(--muted); font-weight:600; text-transform:uppercase; letter-spacing:.03em; }
p.lead { color:var(--muted); margin:0 0 8px; max-width:980px; }
table { border-collapse:collapse; background:#fff; font-size:12.5px; width:100%; }
th, td { border-bottom:1px solid var(--line); padding:4px 8px; text-align:left; vertical-align:top; }
th { background:#f2f4f4; font-weight:600; position:sticky; top:31px; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tr.miss td { background:#fdedec; }
tr.total td { font-weight:600; border-top:2px solid #ccd1d1; }
.controls { display:flex; gap:14px; align-items:center; flex-wrap:wrap; margin-bottom:8px; }
.controls input[type=range] { width:420px; }
.sheet { display:grid; grid-template-columns:1fr 1fr; gap:12px; }
pre { background:#fff; border:1px solid var(--line); padding:10px; overflow:auto; font-size:12px; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:3px 14px; margin:0; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; font-family:ui-monospace,monospace; font-size:12.5px; word-break:break-all; }
.scroll { max-height:520px; overflow:auto; border:1px solid var(--line); }
footer { color:var(--muted); font-size:12px; margin-top:30px; }
:target td { background:#fcf3cf !important; }
"""

SCRIPT = """
(function () {
  "use strict";
  var R = JSON.parse(document.getElementById("report-data").textContent);
  window.REPORT = R;
  function grouped(text) {
    if (text === null || text === undefined) return "";
    var m = /^(-?)(\\d+)(\\.\\d+)?$/.exec(text);
    if (!m) return text;
    return m[1] + m[2].replace(/\\B(?=(\\d{3})+(?!\\d))/g, ",") + (m[3] || "");
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td;
  }
  function sheetTable(body, lines, total, label) {
    lines.forEach(function (line) { var tr = document.createElement("tr"); cell(tr, line[0]); cell(tr, grouped(line[1]), "num"); body.appendChild(tr); });
    if (!lines.length) { var e = document.createElement("tr"); cell(e, "none"); cell(e, "", "num"); body.appendChild(e); }
    var t = document.createElement("tr"); t.className = "total"; cell(t, label); cell(t, grouped(total), "num"); body.appendChild(t);
  }
  var slider = document.getElementById("sheet-step"), picker = document.getElementById("sheet-entity");
  function showSheet() {
    var S = R.sheets, step = S.steps[Number(slider.value)], entity = picker.value;
    document.getElementById("sheet-where").textContent =
      "after seq " + step.seq + " (" + step.at.replace("T", " ").replace("Z", " UTC") + "): " + step.type + " " + step.event_id;
    var index = step.sheets[entity], a = document.getElementById("sheet-assets"), l = document.getElementById("sheet-liabilities");
    a.textContent = ""; l.textContent = "";
    var eq = document.getElementById("sheet-equity");
    if (index === undefined) { eq.textContent = entity + " holds nothing at this step"; eq.className = ""; return; }
    var sheet = S.pool[index];
    sheetTable(a, sheet.assets, sheet.total_assets, "total assets");
    sheetTable(l, sheet.liabilities, sheet.total_liabilities, "total liabilities");
    eq.textContent = "equity " + grouped(sheet.equity) + " " + R.quote;
    eq.className = sheet.equity.charAt(0) === "-" ? "bad" : "good";
  }
  if (slider && R.sheets.steps.length) {
    slider.addEventListener("input", showSheet); picker.addEventListener("change", showSheet); showSheet();
  }
  var opts = { actions: false, renderer: "svg", tooltip: { theme: "light" } };
  var pending = Object.keys(R.specs).map(function (name) {
    var el = document.getElementById("chart-" + name), spec = R.specs[name];
    if (spec.vconcat) {  // "container" width only works for single views: size each from the page
      var width = Math.max(360, el.clientWidth - 80);
      spec.vconcat.forEach(function (view) { view.width = width; });
    }
    return vegaEmbed(el, spec, opts).then(function (result) {
      el.dataset.rendered = "1";
      result.view.addEventListener("click", function (event, item) {
        var d = item && item.datum;
        if (d && d.invariants !== undefined && d.seq !== undefined) {
          var row = document.getElementById("breach-" + d.seq);
          if (row) { location.hash = "breach-" + d.seq; }
        }
      });
      return result.view;
    });
  });
  Promise.all(pending).then(function (views) {
    window.REPORT_VIEWS = views; document.body.dataset.ready = "1";
  }).catch(function (error) { console.error("chart failed: " + error); document.body.dataset.ready = "error"; });
})();
"""


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one classic script (from vl-convert, no network).

    Raises ImportError when the ``report`` extra is not installed.
    """
    import vl_convert

    snippet = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"
    bundle = vl_convert.javascript_bundle(snippet, vl_version=vegalite_version())
    return bundle.replace("</script", "<\\/script")


def vegalite_version() -> str:
    """The newest Vega-Lite that the installed vl-convert bundles (``6.4``)."""
    import vl_convert

    return vl_convert.get_vegalite_versions()[-1]


def library_versions() -> str:
    import vl_convert

    return (
        f"Vega {vl_convert.get_vega_version()}, Vega-Lite {vegalite_version()}, "
        f"vega-embed {vl_convert.get_vega_embed_version()} (bundled by vl-convert-python)"
    )
