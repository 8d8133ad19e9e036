"""One time grammar for every option that names a time (ledger/when.py)."""

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from ledger.cli import cli
from ledger.errors import InputError
from ledger.when import parse_when


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2022-11-07", False, datetime(2022, 11, 7, tzinfo=UTC)),
        ("2022-11-07", True, datetime(2022, 11, 7, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2022-11", False, datetime(2022, 11, 1, tzinfo=UTC)),
        ("2022-11", True, datetime(2022, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2022-12", True, datetime(2022, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2024-02", True, datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2022-11-08T06:00:00Z", True, datetime(2022, 11, 8, 6, tzinfo=UTC)),
        ("2022-11-08T07:00:00+01:00", False, datetime(2022, 11, 8, 6, tzinfo=UTC)),
    ],
)
def test_instants_dates_and_months(text, end, expected):
    assert parse_when(text, "--to", end=end) == expected


@pytest.mark.parametrize("text", ["2022-13", "2022-02-30", "now", "yesterday", "2022-11-08T06:00:00", "11/08/2022"])
def test_anything_else_is_an_error_naming_the_forms(text):
    with pytest.raises(InputError, match=r"--from: .* is not a time.*: write an instant .*, a date \(2022-11-08\) or a month \(2022-11\)"):
        parse_when(text, "--from")


@pytest.fixture(scope="module")
def ftx_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("ftx") / "ledger.db"
    assert CliRunner().invoke(cli, ["append", "ftx-2022", "--db", str(path)]).exit_code == 0
    return str(path)


def test_to_a_date_takes_the_whole_day(ftx_db):
    """Before: `log --to 2022-11-07` dropped the events later that day."""
    out = CliRunner().invoke(cli, ["log", "--db", ftx_db, "--from", "2022-11-07", "--to", "2022-11-07"]).output
    assert "px-ftt-2022-11-07" in out  # at 23:59:59 that day
    assert "2022-11-08" not in out


@pytest.mark.parametrize(
    "args",
    [
        ["log", "--from", "2022-11", "--to", "2022-11"],
        ["history", "ftx:custody", "--from", "2022-11", "--to", "2022-11-08"],
        ["trace", "--asset", "USDC", "--deposits-into", "ftx", "--since", "2022", "--until", "2022-11"],
        ["balances", "--at", "2022-11"],
        ["replay", "--until", "2022-11-08"],
    ],
)
def test_every_time_option_takes_the_same_grammar(ftx_db, args):
    runner = CliRunner()
    if "--since" in args:  # a year alone is not in the grammar: the same clear error everywhere
        bad = runner.invoke(cli, [*args, "--db", ftx_db])
        assert bad.exit_code == 2 and "--since: '2022' is not a time" in bad.stderr
        args = [a if a != "2022" else "2022-01" for a in args]
    result = runner.invoke(cli, [*args, "--db", ftx_db])
    assert result.exit_code in (0, 1), result.output  # 1: the replay's invariants broke
    assert "Invalid isoformat" not in result.output
    bad = runner.invoke(cli, [*args[:-1], "now", "--db", ftx_db])
    assert bad.exit_code == 2 and "'now' is not a time" in bad.stderr
