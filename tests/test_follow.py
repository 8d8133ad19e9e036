"""Following a log as another process appends to it: Log.follow and `bankrun replay --follow`.

The writer is a real process (ledger.testing.writer, which appends deposits in batches and
acknowledges each commit); the follower reads the same SQLite file on disk.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from ledger.cli import cli
from ledger.errors import InputError
from ledger.replay import Replay
from ledger.store import Log
from ledger.testing.writer import main as write_batches
from tests.reliability.helpers import start_writer

BATCHES, BATCH_SIZE = 30, 5


@pytest.fixture()
def db(tmp_path):
    """A log holding the standard cast and one batch of deposits."""
    path = tmp_path / "ledger.db"
    with pytest.raises(SystemExit) as done:
        write_batches([str(path), "--batches", "1", "--batch-size", str(BATCH_SIZE)])
    assert done.value.code == 0
    return path


def _more(db) -> subprocess.Popen:
    """A writer process adding BATCHES more batches after the first one."""
    return start_writer(db, "--batches", str(BATCHES), "--batch-size", str(BATCH_SIZE), "--start", str(BATCH_SIZE + 1))


def test_follow_replays_what_another_process_appends_as_it_lands(db):
    with Log.open(db, readonly=True) as log:
        start_head = log.head().seq
        final = start_head + BATCHES * BATCH_SIZE
        following = log.follow(to_seq=final, poll=0.02)
        writer = _more(db)  # starts after the follower: most events arrive while it waits
        try:
            summary = Replay(following).run()
        finally:
            writer.communicate(timeout=60)
        assert writer.returncode == 0
        assert start_head < final and summary.events == final and summary.last_seq == final
        # The same answer as replaying the finished log in one go.
        assert summary.digest == Replay(log).run().digest
        assert following.next_seq == final + 1


def test_follow_stops_after_an_idle_timeout(db):
    with Log.open(db, readonly=True) as log:
        t = time.monotonic()
        summary = Replay(log.follow(poll=0.02, idle_timeout=0.3)).run()
        waited = time.monotonic() - t
        assert summary.events == log.head().seq
        assert waited >= 0.3


def test_stop_ends_the_stream_at_the_next_event(db):
    with Log.open(db, readonly=True) as log:
        following = log.follow(poll=0.02)
        seen = []
        for seq, _, _ in following:
            seen.append(seq)
            if seq == 3:
                following.stop()
        assert seen == [1, 2, 3]


def test_follow_refuses_a_poll_of_zero(db):
    with Log.open(db, readonly=True) as log, pytest.raises(InputError, match="poll"):
        log.follow(poll=0)


def test_cli_follow_replays_up_to_the_seq_asked_for(db):
    with Log.open(db, readonly=True) as log:
        final = log.head().seq + BATCHES * BATCH_SIZE
    follower = subprocess.Popen(
        [sys.executable, "-m", "ledger", "replay", "--db", str(db), "--follow", "--to-seq", str(final),
         "--poll", "0.02", "--steps", "changes"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    writer = _more(db)
    try:
        out, err = follower.communicate(timeout=120)
    finally:
        writer.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert f"{final} events replayed" in out
    assert "held throughout" in out and "Head, not verified" in out


def test_cli_follow_ends_with_the_summary_on_ctrl_c(db):
    follower = subprocess.Popen(
        [sys.executable, "-m", "ledger", "replay", "--db", str(db), "--follow", "--poll", "0.05",
         "--format", "jsonl"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        with Log.open(db, readonly=True) as log:
            head = log.head().seq
        # Wait until it has replayed what is there (one jsonl line per step), then interrupt.
        lines = [follower.stdout.readline() for _ in range(head)]
        assert all('"kind": "step"' in line or '"kind":"step"' in line for line in lines)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    assert '"kind": "summary"' in out or '"kind":"summary"' in out
    assert "KeyboardInterrupt" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--follow", "--no-record", "ftx-2022"], "--no-record"),
        (["--follow", "--format", "json"], "json"),
        (["--to-seq", "5"], "go with --follow"),
        (["--idle-timeout", "1"], "go with --follow"),
    ],
)
def test_cli_follow_option_errors(db, args, message):
    result = CliRunner().invoke(cli, ["replay", "--db", str(db), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
