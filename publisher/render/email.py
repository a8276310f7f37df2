"""Newsletter issues: Jinja2 fills an MJML template, mjml-python compiles it once.

`render_issue` turns one record (a "single" issue) or several (a "digest") into
an `Issue`: subject, preheader, the compiled HTML and a plain-text part written
for reading. Both still hold the per-recipient placeholders below;
`personalise` fills them with plain string work, so a send loop never
compiles MJML (`mjml_compiles()` counts the compiles, for tests).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
import mjml
from markupsafe import Markup, escape

from publisher.errors import InvalidInput, Problem, relative
from publisher.render import dates
from publisher.render.calendar import calendar_url, render_ics
from publisher.render.filling import fill, without_control
from publisher.render.markdown import body_html_and_text, media_url
from publisher.render.plaintext import first_sentence, shorten, underline, wrap
from publisher.render.wording import words_for
from publisher.site.records import Record, sort_newest_first
from publisher.site.settings import Settings, SiteSettings
from publisher.site.templates import environment

# Per-recipient placeholders, filled after the one MJML compile of an issue.
NAME = "%%PUBLISHER_NAME%%"
UNSUBSCRIBE_URL = "%%PUBLISHER_UNSUBSCRIBE_URL%%"
EMAIL = "%%PUBLISHER_EMAIL%%"
PREFERENCES_URL = "%%PUBLISHER_PREFERENCES_URL%%"
_PLACEHOLDERS = re.compile("%%PUBLISHER_(NAME|UNSUBSCRIBE_URL|EMAIL|PREFERENCES_URL)%%")

PREHEADER_LIMIT = 150
TEASER_LIMIT = 300


@dataclass(frozen=True)
class Issue:
    """One newsletter edition, compiled once, with placeholders for each recipient."""

    id: str
    kind: Literal["single", "digest"]
    language: str
    subject: str
    preheader: str
    html: str
    text: str
    record_ids: tuple[str, ...]
    calendar: bytes | None = None
    title: str = ""
    # The newest change among its records: the Date of the message `build` writes.
    date: dt.datetime | None = None
    list_name: str | None = None
    # The greeting as written (holding NAME), and as it reads when a name is empty.
    greeting: str = ""
    greeting_without_name: str = ""
    # The footer's "sent to EMAIL" sentence, left out when the email is empty.
    sent_to: str = ""
    # The issue's page in the public archive, and the "View in your browser" link to it as the HTML
    # holds it (the archive's copy of the page leaves the link out).
    web_url: str = ""
    web_link: str = ""
    # The site's preferences page without a token: what previews and the archive link to.
    neutral_preferences_url: str = ""


_compiles = 0


def mjml_compiles() -> int:
    """How many times this process compiled MJML (one per rendered issue)."""
    return _compiles


def compile_mjml(source: str) -> str:
    """MJML → HTML with mjml-python; counted by `mjml_compiles()`."""
    global _compiles
    _compiles += 1
    html: str = mjml.mjml2html(source)
    return html


@dataclass(frozen=True)
class _Item:
    """What the templates see of one record."""

    id: str
    anchor: str
    title: str
    url: str
    date: str
    summary: str
    teaser: str
    body_html: Markup
    body_text: str
    image: Mapping[str, str] | None
    people: tuple[Mapping[str, str | None], ...]
    links: tuple[Mapping[str, str | None], ...]
    when: str | None
    where: str | None
    calendar_url: str | None
    cancelled: bool


# Inline styles for the sanitised body HTML: mail clients ignore much of <style>.
_BODY_STYLES = (
    ("<blockquote>", '<blockquote style="margin:0 0 16px;padding:4px 0 4px 16px;border-left:4px solid #b9c6d3;">'),
    ("<img ", '<img style="max-width:100%;height:auto;" '),
    ("<pre>", '<pre style="white-space:pre-wrap;word-wrap:break-word;font-size:14px;">'),
)


def _styled(html: str) -> str:
    for plain, styled in _BODY_STYLES:
        html = html.replace(plain, styled)
    return html


def _tagged(url: str, settings: Settings, campaign: str, source: str) -> str:
    """The URL with UTM parameters when the site turns link tagging on."""
    if not settings.utm.enabled:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [("utm_source", source), ("utm_medium", settings.utm.email_medium), ("utm_campaign", campaign)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def archive_url(site_url: str, issue_id: str) -> str:
    """An issue's page in the public archive (`publisher.render.archive`), written once the issue is sent."""
    return f"{site_url.rstrip('/')}/archive/{issue_id}.html"


def _read_online(record: Record, page: str, single: bool) -> str:
    """Where "Read online" goes: the record's own `url`, else the record on the issue's archive page."""
    if record.url:
        return record.url
    return page if single else f"{page}#record-{re.sub(r'[^A-Za-z0-9_-]', '-', record.id)}"


def _item(
    record: Record, settings: Settings, language: str, source: str, html: str, text: str, page: str, single: bool
) -> _Item:
    """What the templates see of one record; `html` is its body_html, `text` that as plain text.

    `page` is the issue's archive page, where a record without a `url` is read online.
    """
    site = settings.site
    summary = " ".join((record.summary or "").split())
    first_paragraph = text.split("\n\n", 1)[0] if text else ""
    image = None
    if record.image is not None:
        image = {"url": media_url(record.image.src, site), "alt": record.image.alt, "credit": record.image.credit or ""}
    calendar = record.starts is not None and record.status != "cancelled"
    return _Item(
        id=record.id,
        anchor="record-" + re.sub(r"[^A-Za-z0-9_-]", "-", record.id),
        title=" ".join(record.title.split()),
        url=_tagged(_read_online(record, page, single), settings, record.id, source),
        date=dates.long_date(record.published, language),
        summary=summary,
        teaser=summary or shorten(first_paragraph, TEASER_LIMIT),
        body_html=Markup(_styled(html)),
        body_text=text.rstrip("\n"),
        image=image,
        people=tuple({"name": p.name, "role": p.role} for p in record.people),
        links=tuple({"title": link.title, "url": link.url, "language": link.language} for link in record.links),
        when=dates.event_when(record.starts, record.ends, language) if record.starts else None,
        where=record.location,
        calendar_url=calendar_url(record, site) if calendar else None,
        cancelled=record.status == "cancelled",
    )


def issue_id(records: Sequence[Record]) -> str:
    """A single issue's id is its record's; a digest's is a hash of its record ids."""
    ids = sorted({record.id for record in records})
    if len(ids) == 1:
        return ids[0]
    return "digest-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Frame:
    """The issue-wide parts: who it is for, what it is called, its wording."""

    kind: Literal["single", "digest"]
    language: str
    title: str
    subject: str
    preheader: str
    dates: str


def _frame(records: Sequence[Record], items: Sequence[_Item], settings: Settings) -> _Frame:
    site = settings.site
    if len(records) == 1:
        record, item = records[0], items[0]
        language = record.language or site.language
        preheader = item.summary or first_sentence(item.body_text) or item.title
        return _Frame("single", language, item.title, item.title, shorten(preheader, PREHEADER_LIMIT), item.date)
    language = site.language
    # The days its items show (`dates.long_date`: each record's date in its own offset), not the site zone's: a
    # record published at 23:30-08:00 on the 3rd is dated the 3rd in the issue, and the span must hold that day.
    days = sorted(record.published.date() for record in records)
    span = dates.date_range(days[0], days[-1], language)
    title = f"{site.title}: {words_for(language)['updates'].format(count=len(records))}"
    preheader = shorten(" · ".join(item.title for item in items), PREHEADER_LIMIT)
    return _Frame("digest", language, title, f"{title}, {span}", preheader, span)


def _context(
    frame: _Frame, items: Sequence[_Item], settings: Settings, list_name: str | None, page: str
) -> dict[str, Any]:
    site = settings.site
    words = words_for(frame.language)
    public = settings.newsletter.about(list_name).public_name if list_name else ""
    return {
        "kind": frame.kind,
        "language": frame.language,
        "direction": dates.text_direction(frame.language),
        "title": frame.title,
        "subject": frame.subject,
        "preheader": frame.preheader,
        "dates": frame.dates,
        "items": items,
        "words": words,
        "greeting": words["hello"].format(name=NAME),
        "sent_to": words["sent_to"].format(email=EMAIL),
        "list_text": words["list"].format(list=public) if list_name else "",
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "preferences_url": PREFERENCES_URL,
        "web_url": page,
        "web_link": _web_link(page, words["view_online"]),
        "site": _site(site),
        "footer_lines": [line.strip() for line in settings.newsletter.footer.splitlines() if line.strip()],
        "wrap": wrap,
        "underline": underline,
    }


def _web_link(page: str, words: str) -> Markup:
    """The "View in your browser" link, one string the archive's copy can leave out."""
    return Markup('<a href="{}" style="color:#4a4f55;">{}</a>').format(page, words)


def _site(site: SiteSettings) -> dict[str, str]:
    logo = media_url(site.logo, site) if site.logo else ""
    return {"title": site.title, "url": site.url, "logo_url": logo}


def render_issue(
    records: Sequence[Record],
    settings: Settings,
    templates: Path | None = None,
    *,
    list_name: str | None = None,
) -> Issue:
    """One record → a single issue; several → a digest, newest first.

    `templates` is the site's own templates folder (it overrides the defaults
    by file name). Pure: no clock, no network, no files written.
    """
    if not records:
        raise ValueError("an issue needs at least one record")
    return _render_issues([records], settings, templates, list_name)[0]


def render_single_issues(records: Sequence[Record], settings: Settings, templates: Path | None = None) -> list[Issue]:
    """`[render_issue([record], settings, templates) for record in records]`, the same issues, faster.

    They are made a stage at a time (every body, then every template, then
    every MJML compile...): each stage's code stays in the processor's caches,
    which makes a build's issues about 30% faster here. Should one fail, they
    are made one by one, so that it raises just as that loop would.
    """
    try:
        return _render_issues([[record] for record in records], settings, templates, None)
    except Exception:  # the loop below raises it again, for the first record that has it
        return [render_issue([record], settings, templates) for record in records]


def _render_issues(
    groups: Sequence[Sequence[Record]], settings: Settings, templates: Path | None, list_name: str | None
) -> list[Issue]:
    """One issue per group of records (see `render_issue`), made a stage at a time."""
    site, source = settings.site, list_name or "newsletter"
    ordered = [sort_newest_first({record.id: record for record in group}.values()) for group in groups]
    languages = [(rs[0].language or site.language) if len(rs) == 1 else site.language for rs in ordered]
    bodies = [[body_html_and_text(record, site) for record in rs] for rs in ordered]
    htmls = [[html for html, _ in bs] for bs in bodies]
    texts = [[text for _, text in bs] for bs in bodies]
    pages = [archive_url(site.url, issue_id(rs)) for rs in ordered]
    items = [
        [
            _item(record, settings, language, source, html, text, page, len(rs) == 1)
            for record, html, text in zip(rs, hs, ts, strict=True)
        ]
        for rs, language, hs, ts, page in zip(ordered, languages, htmls, texts, pages, strict=True)
    ]
    frames = [_frame(rs, its, settings) for rs, its in zip(ordered, items, strict=True)]
    contexts = [
        _context(frame, its, settings, list_name, page) for frame, its, page in zip(frames, items, pages, strict=True)
    ]
    sources = [_render("issue.mjml", context, templates) for context in contexts]
    compiled = [_compile(mjml, templates) for mjml in sources]
    plain = [_tidy(_render("issue.txt", context, templates)) for context in contexts]
    return [
        _issue(rs, frame, context, html, text, settings, list_name)
        for rs, frame, context, html, text in zip(ordered, frames, contexts, compiled, plain, strict=True)
    ]


def _issue(
    ordered: Sequence[Record],
    frame: _Frame,
    context: Mapping[str, Any],
    html: str,
    text: str,
    settings: Settings,
    list_name: str | None,
) -> Issue:
    words = words_for(frame.language)
    single = ordered[0] if len(ordered) == 1 else None
    calendar = None
    if single is not None and single.starts is not None and single.status != "cancelled":
        calendar = render_ics(single, settings.site)
    return Issue(
        id=issue_id(ordered),
        kind=frame.kind,
        language=frame.language,
        subject=frame.subject,
        preheader=frame.preheader,
        html=html,
        text=text,
        record_ids=tuple(record.id for record in ordered),
        calendar=calendar,
        title=frame.title,
        date=max(record.updated_or_published for record in ordered),
        list_name=list_name,
        greeting=context["greeting"],
        greeting_without_name=words["hello_anonymous"],
        sent_to=context["sent_to"],
        web_url=context["web_url"],
        web_link=str(context["web_link"]),
        neutral_preferences_url=f"{settings.site.url}/preferences",
    )


def _render(name: str, context: Mapping[str, Any], templates: Path | None) -> str:
    """One template filled; a broken (site) template is bad input naming its file and line."""
    root = templates.parent if templates is not None else None
    try:
        return without_control(fill(environment(templates).get_template(name), context))
    except jinja2.TemplateSyntaxError as exc:
        where = relative(Path(exc.filename), root) if exc.filename else name
        raise InvalidInput([Problem(where, exc.lineno or 1, "template", exc.message or str(exc))]) from None
    except jinja2.TemplateError as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith((".mjml", ".txt"))]
        where, line = (relative(Path(frames[-1].filename), root), frames[-1].lineno or 1) if frames else (name, 1)
        raise InvalidInput([Problem(where, line, "template", exc.message or str(exc))]) from None


def _compile(source: str, templates: Path | None) -> str:
    try:
        return compile_mjml(source)
    except ValueError as exc:
        custom = sorted(templates.glob("issue*.mjml")) if templates is not None else []
        where = relative(custom[0], templates.parent) if templates is not None and custom else "issue.mjml"
        raise InvalidInput([Problem(where, 1, "template", f"MJML does not compile: {exc}")]) from None


_BLANK_LINES = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    """No trailing spaces (but the '-- ' signature line), at most one blank line in a row."""
    tidy = "\n".join([line if line == "-- " else line.rstrip() for line in text.splitlines()])
    if "\n\n\n" in tidy:
        tidy = _BLANK_LINES.sub("\n\n", tidy)
    return tidy.strip("\n") + "\n"


def personalise(
    issue: Issue, *, name: str, unsubscribe_url: str, email: str, preferences_url: str = ""
) -> tuple[str, str]:
    """The issue's (html, text) for one recipient: placeholders filled, HTML-escaped in the HTML.

    An empty name gives the greeting without a name ("Hello,"), an empty email
    leaves out the "sent to" sentence, an empty `preferences_url` links the
    site's preferences page without a token. One pass of string work over each
    part: cheap enough to run for every recipient.
    """
    name, email = " ".join(name.split()), email.strip()
    preferences = preferences_url.strip() or issue.neutral_preferences_url
    values = {"NAME": name, "UNSUBSCRIBE_URL": unsubscribe_url.strip(), "EMAIL": email, "PREFERENCES_URL": preferences}
    html, text = issue.html, issue.text
    if not name and issue.greeting:
        html = html.replace(str(escape(issue.greeting)), str(escape(issue.greeting_without_name)))
        text = text.replace(issue.greeting, issue.greeting_without_name)
    if not email and issue.sent_to:
        html = html.replace(str(escape(issue.sent_to)), "")
        text = text.replace(issue.sent_to + "\n", "")
    escaped = {key: str(escape(value)) for key, value in values.items()}
    return _fill(html, escaped.__getitem__), _fill(text, values.__getitem__)


def _fill(template: str, value: Callable[[str], str]) -> str:
    return _PLACEHOLDERS.sub(lambda match: value(match.group(1)), template)
