"""Docs are tested: every command documented, the CLI reference current, README commands true."""

import re
from pathlib import Path

import click

from ledger.cli import cli, reference_markdown

ROOT = Path(__file__).resolve().parent.parent


def _all_commands() -> dict[str, click.Command]:
    """Every command, those imported only when named (``ledger.cli.LAZY_COMMANDS``) too."""
    ctx = click.Context(cli, info_name="bankrun")
    found = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None}


def test_every_command_has_help_text():
    for name, command in _all_commands().items():
        assert command.help and len(command.help.strip()) > 20, f"bankrun {name} has no real help"
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help",):
                assert param.help, f"bankrun {name} {param.opts[0]} has no help"


def test_cli_reference_is_current(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    expected = reference_markdown()
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is stale: run `COLUMNS=100 bankrun cli-reference > docs/cli.md`"


def test_readme_first_lines_give_the_two_commands():
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("```")[1]
    assert "pip install . && bankrun replay ftx-2022" in head
    assert "pip install '.[test]' && python -m pytest" in head


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"&& (python -m pytest[^\n#]*)", readme).group(1).strip()
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_names_every_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, command in _all_commands().items():
        if not command.hidden:
            assert f"bankrun {name}" in readme, f"README does not mention `bankrun {name}`"


def test_cli_reference_sections_are_what_help_prints(monkeypatch):
    """Each section of docs/cli.md is exactly `bankrun ... --help` (before, every section read
    `Usage: ledger ledger NAME`), and the subcommands of a group have sections too."""
    from click.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "100")
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (bankrun [^\n]+)\n\n```\n(.*?)```$", text, flags=re.S | re.M))
    assert "bankrun proof verify" in sections and "bankrun append" in sections
    runner = CliRunner()
    for title, body in sections.items():
        words = title.split()[1:]
        result = runner.invoke(cli, [*words, "--help"], prog_name="bankrun", terminal_width=100)
        assert result.exit_code == 0, title
        assert result.output == body, f"docs/cli.md section {title!r} differs from its --help"


def test_the_command_has_a_name_of_its_own():
    """`ledger` is ledger-cli's command (Debian's ledger package): ours is `bankrun`, and
    `python -m ledger` runs the same CLI under that name."""
    import subprocess
    import sys
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"bankrun": "ledger.cli:main"}
    proc = subprocess.run(
        [sys.executable, "-m", "ledger", "--help"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert proc.stdout.startswith("Usage: bankrun [OPTIONS] COMMAND [ARGS]...")
    assert "Start with `bankrun replay ftx-2022`" in proc.stdout
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"(?<![-\w./`])ledger (replay|init|append|log|check|verify)\b", readme)
