"""Subscribing with double opt-in: the form, the confirmation email, the confirmation.

Nobody becomes an active subscriber without confirming from their own inbox.
A new address is stored as ``pending``; an address already on the list or
unsubscribed is left exactly as it is until its owner confirms. An address
that bounced or complained gets no email at all (the mail server or the
reader's own complaint said no more mail), and one erased on request (GDPR
art. 17, `publisher.audience.erasure`) is neither stored nor mailed. Every
answer to the form is the same whoever the address belongs to, so the form
tells no one who is subscribed (or erased, or bounced). The confirmation email
carries no text from the form but the address itself (no name), so the form
cannot be used to send someone else a message of one's choosing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import unicodedata
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError

from publisher.audience import subscribers
from publisher.audience.confirm import (
    DEFAULT_LIFETIME,
    Confirmation,
    confirm_url,
    make_confirm_token,
    read_confirm_token,
)
from publisher.audience.erasure import Erased
from publisher.dispatch.email import send_now
from publisher.errors import InvalidInput, PublisherError
from publisher.render.message import check_header
from publisher.web.http import Request, Response, same_origin
from publisher.web.pages import WebContext

log = logging.getLogger("publisher.web.app")
MAX_NAME = 200
HONEYPOT = "website"  # hidden from people (off-screen, aria-hidden, no tab stop); robots fill in every field
SOURCE = "web"
NO_MAIL = ("bounced", "complained")  # no confirmation email either: told what everyone is told, sent nothing


def _no_secret(ctx: WebContext) -> Response:
    return ctx.message(
        503,
        "Subscriptions are closed for now",
        "This site cannot take subscriptions yet: its team has to set PUBLISHER_SECRET first.",
    )


def languages(ctx: WebContext) -> list[tuple[str, str]]:
    """(tag, name in that language): the site's language, then those it publishes feeds in."""
    tags = [ctx.site.settings.site.language]
    folder = ctx.out / "feeds" / "languages"
    if folder.is_dir():
        tags.extend(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    return [(tag, _language_name(tag)) for tag in dict.fromkeys(tags)]


def _language_name(tag: str) -> str:
    try:
        name = Locale.parse(tag, sep="-").get_display_name(Locale.parse(tag, sep="-"))
    except (ValueError, UnknownLocaleError):
        return tag
    return (name[:1].upper() + name[1:]) if name else tag


def subscribe_form(ctx: WebContext, request: Request) -> Response:
    """GET /subscribe: the form (``?list=weekly`` preselects a list)."""
    if ctx.link_secret() is None:
        return _no_secret(ctx)
    lists = ctx.site.settings.newsletter.lists
    chosen = request.args.get("list")
    values = {"email": "", "name": "", "list": chosen if chosen in lists else lists[0], "language": ""}
    return _form(ctx, 200, values, {})


def _form(ctx: WebContext, status: int, values: dict[str, str], errors: dict[str, str]) -> Response:
    return ctx.page(
        "subscribe.html",
        status,
        title="Subscribe",
        values=values,
        errors=errors,
        lists=ctx.site.settings.newsletter.lists,
        languages=languages(ctx),
        default_language=ctx.site.settings.site.language,
    )


def _checked(ctx: WebContext, form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The form's values, cleaned, and an error message per bad field."""
    lists = ctx.site.settings.newsletter.lists
    offered = [tag for tag, _ in languages(ctx)]
    raw_name = " ".join(form.get("name", "").split())
    values = {
        "email": form.get("email", "").strip(),
        "name": "".join(c for c in raw_name if unicodedata.category(c)[0] != "C")[:MAX_NAME],
        "list": form.get("list", "") or (lists[0] if len(lists) == 1 else ""),
        "language": form.get("language", "") if form.get("language", "") in offered else offered[0],
    }
    errors: dict[str, str] = {}
    try:
        values["email"] = subscribers.normalise_email(values["email"])
    except ValueError as exc:
        errors["email"] = "Please give your email address." if not values["email"] else f"This address {exc}."
    if values["list"] not in lists:
        errors["list"] = "Please choose a newsletter."
    return values, errors


def subscribe(ctx: WebContext, request: Request) -> Response:
    """POST /subscribe: store the address as pending (if new) and send one confirmation email."""
    if not same_origin(request, ctx.site_url):
        return ctx.message(403, "Not allowed", "This form can only be sent from this site's own page.")
    now = ctx.now()
    if not ctx.subscribes.hit(request.client, now):
        wait = ctx.subscribes.retry_after(now)
        return ctx.message(429, "Too many requests", "Please try again later.", headers=[("Retry-After", str(wait))])
    secret = ctx.link_secret()
    if secret is None:
        return _no_secret(ctx)
    form = request.form.to_dict()
    if form.get(HONEYPOT):  # a field people never see: a robot filled it in; it is told what people are told
        log.info("a sign-up with the hidden field filled in was ignored")
        return _check_inbox(ctx, form.get("email", ""), now)
    values, errors = _checked(ctx, form)
    if errors:
        return _form(ctx, 400, values, errors)
    email, list_name = values["email"], values["list"]
    store = ctx.store()
    refuse = Erased(store, secret).refusal  # the key `forget` hashed with (admin_forget, the CLI)
    existing = subscribers.get(store, email)
    if refuse(email) is not None or (existing is not None and existing.status in NO_MAIL):
        # Erased, bounced or complained: the same answer as anyone's (a different one would tell who), no email.
        log.info("a sign-up for an address that gets no mail was answered and nothing was sent")
        return _check_inbox(ctx, email, now)
    if existing is None:  # a pending row keeps the name and language it was made with
        try:
            subscribers.add(
                store,
                email,
                name=values["name"] or None,
                language=values["language"] or None,
                lists=[list_name],
                now=now,
                source=SOURCE,
                status="pending",
                refuse=refuse,
            )
        except InvalidInput:
            return _form(ctx, 400, values, {"email": "This address cannot be used."})
    expires = now + DEFAULT_LIFETIME
    if ctx.confirmations.hit(subscribers.email_key(email), now):  # else: the earlier emails are in the inbox
        token = make_confirm_token(
            secret, email, list_name, expires, name=values["name"] or None, language=values["language"] or None
        )
        try:
            _send_confirmation(ctx, email, list_name, token, expires, now)
        except PublisherError as exc:
            log.error("could not send a confirmation email: %s", exc)
            return ctx.message(503, "Please try again later", "We could not send the confirmation email just now.")
    return _check_inbox(ctx, email, now)


def _check_inbox(ctx: WebContext, email: str, now: dt.datetime) -> Response:
    expires = ctx.local(now + DEFAULT_LIFETIME)
    return ctx.page("check_inbox.html", title="Check your inbox", email=email, expires=expires)


def confirmation_message(
    ctx: WebContext, email: str, list_name: str, link: str, expires: dt.datetime, now: dt.datetime
) -> EmailMessage:
    """The plain-text email with the confirmation link (nothing from the form but the address)."""
    settings = ctx.site.settings
    host = urlsplit(settings.site.url).hostname or "localhost"
    digest = hashlib.blake2b(link.encode("utf-8"), digest_size=12).hexdigest()
    headers = {
        "From": settings.newsletter.from_,
        "To": email,
        "Subject": f"Confirm your subscription to {settings.site.title}",
        "Date": format_datetime(now),
        "Message-ID": f"<confirm.{digest}@{host}>",
        "Auto-Submitted": "auto-generated",
    }
    if settings.newsletter.reply_to:
        headers["Reply-To"] = settings.newsletter.reply_to
    message = EmailMessage(policy=default_policy)
    for name, value in headers.items():
        check_header(name, value)
        message[name] = value
    text = ctx.render(
        "confirm_email.txt",
        email=email,
        list_name=list_name,
        link=link,
        expires=ctx.local(expires),
        footer=settings.newsletter.footer,
    )
    message.set_content(text)
    return message


def _send_confirmation(
    ctx: WebContext, email: str, list_name: str, token: str, expires: dt.datetime, now: dt.datetime
) -> None:
    message = confirmation_message(ctx, email, list_name, confirm_url(ctx.site_url, token), expires, now)
    result = send_now(ctx.site, message, email)
    if not result.sent:
        raise PublisherError(f"the mail server answered {result.code} {result.text}".strip())


def _confirmation(ctx: WebContext, token: str) -> Confirmation | Response:
    secret = ctx.link_secret()
    if secret is None:
        return _no_secret(ctx)
    found = read_confirm_token(secret, token)
    if found is None:
        return ctx.message(
            400,
            "This link does not work",
            "It may have been cut short: copy the whole link from the email.",
            link=("/subscribe", "Subscribe again"),
        )
    if found.expired(ctx.now()):
        return ctx.message(
            410,
            "This link has expired",
            "Confirmation links work for a few days. Please subscribe again.",
            link=("/subscribe", "Subscribe again"),
        )
    store = ctx.store()
    if not _usable(subscribers.get(store, found.email), found) or Erased(store, secret).holds(found.email):
        return ctx.message(
            409,
            "This link has been used",
            "It worked once, and cannot be used again. To subscribe again, please use the form.",
            link=("/subscribe", "Subscribe again"),
        )
    return found


def _usable(existing: subscribers.Subscriber | None, found: Confirmation) -> bool:
    """Whether a confirmation may still do its work: once, and never over a later unsubscribe.

    A token is issued `DEFAULT_LIFETIME` before it expires. It is used up once
    its address is on its list; it never brings back someone who unsubscribed
    (or bounced, or complained) after it was issued, even if it was never used.
    A reader can leave one list and stay on the others (`audience.preferences`),
    so for someone still active the token works only if their row has not
    changed since it was issued: confirming changes it, and so does leaving
    that list, and a replayed link must undo neither.
    """
    if existing is None or existing.status == "pending":
        return True
    issued = found.expires - DEFAULT_LIFETIME
    if existing.suppressed:
        return existing.unsubscribed_at is not None and existing.unsubscribed_at < issued
    return found.list_name not in existing.lists and existing.updated_at <= issued


def confirm_page(ctx: WebContext, request: Request, token: str) -> Response:
    """GET /confirm/<token>: a button (a GET never changes anything: link scanners follow GETs)."""
    found = _confirmation(ctx, token)
    if isinstance(found, Response):
        return found
    return ctx.page("confirm.html", title="Confirm your subscription", email=found.email, list_name=found.list_name)


def confirm(ctx: WebContext, request: Request, token: str) -> Response:
    """POST /confirm/<token>: the person is now an active subscriber, with their consent time."""
    if not same_origin(request, ctx.site_url):
        return ctx.message(403, "Not allowed", "Please use the button on this site's own page.")
    found = _confirmation(ctx, token)
    if isinstance(found, Response):
        return found
    store = ctx.store()
    existing = subscribers.get(store, found.email)
    # The name and language asked for are a new row's only: a form (whoever sent it) never renames anyone.
    try:
        subscribers.add(
            store,
            found.email,
            name=found.name if existing is None else None,
            language=found.language if existing is None else None,
            lists=[found.list_name],
            now=ctx.now(),
            source=SOURCE,
            status="active",
            resubscribe=True,  # they asked, and confirmed from their own inbox
            refuse=Erased(store, ctx.link_secret()).refusal,  # a link mailed before an erasure adds nobody back
        )
    except InvalidInput:  # erased since `_confirmation` looked
        return ctx.message(409, "This link has been used", "It cannot be used again.", link=("/subscribe", "Subscribe"))
    return ctx.message(
        200,
        "You are subscribed",
        f"{found.email} will get the “{found.list_name}” newsletter of {ctx.site.settings.site.title}.",
        "Every issue has a link to unsubscribe.",
    )
