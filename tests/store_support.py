"""Fixtures for tests that need a store: a SQLite file, or a fresh PostgreSQL database.

Use in a test module with ``from tests.store_support import store, store_url  # noqa: F401``.
PostgreSQL tests carry the ``postgres`` marker; each gets its own database
(created from the server at PUBLISHER_TEST_POSTGRES, dropped afterwards).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.store import Store, open_store

SERVER = os.environ.get("PUBLISHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def postgres_database() -> tuple[str, sa.Engine, str]:
    """Create an empty database; returns its URL, the admin engine and its name."""
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    name = f"publisher_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    return url, admin, name


def drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url, admin, name = postgres_database()
    try:
        yield url
    finally:
        drop_database(admin, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for an empty database: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'publisher.db'}"
    url, admin, name = postgres_database()
    request.addfinalizer(lambda: drop_database(admin, name))
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
