"""The send loop's ledger marks: one message marked sent per call, on a connection of its own.

Never-repeat needs a mark per message, committed the moment the server has
accepted it. Through a pooled SQLAlchemy transaction that costs 100–200 µs
here; on one dedicated driver connection, with the statement compiled once, it
costs about 20 µs on SQLite (WAL, ``synchronous = NORMAL``: the commit survives
a killed process; a power cut may lose the last instant, as the store's docs
say) and PostgreSQL runs it with ``synchronous_commit = off`` the same way.

The statement is the ledger's own (`publisher.ledger`), so a mark here means
exactly what `Ledger.mark_sent_each` means.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from publisher.database import Database
from publisher.ledger import _MARK_SENT, SentMessage
from publisher.tables import UtcDateTime

_OURS = ("b_id", "b_now", "b_message_id", "b_reply", "b_remote_id", "b_remote_url")


class SentMarks:
    """Marks single messages sent; a context manager (the connection closes at exit). One thread only."""

    def __init__(self, database: Database) -> None:
        engine = database.engine
        compiled = _MARK_SENT.compile(dialect=engine.dialect)
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
        values = dict(self._fixed)
        values.update(
            b_id=sent.id,
            b_now=self._when(now) if self._when is not None else now,
            b_message_id=sent.message_id,
            b_reply=sent.reply,
            b_remote_id=sent.remote_id,
            b_remote_url=sent.remote_url,
        )
        parameters: Any = values if self._order is None else [values[name] for name in self._order]
        self._cursor.execute(self._sql, parameters)
        return bool(self._cursor.rowcount == 1)

    def close(self) -> None:
        try:
            self._cursor.close()
        finally:
            self._driver.close()

    def __enter__(self) -> SentMarks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
