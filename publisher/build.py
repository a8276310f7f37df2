"""`publisher build`: every output of a site, written where it changed.

    manifest = build(load_site(Path(".")))

Writes under the output folder (default: the site folder): `feeds/` (Atom and
RSS for the site, each tag and each language), `newsletters/<id>.html|.txt|.eml`
(and `.ics` for a record with `starts`) and `posts/<network>/<id>.txt`, for
every record that is not a draft (a cancelled record's issue says so).

A rebuild does only what changed (see `publisher.build_cache`): record files
are parsed again only when they changed, a record's issue and posts are
rendered again only when the record, the settings, the templates or
publisher itself changed, and only the feeds that show a changed record are
rendered again. No file is written unless its bytes changed, and the files a
previous build wrote for records that are gone are removed (files publisher
did not write are never touched). Nothing at all is written while any record,
post or template is bad: `InvalidInput` lists every problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from publisher import build_render as work
from publisher.build_cache import (
    CACHE_FOLDER,
    FeedState,
    FileInfo,
    OutputRow,
    Outputs,
    RecordFiles,
    Source,
    code_digest,
    digest,
    file_stat,
    now_ns,
    present,
    sizes_digest,
    unchanged_since,
)
from publisher.build_render import ISSUE_FILES, Output, Rendered, post_text, render_record, write_file
from publisher.config import Site
from publisher.errors import InvalidInput, Problem
from publisher.records import NETWORKS, Record, record_names, shown_paths
from publisher.templates import default_templates

PARALLEL_FROM = 200  # records to work on; below this a process pool costs more than it saves
Progress = Callable[[int, int], None]

__all__ = ["Manifest", "Output", "build", "post_text", "render_record", "write_if_changed"]


@dataclass
class Manifest:
    """What a build did: every file of the site's outputs, and which ones it wrote or removed."""

    out: Path
    records: int = 0
    drafts: int = 0
    outputs: list[Output] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def written(self) -> list[Output]:
        return [o for o in self.outputs if o.changed]

    def as_json(self) -> dict[str, Any]:
        written = sum(o.changed for o in self.outputs)
        return {
            "out": str(self.out),
            "records": self.records,
            "written": written,
            "unchanged": len(self.outputs) - written,
            "removed": self.removed,
            "files": [_file_json(o) for o in self.outputs],
        }

    def to_json(self) -> str:
        """`as_json()` as text, one line per file (one call of the C encoder: fast for 100,000 files)."""
        text = json.dumps(self.as_json(), ensure_ascii=False)
        # Paths, ids, kinds and digests hold no braces or commas, so "}, {" only ever separates two files.
        return text.replace(', "files": [{', ',\n "files": [\n  {', 1).replace("}, {", "},\n  {") + "\n"

    def report(self, limit: int = 100) -> list[str]:
        """Lines for people: each file written (or a count per folder when there are many), then a summary."""
        written = self.written
        lines = [f"wrote {o.path}" for o in written] if len(written) <= limit else _per_folder(written)
        lines += [f"removed {path}" for path in self.removed[:limit]]
        if len(self.removed) > limit:
            lines.append(f"removed {len(self.removed) - limit} more files")
        unchanged = len(self.outputs) - len(written)
        lines.append(
            f"{self.records} records → {len(written)} files written, {unchanged} unchanged"
            + (f", {len(self.removed)} removed" if self.removed else "")
            + f", in {self.out}"
        )
        return lines


def _per_folder(outputs: Sequence[Output]) -> list[str]:
    """'wrote 30 files in feeds/', 'wrote 3 files in posts/x/': one line per output folder."""
    counts: dict[str, int] = {}
    for output in outputs:
        parts = output.path.split("/")
        folder = "/".join(parts[:2] if parts[0] == "posts" and len(parts) > 2 else parts[:1])
        counts[folder] = counts.get(folder, 0) + 1
    return [f"wrote {count} files in {folder}/" for folder, count in sorted(counts.items())]


def _file_json(o: Output) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": o.path, "kind": o.kind, "format": o.format, "records": list(o.records)}
    if o.network is not None:
        entry.update(network=o.network, length=o.length, limit=o.limit)
    entry.update(digest=o.digest, changed=o.changed)
    return entry


def write_if_changed(out: Path, output: Output, content: bytes) -> Output:
    """Write one output under `out` unless the file already holds exactly `content`."""
    changed, info = write_file(str(out / output.path), content)
    return output.done(info[2], changed=changed)


def templates_digest(site: Site) -> str:
    """A digest of every template that can take part in a render (the site's and the defaults)."""
    parts: list[bytes | str] = []
    for folder in (site.templates, default_templates()):
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    parts += [str(path.relative_to(folder)), path.read_bytes()]
    return digest(*parts)


def image_sizes(root: Path, sources: Iterable[str | None]) -> dict[str, int]:
    """The size in bytes of each image file of the site that records use (feed enclosures need it)."""
    sizes = {}
    for src in sources:
        if src and src not in sizes:
            stat = file_stat(str(root / src.lstrip("/")))
            if stat is not None:
                sizes[src] = stat.size
    return sizes


def build(
    site: Site,
    out: Path | None = None,
    *,
    records: Sequence[Record] | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Render every output of `site` into `out` (default: the site folder); `records` default to its files."""
    return _Build(site, (out or site.root).resolve(), records, progress).run()


def check_site(site: Site, progress: Progress | None = None) -> Manifest:
    """Parse every record (drafts too), render every output in memory, write nothing but caches."""
    return _Build(site, site.root.resolve(), None, progress, write=False).run()


T = TypeVar("T")
R = TypeVar("R")


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _Build:
    def __init__(
        self, site: Site, out: Path, records: Sequence[Record] | None, progress: Progress | None, *, write: bool = True
    ) -> None:
        self.site, self.out, self.given, self.progress, self.write = site, out, records, progress, write
        self.templates = site.templates if site.templates.is_dir() else None
        self.code = code_digest()
        settings = site.settings.model_dump_json(by_alias=True)
        self.context = digest(self.code, settings, templates_digest(site), str(out))
        self.outputs = Outputs.load(site.root, out, self.context) if write else Outputs(Path(), self.context)
        self.files = RecordFiles(site.root, self.code)
        self.pool: Executor | None = None
        self.done = 0
        self.total = 0
        self.new_files: dict[str, FileInfo] = {}
        self.new_feeds = FeedState("", ())

    def run(self) -> Manifest:
        problems = work.check_templates(self.templates)
        if problems:
            raise InvalidInput(problems)
        try:
            sources, prepared = self._prepare()
            live = sorted((s for s in sources if s.status != "draft"), key=lambda s: s.order, reverse=True)
            todo = [
                work.Work(p.source, p.posts, self._known(p.source.id))
                for p in prepared
                if p.source is not None and p.posts is not None and p.source.status != "draft"
            ]
            self.total = self.done + len(todo)
            produced = self._map(work.produce, todo, size=50)
            feeds = self._feeds(live, {w.source.id for w in todo})
            return self._finish(live, produced, feeds)
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)

    # --- pass 1: records -----------------------------------------------------------------

    def _prepare(self) -> tuple[list[Source], list[work.Prepared]]:
        """Every record's source (parsing what changed) and the posts of those to render again."""
        fresh = self._fresh()
        ordered: list[Source | None] = []
        items: list[work.Item] = []
        slots: list[int] = []
        for shown, name, source in self._candidates():
            if source is None or self._needs_render(source, fresh):
                known = self.files.known(name) if source is None and name is not None else None
                items.append(work.Item(shown, name if source is None else None, known, source))
                slots.append(len(ordered))
            ordered.append(source)
        self.total = len(items)
        job = work.Job(
            self.site.root,
            self.site.events,
            self.out,
            self.site.settings,
            self.templates,
            fresh,
            self.write,
            not self.write,
        )
        work.start(job)
        self.job = job
        prepared = list(self._map(work.prepare, items, size=200))
        problems: list[Problem] = []
        read_at = now_ns()
        for slot, result in zip(slots, prepared, strict=True):
            problems.extend(result.problems)
            if result.source is not None:
                ordered[slot] = result.source
                if result.name is not None and result.stat is not None and not result.problems:
                    self.files.store(result.name, result.stat, result.source, min(read_at, result.read_at_ns))
        sources = [s for s in ordered if s is not None]
        sources, duplicates = self._unique(sources)
        self.drafts = sum(s.status == "draft" for s in sources)
        problems += duplicates
        if self.given is None:
            self.files.save()
        if problems:
            raise InvalidInput(problems)
        return sources, prepared

    def _candidates(self) -> Iterator[tuple[str, str | None, Source | None]]:
        """(shown path, file name, source when the cache can vouch for it) of every record."""
        if self.given is not None:
            for record in self.given:
                yield record.source, None, Source.of(record)
            return
        events = self.site.events
        names = record_names(events)
        self.files.keep_only(name for name, _ in names)
        folder = str(events)
        for (name, _), shown in zip(names, shown_paths(events, self.site.root, names), strict=True):
            stat = file_stat(f"{folder}/{name}")
            source = self.files.trusted(name, stat) if stat is not None else None
            if source is not None and source.image and not (self.site.root / source.image).is_file():
                source = None  # its image is gone: parse again, to report it
            yield shown, name, source

    def _needs_render(self, source: Source, fresh: dict[str, str]) -> bool:
        return (source.status != "draft" or not self.write) and fresh.get(source.id) != source.key

    def _fresh(self) -> dict[str, str]:
        """Records whose outputs the last build wrote from the same key and are all still there."""
        listings: dict[str, frozenset[str]] = {}
        return {
            id: key
            for id, (key, rows) in self.outputs.records.items()
            if present(self.out, (row[0] for row in rows), listings)
        }

    def _unique(self, sources: list[Source]) -> tuple[list[Source], list[Problem]]:
        seen: dict[str, Source] = {}
        kept, problems = [], []
        for source in sources:
            first = seen.get(source.id)
            if first is None:
                seen[source.id] = source
                kept.append(source)
                continue
            record, other = source.record, first.record.source
            problems.append(
                Problem(record.source, record.line("id"), "id", f"{record.id!r} is already used by {other}")
            )
        return kept, problems

    def _known(self, id: str) -> dict[str, FileInfo]:
        """What the last builds wrote at the paths a record's files take."""
        paths = [f"newsletters/{id}{suffix}" for suffix in ISSUE_FILES] + [f"posts/{n}/{id}.txt" for n in NETWORKS]
        return {p: self.outputs.files[p] for p in paths if p in self.outputs.files}

    # --- the worker pool -----------------------------------------------------------------

    def _map(self, function: Callable[[Sequence[T]], list[R]], items: Sequence[T], *, size: int) -> Iterator[R]:
        """`function` over chunks of `items`, in a process pool when there are enough; results in order."""
        if not items:
            return iter(())
        if self.pool is None and len(items) >= PARALLEL_FROM:
            self.pool = _pool(self.job)
        workers = getattr(self.pool, "_max_workers", 1)
        size = max(10, min(size, -(-len(items) // (workers * 4))))
        chunks = _chunks(items, size)
        results = self.pool.map(function, chunks) if self.pool is not None else map(function, chunks)
        return self._counted(results)

    def _counted(self, results: Iterable[list[R]]) -> Iterator[R]:
        for chunk in results:
            yield from chunk
            self.done += len(chunk)
            if self.progress is not None:
                self.progress(self.done, max(self.total, self.done))

    # --- feeds ----------------------------------------------------------------------------

    def _feeds(self, live: list[Source], rendered: set[str]) -> list[Output]:
        """Every feed; rendered again only where a record in it changed (all when the records in them may differ)."""
        from publisher.render.feeds import feed_set

        sizes = image_sizes(self.site.root, (s.image for s in live))
        membership = digest(sizes_digest(sizes), *(s.membership for s in live))
        before = self.outputs.feeds
        listed = before.feeds if before is not None and before.membership == membership else None
        fresh = None
        if listed is not None:
            wanted = {path for path, _, ids in listed if rendered.intersection(ids) or not self._intact(path)}
            fresh = self._some_feeds(live, sizes, listed, wanted)
        if listed is None or fresh is None:
            files = feed_set([s.record for s in live], self.site.settings, sizes=sizes)
            listed = tuple((f.path, f.format, f.record_ids) for f in files)
            fresh = {f.path: f.content for f in files}
        self.new_feeds = FeedState(membership, listed)
        outputs = []
        for path, fmt, ids in listed:
            content = fresh.get(path)
            if content is None:
                outputs.append(self._unchanged((path, "feed", fmt, None, None, None), ids))
                continue
            changed, info = self._write(path, content)
            self.new_files[path] = info
            outputs.append(Output(path, "feed", fmt, ids, digest=info[2], changed=changed))
        return outputs

    def _some_feeds(
        self, live: list[Source], sizes: dict[str, int], listed: FeedList, wanted: set[str]
    ) -> dict[str, bytes] | None:
        """The `wanted` feeds, rendered from only the records they show; None when they would show others.

        When no record was added, removed, re-dated or re-tagged, each feed shows
        the same records as before, and the feeds of just those records include
        each wanted feed exactly as the whole site's would.
        """
        from publisher.render.feeds import feed_set

        if not wanted:
            return {}
        expected = {path: ids for path, _, ids in listed if path in wanted}
        shown = {id for ids in expected.values() for id in ids}
        files = [f for f in feed_set([s.record for s in live if s.id in shown], self.site.settings, sizes=sizes)]
        found = {f.path: f for f in files if f.path in wanted}
        if found.keys() != expected.keys() or any(f.record_ids != expected[p] for p, f in found.items()):
            return None
        return {path: f.content for path, f in found.items()}

    def _intact(self, path: str) -> bool:
        """Whether the file is still what the last build wrote there (by size and mtime)."""
        info = self.outputs.files.get(path)
        return info is not None and unchanged_since(info, file_stat(str(self.out / path)))

    def _write(self, path: str, content: bytes) -> tuple[bool, FileInfo]:
        if not self.write:
            return False, (len(content), 0, digest(content))
        return write_file(str(self.out / path), content, self.outputs.files.get(path))

    def _unchanged(self, row: OutputRow, ids: tuple[str, ...]) -> Output:
        """An output left as the last build wrote it."""
        path, kind, fmt, network, length, limit = row
        info = self.outputs.files.get(path) or (0, 0, "")
        self.new_files[path] = info
        return Output(path, kind, fmt, ids, network, length, limit, info[2])

    # --- the manifest, removals and the caches -------------------------------------------

    def _finish(self, live: list[Source], produced: Iterable[work.Produced], feeds: list[Output]) -> Manifest:
        results = {p.id: p for p in produced}
        problems = [problem for p in results.values() for problem in p.problems]
        manifest = Manifest(self.out, len(live), self.drafts)
        entries: dict[str, tuple[str, tuple[OutputRow, ...]]] = {}
        for source in live:
            result = results.get(source.id)
            if result is not None and result.problems:
                continue
            if result is not None:
                outputs = [output for output, _ in result.files]
                self.new_files.update((output.path, info) for output, info in result.files)
                rows = tuple((o.path, o.kind, o.format, o.network, o.length, o.limit) for o in outputs)
            else:
                rows = self.outputs.records[source.id][1]
                ids = (source.id,)
                outputs = [self._unchanged(row, ids) for row in rows]
            entries[source.id] = (source.key, rows)
            manifest.outputs += outputs
        manifest.outputs += feeds
        if self.write:
            if problems:  # remember what was written; remove nothing
                self.new_files = {**self.outputs.files, **self.new_files}
            else:
                manifest.removed = self._remove_stale()
            before = (self.outputs.records, self.outputs.files, self.outputs.feeds)
            if before != (entries, self.new_files, self.new_feeds):
                self.outputs.records, self.outputs.files, self.outputs.feeds = entries, self.new_files, self.new_feeds
                self.outputs.save(self.out)
        if problems:
            raise InvalidInput(problems)
        return manifest

    def _remove_stale(self) -> list[str]:
        """Remove the files earlier builds wrote that this one no longer makes, if nobody changed them since."""
        removed = []
        for path, info in self.outputs.files.items():
            if path in self.new_files:
                continue
            target = self.out / path
            if not unchanged_since(info, file_stat(str(target))):
                continue  # gone already, or changed by someone else: theirs now
            target.unlink()
            removed.append(path)
            folder = target.parent
            while folder != self.out and self.out in folder.parents and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent
        return sorted(removed)


FeedList = tuple[tuple[str, str, tuple[str, ...]], ...]


def _pool(job: work.Job) -> Executor:
    import multiprocessing

    workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=work.start, initargs=(job,))


__all__ += ["CACHE_FOLDER", "OutputRow", "Rendered", "check_site", "image_sizes"]
