"""Newsletter issues: the example site's issues, their text part, calendar file and MIME message."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from html.parser import HTMLParser
from pathlib import Path

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.errors import HeaderInjection, InvalidInput
from publisher.render import email as issues
from publisher.render.calendar import render_ics
from publisher.render.dates import date_range, long_date
from publisher.render.email import EMAIL, NAME, UNSUBSCRIBE_URL, Issue, personalise, render_issue
from publisher.render.message import build_message, issue_eml, issue_files
from publisher.site.records import Record
from publisher.site.settings import Settings
from tests import regenerate_golden
from tests.issues_support import example, example_issues

PARIS = "2018-02-09-south-south-cooperation-paris"
INFORME = "2018-03-15-informe-agenda-2030"
CALL = "2018-04-02-call-for-papers-data-for-development"
FORUM = "2018-05-21-high-level-forum-bogota"
WEBINAR = "2018-06-01-webinar-cancelled"
TAGS = re.compile(r"</?(p|a|div|span|strong|em|b|i|ul|ol|li|img|table|tr|td|br|h[1-6]|blockquote|mj-[a-z]+)\b", re.I)


class Page(HTMLParser):
    """What a reader (or a mail client) finds in the HTML: links, images, elements, text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[dict[str, str | None], str]] = []
        self.images: list[dict[str, str | None]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.quotes: list[str] = []
        self._open: list[tuple[dict[str, str | None], list[str]]] = []
        self._quote = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "a":
            self._open.append((dict(attrs), []))
        elif tag == "img":
            self.images.append(dict(attrs))
        elif tag == "blockquote":
            self._quote += 1
            self.quotes.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            attrs, text = self._open.pop()
            self.links.append((attrs, " ".join("".join(text).split())))
        elif tag == "blockquote":
            self._quote -= 1

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        for _, text in self._open:
            text.append(data)
        if self._quote:
            self.quotes[-1] += data

    @property
    def text(self) -> str:
        return " ".join("".join(self.texts).split())


@pytest.fixture(scope="module")
def site() -> tuple[Settings, Path, list[Record]]:
    return example()


@pytest.fixture(scope="module")
def by_id() -> dict[str, Issue]:
    return {issue.record_ids[0] if issue.kind == "single" else "digest": issue for issue in example_issues()}


def record(settings_records: tuple[Settings, Path, list[Record]], record_id: str) -> Record:
    return next(r for r in settings_records[2] if r.id == record_id)


def test_a_single_issue_has_the_record_title_as_subject_and_its_summary_as_preheader(
    by_id: dict[str, Issue], site: tuple[Settings, Path, list[Record]]
) -> None:
    issue, paris = by_id[PARIS], record(site, PARIS)
    assert (issue.id, issue.kind, issue.language, issue.record_ids) == (PARIS, "single", "en", (PARIS,))
    assert issue.subject == "Cepei met in Paris with Experts on South-South Cooperation in a new Development context"
    assert paris.summary is not None and len(paris.summary) > 150
    assert issue.preheader.endswith("…") and len(issue.preheader) <= 150
    assert paris.summary.startswith(issue.preheader[:-1])
    assert issue.date == paris.updated_or_published
    # The preheader is the hidden first text of the HTML (mj-preview), and the <title> is the subject.
    assert "Experts from the OECD Development Centre, UNOSSC and partners" in issue.html.split("<body", 1)[1][:2000]
    assert f"<title>{issue.subject}</title>" in issue.html


def test_without_a_summary_the_preheader_is_the_first_sentence_of_the_body(by_id: dict[str, Issue]) -> None:
    assert by_id[CALL].preheader == (
        "Cepei invites researchers and practitioners to submit papers on data for development in Latin America "
        "and the Caribbean."
    )


def test_the_html_shows_the_image_with_alt_and_credit_people_quote_links_and_footer(
    by_id: dict[str, Issue], site: tuple[Settings, Path, list[Record]]
) -> None:
    paris = record(site, PARIS)
    page = Page(by_id[PARIS].html)
    assert paris.image is not None
    image = next(i for i in page.images if i.get("src") == paris.image.src)
    assert image["alt"] == paris.image.alt
    assert image.get("width"), "Outlook needs the width of an image"
    assert "Photo: © Cepei" in page.text
    for person in paris.people:
        assert f"{person.name}, {person.role}" in page.text
    quotes = [" ".join(q.split()) for q in page.quotes]
    assert any("a way for countries to learn" in q and "Mario Pezzini" in q for q in quotes)
    for link in paris.links:
        attrs, label = next((a, t) for a, t in page.links if a.get("href") == link.url)
        assert (label, attrs.get("hreflang"), attrs.get("lang")) == (link.title, link.language, link.language)
        assert f"{link.title} ({link.language})" in page.text
    assert "Cepei · Calle 55 # 5-22, Bogotá, Colombia" in page.text
    assert ("<body" in by_id[PARIS].html) and 'lang="en"' in by_id[PARIS].html


def test_every_issue_carries_the_unsubscribe_and_greeting_placeholders(by_id: dict[str, Issue]) -> None:
    for issue in by_id.values():
        page = Page(issue.html)
        assert any(a.get("href") == UNSUBSCRIBE_URL and label for a, label in page.links), issue.id
        assert NAME in page.text and EMAIL in page.text
        assert f"<{UNSUBSCRIBE_URL}>" in issue.text and NAME in issue.text and EMAIL in issue.text


def test_the_calendar_link_comes_only_with_a_start_time(by_id: dict[str, Issue]) -> None:
    base = "https://cepei.example.org/newsletters/"
    for record_id in (PARIS, FORUM):
        issue = by_id[record_id]
        hrefs = [a.get("href") for a, label in Page(issue.html).links if label == "Add to calendar"]
        assert hrefs == [f"{base}{record_id}.ics"]
        assert f"Add to calendar: <{base}{record_id}.ics>" in issue.text
        assert issue.calendar is not None
    for record_id in (CALL, INFORME):
        assert ".ics" not in by_id[record_id].html and ".ics" not in by_id[record_id].text
        assert by_id[record_id].calendar is None
    # A cancelled meeting keeps its date but offers no calendar entry.
    webinar = by_id[WEBINAR]
    assert "12 June 2018" in webinar.text and "Cancelled" in Page(webinar.html).text
    assert ".ics" not in webinar.html and webinar.calendar is None


def test_dates_are_written_in_the_issue_language(by_id: dict[str, Issue]) -> None:
    informe = by_id[INFORME]
    assert informe.language == "es" and 'lang="es"' in informe.html
    assert "15 de marzo de 2018" in Page(informe.html).text and "15 de marzo de 2018" in informe.text
    assert informe.text.startswith("Hola, %%PUBLISHER_NAME%%:")
    assert "Leer en línea" in informe.text and "Cancelar la suscripción" in Page(informe.html).text
    paris = by_id[PARIS]
    assert "9 February 2018" in Page(paris.html).text
    when = next(line for line in paris.text.splitlines() if line.startswith("When: "))
    assert when.startswith("When: 9 February 2018, 9:00") and when.endswith("(UTC+01:00)")
    forum = next(line for line in by_id[FORUM].text.splitlines() if line.startswith("When: "))
    assert "21 May 2018" in forum and "22 May 2018" in forum and forum.endswith("(UTC−05:00)")


@pytest.mark.parametrize(
    ("first", "last", "language", "expected"),
    [
        ("2018-02-09", "2018-02-16", "en", "9–16 February 2018"),
        ("2018-02-09", "2018-02-16", "es", "9–16 de febrero de 2018"),
        ("2018-02-09", "2018-03-15", "es", "9 de febrero\u2009–\u200915 de marzo de 2018"),
        ("2018-12-30", "2019-01-02", "en", "30 December 2018\u2009–\u20092 January 2019"),
        ("2018-02-09", "2018-02-09", "en", "9 February 2018"),
        ("2018-02-09", "2018-02-16", "en-US", "February 9\u2009–\u200916, 2018"),
        ("2018-02-09", "2018-02-16", "fr", "9–16 février 2018"),
    ],
)
def test_date_ranges(first: str, last: str, language: str, expected: str) -> None:
    assert date_range(dt.date.fromisoformat(first), dt.date.fromisoformat(last), language) == expected


def test_long_dates() -> None:
    day = dt.date(2018, 2, 9)
    assert (long_date(day, "en"), long_date(day, "es"), long_date(day, "xx")) == (
        "9 February 2018",
        "9 de febrero de 2018",
        "9 February 2018",
    )


def make_record(record_id: str, published: str, **fields: object) -> Record:
    data = {"id": record_id, "title": f"Title of {record_id}", "published": published, "summary": "Short.", **fields}
    return Record.model_validate(data)


def test_a_digest_names_its_count_and_date_range_and_holds_every_record(
    site: tuple[Settings, Path, list[Record]],
) -> None:
    settings, templates, _ = site
    first = make_record("first", "2018-02-09T10:00:00+01:00", language="es")
    second = make_record("second", "2018-02-16T10:00:00+01:00")
    digest = render_issue([first, second], settings, templates, list_name="weekly")
    assert digest.kind == "digest" and digest.language == "en"
    assert digest.subject == "Cepei: 2 updates, 9–16 February 2018"
    assert digest.record_ids == ("second", "first")
    assert re.fullmatch(r"digest-[0-9a-f]{12}", digest.id)
    assert render_issue([second, first], settings, templates).id == digest.id
    assert render_issue([first, second, make_record("third", "2018-02-10T10:00:00+01:00")], settings).id != digest.id
    page = Page(digest.html)
    assert "Title of first" in page.text and "Title of second" in page.text
    assert "You receive it as a subscriber of the “The week at Cepei” list." in page.text
    assert digest.preheader == "Title of second · Title of first"


def test_a_digest_spans_the_dates_its_items_show_whatever_the_site_zone(
    site: tuple[Settings, Path, list[Record]],
) -> None:
    """A record dated in another offset than the site zone's (Bogotá, UTC-05:00 here) keeps its own date in the
    issue; the subject's span went by the site zone and named 17 February, a day no item of the issue shows."""
    settings, templates, _ = site
    paris = make_record("paris", "2018-02-09T10:00:00+01:00")
    los_angeles = make_record("los-angeles", "2018-02-16T23:30:00-08:00")  # 17 February, 02:30 in Bogotá
    digest = render_issue([paris, los_angeles], settings, templates, list_name="weekly")
    shown = re.findall(r"^\d+ February 2018$", digest.text, flags=re.MULTILINE)
    assert sorted(set(shown)) == ["16 February 2018", "9 February 2018"]
    assert digest.subject == "Cepei: 2 updates, 9–16 February 2018"


def test_the_example_digest(by_id: dict[str, Issue]) -> None:
    digest = by_id["digest"]
    # CLDR sets the dash of a range between thin spaces.
    assert digest.subject == "Cepei: 5 updates, 9 February\u2009–\u20091 June 2018"
    assert digest.record_ids == (WEBINAR, FORUM, CALL, INFORME, PARIS)
    titles = [line[2:] for line in digest.text.split("In this issue:\n", 1)[1].split("\n\n", 1)[0].splitlines()]
    assert titles[0] == "Cancelled: webinar on voluntary national reviews"


def test_a_digest_is_written_in_the_site_language(site: tuple[Settings, Path, list[Record]]) -> None:
    settings, templates, records = site
    spanish = settings.model_copy(update={"site": settings.site.model_copy(update={"language": "es"})})
    digest = render_issue(records[:2], spanish, templates)
    assert digest.language == "es" and digest.subject == "Cepei: 2 novedades, 2 de mayo\u2009–\u20091 de junio de 2018"


def test_mjml_is_compiled_once_per_issue_and_never_per_recipient(site: tuple[Settings, Path, list[Record]]) -> None:
    settings, templates, records = site
    before = issues.mjml_compiles()
    single = render_issue(records[:1], settings, templates)
    assert issues.mjml_compiles() == before + 1
    digest = render_issue(records, settings, templates)
    assert issues.mjml_compiles() == before + 2
    for n in range(1000):
        for issue in (single, digest):
            personalise(issue, name=f"Reader {n}", unsubscribe_url=f"https://u.example/{n}", email=f"r{n}@x.example")
    assert issues.mjml_compiles() == before + 2


def test_personalise_fills_and_escapes(by_id: dict[str, Issue]) -> None:
    issue = by_id[PARIS]
    html, text = personalise(
        issue, name="Ana <b>&amp;", unsubscribe_url="https://cepei.example.org/u?t=a&l=news", email="ana@x.example"
    )
    assert "%%PUBLISHER_" not in html and "%%PUBLISHER_" not in text
    assert "Hello Ana &lt;b&gt;&amp;amp;," in html and text.startswith("Hello Ana <b>&amp;,\n")
    assert 'href="https://cepei.example.org/u?t=a&amp;l=news"' in html
    assert "Unsubscribe: <https://cepei.example.org/u?t=a&l=news>" in text
    assert "This email was sent to ana@x.example." in text
    page = Page(html)
    assert any(a.get("href") == "https://cepei.example.org/u?t=a&l=news" for a, _ in page.links)


def test_an_empty_name_gives_a_greeting_without_one(by_id: dict[str, Issue]) -> None:
    for record_id, greeting in ((PARIS, "Hello,"), (INFORME, "Hola:")):
        html, text = personalise(by_id[record_id], name="  ", unsubscribe_url="https://u.example", email="a@x.example")
        assert text.startswith(greeting + "\n") and greeting in Page(html).text
        assert "Hello ," not in html and "Hola, :" not in html


def test_an_empty_email_leaves_out_the_sent_to_sentence(by_id: dict[str, Issue]) -> None:
    html, text = personalise(by_id[INFORME], name="", unsubscribe_url="https://u.example", email="")
    assert "%%PUBLISHER_" not in html + text
    assert "Este correo se envió a" not in html and "Este correo se envió a" not in text
    assert "Cancelar la suscripción: <https://u.example>\nCepei · Calle 55" in text


def test_a_name_that_looks_like_a_placeholder_stays_a_name(by_id: dict[str, Issue]) -> None:
    _, text = personalise(by_id[PARIS], name=EMAIL, unsubscribe_url="https://u.example", email="a@x.example")
    assert text.startswith(f"Hello {EMAIL},")


def test_the_text_part_is_written_for_reading(
    by_id: dict[str, Issue], site: tuple[Settings, Path, list[Record]]
) -> None:
    for issue in by_id.values():
        assert not TAGS.search(issue.text), issue.id
        for line in issue.text.splitlines():
            assert len(line) <= 78 or "://" in line, f"{issue.id}: {line!r}"
    informe = by_id[INFORME].text
    assert "\n- la disponibilidad de datos desagregados;\n" in informe
    assert "\n> Los datos no son un fin en sí mismos: son la base para decidir mejor.\n>\n> — Philipp" in informe
    assert (
        "Consulte el resumen en línea\n<https://cepei.example.org/es/noticias/2018/03/informe-agenda-2030#resumen>"
        in (informe)
    )
    paris = by_id[PARIS].text
    assert "\n1. South-South cooperation in an emerging context;\n" in paris
    assert "\n3. how South-South cooperation can play a better role in the global\n   context.\n" in paris
    for link in record(site, PARIS).links:
        assert f"<{link.url}>" in paris and f"({link.language})" in paris
    assert "\nPeople\n------\n- Javier Surasky, Governance for Development Coordinator, Cepei\n" in paris


def test_the_ics_file(site: tuple[Settings, Path, list[Record]], by_id: dict[str, Issue]) -> None:
    settings, _, _ = site
    paris = record(site, PARIS)
    data = render_ics(paris, settings.site)
    assert data == render_ics(paris, settings.site) == by_id[PARIS].calendar
    event = icalendar.Calendar.from_ical(data).walk("VEVENT")[0]
    assert str(event["UID"]) == f"{PARIS}@cepei.example.org"
    assert event.decoded("DTSTART") == dt.datetime(2018, 2, 9, 8, tzinfo=dt.UTC) == paris.starts
    assert event.decoded("DTEND") == dt.datetime(2018, 2, 9, 17, tzinfo=dt.UTC) == paris.ends
    assert event.decoded("DTSTAMP") == paris.published
    assert str(event["SUMMARY"]) == paris.title and str(event["LOCATION"]) == paris.location
    assert str(event["URL"]) == paris.url and str(event["DESCRIPTION"]) == paris.summary
    later = make_record(
        "later", "2018-02-01T09:00:00+00:00", updated="2018-02-05T09:00:00+00:00", starts="2018-03-01T09:00:00-05:00"
    )
    event = icalendar.Calendar.from_ical(render_ics(later, settings.site)).walk("VEVENT")[0]
    assert event.decoded("DTSTAMP") == later.updated and "DTEND" not in event
    with pytest.raises(ValueError, match="no start time"):
        render_ics(record(site, CALL), settings.site)


def test_the_eml_parses_back_as_text_then_html(
    by_id: dict[str, Issue], site: tuple[Settings, Path, list[Record]]
) -> None:
    settings, _, _ = site
    for issue in by_id.values():
        data = issue_eml(issue, settings)
        assert data == issue_eml(issue, settings), "the .eml is the same from build to build"
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        # (Python folds a long header whole onto a continuation line and keeps that space when parsing.)
        assert message["Subject"].strip() == issue.subject and message["From"] == "Cepei <news@cepei.example.org>"
        assert message["To"] == "subscriber@example.invalid" and message["Reply-To"] == "comms@cepei.example.org"
        assert message["Date"].datetime == issue.date
        assert message["Message-ID"].strip() == f"<{issue.id}@cepei.example.org>"
        files = issue_files(issue, settings)
        assert parts[0].get_content().replace("\r\n", "\n") == files[f"{issue.id}.txt"].decode()
        assert parts[1].get_content() == files[f"{issue.id}.html"].decode()
        assert "%%PUBLISHER_" not in files[f"{issue.id}.html"].decode()


def test_build_message_headers_and_the_test_mark(by_id: dict[str, Issue]) -> None:
    issue = by_id[INFORME]
    html, text = personalise(issue, name="Ana", unsubscribe_url="https://u.example/t", email="ana@x.example")
    when = dt.datetime(2018, 3, 20, 9, tzinfo=dt.UTC)
    headers = {
        "Reply-To": "comms@cepei.example.org",
        "List-Id": "<news.cepei.example.org>",
        "List-Unsubscribe": "<https://u.example/t>, <mailto:unsubscribe@cepei.example.org>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    message = build_message(
        issue, sender="Cepei <news@cepei.example.org>", to="Ana <ana@x.example>", html=html, text=text,
        headers=headers, message_id="<d1.ana@cepei.example.org>", date=when, test=True,
    )  # fmt: skip
    parsed = email.message_from_bytes(message.as_bytes(policy=email.policy.SMTP), policy=email.policy.default)
    assert parsed["Subject"].strip() == "[TEST] " + issue.subject
    assert parsed["Date"].datetime == when and parsed["Message-ID"] == "<d1.ana@cepei.example.org>"
    for name, value in headers.items():
        assert parsed[name].strip() == value
    plain = parsed.get_body(("plain",))
    assert plain is not None and plain.get_content().startswith("Hola, Ana:")


BAD_HEADERS: list[dict[str, object]] = [
    {"sender": "news@x.example\r\nBcc: victim@y.example"},
    {"to": "a@x.example\nBcc: victim@y.example"},
    {"message_id": "<a@b>\r\nX: y"},
    {"headers": {"List-Id": "<a.b>\nBcc: victim@y.example"}},
    {"headers": {"X-Note": "line\u2028break"}},
    {"headers": {"Bad Name": "value"}},
    {"headers": {"Bcc:": "victim@y.example"}},
    {"headers": {"From": "spoof@y.example"}},
]


@pytest.mark.parametrize("change", BAD_HEADERS)
def test_header_injection_is_refused(by_id: dict[str, Issue], change: dict[str, object]) -> None:
    arguments: dict[str, object] = {"sender": "news@x.example", "to": "a@x.example", "html": "<p>x</p>", "text": "x"}
    arguments.update(change)
    with pytest.raises(HeaderInjection):
        build_message(by_id[PARIS], **arguments)  # type: ignore[arg-type]


def test_a_subject_with_a_newline_is_refused_and_a_title_with_one_never_makes_such_a_subject(
    by_id: dict[str, Issue], site: tuple[Settings, Path, list[Record]]
) -> None:
    bad = Issue(**{**by_id[PARIS].__dict__, "subject": "Hi\r\nBcc: victim@y.example"})
    with pytest.raises(HeaderInjection):
        build_message(bad, sender="a@x.example", to="b@x.example", html="", text="")
    issue = render_issue([make_record("r", "2018-02-09T10:00:00+01:00", title="Two\nlines\u2028here")], site[0])
    assert issue.subject == "Two lines here"


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=60))
def test_no_header_value_ever_splits_a_message(value: str) -> None:
    issue = Issue("i", "single", "en", "Subject", "", "<p>x</p>", "x\n", ("i",))
    try:
        message = build_message(
            issue, sender="a@x.example", to="b@x.example", html="", text="", headers={"X-Note": value}
        )
    except HeaderInjection:
        assert len((value + "x").splitlines()) > 1
        return
    parsed = email.message_from_bytes(message.as_bytes(policy=email.policy.SMTP), policy=email.policy.default)
    assert sorted(parsed.keys()) == sorted(["From", "To", "Subject", "X-Note", "MIME-Version", "Content-Type"])


MALICIOUS = """Hello <script>alert(1)</script> there.

<img src="x" onerror="alert(2)"> and <a href="javascript:alert(4)">this</a>, <a href="JaVaScRiPt:alert(5)">that</a>.

<iframe src="https://evil.example"></iframe><p onclick="alert(5)">para</p>
"""


def assert_safe(html: str) -> None:
    page = Page(html)
    assert not [tag for tag, _ in page.tags if tag in ("script", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("href", "src"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:")), (tag, attrs)


def test_no_script_reaches_the_html(site: tuple[Settings, Path, list[Record]]) -> None:
    bad = make_record(
        "bad", "2018-02-09T10:00:00+01:00", title="<script>alert(0)</script>", summary='<img src=x onerror="alert(1)">',
        body=MALICIOUS,
    )  # fmt: skip
    for issue in (render_issue([bad], site[0]), render_issue([bad, *site[2]], site[0])):
        html = issue.html
        assert "<script" not in html and "javascript:" not in html.lower()
        assert "<iframe" not in html and "onclick" not in html
        assert_safe(html)
        assert "&lt;script&gt;alert(0)&lt;/script&gt;" in html
        # The summary is shown as text: its "onerror=" is escaped, never an attribute.
        assert all(m.group().startswith("onerror=&#34;") for m in re.finditer(r"onerror=\S*", html))
    body_only = render_issue([make_record("b", "2018-02-09T10:00:00+01:00", body=MALICIOUS)], site[0])
    assert "<script" not in body_only.html and "onerror=" not in body_only.html
    assert "javascript:" not in body_only.html.lower() and "onclick" not in body_only.html
    assert "<script" not in body_only.text and "alert(1)" not in body_only.text


st_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=80)
st_fragment = st.sampled_from(
    ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "javascript:alert(1)", "</mj-text>", "<mj-raw>",
     "&amp;", '"', "]]>", "<!--", "{{ x }}", "{% if %}", "%%PUBLISHER_NAME%%", "[a](javascript:x)"]
)  # fmt: skip
st_value = st.lists(st.one_of(st_text, st_fragment), min_size=1, max_size=4).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st_value, summary=st_value, body=st_value)
def test_any_title_summary_and_body_make_a_safe_issue(title: str, summary: str, body: str) -> None:
    settings_, _, _ = example()
    try:
        item = make_record("r", "2018-02-09T10:00:00+01:00", title=title, summary=summary, body=body)
    except ValueError:
        return  # a title of only spaces: the record itself is refused
    issue = render_issue([item], settings_)
    assert_safe(issue.html)
    assert "<script" not in issue.html
    assert "\n" not in issue.subject and "\r" not in issue.subject
    html, text = personalise(issue, name="", unsubscribe_url="https://u.example", email="a@x.example")
    assert_safe(html)
    message = build_message(issue, sender="a@x.example", to="b@x.example", html=html, text=text)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_site_templates_override_the_defaults(tmp_path: Path, site: tuple[Settings, Path, list[Record]]) -> None:
    (tmp_path / "issue.txt").write_text("{{ greeting }}\nOur own text for {{ items[0].title }}.\n", encoding="utf-8")
    issue = render_issue(site[2][:1], site[0], tmp_path)
    assert issue.text == f"Hello {NAME},\nOur own text for {site[2][0].title}.\n"
    assert "<mjml" not in issue.html and "<!doctype html>" in issue.html


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("issue.txt", "{{ greeting }}\n{% if %}\n", "templates/issue.txt:2: template: Expected an expression"),
        ("issue.txt", "{{ greeting }}\n\n{{ nothing }}\n", "templates/issue.txt:3: template: 'nothing' is undefined"),
        ("issue_record.mjml", "<mj-section><mj-text>{{ item.title }}", "templates/issue_record.mjml:1: template: MJML"),
    ],
)
def test_a_broken_site_template_is_bad_input_naming_file_and_line(
    tmp_path: Path, site: tuple[Settings, Path, list[Record]], name: str, content: str, expected: str
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / name).write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        render_issue(site[2][:1], site[0], templates)
    assert str(caught.value).startswith(expected)


def test_link_tagging_when_the_site_turns_it_on(site: tuple[Settings, Path, list[Record]]) -> None:
    settings_, templates, _ = site
    tagged = settings_.model_copy(update={"utm": settings_.utm.model_copy(update={"enabled": True})})
    issue = render_issue([record(site, PARIS)], tagged, templates, list_name="news")
    url = "https://cepei.example.org/news/2018/02/south-south-cooperation-paris"
    assert f"{url}?utm_source=news&utm_medium=email&utm_campaign={PARIS}" in issue.text
    assert f"{url}?utm_source" not in render_issue([record(site, PARIS)], settings_, templates).text


def test_an_issue_needs_a_record(site: tuple[Settings, Path, list[Record]]) -> None:
    with pytest.raises(ValueError, match="at least one record"):
        render_issue([], site[0])


def test_golden_files() -> None:
    folder = regenerate_golden.GOLDEN_DIR / "issues"
    made = regenerate_golden.issues()
    on_disk = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    assert on_disk == set(made), "run `python -m tests.regenerate_golden issues`"
    for name, content in made.items():
        assert (folder / name).read_bytes() == content, f"{name}: run `python -m tests.regenerate_golden issues`"
    assert {f"{PARIS}.html", f"{INFORME}.txt"} <= set(made)
