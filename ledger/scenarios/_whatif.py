"""``whatif``: a scenario's derived history replayed from the fork, compared with the base."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from ledger.policy import Policy
from ledger.replay import Summary, Violation
from ledger.scenarios._engine import (
    Changes,
    History,
    check,
    fork_index,
    load_history,
    replay_fork,
    run_base,
)
from ledger.scenarios._engine import digest as history_digest
from ledger.scenarios._format import Scenario, load_scenario


@attrs.frozen
class Outcome:
    """One world's result: per invariant the first breach and the number opened, what is still
    open at the end, the events refused (enforce mode), key figures at the end, the digest."""

    events: int
    first_breaches: dict[str, Violation]
    breach_counts: dict[str, int]
    still_open: list[Violation]
    skipped: list[tuple[int, str, str]]
    final_metrics: dict[str, str]
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "first_breaches": {k: v.to_dict() for k, v in self.first_breaches.items()},
            "breach_counts": dict(self.breach_counts),
            "still_open": [v.to_dict() for v in self.still_open],
            "skipped": [{"seq": s, "event_id": i, "reason": r} for s, i, r in self.skipped],
            "final_metrics": dict(self.final_metrics),
            "digest": self.digest,
        }

    @classmethod
    def of(cls, summary: Summary) -> Outcome:
        return cls(
            summary.events,
            dict(summary.first_breaches),
            dict(summary.breach_counts),
            list(summary.still_open),
            list(summary.skipped),
            dict(summary.final_metrics),
            summary.digest,
        )


@attrs.frozen
class WhatIf:
    """A scenario against its base (see :func:`whatif`).

    Attributes:
        fork_seq, fork_at: the last shared seq and the fork's time.
        base, derived: the two worlds.
        only_in_base, only_in_derived: violations opened or closed after the fork in one world
            and not the other, as ``(kind, invariant, subject, event_id, at)``.
    """

    scenario: Scenario
    history: str
    fork_seq: int
    fork_at: str
    invariants: list[str]
    base: Outcome
    derived: Outcome
    only_in_base: list[tuple[str, str, str, str, str]]
    only_in_derived: list[tuple[str, str, str, str, str]]
    policy: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        def rows(items: list[tuple[str, str, str, str, str]]) -> list[dict[str, str]]:
            return [
                dict(zip(("change", "invariant", "subject", "event_id", "at"), row, strict=True))
                for row in items
            ]

        return {
            "scenario": {
                "name": self.scenario.name,
                "title": self.scenario.title,
                "file": self.scenario.path,
            },
            "history": self.history,
            "fork": {"seq": self.fork_seq, "at": self.fork_at},
            "policy": self.policy,
            "invariants": self.invariants,
            "base": self.base.to_dict(),
            "derived": self.derived.to_dict(),
            "only_in_base": rows(self.only_in_base),
            "only_in_derived": rows(self.only_in_derived),
        }


def whatif(
    scenario: Scenario | str | Path, *, policy: Policy | None = None, history: History | None = None
) -> WhatIf:
    """Replay a scenario's derived history from its fork point and compare it with the base.

    ``scenario``: a :class:`Scenario` or a scenario file. ``policy``: the base's policy
    (default: the built-in one in the history's quote); the scenario's ``[policy]`` changes it
    for the derived world only. Raises :class:`InputError` (nothing run) on a bad scenario.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if history is None:
        history = load_history(scenario.base, log=scenario.log, policy=policy)
    index = fork_index(history, seq=scenario.fork.seq, at=scenario.fork.at)
    base = run_base(history, index, at=scenario.fork.at)
    point = base.point
    changes = Changes.of(scenario)
    refs = check(changes, history, point, scenario.where, scenario.path)
    derived_policy = scenario.policy_over(history.policy)
    from ledger.scenarios._engine import derive

    events = derive(history.events[index:], changes, point, refs)
    fork = replay_fork(point, events, derived_policy, history.policy)
    assert fork.summary is not None
    names = [i["name"] for i in fork.summary.invariants]
    first: dict[str, Violation] = {}
    for name in names:
        if name in point.first:
            first[name] = point.first[name]
    for v in fork.opened:
        first.setdefault(v.invariant, v)
    first = {n: first[n] for n in names if n in first}
    counts = Counter({n: point.counts.get(n, 0) for n in names})
    for v in fork.opened:
        counts[v.invariant] += 1
    applied = history.events[:index] + fork.applied
    derived = Outcome(
        events=len(applied),
        first_breaches=first,
        breach_counts={n: counts[n] for n in names},
        still_open=fork.still_open,
        skipped=list(fork.summary.skipped),
        final_metrics=dict(fork.summary.final_metrics),
        digest=history_digest(applied),
    )
    base_changes = Counter(row[:4] for row in base.changes)
    derived_changes = Counter(row[:4] for row in fork.changes)
    only_base = [row for row in base.changes if _take(base_changes, derived_changes, row)]
    base_changes = Counter(row[:4] for row in base.changes)
    only_derived = [row for row in fork.changes if _take(derived_changes, base_changes, row)]
    from ledger.html import policy_dict

    return WhatIf(
        scenario=scenario,
        history=history.name,
        fork_seq=index,
        fork_at=_instant(point.at),
        invariants=names,
        base=Outcome.of(base.summary),
        derived=derived,
        only_in_base=only_base,
        only_in_derived=only_derived,
        policy=policy_dict(derived_policy),
    )


def _take(mine: Counter[Any], theirs: Counter[Any], row: tuple[str, ...]) -> bool:
    """Whether ``row`` is one the other side does not have (matching rows pair off)."""
    key = row[:4]
    if theirs[key] > 0:
        theirs[key] -= 1
        return False
    return True


def _instant(value: Any) -> str:
    import events as ev

    return ev.format_instant(value)
