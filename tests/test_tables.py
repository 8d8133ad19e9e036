"""Tables for people (ledger/tables.py, through rich): plain when piped, fitted on a terminal.

Piped output is checked through CliRunner and through a real pipe; terminal output through a
real pseudo-terminal of a set width.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from decimal import Decimal

import pytest
from click.testing import CliRunner

from ledger.cli import cli
from ledger.tables import Column, Stream, amount, money, render

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = set("─│┃━┏┓┗┛┌┐└┘├┤┬┴┼═║╔╗╚╝")


@pytest.fixture(scope="module")
def ftx_db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ftx") / "ftx.db")
    assert CliRunner().invoke(cli, ["append", "ftx-2022", "--db", path]).exit_code == 0
    return path


COMMANDS = [
    ["balances", "--at", "2022-11-07", "--entity", "ftx"],
    ["diff", "2022-11-06", "2022-11-09"],
    ["history", "ftx:custody"],
    ["trace", "--asset", "USD", "--deposits-into", "ftx"],
    ["replay"],
]


def _plain(text: str) -> None:
    assert not ANSI.search(text), "ANSI codes in piped output"
    assert not BOX & set(text), "box characters in piped output"
    assert all(line == line.rstrip() for line in text.splitlines()), "trailing spaces"


def test_numbers_have_one_form():
    assert amount(Decimal("0E-8")) == "0.00000000"
    assert amount(None) == "-"
    assert amount(Decimal("-1234567.5")) == "-1,234,567.5"
    assert [money(v) for v in ("500000", "5000000", "8910000000.00", "-0.4", None)] == [
        "500,000", "5,000,000", "8,910,000,000", "0", ""
    ]


def test_render_is_plain_and_wide_when_not_a_terminal():
    long = "x" * 300
    lines = render([Column("name"), Column("n", right=True)], [[long, "1"], ["b", "22"]], terminal=False)
    # Whole rows at their natural width (300 + a gap of 2 + 2), numbers right-aligned.
    assert lines == ["name" + " " * 299 + "n", long + "   1", "b" + " " * 301 + "22"]


def test_render_fits_a_terminal_folding_only_free_text():
    os.environ["COLUMNS"] = "40"
    try:
        lines = render([Column("name"), Column("notes", wrap=True)], [["ftx:custody", "word " * 30]], terminal=True)
        whole = render([Column("name"), Column("n", right=True)], [["x" * 50, "1,000,000.00"]], terminal=True)
    finally:
        del os.environ["COLUMNS"]
    visible = [ANSI.sub("", line) for line in lines]
    assert len(visible) > 3 and all(len(line) <= 40 for line in visible)
    assert "ftx:custody" in visible[1]
    # A name or a number is never cut to fit: the row is printed whole for the terminal to wrap.
    assert ANSI.sub("", whole[1]) == "x" * 50 + "  1,000,000.00"


def test_stream_rows_line_up_and_cut_to_their_width():
    stream = Stream([Column("seq", right=True, width=4), Column("event", width=8), Column("notes")], terminal=False)
    assert stream.header() == " seq  event     notes"
    assert stream.row(["7", "a-very-long-id", "free text"]) == "   7  a-very-…  free text"
    assert stream.row(["12", "é", ""]) == "  12  é"


@pytest.mark.parametrize("args", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_piped_output_is_plain_whole_rows(ftx_db, args):
    proc = subprocess.run(
        [sys.executable, "-m", "ledger", *args, "--db", ftx_db],
        capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "40"},
    )
    assert proc.returncode in (0, 1), proc.stderr
    _plain(proc.stdout)
    assert max(len(line) for line in proc.stdout.splitlines()) > 40  # rows are not wrapped to COLUMNS


def _on_terminal(args: list[str], columns: int) -> str:
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "ledger", *args], stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_tables_fit_a_real_terminal(ftx_db):
    text = ANSI.sub("", _on_terminal(["diff", "2022-11-06", "2022-11-09", "--db", ftx_db], 150))
    balances = text[text.index("Balances changed"):text.index("Prices changed")]
    assert all(len(line) <= 150 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert len(balances.splitlines()) > 6  # the events column folded onto a second line
    for event in ("run-2022-11-06-a", "run-2022-11-08-a"):
        assert event in balances


def test_a_table_too_wide_for_the_terminal_keeps_its_numbers_whole(ftx_db):
    text = ANSI.sub("", _on_terminal(["balances", "--at", "2022-11-07", "--entity", "ftx", "--db", ftx_db], 60))
    assert "8,000,000,000.00" in text and "89,765,239.00000000" in text
    assert "…" not in text


def test_a_replay_on_a_narrow_terminal_puts_the_marks_beneath_the_row(ftx_db):
    text = ANSI.sub("", _on_terminal(["replay", "--db", ftx_db, "--steps", "changes"], 100))
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(" 38  2019-12-31T00:00:00Z"))
    assert len(lines[row]) <= 100
    assert lines[row + 1].strip().startswith("!segregation(ftx/USD)")
