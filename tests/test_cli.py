"""The foundation commands through click's CliRunner: init, append, log, verify, checkpoint,
timelines, export; one-line errors without tracebacks; every command documented by --help."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from conftest import head_signature

import events as ev
import replays
from ledger.cli import cli
from ledger.store import Checkpoint, Log

SMALL = replays.load_timeline("small-example")


def run(*args: str, env: dict[str, str] | None = None, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env=env, prog_name="bankrun")
    assert result.exit_code == code, (args, result.output)
    if code == 0:
        assert result.exception is None
    return result


@pytest.fixture
def db(tmp_path) -> str:
    """A log holding the bundled small example (24 events)."""
    path = str(tmp_path / "ledger.db")
    run("append", "small-example", "--db", path)
    return path


def test_init_creates_once(tmp_path):
    path = tmp_path / "new.db"
    first = run("init", "--db", str(path))
    with Log.open(path, readonly=True) as log:
        ledger_id = log.ledger_id
    assert first.stdout == f"{path}: ledger {ledger_id} created, head seq 0\n"
    second = run("init", "--db", str(path))
    assert second.stdout == f"{path}: ledger {ledger_id} already exists, head seq 0\n"


def test_init_leaves_an_existing_log_alone(db):
    before = head_signature(db)
    assert "already exists, head seq 24" in run("init", "--db", db).stdout
    assert head_signature(db) == before


def test_db_from_the_environment(tmp_path):
    path = str(tmp_path / "env.db")
    run("append", "small-example", env={"LEDGER_DB": path})
    assert run("verify", env={"LEDGER_DB": path}).stdout.startswith(f"{path}: OK, 24 events")


def test_append_twice_appends_nothing_the_second_time(tmp_path):
    path = str(tmp_path / "ledger.db")
    first = run("append", "small-example", "--db", path)
    with Log.open(path, readonly=True) as log:
        head = log.head()
    assert first.stdout == f"{SMALL.path}: appended 24 event(s); head seq 24 {head.hash_hex[:16]}\n"
    before = head_signature(path)
    second = run("append", "small-example", "--db", path)
    assert second.stdout == f"{SMALL.path}: appended 0 event(s), 24 already recorded; head seq 24 {head.hash_hex[:16]}\n"
    assert head_signature(path) == before


def test_append_with_expected_head(db, tmp_path):
    extra = tmp_path / "more.jsonl"
    later = ev.Disclosure(id="later", at="2021-06-01T00:00:00Z", source=["EX"], entity="venue", title="Later")
    extra.write_text(ev.canonical_json(later) + "\n", encoding="utf-8")
    before = head_signature(db)
    refused = run("append", str(extra), "--db", db, "--expected-head", "23", code=2)
    assert refused.stderr == (
        "Error: expected head seq 23 but the log is at seq 24; another writer appended first: re-read and retry\n"
    )
    assert head_signature(db) == before
    assert "appended 1 event(s); head seq 25" in run("append", str(extra), "--db", db, "--expected-head", "24").stdout


# -- log --------------------------------------------------------------------------------------
def _ids(output: str) -> list[str]:
    return [line.split()[3] for line in output.splitlines()]


def test_log_lists_every_event_in_seq_order(db):
    out = run("log", "--db", db).stdout
    lines = out.splitlines()
    assert len(lines) == 24
    assert _ids(out) == [e.id for e in SMALL.events]
    assert [int(line.split()[0]) for line in lines] == list(range(1, 25))
    assert lines[13] == (
        "     14  2021-02-01T00:00:00Z  deposit              dep-1  "
        "account=venue:clients asset=USD amount=5000000 landed=venue:custody"
    )


def test_log_filters(db):
    assert _ids(run("log", "--db", db, "--type", "deposit").stdout) == ["dep-1", "dep-2-routed"]
    assert _ids(run("log", "--db", db, "--type", "withdrawal", "--type", "withdrawals_halted").stdout) == [
        "fund-draw", "run-1", "run-2", "halt"
    ]
    assert _ids(run("log", "--db", db, "--from", "2021-05-01", "--to", "2021-05-02T12:00:00Z").stdout) == [
        "price-tok-2", "run-1", "run-2"
    ]
    assert _ids(run("log", "--db", db, "--from", "2021-05-02T00:00:01+00:00").stdout) == ["run-2", "halt", "filing"]
    assert _ids(run("log", "--db", db, "--to", "2021-01-02").stdout) == [e.id for e in SMALL.events[:12]]
    assert _ids(run("log", "--db", db, "--limit", "3").stdout) == [e.id for e in SMALL.events[:3]]
    assert _ids(run("log", "--db", db, "--type", "withdrawal", "--limit", "2").stdout) == ["fund-draw", "run-1"]
    assert run("log", "--db", db, "--from", "2030-01-01").stdout == ""
    assert run("log", "--db", db, "--limit", "0").stdout == ""


def test_log_jsonl_is_the_canonical_event_plus_seq_and_recorded_at(db):
    lines = run("log", "--db", db, "--format", "jsonl", "--type", "deposit").stdout.splitlines()
    with Log.open(db, readonly=True) as log:
        records = {r.event.id: r for r in log.iter_records()}
    assert len(lines) == 2
    for line in lines:
        data = json.loads(line)
        record = records[data["id"]]
        assert data.pop("seq") == record.seq
        assert data.pop("recorded_at") == record.recorded_at
        assert json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == record.payload


# -- verify and checkpoint --------------------------------------------------------------------
def test_checkpoint_to_a_file_then_verify_against_it(db, tmp_path):
    cp_file = tmp_path / "cp.json"
    out = run("checkpoint", "--db", db, "-o", str(cp_file)).stdout
    cp = Checkpoint.read(cp_file)
    assert out == cp_file.read_text(encoding="utf-8") == cp.to_json() + "\n"
    with Log.open(db, readonly=True) as log:
        assert (cp.ledger_id, cp.seq, cp.head_hash) == (log.ledger_id, 24, log.head().hash_hex)
    verified = run("verify", "--db", db, "--checkpoint", str(cp_file)).stdout
    assert verified == f"{db}: OK, 24 events, head seq 24 {cp.head_hash}, 1 checkpoint(s) matched\n"
    # The log grows: the old checkpoint still matches its prefix.
    extra = tmp_path / "more.jsonl"
    extra.write_text(ev.canonical_json(ev.Disclosure(id="later", at="2021-06-01T00:00:00Z", source=["EX"], entity="venue", title="t")) + "\n", encoding="utf-8")
    run("append", str(extra), "--db", db)
    cp2 = tmp_path / "cp2.json"
    run("checkpoint", "--db", db, "--output", str(cp2))
    both = run("verify", "--db", db, "--checkpoint", str(cp_file), "--checkpoint", str(cp2)).stdout
    assert both.startswith(f"{db}: OK, 25 events, head seq 25 ") and both.endswith(", 2 checkpoint(s) matched\n")


def test_verify_without_checkpoints(db):
    with Log.open(db, readonly=True) as log:
        head = log.head()
    assert run("verify", "--db", db).stdout == f"{db}: OK, 24 events, head seq 24 {head.hash_hex}\n"


def test_checkpoint_of_another_ledger_fails_verification(db, tmp_path):
    other = str(tmp_path / "other.db")
    run("append", "small-example", "--db", other)
    cp_file = tmp_path / "other.json"
    run("checkpoint", "--db", other, "-o", str(cp_file))
    result = run("verify", "--db", db, "--checkpoint", str(cp_file), code=3)
    assert result.stderr.startswith("Error: verification failed: checkpoint is for ledger ")


# -- timelines and export ---------------------------------------------------------------------
def test_timelines_lists_the_bundled_histories():
    lines = run("timelines").stdout.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == [t.name for t in replays.bundled()]
    assert "small-example       24 events  A venue lends customer money to its affiliate (invented example)" in lines
    assert run("timelines", "--check").stdout.splitlines() == lines


def test_export_then_reappend_gives_the_same_events(db, tmp_path):
    out = tmp_path / "events.jsonl"
    result = run("export", "--db", db, "-o", str(out))
    assert result.stderr == f"wrote 24 events to {out}\n"
    assert run("export", "--db", db).stdout == out.read_text(encoding="utf-8")
    fresh = str(tmp_path / "fresh.db")
    assert "appended 24 event(s)" in run("append", str(out), "--db", fresh).stdout
    with Log.open(db, readonly=True) as a, Log.open(fresh, readonly=True) as b:
        original = [r.payload for r in a.iter_records()]
        copied = [r.payload for r in b.iter_records()]
        assert a.ledger_id != b.ledger_id
    assert copied == original
    assert original == [ev.canonical_json(e) for e in SMALL.events]
    # And the export re-appends onto its own source as a no-op.
    before = head_signature(db)
    assert "appended 0 event(s), 24 already recorded" in run("append", str(out), "--db", db).stdout
    assert head_signature(db) == before


def test_export_round_trips_text_that_str_splitlines_would_cut(tmp_path):
    tricky = [*SMALL.events[:11]]
    tricky.append(ev.Disclosure(id="tricky", at="2021-01-05T00:00:00Z", source=["EX"], entity="venue",
                                title="a\u2028b\u2029c\x85d\x1ce\x0bf\x0cg\rh", note="Résumé\nline"))
    src = tmp_path / "src.jsonl"
    src.write_text("".join(ev.canonical_json(e) + "\n" for e in tricky), encoding="utf-8")
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    run("append", str(src), "--db", first)
    out = tmp_path / "out.jsonl"
    run("export", "--db", first, "-o", str(out))
    run("append", str(out), "--db", second)
    with Log.open(second, readonly=True) as log:
        assert list(log.iter_events()) == tricky


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["log", "--db", "{missing}"], "{missing}: no ledger here; create one with 'bankrun init'"),
        (["verify", "--db", "{missing}"], "{missing}: no ledger here; create one with 'bankrun init'"),
        (["checkpoint", "--db", "{missing}"], "{missing}: no ledger here; create one with 'bankrun init'"),
        (["export", "--db", "{missing}"], "{missing}: no ledger here; create one with 'bankrun init'"),
        (["log", "--db", "{db}", "--type", "deposlt"], "--type: unknown event type 'deposlt' (did you mean 'deposit'?); expected one of: account_opened, "),
        (["log", "--db", "{db}", "--from", "last tuesday"], "--from: 'last tuesday' is not a time: write an instant"),
        (["log", "--db", "{db}", "--to", "2021-05-02T00:00:00"], "--to: '2021-05-02T00:00:00' is not a time (timestamp must include a UTC offset"),
        (["verify", "--db", "{db}", "--checkpoint", "{missing}"], "{missing}: cannot read checkpoint (No such file or directory)"),
        (["append", "{missing}", "--db", "{db}"], "{missing}: no such file or bundled timeline (bundled: "),
        (["append", "{bad}", "--db", "{db}"], "{bad}:1: type: unknown event type 'nope'"),
    ],
)
def test_errors_are_one_line_without_traceback(db, tmp_path, args, message):
    names = {"db": db, "missing": str(tmp_path / "missing.db"), "bad": str(tmp_path / "bad.jsonl")}
    (tmp_path / "bad.jsonl").write_text('{"type":"nope"}\n', encoding="utf-8")
    before = head_signature(db)
    result = CliRunner().invoke(cli, [a.format(**names) for a in args])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: " + message.format(**names))
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert "Traceback" not in result.output
    assert head_signature(db) == before
    assert not (tmp_path / "missing.db").exists()


def test_usage_errors_exit_2():
    result = CliRunner().invoke(cli, ["log", "--limit", "many"])
    assert result.exit_code == 2
    assert "Invalid value for '--limit': 'many' is not a valid integer" in result.stderr
    assert "Traceback" not in result.output


# -- documentation ----------------------------------------------------------------------------
def _commands():
    """Every command, those imported only when named (``LAZY_COMMANDS``) too."""
    ctx = click.Context(cli, info_name="bankrun")
    return sorted((name, cli.get_command(ctx, name)) for name in cli.list_commands(ctx))


@pytest.mark.parametrize(("name", "command"), _commands(), ids=[n for n, _ in _commands()])
def test_every_command_has_help(name, command):
    result = run(name, "--help")
    assert result.stdout.startswith(f"Usage: bankrun {name} ") or result.stdout.startswith(f"Usage: bankrun {name}\n")
    assert command.help and command.help.strip(), f"{name} has no docstring"
    summary = command.get_short_help_str(limit=200)
    assert summary and summary in " ".join(result.stdout.split())
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help and param.help.strip(), f"bankrun {name} {param.opts[0]} has no help text"
            assert param.opts[0] in result.stdout


def test_the_group_help_lists_every_visible_command():
    out = run("--help").stdout
    for name, command in _commands():
        if not command.hidden:
            assert f"  {name} " in out or f"  {name}\n" in out, name


def test_the_foundation_commands_exist():
    assert {"init", "append", "log", "verify", "checkpoint", "timelines", "export"} <= set(cli.commands)



def test_log_filters_by_account_and_entity_with_did_you_mean(tmp_path):
    db = str(tmp_path / "ftx.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["append", "ftx-2022", "--db", db]).exit_code == 0
    out = runner.invoke(cli, ["log", "--db", db, "--account", "ftx:custody", "--type", "withdrawal"]).output
    lines = out.strip().splitlines()
    assert lines and all("ftx:custody" in line for line in lines)
    assert any("draw-2020" in line for line in lines)
    # An entity: itself, its accounts, the loans it lent or borrowed, the accounts it holds.
    genesis = runner.invoke(cli, ["log", "--db", db, "--entity", "genesis"]).output
    assert "entity:genesis" in genesis and "genesis-loan" in genesis and "genesis-halts" in genesis
    assert "draw-2020" not in genesis
    held = runner.invoke(cli, ["log", "--db", db, "--entity", "alameda", "--type", "withdrawal"]).output
    assert "draw-2020" in held  # a withdrawal from ftx:alameda, the account alameda holds at ftx
    for args, message in [
        (["--account", "ftx:custdy"], "--account: unknown account 'ftx:custdy' (did you mean 'ftx:custody'?)"),
        (["--entity", "alameeda"], "--entity: unknown entity 'alameeda' (did you mean 'alameda'?)"),
        (["--type", "withdrawl"], "--type: unknown event type 'withdrawl' (did you mean 'withdrawal'?)"),
    ]:
        result = runner.invoke(cli, ["log", "--db", db, *args])
        assert result.exit_code == 2 and message in result.stderr, args


# -- one --format, one time grammar, one date format ------------------------------------------
@pytest.fixture(scope="module")
def ftx_db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ftx") / "ftx.db")
    assert CliRunner().invoke(cli, ["append", "ftx-2022", "--db", path]).exit_code == 0
    return path


#: Every command that prints data, with the time options it takes (None: it takes none).
DATA_COMMANDS = {
    "replay": (["replay", "--db", "{db}"], ["--until", "{t}"]),
    "check": (["check", "--db", "{db}"], None),
    "log": (["log", "--db", "{db}"], ["--from", "2019-01", "--to", "{t}"]),
    "balances": (["balances", "--db", "{db}"], ["--at", "{t}"]),
    "history": (["history", "ftx:custody", "--db", "{db}"], ["--from", "2019-01", "--to", "{t}"]),
    "trace": (["trace", "--asset", "USD", "--deposits-into", "ftx", "--db", "{db}"], ["--since", "2019-01", "--until", "{t}"]),
    "diff": (["diff", "2022-06", "{t}", "--db", "{db}"], []),
    "verify": (["verify", "--db", "{db}"], None),
    "timelines": (["timelines"], None),
}
TABLES = ["log", "balances", "history", "trace", "timelines"]


WHENS = ["2022-11", "2022-11-07", "2022-11-07T12:00:00Z", "2022-11-07T13:00:00+01:00"]
CASES = [(n, w) for n in sorted(DATA_COMMANDS) for w in (WHENS if DATA_COMMANDS[n][1] is not None else WHENS[:1])]


@pytest.mark.parametrize(("name", "when"), CASES)
def test_every_data_command_takes_format_json_and_the_one_time_grammar(ftx_db, name, when):
    base, times = DATA_COMMANDS[name]
    args = [a.format(db=ftx_db, t=when) for a in [*base, *(times or [])]]
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code in (0, 1), (args, result.output)
    document = json.loads(result.stdout)
    assert isinstance(document, dict) and document


@pytest.mark.parametrize("name", TABLES)
def test_tables_have_csv(ftx_db, name):
    import csv
    import io

    base, _ = DATA_COMMANDS[name]
    result = run(*[a.format(db=ftx_db, t="2022-11-07") for a in base], "--format", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) > 1 and all(len(row) == len(rows[0]) for row in rows)


def test_log_json_jsonl_and_csv_are_the_same_events(ftx_db):
    import csv
    import io

    document = json.loads(run("log", "--db", ftx_db, "--type", "deposit", "--format", "json").stdout)
    lines = [json.loads(x) for x in run("log", "--db", ftx_db, "--type", "deposit", "--format", "jsonl").stdout.splitlines()]
    rows = list(csv.DictReader(io.StringIO(run("log", "--db", ftx_db, "--type", "deposit", "--format", "csv").stdout)))
    assert document["format"] == 1 and document["events"] == lines and len(lines) > 5
    assert [int(r["seq"]) for r in rows] == [x["seq"] for x in lines]
    assert [r["id"] for r in rows] == [x["id"] for x in lines]


def test_balances_csv_rows_match_the_json(ftx_db):
    import csv
    import io

    document = json.loads(run("balances", "--db", ftx_db, "--entity", "ftx", "--format", "json").stdout)
    rows = list(csv.DictReader(io.StringIO(run("balances", "--db", ftx_db, "--entity", "ftx", "--format", "csv").stdout)))
    assert [(r["account"], r["asset"], r["balance"], r["view"]) for r in rows] == [
        (b["account"], b["asset"], b["balance"], b["view"]) for b in document["balances"]
    ]
    assert {r["quote"] for r in rows} == {"USD"}


def test_one_date_format_in_text_output(ftx_db):
    import re

    for args in (
        ["replay", "--db", ftx_db],
        ["log", "--db", ftx_db, "--type", "withdrawal"],
        ["history", "ftx:custody", "--db", ftx_db],
        ["trace", "--asset", "USD", "--deposits-into", "ftx", "--db", ftx_db],
        ["balances", "--db", ftx_db, "--at", "2022-11-07"],
    ):
        out = CliRunner().invoke(cli, args).stdout
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out), args
        assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", out), args  # no second form beside it
        assert not re.search(r"\(\d{4}-\d\d-\d\d\)", out), args


def test_diff_marks_opened_and_closed_as_replay_does(ftx_db):
    out = run("diff", "2022-11-06", "2022-11-09", "--db", ftx_db).stdout
    replayed = CliRunner().invoke(cli, ["replay", "--db", ftx_db]).stdout
    assert "!collateral-coverage" in out and "+own-token-concentration" in out
    assert "!collateral-coverage" in replayed and "+own-token-concentration" in replayed


def test_format_json_through_the_real_command(ftx_db):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "ledger", "verify", "--db", ftx_db, "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["ok"] is True and document["head"]["seq"] == len(replays.load_timeline("ftx-2022").events)


def test_history_names_the_counterparty_and_lists_refused_withdrawals(ftx_db):
    text = run("history", "ftx:customers", "--asset", "USDC", "--db", ftx_db).stdout
    header, *rows = text.splitlines()
    assert header.split()[:4] == ["seq", "effective", "event", "counterparty"]
    deposit = next(r for r in rows if " crypto-2019 " in r)
    assert deposit.split()[3] == "ftx:custody"
    refused = [r for r in rows if " refused " in r]
    assert any("run-2022-11-06-d" in r and "1,000,000,000 USDC asked, not paid: ftx:custody holds" in r for r in refused)
    assert any("run-2022-11-09-after-halt" in r and "ftx has halted withdrawals" in r for r in refused)
    # The balance does not move on a refusal; the machine formats carry the same lines.
    lines = json.loads(run("history", "ftx:customers", "--asset", "USDC", "--db", ftx_db, "--format", "json").stdout)["lines"]
    assert len(lines) == len(rows)
    unpaid = [x for x in lines if x["refused"]]
    assert len(unpaid) == len(refused) and all(x["delta"] == "0.00" for x in unpaid)
    for x in unpaid:
        before = lines[lines.index(x) - 1]
        assert x["balance"] == before["balance"]
    assert {x["counterparty"] for x in lines if not x["refused"] and x["type"] == "withdrawal"} == {"ftx:custody"}


def test_history_refuses_a_typo_before_printing_anything(ftx_db):
    result = CliRunner().invoke(cli, ["history", "ftx:custdy", "--db", ftx_db])
    assert result.exit_code == 2 and result.stdout == ""
    assert "did you mean 'ftx:custody'?" in result.stderr
    assert run("history", "ftx:custody", "--db", ftx_db, "--from", "2030-01").stdout == "(no postings to ftx:custody in that range)\n"
