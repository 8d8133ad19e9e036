"""The storage contract: one suite that every backend passes (SQLite file, PostgreSQL server).

Each test takes ``location`` (parametrized: an SQLite path, or a PostgreSQL URL naming a fresh
schema on a real server) and talks to the log through ``open_log`` only; where a test must
reach under the log (tampering), it does so with the backend's own tools. PostgreSQL comes
from ``LEDGER_TEST_PG_URL`` (``.ci/run`` starts a throwaway cluster and sets it) or from a
cluster this suite starts itself (``tests/pgserver.py``); without PostgreSQL the postgres
cases are skipped with a message, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from click.testing import CliRunner

import events as ev
import replays
from ledger.cli import cli
from ledger.errors import (
    ConflictError,
    HeadMismatchError,
    InputError,
    NotALedgerError,
    VerificationError,
)
from ledger.replay import Replay
from ledger.store import SCHEMA, _statements, open_log
from ledger.store.copy import copy_log
from ledger.testing.strategies import START, cast_events
from ledger.testing.writer import batch_events
from tests import pgserver

try:
    import psycopg
except ImportError:  # pragma: no cover
    psycopg = None  # type: ignore[assignment]

CAST = len(cast_events())


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _no_postgres(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the PostgreSQL contract tests must run, but {reason}")
    pytest.skip(f"PostgreSQL contract tests skipped: {reason} (apt-get install postgresql; pip install '.[postgres]')")


@pytest.fixture(scope="session")
def pg_url():
    """The URL of a PostgreSQL superuser on a throwaway server."""
    if psycopg is None:
        _no_postgres("psycopg is not installed")
    given = os.environ.get("LEDGER_TEST_PG_URL")
    if given:
        yield given
        return
    if pgserver.find_bin("initdb") is None:
        _no_postgres("the PostgreSQL server programs (initdb, pg_ctl) are not installed")
    directory, url = pgserver.start()
    try:
        yield url
    finally:
        pgserver.stop(directory)


def _new_schema(admin_url: str) -> str:
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema


def _schema_url(admin_url: str, schema: str) -> str:
    return _with_query(admin_url, options=f"-csearch_path={schema}")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path) -> str:
    """Where a test's log lives: an SQLite path, or a URL naming an empty PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    url = request.getfixturevalue("pg_url")
    return _schema_url(url, _new_schema(url))


def _is_pg(location: str) -> bool:
    return location.startswith("postgresql://")


def _raw(location: str, sql: str, params: tuple = ()) -> None:
    """Run SQL as someone with every right on the storage (the file's owner; the superuser),
    the append-only triggers bypassed: what a tamperer with access could do."""
    if _is_pg(location):
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # triggers do not fire
            conn.execute(sql.replace("?", "%s"), params)
        return
    conn = sqlite3.connect(location)
    try:
        for name in ("events_refuse_update", "events_refuse_delete", "events_gapless"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(sql, params)
        for statement in _statements(SCHEMA):  # and put the triggers back, as they were
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def deposit(event_id: str, amount: int = 5, minute: int = 1) -> ev.Event:
    return ev.Deposit(
        id=event_id, at=START + timedelta(minutes=minute), source=("T",), account="ex:cust",
        asset="USD", amount=Decimal(amount), landed="ex:custody",
    )


def _seeded(location: str, deposits: int = 30):
    log = open_log(location, create=True)
    log.append(cast_events())
    log.append([deposit(f"d{i}", amount=i + 1, minute=i + 1) for i in range(deposits)])
    return log


# -- append, read, both clocks -------------------------------------------------------------------
def test_append_reads_back_in_seq_order_and_as_of_both_clocks(location):
    ticks = iter(datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(10))
    with open_log(location, create=True, clock=lambda: next(ticks)) as log:
        assert log.head().seq == 0 and log.head().hash == bytes(32)
        first = log.append(cast_events())
        second = log.append([deposit("a", minute=10), deposit("b", minute=20)])
        assert [s for s, _ in second.appended] == [CAST + 1, CAST + 2]
        assert log.head() == second.head and len(log) == CAST + 2
        records = list(log.iter_records())
        assert [r.seq for r in records] == list(range(1, CAST + 3))
        assert records[CAST].prev_hash == records[CAST - 1].hash
        assert log.get("b").seq == CAST + 2 and log.get("nope") is None
        assert log.hash_at(CAST + 2) == second.head.hash and log.hash_at(999) is None
        # Effective time: a prefix found by bisection.
        assert log.seq_at(START + timedelta(minutes=15)) == CAST + 1
        assert log.seq_before(START + timedelta(minutes=10)) == CAST
        # Record time: what the log knew then.
        assert log.seq_recorded(datetime(2030, 1, 1, 0, 30, tzinfo=UTC)) == CAST
        assert log.seq_recorded(datetime(2030, 1, 1, 1, tzinfo=UTC)) == CAST + 2
        assert "ex:cust" in log.registry().accounts
        assert first.head.seq == CAST
    with open_log(location, readonly=True) as log:
        assert [e.id for e in log.iter_events(from_seq=CAST + 1)] == ["a", "b"]


def test_the_ftx_replay_is_the_same_on_every_backend(location, tmp_path):
    timeline = replays.load_timeline("ftx-2022")
    with open_log(location, create=True) as log:
        log.append(timeline.events, where=timeline.where)
        summary = Replay(log).run()
    assert summary.digest == "2707a520867ebd7254db1c395fbebc90afe773072436876cc4550f8de14a7082"
    assert summary.events == len(timeline.events)


@pytest.mark.parametrize("name", ["first-republic-2023", "voyager-2022", "small-example"])
def test_every_bundled_history_replays_the_same_on_every_backend(location, name):
    """The general model's events (trades, pools, impairments, resolution...) and the registry
    entries they make (pools, accounts moved, allowances) round-trip through each backend: the
    stored log replays as the file does, and a second writer, which rebuilds the registry from
    the events and compares it with the stored table, appends nothing and finds no difference."""
    timeline = replays.load_timeline(name)
    expected = Replay(timeline).run()
    with open_log(location, create=True) as log:
        log.append(timeline.events, where=timeline.where)
        summary = Replay(log).run()
    assert summary.digest == expected.digest and summary.events == len(timeline.events)
    assert {k: (v.seq, v.subject) for k, v in summary.first_breaches.items()} == {
        k: (v.seq, v.subject) for k, v in expected.first_breaches.items()
    }
    with open_log(location) as again:
        result = again.append(timeline.events)
        assert result.appended == [] and len(result.existing) == len(timeline.events)
        assert again.verify().events_checked == len(timeline.events)


# -- idempotency, all or nothing, optimistic concurrency -----------------------------------------
def test_resubmitting_is_idempotent_and_conflicts_are_named(location):
    with _seeded(location, deposits=3) as log:
        head = log.head()
        again = log.append([deposit("d0", amount=1, minute=1), deposit("d1", amount=2, minute=2)])
        assert again.appended == [] and [s for s, _ in again.existing] == [CAST + 1, CAST + 2]
        assert log.head() == head
        with pytest.raises(ConflictError, match="amount"):
            log.append([deposit("d1", amount=99, minute=2)])
        assert log.head() == head


def test_stored_events_among_new_ones_are_skipped_whichever_check_meets_them(location):
    # The SQLite log writes a batch without looking its ids up first and falls back to the
    # careful append when the unique index (the last event again: its checks pass) or a check
    # (the cast again: entities already registered) refuses it. Either way, as on PostgreSQL:
    with _seeded(location, deposits=3) as log:
        head = log.head()
        last = deposit("d2", amount=3, minute=3)
        again = log.append([last])
        assert again.appended == [] and again.existing == [(head.seq, "d2")]
        with pytest.raises(ConflictError, match="amount"):
            log.append([deposit("d2", amount=99, minute=3)])
        mixed = log.append([*cast_events(), last, deposit("n1", minute=10)])
        assert [s for s, _ in mixed.existing] == [*range(1, CAST + 1), head.seq]
        assert mixed.appended == [(head.seq + 1, "n1")]
        # The cached registry is the log's after the fallback: n1's time is the last one.
        with pytest.raises(InputError, match="time order"):
            log.append([deposit("n0", minute=9)])
        assert log.append([last, deposit("n2", minute=11)]).appended == [(head.seq + 2, "n2")]
        # A new account checked (and noted in the registry) before a stored event is met: the
        # fallback starts from the registry as it was, so the account is opened once.
        opened = ev.AccountOpened(
            id="account:ex:cust2", at=START + timedelta(minutes=11), source=("T",),
            account="ex:cust2", purpose="customer", holder="cust",
        )
        late = log.append([opened, deposit("n2", minute=11)])
        assert late.appended == [(head.seq + 3, "account:ex:cust2")]
        assert late.existing == [(head.seq + 2, "n2")]
        assert log.verify().events_checked == head.seq + 3


def test_a_batch_is_all_or_nothing(location):
    with _seeded(location, deposits=3) as log:
        head = log.head()
        bad = ev.Deposit(
            id="bad", at=START + timedelta(minutes=9), source=("T",), account="ex:nowhere",
            asset="USD", amount=Decimal(1), landed="ex:custody",
        )
        with pytest.raises(InputError):
            log.append([deposit("ok1", minute=5), bad, deposit("ok2", minute=6)])
        assert log.head() == head and log.get("ok1") is None
        # The same log appends once the batch is fixed (the registry was rolled back).
        assert log.append([deposit("ok1", minute=5)]).head.seq == head.seq + 1


def test_expected_head_refuses_a_stale_writer(location):
    with _seeded(location, deposits=2) as log, open_log(location) as other:
        seen = log.head().seq
        other.append([deposit("x", minute=50)])
        with pytest.raises(HeadMismatchError):
            log.append([deposit("y", minute=51)], expected_head=seen)
        assert log.append([deposit("y", minute=51)], expected_head=seen + 1).head.seq == seen + 2


def test_writers_taking_turns_chain_every_row_to_the_real_head(location):
    # The SQLite log does not read the head when its own connection wrote it last: another
    # writer's rows must still be found (the table refuses the stale seq) and chained onto.
    with _seeded(location, deposits=1) as one, open_log(location) as two:
        minute = 100
        for turn in range(6):
            writer = (one, two)[turn % 2]
            for _ in range(turn % 3 + 1):  # one, two or three appends in a row
                minute += 1
                before = writer.head()
                result = writer.append([deposit(f"turn{minute}", minute=minute)])
                assert result.appended == [(before.seq + 1, f"turn{minute}")]
                assert result.head == writer.head() == two.head()
        assert one.append([deposit("batch1", minute=200), deposit("batch2", minute=201)]).head == two.head()
        checked = two.verify().events_checked
        assert checked == one.head().seq == CAST + 1 + 12 + 2
        assert [r.prev_hash for r in one.iter_records(from_seq=2)] == [
            r.hash for r in one.iter_records(to_seq=checked - 1)
        ]


def test_a_jsonl_stream_is_one_transaction(location, tmp_path):
    from ledger.synthetic import workload

    path = tmp_path / "w.jsonl"
    with path.open("w", encoding="utf-8") as out:
        replays.dump_jsonl(workload(1200), out)
    with open_log(location, create=True) as log:
        result = log.append_stream(replays.iter_jsonl(path), chunk_size=500)
        assert result.appended == 1200 and log.head().seq == 1200
        assert log.append_stream(replays.iter_jsonl(path), chunk_size=500).existing == 1200
        log.verify()


# -- concurrency ---------------------------------------------------------------------------------
def test_eight_writer_processes_leave_a_gapless_chain(location):
    with open_log(location, create=True) as log:
        log.append(cast_events())
    writers, batches, size = 8, 12, 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ledger.testing.writer", location, "--batches", str(batches),
             "--batch-size", str(size), "--prefix", f"p{w}-", "--same-time"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for w in range(writers)
    ]
    acked = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        acked += [int(line.split()[1]) for line in out.splitlines() if line.startswith("ACK")]
    total = CAST + writers * batches * size
    with open_log(location, readonly=True) as log:
        seqs = [r.seq for r in log.iter_records()]
        assert seqs == list(range(1, total + 1))
        assert len({r.event.id for r in log.iter_records()}) == total
        assert sorted(acked) == sorted(set(acked)) and max(acked) == total
        assert log.verify().events_checked == total


# -- tamper evidence -----------------------------------------------------------------------------
def test_the_triggers_refuse_update_and_delete(location):
    with _seeded(location, deposits=3):
        pass
    if _is_pg(location):
        with psycopg.connect(location, autocommit=True) as conn:
            for sql in ("UPDATE events SET type = 'x' WHERE seq = 2", "DELETE FROM events WHERE seq = 2",
                        "TRUNCATE events", "INSERT INTO events SELECT seq + 100, event_id || 'z', type, "
                        "occurred_at, recorded_at, payload, prev_hash, hash FROM events WHERE seq = 2"):
                with pytest.raises(psycopg.errors.RaiseException):
                    conn.execute(sql)
    else:
        conn = sqlite3.connect(location)
        conn.execute("PRAGMA recursive_triggers = ON")
        for sql in ("UPDATE events SET type = 'x' WHERE seq = 2", "DELETE FROM events WHERE seq = 2"):
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(sql)
        conn.close()
    with open_log(location, readonly=True) as log:
        assert log.verify().events_checked == CAST + 3


@pytest.mark.parametrize(
    "tamper, seq",
    [
        ("UPDATE events SET payload = replace(payload, 'ex:custody', 'ex:Custody') WHERE seq = {s}", 20),
        ("DELETE FROM events WHERE seq = {s}", 25),
        ("UPDATE events SET recorded_at = '2001-01-01T00:00:00Z' WHERE seq = {s}", 30),
    ],
    ids=["edit-amount", "delete-row", "edit-record-time"],
)
def test_changes_by_a_role_with_the_rights_are_caught_by_verify(location, tamper, seq):
    with _seeded(location, deposits=30) as log:
        before = log.checkpoint()
    _raw(location, tamper.format(s=seq))
    with open_log(location, readonly=True) as log, pytest.raises(VerificationError) as caught:
        log.verify([before])
    assert caught.value.seq == seq, str(caught.value)


def test_truncation_and_rechained_tails_are_caught_by_a_checkpoint(location):
    with _seeded(location, deposits=10) as log:
        cp = log.checkpoint()
    _raw(location, "DELETE FROM events WHERE seq > ?", (CAST + 5,))
    with open_log(location, readonly=True) as log:
        log_verifies_without = log.verify()  # the shorter chain is consistent on its own...
        assert log_verifies_without.events_checked == CAST + 5
        with pytest.raises(VerificationError, match="truncated"):
            log.verify([cp])  # ...but not with the checkpoint kept outside


def test_a_forged_registry_row_stops_appends_and_verify(location):
    with _seeded(location, deposits=2):
        pass
    _raw(location, "INSERT INTO registry (kind, key, value) VALUES (?, ?, ?)", ("account", "ex:forged", '{"purpose":"customer"}'))
    with pytest.raises(VerificationError, match="forged"), open_log(location) as log:
        log.append([deposit("after", minute=90)])
    with open_log(location, readonly=True) as log, pytest.raises(VerificationError, match="registry"):
        log.verify()


def test_checkpoints_round_trip_and_match(location):
    with _seeded(location, deposits=5) as log:
        early = log.checkpoint()
        log.append([deposit("later", minute=100)])
        late = log.checkpoint()
        assert log.verify([early, late]).checkpoints_matched == 2
        assert late.seq == early.seq + 1


# -- follow --------------------------------------------------------------------------------------
def test_a_follower_sees_every_event_another_process_appends_once_in_order(location):
    with open_log(location, create=True) as log:
        log.append(cast_events())
    batches, size = 20, 4
    final = CAST + batches * size
    with open_log(location, readonly=True) as log:
        following = log.follow(to_seq=final, poll=0.05, idle_timeout=60)
        writer = subprocess.Popen(
            [sys.executable, "-m", "ledger.testing.writer", location, "--batches", str(batches), "--batch-size", str(size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            seen = [seq for seq, _, _ in following]
        finally:
            writer.communicate(timeout=120)
        assert writer.returncode == 0
        assert seen == list(range(1, final + 1))


# -- crashes -------------------------------------------------------------------------------------
def _acks(out: str) -> list[int]:
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("ACK")]


def _check_after_crash(location: str, acked: int, batch_size: int) -> None:
    with open_log(location) as log:
        rows = log.verify().events_checked - CAST
        # Everything acknowledged is there; at most one whole batch more; never a torn batch.
        assert rows in (acked - CAST, acked - CAST + batch_size), (rows, acked)
        assert rows % batch_size == 0
        assert [r.event.id for r in log.iter_records(from_seq=CAST + 1)] == [f"w{i}" for i in range(1, rows + 1)]
        pending = batch_events(rows + 1, batch_size)
        assert len(log.append(pending).appended) == batch_size
        log.verify()


@pytest.mark.parametrize("seed", range(3))
def test_sigkill_of_a_writer_mid_append_loses_nothing_acknowledged(location, seed):
    import random

    batch_size = 10
    with open_log(location, create=True) as log:
        log.append(cast_events())
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger.testing.writer", location, "--batch-size", str(batch_size)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    time.sleep(random.Random(seed).uniform(0.05, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    acks = _acks(out)
    _check_after_crash(location, acks[-1] if acks else CAST, batch_size)


@pytest.fixture()
def private_pg():
    """A cluster of this test's own, to stop and restart."""
    if psycopg is None:
        _no_postgres("psycopg is not installed")
    if pgserver.find_bin("initdb") is None:
        _no_postgres("the PostgreSQL server programs (initdb, pg_ctl) are not installed")
    directory, url = pgserver.start()
    try:
        yield directory, url
    finally:
        pgserver.stop(directory)


def test_an_immediate_server_stop_mid_append_loses_nothing_acknowledged(private_pg):
    directory, admin = private_pg
    location = _schema_url(admin, _new_schema(admin))
    batch_size = 25
    with open_log(location, create=True) as log:
        log.append(cast_events())
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger.testing.writer", location, "--batch-size", str(batch_size)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline().split()[1]) for _ in range(5)]  # appending, for sure
    pgserver.restart(directory, mode="immediate")  # the server dies mid-append (no checkpoint)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "StorageError" in err, err  # the writer saw the server go
    acked += _acks(out)
    _check_after_crash(location, acked[-1], batch_size)


# -- copy between backends -----------------------------------------------------------------------
def test_a_log_copied_there_and_back_verifies_against_the_same_checkpoint(location, tmp_path):
    timeline = replays.load_timeline("ftx-2022")
    source = str(tmp_path / "source.db")
    with open_log(source, create=True) as log:
        log.append(timeline.events)
        log.set_meta("quote", timeline.quote)
        cp = log.checkpoint()
    there = copy_log(source, location)
    assert there.copied == len(timeline.events) and there.destination.head.hash_hex == cp.head_hash
    back = str(tmp_path / "back.db")
    copy_log(location, back)
    for where in (location, back):
        with open_log(where, readonly=True) as log:
            assert log.ledger_id == cp.ledger_id and log.meta("quote") == "USD"
            assert log.verify([cp]).checkpoints_matched == 1
    with open_log(source, readonly=True) as a, open_log(back, readonly=True) as b:
        assert list(a.stored_rows()) == list(b.stored_rows())
    # Copying again appends nothing; a log of another history is refused.
    assert copy_log(source, location).copied == 0
    other = str(tmp_path / "other.db")
    with open_log(other, create=True) as log:
        log.append(cast_events())
    with pytest.raises(VerificationError):
        copy_log(other, location)


# -- opening -------------------------------------------------------------------------------------
def test_reading_writes_nothing_and_foreign_stores_are_refused(location):
    with pytest.raises(NotALedgerError):
        open_log(location, readonly=True)
    if _is_pg(location):
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("CREATE TABLE balances (x int)")
        with pytest.raises(NotALedgerError, match="other tables"):
            open_log(location, create=True)
        with psycopg.connect(location, autocommit=True) as conn:
            tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
        assert tables == [("balances",)]
        return
    conn = sqlite3.connect(location)
    conn.execute("CREATE TABLE balances (x int)")
    conn.commit()
    conn.close()
    with pytest.raises(NotALedgerError):
        open_log(location, create=True)


def test_the_cli_works_on_the_log_by_location(location, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["replay", "ftx-2022", "--db", location, "--steps", "none"])
    assert result.exit_code == 1, result.output  # FTX breaks invariants: that is the point
    assert "2707a520867ebd7254db1c395fbebc90afe773072436876cc4550f8de14a7082" in result.output
    result = runner.invoke(cli, ["snapshot", "--db", location, "--every", "50"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["balances", "--db", location, "--seq", "120", "--format", "json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["verify", "--db", location])
    deltas = len([seq for seq in range(5, 191, 5) if seq % 50])  # --every 50: a delta every 5
    assert result.exit_code == 0 and f"3 snapshot(s) and {deltas} delta(s) match the events" in result.output, (
        result.output
    )
    if _is_pg(location):
        with open_log(location, readonly=True) as log:
            assert os.path.exists(tmp_path / f"ledger-{log.ledger_id}.derived.db")
        result = runner.invoke(cli, ["materialize", "--db", location, "--in-place"])
        assert result.exit_code == 2 and "separate SQLite file" in result.output


# -- PostgreSQL: privileges ----------------------------------------------------------------------
def test_the_writer_role_may_only_insert_and_the_reader_only_read(pg_url):
    from psycopg import errors

    from ledger.store.postgres import PostgresLog, grant

    schema = _new_schema(pg_url)
    owner = _schema_url(pg_url, schema)
    with _seeded(owner, deposits=3):
        pass
    writer, reader = f"w_{schema}", f"r_{schema}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {writer} LOGIN")
        conn.execute(f"CREATE ROLE {reader} LOGIN")
    grant(owner, writer=writer, reader=reader)

    def as_role(role: str) -> str:
        parts = urlsplit(owner)
        return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.partition('@')[2]}"))

    with PostgresLog.open(as_role(writer)) as log:  # appends, registry and all
        log.append([deposit("by-writer", minute=40)])
        log.set_meta("quote", "USD")
    with psycopg.connect(as_role(writer), autocommit=True) as conn:
        for sql in (
            "UPDATE events SET type = 'x' WHERE seq = 2",
            "DELETE FROM events WHERE seq = 2",
            "TRUNCATE events",
            "ALTER TABLE events DISABLE TRIGGER events_refuse_update",
            "DROP TRIGGER events_refuse_delete ON events",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql)
    with PostgresLog.open(as_role(reader), readonly=True) as log:
        assert log.verify().events_checked == CAST + 4
    with psycopg.connect(as_role(reader), autocommit=True) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("INSERT INTO events SELECT * FROM events WHERE false")


def test_a_disabled_trigger_is_reported_by_verify_and_refused_for_writing(pg_url):
    location = _schema_url(pg_url, _new_schema(pg_url))
    with _seeded(location, deposits=2):
        pass
    with psycopg.connect(location, autocommit=True) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER events_refuse_delete")
    with pytest.raises(VerificationError, match="events_refuse_delete is disabled"):
        open_log(location)
    with open_log(location, readonly=True) as log, pytest.raises(VerificationError, match="disabled"):
        log.verify()


def test_a_connection_pool_serves_many_threads_with_a_gapless_chain(pg_url):
    """psycopg_pool behind the log: 8 threads x 25 single-event appends through a pool of at
    most 4 connections; every borrow is a checked log, the chain stays gapless and verifies,
    and the registry a borrower rebuilt is handed to the next (never rebuilt per borrow)."""
    import threading

    from ledger.store.postgres import PostgresPool

    url = _schema_url(pg_url, _new_schema(pg_url))
    with open_log(url, create=True) as log:
        log.append(cast_events())
        base = log.head().seq
    errors: list[BaseException] = []
    with PostgresPool(url, max_size=4) as pool:

        def writer(n: int) -> None:
            try:
                for k in range(25):
                    with pool.log() as log:
                        log.append([deposit(f"t{n}-{k}", minute=60)])
            except BaseException as exc:  # reported below, with the thread's name
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        stats = pool.stats()
        assert stats["pool_max"] == 4 and stats.get("connections_num", 0) <= 4 + 1
        assert stats["requests_num"] >= 200
        with pool.log() as log:
            assert pool._spare is None  # this borrower holds the registry the others built
            assert log._registry is not None and log._registry_checked
            assert log.head().seq == base + 200
            result = log.verify()
    assert result.events_checked == base + 200
