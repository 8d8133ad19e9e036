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
from ledger.store import AppendResult, Checkpoint, Head, Log, Record, VerifyResult

__all__ = [
    "AppendResult",
    "BusyError",
    "Checkpoint",
    "ConflictError",
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
]
