"""What every event log is: the protocol both backends satisfy, and the values they return.

Books, replay and forensics know only :class:`EventLog`. The SQLite log
(:mod:`ledger.store.sqlite`) and the PostgreSQL log (:mod:`ledger.store.postgres`) implement it
and pass one contract suite (``tests/test_store_contract.py``). The hash chain is defined here,
once: a log copied from one backend to the other keeps every hash (``bankrun copy``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from events import Event
from ledger.errors import InputError
from ledger.registry import Registry

HASH_TAG = b"ledger-event-v1\x00"
GENESIS_HASH = bytes(32)
LOG_FORMAT = "1"


def row_digest(prev_hash: bytes, seq: int, stamp: bytes, payload: bytes) -> bytes:
    """The row hash's one layout: SHA-256(tag || prev_hash || seq (8 bytes, big-endian) ||
    stamp || payload), where ``stamp`` is recorded_at in ASCII and a 0 byte."""
    return hashlib.sha256(b"".join((HASH_TAG, prev_hash, seq.to_bytes(8, "big"), stamp, payload))).digest()


def chain_hash(prev_hash: bytes, seq: int, recorded_at: str, payload: bytes) -> bytes:
    """The row hash: SHA-256(tag || prev_hash || seq (8 bytes, big-endian) || recorded_at || 0 || payload)."""
    return row_digest(prev_hash, seq, recorded_at.encode("ascii") + b"\x00", payload)


def chain_hasher(recorded_at: str) -> Callable[[bytes, int, bytes], bytes]:
    """``chain_hash`` for the rows of one append, which share ``recorded_at``: the same
    layout (``row_digest``), with the time encoded once rather than once a row."""
    stamp = recorded_at.encode("ascii") + b"\x00"

    def digest(prev_hash: bytes, seq: int, payload: bytes) -> bytes:
        return row_digest(prev_hash, seq, stamp, payload)

    return digest


@attrs.frozen
class Head:
    """The last row of the log: its seq (0 when empty) and hash (32 zero bytes when empty)."""

    seq: int
    hash: bytes

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()


@attrs.frozen
class Record:
    """A stored event with what the log added to it."""

    seq: int
    event: Event
    recorded_at: str
    prev_hash: bytes
    hash: bytes
    payload: str = attrs.field(default="", repr=False, eq=False)


@attrs.frozen
class AppendResult:
    """What an append did: new ``(seq, id)`` pairs, ids already recorded, and the new head."""

    appended: list[tuple[int, str]]
    existing: list[tuple[int, str]]
    head: Head

    def __str__(self) -> str:
        text = f"appended {len(self.appended)} event(s)"
        if self.existing:
            text += f", {len(self.existing)} already recorded"
        return f"{text}; head seq {self.head.seq} {self.head.hash_hex[:16]}"


@attrs.frozen
class StreamResult:
    """What a streamed append did: how many events were appended and already recorded."""

    appended: int
    existing: int
    head: Head

    def __str__(self) -> str:
        text = f"appended {self.appended} event(s)"
        if self.existing:
            text += f", {self.existing} already recorded"
        return f"{text}; head seq {self.head.seq} {self.head.hash_hex[:16]}"


@attrs.frozen
class Checkpoint:
    """A statement ``(ledger_id, seq, head_hash)`` to keep outside the database."""

    ledger_id: str
    seq: int
    head_hash: str
    taken_at: str

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, where: str = "checkpoint") -> Checkpoint:
        """Parse a checkpoint strictly: ``ledger_id`` a non-empty string, ``seq`` a whole number
        >= 0, ``head_hash`` 64 hex digits. Raises :class:`InputError` naming the field."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{where}: not a checkpoint file (not JSON: {exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"{where}: not a checkpoint file (expected a JSON object)")
        for key in ("ledger_id", "seq", "head_hash"):
            if key not in data:
                raise InputError(f"{where}: {key}: missing; a checkpoint has ledger_id, seq and head_hash")
        ledger_id, seq, head_hash = data["ledger_id"], data["seq"], data["head_hash"]
        if not isinstance(ledger_id, str) or not ledger_id.strip():
            raise InputError(f"{where}: ledger_id: expected the log's id (a non-empty string), got {ledger_id!r}")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise InputError(f"{where}: seq: expected a whole number >= 0, got {seq!r}")
        if not isinstance(head_hash, str) or len(head_hash) != 64 or any(
            c not in "0123456789abcdefABCDEF" for c in head_hash
        ):
            raise InputError(f"{where}: head_hash: must be 64 hex digits, got {head_hash!r}")
        taken_at = data.get("taken_at", "")
        if not isinstance(taken_at, str):
            raise InputError(f"{where}: taken_at: expected a time as text, got {taken_at!r}")
        return cls(ledger_id=ledger_id, seq=seq, head_hash=head_hash.lower(), taken_at=taken_at)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Checkpoint:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read checkpoint ({exc.strerror})") from None
        return cls.from_json(text, where=str(path))


@attrs.frozen
class VerifyResult:
    """A log that verified: how many rows were checked, its head, and the checkpoints matched."""

    events_checked: int
    head: Head
    checkpoints_matched: int


@runtime_checkable
class EventLog(Protocol):
    """An append-only, hash-chained event log, whatever stores it.

    ``path`` names the log for messages (a file path, or a database URL without its password);
    ``ledger_id`` is fixed when the log is created and travels with a copy. Every method raises
    :class:`ledger.errors.LedgerError` subclasses, never a driver's own errors.
    """

    path: str
    ledger_id: str
    readonly: bool

    def close(self) -> None: ...
    def __enter__(self) -> EventLog: ...
    def __exit__(self, *exc: object) -> None: ...

    # reading
    def head(self) -> Head: ...
    def __len__(self) -> int: ...
    def iter_records(
        self, *, from_seq: int = 1, to_seq: int | None = None, batch_size: int = 2000
    ) -> Iterator[Record]: ...
    def iter_payloads(
        self, *, from_seq: int = 1, to_seq: int | None = None, batch_size: int = 2000
    ) -> Iterator[tuple[int, Event, str]]: ...
    def iter_events(self, *, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Event]: ...
    def get(self, event_id: str) -> Record | None: ...
    def hash_at(self, seq: int) -> bytes | None: ...
    def seq_at(self, at: datetime) -> int: ...
    def seq_before(self, at: datetime) -> int: ...
    def seq_recorded(self, recorded: datetime) -> int: ...
    def registry(self) -> Registry: ...
    def follow(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        poll: float = 0.5,
        idle_timeout: float | None = None,
    ) -> Following: ...
    def wait(self, timeout: float) -> None: ...

    # writing
    def append(
        self,
        events: Iterable[Event],
        *,
        expected_head: int | None = None,
        where: Sequence[str] | None = None,
        guard: Callable[[Registry, Sequence[Event]], None] | None = None,
    ) -> AppendResult: ...
    def append_stream(
        self,
        items: Iterable[tuple[Event, str]],
        *,
        expected_head: int | None = None,
        chunk_size: int = 5000,
    ) -> StreamResult: ...
    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...

    # copying between backends (``bankrun copy``): rows exactly as stored
    def stored_rows(self, *, from_seq: int = 1, batch_size: int = 5000) -> Iterator[tuple[Any, ...]]: ...
    def copy_rows(
        self, rows: Sequence[tuple[int, str, str, str, str, str, bytes, bytes]],
        registry_rows: Sequence[tuple[str, str, str]],
    ) -> None: ...

    # tamper evidence
    def checkpoint(self) -> Checkpoint: ...
    def verify(
        self, checkpoints: Iterable[Checkpoint] = (), *, progress: Callable[[int], None] | None = None
    ) -> VerifyResult: ...


def follow_log(
    log: EventLog, *, from_seq: int, to_seq: int | None, poll: float, idle_timeout: float | None
) -> Following:
    """The shared body of ``EventLog.follow``."""
    if poll <= 0:
        raise InputError(f"poll: must be > 0 seconds, got {poll}")
    return Following(log, from_seq=from_seq, to_seq=to_seq, poll=poll, idle_timeout=idle_timeout)


class Following:
    """A log followed as it grows (see ``EventLog.follow``); iterate it once.

    It reads by seq, page after page, so nothing is skipped or read twice; at the head it waits
    with ``log.wait(poll)`` (SQLite: a sleep; PostgreSQL: until a NOTIFY wakes it, at most
    ``poll`` seconds) and reads again from the next seq.
    """

    def __init__(
        self, log: EventLog, *, from_seq: int, to_seq: int | None, poll: float, idle_timeout: float | None
    ) -> None:
        self.log = log
        self.next_seq = max(from_seq, 1)
        self.to_seq = to_seq
        self.poll = poll
        self.idle_timeout = idle_timeout
        self._stopped = False

    def stop(self) -> None:
        """End the stream after the event being read, or within ``poll`` seconds when waiting.

        Only sets a flag, so it is safe from a signal handler or another thread."""
        self._stopped = True

    def __iter__(self) -> Iterator[tuple[int, Event, str]]:
        last_new = time.monotonic()
        while not self._stopped:
            if self.to_seq is not None and self.next_seq > self.to_seq:
                return
            arrived = False
            for item in self.log.iter_payloads(from_seq=self.next_seq, to_seq=self.to_seq):
                arrived = True
                self.next_seq = item[0] + 1
                yield item
                if self._stopped:
                    return
            if arrived:
                last_new = time.monotonic()
                continue
            if self.idle_timeout is not None and time.monotonic() - last_new >= self.idle_timeout:
                return
            self.log.wait(self.poll)
