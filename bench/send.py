"""Benchmark: one newsletter dispatch to N synthetic subscribers through a fast SMTP sink.

    python bench/send.py 10000 [--connections 4] [--database URL] [--profile]

Needs Postfix's ``smtp-sink`` (Debian: ``apt-get install postfix``), started here as
``smtp-sink -u nobody -c 127.0.0.1:PORT 1000`` (it must be run as root for ``-u``).

What it does:

1. a temporary copy of the example site, whose only timeline rule sends each
   record to the ``news`` list, with ``[email] connections`` as asked;
2. N subscribers inserted in bulk (`publisher.audience.subscribers.save`);
3. ``python -m publisher run --once --now T`` as a child process: the real
   command, start-up, plan and all. Its peak memory (max RSS) is read from
   the child's resource usage; the send rate from the ledger (first to last
   message marked sent);
4. the ceiling: a bare ``smtplib`` client sending one pre-built message of the
   same size over the same number of connections (threads) to the same sink,
   measured just before and just after the run (their mean is the ceiling: on a
   busy machine the two differ, and so does the ratio from run to run);
5. a stricter ceiling beside it: a bare client that pipelines MAIL, RCPT and
   DATA in one write (RFC 2920) as publisher does, with the message's wire
   form made once. smtplib's ``sendmail`` does neither, so publisher can pass
   the first ceiling; the second says how close it comes to the protocol's.

``--profile`` runs the dispatch in this process under cProfile instead, and
prints the top of the profile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from publisher.audience import subscribers  # noqa: E402  (after the path is set, for a run from a checkout)
from publisher.audience.rows import Incoming  # noqa: E402
from publisher.channels.mail_transport import smtp_payload  # noqa: E402
from publisher.site.config import load_site  # noqa: E402
from publisher.store.dispatches import open_store  # noqa: E402
from publisher.store.tables import deliveries  # noqa: E402

NOW = dt.datetime(2018, 2, 9, 17, 10, tzinfo=dt.UTC)  # 10 minutes after the Paris record's newsletter is due
RULE = '\n[[timeline]]\nwhen = "published"\nchannel = "email"\nlist = "news"\n'
SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_sink(port: int) -> subprocess.Popen[bytes]:
    sink_path = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink_path).exists():
        sys.exit("smtp-sink not found: apt-get install -y postfix (DEBIAN_FRONTEND=noninteractive)")
    command = [sink_path, "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"]
    sink = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    sys.exit("smtp-sink did not start")


def make_site(folder: Path, connections: int) -> Path:
    site = folder / "site"
    site.mkdir()
    for name in ("events", "media"):
        shutil.copytree(REPO / name, site / name)
    head = (REPO / "publisher.toml").read_text(encoding="utf-8").split("[[timeline]]", 1)[0]
    head = head.replace("[email]\n", f"[email]\nconnections = {connections}\n", 1)
    (site / "publisher.toml").write_text(head + RULE, encoding="utf-8")
    return site


def add_subscribers(site: Path, env: dict[str, str], count: int) -> float:
    started = time.perf_counter()
    store = open_store(load_site(site, env).database_url)
    try:
        for first in range(0, count, 10_000):
            people = [
                Incoming(f"reader{n:07d}@example.org", f"Reader {n}", None, ("news",))
                for n in range(first, min(count, first + 10_000))
            ]
            subscribers.save(store, people, NOW - dt.timedelta(days=30), "bench")
    finally:
        store.close()
    return time.perf_counter() - started


def send_rate(site: Path, env: dict[str, str]) -> tuple[int, float]:
    """(messages sent, seconds from the first mark to the last) from the ledger."""
    store = open_store(load_site(site, env).database_url)
    try:
        (dispatch,) = store.list_dispatches(channel="email", states=["sent"])
        column = deliveries.c.sent_at
        query = sa.select(sa.func.min(column), sa.func.max(column), sa.func.count()).where(
            deliveries.c.dispatch_id == dispatch.id, deliveries.c.state == "sent"
        )
        with store.read() as connection:
            low, high, sent = connection.execute(query).one()
    finally:
        store.close()
    return int(sent), (high - low).total_seconds()


def sample_message(site: Path, env: dict[str, str]) -> bytes:
    """One real message of this dispatch, for the ceiling run: the same size on the wire."""
    from publisher.render.email import render_issue
    from publisher.render.letters import Letters
    from publisher.site.records import load_records

    loaded = load_site(site, env)
    record = next(r for r in load_records(loaded.events, loaded.root) if r.id.startswith("2018-02-09"))
    issue = render_issue([record], loaded.settings, None, list_name="news")
    return Letters(loaded, issue, "news", "ceiling", SECRET).letter("reader0000000@example.org", "Reader 0", NOW).data


def ceiling(port: int, message: bytes, count: int, connections: int) -> float:
    """Messages a second a bare smtplib client reaches with one pre-built message over `connections` threads."""

    def work(share: int, offset: int) -> None:
        client = smtplib.SMTP("127.0.0.1", port)
        for n in range(share):
            client.sendmail("news@cepei.example.org", [f"r{offset + n}@example.org"], message)
        client.quit()

    return _timed(work, count, connections)


def ceiling_pipelined(port: int, message: bytes, count: int, connections: int) -> float:
    """The same, for a bare client that pipelines MAIL, RCPT and DATA (RFC 2920) as publisher does,
    with the message's wire form (dots, CRLF) made once: the stricter ceiling."""
    payload = smtp_payload(message)

    def work(share: int, offset: int) -> None:
        client = smtplib.SMTP("127.0.0.1", port)
        client.ehlo()
        assert client.has_extn("pipelining")
        for n in range(share):
            client.send(f"MAIL FROM:<news@cepei.example.org>\r\nRCPT TO:<r{offset + n}@example.org>\r\nDATA\r\n")
            replies = [client.getreply()[0] for _ in range(3)]
            assert replies == [250, 250, 354], replies
            client.send(payload)
            assert client.getreply()[0] == 250
        client.quit()

    return _timed(work, count, connections)


def _timed(work: Callable[[int, int], None], count: int, connections: int) -> float:
    share = count // connections
    threads = [threading.Thread(target=work, args=(share, i * share)) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return share * connections / (time.perf_counter() - started)


def run_child(site: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Run the dispatch as `python -m publisher run --once`; (wall seconds, CPU seconds, peak RSS in MB)."""
    command = [sys.executable, "-m", "publisher", "--site", str(site), "run", "--once", "--now", NOW.isoformat()]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    out = child.stdout.read().decode() if child.stdout else ""
    err = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"the run failed:\n{out}\n{err}")
    print("  " + out.strip().replace("\n", "\n  "))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # kilobytes on Linux


def run_profiled(site: Path, env: dict[str, str]) -> None:
    import cProfile
    import pstats

    from publisher.dispatch.clock import run_once
    from publisher.dispatch.runner import shifted_clock

    loaded = load_site(site, env)
    profile = cProfile.Profile()
    profile.enable()
    run_once(loaded, NOW, shifted_clock(NOW))
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("count", type=int, nargs="?", default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--database", help="a database URL (default: the site's SQLite file)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    port = free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as folder:
            site = make_site(Path(folder), args.connections)
            env = {key: value for key, value in os.environ.items() if not key.startswith("PUBLISHER_")}
            env.update(PUBLISHER_EMAIL_URL=f"smtp://127.0.0.1:{port}", PUBLISHER_SECRET=SECRET)
            if args.database:
                env["PUBLISHER_DATABASE_URL"] = args.database
            inserted = add_subscribers(site, env, args.count)
            print(f"{args.count:,} subscribers inserted in {inserted:.1f} s; {args.connections} connections")
            if args.profile:
                run_profiled(site, env)
                return
            message = sample_message(site, env)
            share = min(args.count, 20_000)
            before = ceiling(port, message, share, args.connections)
            piped_before = ceiling_pipelined(port, message, share, args.connections)
            wall, cpu, rss = run_child(site, env)
            sent, span = send_rate(site, env)
            piped_after = ceiling_pipelined(port, message, share, args.connections)
            after = ceiling(port, message, share, args.connections)
            top = (before + after) / 2
            piped = (piped_before + piped_after) / 2
    finally:
        sink.terminate()
        sink.wait()
    rate = sent / span if span > 0 else float("nan")
    print(f"message size       {len(message):,} bytes")
    print(f"dispatch           {sent:,} messages in {span:.1f} s of sending = {rate:,.0f} messages/s")
    print(f"whole command      {wall:.1f} s (start-up, plan, recipients fixed, send) = {sent / wall:,.0f} messages/s")
    print(f"CPU of the command {cpu:.1f} s ({cpu / wall:.0%} of its wall time; {cpu / sent * 1e6:.0f} µs a message)")
    print(
        f"ceiling            {top:,.0f} messages/s (bare smtplib, one pre-built message, same connections;"
        f" {before:,.0f} before the run, {after:,.0f} after)"
    )
    print(f"ratio              {rate / top:.0%} of the ceiling")
    print(
        f"pipelined ceiling  {piped:,.0f} messages/s (a bare client pipelining MAIL/RCPT/DATA, as publisher does;"
        f" {piped_before:,.0f} before, {piped_after:,.0f} after): {rate / piped:.0%} of it"
    )
    print(f"peak memory        {rss:.0f} MB (max RSS of the run)")


if __name__ == "__main__":
    main()
