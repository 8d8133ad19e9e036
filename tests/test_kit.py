"""The testing kit's documented example runs as a test (docs/testing-kit.md)."""

import re
import unittest
from pathlib import Path

import pytest

from events import EVENT_TYPES

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing-kit.md"


def _example_namespace() -> dict:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "docs/testing-kit.md should have exactly one python example"
    namespace: dict = {"__name__": "kit_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    return namespace


def test_documented_property_runs_and_passes():
    _example_namespace()["test_custody_never_negative"]()


def test_documented_state_machine_runs_and_passes():
    case = _example_namespace()["TestCustodyMachine"]
    result = unittest.TextTestRunner(verbosity=0).run(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    assert result.wasSuccessful() and result.testsRun == 1


def test_documented_invariant_can_fail():
    """The example invariant is not vacuous: a history that overdraws custody breaks it."""
    from datetime import timedelta

    import events as ev
    from ledger.testing import first_breach
    from ledger.testing.strategies import START, cast_events

    ns = _example_namespace()
    history = [
        *cast_events(),
        # A venue's book transfer cannot overdraw custody; a holdings transfer can.
        ev.Transfer(id="overdraw", at=START + timedelta(minutes=1), source=("T",), from_account="ex:custody", to_account="ex:treasury", asset="USD", amount="5"),
    ]
    breach = first_breach(history, ns["CustodyNeverNegative"]())
    assert breach is not None and breach.event_id == "overdraw" and breach.observed == "-500"


# -- the general model in the kit's strategies (issue 14) -------------------------------------------
def test_general_histories_cover_every_event_type_kind_basis_and_invariant(tmp_path):
    """Over a fixed set of examples, ``histories(general=True)`` generates every event type,
    entity kind, asset kind and basis, prices in other quotes (a chain, a cycle, a missing
    link), and histories in which each new invariant breaks; the log accepts every one, and
    the kit's promises hold (conservation, no unauthorised negative)."""
    import collections
    import itertools

    from hypothesis import given, settings

    import events as ev
    from ledger.replay import Replay
    from ledger.store import Log
    from ledger.testing import strategies as lst

    seen: dict[str, set] = collections.defaultdict(set)
    counter = itertools.count()

    @settings(max_examples=150, derandomize=True, database=None, deadline=None)
    @given(lst.histories(general=True, max_events=60))
    def collect(history):
        for event in history:
            seen["type"].add(event.type)
            if isinstance(event, ev.EntityRegistered):
                seen["entity kind"].add(event.kind)
            elif isinstance(event, ev.AssetListed):
                seen["asset kind"].add(event.kind)
            elif isinstance(event, ev.AccountOpened):
                if event.purpose in ("corporate", "customer-custody"):
                    seen["basis"].add(event.basis or "fair_value")
                if event.liability_class or event.depositors:
                    seen["deposit fields"].add("liability_class" if event.liability_class else "depositors")
            elif isinstance(event, ev.LoanOpened):
                seen["loan"].update(k for k in ("liquidation_threshold", "pool") if getattr(event, k) is not None)
            elif isinstance(event, (ev.CollateralPledged, ev.CollateralReleased, ev.CollateralSeized)):
                seen["target"].update(k for k in ("loan", "account", "pool") if getattr(event, k) is not None)
            elif isinstance(event, ev.BalanceAsserted):
                seen["bound"].add(event.one_sided)
                if event.measure in ev.RATIO_MEASURES:
                    seen["ratio"].add(event.measure)
        replay = Replay(history, metrics=False)
        for step in replay:
            for violation in step.opened:
                seen["broke"].add(violation.invariant)
            seen["notice"].update(n.split(" is unpriced: ")[1].split(" (")[0] for n in step.notices if " is unpriced: " in n)
        if next(counter) % 10 == 0:  # the log accepts them (a sample: each append is a file)
            with Log.open(tmp_path / f"h{next(counter)}.db", create=True) as log:
                assert len(log.append(history).appended) == len(history)

    collect()
    assert seen["type"] == set(ev.EVENT_TYPES)
    assert seen["entity kind"] == set(ev.ENTITY_KINDS)
    assert seen["asset kind"] == set(ev.ASSET_KINDS)
    assert seen["basis"] == set(ev.BASES)
    assert seen["deposit fields"] == {"liability_class", "depositors"}
    assert seen["loan"] == {"liquidation_threshold", "pool"}
    assert seen["target"] == {"loan", "account", "pool"}
    assert seen["bound"] == set(ev.BOUNDS)
    assert seen["ratio"] == set(ev.RATIO_MEASURES)
    assert {"its prices form a cycle", "no price of"} <= {n[:23] if n.startswith("its") else n[:11] for n in seen["notice"]}
    assert {"solvency", "liquidity-coverage", "capital-ratio", "loan-health"} <= seen["broke"]
    assert not {"conservation", "no-unauthorised-negative"} & seen["broke"]


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
def test_event_of_builds_valid_events_of_every_type(type_name):
    from hypothesis import given, settings

    import events as ev
    from ledger.testing import strategies as lst

    seen = []

    @settings(max_examples=20, derandomize=True, database=None, deadline=None)
    @given(lst.event_of(type_name))
    def collect(event):
        assert ev.from_dict(ev.to_dict(event)) == event  # valid field values, round-tripped
        seen.append(event.type)

    collect()
    assert seen and set(seen) == {type_name}


def test_the_state_machine_runs_the_general_model_too():
    """``LedgerMachine`` with ``general = True``: the general cast and its rules (bank deposits
    and withdrawals, deposit insurance, bonds bought in a trade, chained prices) against the real
    log, with the documented checks at every step, and a user invariant over the general model's
    measures (the insured part of the bank's deposits never exceeds what it owes depositors)."""
    from hypothesis import settings

    from ledger.invariants import Status
    from ledger.testing import LedgerMachine

    class InsuredWithinOwed:
        name = "insured-within-owed"
        meaning = "the insured part of the bank's deposits is never above what it owes depositors"

        def check(self, ctx):
            books = ctx.books
            if "bk" in books.kinds:
                ok = books.insured_deposits("bk") <= books.customer_liabilities("bk")
                yield Status("bk", ok, observed=str(books.insured_deposits("bk")), threshold=str(books.customer_liabilities("bk")))

    seen: set[str] = set()

    class GeneralMachine(LedgerMachine):
        general = True
        extra_invariants = (InsuredWithinOwed(),)

        def teardown(self):
            seen.update(e.type for e in self.model)
            super().teardown()

    case = GeneralMachine.TestCase
    case.settings = settings(max_examples=8, stateful_step_count=20, deadline=None, derandomize=True, database=None)
    result = unittest.TextTestRunner(verbosity=0).run(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    assert result.wasSuccessful() and result.testsRun == 1
    assert {"trade", "deposit_insurance", "deposit", "withdrawal", "price_updated"} <= seen
