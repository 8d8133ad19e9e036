"""Snapshots as full records and deltas (ledger/snapshot_format.py): as_of from either gives the
books a replay of the prefix gives; verify proves each one and finds an edited one; an unreadable
or stale one is skipped, never used."""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events as ev
from ledger import snapshot_format as fmt
from ledger.forensics import Investigation
from ledger.replay import books_at
from ledger.store import Log
from ledger.testing import strategies as lst
from ledger.testing.strategies import START, cast_events

T = ("T",)


def comparable(books):
    state = books.to_state()
    state.pop("entity_assets")  # which assets were ever touched: bookkeeping, not an answer
    return state


def deposits(n: int, start: int = 1) -> list[ev.Event]:
    return [
        ev.Deposit(
            id=f"d{i}", at=START + timedelta(minutes=i), source=T, account="ex:cust", asset="USD",
            amount=Decimal(i), landed="ex:custody",
        )
        for i in range(start, start + n)
    ]


def make_log(path, history):
    log = Log.open(path, create=True)
    log.append(history)
    return log


def rewrite(log, table: str, column: str, seq: int, change) -> None:
    """Decode one stored record, let ``change`` edit its JSON, store it back."""
    (blob,) = log.connection.execute(f"SELECT {column} FROM {table} WHERE seq = ?", (seq,)).fetchone()
    record = json.loads(zlib.decompress(blob))
    change(record)
    log.connection.execute(
        f"UPDATE {table} SET {column} = ? WHERE seq = ?", (zlib.compress(json.dumps(record).encode()), seq)
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    history=lst.histories(min_events=5, max_events=60),
    every=st.integers(2, 20),
    delta_every=st.integers(1, 6),
    data=st.data(),
)
def test_as_of_from_fulls_and_deltas_equals_a_replay_of_the_prefix(tmp_path_factory, history, every, delta_every, data):
    path = tmp_path_factory.mktemp("deltas") / "ledger.db"
    with make_log(path, history) as log:
        inv = Investigation(log, every=every, delta_every=delta_every)
        inv.build_snapshots()
        n_events = len(history)
        assert inv.snapshots() == list(range(every, n_events + 1, every))
        if delta_every < every:
            expected = [s for s in range(delta_every, n_events + 1, delta_every) if s % every]
        else:
            expected = []
        assert inv.deltas() == expected
        n = data.draw(st.integers(0, n_events), label="n")
        found = inv._load_tables(n)
        stored = max([0, *[s for s in inv.snapshots() + inv.deltas() if s <= n]])
        assert (found[0] if found else 0) == stored  # the tail to replay is the shortest there is
        assert comparable(inv.as_of(seq=n)) == comparable(books_at(history[:n]))
        assert inv.check_snapshots() == []
        assert inv.warnings == []


def test_building_again_after_more_events_continues_from_the_newest_snapshot(tmp_path):
    history = cast_events() + deposits(45)
    with make_log(tmp_path / "l.db", history) as log:
        inv = Investigation(log, every=10, delta_every=3)
        inv.build_snapshots()
        more = deposits(30, start=46)
        log.append(more)
        assert inv.build_snapshots() == 3  # full snapshots at 60, 70 and 80 only
        assert inv.check_snapshots() == []
        everything = history + more
        for n in (len(everything), 59, 61, 75):
            assert comparable(inv.as_of(seq=n)) == comparable(books_at(everything[:n]))
        assert inv.warnings == []


def test_an_edited_delta_is_found_by_verify_and_so_is_a_row_taken_out(tmp_path):
    history = cast_events() + deposits(40)
    with make_log(tmp_path / "l.db", history) as log:
        inv = Investigation(log, every=20, delta_every=4)
        inv.build_snapshots()
        assert inv.check_snapshots() == []
        delta = inv.deltas()[-1]

        def one_more_cent(record):
            balances = record["put"]["balances"]
            balances["values"][0] += 1

        rewrite(log, "snapshot_deltas", "delta", delta, one_more_cent)
        problems = Investigation(log, every=20, delta_every=4).check_snapshots()
        assert problems == [f"snapshot delta at seq {delta} differs from the books the events give at that seq"]
        inv.build_snapshots(rebuild=True)

        def drop_a_row(record):  # a change left out: the delta would read as the base's value
            balances = record["put"]["balances"]
            for column in balances["keys"]:
                del column[0]
            del balances["values"][0]

        rewrite(log, "snapshot_deltas", "delta", delta, drop_a_row)
        problems = Investigation(log, every=20, delta_every=4).check_snapshots()
        assert problems == [f"snapshot delta at seq {delta} differs from the books the events give at that seq"]


def test_an_unreadable_delta_or_full_is_skipped_with_a_warning_and_the_answer_is_the_same(tmp_path):
    history = cast_events() + deposits(40)
    with make_log(tmp_path / "l.db", history) as log:
        inv = Investigation(log, every=20, delta_every=4)
        inv.build_snapshots()
        target = len(history)
        newest_delta = max(s for s in inv.deltas() if s <= target)

        def bad_index(record):
            record["put"]["balances"]["keys"][0][0] = len(record["names"]) + 5

        rewrite(log, "snapshot_deltas", "delta", newest_delta, bad_index)
        fresh = Investigation(log, every=20, delta_every=4)
        assert comparable(fresh.as_of(seq=target)) == comparable(books_at(history))
        assert any(f"snapshot delta at seq {newest_delta} is unreadable" in w for w in fresh.warnings)
        assert fresh.check_snapshots() == [f"snapshot delta at seq {newest_delta} is unreadable (list index out of range)"]
        # The full snapshot its deltas are over, unreadable: every delta over it is passed by too.
        log.connection.execute("UPDATE snapshots SET state = x'00' WHERE seq = 40")
        fresh = Investigation(log, every=20, delta_every=4)
        assert comparable(fresh.as_of(seq=target)) == comparable(books_at(history))
        assert any("snapshot at seq 40 is unreadable" in w for w in fresh.warnings)


def test_a_snapshot_of_the_earlier_format_is_stale_and_its_deltas_with_it(tmp_path):
    history = cast_events() + deposits(40)
    with make_log(tmp_path / "l.db", history) as log:
        inv = Investigation(log, every=20, delta_every=4)
        inv.build_snapshots()
        # What release 3 wrote: the books' JSON state, zlib-compressed.
        old = zlib.compress(json.dumps(books_at(history[:20]).to_state()).encode())
        log.connection.execute("UPDATE snapshots SET state = ? WHERE seq = 20", (old,))
        fresh = Investigation(log, every=20, delta_every=4)
        assert fresh.check_snapshots() == []
        assert any("snapshot at seq 20 was written in books state version 3" in w for w in fresh.warnings)
        assert any("4 snapshot delta(s) are over full snapshots that are stale" in w for w in fresh.warnings)
        reader = Investigation(log, every=20, delta_every=4)
        assert comparable(reader.as_of(seq=30)) == comparable(books_at(history[:30]))
        assert any("unsupported books state version 3" in w for w in reader.warnings)


def test_a_record_names_its_problem_and_a_full_round_trips(tmp_path):
    history = cast_events() + deposits(12)
    books = books_at(history)
    tables = fmt.tables_of(books)
    record = fmt.read_record(fmt.encode_full(tables))
    assert fmt.full_tables(record) == tables
    assert comparable(fmt.books_from_tables(fmt.full_tables(record))) == comparable(books)
    record["put"]["pledges"]["values"] = [1.5] * len(record["put"]["pledges"]["values"]) or [1.5]
    record["put"]["pledges"]["keys"] = [[0] * len(record["put"]["pledges"]["values"])]
    try:
        fmt.full_tables(record)
    except ValueError as exc:
        assert "pledges" in str(exc)
    else:
        raise AssertionError("a minor amount of 1.5 was read")
