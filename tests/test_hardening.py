"""Edges tightened after review: checkpoints, naive instants, duplicate keys in stored JSON."""

from datetime import datetime

import pytest

import events as ev
from ledger.errors import InputError, VerificationError
from ledger.store import Checkpoint, Log
from ledger.testing.strategies import cast_events


def test_checkpoint_hash_must_be_hex_and_is_compared_case_insensitively(tmp_path):
    with Log.open(tmp_path / "l.db", create=True) as log:
        log.append(cast_events())
        cp = log.checkpoint()
        upper = Checkpoint.from_json(cp.to_json().replace(cp.head_hash, cp.head_hash.upper()))
        assert log.verify([upper]).checkpoints_matched == 1
        with pytest.raises(InputError, match="64 hex digits"):
            Checkpoint.from_json(cp.to_json().replace(cp.head_hash, "z" * 64))


def test_a_checkpoint_at_seq_zero_is_compared_not_assumed(tmp_path):
    with Log.open(tmp_path / "l.db", create=True) as log:
        log.append(cast_events())
        empty = Checkpoint(log.ledger_id, 0, "0" * 64, "")
        assert log.verify([empty]).checkpoints_matched == 1
        forged = Checkpoint(log.ledger_id, 0, "ab" * 32, "")
        with pytest.raises(VerificationError, match="seq 0"):
            log.verify([forged])


def test_point_in_time_lookups_refuse_naive_datetimes(tmp_path):
    with Log.open(tmp_path / "l.db", create=True) as log:
        log.append(cast_events())
        with pytest.raises(InputError, match="UTC offset"):
            log.seq_at(datetime(2022, 1, 1))
        with pytest.raises(InputError, match="UTC offset"):
            log.seq_recorded(datetime(2022, 1, 1))


def test_stored_json_with_a_duplicate_key_does_not_decode():
    text = '{"type":"disclosure","v":1,"id":"x","at":"2022-01-01T00:00:00Z","source":["S"],"entity":"a","title":"t","title":"u"}'
    with pytest.raises(ev.EventValueError, match="duplicate key 'title'"):
        ev.from_json(text)


def test_a_writer_catches_up_with_another_writers_appends(tmp_path):
    """Two Log objects on one file: the second applies the first's new events to its cached
    registry (a short gap) or reloads it (a long one); either way it equals a fresh load."""
    from datetime import timedelta

    from ledger.testing.strategies import START

    path = tmp_path / "l.db"

    def deposit(i, account="ex:cust"):
        return ev.Deposit(id=f"d{i}", at=START + timedelta(minutes=i), source=("T",), account=account, asset="USD", amount="1", landed="ex:custody")

    with Log.open(path, create=True) as a, Log.open(path) as b:
        a.append(cast_events())
        b.append([deposit(1)])  # b now caches the registry at this head
        a.append([ev.AccountOpened(id="open-new", at=START + timedelta(minutes=2), source=("T",), account="ex:new", purpose="customer", holder="cust")])
        a.append([deposit(i) for i in range(3, 10)])
        # b has not seen "ex:new" opened; it must catch up and accept a deposit into it.
        result = b.append([deposit(10, account="ex:new")])
        assert len(result.appended) == 1
        fresh = Log.open(path)
        try:
            assert b.registry().accounts == fresh.registry().accounts
            assert b.registry().state == fresh.registry().state
        finally:
            fresh.close()
