"""The web side: feeds over HTTP, newsletter previews, subscribe / confirm / one-click unsubscribe, the team's plan.

A WSGI application on Werkzeug (routing, requests and forms, conditional
GETs); `publisher.web.server` runs it on waitress::

    from publisher.web.server import serve
    serve(site, "127.0.0.1", 8080)

Routes (the URLs the built feeds and newsletters already point at), all in
`ROUTES`: a route is a path (Werkzeug's rule syntax), its methods and its
handler, ``handler(ctx, request, **path values) -> Response``:

=======================================  ====================================================
``GET /``                                the front page, linking every feed (and autodiscovery)
``GET /feeds/<path>``                    the built feeds (Atom, RSS), ETag + 304, gzip
``GET /newsletters/<id>.html|.txt|.ics`` the built issue previews and calendar files
``GET|POST /subscribe``                  the form; a POST stores ``pending`` and mails a link
``GET|POST /confirm/<token>``            a button; the POST makes the subscriber active
``GET|POST /unsubscribe/<token>``        a button; the POST (RFC 8058 one-click) leaves the email's list
``POST /unsubscribe/<token>/everything`` the second, explicit step: off every list
``GET|POST /preferences/<token>``        the reader's lists (public names) and language
``GET /archive/<issue>.html``            the archive of sent issues (index.html, atom.xml)
``POST /admin/forget``                   erase a person (form field ``email``)
``GET /admin/plan``                      the timeline (HTTP Basic, PUBLISHER_ADMIN_PASSWORD)
``POST /admin/approve/<dispatch id>``    approve a dispatch waiting for review
``POST /webhooks/ses``                   Amazon SES bounces and complaints through SNS, signature checked
``POST /webhooks/mailgun``               Mailgun's failed and complained events, signature checked
``GET /healthz``                         for a load balancer: the database answers; the clock, workers, queue
=======================================  ====================================================

A GET never changes anything (link scanners follow GETs); the one-click POST
needs no cookie, no origin and gets no redirect (RFC 8058); every other POST
is refused when a browser says it comes from another site (`same_origin`).
The reader's links (confirm, unsubscribe, preferences) need PUBLISHER_SECRET
itself: without it they are off (503), never checked against the outbox
placeholder anyone can read in the source.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule

from publisher.audience.erasure import erased_count, forget
from publisher.audience.tokens import SECRET_ENV
from publisher.dispatch.status import approve, plan_lines, timeline_records
from publisher.errors import PublisherError
from publisher.site.config import Site
from publisher.web import hooks, readers
from publisher.web.health import healthz
from publisher.web.http import (
    PREVIEW_POLICY,
    Request,
    Response,
    admin_password,
    file_response,
    inside,
    password_matches,
    same_origin,
)
from publisher.web.pages import Clock, StoreFactory, WebContext
from publisher.web.subscribe import confirm, confirm_page, subscribe, subscribe_form

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ADMIN_ENV", "ROUTES", "App", "make_app"]

log = logging.getLogger("publisher.web.app")
ADMIN_ENV = "PUBLISHER_ADMIN_PASSWORD"
FEED_TYPES = {"atom.xml": "application/atom+xml; charset=utf-8", "rss.xml": "application/rss+xml; charset=utf-8"}
NEWSLETTER_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".ics": "text/calendar; charset=utf-8",
}


# --- built files -------------------------------------------------------------------------------------


def feed(ctx: WebContext, request: Request, path: str) -> Response:
    """GET /feeds/<path>: a feed `publisher build` wrote, never anything outside ``feeds/``."""
    content_type = FEED_TYPES.get(path.rsplit("/", 1)[-1])
    found = inside(ctx.out / "feeds", path) if content_type else None
    if found is None or content_type is None:
        return _not_found(ctx)
    return file_response(found, content_type, cache="public, max-age=300", policy=None)


def newsletter(ctx: WebContext, request: Request, name: str) -> Response:
    """GET /newsletters/<id>.html (preview), .txt, .ics: to anyone once the record is published, else to the team."""
    content_type = NEWSLETTER_TYPES.get(Path(name).suffix)
    found = inside(ctx.out / "newsletters", name) if content_type and not name.startswith(".") else None
    if found is None or content_type is None:
        return _not_found(ctx)
    if not ctx.published.is_public(Path(name).stem, ctx.now()):  # scheduled, a draft, or no record: the team's
        refusal = _admin_refusal(ctx, request)
        if refusal is not None:
            return refusal
        return file_response(found, content_type, cache="private, no-store", policy=PREVIEW_POLICY)
    return file_response(found, content_type, cache="public, max-age=300", policy=PREVIEW_POLICY)


def _not_found(ctx: WebContext) -> Response:
    return ctx.message(404, "Not found", "There is nothing at this address.", link=("/", "Home"))


def home(ctx: WebContext, request: Request) -> Response:
    """GET /: the site's feeds and the form; every built feed linked in the head (feed readers autodiscover them)."""
    feeds = [(f"/feeds/{name}", label) for name, label in (("atom.xml", "Atom"), ("rss.xml", "RSS"))]
    available = [(href, label) for href, label in feeds if (ctx.out / href.lstrip("/")).is_file()]
    return ctx.page("home.html", title="Newsletters and feeds", feeds=available, alternates=alternates(ctx))


def alternates(ctx: WebContext) -> list[tuple[str, str, str]]:
    """(href, type, title) of every feed under ``feeds/``: the site's first, then by language, then by tag."""
    folder = ctx.out / "feeds"
    if not folder.is_dir():
        return []
    title = ctx.site.settings.site.title
    found: list[tuple[tuple[int, str], tuple[str, str, str]]] = []
    for path in folder.rglob("*.xml"):
        content_type = FEED_TYPES.get(path.name)
        relative = path.relative_to(folder).as_posix()
        if content_type is None or inside(folder, relative) is None:
            continue
        kind = "Atom" if path.name == "atom.xml" else "RSS"
        parts = relative.split("/")
        if len(parts) == 1:
            rank, label = 0, f"{title} ({kind})"
        elif len(parts) == 3 and parts[0] in ("languages", "tags"):
            rank, label = (1 if parts[0] == "languages" else 2), f"{title}: {parts[1]} ({kind})"
        else:
            continue
        found.append(((rank, relative), (f"/feeds/{relative}", content_type.split(";")[0], label)))
    return [entry for _, entry in sorted(found)]


# --- the reader's pages (one-click unsubscribe, preferences, the archive) are in publisher.web.readers ---


def unsubscribe_help(ctx: WebContext, request: Request) -> Response:
    """GET /unsubscribe: the neutral link of built previews."""
    return ctx.message(
        200,
        "Unsubscribe",
        "Use the unsubscribe link at the end of any newsletter you received: it is made for your address.",
    )


# --- the team's pages --------------------------------------------------------------------------------


def _admin_refusal(ctx: WebContext, request: Request) -> Response | None:
    """None when the request carries the admin password; else the 403, 429 or 401 page.

    The limiter is asked first: once a client has used up its wrong guesses,
    every attempt is refused until the window ends, the right password too,
    so guessing on past the limit learns nothing.
    """
    expected = ctx.site.secret(ADMIN_ENV)
    if expected is None:
        return ctx.message(403, "The team's pages are off", f"set {ADMIN_ENV} to use them.")
    now = ctx.now()
    if ctx.failed_logins.full(request.client, now):  # locked: every attempt refused, the right password too
        wait = ctx.failed_logins.retry_after(now)
        return ctx.message(429, "Too many attempts", "Please wait.", headers=[("Retry-After", str(wait))])
    given = admin_password(request)
    if given is not None and password_matches(given, expected):
        return None
    if given is not None:
        ctx.failed_logins.hit(request.client, now)
    challenge = ("WWW-Authenticate", 'Basic realm="publisher", charset="UTF-8"')
    return ctx.message(401, "Password needed", "These pages are for the site's team.", headers=[challenge])


def admin_plan(ctx: WebContext, request: Request) -> Response:
    """GET /admin/plan: every dispatch, its state, and an Approve button for those waiting for review."""
    refusal = _admin_refusal(ctx, request)
    if refusal is not None:
        return refusal
    now = ctx.now()
    try:
        lines = plan_lines(ctx.site, ctx.store(), timeline_records(ctx.site), now)
    except PublisherError as exc:
        return ctx.message(500, "The plan cannot be made", *str(exc).splitlines())
    erased = erased_count(ctx.store())
    return ctx.page("plan.html", title="Plan", lines=lines, now=ctx.local(now), local=ctx.local, erased=erased)


def admin_forget(ctx: WebContext, request: Request) -> Response:
    """POST /admin/forget (form field ``email``): erase a person, as ``publisher subscribers forget`` does."""
    refusal = _admin_refusal(ctx, request)
    if refusal is not None:
        return refusal
    if not same_origin(request, ctx.site_url):
        return ctx.message(403, "Not allowed", "Please use the button on the plan page.")
    back = ("/admin/plan", "Back to the plan")
    key = ctx.link_secret()
    if key is None:
        why = f"set {SECRET_ENV}: erased addresses are kept as hashes keyed with it."
        return ctx.message(503, "Nothing was erased", why, link=back)
    email = request.field("email").strip()
    if not email:
        return ctx.message(400, "Nothing was erased", "No address was given.", link=back)
    done = forget(ctx.store(), email, key, ctx.now())
    said = "was erased already" if done.already and not done.subscriber else "is erased: only a keyed hash is kept"
    return ctx.message(200, "Erased", f"The address {said}.", link=back)


def admin_approve(ctx: WebContext, request: Request, dispatch_id: str) -> Response:
    """POST /admin/approve/<id>: a dispatch waiting for review goes out at its due time."""
    refusal = _admin_refusal(ctx, request)
    if refusal is not None:
        return refusal
    if not same_origin(request, ctx.site_url):
        return ctx.message(403, "Not allowed", "Please use the button on the plan page.")
    now = ctx.now()
    back = ("/admin/plan", "Back to the plan")
    try:
        row, approved = approve(ctx.site, ctx.store(), dispatch_id, now)
    except PublisherError as exc:
        return ctx.message(500, "The plan cannot be made", *str(exc).splitlines(), link=back)
    if row is None:
        return ctx.message(404, "No such dispatch", f"There is no dispatch {dispatch_id}.", link=back)
    if not approved:
        state = row.state.replace("_", " ")
        return ctx.message(409, "Not waiting for review", f"{dispatch_id} is {state}.", link=back)
    return ctx.message(200, "Approved", f"{dispatch_id} goes out at its due time, {ctx.local(row.due)}.", link=back)


# --- the application ---------------------------------------------------------------------------------

Handler = Callable[..., Response]
ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("/", ("GET",), home),
    ("/feeds/<path:path>", ("GET",), feed),
    ("/newsletters/<name>", ("GET",), newsletter),
    ("/subscribe", ("GET",), subscribe_form),
    ("/subscribe", ("POST",), subscribe),
    ("/confirm/<token>", ("GET",), confirm_page),
    ("/confirm/<token>", ("POST",), confirm),
    ("/unsubscribe", ("GET",), unsubscribe_help),
    ("/unsubscribe/<token>", ("GET",), readers.unsubscribe_page),
    ("/unsubscribe/<token>", ("POST",), readers.unsubscribe),
    ("/unsubscribe/<token>/everything", ("POST",), readers.unsubscribe_everything),
    ("/preferences", ("GET",), readers.preferences_help),
    ("/preferences/<token>", ("GET",), readers.preferences_page),
    ("/preferences/<token>", ("POST",), readers.preferences),
    ("/archive", ("GET",), readers.archive_file),
    ("/archive/", ("GET",), readers.archive_file),
    ("/archive/<name>", ("GET",), readers.archive_file),
    ("/admin", ("GET",), admin_plan),
    ("/admin/", ("GET",), admin_plan),
    ("/admin/plan", ("GET",), admin_plan),
    ("/admin/forget", ("POST",), admin_forget),
    ("/admin/approve/<dispatch_id>", ("POST",), admin_approve),
    ("/webhooks/ses", ("POST",), hooks.ses),
    ("/webhooks/mailgun", ("POST",), hooks.mailgun),
    ("/healthz", ("GET",), healthz),
)


def url_map(routes: Iterable[tuple[str, tuple[str, ...], Handler]] = ROUTES) -> Map:
    """Werkzeug's map of `routes`: the handler is the endpoint; no redirects for slashes (a path is as written)."""
    rules = [Rule(path, methods=list(methods), endpoint=handler) for path, methods, handler in routes]
    return Map(rules, strict_slashes=False, merge_slashes=False)


class App:
    """The WSGI application. `close()` closes the store if the app opened it."""

    def __init__(self, ctx: WebContext, routes: Iterable[tuple[str, tuple[str, ...], Handler]] = ROUTES) -> None:
        self.ctx = ctx
        self.urls = url_map(routes)

    def respond(self, request: Request) -> Response:
        """The handler's response, or a page for what Werkzeug refused (404, 405, 413, a bad form: 400)."""
        try:
            handler, values = self.urls.bind_to_environ(request.environ).match()
            response: Response = handler(self.ctx, request, **values)
        except MethodNotAllowed as exc:
            allow = [("Allow", ", ".join(sorted(exc.valid_methods or ())))]
            return self.ctx.message(405, "Not allowed", "This address does not take that.", headers=allow)
        except HTTPException as exc:
            return self._refused(exc)
        return response

    def _refused(self, exc: HTTPException) -> Response:
        code = exc.code or 400
        if code == 404:
            return _not_found(self.ctx)
        if code == 413:
            return self.ctx.message(413, "Too large", "That was more than a form holds.")
        if code < 400:  # a redirect Werkzeug chose: as it is
            return exc.get_response()
        return self.ctx.message(code, exc.name, "The request could not be read.")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.respond(request)
        except Exception:
            log.exception("the web side failed on %s %s", request.method, redacted(request.path))
            response = self.ctx.message(500, "Something went wrong", "Please try again later.")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        self.ctx.gzip.apply(request, response)
        if response.status_code == 200 and ("ETag" in response.headers or "Last-Modified" in response.headers):
            response.make_conditional(request)
        return response(environ, start_response)

    def close(self) -> None:
        self.ctx.close()


def make_app(site: Site, store_factory: StoreFactory, clock: Clock, *, out: Path | None = None) -> App:
    """The WSGI app for `site`; the store is opened by `store_factory` on first use; `out` is where `build` wrote."""
    return App(WebContext(site, store_factory, clock, out))


_TOKENS = re.compile(r"/(unsubscribe|confirm|preferences)/[^\s\"?/]+")


def redacted(text: str) -> str:
    """`text` with the tokens of unsubscribe, confirm and preferences links cut out (never logged)."""
    return _TOKENS.sub(r"/\1/…", text)
