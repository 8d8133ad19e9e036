"""Build the HTML replay report: replay a history once, collect, render one page.

The library call is :func:`build_report`; ``bankrun report`` is a thin layer over it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import events as ev
import replays
from ledger.html import _assets, _page
from ledger.html._collect import collect
from ledger.policy import Policy
from ledger.replay import Replay
from ledger.store import Log
from ledger.store.contract import EventLog


def policy_dict(policy: Policy) -> dict[str, Any]:
    """The policy's thresholds as exact decimal text (shown on the page, used by the charts)."""
    return {
        "quote": policy.quote,
        "min_reserve_ratio": ev.format_decimal(policy.min_reserve_ratio),
        "min_collateral_coverage": ev.format_decimal(policy.min_collateral_coverage),
        "max_own_token_share": ev.format_decimal(policy.max_own_token_share),
        "max_related_party_exposure": ev.format_decimal(policy.max_related_party_exposure),
        "min_liquidity_coverage": ev.format_decimal(policy.min_liquidity_coverage),
        "min_capital_ratio": ev.format_decimal(policy.min_capital_ratio),
        "enforce": sorted(policy.enforce),
        "disabled": sorted(policy.disabled),
    }


def matching_timeline(log: EventLog) -> replays.Timeline | None:
    """The bundled timeline whose events are the log's first events, byte for byte (canonical
    form), or None. Only the first ``len(timeline)`` records are read."""
    head = log.head().seq
    if head == 0:
        return None
    for timeline in replays.bundled():
        count = min(head, len(timeline.events))
        records = log.iter_payloads(to_seq=count)
        if all(
            payload == ev.canonical_json(event)
            for (_, _, payload), event in zip(records, timeline.events)
        ):
            return timeline
    return None


def build_report(
    source: Any,
    *,
    policy: Policy | None = None,
    title: str = "",
    log: EventLog | None = None,
    verified: bool | None = None,
    events_checked: int = 0,
    sources: dict[str, str] | None = None,
    sources_note: str = "",
    progress: Callable[[str], None] | None = None,
    frontiers: list[dict[str, Any]] | None = None,
) -> str:
    """Replay ``source`` (a :class:`replays.Timeline` or a :class:`Log`) and return the page.

    ``log`` (the log replayed, if any) gives the ledger id and head shown; ``verified`` says
    whether the caller verified it (None: not checked). ``sources`` resolves citation keys.
    ``frontiers``: stress grids (``GridResult.to_dict()``, ``bankrun stress --grid --format
    json``) drawn in a section of their own.
    Raises :class:`ledger.errors.InputError` as a replay does, and ImportError without the
    ``report`` extra (vl-convert-python).
    """
    policy = policy or Policy()
    say = progress or (lambda _text: None)
    bundle_ready = (
        _assets.vega_bundle()
    )  # fail early, before a long replay, if the extra is missing
    assert bundle_ready
    total = (
        len(source.events)
        if isinstance(source, replays.Timeline)
        else (source.head().seq if isinstance(source, Log) else None)
    )
    run = Replay(source, policy)
    say(f"replaying {total:,} events" if total is not None else "replaying")
    shown: set[int] = set()

    def step_done(done: int) -> None:  # called every 1%; a line every 10%
        percent = 100 * done // total  # type: ignore[operator]
        if percent % 10 == 0 and percent not in shown:
            shown.add(percent)
            say(f"replayed {done:,} of {total:,} events ({percent}%)")

    data, summary = collect(
        run, total=total, progress=step_done if total and total > 10_000 else None
    )
    say(
        f"rendering ({data['kept_steps']:,} steps kept for the charts, {len(data['violations']):,} breaches)"
    )
    log_info = None
    if log is not None:
        head = log.head()
        log_info = {
            "path": str(log.path),
            "ledger_id": log.ledger_id,
            "head_seq": head.seq,
            "head_hash": head.hash_hex,
            "verified": verified,
            "events_checked": events_checked,
        }
    meta = {
        "title": title or "replay",
        "quote": policy.quote,
        "policy": policy_dict(policy),
        "log": log_info,
        "sources": dict(sources or {}),
        "sources_note": sources_note,
        "loans_final": run.books.loans_view(),
        "vegalite_version": _assets.vegalite_version(),
        "libraries": _assets.library_versions(),
        "frontiers": list(frontiers or []),
    }
    return _page.render(data, summary, meta)
