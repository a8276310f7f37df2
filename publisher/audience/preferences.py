"""What a reader decides for themselves: leaving one list, leaving everything, choosing lists and language.

Each is a store change behind a signed link the reader was mailed (no login):
the unsubscribe token names one address and one list (`unsubscribe.make_token`,
the tokens mailed before lists were left one by one work unchanged), the
preferences token names one address. The web side only checks a token and
calls one of these functions; every rule lives here.

- `leave_list`: off the list the email came from (RFC 8058 one-click and the
  visible link), still on the others. Leaving the last list is leaving
  everything: the address becomes a suppression entry, so no import adds it back.
- `leave_everything`: unsubscribed from all lists at once (a second, explicit step).
- `choose`: the lists offered by the site and a language, for the next dispatch
  (each dispatch reads the list when it fixes its recipients, and who may still
  get mail right before each message).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from publisher.audience.subscribers import Subscriber, locked, suppress_in, unsubscribe
from publisher.audience.tokens import sign, signed_payload
from publisher.errors import InvalidInput, Problem
from publisher.site.rules import check_language
from publisher.store.dispatches import Store
from publisher.store.tables import subscribers

__all__ = [
    "choose",
    "leave_everything",
    "leave_list",
    "make_preferences_token",
    "preferences_url",
    "verify_preferences_token",
]

S = subscribers.c
_PURPOSE = b"publisher-preferences"
# Who may change their own choices: someone on the lists. The link never expires and sits in every issue
# ever sent, so someone who left comes back only through the subscribe form (double opt-in).
_MAY_CHOOSE = frozenset({"active"})


def make_preferences_token(secret: str, email: str) -> str:
    """A URL-safe token that proves its holder may change `email`'s lists and language.

    >>> verify_preferences_token("s3cret", make_preferences_token("s3cret", "ana@example.org"))
    'ana@example.org'
    """
    if not email or any(c in email for c in "\r\n"):
        raise ValueError("a preferences token needs one email address, without line breaks")
    return sign(secret, _PURPOSE, email.encode("utf-8"))


def verify_preferences_token(secret: str, token: str) -> str | None:
    """The address `token` was made for with `secret`, else None (never raises on a bad token)."""
    payload = signed_payload(secret, _PURPOSE, token)
    if payload is None:
        return None
    try:
        email = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return email if email and "\n" not in email else None


def preferences_url(site_url: str, token: str) -> str:
    """The preferences page for `token` on the site at `site_url`."""
    return f"{site_url.rstrip('/')}/preferences/{token}"


def _change(connection: sa.Connection, subscriber: Subscriber, values: dict[str, object]) -> None:
    connection.execute(sa.update(subscribers).where(S.id == subscriber.id).values(values))


def leave_list(store: Store, email: str, list_name: str, now: dt.datetime) -> Subscriber | None:
    """`email` is off `list_name` and stays on its other lists; None when there is no such subscriber.

    Leaving the only list left is leaving everything (`leave_everything`): an
    active subscriber on no list would be a row nobody mails, and a plain
    ``unsubscribed`` row is what keeps imports from adding the address back.
    The row is read and written in one transaction, locked (`subscribers.locked`):
    two lists left at the same moment never write back each other's list.
    """
    with store.write() as connection:
        subscriber = locked(connection, email)
        if subscriber is None or subscriber.suppressed or list_name not in subscriber.lists:
            return subscriber
        left = tuple(name for name in subscriber.lists if name != list_name)
        if left:
            _change(connection, subscriber, {"lists": list(left), "updated_at": now})
        else:
            suppress_in(connection, email, now, "unsubscribed")
        return locked(connection, email)


def leave_everything(store: Store, email: str, now: dt.datetime) -> Subscriber | None:
    """`email` gets no newsletter at all any more (a suppression entry); None when there is no such subscriber."""
    return unsubscribe(store, email, now)


def choose(
    store: Store,
    email: str,
    lists: Iterable[str],
    language: str | None,
    now: dt.datetime,
    *,
    offered: Sequence[str],
) -> Subscriber | None:
    """Set `email`'s lists (among `offered`) and language; the next dispatch follows them.

    No list chosen is leaving everything. Only an active subscriber chooses:
    anyone else (pending, unsubscribed, bounced, complained) is left as they
    are. The token never expires and is in the footer of every issue ever
    sent, so holding one is no fresh consent: someone who left comes back
    through the subscribe form, confirming from their inbox.
    Raises InvalidInput naming a list not offered or a bad language tag; None
    when there is no such subscriber.
    """
    chosen = tuple(dict.fromkeys(lists))
    problems = [
        Problem("form", 1, "lists", f"{name!r} is not a list of this site") for name in chosen if name not in offered
    ]
    if language:
        try:
            language = check_language(language)
        except ValueError as exc:
            problems.append(Problem("form", 1, "language", str(exc)))
    if problems:
        raise InvalidInput(problems)
    with store.write() as connection:  # read and written at once, locked: see `leave_list`
        subscriber = locked(connection, email)
        if subscriber is None or subscriber.status not in _MAY_CHOOSE:
            return subscriber
        kept = tuple(name for name in subscriber.lists if name not in offered)  # lists the site no longer offers
        values: dict[str, object] = {"updated_at": now}
        if language:
            values["language"] = language
        if chosen:
            values["lists"] = list(dict.fromkeys(chosen + kept))
        _change(connection, subscriber, values)
        if not chosen:
            suppress_in(connection, email, now, "unsubscribed")
        return locked(connection, email)
