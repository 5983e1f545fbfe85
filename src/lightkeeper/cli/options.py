"""Options that several commands take, declared once so their names and help never drift."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def jobs_option(verb: str) -> Callable[[F], F]:
    """``--jobs N``: worker processes; `verb` says what 1 job does in-process ("hashes")."""
    return click.option(
        "--jobs",
        "-j",
        type=click.IntRange(min=1),
        metavar="N",
        default=None,
        help=f"Worker processes [default: all cores]; 1 {verb} in this process.",
    )


no_progress_option: Callable[[F], F] = click.option(
    "--no-progress",
    is_flag=True,
    help="No progress bar (it is only ever drawn when stderr is a terminal).",
)
