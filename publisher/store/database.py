"""Opening the database: the engine, SQLite's settings, transactions, migrations.

SQLite (the default) runs in WAL mode with ``synchronous=NORMAL``, a busy
timeout and foreign keys on. Its transactions are started by us: a write
transaction begins with ``BEGIN IMMEDIATE`` (it takes the write lock at once, so
two writers queue instead of failing half-way with "database is locked"), a
read-only one with a plain ``BEGIN``. PostgreSQL runs as it is, READ COMMITTED.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from publisher.errors import WorkFailed
from publisher.site import extras

if TYPE_CHECKING:  # each dialect is imported when it is used: PostgreSQL's is a tenth of a second
    from sqlalchemy.dialects import postgresql, sqlite

SUPPORTED = ("sqlite", "postgresql")
_READ_ONLY = "publisher_read_only"
BUSY_TIMEOUT_MS = 30_000
_MIGRATING = threading.Lock()
#: The newest revision under migrations/versions (tests/test_store.py holds the two together): a database
#: already there is opened without Alembic, whose import alone is a fifth of a second of `publisher plan`.
HEAD_REVISION = "0003"
# UPDATE ... RETURNING (claims) came in 3.35; ON CONFLICT DO UPDATE ... WHERE in 3.24.
SQLITE_AT_LEAST = (3, 35)


def shown_url(url: str | URL) -> str:
    """The URL with any password hidden, fit for a message."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3 must not start transactions on its own: _on_sqlite_begin does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _into_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _into_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode (kept in the file, so once is enough), waiting out other openers.

    The busy timeout does not cover this: when two connections open a new database at once, each
    reads it under a shared lock and then needs it alone to change the journal mode, and SQLite
    answers one of them "database is locked" at once rather than deadlock ("If SQLite determines
    that invoking the busy handler could result in a deadlock, it will go ahead and return
    SQLITE_BUSY", https://www.sqlite.org/c3ref/busy_handler.html). So the clock, a worker and
    `serve` started together on a new deployment would see one of them fail; it tries again
    until the busy timeout has passed.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(0.005)


def _on_sqlite_begin(connection: sa.Connection) -> None:
    mode = "DEFERRED" if connection.get_execution_options().get(_READ_ONLY) else "IMMEDIATE"
    connection.exec_driver_sql(f"BEGIN {mode}")


def create_engine(url: str) -> sa.Engine:
    """An engine for `url`; for a SQLite file, its folder is created first."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise WorkFailed(f"database: not a database URL ({exc})") from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's default psycopg2
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise WorkFailed(
            f"database: {backend} is not supported: use sqlite:///PATH or postgresql+psycopg://... "
            f"(got {shown_url(parsed)})"
        )
    if backend == "postgresql":
        extras.require_postgresql()
        return sa.create_engine(parsed)
    if sqlite3.sqlite_version_info < SQLITE_AT_LEAST:
        needed = ".".join(map(str, SQLITE_AT_LEAST))
        raise WorkFailed(f"database: SQLite {needed} or newer is needed (this Python has {sqlite3.sqlite_version})")
    path = _sqlite_file(parsed)
    if path is None:
        # One in-memory database on one shared connection: for quick, single-threaded use.
        engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkFailed(f"database: cannot make its folder {path.parent} ({exc.strerror or exc})") from None
        engine = sa.create_engine(parsed)
    sa.event.listen(engine, "connect", _on_sqlite_connect)
    sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (nothing to do when it is there).

    A database whose ``alembic_version`` holds `HEAD_REVISION` alone is there: one plain query says so,
    and Alembic is not even imported. Any other (a new database, an older revision, one Alembic must
    judge: a newer revision, several rows) goes through Alembic's upgrade as always.

    Processes are kept apart by the database (SQLite's write lock, a PostgreSQL
    advisory lock in env.py); threads of one process by `_MIGRATING`, as
    Alembic's `context` is one global per process.
    """
    if stored_revisions(engine) == [HEAD_REVISION]:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "publisher.store:migrations")
    with _MIGRATING, engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def stored_revisions(engine: sa.Engine) -> list[str]:
    """The revisions ``alembic_version`` holds (none for a new database), read in a read-only transaction.

    A database that cannot be reached raises as opening it would (OperationalError); only a missing table
    (the query refused on a connection that works) reads as none."""
    with engine.connect() as connection:
        connection.execution_options(**{_READ_ONLY: True})
        try:
            return [str(row[0]) for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")]
        except sa.exc.DBAPIError:
            return []


def _is_read_only(exc: sa.exc.DBAPIError) -> bool:
    """Whether the driver refused a write because the database is read-only (SQLite's file, PostgreSQL's server)."""
    text = str(exc.orig).lower()
    return "readonly database" in text or "read-only transaction" in text


class Database:
    """An open database: the engine and its two kinds of transaction.

    The base of `publisher.store.dispatches.Store` (through `Ledger`); what needs only the
    transactions (`audience.recipients`, `store.marks`) takes a `Database`, and is given the Store.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @contextmanager
    def write(self, *, lazy_flush: bool = False) -> Iterator[sa.Connection]:
        """A transaction that will write: committed on success, rolled back on error.

        `lazy_flush` lets PostgreSQL acknowledge the commit before its WAL reaches
        the disk (``synchronous_commit = off``, this transaction only): safe when
        publisher is killed, and on a crash of the database server itself it loses
        at most the last fraction of a second, as SQLite's ``synchronous = NORMAL``
        may on a power cut. The ledger's per-message marks use it. A database that
        refuses writes (a read-only file or server) raises WorkFailed, not the driver's error.
        """
        try:
            with self.engine.begin() as connection:
                if lazy_flush and connection.dialect.name == "postgresql":
                    connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield connection
        except sa.exc.DBAPIError as exc:
            if not _is_read_only(exc):
                raise
            raise WorkFailed(f"the database {shown_url(self.engine.url)} is read-only: {exc.orig}") from None

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only transaction: one consistent snapshot, never blocks writers."""
        with self.engine.connect() as connection:
            connection.execution_options(**{_READ_ONLY: True})
            yield connection

    def insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT with ON CONFLICT clauses, for this database's dialect."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
