"""The per-record work of a build, run in worker processes (or in-process for small builds).

Two passes over the records that need work, so that nothing is written while
any input is bad:

1. `prepare`: parse each changed record file and render its posts, which is
   where a record's own text can turn out too long. No file is written.
2. `produce`: render each record's newsletter issue and write its files and
   posts, each only when its bytes changed.

Workers receive a `Job` once (the pool's initializer) and then lists of small
items; records travel pickled, rendered files never travel back.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from publisher.build_cache import FileInfo, FileStat, Source, digest, file_stat, now_ns, unchanged_since
from publisher.config import Settings
from publisher.errors import InvalidInput, Problem, relative
from publisher.records import Record, load_record
from publisher.templates import default_templates

# A newsletter issue file's name ends → (kind, format) in the manifest.
ISSUE_FILES = {
    ".html": ("issue", "html"),
    ".txt": ("issue", "text"),
    ".eml": ("issue", "eml"),
    ".ics": ("calendar", "ics"),
}


class Output(NamedTuple):
    """One file of a build, as listed by `build --json` (a named tuple: builds list 100,000 of them)."""

    path: str
    kind: str  # feed | issue | post | calendar
    format: str
    records: tuple[str, ...]
    network: str | None = None
    length: int | None = None
    limit: int | None = None
    digest: str = ""
    changed: bool = False

    def done(self, digest: str, *, changed: bool) -> Output:
        return self._replace(digest=digest, changed=changed)


Rendered = tuple[Output, bytes]
MANIFEST_SEPARATOR = ",\n  "  # between two files' lines in `build --json`


def file_json(o: Output) -> dict[str, Any]:
    """One file as `build --json` lists it."""
    if o.network is None:
        return {
            "path": o.path,
            "kind": o.kind,
            "format": o.format,
            "records": o.records,
            "digest": o.digest,
            "changed": o.changed,
        }
    return o._asdict()


def file_line(o: Output) -> str:
    return json.dumps(file_json(o), ensure_ascii=False)


def manifest_lines(outputs: Iterable[Output]) -> str:
    """The `--json` lines of files as a later build will list them when it leaves them as they are."""
    return MANIFEST_SEPARATOR.join(file_line(output._replace(changed=False)) for output in outputs)


def post_text(text: str, thread: Sequence[str]) -> str:
    """A post as a file: its text, then each thread part after a `---` line."""
    return "\n---\n".join((text, *thread)) + "\n"


def render_posts(record: Record, settings: Settings, templates: Path | None) -> list[Rendered]:
    """The record's post on every network, as files; InvalidInput when one does not fit."""
    from publisher.render import social

    rendered = []
    for post in social.render_posts(record, settings, templates):
        output = Output(
            f"posts/{post.network}/{record.id}.txt", "post", "text", (record.id,), post.network, post.length, post.limit
        )
        rendered.append((output, post_text(post.text, post.thread).encode("utf-8")))
    return rendered


def render_issue_files(record: Record, settings: Settings, templates: Path | None) -> list[Rendered]:
    """The record's newsletter issue as `build` writes it: .html, .txt, .eml and (with `starts`) .ics."""
    from publisher.render import message
    from publisher.render.email import render_issue

    try:
        issue = render_issue([record], settings, templates)
    except (jinja2.TemplateError, ValueError) as exc:
        problem = template_problem(exc, templates)
        if problem is None:
            raise
        raise InvalidInput([problem]) from None
    rendered = []
    for name, content in message.issue_files(issue, settings).items():
        kind, fmt = ISSUE_FILES[name[name.rindex(".") :]]
        rendered.append((Output(f"newsletters/{name}", kind, fmt, (record.id,)), content))
    return rendered


def render_record(record: Record, settings: Settings, templates: Path | None) -> list[Rendered]:
    """Every file of one record: its newsletter issue and its posts (raises InvalidInput)."""
    return [*render_issue_files(record, settings, templates), *render_posts(record, settings, templates)]


def template_problem(exc: BaseException, templates: Path | None) -> Problem | None:
    """A template's error as `path:line: template: message`, or None when it is not a template's."""
    root = templates.parent if templates is not None else None
    if isinstance(exc, jinja2.TemplateSyntaxError):
        path = exc.filename or exc.name or "template"
        return Problem(relative(Path(path), root), exc.lineno or 1, "template", exc.message or str(exc))
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_frame.f_code.co_name, tb.tb_lineno))
        tb = tb.tb_next
    folders = [str(f) for f in (templates, default_templates()) if f is not None]
    if isinstance(exc, jinja2.TemplateError):
        inside = [(name, line) for name, _, line in frames if any(name.startswith(f) for f in folders)]
        name, line = inside[-1] if inside else ("template", 1)
        return Problem(relative(Path(name), root), line, "template", str(exc))
    if any(function == "compile_mjml" for _, function, _ in frames):
        mjml = _template_path("issue.mjml", templates)
        return Problem(relative(mjml, root), 1, "template", f"MJML does not compile: {exc}")
    return None


def _template_path(name: str, templates: Path | None) -> Path:
    own = templates / name if templates is not None else None
    return own if own is not None and own.is_file() else default_templates() / name


WEB_TEMPLATES = "web/"  # the web side's pages: not rendered by a build


def check_templates(templates: Path | None) -> list[Problem]:
    """Every template a build can use, compiled: syntax errors show before anything is rendered."""
    from publisher.templates import environment

    env = environment(templates)
    problems = []
    for name in sorted(n for n in env.list_templates() if not n.startswith(WEB_TEMPLATES)):
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            problem = template_problem(exc, templates)
            if problem is not None:
                problems.append(problem)
    return problems


# --- the work of one build, shipped to every worker once --------------------------------------


@dataclass
class Job:
    """What every record of one build is rendered with."""

    root: Path
    events: Path
    out: Path
    settings: Settings
    templates: Path | None
    # Records whose outputs are present and were rendered from this key: no render needed.
    fresh: Mapping[str, str] = field(default_factory=dict)
    write: bool = True
    drafts: bool = False  # `check`: drafts' posts are checked too


_job: Job | None = None


def start(job: Job) -> None:
    """The pool's initializer: the job every later call works on."""
    global _job
    _job = job


def start_worker(job: Job) -> None:
    """The initializer of a worker process: Ctrl-C is for the build (it stops the pool), not for each worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.enable()  # the build turned it off for its own process; a worker makes and drops its renders' cycles
    start(job)
    from publisher.templates import environment

    # A worker lives for one build, which digested the templates as it started: no need to
    # look at each template file's time again for every issue (Jinja's auto_reload).
    environment(job.templates).auto_reload = False


def current() -> Job:
    assert _job is not None, "start(job) comes first"
    return _job


@dataclass(frozen=True, slots=True)
class Item:
    """A record for `prepare`: a file to parse (`name`), or a source with its record (or that pickled)."""

    shown: str
    name: str | None = None
    source: Source | None = None
    blob: bytes | None = None


@dataclass(slots=True)
class Prepared:
    name: str | None
    stat: FileStat | None
    read_at_ns: int
    source: Source | None
    record: Record | bytes | None  # pickled when it was parsed here
    posts: list[Rendered] | None  # None: nothing to render again
    problems: list[Problem]


def prepare(items: Sequence[Item]) -> list[Prepared]:
    """Pass 1: parse what changed, render the posts of what must be rendered again."""
    job = current()
    return [_prepare(item, job) for item in items]


def _prepare(item: Item, job: Job) -> Prepared:
    stat, read_at = None, now_ns()
    source, record = item.source, None
    if source is not None:
        record = source.record or (pickle.loads(item.blob) if item.blob is not None else None)
    if record is None:
        assert item.name is not None
        path = job.events / item.name
        stat = file_stat(str(path))
        try:
            data = path.read_bytes()
            record = load_record(path, job.root, data=data, shown=item.shown)
        except OSError as exc:
            problem = Problem(item.shown, 1, "file", f"cannot be read ({exc.strerror})")
            return Prepared(item.name, stat, read_at, None, None, None, [problem])
        except InvalidInput as exc:
            return Prepared(item.name, stat, read_at, None, None, None, exc.problems)
        source = Source.of(record, digest(item.shown, data), item.name)
        source.record = None  # it travels pickled, once
    assert source is not None
    blob = None if source.record is not None else item.blob or pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    posts = None
    if (source.status != "draft" or job.drafts) and job.fresh.get(source.id) != source.key:
        try:
            posts = render_posts(record, job.settings, job.templates)
        except InvalidInput as exc:
            return Prepared(item.name, stat, read_at, source, blob, None, exc.problems)
    return Prepared(item.name, stat, read_at, source, blob, posts, [])


@dataclass(frozen=True, slots=True)
class Work:
    """A record for `produce` (or that pickled), its posts from pass 1, and what the last build wrote for it."""

    id: str
    record: Record | bytes
    posts: list[Rendered]
    known: dict[str, FileInfo]


@dataclass(slots=True)
class Produced:
    id: str
    files: list[tuple[Output, FileInfo]]
    problems: list[Problem]
    lines: str = ""  # manifest_lines of the files, made here rather than in the build's own process


def produce(items: Sequence[Work]) -> list[Produced]:
    """Pass 2: render each record's issue; write its files (or, for `check`, only render them)."""
    job = current()
    done = []
    for work in items:
        record = work.record if isinstance(work.record, Record) else pickle.loads(work.record)
        try:
            rendered = render_issue_files(record, job.settings, job.templates) + work.posts
        except InvalidInput as exc:
            done.append(Produced(work.id, [], exc.problems))
            continue
        files = []
        for output, content in rendered:
            if job.write:
                changed, info = write_file(str(job.out / output.path), content, work.known.get(output.path))
            else:
                changed, info = False, (len(content), 0, digest(content))
            files.append((output.done(info[2], changed=changed), info))
        done.append(Produced(work.id, files, [], manifest_lines(output for output, _ in files)))
    return done


def write_file(target: str, content: bytes, known: FileInfo | None = None) -> tuple[bool, FileInfo]:
    """Write `content` to `target` unless it already holds exactly that; (written?, what is there now).

    `known` is what the last build wrote there: when the file still has its
    size and mtime and the digest matches, the file is not even read. A new
    file is written in place; an existing one is replaced atomically.
    """
    new_digest = digest(content)
    if known is not None and known[2] == new_digest and unchanged_since(known, file_stat(target)):
        return False, known
    try:
        return True, _create(target, content, new_digest)
    except FileExistsError:
        pass
    with open(target, "rb") as f:
        if f.read() == content:
            st = os.fstat(f.fileno())
            return False, (st.st_size, st.st_mtime_ns, new_digest)
    folder, _, name = target.rpartition("/")
    tmp = f"{folder}/.{name}.{os.getpid()}.tmp"
    info = _create(tmp, content, new_digest, exclusive=False)
    os.replace(tmp, target)
    return True, info


def _create(target: str, content: bytes, content_digest: str, *, exclusive: bool = True) -> FileInfo:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(target, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(target, flags, 0o666)
    try:  # plain os.write: a file object costs three more system calls per file
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return (st.st_size, st.st_mtime_ns, content_digest)
