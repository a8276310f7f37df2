"""``GET /healthz``: what a load balancer or a monitor asks of a `publisher serve`.

200 when the database answers, with what can be said in public of the
deployment: whether a clock holds the database and how old its heartbeat is,
how many workers are alive, how deep the queue is and how late the oldest due
dispatch is (`publisher.dispatch.health`, what `publisher status` shows). 503
when the database cannot be asked. Never a host name, process id, queue URL or
dispatch id: those are for `publisher status`, run by the team.

The database is asked at most once a second, whoever asks and
however often: the answer is shared (`publisher.web.http.Looks`, on the context), so that a flood of requests to
this unauthenticated page costs the database one look a second, not one a
request. A load balancer polls every few seconds; an answer a second old is
as good to it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Request, Response

from publisher.dispatch.context import wall_clock
from publisher.dispatch.health import snapshot
from publisher.errors import PublisherError
from publisher.web.http import json_response
from publisher.web.pages import WebContext

log = logging.getLogger("publisher.web.health")


def healthz(ctx: WebContext, request: Request) -> Response:
    """GET /healthz: 200 and a small JSON body when the database answers; 503 when it does not."""
    return json_response(*ctx.health.answer(lambda: _look(ctx)))


def _look(ctx: WebContext) -> tuple[int, dict[str, Any]]:
    try:
        seen = snapshot(
            ctx.site, ctx.store(), wall_clock()
        )  # real time: heartbeats are real times, not the pages' clock
    except (SQLAlchemyError, PublisherError, OSError) as exc:
        log.warning("health check: the database cannot be asked: %s", exc)
        return 503, {"ok": False, "database": "cannot be asked"}
    return (
        200,
        {
            "ok": True,
            "database": "ok",
            "clock": {
                "alive": seen.clock_alive,
                "heartbeat_age": None if seen.clock_age is None else round(seen.clock_age, 1),
            },
            "workers": len(seen.workers),
            "queue_depth": seen.queue_depth,
            "oldest_unsent_lag_seconds": None if seen.lag is None else round(seen.lag, 1),
        },
    )
