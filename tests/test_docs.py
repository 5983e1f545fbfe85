"""The CLI reference is generated from --help, and the committed copy must be current."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from lightkeeper.cli.docs import reference
from lightkeeper.cli.exit_codes import EXIT_CODE_HELP, ExitCode
from lightkeeper.cli.main import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_committed_cli_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), (
        "docs/cli.md is out of date: run `python -m lightkeeper.cli.docs > docs/cli.md`"
    )


def test_every_command_is_in_the_reference() -> None:
    text = reference()
    for name in main.list_commands(click.Context(main)):
        assert f"## lightkeeper {name}\n" in text


def test_every_exit_code_is_documented_in_help() -> None:
    assert set(EXIT_CODE_HELP) == set(ExitCode)
    help_text = CliRunner().invoke(main, ["--help"]).output
    for code, meaning in EXIT_CODE_HELP.items():
        assert f"{int(code):>3}  {meaning}" in help_text
