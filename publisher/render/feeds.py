"""Atom 1.0 and RSS 2.0 feeds from records, through feedgen.

Pure: records and settings in, bytes out; no clock, no network, no files.
Building twice from the same records gives byte-identical feeds.

feedgen 1.0 gets a few things wrong; each is worked around in one place here:

- Atom entry links lose ``rel``, ``type`` and ``length`` (upstream #135), so an
  enclosure would come out as a second alternate link. feedgen is never given
  an Atom entry link: :class:`_EntryExtension` writes them (``extend_atom``).
- The RSS channel ``<link>`` is the last feed link added: :func:`_generator`
  adds ``rel=self`` before the alternate (site) link.
- Feed and entry ``updated`` default to the current time: :func:`_generator`
  and :func:`_fill_entry` always set them from the records.
- ``add_entry()`` prepends by default: :func:`_generator` appends over the
  newest-first list.
- RFC 2822 dates go through ``locale.setlocale(LC_ALL, 'C')`` and back,
  process-wide. Item dates are formatted by us (:func:`rfc2822`, locale-free)
  and written by ``_EntryExtension.extend_rss``; feedgen still formats the one
  channel ``<lastBuildDate>`` itself (it always writes one), so
  :func:`_serialise` holds ``_LOCALE_LOCK`` around ``rss_str`` and two of our
  renders in threads never interleave a save/restore and leave the process
  in the ``C`` locale. Other code that reads the locale in another thread at
  that instant can still see ``C``; publisher itself never sets a locale.
- feedgen's RSS output drops ``rel=hub``: we publish no hub.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import html
import mimetypes
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem  # lxml's SubElement

from publisher.render.markdown import body_html, media_url, record_url
from publisher.site.records import Record, sort_newest_first
from publisher.site.settings import FeedSettings, Settings, SiteSettings

Format = Literal["atom", "rss"]

MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml"}
# The files of one feed scope, in the order they are listed.
_FILES: tuple[tuple[Format, str], ...] = (("atom", "atom.xml"), ("rss", "rss.xml"))
# An empty feed still needs an `updated`; the clock is not an option.
_NO_RECORDS = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LOCALE_LOCK = threading.Lock()

# Characters XML 1.0 cannot carry: most C0 controls, lone surrogates, U+FFFE, U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Only Python's own table, never the machine's /etc/mime.types: same output everywhere.
_MIME = mimetypes.MimeTypes()
for _type, _extension in (("image/webp", ".webp"), ("image/avif", ".avif")):
    _MIME.add_type(_type, _extension)


def xml_text(text: str) -> str:
    """`text` without the characters an XML 1.0 document cannot hold."""
    return _NOT_XML.sub("", text)


def entry_id(record: Record, site: SiteSettings) -> str:
    """A record's feed entry id: stable for ever, from the site URL and the record id only."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{site.url}/{record.id}").urn


def rfc2822(moment: dt.datetime) -> str:
    """An RFC 2822 date, the same in every locale (no `setlocale`)."""
    return email.utils.format_datetime(moment)


@dataclass(frozen=True)
class FeedFile:
    """One rendered feed: where it goes under the output folder, and what it holds."""

    path: str
    format: Format
    content: bytes
    record_ids: tuple[str, ...]
    scope: str


@dataclass(frozen=True)
class _Image:
    url: str
    type: str
    length: int
    alt: str
    credit: str | None


@dataclass(frozen=True)
class _Item:
    """What an entry needs from one record, made once however many feeds show it."""

    record: Record
    id: str
    title: str
    url: str
    html: str
    image: _Image | None


class _Items:
    """Each record's entry material, cached by record id (the body is rendered once)."""

    def __init__(self, site: SiteSettings, sizes: Mapping[str, int] | None) -> None:
        self.site = site
        self.sizes: Mapping[str, int] = sizes or {}
        self._made: dict[str, _Item] = {}

    def __call__(self, record: Record) -> _Item:
        item = self._made.get(record.id)
        if item is None or item.record is not record:
            item = self._made[record.id] = self._make(record)
        return item

    def _make(self, record: Record) -> _Item:
        content = body_html(record, self.site) or f"<p>{html.escape(record.summary or '')}</p>"
        return _Item(
            record=record,
            id=entry_id(record, self.site),
            title=xml_text(record.title).strip() or record.id,
            url=record_url(record, self.site),
            html=xml_text(content),
            image=self._image(record),
        )

    def _image(self, record: Record) -> _Image | None:
        if record.image is None:
            return None
        src = record.image.src
        mime = _MIME.guess_type(src.split("?", 1)[0])[0] or "application/octet-stream"
        credit = xml_text(record.image.credit) if record.image.credit else None
        length = self.sizes.get(src, 0)
        return _Image(media_url(src, self.site), mime, length, xml_text(record.image.alt), credit)


class _FeedExtension(BaseExtension):  # type: ignore[misc]  # feedgen ships no types
    """Declares the namespaces our entry elements use in one format."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt

    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS, "dc": DC_NS} if self.fmt == "rss" else {"media": MEDIA_NS}


class _EntryExtension(BaseEntryExtension):  # type: ignore[misc]  # feedgen ships no types
    """The parts of an entry feedgen 1.0 gets wrong (#135) or lacks, written by us."""

    item: _Item | None = None
    author: str = ""
    feed_language: str = ""

    def extend_atom(self, entry: Any) -> Any:
        item = self.item
        assert item is not None, "every entry gets its item before rendering"
        language = item.record.language
        alternate = xml_elem("link", entry, rel="alternate", type="text/html", href=item.url)
        if language:
            alternate.set("hreflang", language)
        if item.image is not None:
            image = item.image
            enclosure = xml_elem("link", entry, rel="enclosure", type=image.type, href=image.url)
            if image.length:
                enclosure.set("length", str(image.length))
            enclosure.set("title", image.alt)
        _media(entry, item.image)
        if language and language != self.feed_language:
            entry.set(_XML_LANG, language)
        return entry

    def extend_rss(self, entry: Any) -> Any:
        item = self.item
        assert item is not None, "every entry gets its item before rendering"
        xml_elem("pubDate", entry).text = rfc2822(item.record.published)
        xml_elem(f"{{{DC_NS}}}creator", entry).text = self.author
        language = item.record.language
        if language and language != self.feed_language:
            # RSS 2.0 has a language only for the channel; Dublin Core's names an item's own.
            xml_elem(f"{{{DC_NS}}}language", entry).text = language
        _media(entry, item.image)
        return entry


def _media(entry: Any, image: _Image | None) -> None:
    """The record's image as a Media RSS element, with its alt text and credit."""
    if image is None:
        return
    content = xml_elem(f"{{{MEDIA_NS}}}content", entry, url=image.url, type=image.type, medium="image")
    if image.length:
        content.set("fileSize", str(image.length))
    xml_elem(f"{{{MEDIA_NS}}}description", content, type="plain").text = image.alt
    if image.credit:
        xml_elem(f"{{{MEDIA_NS}}}credit", content).text = image.credit


def _fill_entry(entry: Any, item: _Item, fmt: Format, author: str) -> None:
    record = item.record
    entry.id(item.id)
    entry.title(item.title)
    entry.updated(record.updated_or_published)
    entry.content(item.html, type="html")  # Atom <content>, RSS <content:encoded>
    for tag in dict.fromkeys(record.tags):
        entry.category(term=tag)
    if fmt == "atom":
        entry.published(record.published)
        entry.author(name=author)
        for organiser in record.organisers:
            entry.contributor(name=xml_text(organiser))
        if record.summary:
            entry.summary(xml_text(record.summary))
        return
    # RSS: <description> is HTML to readers, so the plain-text summary is escaped once more.
    # Without a summary, feedgen puts the full HTML in <description> and leaves out content:encoded.
    if record.summary:
        entry.description(html.escape(xml_text(record.summary), quote=False))
    entry.link(href=item.url)
    if item.image is not None:
        entry.enclosure(item.image.url, str(item.image.length), item.image.type)


def _generator(
    fmt: Format,
    records: Sequence[Record],
    site: SiteSettings,
    *,
    path: str,
    title: str,
    language: str,
    items: Callable[[Record], _Item],
) -> FeedGenerator:
    generator = FeedGenerator()
    generator.register_extension("publisher", functools.partial(_FeedExtension, fmt), _EntryExtension)
    feed_url = f"{site.url}/{urllib.parse.quote(path.lstrip('/'))}"
    author = xml_text(site.author or site.title)
    generator.id(uuid.uuid5(uuid.NAMESPACE_URL, feed_url).urn)
    generator.title(xml_text(title))
    generator.language(language)
    generator.author(name=author, uri=site.url)
    generator.generator("publisher")
    if fmt == "rss":
        generator.description(xml_text(title))
    if site.logo:
        generator.logo(media_url(site.logo, site))
    # Self first: feedgen makes the last link added the RSS channel <link>, which must be the site.
    generator.link(href=feed_url, rel="self", type=_TYPES[fmt])
    generator.link(href=site.url, rel="alternate", type="text/html")
    generator.updated(max((r.updated_or_published for r in records), default=_NO_RECORDS))
    for record in records:
        entry = generator.add_entry(order="append")
        extension = entry.publisher
        extension.item, extension.author, extension.feed_language = items(record), author, language
        _fill_entry(entry, extension.item, fmt, author)
    return generator


def _serialise(fmt: Format, generator: FeedGenerator) -> bytes:
    if fmt == "atom":
        return bytes(generator.atom_str(pretty=True))
    with _LOCALE_LOCK:  # feedgen's channel <lastBuildDate> goes through setlocale (see the module doc)
        return bytes(generator.rss_str(pretty=True))


def _render(
    fmt: Format,
    records: Sequence[Record],
    site: SiteSettings,
    feeds: FeedSettings,
    *,
    path: str,
    title: str | None,
    language: str | None,
    items: Callable[[Record], _Item],
) -> tuple[bytes, tuple[str, ...]]:
    shown = sort_newest_first(r for r in records if r.status != "draft")[: feeds.max_items]
    generator = _generator(
        fmt, shown, site, path=path, title=title or site.title, language=language or site.language, items=items
    )
    return _serialise(fmt, generator), tuple(r.id for r in shown)


def render_atom(
    records: Sequence[Record],
    site: SiteSettings,
    feeds: FeedSettings,
    *,
    path: str = "feeds/atom.xml",
    title: str | None = None,
    language: str | None = None,
    sizes: Mapping[str, int] | None = None,
) -> bytes:
    """An Atom 1.0 feed of the newest `feeds.max_items` records (drafts never).

    `path` is where the feed is published under the site URL (its `rel=self`
    link); `sizes` maps an image `src` to its size in bytes, when known.
    """
    items = _Items(site, sizes)
    return _render("atom", records, site, feeds, path=path, title=title, language=language, items=items)[0]


def render_rss(
    records: Sequence[Record],
    site: SiteSettings,
    feeds: FeedSettings,
    *,
    path: str = "feeds/rss.xml",
    title: str | None = None,
    language: str | None = None,
    sizes: Mapping[str, int] | None = None,
) -> bytes:
    """An RSS 2.0 feed of the newest `feeds.max_items` records (drafts never); see :func:`render_atom`."""
    items = _Items(site, sizes)
    return _render("rss", records, site, feeds, path=path, title=title, language=language, items=items)[0]


class Listed(Protocol):
    """What decides which feeds show a record: a `Record`, or a build's summary of one."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def language(self) -> str | None: ...


L = TypeVar("L", bound=Listed)


@dataclass(frozen=True)
class _Scope(Generic[L]):
    name: str
    folder: str
    title: str
    language: str | None
    records: list[L]


def _grouped(records: Sequence[L], keys: Callable[[L], tuple[str, ...]], limit: int) -> dict[str, list[L]]:
    """Records by key, keeping the order given and at most `limit` per key."""
    groups: dict[str, list[L]] = {}
    for record in records:
        for key in keys(record):
            group = groups.setdefault(key, [])
            if len(group) < limit:
                group.append(record)
    return dict(sorted(groups.items()))


def _shared_language(records: Sequence[L]) -> str | None:
    """The language every record of a feed is in, which the feed then declares; None when they differ."""
    languages = {r.language for r in records}
    return languages.pop() if len(languages) == 1 else None


def _scopes(newest: Sequence[L], settings: Settings) -> list[_Scope[L]]:
    """The feeds of records given newest first (drafts left out here)."""
    site, limit = settings.site, settings.feeds.max_items
    newest = [r for r in newest if r.status != "draft"]
    scopes = [_Scope("site", "feeds", site.title, None, newest[:limit])]
    if settings.feeds.by_tag:
        by_tag = _grouped(newest, lambda r: tuple(dict.fromkeys(r.tags)), limit)
        scopes += [
            _Scope(f"tag:{t}", f"feeds/tags/{t}", f"{site.title}: {t}", _shared_language(rs), rs)
            for t, rs in by_tag.items()
        ]
    if settings.feeds.by_language:
        by_language = _grouped(newest, lambda r: (r.language or site.language,), limit)
        scopes += [
            _Scope(f"language:{lang}", f"feeds/languages/{lang}", f"{site.title} ({lang})", lang, rs)
            for lang, rs in by_language.items()
        ]
    return scopes


def feed_set(
    records: Sequence[Record], settings: Settings, *, sizes: Mapping[str, int] | None = None
) -> list[FeedFile]:
    """Every feed of a site: Atom and RSS for the whole site, each tag and each language.

    Paths are relative to the output folder (`feeds/atom.xml`,
    `feeds/tags/<tag>/rss.xml`, `feeds/languages/<lang>/atom.xml`); tags and
    languages come in sorted order. Each record's body is rendered once.
    """
    items = _Items(settings.site, sizes)
    files = []
    for scope in _scopes(sort_newest_first(records), settings):
        for fmt, name in _FILES:
            path = f"{scope.folder}/{name}"
            content, ids = _render(
                fmt,
                scope.records,
                settings.site,
                settings.feeds,
                path=path,
                title=scope.title,
                language=scope.language,
                items=items,
            )
            files.append(FeedFile(path=path, format=fmt, content=content, record_ids=ids, scope=scope.name))
    return files


def feed_members(newest: Sequence[Listed], settings: Settings) -> set[str]:
    """The ids of the records `feed_set` would show, from records (or their summaries) given newest first.

    `feed_set` over only these records gives the same feeds as over all of
    them: each feed shows the newest records of its kind, and these hold them.
    """
    return {record.id for scope in _scopes(newest, settings) for record in scope.records}
