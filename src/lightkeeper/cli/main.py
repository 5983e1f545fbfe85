"""The ``lightkeeper`` command: a click group whose commands are thin layers over the library.

Every command calls the library and turns its errors into a message and an exit code
(`lightkeeper.cli.exit_codes`). Whatever escapes a command is caught here, so no traceback
reaches the user: a broken installation exits 3, a bug prints one line and exits 70
(set ``LIGHTKEEPER_TRACEBACK=1`` to see the traceback instead).

Commands import the library inside their function, so ``lightkeeper --help`` works, and a
broken installation is reported as one, even when Pillow or a compiled core cannot load.
"""

from __future__ import annotations

import os
from typing import Any

import click

from lightkeeper import __version__
from lightkeeper.cli.actions_command import actions_group
from lightkeeper.cli.audit_command import audit_group
from lightkeeper.cli.bank_command import bank_group
from lightkeeper.cli.cases_command import cases_group
from lightkeeper.cli.eval_command import eval_command
from lightkeeper.cli.exit_codes import ExitCode, exit_code_table
from lightkeeper.cli.hash_command import hash_command
from lightkeeper.cli.keys_command import keys_group
from lightkeeper.cli.match_command import match_command
from lightkeeper.cli.output import error
from lightkeeper.cli.policy_command import policy_group
from lightkeeper.cli.report_command import report_group
from lightkeeper.cli.review_command import appeals_group, feedback_group, reviewers_group
from lightkeeper.cli.scan_command import scan_command
from lightkeeper.cli.serve_command import serve_command
from lightkeeper.cli.transparency_command import transparency_command
from lightkeeper.cli.vault_command import vault_group
from lightkeeper.cli.webhooks_command import webhooks_group
from lightkeeper.errors import LightkeeperError, PluginError

_HELP = f"""Find known abuse imagery by hash: PDQ, MD5, SHA-1 and SHA-256, hash banks, matching.

Lightkeeper never holds abuse material; it works with hashes.

\b
Exit codes:
{exit_code_table()}

An internal error prints one line; set LIGHTKEEPER_TRACEBACK=1 to see its traceback.
"""


class _LightkeeperGroup(click.Group):
    """A group that turns any escaping exception into one line and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            error("interrupted")
            ctx.exit(ExitCode.INTERRUPTED)
        except BrokenPipeError:
            raise  # click's own handling: the reader went away (`| head`), nothing to say
        except (ImportError, PluginError) as exc:
            if os.environ.get("LIGHTKEEPER_TRACEBACK"):
                raise
            error(
                f"broken installation: {exc} "
                "(reinstall Lightkeeper; in a checkout, run `make build`)"
            )
            ctx.exit(ExitCode.BROKEN_INSTALL)
        except LightkeeperError as exc:
            error(str(exc))
            ctx.exit(ExitCode.INPUT_ERRORS)
        except Exception as exc:
            if os.environ.get("LIGHTKEEPER_TRACEBACK"):
                raise
            error(f"internal error: {type(exc).__name__}: {exc} (this is a bug; please report it)")
            ctx.exit(ExitCode.INTERNAL_ERROR)


#: Environment variables that size NumPy's BLAS thread pools.
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@click.group(cls=_LightkeeperGroup, help=_HELP, context_settings={"max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="lightkeeper")
def main() -> None:
    # Worker processes are the parallelism: a BLAS thread pool in each (for PDQ's small
    # matrix products) only oversubscribes the cores — `hash -j1` on 60 corpus photos took
    # 5.1 s with OpenBLAS's default threads and 3.0 s with one. It must be set before NumPy
    # loads, which the commands do lazily, after this runs. A user's own setting wins.
    for variable in _BLAS_THREADS:
        os.environ.setdefault(variable, "1")


main.add_command(hash_command)
main.add_command(bank_group)
main.add_command(match_command)
main.add_command(scan_command)
main.add_command(serve_command)
main.add_command(keys_group)
main.add_command(eval_command)
main.add_command(webhooks_group)
main.add_command(vault_group)
main.add_command(audit_group)
main.add_command(policy_group)
main.add_command(cases_group)
main.add_command(actions_group)
main.add_command(report_group)
main.add_command(reviewers_group)
main.add_command(appeals_group)
main.add_command(feedback_group)
main.add_command(transparency_command)
