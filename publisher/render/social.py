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
3. the text, cut at a word with "…"; then the hashtags, the last first; never
   the URL (:mod:`publisher.render.fitting` says exactly how); a URL that
   does not fit on its own is an error on the record's ``url``.

A record's own text for a network (``social.<network>.text``) is the whole
post as written: nothing is cut or added, except the record's link after it
when the text does not already hold it. Such a text, or a part of a thread
(``social.<network>.thread``), that does not fit is an error
(:class:`InvalidInput`, exit 2), never a silent cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from publisher.errors import InvalidInput, Problem, relative
from publisher.render.fitting import DoesNotFit, Fitter, compose, fit, hashtags_for, shorten
from publisher.render.lengths import LIMITS, URL_LENGTH, measure, too_long
from publisher.render.links import utm
from publisher.render.markdown import media_url, record_url
from publisher.site.records import NETWORKS, Record
from publisher.site.settings import Settings
from publisher.site.templates import environment

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

# "Title with @a @b": the word before the handles, by the record's language.
WITH = {"en": "with", "es": "con", "fr": "avec", "pt": "com", "it": "con", "de": "mit", "nl": "met", "ca": "amb"}


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


def post_url(record: Record, network: str, settings: Settings) -> str:
    """The record's URL as a post links it: with UTM parameters when `[utm] enabled`."""
    url = record_url(record, settings.site)
    if settings.utm.enabled:
        url = utm(url, network, settings.utm.medium, record.id)
    return url


@lru_cache(maxsize=64)
def _template(templates: Path | None, network: str) -> tuple[jinja2.Template, dict[str, object]]:
    """The network's compiled template and its globals, merged once.

    Cached for the life of the process: a long-running process does not see a
    template edited after its first use.
    """
    template = environment(templates).get_template(f"post-{network}.txt")
    return template, dict(template.globals)


def _render(template: tuple[jinja2.Template, dict[str, object]], context: dict[str, object]) -> str:
    """`Template.render`, with the globals merged once per template instead of once per call."""
    compiled, globals_ = template
    environment_ = compiled.environment
    merged = environment_.context_class(environment_, {**globals_, **context}, compiled.name, compiled.blocks)
    return str(environment_.concat(compiled.root_render_func(merged)))


def _template_problem(
    exc: Exception, network: str, templates: Path | None, compiled: jinja2.Template | None = None
) -> Problem:
    """A template error as `path:line: template: message` (the line where rendering failed, when known)."""
    name = getattr(exc, "filename", None) or (compiled.filename if compiled else None) or f"post-{network}.txt"
    line = getattr(exc, "lineno", None)
    if line is None and compiled is not None:  # a rendering error: find the template's line in the traceback
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == compiled.filename:
                line = compiled.get_corresponding_lineno(tb.tb_lineno)
            tb = tb.tb_next
    shown = relative(Path(name), templates.parent if templates is not None else None)
    message = str(getattr(exc, "message", None) or exc)
    if not isinstance(exc, jinja2.TemplateError):
        message = f"{type(exc).__name__}: {message}"
    return Problem(shown, line or 1, "template", message)


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
    handles = _mentions(record, network)
    texts: dict[tuple[str | None, int], str] = {}

    def text(summary: str | None, count: int) -> str:
        if (summary, count) not in texts:
            context = {"record": record, "title": record.title, "summary": summary, "mentions": handles[:count]}
            context.update(network=network, language=language, site=settings.site, with_word=with_word)
            try:
                rendered = _render(template, context)
            except Exception as exc:  # a site's template is input: any error in it is a problem to report
                raise InvalidInput([_template_problem(exc, network, templates, template[0])]) from None
            texts[summary, count] = rendered.strip()
        return texts[summary, count]

    post = ""
    for whole in (False, True):  # measured by parts, then (should the guard fail) whole
        fitter = Fitter(network, url, allowed, url_length, whole=whole)
        found = _ladder(fitter, text, record.summary, len(handles), record.social.hashtags)
        try:
            post = found or fitter.fit(text(None, 0), record.social.hashtags)
        except DoesNotFit as exc:
            line = _line(record, "url", "id", "title")
            raise InvalidInput([Problem(record.source, line, "url", str(exc))]) from None
        if fitter.check(post):
            break
    return post


def _ladder(
    fitter: Fitter, text: Callable[[str | None, int], str], summary: str | None, handles: int, hashtags: Sequence[str]
) -> str | None:
    """The first whole post that fits: with the summary and every handle, then
    without the summary and with as many handles as fit; None when none does."""

    def attempt(summary: str | None, count: int) -> str | None:
        body = text(summary, count)
        tags = hashtags_for(hashtags, body)
        return compose(body, fitter.url, tags) if fitter.ok(body, tags) else None

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
