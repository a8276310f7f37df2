"""The store: SQLAlchemy tables, the dispatches, the delivery ledger, migrations (SQLite | PostgreSQL)."""
