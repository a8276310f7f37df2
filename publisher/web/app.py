"""The web side: feeds over HTTP, newsletter previews, subscribe / confirm / one-click unsubscribe, the team's plan.

A WSGI application on the standard library; `serve` runs it on a threading
``wsgiref`` server until Ctrl-C::

    from publisher.web.app import serve
    serve(site, "127.0.0.1", 8080)

Routes (the URLs the built feeds and newsletters already point at):

=======================================  ====================================================
``GET /feeds/<path>``                    the built feeds (Atom, RSS), ETag + 304
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
=======================================  ====================================================

A GET never changes anything (link scanners follow GETs); the one-click POST
needs no cookie, no origin and gets no redirect (RFC 8058).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import socketserver
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIEnvironment

from publisher.audience.erasure import erased_count, forget
from publisher.audience.tokens import SECRET_ENV, link_secret
from publisher.dispatch.status import approve, open_runner, plan_lines
from publisher.errors import PublisherError
from publisher.site.config import Site
from publisher.store.dispatches import open_store
from publisher.web import readers
from publisher.web.http import (
    PREVIEW_POLICY,
    FormTooLarge,
    Request,
    Response,
    basic_password,
    file_response,
    inside,
    password_matches,
    same_origin,
)
from publisher.web.pages import Clock, StoreFactory, WebContext
from publisher.web.subscribe import confirm, confirm_page, subscribe, subscribe_form

__all__ = ["App", "make_app", "make_server", "serve"]

log = logging.getLogger("publisher.web.app")
ADMIN_ENV = "PUBLISHER_ADMIN_PASSWORD"
FEED_TYPES = {"atom.xml": "application/atom+xml; charset=utf-8", "rss.xml": "application/rss+xml; charset=utf-8"}
NEWSLETTER_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".ics": "text/calendar; charset=utf-8",
}
Handler = Callable[..., Response]


# --- built files -------------------------------------------------------------------------------------


def feed(ctx: WebContext, request: Request, path: str) -> Response:
    """GET /feeds/<path>: a feed `publisher build` wrote, never anything outside ``feeds/``."""
    content_type = FEED_TYPES.get(path.rsplit("/", 1)[-1])
    found = inside(ctx.out / "feeds", path) if content_type else None
    if found is None or content_type is None:
        return _not_found(ctx)
    return file_response(request, found, content_type, cache="public, max-age=300", policy=None)


def newsletter(ctx: WebContext, request: Request, name: str) -> Response:
    """GET /newsletters/<id>.html (preview), .txt, .ics."""
    content_type = NEWSLETTER_TYPES.get(Path(name).suffix)
    found = inside(ctx.out / "newsletters", name) if content_type and not name.startswith(".") else None
    if found is None or content_type is None:
        return _not_found(ctx)
    return file_response(request, found, content_type, cache="public, max-age=300", policy=PREVIEW_POLICY)


def _not_found(ctx: WebContext) -> Response:
    return ctx.message(404, "Not found", "There is nothing at this address.", link=("/", "Home"))


def home(ctx: WebContext, request: Request) -> Response:
    feeds = [(f"/feeds/{name}", label) for name, label in (("atom.xml", "Atom"), ("rss.xml", "RSS"))]
    available = [(href, label) for href, label in feeds if (ctx.out / href.lstrip("/")).is_file()]
    return ctx.page("home.html", title="Newsletters and feeds", feeds=available)


# --- one-click unsubscribe (the reader's pages are in publisher.web.readers) ---------------------------


def unsubscribe_help(ctx: WebContext, request: Request) -> Response:
    """GET /unsubscribe: the neutral link of built previews."""
    return ctx.message(
        200,
        "Unsubscribe",
        "Use the unsubscribe link at the end of any newsletter you received: it is made for your address.",
    )


# --- the team's pages --------------------------------------------------------------------------------


def _admin_refusal(ctx: WebContext, request: Request) -> Response | None:
    """None when the request carries the admin password; else the 403 or 401 page."""
    expected = ctx.site.secret(ADMIN_ENV)
    if expected is None:
        return ctx.message(403, "The team's pages are off", f"set {ADMIN_ENV} to use them.")
    given = basic_password(request.header("Authorization"))
    if given is not None and password_matches(given, expected):
        return None
    now = ctx.now()
    if given is not None and not ctx.failed_logins.allow(request.client, now):
        wait = ctx.failed_logins.retry_after(request.client, now)
        return ctx.message(429, "Too many attempts", "Please wait.", headers=[("Retry-After", str(wait or 60))])
    challenge = ("WWW-Authenticate", 'Basic realm="publisher", charset="UTF-8"')
    return ctx.message(401, "Password needed", "These pages are for the site's team.", headers=[challenge])


def admin_plan(ctx: WebContext, request: Request) -> Response:
    """GET /admin/plan: every dispatch, its state, and an Approve button for those waiting for review."""
    refusal = _admin_refusal(ctx, request)
    if refusal is not None:
        return refusal
    now = ctx.now()
    try:
        lines = plan_lines(open_runner(ctx.site, ctx.store(), now), now)
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
    key = link_secret(ctx.site)
    email = request.form().get("email", "").strip()
    if key is None or not email:
        why = f"set {SECRET_ENV}: erased addresses are kept as hashes keyed with it" if key is None else "no address"
        return ctx.message(400, "Nothing was erased", why, link=back)
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


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def _route(method: str, pattern: str, handler: Handler) -> Route:
    return Route(method, re.compile(pattern), handler)


ROUTES = (
    _route("GET", r"/", home),
    _route("GET", r"/feeds/(.+)", feed),
    _route("GET", r"/newsletters/([^/]+)", newsletter),
    _route("GET", r"/subscribe", subscribe_form),
    _route("POST", r"/subscribe", subscribe),
    _route("GET", r"/confirm/([^/]+)", confirm_page),
    _route("POST", r"/confirm/([^/]+)", confirm),
    _route("GET", r"/unsubscribe", unsubscribe_help),
    _route("GET", r"/unsubscribe/([^/]+)", readers.unsubscribe_page),
    _route("POST", r"/unsubscribe/([^/]+)", readers.unsubscribe),
    _route("POST", r"/unsubscribe/([^/]+)/everything", readers.unsubscribe_everything),
    _route("GET", r"/preferences", readers.preferences_help),
    _route("GET", r"/preferences/([^/]+)", readers.preferences_page),
    _route("POST", r"/preferences/([^/]+)", readers.preferences),
    _route("GET", r"/archive/?", lambda ctx, request: readers.archive_file(ctx, request, "")),
    _route("GET", r"/archive/([^/]+)", readers.archive_file),
    _route("POST", r"/admin/forget", admin_forget),
    _route("GET", r"/admin/?", admin_plan),
    _route("GET", r"/admin/plan", admin_plan),
    _route("POST", r"/admin/approve/([^/]+)", admin_approve),
)


class App:
    """The WSGI application. `close()` closes the store if the app opened it."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def respond(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        allowed: list[str] = []
        for route in ROUTES:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method == method:
                return route.handler(self.ctx, request, *match.groups())
            allowed.append(route.method)
        if allowed:
            methods = ", ".join(sorted({*allowed, "HEAD"} if "GET" in allowed else set(allowed)))
            allow = [("Allow", methods)]
            return self.ctx.message(405, "Not allowed", "This address does not take that.", headers=allow)
        return _not_found(self.ctx)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.respond(request)
        except FormTooLarge:
            response = self.ctx.message(413, "Too large", "That was more than a form holds.")
        except Exception:
            log.exception("the web side failed on %s %s", request.method, redacted(request.path))
            response = self.ctx.message(500, "Something went wrong", "Please try again later.")
        headers = [("Content-Type", response.content_type), *response.headers]
        if response.status != 304:
            headers.append(("Content-Length", str(len(response.body))))
        start_response(response.status_line, headers)
        return [] if request.method == "HEAD" or response.status == 304 else [response.body]

    def close(self) -> None:
        self.ctx.close()


def make_app(site: Site, store_factory: StoreFactory, clock: Clock, *, out: Path | None = None) -> App:
    """The WSGI app for `site`; the store is opened by `store_factory` on first use; `out` is where `build` wrote."""
    return App(WebContext(site, store_factory, clock, out))


# --- the server --------------------------------------------------------------------------------------

_TOKENS = re.compile(r"/(unsubscribe|confirm|preferences)/[^\s\"?/]+")


def redacted(text: str) -> str:
    """`text` with the tokens of unsubscribe, confirm and preferences links cut out (never logged)."""
    return _TOKENS.sub(r"/\1/…", text)


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    access_log: Callable[[str], None] | None = None  # None: standard error


class _Handler(WSGIRequestHandler):
    timeout = 30  # a client that sends nothing does not hold a thread for ever

    def log_message(self, format: str, *args: Any) -> None:
        line = f"{self.address_string()} [{self.log_date_time_string()}] {redacted(format % args)}"
        write = self.server.access_log if isinstance(self.server, _Server) else None
        (write or _to_stderr)(line)


def make_server(
    site: Site,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    store_factory: StoreFactory | None = None,
    clock: Clock | None = None,
    out: Path | None = None,
    access_log: Callable[[str], None] | None = None,
) -> WSGIServer:
    """A threading server for `site`, bound (port 0: any free port, see ``server.server_port``), not yet serving.

    Each request is logged (tokens cut out) to `access_log`, by default standard error.
    ``server.get_app()`` is the `App`; close it after ``server.server_close()``.
    """
    factory = store_factory or (lambda: open_store(site.database_url))
    app = make_app(site, factory, clock or (lambda: dt.datetime.now(dt.UTC)), out=out)
    server = _Server((host, port), _Handler)
    server.access_log = access_log
    server.set_app(app)
    return server


def serve(
    site: Site, host: str = "127.0.0.1", port: int = 8080, *, announce: Callable[[str], None] | None = None
) -> None:
    """Serve `site` on http://host:port until Ctrl-C (KeyboardInterrupt), then close everything."""
    say = announce or (lambda line: print(line, file=sys.stderr))
    server = make_server(site, host, port)
    say(f"serving {site.settings.site.title} on http://{host}:{server.server_port}/ (Ctrl-C stops)")
    if site.secret(SECRET_ENV) is None:
        say("  subscribing is off: set PUBLISHER_SECRET (it signs the confirmation links)")
    if site.secret(ADMIN_ENV) is None:
        say(f"  the team's pages (/admin/plan) are off: set {ADMIN_ENV}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app = server.get_app()
        if isinstance(app, App):
            app.close()
