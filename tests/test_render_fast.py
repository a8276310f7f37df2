"""The build's fast paths give exactly what the slow, standard ones give.

`issue_eml` writes the message bytes itself: it must equal what the email
package's generator writes for `build_message`'s message. `wrap` lays out
single-spaced text itself: it must equal `textwrap.TextWrapper`. A body of
plain prose is written without Markdown: it must equal what Markdown makes of
it. A file's line in `build --json` is written without the JSON encoder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import json
import textwrap
import traceback
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit

import jinja2
import pytest
from babel.dates import format_date
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from publisher.build.work import Output, file_json, file_line
from publisher.render import dates
from publisher.render.email import Issue
from publisher.render.filling import _CONTROL, fill, without_control
from publisher.render.markdown import paragraphs_html, paragraphs_text, plain_paragraphs, to_html
from publisher.render.message import PREVIEW_TO, build_message, issue_eml, preview, preview_unsubscribe_url
from publisher.render.plaintext import _SPACE, _collapsed, _Walker, html_to_text, wrap
from publisher.site.settings import Settings
from tests.issues_support import example as example_site
from tests.issues_support import example_issues


def reference_eml(issue: Issue, settings: Settings) -> bytes:
    """The .eml as the email package writes `build_message`'s message (what `issue_eml` did before)."""
    html, text = preview(issue, settings)
    host = urlsplit(settings.site.url).hostname or "localhost"
    headers = {}
    if settings.newsletter.reply_to:
        headers["Reply-To"] = settings.newsletter.reply_to
    if issue.list_name:
        headers["List-Id"] = f"<{issue.list_name}.{host}>"
    headers["List-Unsubscribe"] = f"<{preview_unsubscribe_url(settings)}>"
    message = build_message(
        issue,
        sender=settings.newsletter.from_,
        to=PREVIEW_TO,
        html=html,
        text=text,
        headers=headers,
        message_id=f"<{issue.id}@{host}>",
    )
    return message.as_bytes(policy=email.policy.SMTP)


def test_the_example_issues_eml_are_the_generators_bytes() -> None:
    settings, _, _ = example_site()
    for issue in example_issues():
        assert issue_eml(issue, settings) == reference_eml(issue, settings), issue.id
        listed = dataclasses.replace(issue, list_name="weekly")
        assert issue_eml(listed, settings) == reference_eml(listed, settings), issue.id


_SUBJECTS = st.text(
    st.sampled_from([*"abcXYZ019 .,:;()<>@\"'[]=?-_", "é", "ñ", "日", "\t", "\u00a0", "😀"]), min_size=1, max_size=100
).filter(lambda s: s.strip() and "\n" not in s and "\r" not in s)
_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True)
_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
_DATES = st.builds(
    lambda day, zone: day.replace(tzinfo=zone),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
    _OFFSETS,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_SUBJECTS, id=_IDS, date=st.none() | _DATES, text=st.text(max_size=300), html=st.text(max_size=300))
@example(subject="x" * 70, id="a", date=None, text="", html="")  # folded: longer than a line
@example(subject="Hello =?utf-8?q?x?= world", id="a..b", date=None, text="a\r\nb\rc", html="")
@example(subject="Informe: la Agenda 2030", id="a", date=dt.datetime(2018, 3, 15, tzinfo=dt.UTC), text="", html="")
def test_any_issue_eml_is_the_generators_bytes(
    subject: str, id: str, date: dt.datetime | None, text: str, html: str
) -> None:
    settings, _, _ = example_site()
    issue = Issue(id, "single", "en", subject, "", html, text, (id,), date=date)
    assert issue_eml(issue, settings) == reference_eml(issue, settings)


_WORDS = st.text(st.sampled_from([*"ab-", "é", "日", "\u00a0", "\x00"]), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(_WORDS, min_size=1, max_size=40),
    first=st.sampled_from(["", "> ", "- ", "12. ", "    " * 5]),
    rest=st.sampled_from(["", "> ", "  ", "    " * 6]),
    width=st.integers(min_value=1, max_value=80),
)
@example(words=["x" * 30, "y"], first="", rest="", width=10)
def test_wrap_is_textwrap(words: list[str], first: str, rest: str, width: int) -> None:
    text = " ".join(words)
    wrapper = textwrap.TextWrapper(
        width=width, initial_indent=first, subsequent_indent=rest, break_long_words=False, break_on_hyphens=False
    )
    lines = wrapper.wrap(text)
    assert wrap(text, first, rest, width) == ("\n".join(lines) if lines else first.rstrip())


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.sampled_from([*"ab  -", "\t", "\n", "\u00a0", "\u2003", "é", "\x1c"]), max_size=120),
    first=st.sampled_from(["", "> ", "- "]),
    width=st.integers(min_value=1, max_value=40),
)
def test_wrap_of_any_text_is_textwrap(text: str, first: str, width: int) -> None:
    wrapper = textwrap.TextWrapper(
        width=width, initial_indent=first, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
    )
    lines = wrapper.wrap(text)
    assert wrap(text, first, "  ", width) == ("\n".join(lines) if lines else first.rstrip())


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(["a", "é", *(c for c in map(chr, range(0x110000)) if c.isspace())]), max_size=60))
def test_collapsed_is_the_regex(line: str) -> None:
    assert _collapsed(line) == _SPACE.sub(" ", line).strip()


@settings(max_examples=300, deadline=None)
@given(
    day=st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    offset=_OFFSETS,
    language=st.sampled_from(["en", "es", "fr", "pt", "de", "ar", "he", "zh", "ja", "en-US", "pt-BR", "xx"]),
)
def test_long_date_is_babels_format_date(day: dt.datetime, offset: dt.timezone, language: str) -> None:
    when = day.replace(tzinfo=offset)
    locale = dates.locale_for(language)
    assert dates.long_date(when, language) == format_date(when, format="long", locale=locale)
    assert dates.long_date(when.date(), language) == format_date(when.date(), format="long", locale=locale)
    assert dates.text_direction(language) == locale.text_direction


def _html_to_text_by_htmlparser(html: str) -> str:
    """What html_to_text gave before it read plain HTML itself: HTMLParser feeds the walker."""
    walker = _Walker()
    walker.feed(html)
    return walker.text()


_TAG_NAMES = ["p", "a", "li", "ol", "ul", "blockquote", "pre", "h1", "h3", "br", "img", "table", "tr", "td", "em", "hr"]


def _joined(pieces: list[str], min_size: int = 0, max_size: int = 10) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), min_size=min_size, max_size=max_size).map("".join)


_VALUES = _joined([*"ab1 <>/='", "&amp;", "&quot;", "&lt;", "&#39;", "&", "é"], max_size=8)
_TEXTS = _joined([*"ab. \n\t", "&amp;", "&lt;", "&nbsp;", "&#x27;", "&", "\u00a0", "https://x.example/a"], min_size=1)
_PIECES = st.one_of(
    st.builds(
        lambda tag, attributes: f"<{tag}{''.join(f' {name}={chr(34)}{value}{chr(34)}' for name, value in attributes)}>",
        st.sampled_from(_TAG_NAMES),
        st.lists(st.tuples(st.sampled_from(["href", "title", "alt", "start", "src"]), _VALUES), max_size=2),
    ),
    st.sampled_from(_TAG_NAMES).map(lambda tag: f"</{tag}>"),
    _TEXTS,
    st.sampled_from(["<!-- c -->", "<br/>", "<a href=x>", "< b", "<P>", "<script>a</script>", "</p >", "<a href='y'>"]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=25).map("".join))
def test_html_to_text_reads_html_as_htmlparser_does(html: str) -> None:
    assert _outcome(html_to_text, html) == _outcome(_html_to_text_by_htmlparser, html)


def _outcome(function: Callable[[str], str], html: str) -> tuple[str, str]:
    """The text, or the error raised (an end tag with no start tag, which nh3 never writes, is one)."""
    try:
        return "text", function(html)
    except Exception as exc:
        return "error", type(exc).__name__


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_joined([*"ab *_#>-1.[]()<>&`\n ", "](https://x.example/p)", "<em>", "</em>", "\n\n", "> "], max_size=60))
def test_html_to_text_of_any_body_is_as_before(markdown: str) -> None:
    html = to_html(markdown, "https://site.example/news/1")
    assert html_to_text(html) == _html_to_text_by_htmlparser(html)


# Bodies made of prose and of everything Markdown or HTML reads otherwise: where
# `plain_paragraphs` takes a body for plain prose, its HTML and text must be Markdown's.
_PROSE_PIECES = [
    *"aZé日Ωß019½²ⅷ .,;:?!'\"()/%+-",
    *"*_[]<>&\\~|#=`{}$@^\t\r\x00\x0b\x0c\x85\xa0\u2028\u3000\ufeff\u0301",
    "\n", "\n\n", "\n\n\n", "  ", " \n", "\n ", "    ", "1. ", "1) ", "- ", "+ ", "* ", "> ", "---", "===", "```",
    "&amp;", "&quot;", "<b>", "<!-- x -->", "https://x.example/a", "word", "Word", "e\u0301",
]  # fmt: skip
_MOSTLY_PROSE = [*"abcXYZéΩ ", " ", "word ", "Word", ".", ",", "\n", "\n\n", "'", '"', "(", ")", "-", "1", "½"]


def _as_markdown_gives(markdown: str) -> None:
    paragraphs = plain_paragraphs(markdown)
    if paragraphs is not None:
        html = to_html(markdown, "https://site.example/news/1")
        assert paragraphs_html(paragraphs) == html
        assert paragraphs_text(paragraphs) == html_to_text(html)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_joined(_PROSE_PIECES, max_size=40))
@example("Plain words.\n\nMore words, and (some) marks: 50% + 1/2 - \"quoted\" 'too'; ok? yes!\nA line.\n")
@example("a\n-")
@example("a\n===")
@example("Word\n1. item")
@example("Word\n\n\n\n")
def test_plain_prose_is_what_markdown_makes_of_it(markdown: str) -> None:
    _as_markdown_gives(markdown)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_joined(_MOSTLY_PROSE, max_size=80))
def test_mostly_prose_is_what_markdown_makes_of_it(markdown: str) -> None:
    _as_markdown_gives(markdown)


def test_plain_prose_is_taken_for_it() -> None:
    """The fast path is taken for what it is for: paragraphs of words, in any script."""
    assert plain_paragraphs("\nOne line,\nanother (two).\n\n\nÉtape 2: 50% + \"ça\" / 'oui'!\n") == [
        "One line,\nanother (two).",
        "Étape 2: 50% + \"ça\" / 'oui'!",
    ]
    assert plain_paragraphs("日本語の文。\n") is None  # "。" is punctuation Markdown does not know: not taken
    for markdown in ("a *b*", "a\n- b", "a  \nb", "a\n b", "2024 was", "a_b", "a & b", "a <b>", "a\tb", "a "):
        assert plain_paragraphs(markdown) is None, markdown


@settings(max_examples=500, deadline=None)
@given(
    st.text(max_size=40)
    | _joined(
        [*"ab \t\n\r\x00\x08\x0b\x0c\x0e\x1f\x7f\x80\x85\ufffe\uffff\ufffd\ud800\udfff", "é", "日", "😀"], max_size=30
    )
)
@example("Bench · 1 rue de la Paix\n")
def test_without_control_is_the_regex(text: str) -> None:
    assert without_control(text) == _CONTROL.sub("", text)


_JSON_TEXT = st.text(max_size=12) | _joined([*'a"\\/\n\x00\x1f\x7f\u2028é日😀', "\ud800"], max_size=8)


@settings(max_examples=500, deadline=None)
@given(
    path=_JSON_TEXT,
    kind=st.sampled_from(["issue", "post", "calendar", "feed"]),
    format=_JSON_TEXT,
    records=st.lists(_JSON_TEXT, max_size=3).map(tuple),
    network=st.none() | _JSON_TEXT,
    length=st.none() | st.integers(min_value=-(2**70), max_value=2**70),
    limit=st.none() | st.integers(min_value=0, max_value=10**6),
    digest=_JSON_TEXT,
    changed=st.booleans(),
)
def test_a_files_manifest_line_is_the_json_encoders(
    path: str,
    kind: str,
    format: str,
    records: tuple[str, ...],
    network: str | None,
    length: int | None,
    limit: int | None,
    digest: str,
    changed: bool,
) -> None:
    output = Output(path, kind, format, records, network, length, limit, digest, changed)
    assert file_line(output) == json.dumps(file_json(output), ensure_ascii=False)


def test_a_filled_template_is_what_render_gives() -> None:
    """Globals, an include, an imported macro that reads a global, a loop: the same text; an error: the same error."""
    loader = jinja2.DictLoader(
        {
            "page.txt": '{% import "macros.txt" as m %}{{ site }}: {% for x in xs %}{% include "one.txt" %}{% endfor %}'
            "{{ m.shout(name) }}{{ x | default('none') }}",
            "one.txt": "[{{ x }}]",
            "macros.txt": "{% macro shout(s) %}{{ s | upper }} @ {{ site }}{% endmacro %}",
            "broken.txt": "line one\n{{ missing.attribute }}",
        }
    )
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, autoescape=True)
    env.globals["site"] = "Site <1>"
    page = env.get_template("page.txt", globals={"extra": 1})
    for context in ({"xs": [1, "<b>"], "name": "ana"}, {"xs": [], "name": ""}):
        assert fill(page, context) == page.render(context)
        assert fill(page, context) == page.render(context)  # the globals kept from the first call
    broken = env.get_template("broken.txt")
    with pytest.raises(jinja2.UndefinedError) as filled_error:
        fill(broken, {})
    with pytest.raises(jinja2.UndefinedError) as render_error:
        broken.render({})
    assert str(filled_error.value) == str(render_error.value)
    assert _template_lines(filled_error.tb) == _template_lines(render_error.tb) == [("<template>", 2)]


def _template_lines(tb: TracebackType) -> list[tuple[str, int | None]]:
    """The template frames of a traceback, as `email._render` reads them to name the line."""
    return [(f.filename, f.lineno) for f in traceback.extract_tb(tb) if f.filename == "<template>"]


def test_an_event_without_a_summary_has_its_body_rendered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its issue shows the body; its calendar file's description is the body's first sentence: one render."""
    from publisher.build import work
    from publisher.render import markdown
    from publisher.site.records import Record
    from publisher.site.settings import Settings

    settings = Settings.model_validate({"site": {"title": "T", "url": "https://t.example.org"}})
    record = Record(
        id="meeting",
        title="A meeting",
        published=dt.datetime(2024, 5, 1, 9, tzinfo=dt.UTC),
        starts=dt.datetime(2024, 6, 1, 9, tzinfo=dt.UTC),
        body="We meet in *Bogotá*. Everyone is [welcome](https://t.example.org/come).",
    )
    markdown._html_and_text.cache_clear()
    renders: list[str] = []
    original = markdown.to_html
    monkeypatch.setattr(markdown, "to_html", lambda text, url: renders.append(text) or original(text, url))

    files = {
        rendered[0].path.rsplit(".", 1)[1]: rendered[1] for rendered in work.render_issue_files(record, settings, None)
    }

    assert "ics" in files and b"We meet in Bogot" in files["ics"]
    assert renders == [record.body]
