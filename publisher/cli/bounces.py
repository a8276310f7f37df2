"""`publisher bounces`: read the bounce mailbox once, act on what came back, say what was done."""

from __future__ import annotations

import click

from publisher.cli.context import Context, parse_now, pass_context


@click.command(name="bounces")
@click.option("--now", "now_text", help="The time to record the reports at (ISO, with offset; default: now).")
@pass_context
def bounces_command(c: Context, now_text: str | None) -> None:
    """Read what is new in the bounce mailbox ([bounces] mailbox) once: bounces and complaints suppress subscribers.

    Example: publisher bounces --now 2018-02-10T09:00+01:00
    """
    from publisher.audience.bounces import read_site_mailbox, summary
    from publisher.audience.mailbox import open_mailbox
    from publisher.store.dispatches import open_store

    now = parse_now(now_text)
    open_mailbox(c.site).close()  # a mailbox that cannot be opened: said before the store is touched
    store = open_store(c.site.database_url)
    try:
        done = read_site_mailbox(store, c.site, now)
    finally:
        store.close()
    keys = ("reports", "bounced", "complained", "soft", "unmatched", "repeated", "other")
    c.emit(summary(done), {"now": now.isoformat(), **{key: done[key] for key in keys}})
