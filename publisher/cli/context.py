"""What every `publisher` command shares: the context (site, --json), exit codes, `--now`.

Typed exceptions from the library become messages and exit codes here, and
only here: 2 for bad input (each problem as `path:line: field: message`), the
error's own code otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import msgspec

from publisher.errors import InvalidInput, Problem, PublisherError
from publisher.site.config import Site, load_site
from publisher.site.rules import FIRST_YEAR, LAST_YEAR

if TYPE_CHECKING:
    from publisher.site.records import Record


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

    def kept_site(self) -> Site:
        """The site, its settings as the last build validated them while `publisher.toml` is unchanged
        (`publisher build`: a rebuild then imports no pydantic; `publisher.site.config`)."""
        if self._site is None:
            self._site = load_site(self.site_dir, kept=True)
        return self._site

    @property
    def shows_progress(self) -> bool:
        """Progress bars are for a person at a terminal: never with --json, never off a terminal."""
        return not self.as_json and sys.stderr.isatty()

    def records(self, *, drafts: bool = False) -> list[Record]:
        from publisher.site.records import load_records  # pydantic: only for the commands that validate

        return load_records(self.site.events, self.site.root, drafts=drafts, keep=True)

    def emit(self, human: str, data: Any) -> None:
        if self.as_json:
            click.echo(indented_json(data))
        elif human:
            click.echo(human)


def indented_json(data: Any) -> str:
    """`json.dumps(data, indent=2, ensure_ascii=False, default=str)`, byte for byte, in a fraction of the time.

    The standard library's C encoder runs only without `indent` (`plan --json` lists 6,000 dispatches): the
    compact text it makes is laid out by msgspec, which keeps every string and number as written. A text
    msgspec will not read (a NaN, which the standard library writes) is laid out by the standard library.
    """
    compact = json.dumps(data, ensure_ascii=False, default=str)
    try:
        return msgspec.json.format(compact, indent=2)
    except msgspec.DecodeError:
        return json.dumps(data, indent=2, ensure_ascii=False, default=str)


class PublisherGroup(click.Group):
    """Turns the library's typed exceptions into messages and exit codes (JSON on stdout with `--json`)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInput as exc:
            if _as_json(ctx):
                problems = [msgspec.structs.asdict(p) for p in exc.problems]
                click.echo(json.dumps({"problems": problems}, indent=2, ensure_ascii=False))
                sys.exit(2)
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            click.echo(f"Error: {len(exc.problems)} problem(s); nothing was changed.", err=True)
            sys.exit(2)
        except PublisherError as exc:
            if _as_json(ctx):
                click.echo(json.dumps({"error": str(exc)}, indent=2, ensure_ascii=False))
            else:
                click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # the last net: a file the library could not read or write, named, never a traceback
            where = f"{exc.filename}: " if exc.filename else ""
            if _as_json(ctx):
                click.echo(json.dumps({"error": f"{where}{exc.strerror or exc}"}, indent=2, ensure_ascii=False))
            else:
                click.echo(f"Error: {where}{exc.strerror or exc}", err=True)
            sys.exit(1)


def _as_json(ctx: click.Context) -> bool:
    return isinstance(ctx.obj, Context) and ctx.obj.as_json


class SharedOption(click.Option):
    """`--site DIR` or `--json` given after a command: it sets the Context the group made, as if given before."""


def _set_site(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.find_object(Context).site_dir = value  # type: ignore[union-attr]  # the group always makes one


def _set_json(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(Context).as_json = True  # type: ignore[union-attr]  # the group always makes one


def with_shared_options(command: click.Command) -> None:
    """Give `command` (and, for a group, each of its commands) the group's `--site DIR` and `--json`.

    The README promises both before or after the command (`publisher build --site D --json`). They are
    parsed after the group's own, so the later one wins.
    """
    site = click.Path(file_okay=False, path_type=Path)
    command.params.append(
        SharedOption(["--site", "site_dir"], type=site, expose_value=False, callback=_set_site, help="The site folder.")
    )
    command.params.append(
        SharedOption(
            ["--json"], is_flag=True, expose_value=False, callback=_set_json, help="A machine-readable result."
        )
    )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_shared_options(sub)


pass_context = click.make_pass_decorator(Context)


def parse_now(value: str | None) -> dt.datetime:
    """`--now T`: an ISO time with an offset; the current time when absent."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        bad_flag("--now", f"is not an ISO date and time (got {value!r})")
    if parsed.tzinfo is None:
        bad_flag("--now", f"needs a UTC offset, e.g. {parsed:%Y-%m-%dT%H:%M}+00:00 (got {value!r})")
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        bad_flag("--now", f"is out of the years publisher can plan, {FIRST_YEAR} to {LAST_YEAR} (got {value!r})")
    return parsed


def bad_flag(flag: str, message: str) -> NoReturn:
    raise InvalidInput([Problem("command line", 1, flag, message)])
