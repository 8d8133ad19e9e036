"""The machinery: the log, the books, invariants, replay, forensics and the CLI.

The public names below are imported when first read (PEP 562), not when ``ledger`` is: every
``bankrun`` command imports this package first, and ``bankrun --help`` needs none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where each public name lives.
_HOME = {
    "AppendResult": "ledger.store",
    "BusyError": "ledger.errors",
    "Checkpoint": "ledger.store",
    "ConflictError": "ledger.errors",
    "EventLog": "ledger.store",
    "Head": "ledger.store",
    "HeadMismatchError": "ledger.errors",
    "InputError": "ledger.errors",
    "InvariantRefused": "ledger.errors",
    "LedgerError": "ledger.errors",
    "Log": "ledger.store",
    "Problem": "ledger.errors",
    "Record": "ledger.store",
    "StorageError": "ledger.errors",
    "VerificationError": "ledger.errors",
    "VerifyResult": "ledger.store",
    "open_log": "ledger.store",
}

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
assert sorted(_HOME) == __all__, "every public name has a home module"


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # read once: later reads are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
