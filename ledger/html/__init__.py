"""The replay report as one self-contained HTML page: charts (Vega-Lite), tables, sources.

``build_report(source, ...)`` returns the page as text; ``bankrun report`` writes it to a file.
Needs the ``report`` extra (``pip install 'ftx-ledger[report]'``: vl-convert-python, which
bundles Vega, Vega-Lite and vega-embed for inlining). See ``docs/report.md``.
"""

from ledger.html._build import build_report, matching_timeline, policy_dict
from ledger.html._collect import RULE as DOWNSAMPLING_RULE

__all__ = ["DOWNSAMPLING_RULE", "build_report", "matching_timeline", "policy_dict"]
