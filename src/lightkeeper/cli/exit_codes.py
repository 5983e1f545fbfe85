"""Exit codes of the ``lightkeeper`` command, each saying who is at fault.

Scripts and CI jobs branch on these, so a code never changes meaning once released; new
outcomes get new numbers. The table in ``--help`` and ``docs/cli.md`` is generated from
`EXIT_CODE_HELP`, so the documentation is this module.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: Some inputs could not be processed (missing, unreadable, not a decodable image …);
    #: the others were, and their results were written.
    INPUT_ERRORS = 1
    #: Bad options or arguments; click reports these itself.
    USAGE = 2
    #: The installation is broken: a compiled core or a dependency fails to import, or a
    #: signal-type plug-in is broken. Reinstalling fixes it; the input is not at fault.
    BROKEN_INSTALL = 3
    #: The paths given contain no file at all (for example an empty directory).
    NO_INPUT = 4
    #: The bank store cannot be opened or used: a bad database URL, a file that is not a
    #: database, a server that cannot be reached, a lock held too long by another writer.
    STORE_UNAVAILABLE = 5
    #: ``match`` and ``scan``: at least one file matched a block bank. It takes precedence
    #: over 1 and 70: a match is never hidden by another file's failure (those are still
    #: reported on stderr and in the output).
    MATCH_FOUND = 10
    #: ``audit verify``: the audit trail is not as appended (an event edited, removed,
    #: inserted or reordered, or the end cut off); each place is listed on stdout.
    AUDIT_TAMPERED = 11
    #: A bug in Lightkeeper: an unexpected exception (sysexits' EX_SOFTWARE).
    INTERNAL_ERROR = 70
    #: Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
    INTERRUPTED = 130


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "every input was processed",
    ExitCode.INPUT_ERRORS: "some inputs could not be processed (the others were)",
    ExitCode.USAGE: "usage error: bad option or argument",
    ExitCode.BROKEN_INSTALL: "broken installation: a compiled core, dependency or plug-in",
    ExitCode.NO_INPUT: "no input files found",
    ExitCode.STORE_UNAVAILABLE: "the bank store cannot be opened or used (--db)",
    ExitCode.MATCH_FOUND: "match/scan: a file matched a block bank (wins over 1 and 70)",
    ExitCode.AUDIT_TAMPERED: "audit verify: the audit trail was tampered with",
    ExitCode.INTERNAL_ERROR: "internal error (a bug: please report it)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code_table() -> str:
    """The exit codes as aligned lines, for ``--help`` and the CLI reference."""
    return "\n".join(f"{int(code):>3}  {text}" for code, text in EXIT_CODE_HELP.items())
