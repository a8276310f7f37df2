"""The send loop's ledger marks, on a connection of their own.

Never-repeat needs every message marked, and committed, as soon as the server
has accepted it and before its connection sends another: `mark` commits one,
`mark_all` commits the answers that arrived together in one transaction.
Through a pooled SQLAlchemy transaction a mark costs 100–200 µs here; on one
dedicated driver connection, with the statement compiled once, about 80 µs
alone on SQLite (WAL, ``synchronous = NORMAL``: the commit survives a killed
process; a power cut may lose the last instant, as the store's docs say), and
a group of them in one commit much less each. PostgreSQL runs them with
``synchronous_commit = off`` the same way.

The statement is the ledger's own (`publisher.store.ledger`), so a mark here means
exactly what `Ledger.mark_sent_each` means.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import Any

from publisher.store.database import Database
from publisher.store.ledger import MARK_SENT, SentMessage
from publisher.store.tables import UtcDateTime

_OURS = ("b_id", "b_now", "b_message_id", "b_reply", "b_remote_id", "b_remote_url")


class SentMarks:
    """Marks single messages sent; a context manager (the connection closes at exit). One thread only."""

    def __init__(self, database: Database) -> None:
        engine = database.engine
        compiled = MARK_SENT.compile(dialect=engine.dialect)
        self._sql = str(compiled)
        # The statement's own values (state = 'sent' ...), with ours filled in per call.
        self._fixed = compiled.construct_params({name: None for name in _OURS}, _check=False)
        self._order = compiled.positiontup  # the parameters' order for a positional driver, else None
        self._when = UtcDateTime().bind_processor(engine.dialect)
        self._raw = engine.raw_connection()
        driver: Any = self._raw.driver_connection
        self._raw.detach()  # ours alone, closed for good at the end: its settings never reach the pool
        self._driver = driver
        if engine.dialect.name == "postgresql":
            driver.autocommit = True
            driver.execute("SET synchronous_commit TO OFF")
        # SQLite: the store's connect hook already made the connection autocommit, in WAL mode.
        self._cursor = driver.cursor()

    def mark(self, sent: SentMessage, now: dt.datetime) -> bool:
        """Mark one message sent (its own committed transaction); False if the row was already sent."""
        self._cursor.execute(self._sql, self._parameters(sent, now))
        return bool(self._cursor.rowcount == 1)

    def mark_all(self, sent: Sequence[SentMessage], now: dt.datetime) -> None:
        """Mark several messages sent in one committed transaction (a group commit).

        For answers that arrived together: one commit instead of one each, and
        every one of them is committed when this returns, as with `mark`.
        """
        if len(sent) <= 1:
            for one in sent:
                self.mark(one, now)
            return
        rows = [self._parameters(one, now) for one in sent]
        self._cursor.execute("BEGIN")
        try:
            self._cursor.executemany(self._sql, rows)
            self._cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):  # a connection gone: the first error is the one to see
                self._cursor.execute("ROLLBACK")
            raise

    def _parameters(self, sent: SentMessage, now: dt.datetime) -> Any:
        values = dict(self._fixed)
        values.update(
            b_id=sent.id,
            b_now=self._when(now) if self._when is not None else now,
            b_message_id=sent.message_id,
            b_reply=sent.reply,
            b_remote_id=sent.remote_id,
            b_remote_url=sent.remote_url,
        )
        return values if self._order is None else [values[name] for name in self._order]

    def close(self) -> None:
        try:
            self._cursor.close()
        finally:
            self._driver.close()

    def __enter__(self) -> SentMarks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
