"""The reader's pages: leaving one list (one-click or the visible link), leaving everything, preferences; the archive.

Thin handlers over `publisher.audience.preferences`: each checks a signed
token, calls one function, and renders what came of it. A GET never changes
anything (link scanners follow GETs); the RFC 8058 one-click POST leaves only
the list named in the token (the list of the email's ``List-Id``), needs no
origin (mail providers post it from their servers), and the page it answers
offers leaving everything as a second, explicit step. That step and the
preferences form are our own pages' buttons: a POST a browser says comes from
another site is refused (403). Tokens are checked with PUBLISHER_SECRET only:
without it these pages are off (503), since the outbox placeholder is public.
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
from publisher.audience.unsubscribe import verify_token
from publisher.errors import InvalidInput
from publisher.web.http import PREVIEW_POLICY, Request, Response, file_response, inside, same_origin
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


def _links_off(ctx: WebContext) -> Response:
    return ctx.message(
        503,
        "These links are off for now",
        "This site cannot check the links in its emails yet: its team has to set PUBLISHER_SECRET.",
        "To unsubscribe or change your newsletters now, reply to the newsletter and ask.",
    )


def _foreign(ctx: WebContext) -> Response:
    return ctx.message(403, "Not allowed", "Please use the button on this site's own page.")


def _unsubscriber(ctx: WebContext, token: str) -> tuple[str, str] | Response:
    secret = ctx.link_secret()
    if secret is None:
        return _links_off(ctx)
    found = verify_token(secret, token)
    if found is None:
        return ctx.message(
            400,
            "This unsubscribe link does not work",
            "It may have been cut short: copy the whole link from the email, or reply to the email to ask us.",
        )
    return found


def _preferences_link(ctx: WebContext, email: str) -> str:
    secret = ctx.link_secret()
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
    """POST /unsubscribe/<token>/everything: the second, explicit step (our page's button), off every list."""
    if not same_origin(request, ctx.site_url):
        return _foreign(ctx)
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
    secret = ctx.link_secret()
    if secret is None:
        return _links_off(ctx)
    email = verify_preferences_token(secret, token)
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
        known=subscriber is not None and subscriber.status == "active",
    )


def preferences_page(ctx: WebContext, request: Request, token: str) -> Response:
    """GET /preferences/<token>: the lists the site offers (public names) and the language, as they are now."""
    email = _chooser(ctx, token)
    return email if isinstance(email, Response) else _preferences(ctx, email)


def preferences(ctx: WebContext, request: Request, token: str) -> Response:
    """POST /preferences/<token>: the lists ticked (``list-<id>``) and the language; the next dispatch follows.

    Only for an active subscriber: the token never expires and is in every issue's footer, so for someone
    who left (unsubscribed, bounced, complained) it changes nothing and the page points to /subscribe.
    """
    if not same_origin(request, ctx.site_url):  # a page elsewhere must not choose lists for the reader
        return _foreign(ctx)
    email = _chooser(ctx, token)
    if isinstance(email, Response):
        return email
    found = subscribers.get(ctx.store(), email)
    if found is None or found.status != "active":  # someone who left comes back through /subscribe only
        return _preferences(ctx, email)
    offered = ctx.site.settings.newsletter.lists
    chosen = [name for name in offered if request.field(f"list-{name}")]
    try:
        choose(ctx.store(), email, chosen, request.field("language") or None, ctx.now(), offered=offered)
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


def archive_file(ctx: WebContext, request: Request, name: str = "index.html") -> Response:
    """GET /archive/ and /archive/<issue>.html, index.html, atom.xml: the archive the email dispatch wrote.

    Only sent issues are in it (the dispatch writes a page once an issue went
    to someone), so it is public; its pages are email HTML, served under the
    previews' policy (no script, no forms).
    """
    content_type = ARCHIVE_TYPES.get("." + name.rsplit(".", 1)[-1]) if "." in name else None
    found = inside(ctx.site.root / "archive", name) if content_type and not name.startswith(".") else None
    if found is None or content_type is None:
        return ctx.message(404, "Not found", "There is nothing at this address.", link=("/", "Home"))
    policy = PREVIEW_POLICY if content_type.startswith("text/html") else None
    return file_response(found, content_type, cache="public, max-age=300", policy=policy)
