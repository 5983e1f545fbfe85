"""``lightkeeper keys``: create, list and revoke the HTTP service's API keys."""

from __future__ import annotations

import json

import click

from lightkeeper.cli.bank_command import db_option, open_store

_SCOPES = ("hash", "match", "lookup", "bank:read", "bank:write", "appeal", "admin")


@click.group("keys")
def keys_group() -> None:
    """API keys for `lightkeeper serve`: each has scopes and a rate limit.

    \b
    Scopes:
      hash        hash uploaded files
      match       match uploaded files (evidence without the banks' hash values)
      lookup      look up hashes (same evidence)
      bank:read   read banks and their entries, hash values included
      bank:write  create, change and delete banks, entries and imports
      appeal      file users' appeals against cases, and follow them
      admin       everything, plus metrics and the audit trail

    A key is shown once, when it is created; only its SHA-256 is stored.
    """


@keys_group.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(_SCOPES),
    help="A scope the key gets (repeat for several).",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True, max=1e6),
    default=None,
    help="Requests per second this key may make (default: the service's --rate-limit).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the key and its record as JSON.")
@db_option
def create_command(
    name: str, scopes: tuple[str, ...], rate_limit: float | None, as_json: bool, db: str | None
) -> None:
    """Create a key called NAME and print it (the only time it is shown)."""
    from lightkeeper.service.keys import create_key

    with open_store(db) as store:
        key, secret = create_key(store, name, scopes, rate_limit=rate_limit)
    if as_json:
        click.echo(json.dumps({"key": secret, **key.to_dict()}))
        return
    click.echo(secret)
    click.echo(
        f"key {key.id} {key.name!r}: scopes {' '.join(sorted(key.scopes, key=_SCOPES.index))}; "
        "store it now: it cannot be shown again",
        err=True,
    )


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key and line.")
@db_option
def list_command(as_json: bool, db: str | None) -> None:
    """List keys (their first characters, never the keys)."""
    from lightkeeper.service.keys import list_keys

    with open_store(db) as store:
        keys = list_keys(store)
    for key in keys:
        if as_json:
            click.echo(json.dumps(key.to_dict()))
            continue
        state = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        limit = "default" if key.rate_limit is None else f"{key.rate_limit:g}/s"
        scopes = ",".join(sorted(key.scopes, key=_SCOPES.index))
        click.echo(f"{key.id}\t{key.prefix}…\t{key.name}\t{scopes}\trate {limit}\t{state}")


@keys_group.command("revoke")
@click.argument("key_id", type=click.IntRange(min=1))
@db_option
def revoke_command(key_id: int, db: str | None) -> None:
    """Revoke key KEY_ID for good (services stop accepting it within a second)."""
    from lightkeeper.service.keys import revoke_key

    with open_store(db) as store:
        key = revoke_key(store, key_id)
    click.echo(f"key {key.id} {key.name!r} revoked")
