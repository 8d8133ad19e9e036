"""The testing kit's documented example runs as a test (docs/testing-kit.md)."""

import re
import unittest
from pathlib import Path

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
