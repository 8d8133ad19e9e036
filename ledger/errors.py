"""One error family for everything the ledger refuses. Messages name the seq, file, line or field."""

from __future__ import annotations

from collections.abc import Sequence

import attrs


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


@attrs.frozen
class Problem:
    """One thing wrong with one input event.

    Attributes:
        index: position of the event in the batch (0-based), or None for file-level problems.
        event_id: the event's id, where known.
        field: the field path (``events[12].amount``), or "" when it concerns the whole event.
        message: what is wrong, and what to do.
        where: ``file:line`` (or ``file:line:col``) when the event came from a file.
    """

    message: str
    index: int | None = None
    event_id: str | None = None
    field: str = ""
    where: str = ""

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        if self.index is not None and not self.where:
            prefix += f"event {self.index + 1}"
            prefix += f" ({self.event_id})" if self.event_id else ""
            prefix += ": "
        return f"{prefix}{self.message}"


class InputError(LedgerError):
    """Input that is malformed or refers to what does not exist. Nothing was written.

    ``problems`` lists every problem found (up to a cap), each naming where it is.
    """

    MAX_PROBLEMS = 20

    def __init__(self, problems: Sequence[Problem] | str, *, source: str = "") -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = list(problems)
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems{' in ' + self.source if self.source else ''}:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class ConflictError(LedgerError):
    """An event id is already recorded with different content. Nothing was written."""

    def __init__(
        self, event_id: str, seq: int, fields: list[str], detail: str, *, where: str = ""
    ) -> None:
        self.event_id, self.seq, self.fields, self.where = event_id, seq, fields, where
        prefix = f"{where}: " if where else ""
        super().__init__(
            f"{prefix}event_id {event_id!r} already recorded at seq {seq} with different {detail}"
        )


class HeadMismatchError(LedgerError):
    """``expected_head`` did not match the log's head (someone appended first). Re-read, retry."""

    def __init__(self, expected: int, actual: int) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(
            f"expected head seq {expected} but the log is at seq {actual}; "
            "another writer appended first: re-read and retry"
        )


class InvariantRefused(LedgerError):
    """Enforce mode: an event would break an invariant the policy declares a hard rule."""

    def __init__(self, message: str, violation: object = None) -> None:
        self.violation = violation
        super().__init__(message)


class BusyError(LedgerError):
    """The database stayed locked by another process for longer than the busy timeout."""


class StorageError(LedgerError):
    """The database file could not be read or written (disk full, I/O error, not a ledger)."""


class NotALedgerError(StorageError):
    """The path is not a ledger (missing, another application's database, an empty file, a
    FIFO, a directory); nothing was changed."""


class FormatError(StorageError):
    """The log, or an event in it, was written by a newer version than this program reads."""


class VerificationError(LedgerError):
    """The log does not verify: names the first bad seq (or truncation) and why."""

    def __init__(self, message: str, *, seq: int | None = None, kind: str = "") -> None:
        self.seq, self.kind = seq, kind
        super().__init__(message)


class ProofError(LedgerError):
    """A proof of liabilities cannot be built from what was given; ``kind`` says why
    (``too-large``, ``shape``, ``secret``, ``not-a-leaf``, ``unknown-venue``)."""

    def __init__(self, message: str, *, kind: str = "") -> None:
        self.kind = kind
        super().__init__(message)


class ProofInvalid(VerificationError):
    """A proof of liabilities does not verify (exit status 3 at the command line); ``kind``
    says why: ``malformed``, ``negative-balance``, ``negative-sum``, ``path-shape``,
    ``totals``, ``changed`` (it does not hash to its own root), ``other-point``, ``wrong-root``."""


class NegativeBalanceError(LedgerError):
    """Negative balances offered as leaves of a proof of liabilities: the "dummy user" attack
    (a negative leaf lowers the sums, so the venue would seem to owe less). Names every one.

    ``balances`` lists ``(account, asset, amount)``, the amount as text.
    """

    def __init__(self, balances: Sequence[tuple[str, str, str]]) -> None:
        self.balances = list(balances)
        shown = ", ".join(f"{account} {amount} {asset}" for account, asset, amount in self.balances[:10])
        more = f" and {len(self.balances) - 10} more" if len(self.balances) > 10 else ""
        super().__init__(
            "negative balances cannot be leaves of a proof of liabilities (the dummy-user attack: "
            f"they would lower the total owed): {shown}{more}"
        )
