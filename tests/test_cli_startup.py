"""The CLI's start-up: each command imports what it uses, in a real fresh process.

``bankrun --help`` lists every command without importing the library; ``bankrun check`` imports
the log, the replay and the report, not forensics, scenarios, proofs or the HTML report. Each
lazily imported command still lists the words of its own help and answers its own ``--help``.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest

from ledger import cli_options
from ledger.cli import DEFAULT_SNAPSHOT_EVERY, LAZY_COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent

#: Modules no command but their own needs: none may load for --help or check.
NOT_FOR_CHECK = (
    "ledger.forensics",
    "ledger.derived",
    "ledger.scenarios",
    "ledger.proofs",
    "ledger.html",
    "ledger.synthetic",
    "sqlite_utils",
    "numpy",
)
#: And --help needs none of the library at all.
NOT_FOR_HELP = (
    *NOT_FOR_CHECK,
    "events",
    "replays",
    "attrs",
    "orjson",
    "rich",
    "ledger.store",
    "ledger.errors",
    "ledger.replay",
    "ledger.core",
    "ledger.books",
    "ledger.report",
    "ledger.tables",
    "ledger.policy",
)


def _imported(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -m ledger ARGS`` in a fresh process: (the run, every module it had
    imported when it exited, read from ``sys.modules`` at exit)."""
    env = {k: v for k, v in os.environ.items() if k != "LEDGER_DB"}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "modules.json")
        program = (
            "import atexit, json, runpy, sys\n"
            f"atexit.register(lambda: open({out!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
            f"sys.argv = ['bankrun', *{list(args)!r}]\n"
            "runpy.run_module('ledger', run_name='__main__', alter_sys=True)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", program],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120,
        )
        with open(out, encoding="utf-8") as handle:
            modules = set(json.load(handle))
    return done, modules


def _loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


def test_help_imports_none_of_the_library_and_lists_every_command():
    done, modules = _imported("--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "click" in modules and "ledger.cli" in modules  # what was read is sys.modules
    assert _loaded(modules, NOT_FOR_HELP) == []
    ctx = click.Context(cli, info_name="bankrun")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        if not command.hidden:
            assert f"  {name} " in done.stdout, name


def test_help_lists_the_lazy_commands_as_their_own_help_does():
    """The listing from LAZY_COMMANDS, in a fresh process, is the one click prints when every
    command is imported first (another fresh process, the same width)."""
    env = {**os.environ, "COLUMNS": "80"}
    loaded_first = (
        "import click; from ledger.cli import cli, LAZY_COMMANDS\n"
        "ctx = click.Context(cli, info_name='bankrun')\n"
        "assert all(cli.get_command(ctx, name) is not None for name in LAZY_COMMANDS)\n"
        "cli(['--help'], prog_name='bankrun')\n"
    )
    runs = [
        subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)
        for argv in ([sys.executable, "-m", "ledger", "--help"], [sys.executable, "-c", loaded_first])
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    assert runs[0].stdout == runs[1].stdout
    for name in LAZY_COMMANDS:
        assert f"  {name} " in runs[0].stdout


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_each_lazy_command_keeps_its_summary_and_its_help(name):
    module, attribute, summary = LAZY_COMMANDS[name]
    command = getattr(__import__(module, fromlist=[attribute]), attribute)
    assert command.name == name
    own = command.short_help or inspect.cleandoc(command.help or "").split("\n\n")[0]
    assert summary == " ".join(own.split()), f"LAZY_COMMANDS[{name!r}] is not {name}'s help"
    done, modules = _imported(name, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"Usage: bankrun {name}")
    assert module in modules


def test_check_imports_only_what_a_replay_needs(tmp_path):
    db = str(tmp_path / "empty.db")
    init, _ = _imported("init", "--db", db)
    assert init.returncode == 0, init.stderr[-2000:]
    for fmt in ("text", "json"):
        done, modules = _imported("check", "--db", db, "--format", fmt)
        assert done.returncode == 0, done.stderr[-2000:]
        assert {"ledger.replay", "ledger.store", "ledger.core"} <= modules
        assert _loaded(modules, NOT_FOR_CHECK) == [], fmt


def test_constants_written_for_start_up_are_the_library_s():
    from ledger.forensics import DEFAULT_SNAPSHOT_EVERY as forensics_every
    from ledger.store import DEFAULT_DB

    assert DEFAULT_SNAPSHOT_EVERY == forensics_every
    assert cli_options.DEFAULT_DB == DEFAULT_DB


def test_an_error_raised_before_the_library_loaded_is_still_one_line(tmp_path):
    """handle_errors imports the error types when one is raised: a fresh process refusing bad
    input says it in one line with exit status 2, no traceback."""
    done, _ = _imported("check", "--db", str(tmp_path / "missing.db"))
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in done.stderr
