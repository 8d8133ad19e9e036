"""F1/F2/F3: a writer killed with SIGKILL at random moments never leaves a torn log.

The acknowledged batches are a prefix of the log; at most one more batch (committed, not yet
acknowledged) may follow, and it is whole; the log verifies; resubmitting that batch is a no-op.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from ledger.store import Log
from ledger.testing.writer import batch_events
from tests.reliability.helpers import integrity_ok, start_writer

SEEDS = range(6)


def _run_and_kill(db, seed: int, batch_size: int) -> list[tuple[int, str, str]]:
    rng = random.Random(seed)
    proc = start_writer(db, "--batch-size", str(batch_size))
    acks: list[tuple[int, str, str]] = []
    try:
        assert proc.stdout is not None
        # Wait until the writer is appending, then let it run for a random while.
        line = proc.stdout.readline()
        assert line.strip() in ("READY",) or line.startswith("ACK"), line
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for line in proc.stdout.read().splitlines():
            if line.startswith("ACK"):
                _, seq, first, last = line.split()
                acks.append((int(seq), first, last))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return acks


@pytest.mark.parametrize("batch_size", [1, 10, 100])
@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_leaves_acked_prefix_and_whole_batches(tmp_path, seed, batch_size):
    db = tmp_path / "ledger.db"
    acks = _run_and_kill(db, seed, batch_size)
    assert integrity_ok(db), f"seed={seed}"
    with Log.open(db) as log:
        result = log.verify()
        cast = 15
        rows = result.events_checked - cast
        acked = (acks[-1][0] - cast) if acks else 0
        # Acked batches are all there; at most one whole unacked batch follows.
        assert rows in (acked, acked + batch_size), f"seed={seed}: {rows} rows, {acked} acked"
        assert rows % batch_size == 0, f"seed={seed}: torn batch ({rows} rows)"
        ids = [r.event.id for r in log.iter_records(from_seq=cast + 1)]
        assert ids == [f"w{i}" for i in range(1, rows + 1)], f"seed={seed}"
        # Resubmitting the next batch the writer was working on: either already recorded (it
        # committed before the kill) or appended now, never twice.
        pending = batch_events(acked + 1, batch_size)
        head = log.head().seq
        again = log.append(pending)
        if rows == acked + batch_size:
            assert again.appended == [] and [s for s, _ in again.existing] == list(range(head - batch_size + 1, head + 1))
        else:
            assert len(again.appended) == batch_size
        log.verify()


def test_killed_replay_cli_appends_all_or_nothing_and_rerun_completes(tmp_path):
    """F2/F3 with the real CLI: a 1,000-event timeline file is one transaction."""
    import subprocess
    import sys

    from ledger.synthetic import workload
    from replays import dump_jsonl

    source = tmp_path / "big.jsonl"
    with source.open("w", encoding="utf-8") as out:
        dump_jsonl(workload(1_000, accounts=50), out)
    db = tmp_path / "ledger.db"
    outcomes = set()
    for seed in range(6):
        if db.exists():
            for suffix in ("", "-wal", "-shm"):
                p = tmp_path / f"ledger.db{suffix}"
                if p.exists():
                    p.unlink()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger", "append", str(source), "--db", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        time.sleep(random.Random(seed).uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        if not db.exists():
            outcomes.add(0)
            continue
        assert integrity_ok(db)
        with Log.open(db) as log:
            count = log.verify().events_checked
            assert count in (0, 1_000), f"seed={seed}: partial batch of {count}"
            outcomes.add(count)
        rerun = subprocess.run(
            [sys.executable, "-m", "ledger", "append", str(source), "--db", str(db)],
            capture_output=True, text=True, timeout=60,
        )
        assert rerun.returncode == 0, rerun.stderr
        expected = "appended 0 event(s), 1000 already recorded" if count else "appended 1000 event(s)"
        assert expected in rerun.stdout
    assert outcomes <= {0, 1_000}


def test_a_log_being_created_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """A creation that stops half-way (here: the schema's commit fails, as a kill would stop
    it) leaves no file at the path, so the next open creates the log afresh; before, SQLite's
    0-byte file stayed and every later open refused it as "an empty file"."""
    import sqlite3

    from ledger.store import sqlite as store_sqlite

    db = tmp_path / "new.db"
    real = store_sqlite._ensure_schema

    def stops_half_way(conn, ledger_id=None):
        conn.execute("CREATE TABLE half (x)")
        raise sqlite3.OperationalError("killed")

    monkeypatch.setattr(store_sqlite, "_ensure_schema", stops_half_way)
    from ledger.errors import LedgerError

    with pytest.raises(LedgerError, match="killed"):
        Log.open(db, create=True)
    assert sorted(os.listdir(tmp_path)) == []
    monkeypatch.setattr(store_sqlite, "_ensure_schema", real)
    with Log.open(db, create=True) as log:
        assert log.head().seq == 0
        log.verify()


def test_processes_creating_one_log_at_once_all_open_the_same_one(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "shared.db"
    code = (
        "import sys; from ledger.store import Log\n"
        "with Log.open(sys.argv[1], create=True) as log:\n"
        "    print(log.connection.execute(\"SELECT value FROM meta WHERE key = 'ledger_id'\").fetchone()[0])\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outs]
    ids = {out.strip() for out, _ in outs}
    assert len(ids) == 1 and ids != {""}
    assert not [name for name in os.listdir(tmp_path) if ".creating-" in name]
