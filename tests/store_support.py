"""Databases for tests that need a store: a SQLite file, or a fresh PostgreSQL database.

A test module runs its tests on both with two small fixtures::

    @pytest.fixture(params=store_support.DATABASES)
    def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        yield from store_support.database_url(request.param, tmp_path)

PostgreSQL cases carry the ``postgres`` marker; each gets its own database on
the server at PUBLISHER_TEST_POSTGRES (default: the local ``test`` database's
server), dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.store.dispatches import Store, open_store

SERVER = os.environ.get("PUBLISHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of `kind` ("sqlite" or "postgresql"), removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'publisher.db'}"
        return
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    name = f"publisher_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def database_environment(kind: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment a command runs with to use a database of `kind`: none for the site's own SQLite
    file, ``PUBLISHER_DATABASE_URL`` of a fresh PostgreSQL database (removed afterwards) otherwise."""
    if kind == "sqlite":
        yield {}
        return
    for url in database_url(kind, tmp_path):
        yield {"PUBLISHER_DATABASE_URL": url}


def opened(url: str) -> Iterator[Store]:
    """A store open on `url` for the length of a test."""
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()
