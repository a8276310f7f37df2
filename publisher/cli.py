"""The `publisher` command: thin verbs over the library.

Every command takes `--site DIR` and `--json`. Exit 0 on success, 1 on a
failure while doing the work, 2 on bad input, each problem listed as
`path:line: field: message`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from publisher.config import CONFIG_FILE, Site, load_site
from publisher.errors import InvalidInput, Problem, PublisherError
from publisher.records import Record, load_records


class Context:
    def __init__(self, site_dir: Path, as_json: bool) -> None:
        self.site_dir = site_dir
        self.as_json = as_json
        self._site: Site | None = None

    @property
    def site(self) -> Site:
        if self._site is None:
            self._site = load_site(self.site_dir)
        return self._site

    def records(self, *, drafts: bool = False) -> list[Record]:
        return load_records(self.site.events, self.site.root, drafts=drafts)

    def emit(self, human: str, data: Any) -> None:
        if self.as_json:
            click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        elif human:
            click.echo(human)


class PublisherGroup(click.Group):
    """Turns the library's typed exceptions into messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInput as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            click.echo(f"Error: {len(exc.problems)} problem(s); nothing was changed.", err=True)
            sys.exit(2)
        except PublisherError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)


pass_context = click.make_pass_decorator(Context)


def parse_now(value: str | None) -> dt.datetime:
    """`--now T`: an ISO time with an offset; the current time when absent."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        _bad_flag("--now", f"is not an ISO date and time (got {value!r})")
    if parsed.tzinfo is None:
        _bad_flag("--now", f"needs a UTC offset, e.g. {value}+00:00 (got {value!r})")
    return parsed


def _bad_flag(flag: str, message: str) -> NoReturn:
    raise InvalidInput([Problem("command line", 1, flag, message)])


@click.group(cls=PublisherGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--site", "site_dir", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")
@click.version_option(package_name="publisher")
@click.pass_context
def cli(ctx: click.Context, site_dir: Path, as_json: bool) -> None:
    """Event records → feeds, newsletters and social posts, on a timeline."""
    ctx.obj = Context(site_dir, as_json)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_context
def init(c: Context, directory: Path) -> None:
    """Start a new site.  Example: publisher init my-site"""
    from publisher.scaffold import init_site

    written = init_site(directory)
    c.emit("\n".join(f"wrote {p}" for p in written), {"written": [str(p) for p in written]})


@cli.command()
@click.argument("title")
@click.option("--now", "now_text", help="Date the record as of this time (ISO, with offset).")
@pass_context
def new(c: Context, title: str, now_text: str | None) -> None:
    """Write a new record with today's date.  Example: publisher new "Report launch" """
    from publisher.scaffold import new_record

    path = new_record(c.site, title, parse_now(now_text))
    c.emit(f"wrote {path}", {"written": str(path)})


@cli.command()
@pass_context
def check(c: Context) -> None:
    """Validate records, config and templates; render everything in memory.  Example: publisher check"""
    from publisher.check import check_everything

    summary = check_everything(c.site)
    c.emit(f"ok: {summary['records']} records, {summary['outputs']} outputs render", {"ok": True, **summary})


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder (default: the site).")
@pass_context
def build(c: Context, out: Path | None) -> None:
    """Write feeds, newsletter issues and posts.  Example: publisher build --out public"""
    from publisher.build import build as run_build

    records = c.records()
    with _progress(c, len(records)) as progress:
        manifest = run_build(c.site, out, records=records, progress=progress)
    if c.as_json:
        c.emit("", manifest.as_json())
        return
    for output in manifest.written:
        click.echo(f"wrote {output.path}")
    unchanged = len(manifest.outputs) - len(manifest.written)
    click.echo(f"{len(records)} records → {len(manifest.written)} files written, {unchanged} unchanged, in {manifest.out}")


class _progress:
    """A progress bar on builds of more than a few hundred records (never with --json)."""

    def __init__(self, c: Context, total: int) -> None:
        self.enabled = total > 300 and not c.as_json and sys.stderr.isatty()
        self.bar: Any = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task("rendering", total=None)
        return lambda done, total: self.bar.update(task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def main() -> None:
    cli(prog_name="publisher")


if __name__ == "__main__":
    main()


__all__ = ["CONFIG_FILE", "cli", "main"]
