"""The machinery: the log, the books, invariants, replay, forensics and the CLI."""

from ledger.errors import (
    BusyError,
    ConflictError,
    HeadMismatchError,
    InputError,
    InvariantRefused,
    LedgerError,
    Problem,
    StorageError,
    VerificationError,
)
from ledger.store import (
    AppendResult,
    Checkpoint,
    EventLog,
    Head,
    Log,
    Record,
    VerifyResult,
    open_log,
)

__all__ = [
    "AppendResult",
    "BusyError",
    "Checkpoint",
    "ConflictError",
    "EventLog",
    "Head",
    "HeadMismatchError",
    "InputError",
    "InvariantRefused",
    "LedgerError",
    "Log",
    "Problem",
    "Record",
    "StorageError",
    "VerificationError",
    "VerifyResult",
    "open_log",
]
