"""`publisher status` and ``--metrics-port``: operations you can see, from any host.

Both read the database and the broker (`publisher.dispatch.health`), never a
process list: the clock's holder and heartbeat age, the live workers, the
queue's depth and the oldest due-but-unsent dispatch.
"""

from __future__ import annotations

import click

from publisher.cli.context import Context, bad_flag, pass_context
from publisher.site.config import Site

METRICS_HELP = "Serve Prometheus metrics on [HOST:]PORT (default host 127.0.0.1; needs publisher[scale])."


def start_metrics(site: Site, address: str | None) -> None:
    """Serve /metrics at `address` (``PORT`` or ``HOST:PORT``) for this process's life; nothing when None."""
    if address is None:
        return
    from publisher.dispatch.context import wall_clock
    from publisher.dispatch.health import snapshot
    from publisher.dispatch.metrics import parse_address, serve_metrics
    from publisher.store.dispatches import open_store

    try:
        host, port = parse_address(address)
    except ValueError:
        bad_flag("--metrics-port", f"is PORT or HOST:PORT, the port from 1 to 65535 (got {address!r})")
    store = open_store(site.database_url)  # open for the process's life: each scrape reads it
    try:
        serve_metrics(host, port, lambda: snapshot(site, store, wall_clock()).gauges())
    except OSError as exc:
        store.close()
        bad_flag("--metrics-port", f"cannot listen on {host}:{port} ({exc.strerror or exc})")


@click.command()
@pass_context
def status(c: Context) -> None:
    """The deployment at a glance: the clock, the workers, the queue, the oldest dispatch waiting.

    Example: publisher status --json
    """
    from publisher.dispatch.context import wall_clock
    from publisher.dispatch.health import snapshot
    from publisher.store.dispatches import open_store

    store = open_store(c.site.database_url)
    try:
        seen = snapshot(c.site, store, wall_clock())
    finally:
        store.close()
    c.emit(seen.text(), seen.as_json())
