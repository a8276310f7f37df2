"""Social posts: one per record per network, length-checked with each network's rule.

A post is "text url #tag #tag". The text comes from the network's template
(`post-x.txt`, `post-mastodon.txt`, `post-bluesky.txt`; a site's own
`templates/` overrides them by name): the record's title, its summary when the
whole post still fits, and the people's handles on that network ("with @a @b")
while they fit. Lengths are counted as each network counts them
(:mod:`publisher.render.lengths`).

When a post is too long, things give way in this order, and no other:

1. the summary;
2. the handles, the last one first;
3. the text, cut after its last whole word that fits, with "…" (trailing
   spaces and punctuation ``,;:.!?-–—/([{“‘«`` dropped before the "…"); a
   first word too long on its own (or a text without spaces, as Chinese or
   Japanese is written) is cut between two characters; down to no text at all;
4. the hashtags, the last one first (only when even no text with the URL and
   the hashtags is too long);
5. never the URL: a URL that does not fit on its own is an error on ``url``.

A record's own text for a network (``social.<network>.text``) is the whole
post as written: nothing is cut or added, except the record's link after it
when the text does not already hold it. Such a text, or a part of a thread
(``social.<network>.thread``), that does not fit is an error
(:class:`InvalidInput`, exit 2), never a silent cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import grapheme
import jinja2

from publisher.config import Settings
from publisher.errors import InvalidInput, Problem, relative
from publisher.records import NETWORKS, Record
from publisher.render.lengths import LIMITS, URL_LENGTH, fits, measure, too_long
from publisher.render.links import utm
from publisher.render.markdown import media_url, record_url
from publisher.templates import environment

__all__ = [
    "LIMITS",
    "NETWORKS",
    "DoesNotFit",
    "Post",
    "PostImage",
    "check_posts",
    "fit",
    "measure",
    "post_url",
    "render_post",
    "render_posts",
    "shorten",
]

ELLIPSIS = "…"
# "Title with @a @b": the word before the handles, by the record's language.
WITH = {"en": "with", "es": "con", "fr": "avec", "pt": "com", "it": "con", "de": "mit", "nl": "met", "ca": "amb"}
_TRAILING = " \t\r\n\f\v\u00a0\u3000,;:.!?-–—/([{“‘«"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class PostImage:
    """An image to attach, with its alt text.

    `url` is the image as published (absolute). `path` is set when the image is
    a file of the site: it is then relative to the site's folder (rendering is
    pure and knows no folder), and the channel reads ``site root / path``. For an
    image given as an absolute URL, `path` is None and the channel fetches `url`.
    """

    url: str
    alt: str
    path: Path | None = None


@dataclass(frozen=True)
class Post:
    """One post for one network; `thread` holds the follow-up parts, in order.

    `url` is the link in the text (UTM-tagged when the site asks for it);
    `length` is the text's length as the network counts it, `limit` the most it
    allows. `card_title` and `card_description` describe the link for a card.
    """

    network: str
    record_id: str
    text: str
    language: str
    url: str | None = None
    images: tuple[PostImage, ...] = ()
    thread: tuple[str, ...] = ()
    length: int = 0
    limit: int = 0
    card_title: str | None = None
    card_description: str | None = None


class DoesNotFit(ValueError):
    """Even the URL alone is longer than the network allows."""

    def __init__(self, network: str, length: int, limit: int) -> None:
        self.network, self.length, self.limit = network, length, limit
        super().__init__(f"is {length} characters; {network} allows {limit}")


def _compose(text: str, url: str | None, tags: Sequence[str]) -> str:
    return " ".join(part for part in (text, url or "", " ".join(tags)) if part)


def _hashtags(hashtags: Iterable[str], text: str) -> list[str]:
    """ "#tag" for each hashtag, once, leaving out those the text already shows."""
    tags = _unique_tags(tuple(hashtags))
    if "#" not in text:
        return list(tags)
    return [tag for tag in tags if not re.search(rf"(?<![\w#]){re.escape(tag)}(?!\w)", text, re.IGNORECASE)]


@lru_cache(maxsize=4096)
def _unique_tags(hashtags: tuple[str, ...]) -> tuple[str, ...]:
    tags: dict[str, str] = {}
    for raw in hashtags:
        tag = raw.strip().lstrip("#")
        if tag:
            tags.setdefault(tag.casefold(), f"#{tag}")
    return tuple(tags.values())


def _last_fitting(ends: Sequence[int], build: Callable[[int], str], ok: Callable[[str], bool]) -> str | None:
    """The longest `build(end)` that is `ok`, searching `ends` (shortest first) by halves."""
    low, high, best = 0, len(ends) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = build(ends[middle])
        if ok(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def shorten(text: str, ok: Callable[[str], bool]) -> str:
    """`text` itself when `ok`, else its longest cut that is `ok` (see the module's docstring), else ""."""
    if ok(text):
        return text

    def cut(end: int, source: str = text) -> str:
        kept = source[:end].rstrip(_TRAILING)
        return kept + ELLIPSIS if kept else ""

    words = [m.start() for m in _SPACES.finditer(text) if text[: m.start()].rstrip(_TRAILING)]
    best = _last_fitting(words, cut, lambda c: bool(c) and ok(c))
    if best is None:
        first = text.split(maxsplit=1)[0] if text.strip() else ""
        ends = list(_grapheme_ends(first))[:-1]
        best = _last_fitting(ends, lambda end: cut(end, first), lambda c: bool(c) and ok(c))
    return best or ""


def _grapheme_ends(word: str) -> Iterable[int]:
    end = 0
    for cluster in grapheme.graphemes(word):
        end += len(cluster)
        yield end


class _Fitter:
    """Tells whether "text url #tags" fits, measuring the text alone plus its tail.

    On X and Mastodon the length of "a b" is the length of "a" plus that of
    " b" (no URL or emoji holds a space; see :mod:`publisher.render.lengths`),
    so the tail (" url #tags", the same for every cut of the text) is counted
    once. :meth:`check` measures the chosen post whole, as a guard.
    """

    def __init__(self, network: str, url: str | None, allowed: int, url_length: int, *, whole: bool = False) -> None:
        self.network, self.url, self.allowed, self.url_length = network, url, allowed, url_length
        self.whole = whole or network == "bluesky"  # graphemes are cheap; a cluster may hold a space
        self._tails: dict[tuple[str, ...], int | None] = {}

    def ok(self, text: str, tags: Sequence[str]) -> bool:
        key = tuple(tags)
        if key not in self._tails:
            tail = _compose("", self.url, tags)
            self._tails[key] = measure(self.network, " " + tail, url_length=self.url_length) if tail else None
        tail_length = self._tails[key]
        if self.whole or not text or tail_length is None:
            return fits(self.network, _compose(text, self.url, tags), limit=self.allowed, url_length=self.url_length)
        return measure(self.network, text, url_length=self.url_length) + tail_length <= self.allowed

    def check(self, post: str) -> bool:
        return fits(self.network, post, limit=self.allowed, url_length=self.url_length)

    def fit(self, text: str, tags: Sequence[str]) -> str:
        """The rules of :func:`fit` for a text and its hashtags."""
        if self.ok(text, tags):
            return _compose(text, self.url, tags)
        kept = len(tags)
        while not self.ok("", tags[:kept]):
            if kept == 0:
                length = measure(self.network, self.url or "", url_length=self.url_length)
                raise DoesNotFit(self.network, length, self.allowed)
            kept -= 1
        return _compose(shorten(text, lambda t: self.ok(t, tags[:kept])), self.url, tags[:kept])


def fit(
    network: str,
    text_before_url: str,
    url: str | None,
    hashtags: Sequence[str],
    *,
    limit: int | None = None,
    url_length: int = URL_LENGTH,
) -> str:
    """ "text url #tag #tag", made to fit `network` by cutting the text, then dropping hashtags.

    Only the free text is ever shortened (at a word boundary, with "…"); the
    URL and each kept hashtag stay whole. Hashtags go, the last first, only
    when even the URL and the hashtags without any text are too long. Raises
    :class:`DoesNotFit` when the URL alone is.
    """
    allowed = LIMITS[network] if limit is None else limit
    text = text_before_url.strip()
    tags = _hashtags(hashtags, text)
    fitter = _Fitter(network, url, allowed, url_length)
    post = fitter.fit(text, tags)
    return post if fitter.check(post) else _Fitter(network, url, allowed, url_length, whole=True).fit(text, tags)


def post_url(record: Record, network: str, settings: Settings) -> str:
    """The record's URL as a post links it: with UTM parameters when `[utm] enabled`."""
    url = record_url(record, settings.site)
    if settings.utm.enabled:
        url = utm(url, network, settings.utm.medium, record.id)
    return url


@lru_cache(maxsize=64)
def _template(templates: Path | None, network: str) -> tuple[jinja2.Template, dict[str, object]]:
    """The network's compiled template (cached for the process) and its globals, merged once."""
    template = environment(templates).get_template(f"post-{network}.txt")
    return template, dict(template.globals)


def _render(template: tuple[jinja2.Template, dict[str, object]], context: dict[str, object]) -> str:
    """`Template.render`, with the globals merged once per template instead of once per call."""
    compiled, globals_ = template
    environment_ = compiled.environment
    merged = environment_.context_class(environment_, {**globals_, **context}, compiled.name, compiled.blocks)
    return str(environment_.concat(compiled.root_render_func(merged)))


def _template_problem(exc: jinja2.TemplateError, network: str, templates: Path | None) -> Problem:
    name = getattr(exc, "filename", None) or getattr(exc, "name", None) or f"post-{network}.txt"
    shown = relative(Path(name), templates.parent if templates is not None else None)
    return Problem(shown, getattr(exc, "lineno", None) or 1, "template", str(exc.message or exc))


def _mentions(record: Record, network: str) -> list[str]:
    """The people's handles on `network`, each once, with its "@"."""
    handles: list[str] = []
    for person in record.people:
        handle = person.handles.get(network, "").strip()
        if handle:
            handle = handle if handle.startswith("@") else f"@{handle}"
            if handle not in handles:
                handles.append(handle)
    return handles


def _generated(
    record: Record, network: str, settings: Settings, templates: Path | None, url: str, allowed: int, url_length: int
) -> str:
    """The post made from the template, giving way in the documented order until it fits."""
    try:
        template = _template(templates, network)
    except jinja2.TemplateError as exc:
        raise InvalidInput([_template_problem(exc, network, templates)]) from None
    language = record.language or settings.site.language
    with_word = WITH.get(language.split("-")[0].lower(), WITH["en"])
    texts: dict[tuple[str | None, int], str] = {}

    def text(summary: str | None, count: int) -> str:
        if (summary, count) not in texts:
            context = {"record": record, "title": record.title, "summary": summary, "mentions": handles[:count]}
            context.update(network=network, language=language, site=settings.site, with_word=with_word)
            try:
                rendered = _render(template, context)
            except jinja2.TemplateError as exc:
                raise InvalidInput([_template_problem(exc, network, templates)]) from None
            texts[summary, count] = rendered.strip()
        return texts[summary, count]

    handles = _mentions(record, network)
    post = ""
    for whole in (False, True):  # measured by parts, then (should the guard fail) whole
        fitter = _Fitter(network, url, allowed, url_length, whole=whole)
        found = _ladder(fitter, text, record.summary, len(handles), record.social.hashtags)
        try:
            post = found or fitter.fit(text(None, 0), _hashtags(record.social.hashtags, text(None, 0)))
        except DoesNotFit as exc:
            line = _line(record, "url", "id", "title")
            raise InvalidInput([Problem(record.source, line, "url", str(exc))]) from None
        if fitter.check(post):
            break
    return post


def _ladder(
    fitter: _Fitter, text: Callable[[str | None, int], str], summary: str | None, handles: int, hashtags: Sequence[str]
) -> str | None:
    """The first whole post that fits: with the summary and every handle, then
    without the summary and with as many handles as fit; None when none does."""

    def attempt(summary: str | None, count: int) -> str | None:
        body = text(summary, count)
        tags = _hashtags(hashtags, body)
        return _compose(body, fitter.url, tags) if fitter.ok(body, tags) else None

    found = attempt(summary, handles) if summary else None
    found = found or attempt(None, handles)
    if found is None and handles and (found := attempt(None, 0)) is not None:
        low, high = 0, handles - 1  # 0 handles fit, all do not: the most that fit, by halves
        while low < high:
            middle = (low + high + 1) // 2
            more = attempt(None, middle)
            found, low, high = (more, middle, high) if more else (found, low, middle - 1)
    return found


def _line(record: Record, *fields: str) -> int:
    """The line of the first of `fields` the record's file has (1 when none)."""
    return next((record.lines[f] for f in fields if f in record.lines), 1)


def _own_text(text: str, url: str, plain: str) -> tuple[str, str]:
    """A record's own text with its link after it, unless it already holds one: (text, link)."""
    for link in (url, plain):
        if link in text:
            return text, link
    return f"{text.rstrip()} {url}", url


def _images(record: Record, settings: Settings) -> tuple[PostImage, ...]:
    image = record.image
    if image is None:
        return ()
    absolute = image.src.startswith(("http://", "https://"))
    path = None if absolute else Path(image.src.lstrip("/"))
    return (PostImage(url=media_url(image.src, settings.site), alt=image.alt, path=path),)


def render_post(
    record: Record,
    network: str,
    settings: Settings,
    templates: Path | None = None,
    *,
    limit: int | None = None,
    url_length: int = URL_LENGTH,
) -> Post:
    """The post of `record` on `network` (x, mastodon or bluesky); pure.

    `templates` is the site's own templates folder (None: the defaults only).
    `limit` and `url_length` default to the network's rule (a Mastodon
    instance may say otherwise). Raises InvalidInput naming the record's file
    and line when the record's own text or a thread part is too long.
    """
    if network not in LIMITS:
        raise ValueError(f"unknown network {network!r} (known: {', '.join(LIMITS)})")
    allowed = LIMITS[network] if limit is None else limit
    url = post_url(record, network, settings)
    own = record.social.override(network)
    problems: list[Problem] = []
    if own is not None and own.text:
        text, url = _own_text(own.text, url, record_url(record, settings.site))
        field = f"social.{network}.text"
        message = too_long(network, text, limit=allowed, url_length=url_length)
        if message:
            problems.append(Problem(record.source, _line(record, field, f"social.{network}"), field, message))
    else:
        text = _generated(record, network, settings, templates, url, allowed, url_length)
    thread = own.thread if own is not None else ()
    for index, part in enumerate(thread):
        field = f"social.{network}.thread.{index}"
        message = too_long(network, part, limit=allowed, url_length=url_length)
        if message:
            problems.append(Problem(record.source, _line(record, field, f"social.{network}.thread"), field, message))
    if problems:
        raise InvalidInput(problems)
    return Post(
        network=network,
        record_id=record.id,
        text=text,
        language=record.language or settings.site.language,
        url=url,
        images=_images(record, settings),
        thread=tuple(thread),
        length=measure(network, text, url_length=url_length),
        limit=allowed,
        card_title=record.title,
        card_description=record.summary,
    )


def render_posts(record: Record, settings: Settings, templates: Path | None = None) -> list[Post]:
    """The record's post on every network (x, mastodon, bluesky), or every problem with them."""
    posts: list[Post] = []
    problems: list[Problem] = []
    for network in NETWORKS:
        try:
            posts.append(render_post(record, network, settings, templates))
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidInput(problems)
    return posts


def check_posts(records: Iterable[Record], settings: Settings, templates: Path | None = None) -> list[Problem]:
    """Render every post of every record; every problem found, each once, in order."""
    problems: set[Problem] = set()
    for record in records:
        try:
            render_posts(record, settings, templates)
        except InvalidInput as exc:
            problems.update(exc.problems)
    return sorted(problems)
