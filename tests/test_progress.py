"""Progress on standard error, only on a terminal, off with --quiet; the data never carries it.

Real subprocesses: standard error a pseudo-terminal (the bar is drawn there) or a pipe (nothing
is); standard output always a pipe, whose bytes must be the same either way.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

import ledger.cli as cli_module
from ledger.cli import cli

LONG_JOBS = [
    ["replay", "--db", "{db}"],
    ["check", "--db", "{db}"],
    ["verify", "--db", "{db}"],
    ["export", "--db", "{db}"],
    ["snapshot", "--db", "{db}", "--out", "{tmp}/snap.db"],
    ["materialize", "--db", "{db}", "--out", "{tmp}/mat.db"],
    ["append", "ftx-2022", "--db", "{tmp}/new.db"],
]
LABELS = {
    "replay": "replaying", "check": "replaying", "verify": "verifying", "export": "exporting",
    "snapshot": "building snapshots", "materialize": "writing the projection tables", "append": "appending",
}


@pytest.fixture(scope="module")
def ftx_db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ftx") / "ftx.db")
    assert CliRunner().invoke(cli, ["append", "ftx-2022", "--db", path]).exit_code == 0
    return path


def _run(args: list[str], *, stderr_terminal: bool) -> tuple[int, bytes, bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if not stderr_terminal:
        proc = subprocess.run([sys.executable, "-m", "ledger", *args], capture_output=True, env=env, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger", *args], stdout=subprocess.PIPE, stderr=secondary, env=env
    )
    os.close(secondary)
    err: list[bytes] = []

    def drain() -> None:  # the terminal, read beside the pipe (a full pipe would block the job)
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:
                return
            if not data:
                return
            err.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(main)
    return proc.returncode, out, b"".join(err)


@pytest.mark.parametrize("job", LONG_JOBS, ids=[j[0] for j in LONG_JOBS])
def test_progress_only_on_a_terminal_and_never_in_the_output(ftx_db, tmp_path, job):
    args = [a.format(db=ftx_db, tmp=tmp_path) for a in job]
    code, out, err = _run(args, stderr_terminal=True)
    assert code in (0, 1), err
    assert LABELS[job[0]].encode() in err  # the bar, on the terminal
    assert b"\x1b[" not in out  # the data carries no control codes
    for name in ("snap.db", "mat.db", "new.db"):
        for suffix in ("", ".derived.db"):
            if os.path.exists(tmp_path / (name + suffix)):
                os.remove(tmp_path / (name + suffix))
    piped_code, piped_out, piped_err = _run(args, stderr_terminal=False)
    assert piped_code == code
    assert LABELS[job[0]].encode() not in piped_err and b"\x1b[" not in piped_err
    if job[0] in ("replay", "check", "verify", "export"):
        strip = [line for line in out.splitlines() if b"taken_at" not in line]  # the head line has a time
        assert strip == [line for line in piped_out.splitlines() if b"taken_at" not in line]


@pytest.mark.parametrize("job", LONG_JOBS[:3], ids=[j[0] for j in LONG_JOBS[:3]])
def test_quiet_turns_it_off(ftx_db, tmp_path, job):
    args = [a.format(db=ftx_db, tmp=tmp_path) for a in job]
    code, _out, err = _run([*args, "--quiet"], stderr_terminal=True)
    assert code in (0, 1)
    assert LABELS[job[0]].encode() not in err and b"\x1b[" not in err


def test_a_large_log_shows_the_steps_that_change_something_and_says_so(monkeypatch):
    monkeypatch.setattr(cli_module, "LARGE_LOG", 20)
    runner = CliRunner()
    text = runner.invoke(cli, ["replay", "small-example", "--no-record"]).stdout
    lines = text.splitlines()
    assert lines[1] == (
        "24 events: showing only the steps that open or close a breach "
        "(--steps all shows every one, --steps none only the summary)"
    )
    table = text.split("\nSummary")[0].splitlines()[3:]
    assert table and all("!" in row or "+" in row or "SKIPPED" in row for row in table)
    every = runner.invoke(cli, ["replay", "small-example", "--no-record", "--steps", "all"]).stdout
    assert "showing only" not in every
    assert len(every.split("\nSummary")[0].splitlines()) == 2 + 24
    monkeypatch.setattr(cli_module, "LARGE_LOG", 10_000)
    assert "showing only" not in runner.invoke(cli, ["replay", "small-example", "--no-record"]).stdout


def test_verify_reports_the_seq_it_reached(tmp_path):
    from ledger.store import Log
    from ledger.store._shared import PROGRESS_EVERY
    from ledger.synthetic import workload

    with Log.open(tmp_path / "w.db", create=True) as log:
        log.append(list(workload(PROGRESS_EVERY + 100, accounts=50)))
        seen: list[int] = []
        result = log.verify(progress=seen.append)
    assert result.events_checked == PROGRESS_EVERY + 100
    assert seen == [PROGRESS_EVERY]
