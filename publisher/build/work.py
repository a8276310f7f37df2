"""The per-record work of a build, run in worker processes (or in-process for small builds).

Two passes over the records that need work, so that nothing is written while
any input is bad:

1. `prepare`: parse each changed record file and render its posts, which is
   where a record's own text can turn out too long. No file is written.
2. `produce`: render each record's newsletter issue and write its files and
   posts, each only when its bytes changed.

Workers receive a `Job` once (the pool's initializer) and then lists of small
items; records travel as JSON (`record_blob`), rendered files never travel back.
"""

from __future__ import annotations

import gc
import json
import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from publisher.build.cache import Source, now_ns
from publisher.build.stored import journal, record_blob, record_of
from publisher.errors import InvalidInput, Problem, relative
from publisher.site.files import FileInfo, FileStat, digest, file_stat, read_file, write_file
from publisher.site.templates import default_templates

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from publisher.render.email import Issue
    from publisher.site.config import Site
    from publisher.site.plain import PlainRecord
    from publisher.site.records import Record
    from publisher.site.settings import Settings

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
        """`_replace(digest=, changed=)`, which costs a few times more (builds make 60,000 of them)."""
        return Output(*self[:7], digest, changed)


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


_JSON = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(..., ensure_ascii=False) makes anew each call
_STRING: Callable[[str], str] = json.encoder.encode_basestring  # how that encoder writes a string (in C)


def file_line(o: Output) -> str:
    """`_JSON.encode(file_json(o))`, written field by field: a build lists 60,000 files, the encoder costs more."""
    records = ", ".join([_STRING(id) for id in o.records])
    head = (
        f'{{"path": {_STRING(o.path)}, "kind": {_STRING(o.kind)}, "format": {_STRING(o.format)}, "records": [{records}]'
    )
    tail = f'"digest": {_STRING(o.digest)}, "changed": {"true" if o.changed else "false"}}}'
    if o.network is None:
        return f"{head}, {tail}"
    length = "null" if o.length is None else int.__repr__(o.length)
    limit = "null" if o.limit is None else int.__repr__(o.limit)
    return f'{head}, "network": {_STRING(o.network)}, "length": {length}, "limit": {limit}, {tail}'


def manifest_lines(outputs: Iterable[Output]) -> str:
    """The `--json` lines of files as a later build will list them when it leaves them as they are."""
    return MANIFEST_SEPARATOR.join(file_line(output.done(output.digest, changed=False)) for output in outputs)


def post_text(text: str, thread: Sequence[str]) -> str:
    """A post as a file: its text, then each thread part after a `---` line."""
    return "\n---\n".join((text, *thread)) + "\n"


def render_post_files(record: Record, settings: Settings, templates: Path | None) -> list[Rendered]:
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
    import jinja2  # here, as in the functions below: a rebuild that renders nothing never loads Jinja

    from publisher.render.email import render_issue

    try:
        issue = render_issue([record], settings, templates)
    except (jinja2.TemplateError, ValueError) as exc:
        problem = template_problem(exc, templates)
        if problem is None:
            raise
        raise InvalidInput([problem]) from None
    return _issue_files(issue, settings)


def render_issues_files(
    records: Sequence[Record], settings: Settings, templates: Path | None
) -> list[list[Rendered] | InvalidInput]:
    """Each record's `render_issue_files`, or the InvalidInput it raises; rendered a stage at a time."""
    from publisher.render.email import render_single_issues

    try:
        issues = render_single_issues(records, settings, templates)
    except Exception:  # one by one, so that each record gets its own result (or raises its own error)
        results: list[list[Rendered] | InvalidInput] = []
        for record in records:
            try:
                results.append(render_issue_files(record, settings, templates))
            except InvalidInput as exc:
                results.append(exc)
        return results
    return [_issue_files(issue, settings) for issue in issues]


def _issue_files(issue: Issue, settings: Settings) -> list[Rendered]:
    from publisher.render import message

    rendered = []
    for name, content in message.issue_files(issue, settings).items():
        kind, fmt = ISSUE_FILES[name[name.rindex(".") :]]
        rendered.append((Output(f"newsletters/{name}", kind, fmt, issue.record_ids), content))
    return rendered


def template_problem(exc: BaseException, templates: Path | None) -> Problem | None:
    """A template's error as `path:line: template: message`, or None when it is not a template's."""
    import jinja2

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
    import jinja2

    from publisher.site.templates import environment

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


class Job(msgspec.Struct):
    """What every record of one build is rendered with."""

    root: Path
    events: Path
    out: Path
    site: Site  # its settings validated, when they were kept, only once a record is rendered
    templates: Path | None
    # Records whose outputs are present and were rendered from this key: no render needed.
    fresh: Mapping[str, str] = msgspec.field(default_factory=dict)
    write: bool = True
    drafts: bool = False  # `check`: drafts' posts are checked too
    journal: str | None = None  # where the build notes what it is about to write (`stored.journal`)

    @property
    def settings(self) -> Settings:
        return self.site.settings


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
    from publisher.site.templates import environment

    # A worker lives for one build, which digested the templates as it started: no need to
    # look at each template file's time again for every issue (Jinja's auto_reload).
    environment(job.templates).auto_reload = False


def current() -> Job:
    assert _job is not None, "start(job) comes first"
    return _job


class Item(msgspec.Struct, frozen=True):
    """A record for `prepare`: a file to parse (`name`), or a source with its `record_blob` (or, given to the
    build, the record itself).

    `posts`: whether to render its posts too (those of a record whose files
    are there from the same key are not rendered again).
    """

    shown: str
    name: str | None = None
    source: Source | None = None
    blob: str | None = None
    record: Record | None = None
    posts: bool = True


class Prepared(msgspec.Struct):
    name: str | None
    stat: FileStat | None
    read_at_ns: int
    source: Source | None
    record: Record | str | None  # its `record_blob` when it was parsed here
    posts: list[Rendered] | None  # None: nothing to render again
    problems: list[Problem]


def prepare(items: Sequence[Item]) -> list[Prepared]:
    """Pass 1: parse what changed, render the posts of what must be rendered again.

    A stage at a time (every file parsed, then every record's posts): each
    stage's code stays in the processor's caches.
    """
    job = current()
    parsed = [_parse(item, job) for item in items]
    for item, (prepared, record) in zip(items, parsed, strict=True):
        if prepared.source is not None and item.posts:
            _add_posts(prepared, record, job)
    return [prepared for prepared, _ in parsed]


def _parse(item: Item, job: Job) -> tuple[Prepared, Record | None]:
    """What pass 1 tells of the item so far (its record parsed from its file when it has none), and its record
    when one was made here (None for a file the quick check took: its blob is made into one if it renders)."""
    stat, read_at = None, now_ns()
    source, record, blob = item.source, None, None
    if source is not None:
        record = item.record or (record_of(item.blob) if item.blob is not None else None)
        blob = item.blob if record is not None else None  # a blob that holds no record is parsed again
    if record is None:
        assert item.name is not None
        path = job.events / item.name
        try:
            stat, data = read_file(str(path))
            parsed, blob = read_record(path, job.root, data=data, shown=item.shown)
        except OSError as exc:
            stat = file_stat(str(path))
            problem = Problem(item.shown, 1, "file", f"cannot be read ({exc.strerror})")
            return Prepared(item.name, stat, read_at, None, None, None, [problem]), None
        except InvalidInput as exc:
            return Prepared(item.name, stat, read_at, None, None, None, exc.problems), None
        source = Source.parsed(parsed, digest(item.shown, data), item.name)  # the record travels as JSON, once
        from publisher.site.plain import PlainRecord  # (imported already, by `read_record`)

        made = None if isinstance(parsed, PlainRecord) else parsed  # the model's: its posts need no other
        return Prepared(item.name, stat, read_at, source, blob, None, []), made
    assert source is not None
    if item.record is None and blob is None:
        blob = record_blob(record)
    return Prepared(item.name, stat, read_at, source, blob, None, []), record


def read_record(path: Path, root: Path, *, data: bytes, shown: str) -> tuple[Record | PlainRecord, str]:
    """A changed file's record and its `record_blob`: checked without pydantic when it is of the common case
    (`publisher.site.plain`), else by the model (imported then), which says what is wrong with it."""
    from publisher.site.plain import plain_record

    plain = plain_record(data, path, root, shown)
    if plain is not None:
        return plain, plain.blob()
    from publisher.site.records import load_record

    record = load_record(path, root, data=data, shown=shown)
    return record, record_blob(record)


def _add_posts(prepared: Prepared, record: Record | None, job: Job) -> None:
    """The record's posts, when they must be rendered again (or the problems with them)."""
    source = prepared.source
    assert source is not None
    if (source.status != "draft" or job.drafts) and job.fresh.get(source.id) != source.key:
        if record is None:
            assert isinstance(prepared.record, str), "a file the quick check took: its blob"
            record = _record(prepared.record)
        try:
            prepared.posts = render_post_files(record, job.settings, job.templates)
        except InvalidInput as exc:
            prepared.problems = exc.problems


class Work(msgspec.Struct, frozen=True):
    """A record for `produce` (or its `record_blob`), its posts from pass 1, and what the last build wrote for it."""

    id: str
    record: Record | str
    posts: list[Rendered]
    known: dict[str, FileInfo]


class Produced(msgspec.Struct):
    id: str
    files: list[tuple[Output, FileInfo]]
    problems: list[Problem]
    lines: str = ""  # manifest_lines of the files, made here rather than in the build's own process


def produce(items: Sequence[Work]) -> list[Produced]:
    """Pass 2: render each record's issue; write its files (or, for `check`, only render them)."""
    job = current()
    out = str(job.out)  # joined as text: a Path per file costs more than writing a small one
    records = [_record(work.record) if isinstance(work.record, str) else work.record for work in items]
    done = []
    made = [
        [(output, content, digest(content)) for output, content in issue + work.posts]
        if isinstance(issue, list)
        else issue
        for work, issue in zip(items, render_issues_files(records, job.settings, job.templates), strict=True)
    ]
    if job.write:  # what is about to be written, before any of it is (`publisher.build.stored.journal`)
        journal(job.journal, [(o.path, d) for outputs in made if isinstance(outputs, list) for o, _, d in outputs])
    for work, outputs in zip(items, made, strict=True):
        if isinstance(outputs, InvalidInput):
            done.append(Produced(work.id, [], outputs.problems))
            continue
        files = []
        for output, content, content_digest in outputs:
            if job.write:
                path = f"{out}/{output.path}"
                changed, info = write_file(path, content, work.known.get(output.path), content_digest)
            else:
                changed, info = False, (len(content), 0, content_digest)
            files.append((output.done(info[2], changed=changed), info))
        done.append(Produced(work.id, files, [], manifest_lines(output for output, _ in files)))
    return done


def _record(blob: str) -> Record:
    """A record pass 1 made into a blob (and so read back once already): it holds a record."""
    record = record_of(blob)
    assert record is not None, "pass 1 read this blob back"
    return record


def pool(job: Job) -> Executor:
    """Worker processes, forked where the system can: they start at once, with the renderers loaded once, here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import icalendar  # noqa: F401  (for the workers to inherit, as below: calendar files of events)

    import publisher.render.email
    import publisher.render.feeds
    import publisher.render.message
    import publisher.render.social  # noqa: F401  (loaded for the workers to inherit)
    from publisher.render.lengths import preload

    preload()
    job.settings  # noqa: B018  (validated here, once, for the workers to inherit)

    # The workers fork at the first task: what this process holds by then stays out of their
    # collections (whose writes to it would copy every page it is on), as the gc docs advise.
    gc.freeze()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(min(cpus, 8), mp_context=context, initializer=start_worker, initargs=(job,))
