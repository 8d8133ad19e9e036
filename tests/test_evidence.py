"""Evidence-grade edges: read-only evidence, foreign files, format versions, the append-only
triggers, the registry and snapshots as checked derived state, output errors, streamed input.

Real files, real subprocesses of ``python -m ledger``, and a real read-only mount (a bind mount
in a private mount namespace, made with util-linux's ``unshare``) and a real full disk (a tiny
tmpfs), as an investigator's write-blocked media and a full volume would be.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

import events as ev
import replays
from ledger import synthetic
from ledger.cli import cli
from ledger.derived import Derived
from ledger.errors import FormatError, NotALedgerError, VerificationError
from ledger.forensics import Investigation
from ledger.store import Log, chain_hash
from tests.test_tamper import Tamper

ROOT = Path(__file__).resolve().parent.parent
FTX_DIGEST = "2707a520867ebd7254db1c395fbebc90afe773072436876cc4550f8de14a7082"

# Every command that only reads a stored log, with the exit status it should end with
# (1 where the ftx-2022 invariants broke: the finding, not an error).
READERS = [
    (["verify"], 0),
    (["replay"], 1),
    (["check"], 1),
    (["log", "--type", "withdrawal"], 0),
    (["balances", "--at", "2022-11-08T12:00:00Z"], 0),
    (["history", "ftx:custody", "--asset", "USDC"], 0),
    (["trace", "--asset", "USDC", "--deposits-into", "ftx"], 0),
    (["diff", "100", "150"], 0),
    (["export", "--what", "events"], 0),
    (["export", "--what", "postings", "--format", "csv"], 0),
    (["checkpoint"], 0),
]


def _run(args: list[str], *, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        cwd=cwd or ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.fixture(scope="module")
def ftx_log(tmp_path_factory) -> Path:
    """The bundled ftx-2022 timeline appended to a log, closed cleanly (no -wal left)."""
    path = tmp_path_factory.mktemp("ftx") / "ledger.db"
    assert _run(["append", "ftx-2022", "--db", str(path)]).returncode == 0
    assert _siblings(path) == ["ledger.db"]
    return path


@pytest.fixture
def evidence(ftx_log: Path, tmp_path: Path) -> Path:
    """A private copy of the ftx-2022 log, alone in its folder."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copy(ftx_log, folder / "ledger.db")
    return folder / "ledger.db"


# -- 1. evidence is opened read-only and never changed ----------------------------------------
def test_every_read_command_leaves_the_file_byte_identical_and_creates_no_wal_or_shm(evidence):
    before = _sha(evidence)
    for args, status in READERS:
        result = _run([*args, "--db", str(evidence)])
        assert result.returncode == status, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert _sha(evidence) == before, args
        assert _siblings(evidence) == ["ledger.db"], (args, _siblings(evidence))
    replay = _run(["replay", "--db", str(evidence)])
    assert FTX_DIGEST in replay.stdout


def _unshare_prefix() -> list[str]:
    # A private mount namespace: as root directly, otherwise as a user namespace's root.
    if shutil.which("unshare") is None:
        pytest.fail("util-linux's unshare is needed for the read-only media tests (apt-get install util-linux)")
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]


def _in_namespace(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_unshare_prefix(), "sh", "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_read_commands_work_on_a_read_only_mount(evidence, tmp_path):
    """Write-blocked media: the same file on a read-only bind mount. Before, every one of these
    failed with "unable to open database file"."""
    mount = tmp_path / "ro"
    mount.mkdir()
    lines = [f"mount --bind {evidence.parent} {mount}", f"mount -o remount,bind,ro {mount}"]
    lines.append(f"touch {mount}/probe 2>/dev/null && echo WRITABLE")
    for args, _ in READERS:
        command = " ".join([sys.executable, "-m", "ledger", *args, "--db", str(mount / "ledger.db")])
        lines.append(f"{command} >/dev/null 2>{tmp_path}/err; echo \"rc=$? $(head -c 300 {tmp_path}/err)\"")
    result = _in_namespace("\n".join(lines))
    assert result.returncode == 0, result.stderr
    assert "WRITABLE" not in result.stdout, "the mount is not read-only: the test proves nothing"
    codes = result.stdout.strip().splitlines()
    assert len(codes) == len(READERS), result.stdout
    for (args, status), line in zip(READERS, codes):
        assert line.rstrip() == f"rc={status}", (args, line)


def test_read_commands_work_on_a_full_disk(evidence, tmp_path):
    mount = tmp_path / "full"
    mount.mkdir()
    size = evidence.stat().st_size
    lines = [
        f"mount -t tmpfs -o size={size + 256 * 1024} tmpfs {mount}",
        f"cp {evidence} {mount}/ledger.db",
        f"dd if=/dev/zero of={mount}/filler bs=4096 2>/dev/null",
        f"dd if=/dev/zero of={mount}/probe bs=4096 count=1 2>/dev/null && echo ROOM; rm -f {mount}/probe",
    ]
    for args, _ in READERS:
        command = " ".join([sys.executable, "-m", "ledger", *args, "--db", str(mount / "ledger.db")])
        lines.append(f"{command} >/dev/null 2>{tmp_path}/err; echo \"rc=$? $(head -c 300 {tmp_path}/err)\"")
    lines.append(f"ls {mount}")
    result = _in_namespace("\n".join(lines))
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip().splitlines()
    assert "ROOM" not in out, "the disk is not full: the test proves nothing"
    for (args, status), line in zip(READERS, out):
        assert line.rstrip() == f"rc={status}", (args, line)
    assert out[len(READERS):] == ["filler", "ledger.db"]


def test_a_reader_reopens_live_when_a_writer_arrives(evidence):
    with Log.open(evidence, readonly=True) as reader:
        assert reader.head().seq == 190
        assert not Path(f"{evidence}-wal").exists()
        with Log.open(evidence) as writer:
            extra = next(e for e in replays.load_timeline("small-example").events if e.type == "entity_registered")
            writer.append([attrs.evolve(extra, id="late-entity", entity="late", at=writer.registry().state["last_at"])])
            assert reader.head().seq == 191
            assert [s for s, *_ in reader.iter_payloads(from_seq=191)] == [191]
        assert reader.head().seq == 191


def test_derived_data_goes_to_a_separate_file_tied_to_the_log(evidence, tmp_path):
    before = _sha(evidence)
    snap = _run(["snapshot", "--db", str(evidence), "--every", "50"])
    assert snap.returncode == 0, snap.stderr
    mat = _run(["materialize", "--db", str(evidence)])
    assert mat.returncode == 0, mat.stderr
    derived = evidence.with_name("ledger.derived.db")
    assert _sha(evidence) == before
    assert sorted(_siblings(evidence)) == ["ledger.db", "ledger.derived.db"]
    with Log.open(evidence, readonly=True) as log:
        meta = dict(sqlite3.connect(derived).execute("SELECT key, value FROM derived_meta"))
        assert meta["ledger_id"] == log.ledger_id
        assert (meta["built_from_seq"], meta["built_from_hash"]) == ("190", log.head().hash_hex)
    tables = {r[0] for r in sqlite3.connect(derived).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"snapshots", "postings", "balances", "violations", "loans", "prices"} <= tables
    # Point-in-time answers use it, and agree with a replay from seq 0.
    with_snap = _run(["balances", "--db", str(evidence), "--seq", "120", "--format", "json"])
    with Log.open(evidence, readonly=True) as log:
        inv = Investigation(log, derived=Derived.open(derived, log))
        assert inv.snapshots() == [50, 100, 150]
        plain = Investigation(log).as_of(seq=120)
    assert json.loads(with_snap.stdout)["balances"] == json.loads(
        CliRunner().invoke(cli, ["balances", "--timeline", "ftx-2022", "--seq", "120", "--format", "json"]).output
    )["balances"]
    assert plain.last_seq == 120
    verify = _run(["verify", "--db", str(evidence)])
    deltas = len([seq for seq in range(5, 191, 5) if seq % 50])  # --every 50: a delta every 5
    assert verify.returncode == 0 and f"3 snapshot(s) and {deltas} delta(s) match the events" in verify.stdout
    # Against another log it is refused.
    other = tmp_path / "other.db"
    assert _run(["append", "small-example", "--db", str(other)]).returncode == 0
    refused = _run(["snapshot", "--db", str(other), "--out", str(derived)])
    assert refused.returncode == 2
    assert "was built from ledger" in refused.stderr and "refused" in refused.stderr
    # --in-place writes into the log, as asked.
    inplace = _run(["snapshot", "--db", str(other), "--in-place", "--every", "5"])
    assert inplace.returncode == 0
    assert "snapshots" in {r[0] for r in sqlite3.connect(other).execute("SELECT name FROM sqlite_master")}


def test_a_forged_snapshot_is_found_by_verify(evidence):
    import zlib

    assert _run(["snapshot", "--db", str(evidence), "--every", "100"]).returncode == 0
    derived = evidence.with_name("ledger.derived.db")
    conn = sqlite3.connect(derived)
    (blob,) = conn.execute("SELECT state FROM snapshots WHERE seq = 100").fetchone()
    state = json.loads(zlib.decompress(blob))
    # One more cent in alameda's bank: the snapshot still decodes and is still tied to the chain.
    # (ledger/snapshot_format.py: balances as key columns of name indexes and a value column.)
    balances, names = state["put"]["balances"], state["names"]
    assert tuple(names[column[0]] for column in balances["keys"]) == ("alameda", "bank", "USD")
    balances["values"][0] += 1
    forged = json.dumps(state)
    conn.execute("UPDATE snapshots SET state = ? WHERE seq = 100", (zlib.compress(forged.encode()),))
    conn.commit()
    conn.close()
    result = _run(["verify", "--db", str(evidence)])
    assert result.returncode == 3
    assert "snapshot at seq 100 differs from the books the events give at that seq" in result.stderr


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE balances (who TEXT, cents INTEGER); INSERT INTO balances VALUES ('a', 1);"
        "CREATE TABLE prices (sym TEXT, px TEXT); INSERT INTO prices VALUES ('X', '1.0');"
    )
    conn.close()
    return path


FOREIGN_COMMANDS = [
    ["init"],
    ["append", "small-example"],
    ["snapshot"],
    ["snapshot", "--in-place"],
    ["materialize"],
    ["materialize", "--in-place"],
    ["replay", "small-example"],
    ["replay"],
    ["verify"],
    ["log"],
    ["check"],
]


def test_another_applications_database_is_refused_and_left_untouched(foreign):
    """Before: materialize dropped its balances and prices tables (exit 0); init, append,
    snapshot and replay added ledger tables and switched it to WAL."""
    before = _sha(foreign)
    for args in FOREIGN_COMMANDS:
        result = CliRunner().invoke(cli, [*args, "--db", str(foreign)])
        assert result.exit_code == 2, (args, result.output)
        assert f"{foreign}: not a ledger database (its tables: balances, prices); nothing was changed" in result.stderr, args
        assert _sha(foreign) == before, args
        assert _siblings(foreign) == ["app.db"], args


def test_an_empty_file_a_fifo_and_a_directory_are_refused(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.db"
    folder.mkdir()
    runner = CliRunner()
    for args in (["verify"], ["init"], ["append", "small-example"], ["log"], ["snapshot"]):
        result = runner.invoke(cli, [*args, "--db", str(empty)])
        assert result.exit_code == 2 and "is an empty file (0 bytes), not a ledger" in result.stderr, args
        assert empty.read_bytes() == b""
        result = runner.invoke(cli, [*args, "--db", str(fifo)])  # before: verify blocked forever
        assert result.exit_code == 2 and "is not a regular file" in result.stderr, args
        result = runner.invoke(cli, [*args, "--db", str(folder)])
        assert result.exit_code == 2 and "is a directory" in result.stderr, args
    with pytest.raises(NotALedgerError, match="is a directory"):
        Log.open(folder, readonly=True)
    assert sorted(_siblings(empty)) == ["empty.db", "fifo.db", "folder.db"]


def test_a_newer_log_format_is_refused_naming_the_version(evidence):
    conn = sqlite3.connect(evidence)
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'format'")
    conn.commit()
    conn.close()
    with pytest.raises(FormatError, match=r"written in log format 2; this program reads format 1 and older: upgrade"):
        Log.open(evidence, readonly=True)
    result = _run(["verify", "--db", str(evidence)])
    assert result.returncode == 2 and "log format 2" in result.stderr


# -- the append-only triggers ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("DROP TRIGGER events_refuse_delete", "the append-only trigger events_refuse_delete is missing"),
        (
            "DROP TRIGGER events_refuse_update; CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events "
            "WHEN 0 BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END",
            "the append-only trigger events_refuse_update was altered",
        ),
        ("DROP TRIGGER events_gapless", "the append-only trigger events_gapless is missing"),
    ],
)
def test_a_missing_or_altered_trigger_is_reported_and_blocks_appends(evidence, change, message):
    conn = sqlite3.connect(evidence)
    conn.executescript(change)
    conn.close()
    result = _run(["verify", "--db", str(evidence)])
    assert result.returncode == 3 and message in result.stderr
    before = _sha(evidence)
    refused = _run(["append", str(ROOT / "replays" / "small_example.toml"), "--db", str(evidence)])
    assert refused.returncode == 3 and message in refused.stderr and "refusing to write" in refused.stderr
    assert _sha(evidence) == before


def test_insert_or_replace_without_recursive_triggers_deletes_a_row_and_verify_names_it(evidence):
    """What the triggers do not stop (docs/reliability.md): a plain sqlite3 client has
    recursive_triggers off, so REPLACE deletes the old row without firing the DELETE trigger."""
    conn = sqlite3.connect(evidence)
    row = conn.execute("SELECT * FROM events WHERE seq = 190").fetchone()
    # Replacing seq 190 itself is refused by the gapless trigger...
    with pytest.raises(sqlite3.IntegrityError, match="seq must continue the log without a gap"):
        conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (190, "forged", *row[2:]))
    # ...but a new seq 191 that reuses seq 5's event_id deletes seq 5 as a UNIQUE conflict.
    (event_id,) = conn.execute("SELECT event_id FROM events WHERE seq = 5").fetchone()
    conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (191, event_id, *row[2:]))
    conn.commit()
    assert conn.execute("SELECT count(*) FROM events WHERE seq = 5").fetchone() == (0,)
    conn.close()
    result = _run(["verify", "--db", str(evidence)])
    assert result.returncode == 3
    assert "seq 5: missing (found seq 6 next); rows were deleted or reordered" in result.stderr


# -- 2. nothing outside the hash chain is trusted -----------------------------------------------
def _registry_rows(path: Path) -> dict:
    conn = sqlite3.connect(path)
    try:
        return {(k, key): v for k, key, v in conn.execute("SELECT kind, key, value FROM registry")}
    finally:
        conn.close()


def _deposit_file(tmp_path: Path, account: str, amount: str = "5") -> Path:
    path = tmp_path / "more.jsonl"
    record = {
        "type": "deposit", "v": 1, "id": f"dep-{account}-{amount}", "at": "2023-12-01T00:00:00Z",
        "account": account, "asset": "USD", "amount": amount, "landed": "ftx:custody", "source": ["S01"],
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path


def test_a_forged_registry_account_does_not_let_a_deposit_in(evidence, tmp_path):
    """Before: the deposit was appended, verify said OK, and the log could not be replayed."""
    customers = json.loads(_registry_rows(evidence)[("account", "ftx:customers")])
    conn = sqlite3.connect(evidence)
    conn.execute(
        "INSERT INTO registry (kind, key, value) VALUES ('account', 'ftx:ghost', ?)",
        (json.dumps({**customers}, sort_keys=True),),
    )
    conn.commit()
    conn.close()
    before = _sha(evidence)
    result = _run(["append", str(_deposit_file(tmp_path, "ftx:ghost")), "--db", str(evidence)])
    assert result.returncode == 3, result.stdout
    assert "the registry table has a account 'ftx:ghost' that no event declares" in result.stderr
    assert "Traceback" not in result.stderr
    assert _sha(evidence) == before
    verify = _run(["verify", "--db", str(evidence)])
    assert verify.returncode == 3 and "ftx:ghost" in verify.stderr


def test_a_raised_scale_or_a_malformed_row_is_refused_without_a_traceback(evidence, tmp_path):
    for forged in (
        lambda v: json.dumps({**json.loads(v), "scale": 5}, sort_keys=True),  # lets 0.00001 USD in
        lambda v: "{not json",
        lambda v: json.dumps([1, 2]),
    ):
        work = tmp_path / "w.db"
        shutil.copy(evidence, work)
        conn = sqlite3.connect(work)
        (value,) = conn.execute("SELECT value FROM registry WHERE kind = 'asset' AND key = 'USD'").fetchone()
        conn.execute("UPDATE registry SET value = ? WHERE kind = 'asset' AND key = 'USD'", (forged(value),))
        conn.commit()
        conn.close()
        result = _run(["append", str(_deposit_file(tmp_path, "ftx:customers", "0.00001")), "--db", str(work)])
        assert result.returncode == 3, (result.stdout, result.stderr)
        assert "the registry table's asset 'USD' is" in result.stderr
        assert "Traceback" not in result.stderr
        with Log.open(work, readonly=True) as log, pytest.raises(VerificationError, match="registry table's asset 'USD'"):
            log.verify()


def test_an_event_appended_past_the_checks_is_named_by_verify(evidence):
    """A deposit into an account never opened, chained correctly (as the forged registry let
    in before): verify re-checks every event against the history and names its seq."""
    with Tamper(evidence) as t:
        row = t.row(190)
        at = json.loads(row[5])["at"]
        record = {
            "type": "deposit", "v": 1, "id": "ghost-dep", "at": at, "account": "ftx:ghost",
            "asset": "USD", "amount": "1", "landed": "ftx:custody", "source": ["S01"],
        }
        text = ev.canonical_json(ev.from_dict(record))
        digest = chain_hash(bytes(row[7]), 191, row[4], text.encode())
        t.insert((191, "ghost-dep", "deposit", at, row[4], text, bytes(row[7]), digest))
    result = _run(["verify", "--db", str(evidence)])
    assert result.returncode == 3
    assert "seq 191: the event is impossible given the history before it (account: unknown account 'ftx:ghost'" in result.stderr


def test_the_registry_is_rebuilt_from_the_events_that_change_it():
    """Registry.CHANGING_TYPES is what apply() really changes: a registry rebuilt from those
    events alone equals one that saw every event, on every bundled timeline."""
    from ledger.registry import Registry

    for timeline in replays.bundled():
        full, partial = Registry(), Registry()
        for event in timeline.events:
            before = full.rows()
            full.apply(event)
            if event.type not in Registry.CHANGING_TYPES:
                assert full.rows() == before, event.id
            else:
                partial.apply(event)
        assert partial.rows() == full.rows()


# -- 5. output paths and input sizes -------------------------------------------------------------
def test_output_errors_end_with_one_line_and_exit_4(evidence, tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "out.jsonl"
    for args in (["export", "-o", str(missing)], ["checkpoint", "-o", str(missing)]):
        result = _run([*args, "--db", str(evidence)])
        assert result.returncode == 4, args
        assert result.stderr == f"Error: cannot write {missing}: No such file or directory\n"
    with open("/dev/full", "w") as full:
        for args in (["log"], ["replay"], ["export"], ["balances"]):
            result = subprocess.run(
                [sys.executable, "-m", "ledger", *args, "--db", str(evidence)],
                stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
            )
            assert result.returncode == 4, (args, result.stderr)
            assert result.stderr.strip().splitlines() == ["Error: cannot write standard output: No space left on device"], args


@pytest.fixture(scope="module")
def large_log(tmp_path_factory) -> Path:
    """5,000 synthetic events: more output than a pipe buffers (64 KiB)."""
    folder = tmp_path_factory.mktemp("large")
    with Log.open(folder / "ledger.db", create=True) as log:
        log.append(synthetic.workload(5_000, accounts=100))
    return folder / "ledger.db"


def test_a_closed_pipe_ends_quietly(large_log):
    for args in (["log"], ["replay"], ["export", "--what", "postings"]):
        reader = subprocess.Popen(["head", "-n", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        writer = subprocess.run(
            [sys.executable, "-m", "ledger", *args, "--db", str(large_log)],
            stdout=reader.stdin, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
        )
        reader.stdin.close()
        reader.wait()
        assert writer.stderr == "", args
        assert writer.returncode == 141, args  # 128 + SIGPIPE, as a shell reports it; never 1


def _peak_rss_kb_of_append(jsonl: Path, db: Path) -> int:
    code = textwrap.dedent(
        f"""
        import resource, sys
        from ledger.cli import main
        sys.argv = ["ledger", "append", {str(jsonl)!r}, "--db", {str(db)!r}]
        try:
            main()
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def test_json_lines_append_streams_in_bounded_memory(tmp_path):
    """Peak memory of appending 10,000 and 100,000 events of the synthetic history: the ten
    times larger file must not cost more memory than a small bound (reading the whole file
    into memory, as before, costs about 150 MB more for the larger one)."""
    sizes = {}
    for n in (10_000, 100_000):
        path = tmp_path / f"w{n}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            replays.dump_jsonl(synthetic.workload(n, accounts=200), out)
        sizes[n] = _peak_rss_kb_of_append(path, tmp_path / f"w{n}.db")
        with Log.open(tmp_path / f"w{n}.db", readonly=True) as log:
            assert log.head().seq == n
    grown_mb = (sizes[100_000] - sizes[10_000]) / 1024
    assert grown_mb < 25, sizes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_a_bad_line_late_in_a_streamed_file_writes_nothing(tmp_path):
    path = tmp_path / "w.jsonl"
    with path.open("w", encoding="utf-8") as out:
        replays.dump_jsonl(synthetic.workload(12_000, accounts=50), out)
        out.write('{"type": "deposit", "v": 1, "id": "bad", "at": "2030-01-01T00:00:00Z"}\n')
    db = tmp_path / "w.db"
    result = _run(["append", str(path), "--db", str(db)])
    assert result.returncode == 2
    assert f"{path}:12001" in result.stderr
    assert _siblings(db) == ["w.jsonl"]  # no log left behind: the command created it, and nothing went in
    existing = tmp_path / "existing.db"
    assert _run(["append", "small-example", "--db", str(existing)]).returncode == 0
    before = _sha(existing)
    assert _run(["append", str(path), "--db", str(existing)]).returncode == 2
    assert _sha(existing) == before


# -- 6. the testing kit installs ------------------------------------------------------------------
def test_every_subpackage_is_installed():
    """The wheel's package list comes from pyproject: every package folder of events/, ledger/
    and replays/ must be in it (ledger.testing once was not). CI also installs the wheel."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    find = config["tool"]["setuptools"]["packages"]["find"]
    installed = set(find_packages(str(ROOT), include=find["include"]))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("events", "ledger", "replays")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert "ledger.testing" in on_disk
    assert on_disk <= installed, on_disk - installed
