"""Concurrent appenders in real processes (multiprocessing, spawn context: no connection crosses
a fork): nothing lost, nothing duplicated, seq gapless, no BusyError reaching a caller, and an
id submitted by several processes at once recorded exactly once."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3

import pytest
from strategies import base_history, deposit

from ledger.errors import BusyError
from ledger.store import Log

PROCESSES = 4
BASE = len(base_history())


# Workers are module-level so that spawned children can import them.
def append_distinct(db: str, worker: int, count: int) -> list[tuple[str, str, int]]:
    """Append ``count`` single-event batches of ids no other worker uses."""
    out = []
    with Log.open(db) as log:
        for i in range(count):
            event_id = f"w{worker}-{i}"
            try:
                result = log.append([deposit(event_id, f"{worker + 1}.{i:02d}", minute=1)])
            except BusyError as exc:  # must never happen: the busy timeout absorbs contention
                out.append((event_id, f"busy: {exc}", -1))
                continue
            if result.appended:
                out.append((event_id, "appended", result.appended[0][0]))
            else:
                out.append((event_id, "existing", result.existing[0][0]))
    return out


def append_same(db: str, worker: int, ids: list[str]) -> list[tuple[str, str, int]]:
    """Append the shared ids (identical content everywhere) in this worker's own order."""
    order = list(ids)
    random.Random(worker).shuffle(order)
    out = []
    with Log.open(db) as log:
        for event_id in order:
            try:
                result = log.append([deposit(event_id, "7.00", minute=2)])
            except BusyError as exc:
                out.append((event_id, f"busy: {exc}", -1))
                continue
            if result.appended:
                out.append((event_id, "appended", result.appended[0][0]))
            else:
                out.append((event_id, "existing", result.existing[0][0]))
    return out


@pytest.fixture
def db(tmp_path) -> str:
    path = tmp_path / "ledger.db"
    with Log.open(path, create=True) as log:
        log.append(base_history())
    return str(path)


@pytest.fixture
def pool():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as p:
        yield p


def _seqs(db: str) -> list[int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        conn.close()


@pytest.mark.timeout(60)
def test_distinct_appenders_lose_and_duplicate_nothing(db, pool):
    per = 100
    results = pool.starmap(append_distinct, [(db, w, per) for w in range(PROCESSES)])
    outcomes = [o for worker in results for o in worker]
    assert len(outcomes) == PROCESSES * per
    assert [o for o in outcomes if o[1] != "appended"] == []  # no BusyError, nothing "existing"
    total = BASE + PROCESSES * per
    assert sorted(seq for _, _, seq in outcomes) == list(range(BASE + 1, total + 1))
    assert _seqs(db) == list(range(1, total + 1))
    with Log.open(db, readonly=True) as log:
        assert log.verify().events_checked == total
        stored = {r.event.id: r.seq for r in log.iter_records(from_seq=BASE + 1)}
    assert stored == {event_id: seq for event_id, _, seq in outcomes}
    # Each worker's own appends got increasing seqs (its appends are sequential).
    for worker in results:
        seqs = [seq for _, _, seq in worker]
        assert seqs == sorted(seqs)


@pytest.mark.timeout(60)
def test_the_same_ids_from_every_process_are_recorded_once(db, pool):
    ids = [f"same-{i}" for i in range(50)]
    results = pool.starmap(append_same, [(db, w, ids) for w in range(PROCESSES)])
    by_id: dict[str, list[tuple[str, int]]] = {}
    for worker in results:
        assert len(worker) == len(ids)
        for event_id, outcome, seq in worker:
            by_id.setdefault(event_id, []).append((outcome, seq))
    assert sorted(by_id) == sorted(ids)
    for event_id, got in by_id.items():
        assert sorted(o for o, _ in got) == ["appended"] + ["existing"] * (PROCESSES - 1), (event_id, got)
        assert len({seq for _, seq in got}) == 1, (event_id, got)
    assert _seqs(db) == list(range(1, BASE + len(ids) + 1))
    with Log.open(db, readonly=True) as log:
        assert log.verify().events_checked == BASE + len(ids)
        stored = {r.event.id: r.seq for r in log.iter_records(from_seq=BASE + 1)}
    assert stored == {event_id: got[0][1] for event_id, got in by_id.items()}
