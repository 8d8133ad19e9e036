"""`bankrun replay`, `bankrun check` and `bankrun balances` through click's CliRunner.

The JSON shapes documented in docs/replay-json.md are pinned here: a change to them is a change
of the report ``format``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal

import pytest
from click.testing import CliRunner
from scenario import CAST_SIZE, FIRST_SEQ, write

import replays
from ledger.cli import cli
from ledger.invariants import STANDARD_NAMES
from ledger.replay import books_at
from ledger.store import Log

HISTORY = """
[[events]]
id = "d1"
type = "deposit"
at = 2022-02-01T00:00:00Z
account = "ex:cust"
asset = "USD"
amount = "100.00"
landed = "ex:custody"

[[events]]
id = "routed"
type = "deposit"
at = 2022-02-02T00:00:00Z
account = "ex:cust"
asset = "USD"
amount = "50.00"
landed = "aff:bank"
owed_by = "ex:aff"

[[events]]
id = "w1"
type = "withdrawal"
at = 2022-02-03T00:00:00Z
account = "ex:cust"
asset = "USD"
amount = "10.00"
paid_from = "ex:custody"

[[events]]
id = "claim"
type = "balance_asserted"
at = 2022-02-04T00:00:00Z
entity = "ex"
measure = "customer_shortfall"
quote = "USD"
expected = "50.00"
tolerance = "0"
"""
# After routed: aff owes ex 50 with no credit line (no-unauthorised-negative); ex owes 150,
# holds 100 in custody (segregation, reserve-ratio 0.6667 broken); the 50 aff owes is 0.3333 of
# customer liabilities (related-party broken). After w1: owes 140, holds 90: the shortfall is
# still 50, as the record says.
N = CAST_SIZE + 4
STEP_ROW = re.compile(r"^\s*\d+  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  ")
BROKEN = ["no-unauthorised-negative", "segregation", "reserve-ratio", "related-party-exposure"]

CLEAN = """
[[events]]
id = "d1"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100.00"
landed = "ex:custody"
"""


def _table(stdout: str) -> list[str]:
    """The step table's lines: what comes before the summary (whose notices are rows too)."""
    return stdout.split("\nSummary")[0].splitlines()


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


# ------------------------------------------------------------------------------------------------
# exit status, recording
# ------------------------------------------------------------------------------------------------
def test_replay_exits_1_when_an_invariant_broke(runner, tmp_path):
    path = write(tmp_path, HISTORY)
    result = invoke(runner, "replay", path, "--db", tmp_path / "l.db")
    assert result.exit_code == 1
    out = result.stdout
    assert f"appended {N} event(s); head seq {N}" in out
    assert f"segregation                first broke at seq {FIRST_SEQ + 1}, 2022-02-02T00:00:00Z, event routed [T]" in out
    assert "withdrawals-honoured       held throughout" in out
    assert "ex/customer_shortfall" in out and "matches" in out
    # Not proved intact first: the head is stated, not endorsed.
    assert "Head, not verified (prove the log with --verify or 'bankrun verify'): {" in out
    assert "Checkpoint" not in out
    verified = invoke(runner, "replay", path, "--db", tmp_path / "l.db", "--verify")
    assert "Checkpoint (the log verified): {" in verified.stdout


def test_replay_exits_0_when_nothing_broke(runner, tmp_path):
    result = invoke(runner, "replay", write(tmp_path, CLEAN), "--db", tmp_path / "l.db")
    assert result.exit_code == 0
    assert result.stdout.count("held throughout") == len(STANDARD_NAMES)


@pytest.mark.parametrize(
    ("fail_on", "code"),
    [
        (["withdrawals-honoured"], 0),
        (["conservation", "assertions"], 0),
        (["segregation"], 1),
        (["assertions", "related-party-exposure"], 1),
    ],
)
def test_fail_on_chooses_which_invariants_fail_the_run(runner, tmp_path, fail_on, code):
    args = ["replay", write(tmp_path, HISTORY), "--no-record"]
    for name in fail_on:
        args += ["--fail-on", name]
    assert invoke(runner, *args).exit_code == code


def test_fail_on_refuses_an_unknown_invariant(runner, tmp_path):
    result = runner.invoke(cli, ["replay", str(write(tmp_path, HISTORY)), "--no-record", "--fail-on", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.stderr


def test_rerun_appends_nothing(runner, tmp_path):
    path, db = write(tmp_path, HISTORY), tmp_path / "l.db"
    invoke(runner, "replay", path, "--db", db)
    again = invoke(runner, "replay", path, "--db", db)
    assert again.exit_code == 1
    assert f"appended 0 event(s), {N} already recorded; head seq {N}" in again.stdout
    with Log.open(db, readonly=True) as log:
        assert log.head().seq == N


def test_a_longer_version_of_the_same_history_appends_the_rest(runner, tmp_path):
    db = tmp_path / "l.db"
    invoke(runner, "replay", write(tmp_path, CLEAN, name="t"), "--db", db)
    more = CLEAN + HISTORY.replace('id = "d1"', 'id = "d1b"')
    result = invoke(runner, "replay", write(tmp_path, more, name="t", filename="t2.toml"), "--db", db)
    assert f"appended 4 event(s), {CAST_SIZE + 1} already recorded" in result.stdout


def test_refuses_a_db_holding_another_history(runner, tmp_path):
    db = tmp_path / "l.db"
    invoke(runner, "replay", write(tmp_path, HISTORY, name="first"), "--db", db)
    other = write(tmp_path, HISTORY.replace('id = "d1"', 'id = "x1"'), name="second")
    result = runner.invoke(cli, ["replay", str(other), "--db", str(db)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        f"Error: {db} records another history (seq {FIRST_SEQ} is 'd1', second has 'x1' there). "
        "Use --db OTHER.db or --no-record."
    )
    with Log.open(db, readonly=True) as log:
        assert log.head().seq == N


def test_refuses_a_db_holding_a_longer_history(runner, tmp_path):
    db = tmp_path / "l.db"
    invoke(runner, "replay", write(tmp_path, HISTORY, name="long"), "--db", db)
    result = runner.invoke(cli, ["replay", str(write(tmp_path, CLEAN, name="short")), "--db", str(db)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds 19 events, more than short has (16)" in lines[0]


def test_no_record_writes_no_file(runner, tmp_path):
    db = tmp_path / "never.db"
    result = invoke(runner, "replay", write(tmp_path, HISTORY), "--no-record", "--db", db)
    assert result.exit_code == 1
    assert not db.exists()
    assert "appended" not in result.stdout and "Checkpoint" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.toml"]


def test_replay_without_a_timeline_replays_the_stored_log(runner, tmp_path):
    db = tmp_path / "l.db"
    invoke(runner, "append", write(tmp_path, HISTORY), "--db", db)
    result = invoke(runner, "replay", "--db", db)
    assert result.exit_code == 1
    assert f"Replay of {db} (quote USD)" in result.stdout
    assert f"{N} events replayed" in result.stdout


def test_replay_until_and_steps_changes(runner, tmp_path):
    path = write(tmp_path, HISTORY)
    result = invoke(runner, "replay", path, "--no-record", "--until", "2022-02-01T12:00:00Z")
    assert result.exit_code == 0  # stops before the routed deposit
    assert f"{FIRST_SEQ} events replayed, up to 2022-02-01T00:00:00Z" in result.stdout
    changes = invoke(runner, "replay", path, "--no-record", "--steps", "changes")
    rows = [line for line in _table(changes.stdout) if STEP_ROW.match(line)]
    assert [row.split()[0] for row in rows] == [str(FIRST_SEQ + 1)]
    # Each mark names its subject: two breaches of one invariant are told apart.
    assert (
        "!no-unauthorised-negative(ex:aff/USD) !segregation(ex/USD) !reserve-ratio(ex) !related-party-exposure(ex)"
        in rows[0]
    )
    everything = invoke(runner, "replay", path, "--no-record")
    assert len([line for line in _table(everything.stdout) if STEP_ROW.match(line)]) == N
    none = invoke(runner, "replay", path, "--no-record", "--steps", "none")
    assert not [line for line in _table(none.stdout) if STEP_ROW.match(line)]


def test_the_closing_sentence_names_the_quote(runner, tmp_path):
    result = invoke(runner, "replay", write(tmp_path, HISTORY), "--no-record")
    line = next(x for x in result.stdout.splitlines() if x.startswith("At the end, "))
    assert "owes customers 140 USD and holds" in line


# ------------------------------------------------------------------------------------------------
# JSON and JSON Lines, and their pinned shapes
# ------------------------------------------------------------------------------------------------
DOCUMENT_KEYS = {"format", "title", "policy", "steps", "summary"}
STEP_KEYS = {"seq", "event", "opened", "closed", "metrics", "notices", "skipped", "assertion"}
SUMMARY_KEYS = {
    "events", "last_seq", "last_at", "invariants", "first_breaches", "still_open",
    "breach_counts", "assertions", "skipped", "digest", "final_metrics",
}
VIOLATION_KEYS = {
    "invariant", "subject", "seq", "event_id", "at", "observed", "threshold", "detail",
    "contributing", "source",
}
ASSERTION_KEYS = {"seq", "event_id", "at", "subject", "ok", "actual", "expected", "bound", "tolerance", "gap", "detail"}
POLICY_KEYS = {
    "quote", "min_reserve_ratio", "min_collateral_coverage", "max_own_token_share",
    "max_related_party_exposure", "haircuts", "enforce", "disabled",
}
METRIC_KEYS = {"venue", "customer_liabilities", "custody", "shortfall", "reserve_ratio"}
CHECKPOINT_KEYS = {"kind", "ledger_id", "seq", "head_hash", "taken_at", "verified"}


def test_json_document_shape_is_pinned(runner, tmp_path):
    result = invoke(runner, "replay", write(tmp_path, HISTORY), "--no-record", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert set(doc) == DOCUMENT_KEYS
    assert doc["format"] == 1
    assert doc["title"] == "t: test scenario"
    assert set(doc["policy"]) == POLICY_KEYS
    assert doc["policy"]["min_reserve_ratio"] == "1" and doc["policy"]["haircuts"]["crypto"] == "0.25"
    assert len(doc["steps"]) == N
    for step in doc["steps"]:
        assert set(step) == STEP_KEYS
    routed = doc["steps"][FIRST_SEQ]
    assert routed["seq"] == FIRST_SEQ + 1
    assert routed["event"] == {
        "account": "ex:cust", "amount": "50", "asset": "USD", "at": "2022-02-02T00:00:00Z",
        "id": "routed", "landed": "aff:bank", "owed_by": "ex:aff", "source": ["T"],
        "type": "deposit", "v": 1,
    }
    assert [v["invariant"] for v in routed["opened"]] == BROKEN
    for v in routed["opened"]:
        assert set(v) == VIOLATION_KEYS
    assert routed["metrics"] == {
        "venue": "ex", "customer_liabilities": "150", "custody": "100", "shortfall": "50",
        "reserve_ratio": "0.6667",
    }
    assert set(routed["metrics"]) == METRIC_KEYS
    assert routed["skipped"] is None and routed["assertion"] is None
    claim = doc["steps"][-1]
    assert set(claim["assertion"]) == ASSERTION_KEYS
    assert claim["assertion"]["ok"] is True
    summary = doc["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert sorted(summary["first_breaches"]) == sorted(BROKEN)
    for v in [*summary["first_breaches"].values(), *summary["still_open"]]:
        assert set(v) == VIOLATION_KEYS
    for a in summary["assertions"]:
        assert set(a) == ASSERTION_KEYS
    assert [set(i) for i in summary["invariants"]] == [{"name", "meaning"}] * len(STANDARD_NAMES)
    assert summary["events"] == summary["last_seq"] == N
    assert summary["skipped"] == []
    assert len(summary["digest"]) == 64
    v = summary["first_breaches"]["segregation"]
    assert v == {
        "invariant": "segregation", "subject": "ex/USD", "seq": FIRST_SEQ + 1, "event_id": "routed",
        "at": "2022-02-02T00:00:00Z", "observed": "100.00 USD in custody",
        "threshold": "150.00 USD owed", "detail": v["detail"], "contributing": v["contributing"],
        "source": ["T"],
    }
    assert v["contributing"][-1] == "routed"


def test_json_skipped_entries_shape(runner, tmp_path):
    pol = tmp_path / "p.toml"
    pol.write_text('enforce = ["segregation"]\n', encoding="utf-8")
    result = invoke(runner, "replay", write(tmp_path, HISTORY), "--no-record", "--format", "json", "--policy", pol)
    doc = json.loads(result.stdout)
    assert [set(s) for s in doc["summary"]["skipped"]] == [{"seq", "event_id", "reason"}]
    assert doc["summary"]["skipped"][0]["event_id"] == "routed"
    assert doc["steps"][FIRST_SEQ]["skipped"].startswith("segregation: ")
    assert doc["policy"]["enforce"] == ["segregation"]
    # With the routed deposit skipped nothing else breaks, and the record (shortfall 50) is off.
    assert list(doc["summary"]["first_breaches"]) == ["assertions"]
    assert result.exit_code == 1


def test_jsonl_lines_parse_and_their_shape_is_pinned(runner, tmp_path):
    result = invoke(runner, "replay", write(tmp_path, HISTORY), "--db", tmp_path / "l.db", "--format", "jsonl")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds == ["step"] * N + ["summary", "checkpoint"]
    for line in lines[:N]:
        assert set(line) == STEP_KEYS | {"kind"}
    assert set(lines[N]) == SUMMARY_KEYS | {"kind", "format"}
    assert lines[N]["format"] == 1
    assert set(lines[N + 1]) == CHECKPOINT_KEYS
    assert lines[N + 1]["seq"] == N
    # The same steps as the JSON document.
    doc = json.loads(invoke(runner, "replay", write(tmp_path, HISTORY), "--no-record", "--format", "json").stdout)
    assert [{k: v for k, v in line.items() if k != "kind"} for line in lines[:N]] == doc["steps"]
    assert lines[N]["digest"] == doc["summary"]["digest"]


def test_jsonl_without_recording_has_no_checkpoint(runner, tmp_path):
    result = invoke(runner, "replay", write(tmp_path, HISTORY), "--no-record", "--format", "jsonl")
    kinds = [json.loads(line)["kind"] for line in result.stdout.splitlines()]
    assert kinds[-1] == "summary" and "checkpoint" not in kinds


def test_money_in_json_is_never_a_number(runner, tmp_path):
    doc = json.loads(invoke(runner, "replay", write(tmp_path, HISTORY), "--no-record", "--format", "json").stdout)

    def walk(node, path=""):
        if isinstance(node, float):
            raise AssertionError(f"float at {path}")
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    assert k in ("seq", "format", "events", "last_seq", "v", "scale") or path.endswith("breach_counts"), f"{path}.{k}"
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(doc)


@pytest.mark.parametrize("bundled", [False, True], ids=["history", "ftx-2022"])
def test_replay_output_is_the_same_under_any_hash_seed(tmp_path, bundled):
    # Invariants walk sets of what an event touched; the report must not depend on set order.
    path = "ftx-2022" if bundled else str(write(tmp_path, HISTORY))
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-m", "ledger", "replay", path, "--no-record", "--format", "json"],
            capture_output=True, text=True, env=env, check=False,
        )
        assert proc.returncode == 1, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]


# ------------------------------------------------------------------------------------------------
# bankrun check
# ------------------------------------------------------------------------------------------------
def test_check_the_stored_log(runner, tmp_path):
    db = tmp_path / "l.db"
    invoke(runner, "append", write(tmp_path, HISTORY), "--db", db)
    text = invoke(runner, "check", "--db", db)
    assert text.exit_code == 1
    assert f"segregation                first broke at seq {FIRST_SEQ + 1}" in text.stdout
    assert "Head, not verified (prove the log with --verify or 'bankrun verify'): {" in text.stdout
    doc = invoke(runner, "check", "--db", db, "--format", "json")
    data = json.loads(doc.stdout)
    assert set(data) == SUMMARY_KEYS | {"format"}
    assert sorted(data["first_breaches"]) == sorted(BROKEN)
    assert invoke(runner, "check", "--db", db, "--fail-on", "withdrawals-honoured").exit_code == 0
    assert invoke(runner, "check", "--db", db, "--fail-on", "reserve-ratio").exit_code == 1


def test_check_a_clean_log_and_a_missing_one(runner, tmp_path):
    db = tmp_path / "l.db"
    invoke(runner, "append", write(tmp_path, CLEAN), "--db", db)
    assert invoke(runner, "check", "--db", db).exit_code == 0
    missing = runner.invoke(cli, ["check", "--db", str(tmp_path / "nope.db")])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("Error: ") and "nope.db" in missing.stderr


def test_check_with_a_policy_file(runner, tmp_path):
    db = tmp_path / "l.db"
    invoke(runner, "append", write(tmp_path, HISTORY), "--db", db)
    pol = tmp_path / "p.toml"
    pol.write_text('disabled = ["no-unauthorised-negative", "segregation", "reserve-ratio", "related-party-exposure"]\n', encoding="utf-8")
    assert invoke(runner, "check", "--db", db, "--policy", pol).exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('\nthreshold = "1"\n', encoding="utf-8")
    result = runner.invoke(cli, ["check", "--db", str(db), "--policy", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {bad}:2: threshold: unknown policy key"


# ------------------------------------------------------------------------------------------------
# bankrun balances
# ------------------------------------------------------------------------------------------------
def D(text) -> Decimal:
    return Decimal(text)


@pytest.fixture
def recorded(runner, tmp_path):
    path = write(tmp_path, HISTORY)
    db = tmp_path / "l.db"
    invoke(runner, "append", path, "--db", db)
    return replays.load_timeline(path), db


def balances_json(runner, db, *args):
    result = invoke(runner, "balances", "--db", db, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_balances_json_matches_the_books(runner, recorded):
    tl, db = recorded
    data = balances_json(runner, db)
    books = books_at(tl)
    assert data["seq"] == N and data["quote"] == "USD" and data["format"] == 1
    assert set(data) == {"format", "seq", "at", "quote", "balances", "balance_sheets", "coverage", "loans", "prices"}
    expected = []
    for (entity, account, asset), _ in books.iter_balances():
        ref = f"{entity}:{account}"
        customer = ref in books.registry.accounts and books.registry.accounts[ref].purpose == "customer"
        minor = books.balance(ref, asset) if customer else books.balances[(entity, account, asset)]
        expected.append((entity, account, asset, books.amount(minor, asset), "holder" if customer else "own"))
    got = [(r["entity"], r["account"], r["asset"], D(r["balance"]), r["view"]) for r in data["balances"]]
    assert got == expected
    # Worked by hand: cust is owed 140, aff owes 50, 90 in custody.
    assert ("ex", "cust", "USD", D(140), "holder") in got
    assert ("ex", "aff", "USD", D(-50), "holder") in got
    assert ("ex", "custody", "USD", D(90), "own") in got
    sheet = data["balance_sheets"]["ex"]
    assert (D(sheet["total_assets"]), D(sheet["total_liabilities"]), D(sheet["equity"])) == (D(140), D(140), D(0))
    assert [{k: (D(v) if k not in ("venue", "asset") else v) for k, v in row.items()} for row in data["coverage"]] == [
        {"venue": "ex", "asset": "USD", "owed_to_customers": D(140), "in_custody": D(90), "shortfall": D(50)}
    ]
    assert all(isinstance(v, str) for row in data["coverage"] for v in row.values())


def test_balances_at_a_seq_and_at_a_time(runner, recorded):
    tl, db = recorded
    at_seq = balances_json(runner, db, "--seq", FIRST_SEQ + 1)
    assert at_seq["seq"] == FIRST_SEQ + 1
    rows = {(r["entity"], r["account"], r["asset"]): D(r["balance"]) for r in at_seq["balances"]}
    books = books_at(tl, seq=FIRST_SEQ + 1)
    assert rows[("ex", "cust", "USD")] == D(150) == books.amount(books.balance("ex:cust", "USD"), "USD")
    assert rows[("ex", "custody", "USD")] == D(100)
    at_time = balances_json(runner, db, "--at", "2022-02-02T23:00:00Z")
    assert at_time["seq"] == FIRST_SEQ + 1 and at_time["at"] == "2022-02-02T00:00:00Z"
    assert at_time["balances"] == at_seq["balances"]
    before = balances_json(runner, db, "--at", "2022-01-31")
    assert before["seq"] == CAST_SIZE and before["balances"] == []


def test_balances_for_one_entity(runner, recorded):
    tl, db = recorded
    data = balances_json(runner, db, "--entity", "aff")
    assert {r["entity"] for r in data["balances"]} == {"aff"}
    assert list(data["balance_sheets"]) == ["aff"]
    books = books_at(tl)
    sheet = books.balance_sheet("aff")
    assert {k: D(v) for k, v in data["balance_sheets"]["aff"]["assets"].items()} == sheet["assets"] == {"bank USD": D(50)}
    text = invoke(runner, "balances", "--db", db, "--entity", "aff")
    assert re.search(r"^  aff +50\.00 +50\.00 +0\.00$", text.stdout, flags=re.M), text.stdout
    unknown = runner.invoke(cli, ["balances", "--db", str(db), "--entity", "zz"])
    assert unknown.exit_code == 2 and "unknown entity 'zz'" in unknown.stderr


def test_balances_from_a_timeline_file(runner, tmp_path):
    path = write(tmp_path, HISTORY)
    result = invoke(runner, "balances", "--timeline", path, "--seq", FIRST_SEQ, "--format", "json")
    data = json.loads(result.stdout)
    assert data["seq"] == FIRST_SEQ
    assert {(r["account"], D(r["balance"])) for r in data["balances"] if r["entity"] == "ex"} == {("cust", D(100)), ("custody", D(100))}


def test_balances_text_values(runner, recorded):
    _, db = recorded
    text = invoke(runner, "balances", "--db", db, "--seq", FIRST_SEQ + 1).stdout
    assert text.startswith(f"Books at seq {FIRST_SEQ + 1} (2022-02-02T00:00:00Z), values in USD")
    sheets = text[text.index("Balance sheets (USD):"):]
    assert re.search(r"^  entity +assets +liabilities +equity$", sheets, flags=re.M)
    assert re.search(r"^  ex +150\.00 +150\.00 +0\.00$", sheets, flags=re.M), text


def test_balances_text_shows_coverage_and_loans_and_no_equity_per_asset(runner, tmp_path):
    """The text has what the help promises (before, only JSON had coverage and loans) and shows
    equity once, in the quote, on the balance sheet (it printed an equity line per asset, in
    units)."""
    db = tmp_path / "ftx.db"
    invoke(runner, "append", "ftx-2022", "--db", db)
    text = invoke(runner, "balances", "--db", db, "--at", "2022-11-07", "--entity", "ftx").stdout
    assert "Coverage of what venues owe customers:" in text
    assert re.search(r"^  ftx +USDC +1,100,000,000\.00 +200,000,000\.00 +900,000,000\.00$", text, flags=re.M)
    assert "Loans and secured accounts (values in USD):" in text
    assert re.search(r"^  ftx:alameda +ftx +alameda ", text, flags=re.M)
    balances = text[: text.index("Balance sheets")]
    assert " equity " not in balances
    assert "\x1b[" not in text and "─" not in text and "│" not in text


# ------------------------------------------------------------------------------------------------
# --help
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["replay", "check", "balances", "append"])
def test_help(runner, command):
    result = invoke(runner, command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: cli {command}") or result.stdout.startswith(f"Usage: bankrun {command}")
    assert "--db" in result.stdout and "--help" in result.stdout
    if command in ("replay", "check"):
        assert "--fail-on" in result.stdout and "--format" in result.stdout and "--policy" in result.stdout
    if command == "balances":
        for option in ("--at", "--seq", "--entity", "--format"):
            assert option in result.stdout



# ------------------------------------------------------------------------------------------------
# say what you know: notices in text, breach counts that say what they count
# ------------------------------------------------------------------------------------------------
def test_text_shows_the_notices_only_json_had_and_says_what_counts_count(runner):
    text = invoke(runner, "replay", "ftx-2022", "--no-record").stdout
    doc = json.loads(invoke(runner, "replay", "ftx-2022", "--no-record", "--format", "json").stdout)
    notices = [(s["seq"], n) for s in doc["steps"] for n in s["notices"]]
    assert len(notices) > 10
    assert f"Notices ({len(notices)}): what the books noted that is not a breach:" in text
    for seq, notice in notices:
        assert re.search(rf"^ +{seq}  \S+  \S+ +{re.escape(notice)}$", text, flags=re.M), notice
    assert "100000000 USD of customer money landed at alameda:bank, not with ftx" in text
    # A count says what it counts: violations opened and for which subjects, or failed assertions.
    assert "opened 2 time(s) for 2 subject(s) (ftx/USD, ftx/USDC)" in text
    failed = sum(1 for a in doc["summary"]["assertions"] if not a["ok"])
    assert f"{failed} of {len(doc['summary']['assertions'])} assertion(s) of the record failed" in text
    assert "breach(es) in all" not in text


def test_check_text_has_the_notices_too(runner, tmp_path):
    db = tmp_path / "ftx.db"
    invoke(runner, "append", "ftx-2022", "--db", db)
    text = invoke(runner, "check", "--db", db).stdout
    assert "Notices (" in text and "landed at alameda:bank, not with ftx" in text
    assert "opened 2 time(s) for 2 subject(s) (ftx/USD, ftx/USDC)" in text
