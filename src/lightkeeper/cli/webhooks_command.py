"""``lightkeeper webhooks``: endpoints, their signing secrets, and the delivery queue."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from lightkeeper.cli.bank_command import db_option, open_store

if TYPE_CHECKING:
    from lightkeeper.actions.webhooks import Delivery, DeliveryState

# Written out so that ``--help`` imports no SQLAlchemy; tests/test_webhooks.py checks them.
_EVENT_TYPES = ("match", "action", "decision", "report")
_STATES = ("pending", "delivered", "dead")


@click.group("webhooks")
def webhooks_group() -> None:
    """Signed webhooks: events delivered to your platform's endpoints.

    \b
    Event types:
      match     content matched a bank
      action    an action was taken (blocked, quarantined, queued for review)
      decision  a reviewer decided a case
      report    a report was filed

    Every delivery is signed with the endpoint's secret (shown once, when the endpoint is
    added or its secret rotated) and retried with backoff until the endpoint answers 2xx;
    deliveries that keep failing become dead letters, which `requeue` sends again.
    `deliver` sends what is due, once. See docs/webhooks.md for the signature scheme and
    the code a receiver uses to verify it.
    """


@webhooks_group.command("add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(_EVENT_TYPES),
    help="An event type to send (repeat for several). [default: all]",
)
@click.option("--disabled", is_flag=True, help="Add it disabled: nothing is queued for it.")
@click.option("--json", "as_json", is_flag=True, help="Print the secret and endpoint as JSON.")
@db_option
def add_command(
    name: str, url: str, events: tuple[str, ...], disabled: bool, as_json: bool, db: str | None
) -> None:
    """Add endpoint NAME at URL and print its signing secret (the only time it is shown)."""
    from lightkeeper.actions.webhooks import EVENT_TYPES, create_endpoint

    with open_store(db) as store:
        endpoint, secret = create_endpoint(
            store, name, url, event_types=events or EVENT_TYPES, enabled=not disabled
        )
    if as_json:
        click.echo(json.dumps({"secret": secret, **endpoint.to_dict()}))
        return
    click.echo(secret)
    click.echo(
        f"endpoint {endpoint.name!r} → {endpoint.url}: {' '.join(endpoint.event_types)}; "
        "store the secret now: it cannot be shown again",
        err=True,
    )


@webhooks_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per endpoint and line.")
@db_option
def list_command(as_json: bool, db: str | None) -> None:
    """List endpoints (never their secrets)."""
    from lightkeeper.actions.webhooks import list_endpoints

    with open_store(db) as store:
        endpoints = list_endpoints(store)
    for endpoint in endpoints:
        if as_json:
            click.echo(json.dumps(endpoint.to_dict()))
            continue
        state = "enabled" if endpoint.enabled else "disabled"
        click.echo(f"{endpoint.name}\t{endpoint.url}\t{','.join(endpoint.event_types)}\t{state}")


@webhooks_group.command("remove")
@click.argument("name")
@db_option
def remove_command(name: str, db: str | None) -> None:
    """Remove endpoint NAME, its pending deliveries and its delivery log."""
    from lightkeeper.actions.webhooks import remove_endpoint

    with open_store(db) as store:
        endpoint = remove_endpoint(store, name)
    click.echo(f"endpoint {endpoint.name!r} removed")


@webhooks_group.command("rotate-secret")
@click.argument("name")
@click.option(
    "--overlap",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Hours the old secret still signs too (0: stop at once).",
)
@db_option
def rotate_command(name: str, overlap: float, db: str | None) -> None:
    """Give endpoint NAME a new signing secret and print it (the only time it is shown).

    During the overlap each delivery carries a signature by each secret, so the receiver
    can switch to the new one without refusing anything.
    """
    from datetime import timedelta

    from lightkeeper.actions.webhooks import rotate_secret

    with open_store(db) as store:
        endpoint, secret = rotate_secret(store, name, overlap=timedelta(hours=overlap))
    click.echo(secret)
    until = endpoint.previous_secret_until
    old = (
        f"the old one signs too until {until:%Y-%m-%d %H:%M} UTC"
        if until
        else "the old one is void"
    )
    click.echo(f"endpoint {endpoint.name!r}: new secret; {old}", err=True)


def _print_deliveries(deliveries: list[Delivery], as_json: bool) -> None:
    for d in deliveries:
        if as_json:
            click.echo(json.dumps(d.to_dict()))
            continue
        moment = {"delivered": d.delivered_at, "dead": d.dead_at}.get(d.state)
        when = (
            f"next {d.next_attempt_at:%Y-%m-%d %H:%M:%S}"
            if moment is None
            else f"at {moment:%Y-%m-%d %H:%M:%S}"
        )
        last = "" if d.last_error is None else f"\t{d.last_error}"
        click.echo(
            f"{d.id}\t{d.event_type}\t{d.event_id}\t{d.endpoint}\t{d.state} {when}"
            f"\tattempts {d.attempts}{last}"
        )


@webhooks_group.command("deliveries")
@click.argument("delivery_id", type=click.IntRange(min=1), required=False)
@click.option("--endpoint", metavar="NAME", help="Only this endpoint's deliveries.")
@click.option("--state", type=click.Choice(_STATES), help="Only deliveries in this state.")
@click.option("--event", "event_id", metavar="ID", help="Only this event's deliveries.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most to list."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@db_option
def deliveries_command(
    delivery_id: int | None,
    endpoint: str | None,
    state: DeliveryState | None,
    event_id: str | None,
    limit: int,
    as_json: bool,
    db: str | None,
) -> None:
    """List deliveries, newest first; with DELIVERY_ID, that delivery's attempt log."""
    from lightkeeper.actions.webhooks import delivery_log, get_delivery, list_deliveries

    with open_store(db) as store:
        if delivery_id is None:
            found = list_deliveries(
                store, state=state, endpoint=endpoint, event_id=event_id, limit=limit
            )
            _print_deliveries(found, as_json)
            return
        delivery = get_delivery(store, delivery_id)
        attempts = delivery_log(store, delivery_id)
    if as_json:
        click.echo(json.dumps({**delivery.to_dict(), "log": [a.to_dict() for a in attempts]}))
        return
    _print_deliveries([delivery], as_json=False)
    for a in attempts:
        answer = "no answer" if a.status_code is None else f"HTTP {a.status_code}"
        what = "ok" if a.ok else a.error
        click.echo(
            f"  attempt {a.attempt}\t{a.at:%Y-%m-%d %H:%M:%S}\t{a.duration_ms} ms\t{answer}\t{what}"
        )


@webhooks_group.command("dead")
@click.option("--endpoint", metavar="NAME", help="Only this endpoint's dead letters.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most to list."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@db_option
def dead_command(endpoint: str | None, limit: int, as_json: bool, db: str | None) -> None:
    """List dead letters: deliveries that failed until their attempts or age ran out."""
    from lightkeeper.actions.webhooks import list_deliveries

    with open_store(db) as store:
        found = list_deliveries(store, state="dead", endpoint=endpoint, limit=limit)
    _print_deliveries(found, as_json)


@webhooks_group.command("requeue")
@click.argument("delivery_ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--all", "every", is_flag=True, help="Every dead letter (of --endpoint, if given).")
@click.option("--endpoint", metavar="NAME", help="Only this endpoint's dead letters.")
@db_option
def requeue_command(
    delivery_ids: tuple[int, ...], every: bool, endpoint: str | None, db: str | None
) -> None:
    """Send dead letters DELIVERY_IDS (or --all) again, with a fresh retry budget."""
    from lightkeeper.actions.webhooks import requeue

    if bool(delivery_ids) == every:
        raise click.UsageError("name dead letters by id, or give --all (not both)")
    with open_store(db) as store:
        count = requeue(store, list(delivery_ids) if delivery_ids else None, endpoint=endpoint)
    click.echo(f"{count} dead letter{'s' if count != 1 else ''} requeued")


@webhooks_group.command("deliver")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=8,
    show_default=True,
    help="Sends in flight at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds one attempt may take in all.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@db_option
def deliver_command(concurrency: int, timeout: float, as_json: bool, db: str | None) -> None:
    """Send every delivery that is due now, once, and print what happened.

    Failures are rescheduled with backoff; run it again (from cron, say) to send retries
    as they fall due.
    """
    from lightkeeper.actions.dispatcher import DeliverySettings, Dispatcher

    settings = DeliverySettings(
        concurrency=concurrency,
        per_endpoint=min(4, concurrency),
        total_timeout=timeout,
        connect_timeout=min(5.0, timeout),
        read_timeout=min(10.0, timeout),
    )
    with open_store(db) as store:
        dispatcher = Dispatcher(store, settings)
        try:
            report = dispatcher.deliver_due()
        finally:
            dispatcher.close()
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    click.echo(
        f"{report.attempted} attempted: {report.delivered} delivered, "
        f"{report.retried} to retry, {report.dead} dead"
    )
