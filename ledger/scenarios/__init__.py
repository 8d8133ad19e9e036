"""Scenarios and reverse stress tests over any replay (``bankrun whatif``, ``bankrun stress``).

A scenario (a TOML file, ``docs/scenarios.md``) derives a new history from a base: fork at a
seq or a time, prices overridden or scaled, withdrawal waves injected, events removed or
replaced, the policy changed. :func:`whatif` replays it from the fork point and compares it
with the base. :func:`stress` finds the smallest shock at which an invariant breaks (bisection
where the response is monotone, a scan where it is not); :func:`grid` maps two shocks.
"""

from ledger.scenarios._engine import Breach, History, load_history
from ledger.scenarios._format import PriceChange, Scenario, Wave, load_scenario
from ledger.scenarios._stress import (
    GridResult,
    Shock,
    StressResult,
    dask_executor,
    grid,
    local_executor,
    parse_shock,
    stress,
)
from ledger.scenarios._whatif import Outcome, WhatIf, whatif

__all__ = [
    "Breach",
    "GridResult",
    "History",
    "Outcome",
    "PriceChange",
    "Scenario",
    "Shock",
    "StressResult",
    "Wave",
    "WhatIf",
    "dask_executor",
    "grid",
    "load_history",
    "load_scenario",
    "local_executor",
    "parse_shock",
    "stress",
    "whatif",
]
