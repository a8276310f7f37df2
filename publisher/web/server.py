"""`publisher serve`: the web side on waitress, a production WSGI server, until Ctrl-C.

    from publisher.web.server import serve
    serve(site, "127.0.0.1", 8080)

Why waitress: pure Python, on every platform, maintained, and built for the
internet's clients. Its I/O thread reads every request whole before a worker
thread sees it, so a slow client (slowloris) holds a socket, never one of the
bounded worker threads (`[web] threads`); a connection idle past
`CHANNEL_TIMEOUT` is closed; the listen backlog is `BACKLOG`, past 5; at most
`CONNECTION_LIMIT` connections are open at once. A client that hangs up is
not an error worth a traceback: waitress's own loggers are kept to warnings,
and the access log (one line a request, tokens cut out) is ours.

Behind a reverse proxy, the addresses in `[web] trusted_proxies` are believed
when they say (X-Forwarded-For) whom they forward for, through Werkzeug's
ProxyFix; anyone else's X-Forwarded-For is ignored, so rate limits count real
clients and no one can pose as another.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from waitress.server import BaseWSGIServer, MultiSocketServer, create_server
from waitress.wasyncore import close_all
from werkzeug.middleware.proxy_fix import ProxyFix

from publisher.audience.tokens import SECRET_ENV
from publisher.site.config import Site
from publisher.store.dispatches import open_store
from publisher.web.app import ADMIN_ENV, App, make_app, redacted
from publisher.web.hooks import MAX_BODY_BYTES
from publisher.web.pages import Clock, StoreFactory

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Server", "make_server", "redacted", "serve", "startup_notes"]

BACKLOG = 2048
CONNECTION_LIMIT = 1000
CHANNEL_TIMEOUT = 30  # seconds a connection may stay idle (or send nothing) before it is closed
log = logging.getLogger("publisher.web.server")


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


class TrustedProxies:
    """ProxyFix (the last X-Forwarded-For hop, and -Proto) for requests from the listed proxies only."""

    def __init__(self, app: WSGIApplication, proxies: Iterable[str]) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(proxy, strict=False) for proxy in proxies]
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=0)

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.networks and self.trusted(str(environ.get("REMOTE_ADDR", ""))):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


class AccessLog:
    """One line a request, like a common log, with the tokens of links cut out."""

    def __init__(self, app: WSGIApplication, write: Callable[[str], None]) -> None:
        self.app = app
        self.write = write

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen: dict[str, str] = {}

        def starting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            seen["length"] = next((v for k, v in headers if k.lower() == "content-length"), "-")
            return start_response(status, headers, exc_info)

        body = self.app(environ, starting)
        query = environ.get("QUERY_STRING") or ""
        target = str(environ.get("PATH_INFO") or "/") + (f"?{query}" if query else "")
        moment = dt.datetime.now(dt.UTC).strftime("%d/%b/%Y %H:%M:%S")
        request = f"{environ.get('REQUEST_METHOD')} {target} {environ.get('SERVER_PROTOCOL')}"
        line = f'{environ.get("REMOTE_ADDR", "-")} [{moment}] "{request}" {seen.get("status")} {seen.get("length")}'
        self.write(redacted(line))
        return body


class Server:
    """A waitress server, bound (port 0: any free port, see `port`), not yet serving; `app` is the `App`."""

    def __init__(self, waitress: BaseWSGIServer | MultiSocketServer, app: App) -> None:
        self.waitress = waitress
        self.app = app
        self.stopped = threading.Event()

    @property
    def port(self) -> int:
        found: Any = self.waitress  # the stubs name neither attribute
        if isinstance(self.waitress, MultiSocketServer):  # a host name with several addresses
            return int(found.effective_listen[0][1])
        return int(found.effective_port)

    def serve_forever(self) -> None:
        """Serve until `stop()` or Ctrl-C (KeyboardInterrupt is raised again after the server is shut)."""
        try:
            self.waitress.run()
        finally:
            self.stopped.set()

    def stop(self) -> None:
        """Close every connection and the listening socket, from any thread; the app (and store) too."""
        found: Any = self.waitress
        every = found._map if isinstance(self.waitress, BaseWSGIServer) else found.map
        # Closed in the loop's own thread (its trigger), so its poll never sees a closed descriptor.
        with contextlib.suppress(OSError):  # the trigger is closed already: the loop is ending by itself
            found.trigger.pull_trigger(lambda: close_all(every))
        if not self.stopped.wait(5):
            close_all(every)
        self.waitress.task_dispatcher.shutdown()
        self.app.close()


def _quiet() -> None:
    # A client that hangs up, a queue that waits a moment: no tracebacks in the log, real problems still shown.
    for name in ("waitress", "waitress.queue"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_server(
    site: Site,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    store_factory: StoreFactory | None = None,
    clock: Clock | None = None,
    out: Path | None = None,
    access_log: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> Server:
    """The web side of `site` on waitress, bound to host:port; each request logged to `access_log` (stderr)."""
    factory = store_factory or (lambda: open_store(site.database_url))
    app = make_app(site, factory, clock or (lambda: dt.datetime.now(dt.UTC)), out=out)
    wsgi: WSGIApplication = TrustedProxies(AccessLog(app, access_log or _to_stderr), site.settings.web.trusted_proxies)
    _quiet()
    waitress = create_server(
        wsgi,
        host=host,
        port=port,
        threads=threads or site.settings.web.threads,
        backlog=BACKLOG,
        connection_limit=CONNECTION_LIMIT,
        channel_timeout=CHANNEL_TIMEOUT,
        cleanup_interval=5,
        ident="",  # no Server header: versions and names are nobody's business
        expose_tracebacks=False,
        clear_untrusted_proxy_headers=False,  # ProxyFix decides, for the trusted addresses only
        log_socket_errors=False,
        asyncore_use_poll=True,  # select() stops at 1024 descriptors
        max_request_body_size=MAX_BODY_BYTES,  # waitress buffers a body whole before the app sees it (default 1 GiB)
    )
    return Server(waitress, app)


def startup_notes(site: Site) -> list[str]:
    """What is off, said when serve starts: the parts that need a secret it was not given."""
    notes = []
    if site.secret(SECRET_ENV) is None:
        notes.append(
            "  subscribing, confirmation links, preferences links, unsubscribe links and the Forget button"
            " are off: set PUBLISHER_SECRET (it signs them; the outbox placeholder is never accepted here)"
        )
    if site.secret(ADMIN_ENV) is None:
        notes.append(f"  the team's pages (/admin/plan) are off: set {ADMIN_ENV}")
    return notes


def serve(
    site: Site, host: str = "127.0.0.1", port: int = 8080, *, announce: Callable[[str], None] | None = None
) -> None:
    """Serve `site` on http://host:port until Ctrl-C (KeyboardInterrupt), then close everything."""
    say = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    server = make_server(site, host, port)
    say(f"serving {site.settings.site.title} on http://{host}:{server.port}/ (Ctrl-C stops)")
    for line in startup_notes(site):
        say(line)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.app.close()
