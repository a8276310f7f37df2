"""`publisher build`: every output of a site, written where it changed.

Per-record outputs (newsletter issue files and posts) are cached by a digest
of the record, the settings and the templates, so a rebuild after one record
changed renders one record again, plus the feeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from publisher.config import Site, Settings
from publisher.errors import InvalidInput, Problem
from publisher.records import Record, load_records
from publisher.render import calendar, feeds, message, social
from publisher.render import email as issues
from publisher.templates import default_templates

CACHE_VERSION = 1
PARALLEL_FROM = 400  # records; below this a process pool costs more than it saves


@dataclass(frozen=True)
class Output:
    """One file of a build, as listed by `build --json`."""

    path: str
    kind: str  # feed | issue | post | calendar
    format: str
    records: tuple[str, ...]
    network: str | None = None
    length: int | None = None
    limit: int | None = None
    digest: str = ""
    changed: bool = False


@dataclass
class Manifest:
    out: Path
    outputs: list[Output] = field(default_factory=list)

    @property
    def written(self) -> list[Output]:
        return [o for o in self.outputs if o.changed]

    def as_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "written": len(self.written),
            "unchanged": len(self.outputs) - len(self.written),
            "files": [{k: v for k, v in asdict(o).items() if v is not None} for o in self.outputs],
        }


Rendered = tuple[Output, bytes]


def _digest(content: bytes) -> str:
    return hashlib.blake2b(content, digest_size=16).hexdigest()


def templates_digest(site: Site) -> str:
    """A digest of every template that can take part in a render."""
    h = hashlib.blake2b(digest_size=16)
    for folder in (site.templates, default_templates()):
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    h.update(str(path.relative_to(folder)).encode())
                    h.update(path.read_bytes())
    return h.hexdigest()


def render_record(record: Record, settings: Settings, templates: Path | None) -> list[Rendered]:
    """The newsletter issue files and the posts of one record."""
    rendered: list[Rendered] = []
    ids = (record.id,)
    if record.status == "published":
        issue = issues.render_issue([record], settings, templates)
        html, text = issues.personalise(issue, name="", unsubscribe_url=f"{settings.site.url}/unsubscribe", email="")
        base = f"newsletters/{issue.id}"
        eml = message.issue_eml(issue, settings)
        for suffix, fmt, content in ((".html", "html", html.encode()), (".txt", "text", text.encode()), (".eml", "eml", eml)):
            rendered.append((Output(base + suffix, "issue", fmt, ids), content))
        if record.starts is not None:
            rendered.append((Output(base + ".ics", "calendar", "ics", ids), calendar.render_ics(record, settings.site)))
        for post in social.render_posts(record, settings, templates):
            content = post_text(post).encode()
            output = Output(f"posts/{post.network}/{record.id}.txt", "post", "text", ids, post.network, post.length, post.limit)
            rendered.append((output, content))
    return rendered


def post_text(post: social.Post) -> str:
    """A post as a file: its text, then each thread part after a `---` line."""
    return "\n---\n".join((post.text, *post.thread)) + "\n"


def _render_chunk(args: tuple[list[Record], Settings, Path | None]) -> list[list[Rendered]]:
    records, settings, templates = args
    return [render_record(r, settings, templates) for r in records]


Progress = Callable[[int, int], None]


def _render_all(
    records: Sequence[Record], settings: Settings, templates: Path | None, progress: Progress | None
) -> list[list[Rendered]]:
    workers = min(os.cpu_count() or 1, 8)
    size = max(50, len(records) // (workers * 4))
    chunks = [(list(records[i : i + size]), settings, templates) for i in range(0, len(records), size)]
    done: list[list[Rendered]] = []
    if len(records) < PARALLEL_FROM or workers < 2:
        results: Iterable[list[list[Rendered]]] = map(_render_chunk, chunks)
        return _collect(results, done, len(records), progress)
    with ProcessPoolExecutor(workers) as pool:
        return _collect(pool.map(_render_chunk, chunks), done, len(records), progress)


def _collect(
    results: Iterable[list[list[Rendered]]], done: list[list[Rendered]], total: int, progress: Progress | None
) -> list[list[Rendered]]:
    for chunk in results:
        done.extend(chunk)
        if progress:
            progress(len(done), total)
    return done


class BuildCache:
    """Per-record outputs from the last build, keyed by record + settings + templates."""

    def __init__(self, path: Path, context: str) -> None:
        self.path = path
        self.context = context
        self.entries: dict[str, tuple[str, list[Output]]] = {}
        try:
            with path.open("rb") as f:
                version, context_seen, entries = pickle.load(f)
            if version == CACHE_VERSION and context_seen == context:
                self.entries = entries
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError):
            self.entries = {}

    @staticmethod
    def key(record: Record) -> str:
        return _digest(record.model_dump_json().encode() + record.body.encode())

    def save(self, entries: dict[str, tuple[str, list[Output]]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump((CACHE_VERSION, self.context, entries), f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(self.path)


def write_if_changed(out: Path, output: Output, content: bytes) -> Output:
    """Write `content` unless the file already holds exactly it."""
    target = out / output.path
    digest = _digest(content)
    try:
        if target.stat().st_size == len(content) and target.read_bytes() == content:
            return _with(output, digest, changed=False)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(content)
    tmp.replace(target)
    return _with(output, digest, changed=True)


def _with(output: Output, digest: str, *, changed: bool) -> Output:
    return Output(**{**asdict(output), "digest": digest, "changed": changed})


def check_site(site: Site, records: Sequence[Record]) -> list[Problem]:
    """Problems only rendering finds: posts or overrides that do not fit their network."""
    return social.check_posts(records, site.settings, site.templates)


def build(
    site: Site,
    out: Path | None = None,
    *,
    records: Sequence[Record] | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Render every output of `site` into `out` (default: the site folder)."""
    out = (out or site.root).resolve()
    if records is None:
        records = load_records(site.events, site.root)
    problems = check_site(site, records)
    if problems:
        raise InvalidInput(problems)
    settings = site.settings
    templates = site.templates if site.templates.is_dir() else None
    context = _digest(settings.model_dump_json().encode() + templates_digest(site).encode() + str(out).encode())
    cache = BuildCache(site.root / ".publisher" / "build-cache.pickle", context)
    manifest = Manifest(out)
    fresh: dict[str, tuple[str, list[Output]]] = {}
    stale: list[Record] = []
    for record in records:
        key = BuildCache.key(record)
        hit = cache.entries.get(record.id)
        if hit and hit[0] == key and all((out / o.path).is_file() for o in hit[1]):
            fresh[record.id] = (key, [_with(o, o.digest, changed=False) for o in hit[1]])
        else:
            stale.append(record)
    rendered = _render_all(stale, settings, templates, progress)
    for record, files in zip(stale, rendered, strict=True):
        fresh[record.id] = (BuildCache.key(record), [write_if_changed(out, o, c) for o, c in files])
    for record in records:
        manifest.outputs.extend(fresh[record.id][1])
    for feed in feeds.feed_set(records, settings):
        output = Output(feed.path, "feed", feed.format, feed.record_ids)
        manifest.outputs.append(write_if_changed(out, output, feed.content))
    cache.save(fresh)
    return manifest


def manifest_json(manifest: Manifest) -> str:
    return json.dumps(manifest.as_json(), indent=2, ensure_ascii=False)
