"""The Log: append and read back, idempotency, conflicts, all-or-nothing batches, optimistic
concurrency, append-only triggers, connection settings, streaming, seq_at, reopening."""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from conftest import head_signature
from hypothesis import given
from hypothesis import strategies as st
from strategies import START, base_history, deposit, histories, linear_history

import events as ev
import replays
from ledger.errors import ConflictError, HeadMismatchError, InputError, StorageError
from ledger.store import GENESIS_HASH, Log, chain_hash

SMALL = Path(replays.__file__).parent / "small_example.toml"


def raw(path) -> sqlite3.Connection:
    """A plain sqlite3 connection, as someone bypassing the library would open it."""
    return sqlite3.connect(path, isolation_level=None)


# -- append and read back ---------------------------------------------------------------------
def test_append_then_read_back(fresh_log):
    history = linear_history(5)
    result = fresh_log.append(history)
    n = len(history)
    assert result.appended == [(i + 1, e.id) for i, e in enumerate(history)]
    assert result.existing == []
    records = list(fresh_log.iter_records())
    assert [r.seq for r in records] == list(range(1, n + 1))
    assert [r.event for r in records] == history
    assert [r.payload for r in records] == [ev.canonical_json(e) for e in history]
    # The chain: genesis, then each row's prev_hash is the previous row's hash.
    prev = GENESIS_HASH
    for r in records:
        assert r.prev_hash == prev
        assert r.hash == chain_hash(prev, r.seq, r.recorded_at, r.payload.encode("utf-8"))
        prev = r.hash
    assert result.head.seq == n and result.head.hash == prev
    assert fresh_log.head() == result.head
    assert len(fresh_log) == n
    assert str(result) == f"appended {n} event(s); head seq {n} {prev.hex()[:16]}"
    assert fresh_log.get("d3").seq == 14 and fresh_log.get("d3").event == history[13]
    assert fresh_log.get("nope") is None
    assert fresh_log.verify().events_checked == n


@given(histories(max_events=25))
def test_any_valid_history_is_accepted_and_read_back_exactly(history):
    with tempfile.TemporaryDirectory() as tmp:
        with Log.open(Path(tmp) / "l.db", create=True) as log:
            result = log.append(history)
            assert [seq for seq, _ in result.appended] == list(range(1, len(history) + 1))
            assert list(log.iter_events()) == history
            assert log.verify().head == result.head


def test_empty_append_is_a_no_op(fresh_log, log_path):
    fresh_log.append(base_history())
    before = head_signature(log_path)
    result = fresh_log.append([])
    assert (result.appended, result.existing, result.head) == ([], [], fresh_log.head())
    assert head_signature(log_path) == before


def test_a_new_log_is_empty(fresh_log):
    assert fresh_log.head().seq == 0 and fresh_log.head().hash == bytes(32)
    assert list(fresh_log.iter_records()) == []
    assert fresh_log.verify().events_checked == 0


def test_open_refuses_a_missing_file_and_a_non_ledger(tmp_path):
    with pytest.raises(StorageError, match=r"no ledger here; create one with 'bankrun init'"):
        Log.open(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match=r"not a ledger database"):
        Log.open(other, readonly=True)
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StorageError, match=r"junk.db"):
        Log.open(tmp_path / "junk.db")


# -- idempotency ------------------------------------------------------------------------------
def test_the_same_file_twice_appends_nothing_the_second_time(fresh_log, log_path):
    timeline = replays.load_toml(SMALL)
    first = fresh_log.append(timeline.events, where=timeline.where)
    n = len(timeline.events)
    assert len(first.appended) == n == 24
    before = head_signature(log_path)
    second = fresh_log.append(timeline.events, where=timeline.where)
    assert second.appended == []
    assert second.existing == [(i + 1, e.id) for i, e in enumerate(timeline.events)]
    assert second.head == first.head
    assert str(second).startswith("appended 0 event(s), 24 already recorded; head seq 24 ")
    assert head_signature(log_path) == before


def test_same_id_same_content_returns_the_existing_seq(fresh_log, log_path):
    fresh_log.append(linear_history(3))
    before = head_signature(log_path)
    again = deposit("d2", "2.02", minute=2)
    result = fresh_log.append([again])
    assert result.appended == [] and result.existing == [(13, "d2")]
    assert head_signature(log_path) == before


def test_equal_content_spelled_differently_is_the_same_event(fresh_log):
    fresh_log.append([*base_history(), deposit("d1", "10.50")])
    respelled = ev.Deposit(
        id="d1", at=(START + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=5))),
        source=["S"], account="ex:cust", asset="USD", amount=Decimal("10.500"), landed="ex:custody",
    )
    assert fresh_log.append([respelled]).existing == [(12, "d1")]


def test_a_batch_that_extends_a_prefix_appends_only_the_suffix(fresh_log):
    history = linear_history(6)
    fresh_log.append(history[:13])
    result = fresh_log.append(history)
    assert result.existing == [(i + 1, e.id) for i, e in enumerate(history[:13])]
    assert result.appended == [(i + 1, e.id) for i, e in enumerate(history) if i >= 13]
    assert list(fresh_log.iter_events()) == history


# -- conflicts --------------------------------------------------------------------------------
def test_same_id_different_content_is_a_conflict_naming_the_field(fresh_log, log_path):
    fresh_log.append(linear_history(3))
    before = head_signature(log_path)
    changed = deposit("d2", "2.50", minute=2)
    with pytest.raises(ConflictError) as info:
        fresh_log.append([deposit("d4", minute=5), changed])
    err = info.value
    assert (err.event_id, err.seq, err.fields) == ("d2", 13, ["amount"])
    assert str(err) == "event_id 'd2' already recorded at seq 13 with different amount (2.02 ≠ 2.5)"
    assert head_signature(log_path) == before


def test_conflict_lists_every_differing_field_type_first(fresh_log, log_path):
    fresh_log.append(linear_history(1))
    before = head_signature(log_path)
    other = ev.Withdrawal(id="d1", at=START + timedelta(minutes=1), source=["S"], account="ex:cust",
                          asset="USD", amount="9", paid_from="ex:custody")
    with pytest.raises(ConflictError) as info:
        fresh_log.append([other])
    assert info.value.fields == ["type", "amount", "landed", "paid_from"]
    assert "with different type (deposit ≠ withdrawal)" in str(info.value)
    noted = attrs.evolve(deposit("d1", "1.01", minute=1), note="a late note")
    with pytest.raises(ConflictError, match=r"with different note \(None ≠ a late note\)"):
        fresh_log.append([noted])
    assert head_signature(log_path) == before


# -- all or nothing ---------------------------------------------------------------------------
def test_a_batch_with_one_bad_event_appends_nothing(fresh_log, log_path):
    fresh_log.append(base_history())
    before = head_signature(log_path)
    good = [deposit(f"g{i}", minute=i) for i in range(1, 6)]
    bad = attrs.evolve(deposit("bad", minute=3), account="ex:nobody")
    with pytest.raises(InputError) as info:
        fresh_log.append([*good[:3], bad, *good[3:]])
    (problem,) = info.value.problems
    assert (problem.index, problem.event_id, problem.field) == (3, "bad", "account")
    assert problem.message == "account: unknown account 'ex:nobody' (no account_opened before)"
    assert str(info.value) == "event 4 (bad): account: unknown account 'ex:nobody' (no account_opened before)"
    assert head_signature(log_path) == before
    # The refused batch left no trace in the registry either: the same log takes the good part.
    assert [s for s, _ in fresh_log.append(good).appended] == [12, 13, 14, 15, 16]


def test_every_problem_of_a_batch_is_reported_up_to_20(fresh_log, log_path):
    fresh_log.append(base_history())
    before = head_signature(log_path)
    batch = [attrs.evolve(deposit(f"b{i}", minute=i), asset="EUR") for i in range(1, 31)]
    with pytest.raises(InputError) as info:
        fresh_log.append(batch)
    assert len(info.value.problems) == 20
    assert [p.index for p in info.value.problems] == list(range(20))
    assert str(info.value).splitlines()[0] == "20 problems:"
    assert head_signature(log_path) == before


def test_a_refused_batch_does_not_leave_its_declarations_behind(fresh_log, log_path):
    fresh_log.append(base_history())
    before = head_signature(log_path)
    opened = ev.AccountOpened(id="account:ex:new", at=START + timedelta(minutes=5), source=["S"],
                              account="ex:new", purpose="corporate")
    bad = attrs.evolve(deposit("bad", minute=6), asset="EUR")
    with pytest.raises(InputError):
        fresh_log.append([opened, bad])
    assert head_signature(log_path) == before
    uses_new = ev.Transfer(id="t", at=START + timedelta(minutes=7), source=["S"], from_account="ex:new",
                           to_account="ex:treasury", asset="USD", amount="1")
    with pytest.raises(InputError, match=r"from_account: unknown account 'ex:new'"):
        fresh_log.append([uses_new])
    # Nor its time: an event earlier than the refused batch (but not than the head) is fine.
    assert fresh_log.append([deposit("early", minute=1)]).appended == [(12, "early")]


def test_duplicate_ids_inside_one_batch_are_refused(fresh_log, log_path):
    fresh_log.append(base_history())
    before = head_signature(log_path)
    with pytest.raises(InputError, match=r"^event 3 \(x\): id: duplicate event_id 'x' \(events 1 and 3\)$"):
        fresh_log.append([deposit("x", minute=1), deposit("y", minute=1), deposit("x", minute=1)])
    # Two lines of one file are named as the loaders name them; places in two files in full.
    with pytest.raises(InputError, match=r"^f.toml:40: id: duplicate event_id 'x' \(line 10 and line 40\)$"):
        fresh_log.append([deposit("x", minute=1), deposit("x", minute=1)], where=["f.toml:10", "f.toml:40"])
    with pytest.raises(InputError, match=r"^g.toml:40: id: duplicate event_id 'x' \(f.toml:10 and g.toml:40\)$"):
        fresh_log.append([deposit("x", minute=1), deposit("x", minute=1)], where=["f.toml:10", "g.toml:40"])
    assert head_signature(log_path) == before


def test_time_may_not_go_backwards_across_appends(fresh_log, log_path):
    fresh_log.append(linear_history(3))
    before = head_signature(log_path)
    with pytest.raises(InputError, match=r"at: 2022-01-01T00:02:00Z is before the previous event's 2022-01-01T00:03:00Z"):
        fresh_log.append([deposit("late", minute=2)])
    assert head_signature(log_path) == before
    assert fresh_log.append([deposit("tie", minute=3)]).appended == [(15, "tie")]


def test_a_guard_that_raises_refuses_the_batch_and_rolls_back(fresh_log, log_path):
    fresh_log.append(base_history())
    before = head_signature(log_path)
    seen = []

    class Refused(Exception):
        pass

    def guard(registry, batch):
        seen.append([e.id for e in batch])
        raise Refused("no")

    opened = ev.AccountOpened(id="account:ex:new", at=START, source=["S"], account="ex:new", purpose="corporate")
    with pytest.raises(Refused):
        fresh_log.append([opened, deposit("d1")], guard=guard)
    assert seen == [["account:ex:new", "d1"]]
    assert head_signature(log_path) == before
    assert "ex:new" not in fresh_log.registry().accounts


# -- optimistic concurrency -------------------------------------------------------------------
def test_expected_head_mismatch_writes_nothing(fresh_log, log_path):
    fresh_log.append(linear_history(2))
    before = head_signature(log_path)
    with pytest.raises(HeadMismatchError) as info:
        fresh_log.append([deposit("d3", minute=3)], expected_head=12)
    assert (info.value.expected, info.value.actual) == (12, 13)
    assert str(info.value) == (
        "expected head seq 12 but the log is at seq 13; another writer appended first: re-read and retry"
    )
    assert head_signature(log_path) == before
    assert fresh_log.append([deposit("d3", minute=3)], expected_head=13).appended == [(14, "d3")]


# -- append-only guard ------------------------------------------------------------------------
@pytest.mark.parametrize("recursive", [False, True])
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE events SET payload = payload WHERE seq = 3", "events are append-only: UPDATE refused"),
        ("UPDATE events SET event_id = 'x' WHERE seq = 3", "events are append-only: UPDATE refused"),
        ("DELETE FROM events WHERE seq = 12", "events are append-only: DELETE refused"),
        ("DELETE FROM events", "events are append-only: DELETE refused"),
        ("INSERT OR REPLACE INTO events SELECT * FROM events WHERE seq = 3", "seq must continue the log without a gap"),
        ("REPLACE INTO events SELECT * FROM events WHERE seq = 12", "seq must continue the log without a gap"),
        ("INSERT INTO events SELECT seq + 2, 'new', type, occurred_at, recorded_at, payload, prev_hash, hash FROM events WHERE seq = 12",
         "seq must continue the log without a gap"),
    ],
)
def test_raw_sql_cannot_change_history(log_path, sql, message, recursive):
    with Log.open(log_path, create=True) as log:
        log.append(linear_history(1))
    before = head_signature(log_path)
    conn = raw(log_path)
    if recursive:
        conn.execute("PRAGMA recursive_triggers = ON")
    with pytest.raises(sqlite3.IntegrityError, match=message):
        conn.execute(sql)
    conn.close()
    assert head_signature(log_path) == before


REPLACE_BY_ID = (
    "INSERT OR REPLACE INTO events SELECT seq + 1, event_id, type, occurred_at, recorded_at, "
    "payload, prev_hash, hash FROM events WHERE seq = 12"
)


def test_replace_is_refused_on_connections_with_recursive_triggers(log_path):
    # REPLACE of a row by event_id deletes the old row; only a connection with
    # recursive_triggers=ON fires the DELETE trigger for it. Every Log connection sets it.
    with Log.open(log_path, create=True) as log:
        log.append(linear_history(1))
        before = head_signature(log_path)
        with pytest.raises(sqlite3.IntegrityError, match="events are append-only: DELETE refused"):
            log.connection.execute(REPLACE_BY_ID)
    conn = raw(log_path)
    conn.execute("PRAGMA recursive_triggers = ON")
    with pytest.raises(sqlite3.IntegrityError, match="events are append-only: DELETE refused"):
        conn.execute(REPLACE_BY_ID)
    conn.close()
    assert head_signature(log_path) == before


def test_replace_without_recursive_triggers_slips_past_the_triggers_but_not_verify(log_path):
    # The documented limit: a plain connection does not fire DELETE triggers for REPLACE.
    # The hash chain is what catches it.
    with Log.open(log_path, create=True) as log:
        log.append(linear_history(1))
    conn = raw(log_path)
    conn.execute(REPLACE_BY_ID)
    assert conn.execute("SELECT min(seq), max(seq), count(*) FROM events").fetchone() == (1, 13, 12)
    conn.close()
    from ledger.errors import VerificationError

    with Log.open(log_path, readonly=True) as log, pytest.raises(VerificationError) as info:
        log.verify()
    assert (info.value.kind, info.value.seq) == ("gap", 12)


def test_schema_is_strict_and_guarded(fresh_log):
    conn = fresh_log.connection
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    assert sql.rstrip().endswith("STRICT")
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {"events_refuse_update", "events_refuse_delete", "events_gapless"}
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        conn.execute(
            "INSERT INTO events VALUES (1, 'x', 'deposit', 'a', 'b', 'not json', zeroblob(32), zeroblob(32))"
        )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        conn.execute("INSERT INTO events VALUES (1, 'x', 'deposit', 'a', 'b', '{}', zeroblob(31), zeroblob(32))")


# -- connection settings ----------------------------------------------------------------------
def _pragmas(conn):
    return {
        name: conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "synchronous", "busy_timeout", "recursive_triggers", "foreign_keys", "query_only")
    }


def test_every_log_connection_has_the_promised_settings(log_path):
    with Log.open(log_path, create=True) as log:
        assert _pragmas(log.connection) == {
            "journal_mode": "wal", "synchronous": 2, "busy_timeout": 5000,
            "recursive_triggers": 1, "foreign_keys": 1, "query_only": 0,
        }
    with Log.open(log_path, busy_timeout_ms=1234) as log:
        assert _pragmas(log.connection)["busy_timeout"] == 1234
    # A read-only log with no writer reads the file as immutable (no -wal/-shm is created, see
    # tests/test_evidence.py); with a writer connected it reads through the WAL.
    with Log.open(log_path, readonly=True) as log:
        assert _pragmas(log.connection) == {
            "journal_mode": "delete", "synchronous": 2, "busy_timeout": 5000,
            "recursive_triggers": 1, "foreign_keys": 1, "query_only": 1,
        }
    with Log.open(log_path) as writer, Log.open(log_path, readonly=True) as log:
        writer.head()
        assert _pragmas(log.connection) == {
            "journal_mode": "wal", "synchronous": 2, "busy_timeout": 5000,
            "recursive_triggers": 1, "foreign_keys": 1, "query_only": 1,
        }
    # WAL is a property of the file: a plain connection sees it too.
    conn = raw(log_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_read_only_log_cannot_append(log_path):
    with Log.open(log_path, create=True) as log:
        log.append(base_history())
    before = head_signature(log_path)
    with Log.open(log_path, readonly=True) as log, pytest.raises(StorageError):
        log.append([deposit("d1")])
    assert head_signature(log_path) == before


# -- reading ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def log_of_57(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "l.db"
    with Log.open(path, create=True) as log:
        log.append(linear_history(46))
    log = Log.open(path, readonly=True)
    yield log
    log.close()


@given(
    from_seq=st.integers(-2, 62),
    to_seq=st.none() | st.integers(-2, 62),
    batch_size=st.integers(1, 70),
)
def test_iter_records_streams_exactly_the_requested_range(log_of_57, from_seq, to_seq, batch_size):
    got = [r.seq for r in log_of_57.iter_records(from_seq=from_seq, to_seq=to_seq, batch_size=batch_size)]
    last = 57 if to_seq is None else min(to_seq, 57)
    assert got == list(range(max(from_seq, 1), last + 1))


def test_iter_events_matches_records(log_of_57):
    assert list(log_of_57.iter_events(from_seq=10, to_seq=12)) == linear_history(46)[9:12]


@given(
    offsets=st.lists(st.integers(0, 5_000_000), min_size=0, max_size=30),
    probes=st.lists(st.integers(-1_000_000, 6_000_000), min_size=1, max_size=10),
)
def test_seq_at_matches_a_linear_scan(offsets, probes):
    offsets.sort()  # effective times never go backwards; ties happen
    history = base_history() + [
        ev.Deposit(id=f"d{i}", at=START + timedelta(microseconds=o * 7919), source=["S"], account="ex:cust",
                   asset="USD", amount="1", landed="ex:custody")
        for i, o in enumerate(offsets)
    ]
    with tempfile.TemporaryDirectory() as tmp, Log.open(Path(tmp) / "l.db", create=True) as log:
        log.append(history)
        candidates = [START + timedelta(microseconds=p * 7919) for p in probes]
        candidates += [e.at for e in history] + [e.at - timedelta(microseconds=1) for e in history]
        for when in candidates:
            linear = max((i + 1 for i, e in enumerate(history) if e.at <= when), default=0)
            assert log.seq_at(when) == linear, when


def test_seq_at_on_an_empty_log_is_zero(fresh_log):
    assert fresh_log.seq_at(START) == 0


# -- reopening --------------------------------------------------------------------------------
def test_reopen_and_keep_appending_with_the_registry_persisted(log_path):
    loan = ev.LoanOpened(id="loan", at=START + timedelta(minutes=1), source=["S"], loan="L1", lender="bank",
                         borrower="aff", asset="USD", principal="100.00", disbursed_from="bank:vault",
                         disbursed_to="aff:bank")
    with Log.open(log_path, create=True) as log:
        log.append([*base_history(), loan])
        head = log.head()
    with Log.open(log_path) as log:
        assert log.head() == head
        registry = log.registry()
        assert registry.scale("BTC") == 8 and registry.loans["L1"].outstanding == 10000
        assert log.append([deposit("d1", minute=2)]).appended == [(13, "d1")]
        with pytest.raises(InputError, match=r"account: unknown account 'ex:ghost'"):
            log.append([attrs.evolve(deposit("d2", minute=3), account="ex:ghost")])
        with pytest.raises(InputError, match=r"at: 2022-01-01T00:01:00Z is before the previous event's 2022-01-01T00:02:00Z"):
            log.append([deposit("d0", minute=1)])
        repay = ev.LoanRepaid(id="r1", at=START + timedelta(minutes=4), source=["S"], loan="L1", amount="60",
                              paid_from="aff:bank", paid_to="bank:vault")
        log.append([repay])
    with Log.open(log_path) as log:
        too_much = attrs.evolve(repay, id="r2", amount=Decimal("40.01"))
        with pytest.raises(InputError, match=r"amount: repays 40.01 USD but only 40.00 is outstanding on loan 'L1'"):
            log.append([too_much])
        assert log.append([attrs.evolve(repay, id="r3", amount=Decimal("40"))]).appended == [(15, "r3")]
        assert log.verify().events_checked == 15
        assert log.registry().loans["L1"].outstanding == 0


def test_two_log_objects_on_one_file_see_each_others_appends(log_path):
    with Log.open(log_path, create=True) as a, Log.open(log_path) as b:
        a.append(base_history())
        assert b.append([deposit("d1")]).appended == [(12, "d1")]
        # a's cached registry is refreshed: it knows the head moved and the time order.
        with pytest.raises(InputError, match=r"is before the previous event's"):
            a.append([deposit("d0", minute=0)])
        assert a.append([deposit("d2", minute=2)]).appended == [(13, "d2")]
        assert a.verify().events_checked == 13


@given(st.datetimes(timezones=st.just(UTC)) | st.datetimes(timezones=st.timezones()))
def test_the_recorded_time_is_the_canonical_instant(now):
    # The append formats its recorded time with datetime.isoformat (C) where it can: the
    # text must be events.format_instant's, digit for digit, for every instant.
    from ledger.store._shared import recorded_stamp

    assert recorded_stamp(lambda: now) == ev.format_instant(now)


@pytest.mark.parametrize("micro", [0, 7, 999_999])
def test_rows_carry_the_clock_s_instant_and_verify(tmp_path, micro):
    at = START.replace(year=2026, microsecond=micro)
    with Log.open(tmp_path / "l.db", create=True, clock=lambda: at) as log:
        log.append(base_history())
        log.append([deposit("late1", minute=500)])
        assert {r.recorded_at for r in log.iter_records()} == {ev.format_instant(at)}
        assert log.verify().events_checked == log.head().seq
