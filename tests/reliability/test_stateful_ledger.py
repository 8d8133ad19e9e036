"""The model-based state machine (ledger.testing.LedgerMachine) against a real SQLite file:
appends, idempotent and conflicting resubmissions, invalid batches (all or nothing), reopening,
checkpoints; after every step the log verifies and the books equal the reference model."""

from hypothesis import settings

from ledger.testing import LedgerMachine

TestLedgerMachine = LedgerMachine.TestCase
# The example count comes from the active profile (ci: 100 derandomized); keep steps bounded.
TestLedgerMachine.settings = settings(settings.default, stateful_step_count=25, deadline=None)
