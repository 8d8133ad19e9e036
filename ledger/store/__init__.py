"""Storage: the event log and where it lives.

- :mod:`ledger.store.contract`: the :class:`EventLog` protocol both logs satisfy, the values
  they return (:class:`Head`, :class:`Record`, :class:`Checkpoint`...) and the hash chain.
- :mod:`ledger.store.sqlite`: :class:`Log`, one SQLite file (the embedded default).
- :mod:`ledger.store.postgres`: :class:`~ledger.store.postgres.PostgresLog`, one log shared by
  a team on a PostgreSQL server (needs ``pip install 'ftx-ledger[postgres]'``).
- :mod:`ledger.store.copy`: copy a log between backends, every hash kept.

:func:`open_log` picks the backend from the location: a ``postgresql://`` (or
``postgres://``) URL, else an SQLite file path. Every name this package exported when it was
one module (``ledger/store.py``) is still exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

from ledger.store._shared import aware as _aware
from ledger.store._shared import check_batch_ids as _check_batch_ids
from ledger.store._shared import decode_stored as _decode_stored
from ledger.store._shared import instant_key as _instant_key
from ledger.store._shared import problem as _problem
from ledger.store._shared import refuse_newer_version as _refuse_newer_version
from ledger.store._shared import two_places as _two_places
from ledger.store._shared import utc_now as _utc_now
from ledger.store.contract import (
    GENESIS_HASH,
    HASH_TAG,
    LOG_FORMAT,
    AppendResult,
    Checkpoint,
    EventLog,
    Following,
    Head,
    Record,
    StreamResult,
    VerifyResult,
    chain_hash,
)
from ledger.store.sqlite import (
    _GUARDED,
    _SQLITE_MAGIC,
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_DB,
    SCHEMA,
    Log,
    _ensure_schema,
    _expected_schema,
    _file_key,
    _ledger_identity,
    _registry_difference,
    _squash,
    _statements,
    _translate,
    check_file,
    configure,
    connect_readonly,
    schema_problems,
)

#: The URL schemes that name a PostgreSQL log.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_url(location: str | os.PathLike) -> bool:
    """Whether ``location`` names a PostgreSQL log (a URL) rather than an SQLite file."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_log(
    location: str | os.PathLike = DEFAULT_DB,
    *,
    create: bool = False,
    readonly: bool = False,
    clock: Callable[[], datetime] = _utc_now,
    ledger_id: str | None = None,
) -> EventLog:
    """Open the log at ``location``: a PostgreSQL URL (``postgresql://user@host/db``) or an
    SQLite file. Arguments and errors are those of :meth:`Log.open` and
    :meth:`ledger.store.postgres.PostgresLog.open`."""
    if is_url(location):
        from ledger.store.postgres import PostgresLog

        return PostgresLog.open(
            os.fspath(location), create=create, readonly=readonly, clock=clock, ledger_id=ledger_id
        )
    return Log.open(location, create=create, readonly=readonly, clock=clock, ledger_id=ledger_id)


__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "DEFAULT_DB",
    "GENESIS_HASH",
    "HASH_TAG",
    "LOG_FORMAT",
    "POSTGRES_SCHEMES",
    "SCHEMA",
    "_GUARDED",
    "_SQLITE_MAGIC",
    "AppendResult",
    "Checkpoint",
    "EventLog",
    "Following",
    "Head",
    "Log",
    "Record",
    "StreamResult",
    "VerifyResult",
    "_aware",
    "_check_batch_ids",
    "_decode_stored",
    "_ensure_schema",
    "_expected_schema",
    "_file_key",
    "_instant_key",
    "_ledger_identity",
    "_problem",
    "_refuse_newer_version",
    "_registry_difference",
    "_squash",
    "_statements",
    "_translate",
    "_two_places",
    "_utc_now",
    "chain_hash",
    "check_file",
    "configure",
    "connect_readonly",
    "is_url",
    "open_log",
    "schema_problems",
]
