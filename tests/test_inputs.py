"""Bad inputs (reliability plan §3b, B1-B30) through the library and through `bankrun append`:
each is refused with the file, the line and the field named, and nothing is appended. Then the
parser fuzz, round-trip and idempotent-rerun properties."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner
from conftest import head_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import histories, to_jsonl, to_toml

import events as ev
import replays
from ledger.cli import cli
from ledger.errors import ConflictError, InputError, LedgerError
from ledger.store import Log

BASE_TOML = """\
schema_version = 1

[timeline]
name = "inputs"
title = "Bad inputs"

[sources]
S = "a source"

[[entities]]
entity = "ex"
name = "Exchange"
kind = "exchange"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[entities]]
entity = "cust"
name = "Customers"
kind = "customer_pool"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[entities]]
entity = "aff"
name = "Affiliate"
kind = "trading_firm"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[entities]]
entity = "bank"
name = "Lender"
kind = "lender"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[assets]]
asset = "USD"
name = "US dollar"
scale = 2
kind = "fiat"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[assets]]
asset = "BTC"
name = "Bitcoin"
scale = 8
kind = "crypto"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[assets]]
asset = "JPY"
name = "Yen"
scale = 0
kind = "fiat"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[accounts]]
account = "ex:custody"
purpose = "customer-custody"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[accounts]]
account = "ex:cust"
purpose = "customer"
holder = "cust"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[accounts]]
account = "aff:bank"
purpose = "corporate"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[accounts]]
account = "bank:vault"
purpose = "corporate"
at = 2022-01-01T00:00:00Z
source = ["S"]

[[events]]
id = "dep-1"
type = "deposit"
at = 2022-02-01T00:00:00Z
account = "ex:cust"
asset = "USD"
amount = "100.00"
landed = "ex:custody"
source = ["S"]

[[events]]
id = "loan-1"
type = "loan_opened"
at = 2022-02-02T00:00:00Z
loan = "L1"
lender = "bank"
borrower = "aff"
asset = "USD"
principal = "50.00"
disbursed_from = "bank:vault"
disbursed_to = "aff:bank"
source = ["S"]

[[events]]
id = "pledge-1"
type = "collateral_pledged"
at = 2022-02-03T00:00:00Z
loan = "L1"
asset = "BTC"
amount = "1"
from_account = "aff:bank"
source = ["S"]
"""
BASE_EVENTS = 14  # 4 entities, 3 assets, 4 accounts, 3 events
BAD_INDEX = 3  # the appended block is events[3] in the TOML file

# The bad event, as raw literals (TOML and JSON spell these the same way, except `at`).
DEPOSIT = {
    "id": '"bad"', "type": '"deposit"', "at": '"2022-03-01T00:00:00Z"', "account": '"ex:cust"',
    "asset": '"USD"', "amount": '"1.00"', "landed": '"ex:custody"', "source": '["S"]',
}


def toml_text(fields: dict[str, str | None], *, base: str = BASE_TOML, extra: str = "") -> str:
    body = "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)
    return f"{base}\n[[events]]\n{body}{extra}"


def jsonl_base() -> str:
    return "".join(ev.canonical_json(e) + "\n" for e in BASE.events)


def jsonl_line(fields: dict[str, str | None], *, extra: str = "") -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items() if v is not None) + extra + "}\n"


def jsonl_text(fields: dict[str, str | None], *, extra: str = "") -> str:
    return jsonl_base() + jsonl_line(fields, extra=extra)


def toml_at(fields: dict[str, str | None]) -> dict[str, str | None]:
    """The same fields with ``at`` as a TOML date-time literal instead of a string."""
    return {k: (v.strip('"') if k == "at" and v else v) for k, v in fields.items()}


def last_line_of(text: str, start: str) -> int:
    lines = text.split("\n")
    return max(i for i, line in enumerate(lines, start=1) if line.startswith(start))


def header_line(text: str) -> int:
    return last_line_of(text, "[[events]]")


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("base") / "ledger.db"
    with Log.open(path, create=True) as log:
        log.append(BASE.events, where=BASE.where)
    return path


def _load_base() -> replays.Timeline:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.toml"
        path.write_text(BASE_TOML, encoding="utf-8")
        return replays.load_toml(path)


BASE = _load_base()


def test_the_base_timeline_is_valid_in_both_formats(tmp_path):
    assert len(BASE.events) == BASE_EVENTS
    (tmp_path / "t.jsonl").write_text(jsonl_base(), encoding="utf-8")
    assert replays.load_timeline(tmp_path / "t.jsonl").events == BASE.events
    (tmp_path / "t.toml").write_text(toml_text(DEPOSIT), encoding="utf-8")
    (tmp_path / "u.jsonl").write_text(jsonl_text(DEPOSIT), encoding="utf-8")
    toml_events = replays.load_timeline(tmp_path / "t.toml").events
    assert toml_events == replays.load_timeline(tmp_path / "u.jsonl").events
    assert toml_events[-1] == ev.Deposit(id="bad", at="2022-03-01T00:00:00Z", source=["S"], account="ex:cust",
                                         asset="USD", amount="1", landed="ex:custody")


# -- the harness ------------------------------------------------------------------------------
class Refusal:
    """Run one bad file through the library and the CLI; both must refuse it the same way."""

    def __init__(self, tmp_path: Path, base_db: Path, fmt: str, content: str | bytes) -> None:
        self.path = tmp_path / f"timeline.{fmt}"
        if isinstance(content, bytes):
            self.path.write_bytes(content)
        else:
            self.path.write_text(content, encoding="utf-8")
        self.db = tmp_path / "ledger.db"
        self.db.write_bytes(base_db.read_bytes())
        self.before = head_signature(self.db)

    def library(self) -> str:
        with pytest.raises((InputError, ConflictError)) as info:
            timeline = replays.load_timeline(self.path)
            with Log.open(self.db) as log:
                log.append(timeline.events, where=timeline.where)
        assert head_signature(self.db) == self.before
        return str(info.value)

    def cli(self) -> str:
        result = CliRunner().invoke(cli, ["append", str(self.path), "--db", str(self.db)])
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert result.stdout == ""
        assert result.stderr.startswith("Error: ")
        assert "Traceback" not in result.output
        assert head_signature(self.db) == self.before
        return result.stderr.removeprefix("Error: ").removesuffix("\n")

    def check(self, where: str | None, field: str | None, *texts: str) -> str:
        """Both ways give the same message naming ``file:where``, ``field`` and each text."""
        message = self.library()
        assert self.cli() == message
        if where is not None:
            assert f"{self.path}:{where}: " in message, message
        else:
            assert str(self.path) in message, message
        if field is not None:
            assert f"{field}: " in message, message
        for text in texts:
            assert text in message, message
        return message


def _field(fmt: str, name: str, stage: str) -> str:
    # Field errors found while reading a TOML file carry the path into the file (events[3].amount);
    # JSONL records and checks against the history name the field itself.
    return f"events[{BAD_INDEX}].{name}" if fmt == "toml" and stage == "load" else name


def refuse(tmp_path, base_db, fmt, fields, *, stage, field, texts, extra_toml="", extra_json=""):
    """Build the bad file from DEPOSIT-like ``fields`` and check the refusal."""
    if fmt == "toml":
        text = toml_text(toml_at(fields), extra=extra_toml)
        key = field.split(".")[-1] if field else None
        line = last_line_of(text, f"{key} =") if stage == "load" and fields.get(key) is not None else header_line(text)
    else:
        text = jsonl_text(fields, extra=extra_json)
        line = len(text.split("\n")) - 1
    return Refusal(tmp_path, base_db, fmt, text).check(str(line), _field(fmt, field, stage) if field else None, *texts)


FORMATS = pytest.mark.parametrize("fmt", ["toml", "jsonl"])


# -- B1, B2: malformed JSON -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "col", "text"),
    [
        ('{"id":"x","type":"deposit",}', 28, "invalid JSON: Expecting property name enclosed in double quotes"),
        ('{"id":"x","type":"deposit"', 27, "invalid JSON: Expecting ',' delimiter"),
        ('{"id":"x" "type":"deposit"}', 11, "invalid JSON: Expecting ',' delimiter"),
    ],
)
def test_b1_malformed_json(tmp_path, base_db, bad, col, text):
    content = jsonl_base() + bad + "\n"
    Refusal(tmp_path, base_db, "jsonl", content).check(f"{BASE_EVENTS + 1}:{col}", None, text)


def test_b2_malformed_jsonl_record_is_reported_at_its_own_line(tmp_path, base_db):
    lines = jsonl_base().split("\n")
    content = "\n".join([lines[0], '{"id":2,}', *lines[1:]])
    Refusal(tmp_path, base_db, "jsonl", content).check("2:9", None, "invalid JSON: Expecting property name")


def test_b1_b2_every_bad_record_is_reported_sorted_by_line(tmp_path, base_db):
    lines = jsonl_base().split("\n")
    content = "\n".join([lines[0], "{", lines[1], "[1,", *lines[2:]])
    message = Refusal(tmp_path, base_db, "jsonl", content).check(None, None)
    path = tmp_path / "timeline.jsonl"
    assert message.split("\n") == [
        f"2 problems in {path}:",
        f"  {path}:2:2: invalid JSON: Expecting property name enclosed in double quotes",
        f"  {path}:4:4: invalid JSON: Expecting value",
    ]


# -- B3, B5: malformed TOML -------------------------------------------------------------------
def test_b3_malformed_toml(tmp_path, base_db):
    text = BASE_TOML + "b = \n"
    line = len(BASE_TOML.split("\n"))
    Refusal(tmp_path, base_db, "toml", text).check(f"{line}:5", None, "invalid TOML: Invalid value")


def test_b5_duplicate_toml_key(tmp_path, base_db):
    text = toml_text({**DEPOSIT, "at": "2022-03-01T00:00:00Z"}, extra='amount = "2.00"\n')
    line = last_line_of(text, 'amount = "2.00"')
    Refusal(tmp_path, base_db, "toml", text).check(f"{line}:16", None, "invalid TOML: Cannot overwrite a value")


def test_b4_duplicate_json_key(tmp_path, base_db):
    refuse(tmp_path, base_db, "jsonl", DEPOSIT, stage="load", field="amount",
           texts=["duplicate key 'amount'"], extra_json=',"amount":"2.00"')


# -- B6: empty files, no events, no header ----------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "content", "where", "text"),
    [
        ("toml", "", "1", "missing schema_version (write 'schema_version = 1' first)"),
        ("toml", "schema_version = 1\n", None, "no events"),
        ("toml", "schema_version = 1\nevents = []\n", None, "no events"),
        ("toml", '[[events]]\nid = "x"\n', "1", "missing schema_version"),
        ("jsonl", "", None, "no events"),
        ("jsonl", "\n\n  \n", None, "no events"),
    ],
)
def test_b6_empty_file_no_events_missing_header(tmp_path, base_db, fmt, content, where, text):
    message = Refusal(tmp_path, base_db, fmt, content).check(where, None, text)
    if where is None:
        assert message == f"{tmp_path / f'timeline.{fmt}'}: {text}"


# -- B7 - B11: schema ------------------------------------------------------------------------
@FORMATS
def test_b7_unknown_event_type(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "type": '"deposlt"'}, stage="load", field="type",
           texts=["unknown event type 'deposlt'; expected one of: account_opened, asset_listed, balance_asserted, "])


@FORMATS
def test_b8_missing_required_field(tmp_path, base_db, fmt):
    message = refuse(tmp_path, base_db, fmt, {**DEPOSIT, "account": None}, stage="load", field="account",
                     texts=["account: required"])
    if fmt == "toml":  # no `account =` line to point at: the block's header
        assert f":{header_line(toml_text(toml_at({**DEPOSIT, 'account': None})))}: " in message


@FORMATS
def test_b9_unknown_field(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "amout": "5"}, stage="load", field="amout",
           texts=["unknown field for deposit (fields: id, at, source, note, account, asset, amount, landed, owed_by, from_account)"])


@FORMATS
@pytest.mark.parametrize(
    ("literal", "text"),
    [
        ("true", "expected integer or decimal string, got bool"),
        ('"ten"', "expected integer or decimal string, got 'ten'"),
        ("[1]", "expected integer or decimal string, got list"),
        ('"1e3"', "expected integer or decimal string, got '1e3'"),
        ('{"a" = 1}', "expected integer or decimal string, got dict"),
    ],
)
def test_b10_wrong_type(tmp_path, base_db, fmt, literal, text):
    if fmt == "jsonl":
        literal = literal.replace(" = ", ":")
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "amount": literal}, stage="load", field="amount", texts=[text])


@FORMATS
@pytest.mark.parametrize(("literal", "shown"), [("-5", "-5"), ("0", "0"), ('"-0"', "-0"), ("-0.0", "-0.0"), ('"0.00"', "0.00")])
def test_b11_negative_or_zero_amount(tmp_path, base_db, fmt, literal, shown):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "amount": literal}, stage="load", field="amount",
           texts=[f"amount must be > 0, got {shown}"])


# -- B12 - B15: numbers -----------------------------------------------------------------------
@FORMATS
@pytest.mark.parametrize(
    ("asset", "literal", "text"),
    [
        ('"USD"', '"0.001"', "0.001 USD has 3 decimal places; USD allows 2"),
        ('"USD"', "0.001", "0.001 USD has 3 decimal places; USD allows 2"),
        ('"JPY"', '"1.5"', "1.5 JPY has 1 decimal places; JPY allows 0"),
        ('"BTC"', '"0.000000001"', "0.000000001 BTC has 9 decimal places; BTC allows 8"),
    ],
)
def test_b12_more_precision_than_the_asset_allows_is_never_rounded(tmp_path, base_db, fmt, asset, literal, text):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "asset": asset, "amount": literal}, stage="history", field="amount",
           texts=[text, "event 'bad'"])


@FORMATS
@pytest.mark.parametrize(("literal", "stored"), [("0.1", "0.1"), ("12.30", "12.3"), ("1e2", "100"), ("7", "7")])
def test_b13_number_literals_are_read_exactly(tmp_path, base_db, fmt, literal, stored):
    fields = {**DEPOSIT, "amount": literal}
    if fmt == "toml":
        text = toml_text({**fields, "at": "2022-03-01T00:00:00Z"})
    else:
        text = jsonl_text(fields)
    path = tmp_path / f"timeline.{fmt}"
    path.write_text(text, encoding="utf-8")
    db = tmp_path / "ledger.db"
    db.write_bytes(base_db.read_bytes())
    result = CliRunner().invoke(cli, ["append", str(path), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: appended 1 event(s), {BASE_EVENTS} already recorded; head seq {BASE_EVENTS + 1} ")
    with Log.open(db, readonly=True) as log:
        record = log.get("bad")
    assert record.seq == BASE_EVENTS + 1
    assert json.loads(record.payload)["amount"] == stored
    assert f'"amount":"{stored}"' in record.payload  # a string, never a JSON number


@pytest.mark.parametrize(
    ("fmt", "literal"),
    [("toml", "nan"), ("toml", "inf"), ("toml", "-inf"), ("toml", "+inf"), ("toml", "-nan"),
     ("jsonl", "NaN"), ("jsonl", "Infinity"), ("jsonl", "-Infinity")],
)
def test_b14_nan_and_infinity(tmp_path, base_db, fmt, literal):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "amount": literal}, stage="load", field="amount",
           texts=["non-finite number not allowed"])


@FORMATS
def test_b14_b15_exponent_overflow(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "amount": "1e400"}, stage="load", field="amount",
           texts=["number too large"])


@FORMATS
@pytest.mark.parametrize("literal", [str(10**36), "1e37", '"1000000000000000000000000000000000000.00"', str(10**40)])
def test_b15_amounts_beyond_the_largest_amount_in_minor_units(tmp_path, base_db, fmt, literal):
    # The largest amount is 10^38 - 1 minor units (docs/model.md); at USD's scale 2 these are
    # 10^38 minor units or more. Amounts beyond 64 bits below it are accepted:
    # tests/test_amounts_any_size.py.
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "amount": literal}, stage="history", field="amount",
           texts=["USD exceeds the maximum of 10^38 - 1 minor units"])


@FORMATS
def test_b15_a_5000_digit_literal(tmp_path, base_db, fmt):
    message = refuse(tmp_path, base_db, fmt, {**DEPOSIT, "amount": "9" * 5000}, stage="load", field="amount",
                     texts=["number too large"])
    assert len(message) < 1000


# -- B16 - B18: references and impossibilities -----------------------------------------------
@FORMATS
def test_b16_unknown_account(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "account": '"ex:alameda-2"'}, stage="history", field="account",
           texts=["unknown account 'ex:alameda-2' (no account_opened before)"])


@FORMATS
def test_b17_unknown_asset(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "asset": '"FTX"'}, stage="history", field="asset",
           texts=["unknown asset 'FTX' (no asset_listed before)"])


SEIZE = {
    "id": '"seize"', "type": '"collateral_seized"', "at": '"2022-03-01T00:00:00Z"', "loan": '"L1"',
    "asset": '"BTC"', "amount": '"0.5"', "to_account": '"bank:vault"', "credited": '"10"',
    "credited_asset": '"BTC"', "source": '["S"]',
}


@FORMATS
def test_b17_asset_mismatch(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, SEIZE, stage="history", field="credited_asset",
           texts=["loan 'L1' is in USD, not BTC"])


REPAY = {
    "id": '"repay"', "type": '"loan_repaid"', "at": '"2022-03-01T00:00:00Z"', "loan": '"L1"',
    "amount": '"50.01"', "paid_from": '"aff:bank"', "paid_to": '"bank:vault"', "source": '["S"]',
}
RELEASE = {
    "id": '"release"', "type": '"collateral_released"', "at": '"2022-03-01T00:00:00Z"', "loan": '"L1"',
    "asset": '"BTC"', "amount": '"1.00000001"', "to_account": '"aff:bank"', "source": '["S"]',
}


@FORMATS
def test_b18_repaying_more_than_is_outstanding_is_refused(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, REPAY, stage="history", field="amount",
           texts=["repays 50.01 USD but only 50.00 is outstanding on loan 'L1'"])


@FORMATS
def test_b18_repaying_an_unknown_loan_is_refused(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, {**REPAY, "loan": '"L9"'}, stage="history", field="loan",
           texts=["unknown loan 'L9' (no loan_opened before)"])


@FORMATS
def test_b18_releasing_unpledged_collateral_is_refused(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, RELEASE, stage="history", field="amount",
           texts=["releases 1.00000001 BTC but only 1.00000000 is pledged against 'L1'"])
    refuse(tmp_path, base_db, fmt, {**RELEASE, "asset": '"USD"', "amount": '"1"'}, stage="history", field="amount",
           texts=["releases 1 USD but only 0.00 is pledged against 'L1'"])


def _append_ok(tmp_path, base_db, fmt, fields) -> Log:
    text = toml_text(toml_at(fields)) if fmt == "toml" else jsonl_text(fields)
    path = tmp_path / f"timeline.{fmt}"
    path.write_text(text, encoding="utf-8")
    db = tmp_path / "ledger.db"
    db.write_bytes(base_db.read_bytes())
    result = CliRunner().invoke(cli, ["append", str(path), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: appended 1 event(s), {BASE_EVENTS} already recorded; ")
    return Log.open(db, readonly=True)


@FORMATS
def test_b18_an_overdraft_is_history_not_an_input_error(tmp_path, base_db, fmt):
    withdrawal = {
        "id": '"run"', "type": '"withdrawal"', "at": '"2022-03-01T00:00:00Z"', "account": '"ex:cust"',
        "asset": '"USD"', "amount": '"1000000.00"', "paid_from": '"ex:custody"', "source": '["S"]',
    }
    with _append_ok(tmp_path, base_db, fmt, withdrawal) as log:
        assert log.get("run").event.amount == 1000000


@FORMATS
def test_b18_pledging_collateral_not_held_is_history_not_an_input_error(tmp_path, base_db, fmt):
    pledge = {
        "id": '"big-pledge"', "type": '"collateral_pledged"', "at": '"2022-03-01T00:00:00Z"', "loan": '"L1"',
        "asset": '"BTC"', "amount": '"5000"', "from_account": '"aff:bank"', "source": '["S"]',
    }
    with _append_ok(tmp_path, base_db, fmt, pledge) as log:
        assert log.head().seq == BASE_EVENTS + 1
        assert log.registry().pledges["L1|BTC"] == 5001 * 10**8


# -- B19 - B21: ids and order ----------------------------------------------------------------
@FORMATS
def test_b19_duplicate_event_id_inside_one_file(tmp_path, base_db, fmt):
    first = {**DEPOSIT, "id": '"e-17"'}
    second = {**DEPOSIT, "id": '"e-17"', "amount": '"2.00"', "at": '"2022-03-02T00:00:00Z"'}
    if fmt == "toml":
        text = toml_text(toml_at(second), base=toml_text(toml_at(first)))
        lines = [i for i, line in enumerate(text.split("\n"), start=1) if line == "[[events]]"][-2:]
    else:
        text = jsonl_base() + jsonl_line(first) + jsonl_line(second)
        lines = [BASE_EVENTS + 1, BASE_EVENTS + 2]
    Refusal(tmp_path, base_db, fmt, text).check(
        str(lines[1]), "id", f"duplicate event_id 'e-17' (line {lines[0]} and line {lines[1]})"
    )


@FORMATS
def test_b20_id_already_in_the_log_with_the_same_content_is_skipped(tmp_path, base_db, fmt):
    path = tmp_path / f"timeline.{fmt}"
    path.write_text(BASE_TOML if fmt == "toml" else jsonl_base(), encoding="utf-8")
    db = tmp_path / "ledger.db"
    db.write_bytes(base_db.read_bytes())
    before = head_signature(db)
    result = CliRunner().invoke(cli, ["append", str(path), "--db", str(db)])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{path}: appended 0 event(s), {BASE_EVENTS} already recorded; head seq {BASE_EVENTS} ")
    assert head_signature(db) == before


@FORMATS
def test_b20_id_already_in_the_log_with_different_content_is_a_named_conflict(tmp_path, base_db, fmt):
    text = BASE_TOML.replace('amount = "100.00"', 'amount = "120.00"') if fmt == "toml" else jsonl_base().replace('"amount":"100"', '"amount":"120"')
    line = BASE_TOML.split("\n").index('id = "dep-1"') if fmt == "toml" else 12
    Refusal(tmp_path, base_db, fmt, text).check(
        str(line), None, "event_id 'dep-1' already recorded at seq 12 with different amount (100 ≠ 120)"
    )


@FORMATS
def test_b21_out_of_order_timestamps_inside_one_file(tmp_path, base_db, fmt):
    early = {**DEPOSIT, "id": '"early"', "at": '"2022-02-15T00:00:00Z"'}
    late = {**DEPOSIT, "id": '"late"', "at": '"2022-03-01T00:00:00Z"'}
    if fmt == "toml":
        text = toml_text(toml_at(early), base=toml_text(toml_at(late)))
        lines = [i for i, line in enumerate(text.split("\n"), start=1) if line == "[[events]]"][-2:]
    else:
        text = jsonl_base() + jsonl_line(late) + jsonl_line(early)
        lines = [BASE_EVENTS + 1, BASE_EVENTS + 2]
    Refusal(tmp_path, base_db, fmt, text).check(
        str(lines[1]), "at",
        f"2022-02-15T00:00:00Z (line {lines[1]}) is before 2022-03-01T00:00:00Z (line {lines[0]}); events must be in time order",
    )


@FORMATS
def test_b21_earlier_than_the_log_head(tmp_path, base_db, fmt):
    # A file holding only the new event: the log's own history is what it goes back on.
    fields = {**DEPOSIT, "at": '"2022-02-02T12:00:00Z"'}
    if fmt == "toml":
        text = toml_text(toml_at(fields), base='schema_version = 1\n\n[sources]\nS = "a source"\n')
        line = header_line(text)
    else:
        text, line = jsonl_line(fields), 1
    Refusal(tmp_path, base_db, fmt, text).check(
        str(line), "at", "event 'bad': at: 2022-02-02T12:00:00Z is before the previous event's 2022-02-03T00:00:00Z"
    )


@FORMATS
def test_b21_ties_are_allowed_and_kept_in_file_order(tmp_path, base_db, fmt):
    events = [{**DEPOSIT, "id": f'"tie-{c}"', "at": '"2022-02-03T00:00:00Z"'} for c in "bca"]
    if fmt == "toml":
        text = BASE_TOML
        for fields in events:
            text = toml_text(toml_at(fields), base=text)
    else:
        text = jsonl_base() + "".join(jsonl_line(f) for f in events)
    path = tmp_path / f"timeline.{fmt}"
    path.write_text(text, encoding="utf-8")
    with Log.open(tmp_path / "l.db", create=True) as log:
        log.append(replays.load_timeline(path).events)
        assert [r.event.id for r in log.iter_records(from_seq=BASE_EVENTS + 1)] == ["tie-b", "tie-c", "tie-a"]


# -- B22 - B24: timestamps and versions -------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "literal", "text"),
    [
        ("toml", "2022-03-01T00:00:00", "timestamp must include a UTC offset (write 'Z' or '+00:00'), got local date-time 2022-03-01T00:00:00"),
        ("toml", '"2022-03-01T00:00:00"', "timestamp must include a UTC offset"),
        ("toml", '"2022-02-30"', "invalid date '2022-02-30'"),
        ("toml", "10:00:00", "a time without a date is not a timestamp"),
        ("jsonl", '"2022-03-01T00:00:00"', "timestamp must include a UTC offset"),
        ("jsonl", '"2022-02-30"', "invalid date '2022-02-30'"),
        ("jsonl", '"2022-02-30T10:00:00Z"', "invalid timestamp '2022-02-30T10:00:00Z'"),
        ("jsonl", "1646092800", "expected a timestamp, got int"),
    ],
)
def test_b22_timezone_naive_or_invalid_timestamps(tmp_path, base_db, fmt, literal, text):
    fields = {**DEPOSIT, "at": literal}
    if fmt == "toml":
        content = toml_text(fields)
        line = last_line_of(content, "at =")
        Refusal(tmp_path, base_db, fmt, content).check(str(line), f"events[{BAD_INDEX}].at", text)
    else:
        refuse(tmp_path, base_db, fmt, fields, stage="load", field="at", texts=[text])


def test_b22_toml_invalid_date_literal(tmp_path, base_db):
    content = toml_text({**DEPOSIT, "at": "2022-02-30T00:00:00Z"})
    line = last_line_of(content, "at =")
    Refusal(tmp_path, base_db, "toml", content).check(f"{line}:6", None, "invalid TOML: Invalid date or datetime")


@FORMATS
@pytest.mark.parametrize(
    ("literal", "stored"),
    [("2022-03-01T10:00:00Z", "2022-03-01T10:00:00Z"), ("2022-03-01T10:00:00+01:00", "2022-03-01T09:00:00Z"),
     ("2022-03-01", "2022-03-01T00:00:00Z"), ("2022-03-01T10:00:00.5-02:00", "2022-03-01T12:00:00.500000Z")],
)
def test_b22_offsets_are_accepted_and_stored_as_utc(tmp_path, base_db, fmt, literal, stored):
    fields = {**DEPOSIT, "at": f'"{literal}"'}
    with _append_ok(tmp_path, base_db, fmt, fields) as log:
        record = log.get("bad")
        assert json.loads(record.payload)["at"] == stored
        assert record.event.at == ev.parse_instant(stored)


def test_b23_timestamp_after_as_of(tmp_path, base_db):
    base = BASE_TOML.replace('title = "Bad inputs"', 'title = "Bad inputs"\nas_of = 2022-12-31T23:59:59Z')
    content = toml_text({**DEPOSIT, "at": "2030-01-01T00:00:00Z"}, base=base)
    Refusal(tmp_path, base_db, "toml", content).check(
        str(header_line(content)), "at", "2030-01-01T00:00:00Z is after as_of 2022-12-31T23:59:59Z"
    )


@pytest.mark.parametrize(("literal", "shown"), [("0", "0"), ("99", "99"), ('"1"', "'1'"), ("true", "True")])
def test_b24_wrong_schema_version_toml(tmp_path, base_db, literal, shown):
    content = BASE_TOML.replace("schema_version = 1", f"schema_version = {literal}")
    Refusal(tmp_path, base_db, "toml", content).check("1", None, f"unsupported schema_version {shown} (supported: 1)")


@pytest.mark.parametrize(("literal", "shown"), [("0", "0"), ("99", "99"), ("true", "True"), ('"1"', "'1'")])
def test_b24_wrong_schema_version_jsonl(tmp_path, base_db, literal, shown):
    refuse(tmp_path, base_db, "jsonl", {**DEPOSIT, "v": literal}, stage="load", field="v",
           texts=[f"unsupported schema_version {shown} (supported: 1)"])


# -- B25 - B28: encodings and characters -----------------------------------------------------
@FORMATS
def test_b25_bytes_that_are_not_utf8(tmp_path, base_db, fmt):
    text = toml_text({**DEPOSIT, "at": "2022-03-01T00:00:00Z", "note": '"caf\x00"'}) if fmt == "toml" else jsonl_text({**DEPOSIT, "note": '"caf\x00"'})
    data = text.encode("utf-8").replace(b"caf\x00", b"caf\xe9")  # latin-1 e-acute
    offset = data.index(b"\xe9")
    line = data[:offset].count(b"\n") + 1
    col = offset - data.rfind(b"\n", 0, offset)
    Refusal(tmp_path, base_db, fmt, data).check(
        f"{line}:{col}", None, f"not valid UTF-8 at byte {offset} (line {line}, column {col})"
    )


@FORMATS
def test_b26_utf8_bom_is_accepted_and_dropped(tmp_path, base_db, fmt):
    path = tmp_path / f"timeline.{fmt}"
    path.write_bytes(b"\xef\xbb\xbf" + (BASE_TOML if fmt == "toml" else jsonl_base()).encode("utf-8"))
    assert replays.load_timeline(path).events == BASE.events


@FORMATS
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_b26_utf16_is_refused(tmp_path, base_db, fmt, encoding):
    text = "\ufeff" + (BASE_TOML if fmt == "toml" else jsonl_base())
    if encoding == "utf-16":
        text = text[1:]  # the codec writes its own BOM
    message = Refusal(tmp_path, base_db, fmt, text.encode(encoding)).check(None, None)
    assert message == f"{tmp_path / f'timeline.{fmt}'}: file is not UTF-8 (it looks like UTF-16); save it as UTF-8"


@FORMATS
@pytest.mark.parametrize(
    ("escape", "text"),
    [("\\u0000", "invalid character '\\x00'"), ("\\u0007", "invalid character '\\x07'"), ("\\u200b", "invalid character '\\u200b'")],
)
def test_b27_control_characters_in_an_identifier(tmp_path, base_db, fmt, escape, text):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "account": f'"ex:c{escape}ust"'}, stage="load", field="account",
           texts=[text])


def test_b27_lone_surrogate_jsonl(tmp_path, base_db):
    refuse(tmp_path, base_db, "jsonl", {**DEPOSIT, "account": '"ex:\\ud800"'}, stage="load", field="account",
           texts=["invalid character (lone surrogate) cannot be encoded for hashing"])


def test_b27_lone_surrogate_toml_cannot_even_be_written(tmp_path, base_db):
    content = toml_text({**DEPOSIT, "at": "2022-03-01T00:00:00Z", "account": '"ex:\\ud800"'})
    line = last_line_of(content, "account =")
    Refusal(tmp_path, base_db, "toml", content).check(
        f"{line}:21", None, "invalid TOML: Escaped character is not a Unicode scalar value"
    )


@FORMATS
def test_b28_nfd_and_nfc_spellings_are_one_identifier(tmp_path, base_db, fmt):
    nfd, nfc = "ex:Re\u0301search", "ex:R\u00e9search"
    opened = {"id": f'"open-{nfd}"', "type": '"account_opened"', "at": '"2022-03-01T00:00:00Z"',
              "account": f'"{nfd}"', "purpose": '"customer"', "holder": '"cust"', "source": '["S"]'}
    dep = {**DEPOSIT, "account": f'"{nfc}"'}
    again = {**DEPOSIT, "id": f'"open-{nfc}"', "type": '"account_opened"', "account": f'"{nfc}"',
             "purpose": '"customer"', "holder": '"cust"', "asset": None, "amount": None, "landed": None}
    if fmt == "toml":
        text = toml_text(toml_at(again), base=toml_text(toml_at(dep), base=toml_text(toml_at(opened))))
    else:
        text = jsonl_base() + jsonl_line(opened) + jsonl_line(dep)
    path = tmp_path / f"timeline.{fmt}"
    path.write_text(text, encoding="utf-8")
    if fmt == "toml":
        # The NFC id of the re-opening is the NFD id of the opening: a duplicate in the file.
        with pytest.raises(InputError, match=r"duplicate event_id 'open-ex:Résearch'"):
            replays.load_timeline(path)
        return
    with Log.open(tmp_path / "l.db", create=True) as log:
        log.append(replays.load_timeline(path).events)
        assert log.registry().accounts[nfc].holder == "cust"
        assert log.get("bad").event.account == nfc
        assert nfd not in log.registry().accounts


# -- B29, B30 ---------------------------------------------------------------------------------
def test_b29_deeply_nested_jsonl(tmp_path, base_db):
    content = jsonl_base() + "[" * 100_000 + "]" * 100_000 + "\n"
    Refusal(tmp_path, base_db, "jsonl", content).check(str(BASE_EVENTS + 1), None, "input too deeply nested")


def test_b29_deeply_nested_toml(tmp_path, base_db):
    content = BASE_TOML + "x = " + "[" * 100_000 + "]" * 100_000 + "\n"
    message = Refusal(tmp_path, base_db, "toml", content).check(None, None, "input too deeply nested")
    assert message == f"{tmp_path / 'timeline.toml'}: invalid TOML: input too deeply nested"


def test_b29_record_too_large(tmp_path, base_db):
    content = jsonl_text({**DEPOSIT, "note": '"' + "x" * 1_500_000 + '"'})
    Refusal(tmp_path, base_db, "jsonl", content).check(str(BASE_EVENTS + 1), None, "record too large (1500")


@FORMATS
def test_b29_over_long_text_field(tmp_path, base_db, fmt):
    refuse(tmp_path, base_db, fmt, {**DEPOSIT, "note": '"' + "x" * 10_001 + '"'}, stage="load", field="note",
           texts=["longer than 10000 characters"])


PRICE = {"id": '"px"', "type": '"price_updated"', "at": '"2022-03-01T00:00:00Z"', "asset": '"BTC"',
         "quote": '"USD"', "price": '"20000"', "source": '["S"]'}


@FORMATS
@pytest.mark.parametrize(
    ("override", "stage", "field", "text"),
    [
        ({"price": '"0"'}, "load", "price", "price must be > 0, got 0"),
        ({"price": "-1"}, "load", "price", "price must be > 0, got -1"),
        ({"price": '"NaN"'}, "load", "price", "expected integer or decimal string, got 'NaN'"),
        ({"asset": None}, "load", "asset", "asset: required"),
        ({"quote": '"EUR"'}, "history", "quote", "unknown asset 'EUR' (no asset_listed before)"),
        ({"asset": '"ETH"'}, "history", "asset", "unknown asset 'ETH' (no asset_listed before)"),
        ({"quote": '"BTC"'}, "load", "quote", "must differ from asset"),
        ({"price": '"0.0000000000000000001"'}, "load", "price", "is too precise"),
    ],
)
def test_b30_bad_price_update(tmp_path, base_db, fmt, override, stage, field, text):
    refuse(tmp_path, base_db, fmt, {**PRICE, **override}, stage=stage, field=field, texts=[text])


def test_up_to_20_problems_are_reported_sorted_by_line(tmp_path, base_db):
    text = BASE_TOML
    for i in range(25):
        text = toml_text({**DEPOSIT, "id": f'"b{i}"', "at": "2022-03-01T00:00:00Z", "amount": "-1"}, base=text)
    message = Refusal(tmp_path, base_db, "toml", text).check(None, None)
    lines = message.split("\n")
    assert lines[0] == f"20 problems in {tmp_path / 'timeline.toml'}:"
    numbers = [int(line.split(":")[1]) for line in lines[1:]]
    assert len(numbers) == 20 and numbers == sorted(numbers)
    assert all("amount must be > 0" in line for line in lines[1:])


# -- properties -------------------------------------------------------------------------------
def _load_or_input_error(path: Path) -> replays.Timeline | None:
    try:
        return replays.load_timeline(path)
    except InputError:
        return None


FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_parser_fuzz_random_bytes(tmp_path, data):
    for suffix in ("toml", "jsonl"):
        path = tmp_path / f"fuzz.{suffix}"
        path.write_bytes(data)
        _load_or_input_error(path)


@st.composite
def spliced(draw, source: str) -> str:
    """A valid file with a few random edits: deletions, duplications and random insertions."""
    text = source
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        op = draw(st.sampled_from(("delete", "insert", "duplicate")))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.text(alphabet=st.sampled_from('[]{}",:=.-+0123456789eEnaifTtrue \n\\Z'), max_size=12)) + text[i:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@FUZZ
@given(data=st.data())
def test_parser_fuzz_edited_valid_files_load_or_are_input_errors_and_never_half_append(tmp_path, base_db, data):
    fmt = data.draw(st.sampled_from(("toml", "jsonl")))
    source = toml_text({**DEPOSIT, "at": "2022-03-01T00:00:00Z"}) if fmt == "toml" else jsonl_text(DEPOSIT)
    text = data.draw(spliced(source))
    path = tmp_path / f"fuzz.{fmt}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    timeline = _load_or_input_error(path)
    if timeline is None:
        return
    db = tmp_path / "fuzz.db"
    db.write_bytes(base_db.read_bytes())
    before = head_signature(db)
    with Log.open(db) as log:
        try:
            result = log.append(timeline.events, where=timeline.where)
        except (InputError, ConflictError):
            assert head_signature(db) == before
        else:
            assert log.head().seq == before[0] + len(result.appended)
            assert log.verify().events_checked == log.head().seq


class FixedClock:
    def __call__(self) -> datetime:
        return datetime(2030, 1, 1, tzinfo=UTC)


@FUZZ
@given(history=histories(max_events=20))
def test_round_trip_through_toml_and_jsonl_gives_the_same_events_and_head(tmp_path, history):
    heads = []
    for fmt, text in (("toml", to_toml(history)), ("jsonl", to_jsonl(history))):
        path = tmp_path / f"round.{fmt}"
        path.write_text(text, encoding="utf-8")
        timeline = replays.load_timeline(path)
        assert timeline.events == history
        db = tmp_path / f"round-{fmt}.db"
        db.unlink(missing_ok=True)
        with Log.open(db, create=True, clock=FixedClock()) as log:
            heads.append(log.append(timeline.events, where=timeline.where).head)
    assert heads[0] == heads[1]


@FUZZ
@given(history=histories(min_events=2, max_events=15), cut=st.integers(0, 100))
def test_rerun_appends_nothing_and_an_extended_file_appends_only_the_suffix(tmp_path, history, cut):
    cut = cut % (len(history) + 1)
    db = tmp_path / "rerun.db"
    db.unlink(missing_ok=True)
    prefix, full = tmp_path / "prefix.jsonl", tmp_path / "full.toml"
    prefix.write_text(to_jsonl(history[:cut]) or "\n", encoding="utf-8")
    full.write_text(to_toml(history), encoding="utf-8")
    with Log.open(db, create=True) as log:
        if cut:
            assert len(log.append(replays.load_timeline(prefix).events).appended) == cut
        result = log.append(replays.load_timeline(full).events)
        assert [seq for seq, _ in result.appended] == list(range(cut + 1, len(history) + 1))
        assert [seq for seq, _ in result.existing] == list(range(1, cut + 1))
        again = log.append(replays.load_timeline(full).events)
        assert again.appended == [] and again.head == result.head
        assert list(log.iter_events()) == history


def test_input_errors_are_ledger_errors():
    assert issubclass(InputError, LedgerError) and issubclass(ConflictError, LedgerError)


# Structured fuzz: syntactically valid files whose content is anything, so that the loader's
# semantic paths (not only the parsers) meet wrong types, wrong shapes and odd values.
_FIELD_NAMES = sorted({f.name for cls in ev.EVENT_TYPES.values() for f in attrs.fields(cls)})
_KEYS = st.sampled_from(["id", "type", "at", "v", "amount", "source", "account", "asset", "scale", "x", *_FIELD_NAMES])
_TOML_SCALARS = st.one_of(
    st.text(max_size=8).map(lambda t: json.dumps(t, ensure_ascii=False).replace("\x7f", "\\u007f")),
    st.sampled_from(['"deposit"', '"asset_listed"', '"ex:cust"', '"USD"', '["S"]', '"S"', '"2022-03-01"']),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["true", "false", "0.1", "-0.0", "nan", "-inf", "1e400", "1e-400", "2022-03-01T00:00:00Z",
                     "2022-03-01T00:00:00", "2022-03-01", "10:00:00", "0001-01-01T00:00:00+01:00"]),
)
_TOML_VALUES = st.recursive(
    _TOML_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(_KEYS, inner, max_size=3).map(lambda d: "{" + ", ".join(f'"{k}" = {v}' for k, v in d.items()) + "}"),
    ),
    max_leaves=6,
)
_TABLES = st.dictionaries(_KEYS, _TOML_VALUES, max_size=8)


def _inline(table: dict[str, str]) -> str:
    return "{" + ", ".join(f'"{k}" = {v}' for k, v in table.items()) + "}"


@FUZZ
@given(
    version=st.sampled_from(["1", "1", "2", '"1"', "true", "1.0"]),
    top=st.dictionaries(st.sampled_from(["timeline", "sources", "entities", "assets", "accounts", "events", "extra"]),
                        st.one_of(_TOML_VALUES, _TABLES.map(_inline), st.lists(_TABLES.map(_inline), max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")),
                        max_size=4),
)
def test_parser_fuzz_structured_toml(tmp_path, version, top):
    text = f"schema_version = {version}\n" + "".join(f"{k} = {v}\n" for k, v in top.items())
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    _load_or_input_error(path)


_JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.text(max_size=8),
              st.sampled_from(["deposit", "ex:cust", "USD", "2022-03-01T00:00:00Z", "2022-03-01", "1.5", "-0"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=6,
)


@FUZZ
@given(records=st.lists(st.dictionaries(_KEYS, _JSON_VALUES, max_size=9), max_size=4),
       raw=st.lists(st.sampled_from(["NaN", "-Infinity", "1e999", "0.1", "9" * 5000, "[]", "{}", '"x"']), max_size=2))
def test_parser_fuzz_structured_jsonl(tmp_path, records, raw):
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    lines += ['{"type":"deposit","amount":' + literal + "}" for literal in raw]
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _load_or_input_error(path)
