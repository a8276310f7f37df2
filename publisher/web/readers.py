"""The reader's pages: leaving one list (one-click or the visible link), leaving everything, preferences; the archive.

Thin handlers over `publisher.audience.preferences`: each checks a signed
token, calls one function, and renders what came of it. A GET never changes
anything (link scanners follow GETs); the RFC 8058 one-click POST leaves only
the list named in the token (the list of the email's ``List-Id``), and the
page it answers offers leaving everything as a second, explicit step.
"""

from __future__ import annotations

from publisher.audience import subscribers
from publisher.audience.preferences import (
    choose,
    leave_everything,
    leave_list,
    make_preferences_token,
    preferences_url,
    verify_preferences_token,
)
from publisher.audience.tokens import link_secret
from publisher.audience.unsubscribe import verify_token
from publisher.errors import InvalidInput
from publisher.web.http import Request, Response, file_response, inside
from publisher.web.pages import WebContext
from publisher.web.subscribe import languages

__all__ = [
    "archive_file",
    "preferences",
    "preferences_help",
    "preferences_page",
    "unsubscribe",
    "unsubscribe_everything",
    "unsubscribe_page",
]

ARCHIVE_TYPES = {".html": "text/html; charset=utf-8", ".xml": "application/atom+xml; charset=utf-8"}


def _unsubscriber(ctx: WebContext, token: str) -> tuple[str, str] | Response:
    secret = link_secret(ctx.site)  # as the email dispatch signed it; no SMTP or DKIM setting needed
    found = verify_token(secret, token) if secret else None
    if found is None:
        return ctx.message(
            400,
            "This unsubscribe link does not work",
            "It may have been cut short: copy the whole link from the email, or reply to the email to ask us.",
        )
    return found


def _preferences_link(ctx: WebContext, email: str) -> str:
    secret = link_secret(ctx.site)
    assert secret is not None  # the caller checked a token signed with it
    return preferences_url(ctx.site_url, make_preferences_token(secret, email))


def _public(ctx: WebContext, list_name: str) -> str:
    return ctx.site.settings.newsletter.about(list_name).public_name


def unsubscribe_page(ctx: WebContext, request: Request, token: str) -> Response:
    """GET /unsubscribe/<token>: a button to leave the email's list; nothing changes on a GET."""
    found = _unsubscriber(ctx, token)
    if isinstance(found, Response):
        return found
    email, list_name = found
    subscriber = subscribers.get(ctx.store(), email)
    done = subscriber is None or subscriber.suppressed or list_name not in subscriber.lists
    return ctx.page(
        "unsubscribe.html",
        title="Unsubscribe",
        email=email,
        list_title=_public(ctx, list_name),
        done=done,
        everything=not (subscriber is None or subscriber.suppressed),
        preferences=_preferences_link(ctx, email),
    )


def unsubscribe(ctx: WebContext, request: Request, token: str) -> Response:
    """POST /unsubscribe/<token> (RFC 8058 one-click, or the page's button): off that list at once, 200, no redirect.

    Any POST with a valid token unsubscribes, whatever its body: refusing an
    unsubscribe helps no one, and only the token authorises it.
    """
    found = _unsubscriber(ctx, token)
    if isinstance(found, Response):
        return found
    email, list_name = found
    left = leave_list(ctx.store(), email, list_name, ctx.now())
    return ctx.page(
        "unsubscribed.html",
        title="You are unsubscribed",
        email=email,
        list_title=_public(ctx, list_name),
        others=[_public(ctx, name) for name in left.lists] if left is not None and not left.suppressed else [],
        everything_url=f"/unsubscribe/{token}/everything",
        preferences=_preferences_link(ctx, email),
    )


def unsubscribe_everything(ctx: WebContext, request: Request, token: str) -> Response:
    """POST /unsubscribe/<token>/everything: the second, explicit step, off every list."""
    found = _unsubscriber(ctx, token)
    if isinstance(found, Response):
        return found
    email, _ = found
    leave_everything(ctx.store(), email, ctx.now())
    title = ctx.site.settings.site.title
    return ctx.message(
        200, "You are unsubscribed from everything", f"{email} will get no more newsletters from {title}."
    )


def _chooser(ctx: WebContext, token: str) -> str | Response:
    secret = link_secret(ctx.site)
    email = verify_preferences_token(secret, token) if secret else None
    if email is None:
        return ctx.message(
            400,
            "This link does not work",
            "It may have been cut short: copy the whole link from the email, or reply to the email to ask us.",
        )
    return email


def _preferences(ctx: WebContext, email: str, status: int = 200, *, saved: bool = False, error: str = "") -> Response:
    subscriber = subscribers.get(ctx.store(), email)
    on = set(subscriber.lists) if subscriber is not None and subscriber.status == "active" else set()
    settings = ctx.site.settings
    language = (subscriber.language if subscriber is not None else None) or settings.site.language
    return ctx.page(
        "preferences.html",
        status,
        title="Your newsletters",
        email=email,
        lists=[(one.id, one.public_name, one.description, one.id in on) for one in settings.newsletter.offered],
        languages=languages(ctx),
        language=language,
        saved=saved,
        error=error,
        known=subscriber is not None and subscriber.status in ("active", "unsubscribed"),
    )


def preferences_page(ctx: WebContext, request: Request, token: str) -> Response:
    """GET /preferences/<token>: the lists the site offers (public names) and the language, as they are now."""
    email = _chooser(ctx, token)
    return email if isinstance(email, Response) else _preferences(ctx, email)


def preferences(ctx: WebContext, request: Request, token: str) -> Response:
    """POST /preferences/<token>: the lists ticked (``list-<id>``) and the language; the next dispatch follows."""
    email = _chooser(ctx, token)
    if isinstance(email, Response):
        return email
    form = request.form()
    offered = ctx.site.settings.newsletter.lists
    chosen = [name for name in offered if form.get(f"list-{name}")]
    try:
        choose(ctx.store(), email, chosen, form.get("language") or None, ctx.now(), offered=offered)
    except InvalidInput as exc:
        return _preferences(ctx, email, 400, error="; ".join(p.message for p in exc.problems))
    return _preferences(ctx, email, saved=True)


def preferences_help(ctx: WebContext, request: Request) -> Response:
    """GET /preferences: the neutral link of previews and the archive."""
    return ctx.message(
        200,
        "Your newsletters",
        "Use the “Choose your newsletters” link at the end of a newsletter you received: it is made for your address.",
    )


def archive_file(ctx: WebContext, request: Request, name: str) -> Response:
    """GET /archive/ and /archive/<issue>.html, index.html, atom.xml: the archive the email dispatch wrote."""
    name = name or "index.html"
    content_type = ARCHIVE_TYPES.get("." + name.rsplit(".", 1)[-1]) if "." in name else None
    found = inside(ctx.site.root / "archive", name) if content_type and not name.startswith(".") else None
    if found is None or content_type is None:
        return ctx.message(404, "Not found", "There is nothing at this address.", link=("/", "Home"))
    return file_response(request, found, content_type, cache="public, max-age=300", policy=None)
