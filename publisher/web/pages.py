"""What every handler of the web side shares: the site, the clock, the store, the limits, and page rendering.

Pages are Jinja2 templates under ``templates/web/`` (a site's own
``templates/web/`` overrides them by file name), autoescaped.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from publisher.audience.tokens import link_secret
from publisher.site.config import Site
from publisher.site.templates import environment
from publisher.store.dispatches import Store
from publisher.web.http import PAGE_POLICY, GzipCache, Looks, Response
from publisher.web.published import Published
from publisher.web.throttle import Limit, storage_for

Clock = Callable[[], dt.datetime]
StoreFactory = Callable[[], Store]

# Subscribe form: per client address, and confirmation emails per recipient address.
SUBSCRIBES_PER_CLIENT = (10, dt.timedelta(hours=1))
CONFIRMATIONS_PER_ADDRESS = (3, dt.timedelta(days=1))
FAILED_LOGINS_PER_CLIENT = (20, dt.timedelta(minutes=15))

PAGE_HEADERS = (
    ("Content-Security-Policy", PAGE_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),  # the URL may hold a token: never pass it on
    ("Cache-Control", "no-store"),
)


HEALTH_EVERY_S = 1.0


class WebContext:
    """The site being served, its clock, its store (opened on first use) and the rate limits."""

    def __init__(self, site: Site, store_factory: StoreFactory, clock: Clock, out: Path | None = None) -> None:
        self.site = site
        self.clock = clock
        self.out = (out or site.root).resolve()
        self._store_factory = store_factory
        self._store: Store | None = None
        self._lock = threading.Lock()
        storage = storage_for(site)
        self.subscribes = Limit(storage, "subscribe", *SUBSCRIBES_PER_CLIENT)
        self.confirmations = Limit(storage, "confirm-mail", *CONFIRMATIONS_PER_ADDRESS)
        self.failed_logins = Limit(storage, "failed-login", *FAILED_LOGINS_PER_CLIENT)
        self.gzip = GzipCache()
        self.published = Published(site.events)
        self.health = Looks(HEALTH_EVERY_S)  # /healthz's answer (`publisher.web.health`), shared for a second

    def now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"the clock must give aware times (got {now!r})")
        return now

    def store(self) -> Store:
        """The store, opened by the factory the first time a page needs it (thread-safe)."""
        with self._lock:
            if self._store is None:
                self._store = self._store_factory()
            return self._store

    def close(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    @property
    def site_url(self) -> str:
        return self.site.settings.site.url

    def link_secret(self) -> str | None:
        """PUBLISHER_SECRET, which signs the readers' links (confirm, unsubscribe, preferences) and keys erased
        addresses; None when it is not set. Never the outbox placeholder: anyone can read it in the source and
        would unsubscribe anyone with it, add someone without consent, or learn who is on the list."""
        return link_secret(self.site, outbox=False)

    def local(self, moment: dt.datetime) -> str:
        """A time as the team reads it: in the site's time zone."""
        return f"{moment.astimezone(self.site.settings.site.zone):%Y-%m-%d %H:%M %Z}"

    def page(
        self,
        template: str,
        status: int = 200,
        *,
        headers: Sequence[tuple[str, str]] = (),
        **values: Any,
    ) -> Response:
        """An HTML page: ``web/<template>`` rendered with `values`."""
        html = self.render(template, **values)
        return Response(html, status, headers=[*PAGE_HEADERS, *headers], content_type="text/html; charset=utf-8")

    def render(self, template: str, **values: Any) -> str:
        """Render ``web/<template>`` with the site's title and language around `values`."""
        settings = self.site.settings.site
        env = environment(self.site.template_folder)
        return env.get_template(f"web/{template}").render(
            site_title=settings.title, site_language=settings.language, **values
        )

    def message(
        self,
        status: int,
        title: str,
        *paragraphs: str,
        link: tuple[str, str] | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """A short page: a heading, a few paragraphs, maybe one link (href, text)."""
        return self.page("message.html", status, headers=headers, title=title, paragraphs=paragraphs, link=link)
