"""How commands write: results on stdout, messages on stderr, a progress bar only for people.

Results go to stdout, one line per input, so that they can be piped and redirected;
messages (``lightkeeper: FILE: message``) go to stderr. The progress bar is drawn on stderr
only when stderr is a terminal and there is more than one input, never in pipes or CI
logs. While it is drawn, results meant for the same terminal are printed above it.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import TextIO

import click


def display_path(path: str) -> str:
    """`path` as it can be printed: undecodable bytes in file names shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def error(message: str, path: str | None = None) -> None:
    """Write ``lightkeeper: [PATH: ]message`` on stderr."""
    where = f"{display_path(path)}: " if path is not None else ""
    click.echo(f"lightkeeper: {where}{message}", err=True)


def _same_terminal(a: TextIO, b: TextIO) -> bool:
    try:
        return a.isatty() and b.isatty() and os.ttyname(a.fileno()) == os.ttyname(b.fileno())
    except (OSError, ValueError):
        return False


class Reporter:
    """Writes result lines and messages, with a progress bar over `total` inputs when wanted.

    Use as a context manager; `advance` after each input.
    """

    def __init__(self, *, total: int, progress: bool) -> None:
        self._stdout = sys.stdout
        self._stderr = sys.stderr
        self._bar = None
        if progress and total > 1 and self._stderr.isatty():
            # Imported only when drawn: rich costs import time that pipes never need.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("hashing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self._stderr),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._task = self._bar.add_task("hashing", total=total)
        self._results_above_bar = self._bar is not None and _same_terminal(
            self._stdout, self._stderr
        )

    def __enter__(self) -> Reporter:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def result(self, line: str) -> None:
        """One result line on stdout."""
        if self._bar is not None and self._results_above_bar:
            self._above_bar(line)
        else:
            self._stdout.write(line + "\n")
            self._stdout.flush()

    def message(self, text: str, path: str | None = None) -> None:
        """``lightkeeper: [PATH: ]text`` on stderr, above the bar when one is drawn."""
        where = f"{display_path(path)}: " if path is not None else ""
        line = f"lightkeeper: {where}{text}"
        if self._bar is not None:
            self._above_bar(line)
        else:
            self._stderr.write(line + "\n")
            self._stderr.flush()

    def _above_bar(self, line: str) -> None:
        assert self._bar is not None
        # Plain text: file names must not be read as rich markup or emoji codes.
        self._bar.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def advance(self, count: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)
