"""L1-L6: concurrent appenders in real processes (spawn context): nothing lost, nothing
duplicated, gapless seq, real-time order respected, readers never see a hole."""

from __future__ import annotations

import multiprocessing

import pytest

from ledger.store import Log
from ledger.testing.strategies import cast_events
from tests.reliability import workers

CAST = len(cast_events())


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "ledger.db"
    with Log.open(path, create=True) as log:
        log.append(cast_events())
    return str(path)


@pytest.fixture
def pool():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as p:
        yield p


def test_l1_l5_l6_distinct_appenders_with_tailing_readers(db, pool):
    per, procs = 150, 4
    readers = [pool.apply_async(workers.tail_reader, (db, CAST + per * procs, 60)) for _ in range(2)]
    results = pool.starmap(workers.append_distinct, [(db, w, per) for w in range(procs)])
    ops = [op for worker in results for op in worker]
    assert [o for o in ops if o[3] != "appended"] == []  # no BusyError reached a caller
    with Log.open(db) as log:
        verified = log.verify()
        assert verified.events_checked == CAST + per * procs
        ids = [r.event.id for r in log.iter_records(from_seq=CAST + 1)]
    assert sorted(ids) == sorted(f"p{w}-{i}" for w in range(procs) for i in range(per))
    assert sorted(o[2] for o in ops) == list(range(CAST + 1, CAST + per * procs + 1))
    # L5, linearizable: if A finished before B started, A's seq is lower.
    by_start = sorted(ops, key=lambda o: o[0])
    by_end = sorted(ops, key=lambda o: o[1])
    best, j = 0, 0
    for start, _, seq, _ in by_start:
        while j < len(by_end) and by_end[j][1] < start:
            best = max(best, by_end[j][2])
            j += 1
        assert best < seq, "an append that started after another finished got an earlier seq"
    for ok, last in (r.get(timeout=60) for r in readers):
        assert ok, "a tailing reader saw a hole"
        assert last == CAST + per * procs


def test_l2_same_ids_from_every_process_are_recorded_once(db, pool):
    ids = [f"same-{i}" for i in range(60)]
    results = pool.starmap(workers.append_same, [(db, ids[::1] if w % 2 else ids[::-1]) for w in range(4)])
    by_id: dict[str, list[tuple[str, int]]] = {}
    for worker in results:
        for event_id, outcome, seq in worker:
            by_id.setdefault(event_id, []).append((outcome, seq))
    for event_id, outcomes in by_id.items():
        assert sorted(o for o, _ in outcomes) == ["appended", "existing", "existing", "existing"], event_id
        assert len({seq for _, seq in outcomes}) == 1, event_id
    with Log.open(db) as log:
        assert log.verify().events_checked == CAST + len(ids)


def test_l3_same_id_different_content_one_row_and_named_conflict(db, pool):
    ids = [f"c-{i}" for i in range(60)]
    results = pool.starmap(workers.append_conflicting, [(db, w, ids) for w in range(2)])
    outcomes: dict[str, list[tuple[str, str]]] = {}
    for worker in results:
        for event_id, outcome, detail in worker:
            outcomes.setdefault(event_id, []).append((outcome, detail))
    for event_id, got in outcomes.items():
        assert sorted(got) == [("appended", ""), ("conflict", "amount")], (event_id, got)
    with Log.open(db) as log:
        assert log.verify().events_checked == CAST + len(ids)


def test_l4_optimistic_concurrency_loses_no_update(db, pool):
    results = pool.starmap(workers.append_optimistic, [(db, w, 40) for w in range(4)])
    assert [done for done, _ in results] == [40, 40, 40, 40]
    with Log.open(db) as log:
        assert log.verify().events_checked == CAST + 160
