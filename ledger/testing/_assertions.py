"""Assertions over replays: "invariant X holds at every step"."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from events import Event
from ledger.invariants import STANDARD
from ledger.policy import Policy
from ledger.replay import Replay, Violation


def _resolve(invariant: Any) -> Any:
    if isinstance(invariant, str):
        for inv in STANDARD:
            if inv.name == invariant:
                return inv
        raise ValueError(f"unknown standard invariant {invariant!r}")
    return invariant


def violations_of(history: Iterable[Event], invariant: Any, *, policy: Policy | None = None) -> list[Violation]:
    """Every violation of ``invariant`` (a standard name or your object) opened in ``history``."""
    inv = _resolve(invariant)
    found: list[Violation] = []
    for step in Replay(list(history), policy, invariants=[inv], metrics=False):
        found.extend(step.opened)
    return found


def first_breach(history: Iterable[Event], invariant: Any, *, policy: Policy | None = None) -> Violation | None:
    """The first violation of ``invariant`` in ``history``, or None."""
    found = violations_of(history, invariant, policy=policy)
    return found[0] if found else None


def assert_holds(history: Iterable[Event], invariant: Any, *, policy: Policy | None = None) -> None:
    """Fail with the seq, event and values if ``invariant`` breaks at any step of ``history``."""
    breach = first_breach(history, invariant, policy=policy)
    if breach is not None:
        raise AssertionError(
            f"{breach.invariant} broke at seq {breach.seq} (event {breach.event_id}, {breach.at}) "
            f"for {breach.subject}: {breach.detail} [observed {breach.observed}, threshold "
            f"{breach.threshold}]"
        )
