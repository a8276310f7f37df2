"""The `publisher` command: thin verbs over the library.

Every command takes `--site DIR` and `--json`. Exit 0 on success, 1 on a
failure while doing the work, 2 on bad input, each problem listed as
`path:line: field: message`.
"""

from __future__ import annotations

import errno
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from publisher.cli.bounces import bounces_command
from publisher.cli.context import Context, PublisherGroup, bad_flag, parse_now, pass_context, with_shared_options
from publisher.cli.ops import METRICS_HELP, start_metrics, status
from publisher.cli.outbox import outbox_command
from publisher.cli.progress import ProgressBars
from publisher.cli.subscribers import subscribers_group
from publisher.errors import WorkFailed
from publisher.site.config import CONFIG_FILE


@click.group(cls=PublisherGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--site", "site_dir", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")
@click.version_option(package_name="publisher")
@click.pass_context
def cli(ctx: click.Context, site_dir: Path, as_json: bool) -> None:
    """Event records → feeds, newsletters and social posts, on a timeline."""
    ctx.obj = Context(site_dir, as_json)


cli.add_command(subscribers_group)
cli.add_command(bounces_command)
cli.add_command(outbox_command)
cli.add_command(status)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--now", "now_text", help="Date the sample record as of this time (ISO, with offset).")
@pass_context
def init(c: Context, directory: Path, now_text: str | None) -> None:
    """Start a new site.  Example: publisher init my-site"""
    from publisher.site.scaffold import init_site

    now = parse_now(now_text)
    blocking = next((parent for parent in (directory, *directory.parents) if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        bad_flag("DIRECTORY", f"{blocking} is a file, not a folder: choose another place for the site")
    written = init_site(directory, now)
    c.emit("\n".join(f"wrote {p}" for p in written), {"written": [str(p) for p in written]})


@cli.command()
@click.argument("title")
@click.option("--now", "now_text", help="Date the record as of this time (ISO, with offset).")
@pass_context
def new(c: Context, title: str, now_text: str | None) -> None:
    """Write a new record with today's date.  Example: publisher new "Report launch" """
    from publisher.site.scaffold import new_record

    path = new_record(c.site, title, parse_now(now_text))
    c.emit(f"wrote {path}", {"written": str(path)})


@cli.command()
@click.option("--all", "every", is_flag=True, help="Render every record's issue and posts, not only what build writes.")
@pass_context
def check(c: Context, every: bool) -> None:
    """Validate records, config and templates; render in memory what build writes.  Example: publisher check"""
    from publisher.build.check import check_everything

    with ProgressBars(c.shows_progress) as bars:
        summary = check_everything(c.site, bars.for_build(), now=parse_now(None), every=every)
    for warning in summary.get("warnings", ()):
        click.echo(f"warning: {warning}", err=True)
    drafts = f"{summary['drafts']} draft{'s' if summary['drafts'] != 1 else ''}"
    c.emit(f"ok: {summary['records']} records ({drafts}), {summary['outputs']} outputs render", {"ok": True, **summary})


WAITING = "another build of this site is running: waiting for it to end"


@contextmanager
def _ending_the_process() -> Iterator[None]:
    """No garbage collected while a command runs after which the process ends (`build`), and every object
    frozen once it is done, so that the exit's last collection walks none of them (10 ms of a 0.2 s rebuild at
    10,000 records) to free nothing the exit does not: nor the build's own objects, which `build` lets go as
    one reference cycle rather than one by one (8 ms more). Files are written and closed by then
    (`publisher.site.files`, without file objects), and the output streams are flushed at exit either way.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder (default: the site).")
@click.option("--all", "every", is_flag=True, help="Write every record's issue and posts, not only the previews.")
@click.option("--now", "now_text", help="Feeds show what is published by this time (ISO, with offset; default: now).")
@click.option("--verbose", "-v", is_flag=True, help="List every file written or removed, not only the counts.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but warnings and errors.")
@pass_context
def build(c: Context, out: Path | None, every: bool, now_text: str | None, verbose: bool, quiet: bool) -> None:
    """Write feeds, newsletter issues and posts.  Example: publisher build --out public"""
    if verbose and quiet:
        bad_flag("--quiet", "cannot be given with --verbose")
    with _ending_the_process():
        from publisher.build.builder import build as run_build

        now = parse_now(now_text)
        if out is not None:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                bad_flag("--out", f"cannot be made ({exc.strerror or exc}): {out}")
        with ProgressBars(c.shows_progress and not quiet) as bars:
            waiting = None if quiet else lambda: click.echo(WAITING, err=True)
            manifest = run_build(c.kept_site(), out, progress=bars.for_build(), now=now, every=every, waiting=waiting)
        if c.as_json:
            click.echo(manifest.to_json())
        elif not quiet:
            click.echo("\n".join(manifest.report(verbose=verbose)))
        if manifest.images:  # the records' remote images, fetched once ahead of their posts
            from publisher.build.images import fetch_images

            for warning in fetch_images(c.kept_site(), manifest.images, revalidate=False):
                click.echo(f"warning: {warning}", err=True)


@cli.command()
@click.option("--now", "now_text", help="Show the plan as of this time (ISO, with offset).")
@pass_context
def plan(c: Context, now_text: str | None) -> None:
    """The timeline: each dispatch's id, due time, channel, records and state.

    Example: publisher plan --now 2018-02-09T09:00+01:00
    """
    from publisher.dispatch.status import plan_lines, render_lines, timeline_records
    from publisher.store.dispatches import open_store

    now = parse_now(now_text)
    store = open_store(c.site.database_url)
    try:
        lines = plan_lines(c.site, store, timeline_records(c.site), now)
    finally:
        store.close()
    if c.as_json:  # only the form that is printed is made: each takes a while at 6,000 lines
        c.emit("", {"now": now.isoformat(), "dispatches": [line.as_json() for line in lines]})
    else:
        c.emit(render_lines(lines), None)


@cli.command()
@click.option("--once", is_flag=True, help="Dispatch what is due at --now (default: now) and exit.")
@click.option("--now", "now_text", help="The time to act as (ISO, with offset); the clock moves on from it.")
@click.option("--standby", is_flag=True, help="If another clock holds the database, wait and take over when it dies.")
@click.option("--metrics-port", "metrics", help=METRICS_HELP)
@pass_context
def run(c: Context, once: bool, now_text: str | None, standby: bool, metrics: str | None) -> None:
    """The scheduler: dispatches what is due.  Example: publisher run --once"""
    import time

    from publisher.dispatch.clock import run_forever, run_once
    from publisher.dispatch.runner import shifted_clock
    from publisher.dispatch.status import outcome_line

    now = parse_now(now_text)
    clock = shifted_clock(now)
    started = time.monotonic()
    outcomes: list[Any] = []

    def report(outcome: Any) -> None:
        outcomes.append(outcome)
        if not c.as_json:
            click.echo(outcome_line(outcome))
        if outcome.error:
            click.echo(f"Error: dispatch {outcome.dispatch_id} ({outcome.channel}): {outcome.error}", err=True)

    if once and standby:
        bad_flag("--standby", "is for the running clock: `run --once` acts now or not at all")

    def say(text: str) -> None:
        click.echo(f"publisher run: {text}", err=True)

    with ProgressBars(c.shows_progress) as bars:
        progress = bars.for_send()
        if not once:
            start_metrics(c.site, metrics)
            click.echo(f"publisher run: clock started for {c.site.root} (Ctrl-C or SIGTERM to stop)", err=True)
            run_forever(c.site, clock, on_outcome=report, on_progress=progress, standby=standby, say=say)
            return
        run_once(c.site, now, clock, on_outcome=report, on_progress=progress)
    from publisher.site.rules import NETWORKS

    sent = sum(o.sent_now for o in outcomes if o.channel == "email")
    posts = sum(1 for o in outcomes if o.channel in NETWORKS and o.state == "sent")  # one post (or thread) each
    failed = sum(1 for o in outcomes if o.error or o.state in ("failed", "unknown"))
    skipped = sum(1 for o in outcomes if o.state == "skipped")
    elapsed = time.monotonic() - started
    rate = sent / elapsed if elapsed > 0 else 0.0
    summary = (
        f"{len(outcomes)} dispatches: {sent} messages sent, {posts} posts sent, {failed} failed, {skipped} skipped "
        f"in {elapsed:.1f} s ({rate:.0f}/s)"
    )
    data = {"dispatches": [vars(o) for o in outcomes], "sent": sent, "posts": posts, "failed": failed}
    data["skipped"] = skipped
    c.emit(summary, data)
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("issue")
@click.option("--to", "address", required=True, help="The one address to send the test to.")
@click.option("--now", "now_text", help="Date the message as of this time (ISO, with offset).")
@pass_context
def send(c: Context, issue: str, address: str, now_text: str | None) -> None:
    """A test send of one newsletter issue (a record id) to one address, outside the ledger.

    Example: publisher send 2018-02-09-paris --to me@example.org
    """
    from publisher.audience.rows import normalise_email
    from publisher.dispatch.email import send_test_issue
    from publisher.render.email import render_issue

    try:
        address = normalise_email(address)
    except ValueError as exc:
        bad_flag("--to", str(exc))
    records = {r.id: r for r in c.records()}
    if issue not in records:
        bad_flag("ISSUE", f"no record with id {issue!r} (see `publisher build --json` for ids)")
    rendered = render_issue([records[issue]], c.site.settings, c.site.template_folder)
    result = send_test_issue(c.site, rendered, address, parse_now(now_text))
    if not result.sent:
        raise WorkFailed(f"the test message to {address} was not accepted: {result.code} {result.text}")
    c.emit(f"test message sent to {address} ({result.message_id})", {"sent": True, "to": address})


@cli.command()
@click.argument("dispatch_id")
@click.option("--failed", "failed_only", is_flag=True, required=True, help="Retry only the recipients that failed.")
@click.option("--now", "now_text", help="The time to act as (ISO, with offset).")
@pass_context
def resend(c: Context, dispatch_id: str, failed_only: bool, now_text: str | None) -> None:
    """Send a dispatch again to its failed recipients only.  Example: publisher resend 3f2a9c1d0b7e6a54 --failed"""
    from publisher.dispatch.runner import resend_failed, shifted_clock
    from publisher.dispatch.status import open_runner, outcome_line
    from publisher.store.dispatches import open_store

    now = parse_now(now_text)
    store = open_store(c.site.database_url)
    try:
        runner = open_runner(c.site, store, now)
        runner.clock = shifted_clock(now)
        reset, outcome = resend_failed(runner, dispatch_id)
    finally:
        store.close()
    c.emit(f"{reset} failed recipients retried\n{outcome_line(outcome)}", {"reset": reset, "outcome": vars(outcome)})
    if outcome.error:
        raise WorkFailed(f"dispatch {outcome.dispatch_id} ({outcome.channel}): {outcome.error}")


@cli.command()
@click.argument("dispatch_id")
@click.option("--now", "now_text", help="The time to act as (ISO, with offset).")
@pass_context
def approve(c: Context, dispatch_id: str, now_text: str | None) -> None:
    """Approve a dispatch held for review.  Example: publisher approve 3f2a9c1d0b7e6a54"""
    from publisher.dispatch.status import approve as approve_dispatch
    from publisher.store.dispatches import open_store

    now = parse_now(now_text)
    store = open_store(c.site.database_url)
    try:
        row, approved = approve_dispatch(c.site, store, dispatch_id, now)
    finally:
        store.close()
    if row is None:
        bad_flag("DISPATCH", f"no dispatch {dispatch_id!r} (see `publisher plan`)")
    if not approved:
        bad_flag("DISPATCH", f"{dispatch_id} is {row.state.replace('_', ' ')}, not waiting for review")
    c.emit(f"approved {dispatch_id}: it goes out at its due time", {"approved": dispatch_id})


@cli.command()
@click.argument("dispatch_id")
@click.option("--yes", is_flag=True, help="Release without asking.")
@click.option("--now", "now_text", help="The time to act as (ISO, with offset).")
@pass_context
def release(c: Context, dispatch_id: str, yes: bool, now_text: str | None) -> None:
    """Send on purpose a dispatch skipped as too late (at the next run).  Example: publisher release 3f2a9c1d0b7e6a54"""
    from publisher.dispatch.release import late_dispatch
    from publisher.dispatch.release import release as release_dispatch
    from publisher.dispatch.status import open_runner
    from publisher.store.dispatches import open_store

    now = parse_now(now_text)
    store = open_store(c.site.database_url)
    try:
        runner = open_runner(c.site, store, now)
        d, why = late_dispatch(runner, dispatch_id, now)
        what = f"{dispatch_id} ({d.channel} {d.list or ''}, {', '.join(d.record_ids)})".replace(" ,", ",")
        if not yes:
            click.confirm(f"{what} is {why}. Send it anyway?", abort=True, err=True)
        release_dispatch(runner, d, now)
    finally:
        store.close()
    c.emit(f"released {what}: it goes out at the next run", {"released": dispatch_id, "late": why})


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@pass_context
def serve(c: Context, host: str, port: int) -> None:
    """The web side: feeds, unsubscribe, subscribe, the timeline.  Example: publisher serve --port 8080"""
    from publisher.web.server import serve as serve_site

    if not 0 <= port <= 65535:
        bad_flag("--port", f"is a port number from 0 to 65535 (got {port})")
    site = c.site
    try:
        serve_site(site, host, port)
    except OSError as exc:  # the port is taken, the host is not this machine's: the listening socket never opened
        bad_flag(
            "--port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "--host",
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
        )


@cli.command()
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64), help="Tasks run at once.")
@click.option("--queue-url", help="The broker to take work from (default: PUBLISHER_QUEUE_URL, else [queue] url).")
@click.option("--metrics-port", "metrics", help=METRICS_HELP)
@pass_context
def worker(c: Context, concurrency: int, queue_url: str | None, metrics: str | None) -> None:
    """A delivery worker for scale-out: sends what `publisher run` puts on the queue.

    Example: PUBLISHER_QUEUE_URL=redis://127.0.0.1:6379/0 publisher worker --concurrency 4
    """
    from publisher.dispatch.queue import require_queue
    from publisher.dispatch.worker import run_worker

    config = require_queue(c.site, queue_url)
    start_metrics(c.site, metrics)
    click.echo(f"publisher worker: taking dispatches from {config.name!r} at {config.shown}", err=True)
    sys.exit(run_worker(c.site, config, concurrency))


for _command in cli.commands.values():
    with_shared_options(_command)


def main() -> None:
    cli(prog_name="publisher")


if __name__ == "__main__":
    main()


__all__ = ["CONFIG_FILE", "cli", "main"]
