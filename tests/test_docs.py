"""Docs are tested: every command documented, the CLI reference current, README commands true."""

import re
from pathlib import Path

import click

from ledger.cli import cli, reference_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_every_command_has_help_text():
    for name, command in cli.commands.items():
        assert command.help and len(command.help.strip()) > 20, f"ledger {name} has no real help"
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help",):
                assert param.help, f"ledger {name} {param.opts[0]} has no help"


def test_cli_reference_is_current(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    expected = reference_markdown()
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is stale: run `COLUMNS=100 ledger cli-reference > docs/cli.md`"


def test_readme_first_lines_give_the_two_commands():
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("```")[1]
    assert "pip install . && ledger replay ftx-2022" in head
    assert "pip install '.[test]' && python -m pytest" in head


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"&& (python -m pytest[^\n#]*)", readme).group(1).strip()
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_names_every_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, command in cli.commands.items():
        if not command.hidden:
            assert f"ledger {name}" in readme, f"README does not mention `ledger {name}`"


def test_cli_reference_sections_are_what_help_prints(monkeypatch):
    """Each section of docs/cli.md is exactly `ledger ... --help` (before, every section read
    `Usage: ledger ledger NAME`), and the subcommands of a group have sections too."""
    from click.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "100")
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (ledger [^\n]+)\n\n```\n(.*?)```$", text, flags=re.S | re.M))
    assert "ledger proof verify" in sections and "ledger append" in sections
    runner = CliRunner()
    for title, body in sections.items():
        words = title.split()[1:]
        result = runner.invoke(cli, [*words, "--help"], prog_name="ledger", terminal_width=100)
        assert result.exit_code == 0, title
        assert result.output == body, f"docs/cli.md section {title!r} differs from its --help"
