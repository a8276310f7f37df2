"""`publisher subscribers add/import/list/remove/export`: the subscriber list from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from publisher.cli.context import Context, bad_flag, parse_now, pass_context


@click.group(name="subscribers")
def subscribers_group() -> None:
    """The subscriber list: add, import, list, remove, forget, export."""


def _store(c: Context) -> Any:
    from publisher.store.dispatches import open_store

    return open_store(c.site.database_url)


def _erased(c: Context, store: Any) -> Any:
    """The erased addresses, which no command adds back (keyed with the link secret)."""
    from publisher.audience.erasure import Erased
    from publisher.audience.tokens import link_secret

    return Erased(store, link_secret(c.site))


@subscribers_group.command(name="add")
@click.argument("email")
@click.option("--name", default=None)
@click.option("--language", default=None)
@click.option("--list", "lists", multiple=True, help="A list to subscribe to (repeatable; default: the first list).")
@click.option("--now", "now_text", help="The consent time (ISO, with offset; default: now).")
@pass_context
def subscribers_add(
    c: Context, email: str, name: str | None, language: str | None, lists: tuple[str, ...], now_text: str | None
) -> None:
    """Add one subscriber.  Example: publisher subscribers add ana@example.org --name Ana --list news"""
    from publisher.audience import subscribers

    chosen = _lists(c, lists)
    store = _store(c)
    try:
        one = subscribers.add(
            store,
            email,
            name=name,
            language=language,
            lists=chosen,
            now=parse_now(now_text),
            source="cli",
            refuse=_erased(c, store).refusal,
        )
    finally:
        store.close()
    note = f" (left {one.status}: they unsubscribed or bounced)" if one.suppressed else ""
    c.emit(f"{one.email}: {one.status} on {', '.join(one.lists)}{note}", {"email": one.email, "status": one.status})


def _lists(c: Context, lists: tuple[str, ...]) -> list[str]:
    known = c.site.settings.newsletter.lists
    for name in lists:
        if name not in known:
            bad_flag("--list", f"{name!r} is not one of the newsletter lists ({', '.join(known)})")
    return list(lists) or list(known[:1])


@subscribers_group.command(name="import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "lists", multiple=True, help="Add every row to this list too (repeatable).")
@click.option("--now", "now_text", help="The consent time (ISO, with offset; default: now).")
@pass_context
def subscribers_import(c: Context, csv_file: Path, lists: tuple[str, ...], now_text: str | None) -> None:
    """Import a CSV (email, name, language, lists).  Example: publisher subscribers import people.csv --list news"""
    from publisher.audience import subscribers

    store = _store(c)
    try:
        known = c.site.settings.newsletter.lists
        chosen = _lists(c, lists) if lists else ()
        refuse = _erased(c, store).refusal
        result = subscribers.import_csv(store, csv_file, parse_now(now_text), chosen, known_lists=known, refuse=refuse)
    finally:
        store.close()
    for problem in result.problems:
        click.echo(str(problem), err=True)
    summary = (
        f"{result.added} added, {result.updated} updated, {result.unchanged} unchanged, "
        f"{result.skipped} left unsubscribed, {len({p.line for p in result.problems})} bad rows"
    )
    counts = {k: v for k, v in vars(result).items() if k != "problems"}
    c.emit(summary, {**counts, "problems": [str(p) for p in result.problems]})
    if result.problems:
        sys.exit(2)


@subscribers_group.command(name="list")
@click.option("--list", "list_name", default=None)
@click.option("--status", default=None)
@pass_context
def subscribers_list(c: Context, list_name: str | None, status: str | None) -> None:
    """List subscribers.  Example: publisher subscribers list --list news --status active"""
    from publisher.audience import subscribers
    from publisher.audience.erasure import erased_count

    _filters(c, list_name, status)
    store = _store(c)
    try:
        people = subscribers.list_subscribers(store, list_name, status)
        erased = erased_count(store)
    finally:
        store.close()
    lines = [f"{p.email}\t{p.name or ''}\t{p.language or ''}\t{';'.join(p.lists)}\t{p.status}" for p in people]
    data = [
        {"email": p.email, "name": p.name, "language": p.language, "lists": list(p.lists), "status": p.status}
        for p in people
    ]
    if erased:  # that some were, never which
        lines.append(f"({erased} erased {'address' if erased == 1 else 'addresses'}, kept as keyed hashes only)")
    c.emit("\n".join(lines) or "no subscribers", {"subscribers": data, "erased": erased})


@subscribers_group.command(name="remove")
@click.argument("email")
@click.option("--now", "now_text", help="The time (ISO, with offset; default: now).")
@pass_context
def subscribers_remove(c: Context, email: str, now_text: str | None) -> None:
    """Unsubscribe someone (kept as a suppression so no import brings them back).

    Example: publisher subscribers remove ana@example.org
    """
    from publisher.audience import subscribers

    store = _store(c)
    try:
        one = subscribers.remove(store, email, parse_now(now_text))
    finally:
        store.close()
    if one is None:
        bad_flag("EMAIL", f"{email} is not a subscriber")
    c.emit(f"{one.email}: {one.status}", {"email": one.email, "status": one.status})


@subscribers_group.command(name="forget")
@click.argument("email")
@click.option("--now", "now_text", help="The time (ISO, with offset; default: now).")
@pass_context
def subscribers_forget(c: Context, email: str, now_text: str | None) -> None:
    """Erase someone's data (GDPR art. 17), keeping only a keyed hash so nothing adds them back.

    Example: publisher subscribers forget ana@example.org
    """
    from publisher.audience.erasure import forget
    from publisher.audience.tokens import SECRET_ENV, link_secret

    key = link_secret(c.site)
    if key is None:
        bad_flag("EMAIL", f"set {SECRET_ENV}: the erased address is kept only as a hash keyed with it")
    store = _store(c)
    try:
        done = forget(store, email, key, parse_now(now_text))
    finally:
        store.close()
    if done.subscriber:
        what = f"erased: their data is gone, {done.deliveries} sends and {done.feedback} reports no longer name them"
    elif done.already:
        what = "was erased already"
    else:
        what = "was not a subscriber; erased all the same, so no import or form adds it"
    c.emit(f"{email}: {what}", {"erased": True, "subscriber": done.subscriber, "deliveries": done.deliveries})


@subscribers_group.command(name="export")
@click.option("--list", "list_name", default=None)
@click.option("--status", default=None)
@pass_context
def subscribers_export(c: Context, list_name: str | None, status: str | None) -> None:
    """Write subscribers as CSV to standard output.  Example: publisher subscribers export --list news > news.csv"""
    from publisher.audience import subscribers

    _filters(c, list_name, status)
    store = _store(c)
    try:
        subscribers.export_csv(store, sys.stdout, list_name, status)
    finally:
        store.close()


def _filters(c: Context, list_name: str | None, status: str | None) -> None:
    """`--list` and `--status` name a list and a state that exist: a typo must not read as "no subscribers"."""
    from publisher.store.tables import SUBSCRIBER_STATES

    if list_name is not None:
        _lists(c, (list_name,))
    if status is not None and status not in SUBSCRIBER_STATES:
        bad_flag("--status", f"{status!r} is not one of {', '.join(sorted(SUBSCRIBER_STATES))}")
