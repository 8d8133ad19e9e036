"""The public testing kit: Hypothesis strategies, a state machine, invariant assertions.

Needs Hypothesis (``pip install 'ftx-ledger[testing]'``). Typical use::

    from hypothesis import given
    from ledger.testing import assert_holds, strategies as lst

    @given(lst.histories())
    def test_my_invariant(history):
        assert_holds(history, MyInvariant())

See ``docs/testing-kit.md``.
"""

from ledger.testing._assertions import assert_holds, first_breach, violations_of
from ledger.testing._machine import LedgerMachine

__all__ = ["LedgerMachine", "assert_holds", "first_breach", "violations_of"]
