"""Write the CLI reference, ``docs/cli.md``, from the commands' own ``--help`` texts.

    python -m lightkeeper.cli.docs > docs/cli.md

The reference is never edited by hand: ``tests/test_docs.py`` fails when the committed file
differs from what this prints, so the docs cannot drift from the code.
"""

from __future__ import annotations

import click

from lightkeeper.cli.main import main

#: Fixed width, so that the text does not depend on the terminal it was generated in.
WIDTH = 80

_INTRO = """\
# Command-line reference

Generated from `--help` by `python -m lightkeeper.cli.docs > docs/cli.md`; do not edit by
hand (`tests/test_docs.py` checks that this file is current).
"""


def _help(command: click.Command, path: list[str], parent: click.Context | None) -> str:
    ctx = click.Context(
        command,
        info_name=path[-1],
        parent=parent,
        terminal_width=WIDTH,
        max_content_width=WIDTH,
    )
    return command.get_help(ctx)


def reference() -> str:
    """The whole CLI reference as Markdown."""
    sections = [_INTRO]
    root = click.Context(main, info_name="lightkeeper", terminal_width=WIDTH)
    sections.append(f"## lightkeeper\n\n```text\n{_help(main, ['lightkeeper'], None)}\n```\n")
    for name in sorted(main.list_commands(root)):
        command = main.get_command(root, name)
        if command is None or command.hidden:
            continue
        sections += _sections(command, ["lightkeeper", name], root)
    sections.append(_settings())
    return "\n".join(sections)


def _settings() -> str:
    """The environment settings of the store, the service and the vault, from their
    declarations."""
    from lightkeeper.actions.vault import VAULT_DIR
    from lightkeeper.actions.vault_crypto import KEY_ENV, KEY_FILE
    from lightkeeper.banks.settings import SETTINGS as STORE_SETTINGS
    from lightkeeper.service.settings import SETTINGS as SERVICE_SETTINGS

    rows = [
        f"| `{s.env}` | {s.default} | {s.help} |"
        for s in dict.fromkeys((*STORE_SETTINGS, *SERVICE_SETTINGS, VAULT_DIR, KEY_ENV, KEY_FILE))
    ]
    return "\n".join(
        [
            "## Environment settings\n",
            "Read by the CLI and by `lightkeeper serve`, whose options set them for its workers.\n",
            "| variable | default | what |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )


def _sections(command: click.Command, path: list[str], parent: click.Context) -> list[str]:
    """The section of `command`, then those of its subcommands when it is a group."""
    text = _help(command, path, parent)
    found = [f"## {' '.join(path)}\n\n```text\n{text}\n```\n"]
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1], parent=parent, terminal_width=WIDTH)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                found += _sections(sub, [*path, name], ctx)
    return found


if __name__ == "__main__":
    click.echo(reference(), nl=False)
