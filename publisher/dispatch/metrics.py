"""Prometheus metrics of `publisher run` and `publisher worker` (``--metrics-port``), through prometheus_client.

Counted as it happens, per process: ``publisher_messages_total{channel,
outcome}`` (outcome ``sent`` or ``failed``: each email recipient answered for,
each post or feed written). Read from the database and the broker at each
scrape, the same from any process (`publisher.dispatch.health.snapshot`):
``publisher_dispatch_lag_seconds`` (how long past its due time the oldest due
and unsent dispatch is; 0 when none), ``publisher_queue_depth`` (tasks
waiting), ``publisher_workers_alive``, ``publisher_clock_heartbeat_age_seconds``.

Until `serve_metrics` is called nothing is recorded and prometheus_client is
not imported: it comes with the scale extra, needed only with the option.
The web side's ``/healthz`` is left to the web process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from publisher.site import extras

# The gauges read at each scrape: name → help (their values come from `Snapshot.gauges`).
GAUGES = {
    "publisher_dispatch_lag_seconds": "How long past its due time the oldest due and unsent dispatch is (0: none).",
    "publisher_queue_depth": "Delivery tasks waiting on the queue.",
    "publisher_workers_alive": "Workers that showed they were alive.",
    "publisher_clock_heartbeat_age_seconds": "Age of the clock's last heartbeat.",
}

log = logging.getLogger("publisher.dispatch.metrics")
_LOCK = threading.Lock()
_MESSAGES: Any = None  # the Counter, once metrics are served


def count(channel: str, outcome: str, n: int = 1) -> None:
    """Count `n` messages of `channel` with `outcome` (``sent`` or ``failed``); nothing unless metrics are served."""
    if _MESSAGES is not None and n > 0:
        _MESSAGES.labels(channel=channel, outcome=outcome).inc(n)


class _Gauges:
    """A prometheus_client collector: one `read()` per scrape (name → value; a gauge left out is unknown)."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            values = self.read()
        except Exception:  # a scrape must answer: the counters still do
            log.warning("could not read the deployment's state for metrics", exc_info=True)
            return
        for name, text in GAUGES.items():
            if name in values:
                yield GaugeMetricFamily(name, text, value=values[name])


def parse_address(text: str) -> tuple[str, int]:
    """``PORT`` (on 127.0.0.1) or ``HOST:PORT``; ValueError when it is neither."""
    host, _, port = text.rpartition(":")
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"{number} is not a port number")
    return (host.strip("[]") or "127.0.0.1"), number


def serve_metrics(host: str, port: int, read: Callable[[], dict[str, float]]) -> Any:
    """Serve /metrics on `host`:`port` from a thread; returns the server (OSError when the port is taken)."""
    global _MESSAGES
    extras.require(("prometheus_client",), "--metrics-port")
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    with _LOCK:
        registry = CollectorRegistry()  # not the process-wide default: a test may start several
        registry.register(_Gauges(read))
        messages = Counter("publisher_messages", "Messages answered for.", ["channel", "outcome"], registry=registry)
        server, _thread = start_http_server(port, addr=host, registry=registry)
        _MESSAGES = messages
    return server
