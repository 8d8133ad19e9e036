"""Questions an investigator asks of a log they did not write.

- :meth:`Investigation.as_of`: the books at a seq, at an effective time, or as the log knew
  them at a recorded time. Snapshots of the books every K events, stored in the database and
  checked against the hash chain, make any point cost at most K events. Snapshots are a
  cache: deleting them changes no answer.
- :meth:`Investigation.history`: every posting that touched an account, with running balance.
- :meth:`Investigation.trace`: where traced funds went, under FIFO, pro rata, or the lowest
  intermediate balance rule (LIBR).
- :meth:`Investigation.diff`: what changed between two points, and which events did it.
- :meth:`Investigation.materialize`: projection tables for the sqlite3 shell or Datasette.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs

import events as ev
from ledger import snapshot_format as fmt
from ledger.books import CUSTODY, EXTERNAL, HOLDINGS, PLEDGED, Books, Change
from ledger.derived import Derived
from ledger.errors import InputError, StorageError
from ledger.policy import Policy
from ledger.registry import RESERVED_NAMES, RESERVED_PREFIXES, Registry
from ledger.replay import Replay
from ledger.store.contract import EventLog

DEFAULT_SNAPSHOT_EVERY = 5_000
TRACE_RULES = ("fifo", "pro-rata", "libr")
_PHYSICAL = (HOLDINGS, CUSTODY, EXTERNAL, PLEDGED)

SNAPSHOT_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,
    event_hash BLOB NOT NULL,
    state BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT
"""
#: Between full snapshots: deltas, each against one full snapshot (``base_seq``; 0 is the empty
#: books, never stored), so that a point costs at most ``delta_every`` events of replay.
DELTA_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot_deltas (
    seq INTEGER PRIMARY KEY,
    base_seq INTEGER NOT NULL,
    event_hash BLOB NOT NULL,
    delta BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT
"""


@attrs.frozen
class HistoryLine:
    """One posting to an account: what moved, the balance after, and where it came from.

    ``counterparty``: the account(s) on the other side of the posting (``entity:account``,
    comma-separated). ``refused``: for a withdrawal asked of this account that was not paid,
    why; its ``delta`` is then 0 (nothing moved) and the line is there because it was asked.
    """

    seq: int
    at: str
    event_id: str
    type: str
    asset: str
    delta: Decimal
    balance: Decimal
    source: tuple[str, ...]
    note: str | None
    counterparty: str = ""
    refused: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["source"] = list(self.source)
        return data


@attrs.frozen
class Flow:
    """A movement of traced funds from one place to another."""

    seq: int
    at: str
    event_id: str
    from_node: str
    to_node: str
    amount: Decimal
    source: tuple[str, ...]
    asset: str | None = None  # the asset ``amount`` is in (set by the tracer)

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["source"] = list(self.source)
        return data


@attrs.frozen
class AssetTrace:
    """Traced value that a trade carried into another asset than the traced one.

    Attributes:
        asset: the asset the value is in now.
        received: traced value that arrived in this asset through trades (in its units).
        flows: the movements of it, as :attr:`TraceResult.flows`.
        held, left: as in :class:`TraceResult`; ``received`` = their sum.
    """

    asset: str
    received: Decimal
    flows: list[Flow]
    held: dict[str, Decimal]
    left: dict[str, Decimal]

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "received": self.received,
            "flows": [f.to_dict() for f in self.flows],
            "held": dict(self.held),
            "left": dict(self.left),
        }


@attrs.frozen
class TraceResult:
    """Where traced funds went and where they are (the rules: ``docs/forensics.md``).

    Attributes:
        rule: fifo, pro-rata or libr.
        asset: the traced asset.
        start: the customer account or venue whose deposits are traced.
        traced_in: total traced money that entered: the customer deposits, less what they
            carried back of money already traced (a re-deposit is the same money, not new).
        flows: every movement that carried traced funds, in order (the first hop of each
            traced deposit included).
        held: place (holdings, custody or pledged account) -> traced amount there at the end;
            never more than the place's balance.
        left: where traced money left the model -> how much: an external account, or
            ``(deficit) PLACE`` for traced money that made good a negative balance of PLACE.
        holders: ``held`` and ``left`` together; their sum is ``traced_in`` + ``received``.
            Traced money given away in a trade is in ``left`` as ``(traded for B) PLACE``.
        received: traced value that came back into the traced asset through trades (0 without
            trades that pay for something with traced value in another asset).
        assets: per other asset that traced value reached through a trade, where it went
            (:class:`AssetTrace`).
    """

    rule: str
    asset: str
    start: str
    traced_in: Decimal
    flows: list[Flow]
    holders: dict[str, Decimal]
    until_seq: int
    held: dict[str, Decimal] = attrs.field(factory=dict)
    left: dict[str, Decimal] = attrs.field(factory=dict)
    received: Decimal = Decimal(0)
    assets: dict[str, AssetTrace] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "asset": self.asset,
            "start": self.start,
            "traced_in": self.traced_in,
            "received": self.received,
            "until_seq": self.until_seq,
            "flows": [f.to_dict() for f in self.flows],
            "holders": dict(self.holders),
            "held": dict(self.held),
            "left": dict(self.left),
            "assets": {a: t.to_dict() for a, t in self.assets.items()},
        }


@attrs.frozen
class Diff:
    """What changed between two points of the log, and which events did it."""

    seq_a: int
    seq_b: int
    balances: list[dict[str, Any]]
    loans: list[dict[str, Any]]
    prices: list[dict[str, Any]]
    opened: list[dict[str, Any]]
    closed: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Investigation:
    """Forensic queries over one log (see the module docstring).

    Raises :class:`LedgerError` subclasses; never writes to ``events``. Only
    :meth:`build_snapshots`, :meth:`drop_snapshots` and :meth:`materialize` write (caches and
    derived tables), and they need a log opened for writing.
    """

    def __init__(
        self,
        log: EventLog,
        policy: Policy | None = None,
        *,
        every: int = DEFAULT_SNAPSHOT_EVERY,
        delta_every: int | None = None,
        derived: Derived | None = None,
    ) -> None:
        """``derived``: where snapshots are read from and where snapshots and projection
        tables are written (a :class:`ledger.derived.Derived`: a derived file tied to this log,
        or the log itself). Default: the log's own file.

        ``every``: events between full snapshots; ``delta_every``: events between the deltas
        stored between them (default ``every // 10``; 0 for none)."""
        if every < 1:
            raise InputError("snapshot interval must be >= 1")
        if delta_every is None:
            delta_every = every // 10
        if delta_every < 0:
            raise InputError("delta interval must be >= 0")
        self.log = log
        self.policy = policy or Policy()
        self.every = every
        self.delta_every = delta_every if 0 < delta_every < every else 0
        self._derived = derived
        if derived is None and isinstance(getattr(log, "connection", None), sqlite3.Connection):
            self._derived = Derived.in_log(log)  # an SQLite log's own file
        self.warnings: list[str] = []

    @property
    def derived(self) -> Derived:
        """Where derived data is read and written; a PostgreSQL log without a derived file
        has none (its queries replay from the events; writing needs ``--out``)."""
        if self._derived is None:
            raise StorageError(
                f"{self.log.path}: a PostgreSQL log keeps derived data in a separate SQLite file, "
                "not in the shared database: name the file with --out"
            )
        return self._derived

    @property
    def _store(self) -> sqlite3.Connection:
        return self.derived.connection

    def _writable(self) -> sqlite3.Connection:
        if not self.derived.writable:
            raise StorageError(f"{self.derived.path}: opened read-only; derived data cannot be written here")
        return self.derived.connection

    # -- snapshots ---------------------------------------------------------------------------------
    def _has_snapshots(self) -> bool:
        return self._has_table("snapshots")

    def _has_table(self, name: str) -> bool:
        if self._derived is None:
            return False
        row = self._store.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def snapshots(self) -> list[int]:
        """Seqs that have a stored full snapshot (the deltas between them: :meth:`deltas`)."""
        if not self._has_snapshots():
            return []
        return [r[0] for r in self._store.execute("SELECT seq FROM snapshots ORDER BY seq")]

    def deltas(self) -> list[int]:
        """Seqs that have a stored delta (against a full snapshot before it)."""
        if not self._has_table("snapshot_deltas"):
            return []
        return [r[0] for r in self._store.execute("SELECT seq FROM snapshot_deltas ORDER BY seq")]

    def _event_hash(self, seq: int) -> bytes | None:
        return self.log.hash_at(seq)

    def _load_snapshot(self, at_most: int) -> Books | None:
        """Books from the newest valid snapshot at or before ``at_most`` (invalid ones are
        skipped, noted in :attr:`warnings`)."""
        found = self._load_tables(at_most, keep_base=False)
        if found is None:
            return None
        _, tables, _, _ = found
        with fmt.no_collection():
            books = fmt.books_from_tables(tables, self.policy)
        return books

    def _load_tables(
        self, at_most: int, *, keep_base: bool = True
    ) -> tuple[int, fmt.Tables, int, fmt.Tables] | None:
        """``(seq, tables, base seq, base tables)`` of the newest valid snapshot at or before
        ``at_most``: a full one (then it is its own base) or a delta over one (with
        ``keep_base=False`` the base's tables are the delta's, changed). Only the records
        tried are read (a full one is megabytes on a large log)."""
        fulls: list[tuple[int, bytes | None]] = []
        if self._has_snapshots():
            fulls = [
                (seq, bytes(event_hash))
                for seq, event_hash in self._store.execute(
                    "SELECT seq, event_hash FROM snapshots WHERE seq <= ? ORDER BY seq DESC", (at_most,)
                )
            ]
        fulls.append((0, None))  # the empty books: the base of the deltas before the first full
        has_deltas = self._has_table("snapshot_deltas")
        for full_seq, event_hash in fulls:
            base: fmt.Tables | None = None
            if full_seq:
                base = self._read_full(full_seq, event_hash)
                if base is None:
                    continue
            if has_deltas:
                for seq, delta_hash in self._store.execute(
                    "SELECT seq, event_hash FROM snapshot_deltas WHERE base_seq = ? AND seq <= ? "
                    "ORDER BY seq DESC LIMIT 3",
                    (full_seq, at_most),
                ).fetchall():
                    if base is None:
                        base = fmt.tables_of(Books(self.policy))
                    tables = self._read_delta(seq, bytes(delta_hash), base, keep_base=keep_base)
                    if tables is not None:
                        return seq, tables, full_seq, base
            if base is not None and full_seq:
                return full_seq, base, full_seq, base
            if not full_seq:
                return None
        return None

    def _read_full(self, seq: int, event_hash: bytes | None) -> fmt.Tables | None:
        if self._event_hash(seq) != event_hash:
            self.warnings.append(
                f"snapshot at seq {seq} does not match the hash chain; ignored (rebuild with 'bankrun snapshot --rebuild')"
            )
            return None
        (blob,) = self._store.execute("SELECT state FROM snapshots WHERE seq = ?", (seq,)).fetchone()
        try:
            with fmt.no_collection():
                tables = fmt.full_tables(fmt.read_record(blob))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            self.warnings.append(f"snapshot at seq {seq} is unreadable ({exc}); ignored")
            return None
        if tables["small"].get("last_seq") != seq:
            self.warnings.append(f"snapshot at seq {seq} claims seq {tables['small'].get('last_seq')}; ignored")
            return None
        return tables

    def _read_delta(self, seq: int, event_hash: bytes, base: fmt.Tables, *, keep_base: bool) -> fmt.Tables | None:
        if self._event_hash(seq) != event_hash:
            self.warnings.append(
                f"snapshot delta at seq {seq} does not match the hash chain; ignored (rebuild with 'bankrun snapshot --rebuild')"
            )
            return None
        (blob,) = self._store.execute("SELECT delta FROM snapshot_deltas WHERE seq = ?", (seq,)).fetchone()
        try:
            with fmt.no_collection():
                record = fmt.read_record(blob)
                claimed = record.get("small", {}).get("last_seq") if isinstance(record.get("small"), dict) else None
                if claimed != seq:  # checked before the base is changed (keep_base=False)
                    self.warnings.append(f"snapshot delta at seq {seq} claims seq {claimed}; ignored")
                    return None
                return fmt.apply_delta(base, record, keep_base=keep_base)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            self.warnings.append(f"snapshot delta at seq {seq} is unreadable ({exc}); ignored")
            return None

    def build_snapshots(self, *, rebuild: bool = False) -> int:
        """Store a full snapshot every ``every`` events up to the head, and a delta every
        ``delta_every`` events between them; return how many full snapshots were written.

        Streams: the books, the tables of the last full snapshot and one record at a time are
        all it holds (memory flat in the log's length)."""
        conn = self._writable()
        try:
            conn.execute(SNAPSHOT_SCHEMA)
            conn.execute(DELTA_SCHEMA)
            if rebuild:
                conn.execute("DELETE FROM snapshots")
                conn.execute("DELETE FROM snapshot_deltas")
            head = self.log.head().seq
            found = self._load_tables(head)
            base: fmt.Tables | None
            if found is None:
                books, base, base_seq = Books(self.policy), None, 0
            else:
                _, tables, base_seq, base = found
                # The books take the tables over: a shallow copy keeps the base's as they were.
                books = fmt.books_from_tables({name: dict(table) for name, table in tables.items()}, self.policy)
            if base is None:
                base = fmt.tables_of(Books(self.policy))
            written = 0
            for record in self.log.iter_records(from_seq=books.last_seq + 1):
                books.apply(record.event, seq=record.seq)
                if record.seq % self.every == 0:
                    base, base_seq = fmt.tables_of(books), record.seq
                    conn.execute(
                        "INSERT OR REPLACE INTO snapshots (seq, event_hash, state, created_at) VALUES (?, ?, ?, ?)",
                        (record.seq, record.hash, fmt.encode_full(base), _now()),
                    )
                    conn.execute("DELETE FROM snapshot_deltas WHERE seq = ?", (record.seq,))
                    written += 1
                elif self.delta_every and record.seq % self.delta_every == 0:
                    delta = fmt.encode_delta(base, fmt.tables_of(books, copy=False), base_seq)
                    conn.execute(
                        "INSERT OR REPLACE INTO snapshot_deltas (seq, base_seq, event_hash, delta, created_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (record.seq, base_seq, record.hash, delta, _now()),
                    )
            self.derived.stamp(self.log.head())
            return written
        except sqlite3.Error as exc:
            raise StorageError(f"{self.derived.path}: cannot write snapshots ({exc})") from None

    def check_snapshots(self) -> list[str]:
        """Prove every stored snapshot (full or delta) against the events: replay the books
        once and compare each snapshot's tables with the books' at its seq. Returns the
        problems (empty if every snapshot is what the events say). A snapshot is a cache: this
        is what ``bankrun verify`` runs so that one edited outside the ledger is found, not used."""
        fulls = {}
        if self._has_snapshots():
            fulls = {
                seq: (bytes(event_hash), blob)
                for seq, event_hash, blob in self._store.execute("SELECT seq, event_hash, state FROM snapshots")
            }
        deltas = {}
        if self._has_table("snapshot_deltas"):
            deltas = {
                seq: (base_seq, bytes(event_hash))
                for seq, base_seq, event_hash in self._store.execute(
                    "SELECT seq, base_seq, event_hash FROM snapshot_deltas"
                )
            }
        if not fulls and not deltas:
            return []
        problems: list[str] = []
        # The tables of each full snapshot (and of the empty books, base 0) that a later delta
        # is over, kept while needed; None for one that is stale or does not match.
        needed = {base for base, _ in deltas.values()}
        last_use = {base: max(s for s, (b, _) in deltas.items() if b == base) for base in needed}
        bases: dict[int, fmt.Tables | None] = {0: fmt.tables_of(Books(self.policy))} if 0 in needed else {}
        stale_deltas = 0
        books = Books(self.policy)
        last = max([*fulls, *deltas])
        head = self.log.head().seq
        for record in self.log.iter_records(to_seq=min(last, head)):
            books.apply(record.event, seq=record.seq)
            if record.seq in fulls:
                event_hash, blob = fulls.pop(record.seq)
                tables = None
                if event_hash != record.hash:
                    problems.append(f"snapshot at seq {record.seq} is tied to another event hash (not this log's history)")
                else:
                    tables = self._check_full(record.seq, blob, books, problems)
                if record.seq in needed:
                    bases[record.seq] = tables
            if record.seq in deltas:
                base_seq, event_hash = deltas.pop(record.seq)
                if event_hash != record.hash:
                    problems.append(f"snapshot delta at seq {record.seq} is tied to another event hash (not this log's history)")
                elif base_seq not in bases:
                    problems.append(
                        f"snapshot delta at seq {record.seq} is over seq {base_seq}, which has no full snapshot before it"
                    )
                elif bases[base_seq] is None:
                    stale_deltas += 1  # over a full snapshot that is stale or was found changed
                else:
                    base = bases[base_seq]
                    assert base is not None
                    self._check_delta(record.seq, base, books, problems)
            for base_seq in [b for b in bases if last_use.get(b, -1) <= record.seq]:
                del bases[base_seq]
        problems += [f"snapshot at seq {seq} is beyond the end of the log" for seq in sorted(fulls)]
        problems += [f"snapshot delta at seq {seq} is beyond the end of the log" for seq in sorted(deltas)]
        if stale_deltas:
            self.warnings.append(
                f"{stale_deltas} snapshot delta(s) are over full snapshots that are stale or changed; "
                "readers skip them: rebuild with 'bankrun snapshot --rebuild'"
            )
        return problems

    def _check_full(self, seq: int, blob: bytes, books: Books, problems: list[str]) -> fmt.Tables | None:
        try:
            record = fmt.read_record(blob)
        except ValueError as exc:
            problems.append(f"snapshot at seq {seq} is unreadable ({exc})")
            return None
        version = record.get("version")
        if isinstance(version, int) and version < fmt.SNAPSHOT_VERSION:
            # Written by an earlier release, in a state format readers no longer load (they
            # skip it, with a warning): stale derived data, not a changed one.
            self.warnings.append(
                f"snapshot at seq {seq} was written in books state version {version} "
                f"(this release writes {fmt.SNAPSHOT_VERSION}); readers skip it: rebuild with "
                "'bankrun snapshot --rebuild'"
            )
            return None
        try:
            tables = fmt.full_tables(record)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            problems.append(f"snapshot at seq {seq} is unreadable ({exc})")
            return None
        if tables != fmt.tables_of(books, copy=False):
            problems.append(f"snapshot at seq {seq} differs from the books the events give at that seq")
            return None
        return tables

    def _check_delta(self, seq: int, base: fmt.Tables, books: Books, problems: list[str]) -> None:
        (blob,) = self._store.execute("SELECT delta FROM snapshot_deltas WHERE seq = ?", (seq,)).fetchone()
        try:
            tables = fmt.apply_delta(base, fmt.read_record(blob))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            problems.append(f"snapshot delta at seq {seq} is unreadable ({exc})")
            return
        if tables != fmt.tables_of(books, copy=False):
            problems.append(f"snapshot delta at seq {seq} differs from the books the events give at that seq")

    def drop_snapshots(self) -> None:
        """Delete every snapshot and delta (they are a cache)."""
        conn = self._writable()
        conn.execute("DROP TABLE IF EXISTS snapshots")
        conn.execute("DROP TABLE IF EXISTS snapshot_deltas")

    # -- point in time ---------------------------------------------------------------------------
    def resolve(self, *, seq: int | None = None, at: datetime | None = None, recorded: datetime | None = None) -> int:
        """The seq a point names: ``seq`` itself, the last event effective at or before ``at``,
        or the last event recorded at or before ``recorded``. Default: the head."""
        given = [x is not None for x in (seq, at, recorded)]
        if sum(given) > 1:
            raise InputError("name one point: seq, at (effective time) or recorded (record time)")
        head = self.log.head().seq
        if seq is not None:
            if seq < 0 or seq > head:
                raise InputError(f"seq {seq} is outside the log (0..{head})")
            return seq
        if at is not None:
            return self.log.seq_at(at)
        if recorded is not None:
            return self.log.seq_recorded(recorded)
        return head

    def as_of(self, *, seq: int | None = None, at: datetime | None = None, recorded: datetime | None = None) -> Books:
        """The books after the point (see :meth:`resolve`), using the nearest snapshot."""
        target = self.resolve(seq=seq, at=at, recorded=recorded)
        books = self._load_snapshot(target) or Books(self.policy)
        if books.last_seq < target:
            for seq, event, _ in self.log.iter_payloads(from_seq=books.last_seq + 1, to_seq=target):
                books.apply(event, seq=seq)
        return books

    # -- account history -------------------------------------------------------------------------
    def history(
        self,
        account: str,
        *,
        asset: str | None = None,
        from_seq: int = 1,
        to_seq: int | None = None,
    ) -> Iterator[HistoryLine]:
        """Every posting to ``account`` (``entity:name``, or an implicit one such as
        ``alameda:claim:ftx:fiat-at``) in ``from_seq..to_seq``, with the running balance.
        Customer accounts are shown from the holder's side."""
        entity, sep, name = account.partition(":")
        if not sep or not name:
            raise InputError(f"{account!r} is not an account reference 'entity:account'")
        known = self.log.registry()
        _require_account(known, account, field="account")
        if asset is not None:
            _require(asset, known.assets, what="asset", field="asset")
        start = max(from_seq, 1)
        books = self.as_of(seq=start - 1)
        info = books.registry.accounts.get(account)
        sign = -1 if info is not None and info.purpose == "customer" else 1
        running: dict[str, int] = defaultdict(int)
        for (e, a, s), minor in books.balances.items():
            if e == entity and a == name:
                running[s] = minor
        for record in self.log.iter_records(from_seq=start, to_seq=to_seq):
            change = books.apply(record.event, seq=record.seq)
            if info is None:
                info = books.registry.accounts.get(account)
                sign = -1 if info is not None and info.purpose == "customer" else 1
            event = record.event
            for p in change.postings:
                if p.entity != entity or p.account != name or (asset is not None and p.asset != asset):
                    continue
                running[p.asset] += p.delta
                yield HistoryLine(
                    record.seq,
                    ev.format_instant(event.at),
                    event.id,
                    event.type,
                    p.asset,
                    books.amount(sign * p.delta, p.asset),
                    books.amount(sign * running[p.asset], p.asset),
                    event.source,
                    event.note,
                    _counterparty(change.postings, p),
                )
            if (
                change.withdrawal_refused
                and isinstance(event, ev.Withdrawal)
                and account in (event.account, event.paid_from)
                and (asset is None or event.asset == asset)
            ):
                yield HistoryLine(
                    record.seq,
                    ev.format_instant(event.at),
                    event.id,
                    event.type,
                    event.asset,
                    books.amount(0, event.asset),
                    books.amount(sign * running[event.asset], event.asset),
                    event.source,
                    event.note,
                    event.paid_from if account == event.account else event.account,
                    f"{event.amount:,f} {event.asset} asked, not paid: {change.withdrawal_refused}",
                )

    # -- fund tracing ------------------------------------------------------------------------------
    def trace(
        self,
        *,
        asset: str,
        deposits_into: str,
        rule: str = "fifo",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> TraceResult:
        """Follow customer deposits of ``asset`` into ``deposits_into`` (a customer account
        ``venue:name``, or a venue to take all its customer accounts) to where they sit at
        ``until`` (default: the head). See ``docs/forensics.md`` for the three rules, what is a
        flow, the cap at each place and the conservation of the traced total."""
        if rule not in TRACE_RULES:
            raise InputError(f"rule: {rule!r} is not one of: {', '.join(TRACE_RULES)}")
        known = self.log.registry()
        _require(asset, known.assets, what="asset", field="asset")
        if ":" in deposits_into:
            _require_account(known, deposits_into, field="deposits_into", purposes=("customer",))
        else:
            _require(deposits_into, known.entities, what="venue", field="deposits_into")
        outside: set[str] = {NEW_ISSUE, GONE}
        tracers: dict[str, _Tracer] = {}  # per asset: every asset is followed (trades cross them)

        def tracer_of(name: str) -> _Tracer:
            found = tracers.get(name)
            if found is None:
                found = tracers[name] = _Tracer(rule, outside)
            return found

        books = Books(self.policy)
        flows: dict[str, list[Flow]] = defaultdict(list)
        received: dict[str, int] = defaultdict(int)
        traced_in = 0
        last = 0
        for record in self.log.iter_records():
            event = record.event
            if until is not None and event.at > until:
                break
            change = books.apply(event, seq=record.seq)
            last = record.seq
            at = ev.format_instant(event.at)

            def flow(name: str, src: str, dst: str, minor: int) -> None:
                flows[name].append(
                    Flow(record.seq, at, event.id, src, dst, books.amount(minor, name), event.source, name)  # noqa: B023
                )

            if isinstance(event, ev.Trade) and change.postings:
                self._trade(books, event, tracer_of, flow, received)
                continue
            if isinstance(event, ev.Resolution) and change.postings:
                _resolve_places(books, change, tracer_of, flow)
                continue
            for name, moves in _movements_by_asset(books, change, outside).items():
                tracer = tracer_of(name)
                starting = (
                    name == asset
                    and isinstance(event, ev.Deposit)
                    and event.asset == asset
                    and (event.account == deposits_into or event.account.partition(":")[0] == deposits_into)
                    and (since is None or event.at >= since)
                )
                for src, dst, minor in moves:
                    carried = tracer.take(src, minor)
                    if starting and dst == event.landed:  # type: ignore[attr-defined]  # a Deposit
                        # A traced deposit: all of it is traced where it lands. The part it carried
                        # from a place already holding traced money is that money coming back; the
                        # rest is new.
                        traced_in += minor - carried
                        carried = minor
                    absorbed = tracer.put(dst, carried, minor - carried)
                    if carried:
                        flow(name, src, dst, carried)
                    if absorbed:
                        flow(name, dst, _deficit(dst), absorbed)
        if asset not in books.registry.assets:
            raise InputError(f"asset: unknown asset {asset!r} in this log")

        def where(name: str) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
            tracer = tracers.get(name)
            if tracer is None:
                return {}, {}
            held = {node: books.amount(t, name) for node, t in sorted(tracer.traced.items()) if t}
            left = {node: books.amount(t, name) for node, t in sorted(tracer.left.items()) if t}
            return held, left

        held, left = where(asset)
        holders = dict(sorted({**held, **left}.items()))
        others = {}
        for name in sorted(received):
            if name != asset and received[name]:
                other_held, other_left = where(name)
                others[name] = AssetTrace(
                    name, books.amount(received[name], name), flows[name], other_held, other_left
                )
        return TraceResult(
            rule, asset, deposits_into, books.amount(traced_in, asset), flows[asset], holders, last, held, left,
            books.amount(received[asset], asset), others,
        )

    @staticmethod
    def _trade(books: Books, event: ev.Trade, tracer_of: Any, flow: Any, received: dict[str, int]) -> None:
        """One trade, both legs at once: the traced part of what each side gives (by the rule)
        continues, in proportion, in what that side receives (``docs/forensics.md``)."""
        outside = tracer_of(event.asset).outside
        legs = (  # (asset, the place it leaves, the place it arrives at, minor units)
            (event.asset, event.seller_from, event.buyer_to, books.registry.minor(event.asset, event.amount)),
            (event.pay_asset, event.buyer_from, event.seller_to, books.registry.minor(event.pay_asset, event.payment)),
        )
        for _, src, dst, _ in legs:
            for ref in (src, dst):
                if books.registry.accounts[ref].purpose == "external":
                    outside.add(ref)
        carried = [tracer_of(name).take(src, minor) for name, src, _, minor in legs]
        for index, (name, src, dst, minor) in enumerate(legs):
            other_name, other_src, _, other_minor = legs[1 - index]
            # What arrives at ``dst`` (this leg's asset) is traced in the share of the traced
            # part of the other leg's payment: carried / what it gave, rounded half-even.
            part = round(Fraction(carried[1 - index] * minor, other_minor)) if carried[1 - index] else 0
            tracer = tracer_of(name)
            absorbed = tracer.put(dst, part, minor - part)
            if carried[index]:
                # This leg's traced money left its place in exchange for the other asset.
                tracer.left[f"(traded for {other_name}) {src}"] += carried[index]
                flow(name, src, f"(traded for {other_name}) {src}", carried[index])
            if part:
                received[name] += part
                flow(name, other_src, dst, part)
            if absorbed:
                flow(name, dst, _deficit(dst), absorbed)

    # -- diff ----------------------------------------------------------------------------------------
    def diff(self, a: int, b: int) -> Diff:
        """Balances, loans, prices and open violations that differ between seq ``a`` and ``b``
        (a < b), with the events in between that touched each changed balance."""
        if a > b:
            a, b = b, a
        books = self.as_of(seq=a)
        before_bal = dict(books.balances)
        before_loans = {r["target"]: r for r in books.loans_view()}
        before_prices = dict(books.prices)
        touched: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for record in self.log.iter_records(from_seq=a + 1, to_seq=b):
            change = books.apply(record.event, seq=record.seq)
            for p in change.postings:
                ids = touched[(p.entity, p.account, p.asset)]
                if not ids or ids[-1] != record.event.id:
                    ids.append(record.event.id)
        balances = []
        for key in sorted(set(before_bal) | set(books.balances)):
            old, new = before_bal.get(key, 0), books.balances.get(key, 0)
            if old != new:
                e, acct, s = key
                balances.append(
                    {
                        "entity": e, "account": acct, "asset": s,
                        "before": books.amount(old, s), "after": books.amount(new, s),
                        "change": books.amount(new - old, s), "events": touched.get(key, []),
                    }
                )
        after_loans = {r["target"]: r for r in books.loans_view()}
        loans = [
            {"target": t, "before": before_loans.get(t), "after": after_loans.get(t)}
            for t in sorted(set(before_loans) | set(after_loans))
            if before_loans.get(t) != after_loans.get(t)
        ]
        prices = [
            {"asset": s, "before": before_prices.get(s), "after": books.prices.get(s)}
            for s in sorted(set(before_prices) | set(books.prices))
            if before_prices.get(s) != books.prices.get(s)
        ]
        open_a, open_b = self._open_violations(a, b)
        opened = [v for k, v in sorted(open_b.items()) if k not in open_a]
        closed = [v for k, v in sorted(open_a.items()) if k not in open_b]
        return Diff(a, b, balances, loans, prices, opened, closed)

    def _open_violations(self, a: int, b: int) -> tuple[dict, dict]:
        run = Replay(self.log, self.policy, metrics=False)
        open_now: dict[tuple[str, str], dict[str, Any]] = {}
        at_a: dict[tuple[str, str], dict[str, Any]] = {}  # stays empty when a == 0
        for step in run:
            for v in step.opened:
                open_now[(v.invariant, v.subject)] = v.to_dict()
            for v in step.closed:
                open_now.pop((v.invariant, v.subject), None)
            if step.seq == a:
                at_a = dict(open_now)
            if step.seq >= b:
                break
        return at_a, dict(open_now)

    # -- derived tables --------------------------------------------------------------------------
    def iter_postings(self) -> Iterator[dict[str, Any]]:
        """Every posting of the log, in order, with the balance after it (exact decimals)."""
        books = Books(self.policy)
        for record in self.log.iter_records():
            change = books.apply(record.event, seq=record.seq)
            for p in change.postings:
                scale = books.registry.scale(p.asset)
                after = books.balances.get((p.entity, p.account, p.asset), 0)
                yield {
                    "seq": record.seq,
                    "event_id": record.event.id,
                    "type": record.event.type,
                    "at": ev.format_instant(record.event.at),
                    "entity": p.entity,
                    "account": p.account,
                    "asset": p.asset,
                    "scale": scale,
                    "delta_minor": p.delta,
                    "delta": ev.format_decimal(ev.from_minor(p.delta, scale)),
                    "balance_after_minor": after,
                    "balance_after": ev.format_decimal(ev.from_minor(after, scale)),
                }

    def iter_violations(self) -> Iterator[dict[str, Any]]:
        """Every violation of the replay, with the seq that opened and (if any) closed it."""
        run = Replay(self.log, self.policy, metrics=False)
        opened: dict[tuple[str, str], dict[str, Any]] = {}
        for step in run:
            for v in step.opened:
                opened[(v.invariant, v.subject)] = {**v.to_dict(), "closed_seq": None, "closed_at": None}
            for v in step.closed:
                row = opened.pop((v.invariant, v.subject))
                row["closed_seq"] = step.seq
                row["closed_at"] = ev.format_instant(step.event.at)
                yield row
        yield from sorted(opened.values(), key=lambda r: (r["seq"], r["invariant"], r["subject"]))

    def materialize(self) -> dict[str, int]:
        """(Re)write projection tables ``postings``, ``balances``, ``violations``, ``loans`` and
        ``prices`` into the log's database with sqlite-utils. Money is exact: text decimals and
        minor units with the scale alongside; a minor-units value is an INTEGER when it fits in
        a signed 64-bit integer, else its decimal digits as TEXT (see :func:`sql_minor`; the
        ``*_minor`` columns are ``ANY`` in STRICT tables, so SQLite keeps either exactly).
        Returns row counts."""
        # Imported here, not at the top: sqlite-utils imports numpy when it is installed, a
        # fifth of every CLI process's start-up, and only this command needs it.
        import sqlite_utils

        db = sqlite_utils.Database(self._writable())
        counts: dict[str, int] = {}
        try:
            for name in ("postings", "balances", "violations", "loans", "prices"):
                if db[name].exists():
                    db[name].drop()
            db.table("postings").insert_all(
                (
                    {**row, "delta_minor": sql_minor(row["delta_minor"]), "balance_after_minor": sql_minor(row["balance_after_minor"])}
                    for row in self.iter_postings()
                ),
                batch_size=5000,
                columns=_POSTINGS_COLUMNS,
                strict=True,
            )
            books = self.as_of()
            db.table("balances").insert_all(
                (
                    {
                        "entity": e, "account": a, "asset": s, "scale": books.registry.scale(s),
                        "balance_minor": sql_minor(m), "balance": ev.format_decimal(books.amount(m, s)),
                        "class": books.classify(e, a)[0],
                    }
                    for (e, a, s), m in books.iter_balances()
                ),
                pk=("entity", "account", "asset"),
                columns=_BALANCES_COLUMNS,
                strict=True,
            )
            violations = [
                {**v, "contributing": json.dumps(v["contributing"]), "source": json.dumps(v["source"])}
                for v in self.iter_violations()
            ]
            db.table("violations").insert_all(violations, columns={"closed_seq": int, "closed_at": str})
            loans = [
                {k: (json.dumps(v, default=str) if isinstance(v, dict) else (str(v) if isinstance(v, Decimal) else v)) for k, v in row.items()}
                for row in books.loans_view()
            ]
            db.table("loans").insert_all(loans, pk="target")
            prices = []
            for record in self.log.iter_records():
                e = record.event
                if isinstance(e, ev.PriceUpdated):
                    prices.append({"seq": record.seq, "at": ev.format_instant(e.at), "asset": e.asset, "quote": e.quote, "price": ev.format_decimal(e.price)})
            db.table("prices").insert_all(prices, columns={"price": str})
            for name in ("postings", "balances", "violations", "loans", "prices"):
                counts[name] = db[name].count if db[name].exists() else 0
            self.derived.stamp(self.log.head())
        except sqlite3.Error as exc:
            raise StorageError(f"{self.derived.path}: cannot write projection tables ({exc})") from None
        return counts


NEW_ISSUE = "(new issue)"  # where newly minted units come from
GONE = "(gone)"  # where units go that leave the places with no physical counterpart


def _now() -> str:
    return ev.format_instant(datetime.now().astimezone())


def _counterparty(postings: Iterable[Any], posting: Any) -> str:
    """The accounts on the other side of ``posting`` in its event: the postings of the same
    asset with the opposite sign (at most three named), leaving out the holder's mirror of a
    customer account (``holder:claim:venue:account``), which is the same money seen from the
    other side, not a counterparty."""
    me = f"{posting.entity}:{posting.account}"
    others = []
    for q in postings:
        ref = f"{q.entity}:{q.account}"
        if q.account == f"claim:{me}" or posting.account == f"claim:{ref}":
            continue
        if q.asset == posting.asset and (q.delta < 0) != (posting.delta < 0) and ref != me:
            if ref not in others:
                others.append(ref)
    return ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")


def _deficit(node: str) -> str:
    """Where traced money goes that makes good a negative balance at ``node``."""
    return f"(deficit) {node}"


SQLITE_INT_MIN, SQLITE_INT_MAX = -(2**63), 2**63 - 1

# Column types of the two tables with minor units (the others are inferred by sqlite-utils).
_POSTINGS_COLUMNS = {
    "seq": int, "event_id": str, "type": str, "at": str, "entity": str, "account": str, "asset": str,
    "scale": int, "delta_minor": "ANY", "delta": str, "balance_after_minor": "ANY", "balance_after": str,
}
_BALANCES_COLUMNS = {
    "entity": str, "account": str, "asset": str, "scale": int, "balance_minor": "ANY", "balance": str, "class": str,
}


def sql_minor(minor: int) -> int | str:
    """A minor-units value as the derived tables store it: the integer itself when SQLite
    INTEGER holds it exactly (a signed 64-bit integer), else its decimal digits as text
    (``"-18000000000000000001"``). ``int()`` of what is read back is the exact value."""
    if SQLITE_INT_MIN <= minor <= SQLITE_INT_MAX:
        return minor
    return str(minor)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'X'?)' for the closest known name, or '' when none is close."""
    names = sorted(set(known))
    folded = {n.casefold(): n for n in names}
    if name.casefold() in folded:
        return f" (did you mean {folded[name.casefold()]!r}?)"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _require(name: str, known: Iterable[str], *, what: str, field: str) -> None:
    """Refuse a name the log does not know, with a did-you-mean drawn from the log."""
    names = set(known)
    if name not in names:
        listed = ", ".join(sorted(names)[:12]) + (", ..." if len(names) > 12 else "")
        raise InputError(
            f"{field}: unknown {what} {name!r}{did_you_mean(name, names)}; the log knows: {listed or 'none'}"
        )


def _require_account(
    registry: Registry, account: str, *, field: str, purposes: tuple[str, ...] = ()
) -> None:
    """A declared account (of one of ``purposes``, if given), or an implicit account of a known
    entity (``claim:``, ``due-from:``, ``loan:``... see docs/model.md)."""
    entity, _, name = account.partition(":")
    info = registry.accounts.get(account)
    if info is not None:
        if purposes and info.purpose not in purposes:
            raise InputError(
                f"{field}: {account!r} is a {info.purpose} account; expected a {' or '.join(purposes)} account"
            )
        return
    implicit = name in RESERVED_NAMES or name.partition(":")[0] in RESERVED_PREFIXES
    if implicit and entity in registry.entities and not purposes:
        return
    candidates = [a for a, i in registry.accounts.items() if not purposes or i.purpose in purposes]
    raise InputError(f"{field}: unknown account {account!r}{did_you_mean(account, candidates)}")


def _movements_by_asset(books: Books, change: Change, outside: set[str]) -> dict[str, list[tuple[str, str, int]]]:
    """:func:`_movements` for every asset the event moved, in the order first moved."""
    found: dict[str, list[tuple[str, str, int]]] = {}
    for name in dict.fromkeys(p.asset for p in change.postings if p.delta):
        moves = _movements(books, change, name, outside)
        if moves:
            found[name] = moves
    return found


def _resolve_places(books: Books, change: Change, tracer_of: Any, flow: Any) -> None:
    """A resolution moves each named holdings account whole to the acquirer: in every asset,
    its balance, its traced part and (FIFO) its lots in order go to ``to_entity:name``."""
    for name in dict.fromkeys(p.asset for p in change.postings if p.delta):
        tracer = tracer_of(name)
        for src, dst, minor in _movements(books, change, name, tracer.outside):
            if tracer.balance.get(src, 0) == minor and tracer.balance.get(dst, 0) >= 0 and minor > 0:
                carried = tracer.move_whole(src, dst)
            else:  # a negative balance on either side: the ordinary rules (deficits first)
                carried = tracer.take(src, minor)
                absorbed = tracer.put(dst, carried, minor - carried)
                if absorbed:
                    flow(name, dst, _deficit(dst), absorbed)
            if carried:
                flow(name, src, dst, carried)


def _movements(books: Books, change: Change, asset: str, outside: set[str]) -> list[tuple[str, str, int]]:
    """Physical movements of ``asset`` in one event, as (from, to, minor), from its postings.

    Holdings, custody and pledged accounts are places where funds sit; external accounts (a
    customer's implicit ``external`` account, an account opened as ``external``) are the world
    outside the model, and are added to ``outside``. Every unit that leaves a place is matched
    to where it arrives; units that appear with no source come from :data:`NEW_ISSUE` (a mint),
    units that vanish go to :data:`GONE` (no event does this today), so that each place's
    balance here is exactly its balance in the books. A movement from a place to itself is none.
    """
    outs: list[list[Any]] = []
    ins: list[list[Any]] = []
    for p in change.postings:
        if p.asset != asset or p.delta == 0:
            continue
        cls, _ = books.classify(p.entity, p.account)
        if cls not in _PHYSICAL:
            continue
        node = f"{p.entity}:{p.account}"
        if cls == EXTERNAL:
            outside.add(node)
        (ins if p.delta > 0 else outs).append([node, abs(p.delta)])
    moves: list[tuple[str, str, int]] = []
    i = 0
    for node, minor in ins:
        while minor > 0 and i < len(outs):
            take = min(minor, outs[i][1])
            if outs[i][0] != node:
                moves.append((outs[i][0], node, take))
            outs[i][1] -= take
            minor -= take
            if outs[i][1] == 0:
                i += 1
        if minor > 0:
            moves.append((NEW_ISSUE, node, minor))
    for node, minor in outs[i:]:
        if minor > 0:
            moves.append((node, GONE, minor))
    return moves


class _Tracer:
    """Per place: its balance and the traced part of it, moved by the chosen rule.

    Invariants (``docs/forensics.md``): ``0 <= traced[p] <= max(balance[p], 0)`` at every
    place; under FIFO the lots of a place add up to ``max(balance[p], 0)``; nothing traced is
    ever taken from outside (an external account, :data:`NEW_ISSUE`); traced money that goes
    outside, or makes good a deficit, is added to ``left`` and stays there.
    """

    def __init__(self, rule: str, outside: set[str] | None = None) -> None:
        self.rule = rule
        self.balance: dict[str, int] = defaultdict(int)
        self.traced: dict[str, int] = defaultdict(int)
        self.lots: dict[str, deque[list[Any]]] = defaultdict(deque)  # FIFO: [amount, traced], oldest first
        self.left: dict[str, int] = defaultdict(int)
        self.outside: set[str] = outside if outside is not None else {NEW_ISSUE, GONE}

    def move_whole(self, src: str, dst: str) -> int:
        """Move all of ``src`` (balance > 0) onto ``dst`` (balance >= 0), its lots after
        ``dst``'s own; return the traced amount moved."""
        minor, traced = self.balance.pop(src), self.traced.pop(src, 0)
        self.balance[dst] += minor
        self.traced[dst] += traced
        if self.rule == "fifo":
            lots = self.lots[dst]
            for lot in self.lots.pop(src, deque()):
                if lots and lots[-1][1] == lot[1]:
                    lots[-1][0] += lot[0]
                else:
                    lots.append(list(lot))
        return traced

    def take(self, src: str, minor: int) -> int:
        """Take ``minor`` out of ``src``; return the traced part of it (by the rule)."""
        if src in self.outside:
            return 0
        traced = self.traced[src]
        balance = self.balance[src]
        if self.rule == "fifo":
            carried, need = 0, minor
            lots = self.lots[src]
            while need > 0 and lots:
                lot = lots[0]
                part = min(need, lot[0])
                if lot[1]:
                    carried += part
                lot[0] -= part
                need -= part
                if lot[0] == 0:
                    lots.popleft()
        elif self.rule == "pro-rata":
            if traced == 0:
                carried = 0
            elif minor >= balance:  # the place is emptied (or overdrawn): all its traced money goes
                carried = traced
            else:  # traced <= balance, so this is at most ``traced`` and at most ``minor``
                carried = round(Fraction(minor * traced, balance))
        else:  # libr: the place's own (untraced) money goes first
            untraced = max(balance, 0) - traced
            carried = min(traced, max(minor - untraced, 0))
        self.balance[src] = balance - minor
        self.traced[src] = traced - carried
        return carried

    def put(self, dst: str, traced: int, untraced: int) -> int:
        """Add ``traced + untraced`` to ``dst``; return the traced part absorbed by a deficit.

        At a place whose balance is negative, the arrival first makes good the deficit, with
        its untraced part first; traced money used so is recorded as left to ``(deficit) dst``.
        """
        if dst in self.outside:
            self.left[dst] += traced
            return 0
        balance = self.balance[dst]
        deficit = max(-balance, 0)
        fill_untraced = min(deficit, untraced)
        absorbed = min(deficit - fill_untraced, traced)
        self.balance[dst] = balance + traced + untraced
        traced -= absorbed
        untraced -= fill_untraced
        self.traced[dst] += traced
        if absorbed:
            self.left[_deficit(dst)] += absorbed
        if self.rule == "fifo":
            lots = self.lots[dst]
            for amount, flag in ((traced, True), (untraced, False)):
                if not amount:
                    continue
                if lots and lots[-1][1] == flag:
                    lots[-1][0] += amount
                else:
                    lots.append([amount, flag])
        return absorbed
