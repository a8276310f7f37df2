"""Optional extras: the packages a setting needs, checked before they are used.

``pip install 'publisher[scale]'`` brings the drivers for PostgreSQL (psycopg)
and for the delivery queue (celery, with redis for a ``redis://`` broker). A
site that names PostgreSQL or a queue without them gets one line naming the
extra (`publisher.errors.MissingExtra`), not an ImportError from deep inside
SQLAlchemy or Celery.
"""

from __future__ import annotations

import importlib

from publisher.errors import MissingExtra

SCALE = "scale"


def require(modules: tuple[str, ...], what: str, extra: str = SCALE) -> None:
    """Import each of `modules`; MissingExtra naming `extra` and the missing ones when any is not there."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtra(what, " and ".join(missing), extra)


def require_postgresql() -> None:
    require(("psycopg",), "a PostgreSQL database")


def require_queue(scheme: str) -> None:
    """The packages a broker of `scheme` (``redis``, ``amqp``, …) needs: celery, and redis for Redis."""
    modules = ("celery", "kombu", "redis") if scheme.startswith("redis") else ("celery", "kombu")
    require(modules, f"a {scheme}:// queue")
