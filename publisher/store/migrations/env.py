"""Alembic environment for publisher's store.

`publisher.store.dispatches.open_store` runs the migrations programmatically and hands its
own connection in through ``config.attributes["connection"]``. A developer
writing a new revision can also run the ``alembic`` command with
``-x url=sqlite:///dev.db`` and ``script_location = publisher.store:migrations``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from publisher.store.tables import metadata

# Any constant works; it only has to be the same in every process migrating one database.
_PG_MIGRATION_LOCK = 0x7075626C  # "publ"


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes opening a new database at once: the second waits, then finds head.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        context.run_migrations()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with -x url=... (or sqlalchemy.url)")
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


_main()
