"""`publisher build`: every output of a site, written where it changed.

    manifest = build(load_site(Path(".")))

Writes under the output folder (default: the site folder): `feeds/` (Atom and
RSS for the site, each tag and each language) from every record, and the
previews, `newsletters/<id>.html|.txt|.eml` (`.ics` for a record with `starts`)
and `posts/<network>/<id>.txt`, of the records someone will look at
(`publisher.build.previews`; with `every`, of every record but drafts). The
feeds show the records published by `now` (the CLI's ``--now``, default the
current time), as the timeline's ``feeds`` dispatch writes them; without `now`
(the library's default) every record is shown.

A rebuild does only what changed (see `publisher.build.cache`): record files
are parsed again only when they changed; a record's issue and posts are
rendered again only when the record, the settings, the templates or
publisher's rendering code changed; only the feeds that show a changed record
are rendered again. No file is written unless its bytes changed, and the files
an earlier build wrote that it no longer makes (a record gone, or out of the
previews) are removed; files publisher did not write are never touched.
Nothing is written while any record, post or template is bad: `InvalidInput`
lists every problem. Big builds render in a process pool (`build.work`).
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import msgspec

from publisher.build import work
from publisher.build.cache import (
    FeedList,
    FeedState,
    Kept,
    Outputs,
    Source,
    code_digest,
    present,
    templates_digest,
)
from publisher.build.lock import one_build_at_a_time
from publisher.build.manifest import Made, Manifest
from publisher.build.media import publish_media
from publisher.build.parsed import RecordFiles
from publisher.build.previews import preview_ids
from publisher.build.stored import journal, record_of, remove_unchanged
from publisher.build.work import Output
from publisher.errors import InvalidInput, Problem, WorkFailed
from publisher.site.config import Site
from publisher.site.files import FileInfo, digest, file_stat, record_stats, shown_paths, unchanged_since, write_file
from publisher.site.media import image_sizes
from publisher.site.rules import unique_ids

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from publisher.site.records import Record

ORDER = attrgetter("published", "id")  # `Source.order`, made in C: a build sorts 10,000 of them
PARALLEL_FROM = 200  # records to work on; below this a process pool costs more than it saves
Progress = Callable[[int, int], None]

__all__ = ["Manifest", "Output", "Progress", "build", "check_site"]


def build(
    site: Site,
    out: Path | None = None,
    *,
    records: Sequence[Record] | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    every: bool = False,
    waiting: Callable[[], None] | None = None,
) -> Manifest:
    """Render the outputs of `site` into `out` (default: the site folder); `records` default to its files.

    The feeds show the records published by `now` (all of them when None);
    previews are written for the records `preview_ids` names at `now` (every
    record's with `every`). `progress(done, total)` is called as records are
    done. Raises InvalidInput (nothing written) when a record, a post or a
    template is bad, WorkFailed when an output cannot be written. A build
    waits for another of the site to end (`waiting()` is called first).
    """
    try:
        with one_build_at_a_time(site.root, waiting):
            return _Build(site, (out or site.root).resolve(), records, progress, now=now, every=every).run()
    except OSError as exc:  # a folder that cannot be written, a full disk: what was written stays valid
        raise WorkFailed(f"cannot write {exc.filename or out or site.root} ({exc.strerror or exc})") from None


def check_site(
    site: Site, progress: Progress | None = None, *, now: dt.datetime | None = None, every: bool = False
) -> Manifest:
    """Parse every record (drafts too, and their posts), render in memory what `build` would; write no output."""
    return _Build(site, site.root.resolve(), None, progress, write=False, now=now, every=every).run()


T = TypeVar("T")
R = TypeVar("R")


class _Build:
    """One build (or, with `write=False`, one check): records → pass 1 → pass 2 and the feeds → caches.

    A running build is `itself`, a reference cycle: returning from `build` then frees none of the 100,000
    objects it holds at 10,000 records one by one (8 ms), the collector frees them later as one garbage cycle,
    or, as `publisher build` ends its process, never.
    """

    itself: _Build | None = None
    files: RecordFiles  # read as the build runs, not collecting garbage (which took half of decoding it)

    def __init__(
        self,
        site: Site,
        out: Path,
        records: Sequence[Record] | None,
        progress: Progress | None,
        *,
        write: bool = True,
        now: dt.datetime | None = None,
        every: bool = False,
    ) -> None:
        self.site, self.out, self.given, self.progress, self.write = site, out, records, progress, write
        self.given_records = {record.id: record for record in records or ()}  # the records given, by id
        self.now, self.moment, self.every = (now.timestamp() if now is not None else None), now, every
        self.templates = site.template_folder
        self.code = code = code_digest()
        settings = msgspec.json.encode({k: v for k, v in site.plain.items() if k != "build"})  # not which previews
        self.context = digest(code, settings, templates_digest(site), str(out))
        self.outputs = Outputs(site.root, out, self.context, write=write)
        pending = self.outputs.journal
        self.job = work.Job(site.root, site.events, out, site, self.templates, {}, write, not write, pending)
        self.pool: Executor | None = None
        self.done = self.total = self.drafts = 0
        self.at_hand: dict[str, Record | str] = {}  # records this build parsed (as `record_blob`s) or was given
        self.new_feeds = FeedState(self.context, "", ())

    def run(self) -> Manifest:
        last = self.outputs.feeds
        if last is None or last.context != self.context:  # else the last build compiled these very templates
            problems = work.check_templates(self.templates)
            if problems:
                raise InvalidInput(problems)
        collecting = gc.isenabled()
        gc.disable()  # a build makes almost no reference cycles: collecting over its many objects costs ~25% here
        self.itself = self
        try:
            self.files = RecordFiles(self.site.root, self.code)
            sources, posts = self._prepare()
            live = sorted((s for s in sources if s.status != "draft"), key=ORDER, reverse=True)
            wanted = None if self.every else preview_ids(live, self.site, self.moment, self.code)
            previewed = live if wanted is None else [s for s in live if s.id in wanted]
            posts.update(self._posts(previewed, sources, posts))
            todo = [
                work.Work(s.id, self.at_hand[s.id], posts[s.id], self._known(s.id)) for s in previewed if s.id in posts
            ]
            del posts  # each record's posts, held by its work alone, are let go with it (below)
            self.total = self.done + len(todo)
            produced = self._map(work.produce, todo, size=50)
            shown = live if self.now is None else [s for s in live if s.published <= self.now]
            rendered = {w.id for w in todo}
            del todo  # each record's work is let go as its result comes back
            feeds = self._feeds(shown, rendered)
            manifest = self._finish(live, previewed, rendered, produced, feeds)
            manifest.scheduled = len(live) - len(shown)
            for source in sources:
                if source.remote is not None:
                    manifest.images.setdefault(source.remote[0], []).append((source.shown, source.remote[1]))
            return manifest
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)
                gc.unfreeze()
            if collecting:
                gc.enable()

    # --- pass 1: records -----------------------------------------------------------------

    def _prepare(self) -> tuple[list[Source], dict[str, list[work.Rendered]]]:
        """Every record's source, parsing the files that changed; with `every`, the posts of those to render."""
        self.job.fresh = self._fresh()
        ordered, slots, items = self._candidates()
        posts: dict[str, list[work.Rendered]] = {}
        parsed, problems = self._parse(items, posts)
        for slot, source in zip(slots, parsed, strict=True):
            ordered[slot] = source
        sources, duplicates = unique_ids(
            [s for s in ordered if s is not None],
            id_of=attrgetter("id"),
            shown=lambda s: s.shown,
            id_line=lambda s: self._record(s).line("id"),
        )
        self.drafts = sum(s.status == "draft" for s in sources)
        if self.given is None:
            self.files.save()
        if problems or duplicates:
            raise InvalidInput(problems + duplicates)
        return sources, posts

    def _parse(
        self, items: list[work.Item], posts: dict[str, list[work.Rendered]]
    ) -> tuple[list[Source | None], list[Problem]]:
        """`work.prepare` over the items: each one's source (None: bad), their posts into `posts`, the problems."""
        self.total = self.done + len(items)
        sources: list[Source | None] = []
        problems: list[Problem] = []
        for result in self._map(work.prepare, items, size=200):
            problems += result.problems
            source = result.source
            sources.append(source)
            if source is None:
                continue
            held = result.record if result.record is not None else self.given_records.get(source.id)
            if held is not None:
                self.at_hand[source.id] = held
            if result.posts is not None:
                posts[source.id] = result.posts
            if isinstance(result.record, str) and result.name is not None and result.stat is not None:
                self.files.store(result.name, result.stat, source, result.read_at_ns, result.record)
        return sources, problems

    def _posts(
        self, previewed: list[Source], sources: list[Source], done: dict[str, list[work.Rendered]]
    ) -> dict[str, list[work.Rendered]]:
        """The posts of the previews to render again (and, for `check`, of every draft); InvalidInput if bad."""
        fresh = self.job.fresh
        wanted = [s for s in previewed if fresh.get(s.id) != s.key and s.id not in done]
        if not self.write:  # a draft's own text is checked before it is published
            wanted += [s for s in sources if s.status == "draft" and s.id not in done]
        items = [work.Item(s.shown, s.name, s, self._blob(s), self.given_records.get(s.id)) for s in wanted]
        posts: dict[str, list[work.Rendered]] = {}
        _, problems = self._parse(items, posts)
        if problems:
            raise InvalidInput(problems)
        return posts

    def _candidates(self) -> tuple[list[Source | None], list[int], list[work.Item]]:
        """Every record's source when known without parsing (None: parse it), the slots of the Nones, and an item
        to parse for each of them."""
        if self.given is not None:
            return [Source.of(record) for record in self.given], [], []
        events, root = self.site.events, self.site.root
        found = record_stats(events)
        ordered = self.files.trusted(found)  # at 10,000 records: most of a rebuild
        for slot, source in enumerate(ordered):
            if source is not None and source.image and not (root / source.image).is_file():
                ordered[slot] = None  # its image is gone: parse it again, to report that
        slots = [slot for slot, source in enumerate(ordered) if source is None]
        names = [(found[slot][0], found[slot][1]) for slot in slots]
        shown = shown_paths(events, root, names)
        return ordered, slots, [work.Item(s, name, posts=self.every) for s, (name, _) in zip(shown, names, strict=True)]

    def _blob(self, source: Source) -> str | None:
        """A source's record as its `record_blob`, parsed by this build or cached (saves parsing the file again)."""
        held = self.at_hand.get(source.id)
        if isinstance(held, str):
            return held
        return self.files.blob(source) if source.id not in self.given_records else None

    def _fresh(self) -> dict[str, str]:
        """Records whose files an earlier build wrote, in this context, from the same key, and still there."""
        entries = [(id, kept) for id in self.outputs.entries if (kept := self.outputs.fresh(id)) is not None]
        paths = [(id, kept.key, kept.paths.split("\n")) for id, kept in entries]
        found = present(self.out, {path.rpartition("/")[0] for _, _, listed in paths for path in listed})
        return {id: key for id, key, listed in paths if found.issuperset(listed)}

    def _record(self, source: Source) -> Record:
        """The record of a source: given, parsed by this build, cached, or else parsed now."""
        at_hand = self.given_records.get(source.id) or self.at_hand.get(source.id)
        if isinstance(at_hand, str):
            at_hand = record_of(at_hand)
        record = at_hand if at_hand is not None and at_hand.source == source.shown else None
        if record is None:
            record = self.files.record(source)
        if record is None:
            assert source.name is not None
            from publisher.site.records import load_record

            record = load_record(self.site.events / source.name, self.site.root, shown=source.shown)
        self.at_hand[source.id] = record
        return record

    def _known(self, id: str) -> dict[str, FileInfo]:
        """What an earlier build wrote for a record: its files' sizes, mtimes and digests."""
        kept = self.outputs.entries.get(id)
        return kept.infos() if kept is not None else {}

    # --- the worker pool -----------------------------------------------------------------

    def _map(self, function: Callable[[Sequence[T]], list[R]], items: Sequence[T], *, size: int) -> Iterator[R]:
        """`function` over chunks of `items`, in a process pool when there are enough; results in order."""
        if not items:
            return iter(())
        if self.pool is None and len(items) >= PARALLEL_FROM:
            self.pool = work.pool(self.job)
        workers = getattr(self.pool, "_max_workers", 1)
        size = max(10, min(size, -(-len(items) // (workers * 4))))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        if self.pool is None:
            work.start(self.job)
            return self._counted(map(function, chunks))
        return self._counted(self.pool.map(function, chunks))

    def _counted(self, results: Iterable[list[R]]) -> Iterator[R]:
        for chunk in results:
            yield from chunk
            self.done += len(chunk)
            if self.progress is not None:
                self.progress(self.done, max(self.total, self.done))

    # --- feeds ----------------------------------------------------------------------------

    def _feeds(self, live: list[Source], rendered: set[str]) -> list[Output]:
        """Every feed; rendered again only where a record in it changed (all, when the records in them may differ)."""
        sizes = image_sizes(self.site.root, (s.image for s in live))
        membership = digest(
            *(f"{src}={size}" for src, size in sorted(sizes.items())), *(s.id + s.membership for s in live)
        )
        before = self.outputs.feeds
        same = before is not None and (before.context, before.membership) == (self.context, membership)
        listed = before.feeds if before is not None and same else None
        keys = {s.id: s.key for s in live}
        fresh = None
        if listed is not None and before is not None:
            edited = {id for _, _, ids in listed for id in ids if before.keys.get(id) != keys.get(id)} | rendered
            wanted = {path for path, _, ids in listed if edited.intersection(ids) or not self._intact(path)}
            fresh = self._some_feeds(live, sizes, listed, wanted)
        if listed is None or fresh is None:
            from publisher.render.feeds import feed_members, feed_set  # feedgen and lxml: loaded only when needed

            shown = feed_members(live, self.site.settings)  # feeds show the newest few: read only those records
            files = feed_set([self._record(s) for s in live if s.id in shown], self.site.settings, sizes=sizes)
            listed = tuple((f.path, f.format, f.record_ids) for f in files)
            fresh = {f.path: f.content for f in files}
        known = before.files if before is not None else {}
        shown_keys = {id: keys[id] for _, _, ids in listed for id in ids if id in keys}
        self.new_feeds = FeedState(self.context, membership, listed, keys=shown_keys)
        digests = {path: digest(data) for path, data in fresh.items()}  # each feed hashed once: journal and write
        journal(self.outputs.journal if self.write else None, list(digests.items()))
        outputs = []
        for path, fmt, ids in listed:
            content = fresh.get(path)
            if content is None:
                info = self.new_feeds.files[path] = known[path]
                outputs.append(Output(path, "feed", fmt, ids, digest=info[2]))
                continue
            changed, info = self._write(path, content, known.get(path), digests[path])
            self.new_feeds.files[path] = info
            outputs.append(Output(path, "feed", fmt, ids, digest=info[2], changed=changed))
        return outputs

    def _some_feeds(
        self, live: list[Source], sizes: dict[str, int], listed: FeedList, wanted: set[str]
    ) -> dict[str, bytes] | None:
        """The `wanted` feeds, rendered from only the records they show; None when they would show others.

        When no record was added, removed, re-dated or re-tagged, each feed
        shows the records it showed before, and the feeds of only those records
        include each wanted feed exactly as the feeds of the whole site would.
        """
        if not wanted:
            return {}
        from publisher.render.feeds import feed_set  # feedgen and lxml: loaded only when needed

        expected = {path: ids for path, _, ids in listed if path in wanted}
        shown = {id for ids in expected.values() for id in ids}
        records = [self._record(s) for s in live if s.id in shown]
        found = {f.path: f for f in feed_set(records, self.site.settings, sizes=sizes) if f.path in wanted}
        if found.keys() != expected.keys() or any(f.record_ids != expected[p] for p, f in found.items()):
            return None
        return {path: f.content for path, f in found.items()}

    def _intact(self, path: str) -> bool:
        """Whether a feed file is still what the last build wrote there (by size and mtime)."""
        info = self.outputs.feeds.files.get(path) if self.outputs.feeds is not None else None
        return info is not None and unchanged_since(info, file_stat(str(self.out / path)))

    def _write(self, path: str, content: bytes, known: FileInfo | None, hashed: str) -> tuple[bool, FileInfo]:
        if not self.write:
            return False, (len(content), 0, hashed)
        return write_file(str(self.out / path), content, known, hashed)

    # --- the manifest, removals and the caches -------------------------------------------

    def _finish(
        self,
        live: list[Source],
        previewed: list[Source],
        rendered: set[str],
        produced: Iterable[work.Produced],
        feeds: list[Output],
    ) -> Manifest:
        """The manifest and the caches, from each rendered record's result (`produced`, in the order of the
        `rendered` ones among `previewed`) and the feeds."""
        problems: list[Problem] = []
        manifest = Manifest(self.out, len(live), self.drafts)
        before = self.outputs.entries
        entries: dict[str, Kept] = {}
        results = iter(produced)  # one per record rendered, in the order of `previewed`: each let go once read
        for source in previewed:
            if source.id not in rendered:  # as the last build left it
                entries[source.id] = before[source.id]
                manifest.parts.append(before[source.id])
                continue
            result = next(results)
            assert result.id == source.id, "produced in the order of the work"
            if result.problems:  # remember what was there before
                problems += result.problems
                if source.id in before:
                    entries[source.id] = before[source.id]
            else:
                entries[source.id] = self._kept(source, result.files, result.lines)
                manifest.parts.append(Made.of([output for output, _ in result.files], result.lines))
        manifest.parts += feeds
        if not problems:  # the site's images and logo, published with the output (`publisher.build.media`)
            logo = [self.site.plain["site"]["logo"]]
            media, manifest.removed = publish_media(
                self.site.root, self.out, [s.image for s in live] + logo, self.outputs.folder, write=self.write
            )
            manifest.parts += media
        if self.write and problems:  # remember what was written, remove nothing
            self.outputs.save({**before, **entries}, self.new_feeds, settled=False)
        elif self.write:
            manifest.removed = self._remove(before, entries) + manifest.removed
            self.outputs.save(entries, self.new_feeds)
        if problems:
            raise InvalidInput(problems)
        return manifest

    def _kept(self, source: Source, files: list[tuple[Output, FileInfo]], lines: str) -> Kept:
        paths = "\n".join(output.path for output, _ in files)
        stats = tuple(n for _, info in files for n in info[:2])
        return Kept(source.key, self.context, paths, stats, lines)

    def _remove(self, before: dict[str, Kept], entries: dict[str, Kept]) -> list[str]:
        """Remove the files earlier builds wrote that this one no longer makes, unless someone changed them since."""
        made = set(self.new_feeds.files).union(*(kept.paths.split("\n") for kept in entries.values()))
        old = dict(self.outputs.feeds.files) if self.outputs.feeds is not None else {}
        for id, kept in before.items():
            if entries.get(id) is not kept:
                old.update(kept.infos())
        return remove_unchanged(self.out, {path: old[path] for path in old.keys() - made} | self.outputs.orphans(made))
