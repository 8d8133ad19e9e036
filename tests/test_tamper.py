"""Tamper evidence: someone with write access edits the SQLite file directly (triggers dropped)
and Log.verify must name the first bad seq; checkpoints kept outside catch truncation and
re-chained rewrites. Ends with the verifier mutation property and the CLI's exit status."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import deposit, linear_history

import events as ev
from ledger.cli import cli
from ledger.errors import FormatError, InputError, VerificationError
from ledger.replay import Replay
from ledger.store import SCHEMA, Checkpoint, Log, _statements, chain_hash

TRIGGERS = ("events_refuse_update", "events_refuse_delete", "events_gapless")
COLUMNS = "seq, event_id, type, occurred_at, recorded_at, payload, prev_hash, hash"
N = 30  # rows in the standard log: 11 declarations and 19 deposits


class Tamper:
    """A raw connection with the append-only triggers dropped and CHECKs ignored: an attacker."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for name in TRIGGERS:
            self.conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        self.conn.execute("PRAGMA ignore_check_constraints = ON")
        self.conn.execute("BEGIN")

    def __enter__(self) -> Tamper:
        return self

    def __exit__(self, *exc: object) -> None:
        # A careful attacker puts the triggers back (a missing one is itself reported by
        # verify(): tests/test_evidence.py).
        for statement in _statements(SCHEMA):
            if statement.startswith("CREATE TRIGGER"):
                self.conn.execute(statement)
        self.conn.execute("COMMIT")
        self.conn.close()

    def row(self, seq: int) -> tuple:
        return self.conn.execute(f"SELECT {COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone()

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM events").fetchone()[0]

    def set(self, seq: int, column: str, value: object) -> None:
        self.conn.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", (value, seq))

    def set_text_bytes(self, seq: int, column: str, data: bytes) -> None:
        # Arbitrary bytes (maybe not UTF-8) stored as TEXT, as bit rot would leave them.
        self.conn.execute(f"UPDATE events SET {column} = CAST(? AS TEXT) WHERE seq = ?", (data, seq))

    def delete(self, *seqs: int) -> None:
        for seq in seqs:
            self.conn.execute("DELETE FROM events WHERE seq = ?", (seq,))

    def insert(self, row: tuple) -> None:
        self.conn.execute(f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def shift_up(self, from_seq: int) -> None:
        """Renumber rows seq >= from_seq to seq + 1 (two steps: seq is the primary key)."""
        self.conn.execute("UPDATE events SET seq = -seq - 1 WHERE seq >= ?", (from_seq,))
        self.conn.execute("UPDATE events SET seq = -seq WHERE seq < 0")

    def rechain(self, from_seq: int) -> None:
        """Recompute prev_hash and hash from ``from_seq`` on, as a careful attacker would."""
        prev = bytes(self.row(from_seq - 1)[7]) if from_seq > 1 else bytes(32)
        for seq, *_, recorded, payload, _prev, _hash in self.conn.execute(
            f"SELECT {COLUMNS} FROM events WHERE seq >= ? ORDER BY seq", (from_seq,)
        ).fetchall():
            digest = chain_hash(prev, seq, recorded, payload.encode("utf-8"))
            self.conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
            prev = digest


def forged_row(seq: int, prev: bytes, event: ev.Event, recorded_at: str) -> tuple:
    payload = ev.canonical_json(event)
    digest = chain_hash(prev, seq, recorded_at, payload.encode("utf-8"))
    return (seq, event.id, event.type, ev.format_instant(event.at), recorded_at, payload, prev, digest)


def verify(path: Path, *checkpoints: Checkpoint):
    with Log.open(path, readonly=True) as log:
        return log.verify(checkpoints)


def refused(path: Path, *checkpoints: Checkpoint) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify(path, *checkpoints)
    return info.value


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, Checkpoint]:
    path = tmp_path_factory.mktemp("pristine") / "ledger.db"
    with Log.open(path, create=True) as log:
        log.append(linear_history(N - 11))
        cp = log.checkpoint()
    assert cp.seq == N
    return path, cp


@pytest.fixture
def db(pristine, tmp_path) -> tuple[Path, Checkpoint]:
    """A fresh copy of a good 30-event log and its head checkpoint."""
    path = tmp_path / "ledger.db"
    shutil.copy(pristine[0], path)
    for suffix in ("-wal", "-shm"):
        if Path(str(pristine[0]) + suffix).exists():
            shutil.copy(str(pristine[0]) + suffix, str(path) + suffix)
    return path, pristine[1]


def test_the_untouched_log_verifies_with_its_checkpoint(db):
    path, cp = db
    result = verify(path, cp)
    assert (result.events_checked, result.head.seq, result.head.hash_hex, result.checkpoints_matched) == (N, N, cp.head_hash, 1)


def test_edited_payload(db):
    path, cp = db
    with Tamper(path) as t:
        payload = t.row(15)[5]
        t.set(15, "payload", payload.replace('"source":["S"]', '"note":"added later","source":["S"]'))
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("hash", 15)
    assert str(err) == "seq 15: hash does not match the row's content; the row was edited"


def test_edited_amount(db):
    path, cp = db
    with Tamper(path) as t:
        payload = t.row(20)[5]
        assert '"amount":"9.09"' in payload
        t.set(20, "payload", payload.replace('"amount":"9.09"', '"amount":"90.09"'))
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("hash", 20)


@pytest.mark.parametrize(
    ("column", "value"),
    [("event_id", "d-other"), ("type", "withdrawal"), ("occurred_at", "2030-01-01T00:00:00Z")],
)
def test_edited_indexed_column(db, column, value):
    path, cp = db
    with Tamper(path) as t:
        t.set(17, column, value)
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("columns", 17)


def test_edited_recorded_at(db):
    path, cp = db
    with Tamper(path) as t:
        t.set(12, "recorded_at", "2020-01-01T00:00:00Z")
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("hash", 12)


def test_deleted_row(db):
    path, cp = db
    with Tamper(path) as t:
        t.delete(13)
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("gap", 13)
    assert str(err) == "seq 13: missing (found seq 14 next); rows were deleted or reordered"


def test_deleted_row_renumbered_and_rechained_is_caught_by_the_checkpoint(db):
    path, cp = db
    with Tamper(path) as t:
        t.delete(13)
        t.conn.execute("UPDATE events SET seq = -(seq - 1) WHERE seq > 13")
        t.conn.execute("UPDATE events SET seq = -seq WHERE seq < 0")
        t.rechain(13)
    assert verify(path).events_checked == N - 1  # the chain alone is consistent again
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("truncation", N)


def test_inserted_row_with_a_valid_looking_hash(db):
    path, cp = db
    with Tamper(path) as t:
        prev = bytes(t.row(19)[7])
        recorded = t.row(19)[4]
        t.shift_up(20)
        t.insert(forged_row(20, prev, deposit("forged", "1000000.00", minute=9), recorded))
    err = refused(path, cp)
    # Row 20 is self-consistent; the break shows at the next row, which no longer chains.
    assert (err.kind, err.seq) == ("chain", 21)
    assert str(err) == "seq 21: prev_hash does not match the hash of seq 20; a row was inserted, deleted or reordered"


def test_inserted_row_with_a_made_up_hash(db):
    path, cp = db
    with Tamper(path) as t:
        prev = bytes(t.row(19)[7])
        row = list(forged_row(20, prev, deposit("forged", "1.00", minute=9), t.row(19)[4]))
        row[7] = bytes(range(32))
        t.shift_up(20)
        t.insert(tuple(row))
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("hash", 20)


def test_duplicated_event_id_is_refused_by_sql_itself(db):
    path, _ = db
    with Tamper(path) as t:
        row = t.row(12)
        with pytest.raises(sqlite3.IntegrityError, match=r"UNIQUE constraint failed: events\.event_id"):
            t.insert((N + 1, *row[1:]))


@pytest.mark.parametrize(("i", "j"), [(12, 13), (5, 25), (1, N)])
def test_two_rows_swapped(db, i, j):
    path, cp = db
    with Tamper(path) as t:
        a, b = t.row(i), t.row(j)
        t.delete(i, j)
        t.insert((i, *b[1:]))
        t.insert((j, *a[1:]))
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("chain", i)


def test_truncated_tail_passes_the_chain_but_not_the_checkpoint(db):
    path, cp = db
    with Tamper(path) as t:
        t.delete(*range(N - 4, N + 1))
    assert verify(path).events_checked == N - 5  # a prefix is a valid chain: the documented limit
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("truncation", N - 4)
    assert str(err) == f"log ends at seq {N - 5} but a checkpoint names seq {N}: the log was truncated"


def test_restored_old_copy_is_a_truncation(db, tmp_path):
    path, _ = db
    old = tmp_path / "old.db"
    with Log.open(path) as log:
        log.connection.execute("VACUUM INTO ?", (str(old),))
        log.append([deposit("later-1", minute=100), deposit("later-2", minute=101)])
        cp = log.checkpoint()
    assert cp.seq == N + 2
    err = refused(old, cp)
    assert (err.kind, err.seq) == ("truncation", N + 1)


def test_rewritten_and_rechained_tail_is_caught_by_the_checkpoint(db):
    path, cp = db
    with Log.open(path, readonly=True) as log:
        mid = Checkpoint(cp.ledger_id, 22, log.get("d11").hash.hex(), "2022-01-02T00:00:00Z")
    with Tamper(path) as t:
        payload = t.row(25)[5]
        t.set(25, "payload", payload.replace('"amount":"14.14"', '"amount":"1400.14"'))
        t.rechain(25)
    assert verify(path).events_checked == N  # internally consistent again
    assert verify(path, mid).checkpoints_matched == 1  # the prefix up to 22 is untouched
    err = refused(path, mid, cp)
    assert (err.kind, err.seq) == ("checkpoint", N)
    assert f"history up to seq {N} was rewritten" in str(err)


def test_rewrite_before_an_intermediate_checkpoint_is_named_there(db):
    path, cp = db
    with Log.open(path, readonly=True) as log:
        mid = Checkpoint(cp.ledger_id, 22, log.get("d11").hash.hex(), "2022-01-02T00:00:00Z")
    with Tamper(path) as t:
        t.set(15, "payload", t.row(15)[5].replace('"source":["S"]', '"note":"x","source":["S"]'))
        t.rechain(15)
    err = refused(path, cp, mid)
    assert (err.kind, err.seq) == ("checkpoint", 22)


@pytest.mark.parametrize(("column", "seq", "kind"), [("hash", 9, "hash"), ("prev_hash", 9, "chain"), ("hash", N, "hash"), ("prev_hash", 1, "chain")])
@pytest.mark.parametrize("bit", [0, 7, 131, 255])
def test_bit_flip_in_hash_columns(db, column, seq, kind, bit):
    path, cp = db
    with Tamper(path) as t:
        value = bytearray(t.row(seq)[6 if column == "prev_hash" else 7])
        value[bit // 8] ^= 1 << (bit % 8)
        t.set(seq, column, bytes(value))
    err = refused(path, cp)
    assert (err.kind, err.seq) == (kind, seq)


@pytest.mark.parametrize("column", ["payload", "event_id", "recorded_at", "occurred_at", "type"])
def test_bytes_that_are_not_text_are_a_bad_row_not_a_crash(db, column):
    path, cp = db
    with Tamper(path) as t:
        index = COLUMNS.split(", ").index(column)
        data = bytearray(t.row(18)[index].encode("utf-8"))
        data[len(data) // 2] |= 0x80  # a lone continuation byte: not UTF-8 any more
        t.set_text_bytes(18, column, bytes(data) + b"\xff")
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("encoding", 18)
    assert str(err) == "seq 18: a column holds bytes that are not valid text; the row was edited or the file is damaged"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"amount":"9.09"', '"amount":"abc"'),
        ('"amount":"9.09"', '"amount":9.09'),
        ('"amount":"9.09"', '"amount":"-9.09"'),
        ('"amount":"9.09"', '"amount":"NaN"'),
        ('"account":"ex:cust"', '"account":5'),
        ('"source":["S"]', '"source":"S"'),
        ('"at":"', '"at":"x'),
        ('"type":"deposit"', '"type":"no_such_type"'),
        ('"v":1', '"v":7'),
        ('"asset":"USD",', ""),
    ],
)
def test_a_malformed_rechained_payload_stops_reads_and_replay_with_a_named_seq(db, old, new):
    # Readers (replay, as-of, export) trust payloads that verify() accepts; a careful attacker
    # who re-chains a malformed payload gets a clean error naming the seq, never a traceback,
    # and verify() names it too.
    path, cp = db
    with Tamper(path) as t:
        payload = t.row(20)[5]
        assert old in payload
        t.set(20, "payload", payload.replace(old, new, 1))
        t.rechain(20)
    with Log.open(path, readonly=True) as log:
        if new == '"v":7':
            # A newer event version is not tampering: readers and verify() say what it is.
            for read in (lambda: Replay(log).run(), lambda: list(log.iter_records()), lambda: log.verify([cp])):
                with pytest.raises(FormatError, match=r"seq 20: event schema version 7 is newer than this program reads"):
                    read()
            return
        with pytest.raises((VerificationError, InputError)) as info:
            Replay(log).run()
        assert "seq 20" in str(info.value)
        with pytest.raises(VerificationError) as info:
            list(log.iter_records())
        assert info.value.seq == 20
    assert refused(path, cp).seq == 20


def test_non_ascii_recorded_at_is_a_bad_row(db):
    path, cp = db
    with Tamper(path) as t:
        t.set(18, "recorded_at", "2022-01-01T00:00:00Ž")
    assert refused(path, cp).seq == 18


def test_bit_rot_in_the_database_file(db):
    path, cp = db
    with Log.open(path) as log:
        log.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    marker = b'"amount":"12.12"'
    assert data.count(marker) == 1
    at = data.index(marker) + len(b'"amount":"1')
    data[at] ^= 0x01  # "12.12" -> "13.12": still UTF-8, still JSON
    path.write_bytes(bytes(data))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # SQLite cannot tell
    conn.close()
    err = refused(path, cp)
    assert (err.kind, err.seq) == ("hash", 23)


def test_another_ledgers_checkpoint_is_refused(db, tmp_path):
    path, _ = db
    with Log.open(tmp_path / "other.db", create=True) as other:
        other.append(linear_history(N - 11))
        foreign = other.checkpoint()
    err = refused(path, foreign)
    assert err.kind == "ledger-id"
    assert str(err).startswith(f"checkpoint is for ledger {foreign.ledger_id}, this file is ledger ")


def test_replaced_database_with_a_faked_ledger_id_fails_at_the_checkpoint(db, tmp_path):
    path, cp = db
    other = tmp_path / "other.db"
    with Log.open(other, create=True) as log:
        log.append(linear_history(N - 11))
    conn = sqlite3.connect(other)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'ledger_id'", (cp.ledger_id,))
    conn.commit()
    conn.close()
    shutil.copy(other, path)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    assert verify(path).events_checked == N  # a valid ledger of its own
    err = refused(path, cp)
    # Same events, but recorded at other times: the hash at the checkpoint differs.
    assert (err.kind, err.seq) == ("checkpoint", N)


def test_checkpoint_files_round_trip_and_bad_ones_are_input_errors(db, tmp_path):
    _, cp = db
    file = tmp_path / "cp.json"
    file.write_text(cp.to_json(), encoding="utf-8")
    assert Checkpoint.read(file) == cp
    assert json.loads(cp.to_json()) == {"ledger_id": cp.ledger_id, "seq": N, "head_hash": cp.head_hash, "taken_at": cp.taken_at}
    for text, message in [
        ("not json", r"not a checkpoint file"),
        ("[1, 2]", r"not a checkpoint file \(expected a JSON object\)"),
        ('{"seq": 1}', r"ledger_id: missing"),
        ('{"ledger_id": "x", "seq": 1, "head_hash": "abc"}', r"head_hash: must be 64 hex digits"),
        # Each of these was accepted before, and then matched nothing ("0 checkpoint(s) matched").
        (f'{{"ledger_id": "x", "seq": -1, "head_hash": "{"0" * 64}"}}', r"seq: expected a whole number >= 0, got -1"),
        (f'{{"ledger_id": "x", "seq": "12", "head_hash": "{"0" * 64}"}}', r"seq: expected a whole number >= 0, got '12'"),
        (f'{{"ledger_id": "x", "seq": 1.5, "head_hash": "{"0" * 64}"}}', r"seq: expected a whole number >= 0, got 1.5"),
        (f'{{"ledger_id": "x", "seq": true, "head_hash": "{"0" * 64}"}}', r"seq: expected a whole number >= 0, got True"),
        (f'{{"ledger_id": "", "seq": 1, "head_hash": "{"0" * 64}"}}', r"ledger_id: expected the log's id"),
        (f'{{"ledger_id": 7, "seq": 1, "head_hash": "{"0" * 64}"}}', r"ledger_id: expected the log's id"),
        (f'{{"ledger_id": "x", "seq": 1, "head_hash": "{"g" * 64}"}}', r"head_hash: must be 64 hex digits"),
    ]:
        file.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            Checkpoint.read(file)
    with pytest.raises(InputError, match=r"cannot read checkpoint"):
        Checkpoint.read(tmp_path / "missing.json")


# -- the verifier mutation property -----------------------------------------------------------
MUTATIONS = ("none", "flip", "replace", "delete", "swap", "truncate", "rechain", "seq", "insert")
FLIP_COLUMNS = ("event_id", "type", "occurred_at", "recorded_at", "payload", "prev_hash", "hash")


def _mutate(t: Tamper, n: int, kind: str, row: int, data) -> tuple[str, int]:
    """Apply one mutation; return (expected kind or "", highest seq verify may name)."""
    if kind == "flip":
        column = data.draw(st.sampled_from(FLIP_COLUMNS))
        index = COLUMNS.split(", ").index(column)
        value = t.row(row)[index]
        raw = bytearray(value if isinstance(value, bytes) else value.encode("utf-8"))
        bit = data.draw(st.integers(0, len(raw) * 8 - 1))
        raw[bit // 8] ^= 1 << (bit % 8)
        try:
            if isinstance(value, bytes):
                t.set(row, column, bytes(raw))
            else:
                t.set_text_bytes(row, column, bytes(raw))
        except sqlite3.IntegrityError:  # the flipped event_id hit another row's id
            assume(False)
        return "", row
    if kind == "replace":
        column = data.draw(st.sampled_from(("event_id", "occurred_at", "recorded_at", "payload", "prev_hash", "hash")))
        old = t.row(row)[COLUMNS.split(", ").index(column)]
        new = {
            "event_id": "replaced-id",
            "occurred_at": "2099-01-01T00:00:00Z",
            "recorded_at": "1999-01-01T00:00:00Z",
            "payload": ev.canonical_json(deposit(f"r{row}", "777.77", minute=row)),
            "prev_hash": bytes([row % 256]) * 32,
            "hash": bytes([255 - row % 256]) * 32,
        }[column]
        assume(new != old)
        t.set(row, column, new)
        return "", row
    if kind == "delete":
        t.delete(row)
        return ("truncation", row) if row == n else ("", row)
    if kind == "swap":
        other = data.draw(st.integers(1, n).filter(lambda j: j != row))
        i, j = sorted((row, other))
        a, b = t.row(i), t.row(j)
        t.delete(i, j)
        t.insert((i, *b[1:]))
        t.insert((j, *a[1:]))
        return "", i
    if kind == "truncate":
        k = data.draw(st.integers(1, n))
        t.delete(*range(n - k + 1, n + 1))
        return "truncation", n - k + 1
    if kind == "rechain":
        # A careful forger: the new payload is canonical and every hash from here on recomputed.
        event = ev.from_json(t.row(row)[5])
        t.set(row, "payload", ev.canonical_json(attrs.evolve(event, note="rewritten")))
        assert ev.from_json(t.row(row)[5]) != event
        t.rechain(row)
        return "checkpoint", n
    if kind == "seq":
        t.set(row, "seq", data.draw(st.sampled_from((0, -row, n + 1 + row, 10**9))))
        return "", row
    if kind == "insert":
        prev = bytes(t.row(row - 1)[7]) if row > 1 else bytes(32)
        t.shift_up(row)
        t.insert(forged_row(row, prev, deposit(f"ins{row}", "5.00", minute=0), "2022-01-01T00:00:00Z"))
        # The forged row chains to its predecessor; the displaced row no longer does.
        return "", row + 1
    raise AssertionError(kind)


@given(st.data())
def test_verifier_mutation_property(data):
    n = data.draw(st.integers(1, 60), label="events")
    kind = data.draw(st.sampled_from(MUTATIONS if n >= 2 else tuple(m for m in MUTATIONS if m != "swap")), label="mutation")
    row = data.draw(st.integers(1, n), label="row")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        with Log.open(path, create=True) as log:
            log.append(linear_history(49)[:n])
            cp = log.checkpoint()
        assert cp.seq == n
        if kind == "none":
            result = verify(path, cp)
            assert (result.events_checked, result.checkpoints_matched) == (n, 1)
            return
        with Tamper(path) as t:
            expected_kind, bound = _mutate(t, n, kind, row, data)
        with pytest.raises(VerificationError) as info:
            verify(path, cp)
        err = info.value
        if expected_kind:
            assert err.kind == expected_kind, (kind, str(err))
            assert err.seq == bound, (kind, str(err))
        else:
            assert err.kind != "truncation", (kind, str(err))
            assert err.seq is not None and 1 <= err.seq <= bound, (kind, bound, str(err))


@given(st.integers(1, 60))
def test_unmutated_logs_always_verify(n):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        full = linear_history(50)
        with Log.open(path, create=True) as log:
            log.append(full[:n])
            cps = [log.checkpoint()]
        with Log.open(path) as log:
            log.append([full[n]])
            cps.append(log.checkpoint())
        result = verify(path, *cps)
        assert (result.events_checked, result.checkpoints_matched) == (n + 1, 2)


# -- the CLI ----------------------------------------------------------------------------------
def test_cli_verify_exit_status(db, tmp_path):
    path, cp = db
    runner = CliRunner()
    cp_file = tmp_path / "cp.json"
    cp_file.write_text(cp.to_json(), encoding="utf-8")
    ok = runner.invoke(cli, ["verify", "--db", str(path), "--checkpoint", str(cp_file)])
    assert ok.exit_code == 0, ok.output
    assert ok.output == f"{path}: OK, {N} events, head seq {N} {cp.head_hash}, 1 checkpoint(s) matched\n"
    with Tamper(path) as t:
        t.set(7, "payload", t.row(7)[5].replace('"purpose":"customer-custody"', '"purpose":"corporate"'))
    bad = runner.invoke(cli, ["verify", "--db", str(path)])
    assert bad.exit_code == 3
    assert bad.stderr == "Error: verification failed: seq 7: hash does not match the row's content; the row was edited\n"
    assert "Traceback" not in bad.output


def test_cli_verify_exit_status_for_truncation_and_damaged_bytes(db, tmp_path):
    path, cp = db
    cp_file = tmp_path / "cp.json"
    cp_file.write_text(cp.to_json(), encoding="utf-8")
    with Tamper(path) as t:
        t.delete(N)
    runner = CliRunner()
    assert runner.invoke(cli, ["verify", "--db", str(path)]).exit_code == 0
    truncated = runner.invoke(cli, ["verify", "--db", str(path), "--checkpoint", str(cp_file)])
    assert truncated.exit_code == 3
    assert "the log was truncated" in truncated.stderr
    with Tamper(path) as t:
        t.set_text_bytes(3, "payload", b'{"id":"\xff"}')
    damaged = runner.invoke(cli, ["verify", "--db", str(path)])
    assert damaged.exit_code == 3
    assert damaged.stderr.startswith("Error: verification failed: seq 3: a column holds bytes that are not valid text")


def test_cli_replay_verifies_first_when_asked(db, tmp_path):
    # A well-formed edit, re-chained: replay alone cannot tell (it reads payloads as stored);
    # --verify with the checkpoint kept elsewhere refuses it before replaying, exit 3.
    path, cp = db
    runner = CliRunner()
    cp_file = tmp_path / "cp.json"
    cp_file.write_text(cp.to_json(), encoding="utf-8")
    ok = runner.invoke(cli, ["replay", "--db", str(path), "--checkpoint", str(cp_file), "--steps", "none"])
    assert ok.exit_code in (0, 1), ok.output
    assert ok.output.startswith(f"{path}: verified, {N} events, head {cp.head_hash}, 1 checkpoint(s) matched\n")
    with Tamper(path) as t:
        t.set(20, "payload", t.row(20)[5].replace('"amount":"9.09"', '"amount":"90.09"'))
        t.rechain(20)
    unverified = runner.invoke(cli, ["replay", "--db", str(path), "--steps", "none"])
    # Without --verify nothing is proved: no "verified" line, and the head is said to be unverified.
    assert unverified.exit_code in (0, 1) and f"{path}: verified" not in unverified.output
    assert "Head, not verified (prove the log with --verify or 'bankrun verify')" in unverified.output
    assert "Checkpoint (the log verified)" in ok.output
    refused_run = runner.invoke(cli, ["replay", "--db", str(path), "--checkpoint", str(cp_file)])
    assert refused_run.exit_code == 3
    assert refused_run.stderr.startswith("Error: verification failed: ")
    assert "Replay of" not in refused_run.output and "Traceback" not in refused_run.output
