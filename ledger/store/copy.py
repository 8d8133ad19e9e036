"""``bankrun copy SRC DST``: a log copied between backends (SQLite, PostgreSQL), every hash kept.

The rows are copied exactly as stored (seq, ids, record times, canonical payloads, prev_hash,
hash), so the copy is the same history: it keeps the source's ``ledger_id`` and verifies against
every checkpoint of the source. The source is verified first (a log that does not verify is
not copied); the copy is verified after. The destination is created if missing; an existing
one must be the same ledger and a prefix of the source (an interrupted copy resumes there).
Rows go over in chunks, each one transaction with the registry rows it changes, so a copy
killed midway leaves a shorter log that verifies.
"""

from __future__ import annotations

import os

import attrs

from ledger.errors import StorageError, VerificationError
from ledger.registry import Registry
from ledger.store import _shared
from ledger.store.contract import Checkpoint, EventLog, VerifyResult

#: Meta keys copied besides the fixed ones (ledger_id and format travel by creation).
COPIED_META = ("quote",)


@attrs.frozen
class CopyResult:
    """What a copy did: rows copied, rows the destination already held, the two verifications."""

    copied: int
    already: int
    source: VerifyResult
    destination: VerifyResult

    def __str__(self) -> str:
        head = self.destination.head
        return (
            f"copied {self.copied} event(s)"
            + (f", {self.already} already there" if self.already else "")
            + f"; the copy verifies: {self.destination.events_checked} events, head seq {head.seq} {head.hash_hex}"
        )


def copy_log(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    checkpoints: tuple[Checkpoint, ...] = (),
    chunk_size: int = 5000,
) -> CopyResult:
    """Copy the log at ``source`` to ``destination`` (each an SQLite path or a PostgreSQL URL).

    Raises :class:`VerificationError` if the source does not verify (against ``checkpoints``
    too) or the destination holds another history, :class:`StorageError` if the two are the
    same log location.
    """
    from ledger.store import is_url, open_log

    if os.fspath(source) == os.fspath(destination) or (
        not is_url(source) and not is_url(destination) and os.path.abspath(source) == os.path.abspath(destination)
    ):
        raise StorageError(f"{destination}: is the source itself; name another destination")
    with open_log(source, readonly=True) as src:
        checked = src.verify(checkpoints)
        with open_log(destination, create=True, ledger_id=src.ledger_id) as dst:
            if dst.ledger_id != src.ledger_id:
                raise VerificationError(
                    f"{dst.path}: holds ledger {dst.ledger_id}, not {src.ledger_id}; "
                    "copy into a new file or an empty schema",
                    kind="ledger-id",
                )
            already = _common_prefix(src, dst, checked.head.seq)
            copied = _copy_rows(src, dst, already, chunk_size)
            for key in COPIED_META:
                value = src.meta(key)
                if value is not None and dst.meta(key) != value:
                    dst.set_meta(key, value)
            result = dst.verify([*checkpoints, src.checkpoint()])
    return CopyResult(copied, already, checked, result)


def _common_prefix(src: EventLog, dst: EventLog, src_seq: int) -> int:
    head = dst.head()
    if head.seq == 0:
        return 0
    if head.seq > src_seq or src.hash_at(head.seq) != head.hash:
        raise VerificationError(
            f"{dst.path}: holds another history of ledger {dst.ledger_id} "
            f"(its seq {head.seq} is not the source's); nothing was copied",
            seq=head.seq,
            kind="chain",
        )
    return head.seq


def _copy_rows(src: EventLog, dst: EventLog, already: int, chunk_size: int) -> int:
    registry = Registry()
    changing = set(Registry.CHANGING_TYPES)
    chunk: list[tuple[int, str, str, str, str, str, bytes, bytes]] = []
    copied = 0

    def flush() -> None:
        nonlocal chunk, copied
        if not chunk:
            return
        dst.copy_rows(chunk, _shared.dirty_registry_rows(registry))
        registry.commit()
        copied += len(chunk)
        chunk = []

    registry.begin()
    for row in src.stored_rows():
        seq, _, typ, _, _, payload, _, _ = row
        if typ in changing:
            registry.apply(_shared.decode_stored(seq, payload))
        if seq <= already:
            continue
        chunk.append(row)
        if len(chunk) >= chunk_size:
            flush()
            registry.begin()
    flush()
    return copied
