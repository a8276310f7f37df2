"""Feeds: every feed of the example site parses, has the right structure and stays byte-stable."""

from __future__ import annotations

import datetime as dt
import email.utils
import locale
import random
import re
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from publisher.render.feeds import FeedFile, feed_set, render_atom, render_rss, xml_text
from publisher.site.config import load_site
from publisher.site.records import Image, Record, clean_text, load_records
from publisher.site.settings import FeedSettings, Settings, SiteSettings
from tests import regenerate_golden

REPO = Path(__file__).resolve().parent.parent
A = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SITE = SiteSettings(title="Site", url="https://example.org", author="The team")
UTC = dt.UTC


@pytest.fixture(scope="module")
def example() -> tuple[Settings, list[Record]]:
    site = load_site(REPO, env={})
    return site.settings, load_records(site.events, site.root)


@pytest.fixture(scope="module")
def files(example: tuple[Settings, list[Record]]) -> dict[str, FeedFile]:
    settings, records = example
    return {f.path: f for f in feed_set(records, settings)}


def record(n: int, **fields: object) -> Record:
    values: dict[str, object] = {
        "id": f"r{n}",
        "title": f"Record {n}",
        "published": dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(days=n),
        "summary": f"Summary {n}",
        "body": f"Body of record {n}.",
    }
    values.update(fields)
    return Record.model_validate(values)


def atom_entries(content: bytes) -> list[etree._Element]:
    return etree.fromstring(content).findall(f"{A}entry")


def rss_items(content: bytes) -> list[etree._Element]:
    return etree.fromstring(content).findall("channel/item")


def alternates(entry: etree._Element) -> list[etree._Element]:
    """Atom links that count as alternate: rel="alternate" or no rel at all (RFC 4287 4.2.7.2)."""
    return [link for link in entry.findall(f"{A}link") if link.get("rel", "alternate") == "alternate"]


def expected_id(site_url: str, record_id: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, site_url + "/" + record_id))


# --- the example site ------------------------------------------------------------------------


def test_every_feed_of_the_example_site_parses(files: dict[str, FeedFile]) -> None:
    tags = {"agenda-2030", "bapa40", "call-for-papers", "data", "development", "events", "financing"}
    tags |= {"informes", "ods", "sdgs", "south-south-cooperation"}
    scopes = {"site"} | {f"tag:{t}" for t in tags} | {"language:en", "language:es"}
    assert {f.scope for f in files.values()} == scopes
    assert len(files) == 2 * len(scopes)
    for path, feed in files.items():
        parsed = feedparser.parse(feed.content)
        assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        assert parsed.version == ("atom10" if feed.format == "atom" else "rss20"), path
        assert [e.id for e in parsed.entries] == [expected_id("https://cepei.example.org", i) for i in feed.record_ids]


def test_atom_structure(files: dict[str, FeedFile]) -> None:
    for path, feed in files.items():
        if feed.format != "atom":
            continue
        root = etree.fromstring(feed.content)
        links = {link.get("rel"): link for link in root.findall(f"{A}link")}
        assert links["self"].get("href") == f"https://cepei.example.org/{path}"
        assert links["self"].get("type") == "application/atom+xml"
        assert links["alternate"].get("href") == "https://cepei.example.org"
        assert len(root.findall(f"{A}link")) == 2
        assert root.get(XML_LANG)
        entries = root.findall(f"{A}entry")
        assert entries, path
        for entry in entries:
            for name in ("id", "title", "updated", "published", "content"):
                assert len(entry.findall(f"{A}{name}")) == 1, (path, name)
            assert len(alternates(entry)) == 1, path
            assert alternates(entry)[0].get("href", "").startswith("https://")
            for link in entry.findall(f"{A}link"):
                assert link.get("rel") in ("alternate", "enclosure"), etree.tostring(link)
        updated = [dt.datetime.fromisoformat(e.findtext(f"{A}updated") or "") for e in entries]
        assert dt.datetime.fromisoformat(root.findtext(f"{A}updated") or "") == max(updated)


def test_atom_enclosure_is_a_typed_enclosure_not_a_second_alternate(files: dict[str, FeedFile]) -> None:
    # feedgen 1.0 (#135) writes an enclosure as a bare <link href>: a second alternate link.
    entry = atom_entries(files["feeds/tags/financing/atom.xml"].content)[0]
    links = entry.findall(f"{A}link")
    assert [link.get("rel") for link in links] == ["alternate", "enclosure"]
    enclosure = links[1]
    assert enclosure.get("href") == "https://cepei.example.org/media/forum-bogota.png"
    assert enclosure.get("type") == "image/png"
    assert enclosure.get("title") == "The conference room of the forum in Bogotá, with the panel seated on the stage"
    media = entry.find(f"{MEDIA}content")
    assert media is not None and media.get("url") == enclosure.get("href") and media.get("medium") == "image"
    assert media.findtext(f"{MEDIA}description") == enclosure.get("title")
    assert media.findtext(f"{MEDIA}credit") == "© Cepei"
    parsed = feedparser.parse(files["feeds/tags/financing/atom.xml"].content).entries[0]
    assert [e.href for e in parsed.enclosures] == ["https://cepei.example.org/media/forum-bogota.png"]


def test_rss_structure(files: dict[str, FeedFile]) -> None:
    for path, feed in files.items():
        if feed.format != "rss":
            continue
        channel = etree.fromstring(feed.content).find("channel")
        assert channel is not None
        # feedgen makes the last link added the channel <link>: it must be the site, not the feed.
        assert channel.findtext("link") == "https://cepei.example.org"
        self_links = channel.findall(f"{A}link")
        assert [(s.get("rel"), s.get("href")) for s in self_links] == [("self", f"https://cepei.example.org/{path}")]
        assert channel.findtext("language") in ("en", "es")
        items = channel.findall("item")
        dates = [email.utils.parsedate_to_datetime(i.findtext("pubDate") or "") for i in items]
        assert dates == sorted(dates, reverse=True)
        for item in items:
            for name in ("title", "link", "guid", "pubDate", "description"):
                assert len(item.findall(name)) == 1, (path, name)
            assert (item.findtext("link") or "").startswith("https://")
            for enclosure in item.findall("enclosure"):
                assert enclosure.get("url", "").startswith("https://") and enclosure.get("type", "").startswith(
                    "image/"
                )
                assert enclosure.get("length") == "0"


def test_rss_description_is_the_summary_and_content_the_full_html(files: dict[str, FeedFile]) -> None:
    items = rss_items(files["feeds/tags/financing/rss.xml"].content)
    assert items[0].findtext("description") == (
        "Ministers, multilateral banks and civil society meet in Bogotá to discuss how to finance the "
        "Sustainable Development Goals in the region."
    )
    assert (items[0].findtext(CONTENT) or "").startswith(
        "<p>Registration is open for the <strong>high-level forum on financing the SDGs</strong>"
    )
    assert items[0].findtext("pubDate") == "Wed, 02 May 2018 09:00:00 -0500"


def test_feed_updated_is_the_newest_entry_update_not_its_publication(files: dict[str, FeedFile]) -> None:
    # The call for papers was published on 2 April and updated on 10 April 2018.
    root = etree.fromstring(files["feeds/tags/data/atom.xml"].content)
    assert root.findtext(f"{A}updated") == "2018-04-10T12:00:00-05:00"
    assert root.findtext(f"{A}entry/{A}published") == "2018-04-02T08:30:00-05:00"
    channel = etree.fromstring(files["feeds/tags/data/rss.xml"].content).find("channel")
    assert channel is not None and channel.findtext("lastBuildDate") == "Tue, 10 Apr 2018 12:00:00 -0500"


def test_newest_first_and_the_right_records_per_tag_and_language(
    example: tuple[Settings, list[Record]], files: dict[str, FeedFile]
) -> None:
    _, records = example
    newest = sorted(records, key=lambda r: r.published, reverse=True)
    assert files["feeds/atom.xml"].record_ids == tuple(r.id for r in newest)
    assert "2018-06-20-draft-annual-report" not in files["feeds/atom.xml"].record_ids
    for tag in {t for r in records for t in r.tags}:
        wanted = tuple(r.id for r in newest if tag in r.tags)
        for name in ("atom", "rss"):
            feed = files[f"feeds/tags/{tag}/{name}.xml"]
            assert feed.record_ids == wanted and feed.scope == f"tag:{tag}"
            parsed = feedparser.parse(feed.content)
            assert [e.id for e in parsed.entries] == [expected_id("https://cepei.example.org", i) for i in wanted]
    spanish = files["feeds/languages/es/atom.xml"]
    assert spanish.record_ids == ("2018-03-15-informe-agenda-2030",)
    assert etree.fromstring(spanish.content).get(XML_LANG) == "es"
    assert b"<language>es</language>" in files["feeds/languages/es/rss.xml"].content
    english = files["feeds/languages/en/atom.xml"].record_ids
    assert english == tuple(r.id for r in newest if r.language in (None, "en"))


def test_a_spanish_entry_in_the_english_feed_carries_its_language(files: dict[str, FeedFile]) -> None:
    root = etree.fromstring(files["feeds/atom.xml"].content)
    assert root.get(XML_LANG) == "en"
    languages = {e.findtext(f"{A}title"): e.get(XML_LANG) for e in root.findall(f"{A}entry")}
    assert languages["Cepei presenta su informe sobre la implementación de la Agenda 2030 en América Latina"] == "es"
    assert [lang for lang in languages.values() if lang] == ["es"]


def test_cancelled_records_stay_with_their_title(files: dict[str, FeedFile]) -> None:
    titles = [e.title for e in feedparser.parse(files["feeds/rss.xml"].content).entries]
    assert "Cancelled: webinar on voluntary national reviews" in titles


def test_drafts_never_appear_even_when_passed(example: tuple[Settings, list[Record]]) -> None:
    settings, _ = example
    with_drafts = load_records(REPO / "events", REPO, drafts=True)
    assert any(r.status == "draft" for r in with_drafts)
    for feed in feed_set(with_drafts, settings):
        assert "2018-06-20-draft-annual-report" not in feed.record_ids
        assert b"Annual report 2017" not in feed.content
    draft = record(9, title="Not yet", status="draft")
    for render in (render_atom, render_rss):
        content = render([record(1), draft], SITE, FeedSettings())
        assert [e.title for e in feedparser.parse(content).entries] == ["Record 1"]


def test_links_in_content_are_absolute(files: dict[str, FeedFile]) -> None:
    for feed in files.values():
        root = etree.fromstring(feed.content)
        for element in root.iter(f"{A}content", CONTENT, "description"):
            for url in re.findall(r'(?:href|src)="([^"]*)"', element.text or ""):
                assert url.startswith(("https://", "http://", "mailto:")), url
        hrefs = [link.get("href") or link.get("url") or "" for link in root.iter(f"{A}link", "enclosure")]
        assert all(h.startswith("https://") for h in hrefs)


def test_golden_files(files: dict[str, FeedFile]) -> None:
    folder = regenerate_golden.GOLDEN_DIR / "feeds"
    made = regenerate_golden.feeds()
    assert sorted(made) == ["atom.xml", "rss.xml", "tags/events/atom.xml", "tags/events/rss.xml"]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.xml")) == sorted(made)
    for relative, content in made.items():
        assert (folder / relative).read_bytes() == content, f"{relative}: run `python -m tests.regenerate_golden feeds`"
        assert files[f"feeds/{relative}"].content == content


# --- stability ---------------------------------------------------------------------------------


def test_building_twice_is_byte_identical_in_any_input_order(example: tuple[Settings, list[Record]]) -> None:
    settings, records = example
    first = feed_set(records, settings)
    shuffled = list(records)
    random.Random(7).shuffle(shuffled)
    assert feed_set(shuffled, settings) == first


def test_entry_ids_survive_a_renamed_file_and_a_moved_feed(example_site: Path) -> None:
    site = load_site(example_site, env={})
    before = feed_set(load_records(site.events, site.root), site.settings)
    # This record names its id in its front matter, so its file may be renamed.
    events = example_site / "events"
    shutil.move(events / "2018-02-09-south-south-cooperation-paris.md", events / "paris-meeting.md")
    after = feed_set(load_records(site.events, site.root), site.settings)
    assert before == after
    paris = [r for r in load_records(site.events, site.root) if r.id == "2018-02-09-south-south-cooperation-paris"]
    moved = render_atom(paris, site.settings.site, site.settings.feeds, path="elsewhere/feed.xml")
    [entry] = atom_entries(moved)
    assert entry.findtext(f"{A}id") == expected_id("https://cepei.example.org", paris[0].id)


def test_the_clock_is_never_read() -> None:
    # An empty feed still gets a fixed `updated`, so two builds a second apart are identical.
    settings = Settings(site=SITE)
    [atom, rss] = feed_set([], settings)
    assert etree.fromstring(atom.content).findtext(f"{A}updated") == "1970-01-01T00:00:00+00:00"
    assert feedparser.parse(rss.content).bozo == 0
    assert feed_set([], settings) == [atom, rss]


def test_max_items_keeps_the_newest(example: tuple[Settings, list[Record]]) -> None:
    settings, records = example
    small = settings.model_copy(update={"feeds": FeedSettings(max_items=2)})
    for feed in feed_set(records, small):
        assert len(feed.record_ids) <= 2
    site = {f.path: f for f in feed_set(records, small)}["feeds/atom.xml"]
    assert site.record_ids == ("2018-06-01-webinar-cancelled", "2018-05-21-high-level-forum-bogota")
    assert len(atom_entries(site.content)) == 2
    many = [record(n) for n in range(120)]
    assert len(rss_items(render_rss(many, SITE, FeedSettings()))) == 50
    assert [i.findtext("title") for i in rss_items(render_rss(many, SITE, FeedSettings(max_items=3)))] == [
        "Record 119",
        "Record 118",
        "Record 117",
    ]


def test_tag_and_language_feeds_can_be_turned_off(example: tuple[Settings, list[Record]]) -> None:
    settings, records = example
    off = settings.model_copy(update={"feeds": FeedSettings(by_tag=False, by_language=False)})
    assert [f.path for f in feed_set(records, off)] == ["feeds/atom.xml", "feeds/rss.xml"]


def test_a_tag_in_any_script_gets_its_feed_at_an_encoded_url() -> None:
    files = {f.path: f for f in feed_set([record(1, tags=("educación",))], Settings(site=SITE))}
    feed = files["feeds/tags/educación/atom.xml"]
    assert feed.record_ids == ("r1",) and feed.scope == "tag:educación"
    [self_link] = [x for x in etree.fromstring(feed.content).findall(f"{A}link") if x.get("rel") == "self"]
    assert self_link.get("href") == "https://example.org/feeds/tags/educaci%C3%B3n/atom.xml"
    assert sorted(files) == [
        "feeds/atom.xml",
        "feeds/languages/en/atom.xml",
        "feeds/languages/en/rss.xml",
        "feeds/rss.xml",
        "feeds/tags/educación/atom.xml",
        "feeds/tags/educación/rss.xml",
    ]


def test_image_sizes_when_known() -> None:
    image = Image(src="media/photo.webp", alt="A photo")
    one = record(1, image=image)
    sizes = {"media/photo.webp": 1234}
    [link] = [
        x for x in atom_entries(render_atom([one], SITE, FeedSettings(), sizes=sizes))[0] if x.get("rel") == "enclosure"
    ]
    assert (link.get("type"), link.get("length"), link.get("href")) == (
        "image/webp",
        "1234",
        "https://example.org/media/photo.webp",
    )
    enclosure = rss_items(render_rss([one], SITE, FeedSettings(), sizes=sizes))[0].find("enclosure")
    assert enclosure is not None and (enclosure.get("length"), enclosure.get("type")) == ("1234", "image/webp")


# --- feedgen's locale switch ---------------------------------------------------------------------


@pytest.fixture
def utf8_locale() -> Iterator[str]:
    before = locale.setlocale(locale.LC_ALL)
    try:
        yield locale.setlocale(locale.LC_ALL, "C.UTF-8")
    except locale.Error:
        pytest.fail("the C.UTF-8 locale (built into glibc on Debian) is missing: this test needs a non-C locale")
    finally:
        locale.setlocale(locale.LC_ALL, before)


def test_rendering_in_threads_leaves_the_locale_alone(utf8_locale: str) -> None:
    # feedgen saves the locale, sets "C" and restores it: two renders interleaving would leave "C" behind.
    errors: list[BaseException] = []

    def render() -> None:
        try:
            for _ in range(150):
                render_rss([], SITE, FeedSettings())  # the smallest feed: most of its time near setlocale
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=render) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to meet the race if it is there
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert locale.setlocale(locale.LC_ALL) == utf8_locale


def test_item_dates_are_rfc_2822_in_english() -> None:
    one = record(0, published=dt.datetime(2018, 2, 9, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert (
        rss_items(render_rss([one], SITE, FeedSettings()))[0].findtext("pubDate") == "Fri, 09 Feb 2018 18:00:00 +0100"
    )


# --- hostile and odd input -----------------------------------------------------------------------


def test_no_script_or_javascript_reaches_a_feed() -> None:
    hostile = record(
        1,
        title="<script>alert('t')</script> title",
        summary="<script>alert('s')</script> summary",
        body=(
            "Hello <script>alert('b')</script>\n\n[click](javascript:alert(1)) "
            '<a href="javascript:alert(2)">x</a> <a href=" JaVaScRiPt:alert(4)">y</a> '
            '<img src="x.png" onerror="alert(3)">'
        ),
    )
    # markdown-it shows `[click](javascript:...)` as plain text, which is harmless: what must never
    # reach a reader is a script element, an event handler or a javascript: URL in an attribute.
    url_attribute = re.compile(r"""(?:href|src)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)
    for content in (render_atom([hostile], SITE, FeedSettings()), render_rss([hostile], SITE, FeedSettings())):
        assert b"<script" not in content.lower() and b"onerror" not in content
        assert url_attribute.search(content.decode()) is None
        root = etree.fromstring(content)
        # The elements readers treat as HTML, once XML-decoded.
        for element in root.iter(f"{A}content", CONTENT, "description"):
            text = element.text or ""
            assert "<script" not in text.lower() and "onerror" not in text, text
            assert url_attribute.search(text) is None, text
        assert "alert(2)" not in content.decode() and "alert(4)" not in content.decode()


def test_xml_text_strips_what_xml_cannot_carry() -> None:
    assert xml_text("a\x00b\x08c\x0b\x0c\x1f\ttab\nnew\rline\ufffe\uffff\ud800 é 😀") == "abc\ttab\nnew\rline é 😀"


def test_control_characters_in_a_record_are_stripped() -> None:
    odd = record(
        1,
        title="Bad\x00 title\x1b",
        summary="Sum\x01mary",
        body="Bo\x02dy",
        organisers=("Org\x03",),
        image=Image(src="media/a.jpg", alt="Alt\x04 text", credit="Cred\x05it"),
    )
    for content in (render_atom([odd], SITE, FeedSettings()), render_rss([odd], SITE, FeedSettings())):
        assert feedparser.parse(content).bozo == 0
        assert re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", content) is None
        assert feedparser.parse(content).entries[0].title == "Bad title"
        assert "Alt text" in content.decode() and "Summary" in content.decode()


def _xml_allowed(char: str) -> bool:
    code = ord(char)
    return char in "\t\n\r" or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(min_size=1, max_size=200), summary=st.text(min_size=1, max_size=300), body=st.text(max_size=300))
def test_any_title_summary_and_body_make_feeds_that_parse(title: str, summary: str, body: str) -> None:
    # a record needs a title and (here) a summary, once byte-order marks and noncharacters are gone
    assume(clean_text(title).strip() and clean_text(summary).strip())
    one = record(1, title=title, summary=summary, body=body)
    wanted_title = "".join(c for c in one.title if _xml_allowed(c)).strip() or one.id
    for fmt, content in (
        ("atom", render_atom([one], SITE, FeedSettings())),
        ("rss", render_rss([one], SITE, FeedSettings())),
    ):
        parsed = feedparser.parse(content)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert len(parsed.entries) == 1
        root = etree.fromstring(content)
        found = root.find(f"{A}entry/{A}title") if fmt == "atom" else root.find("channel/item/title")
        assert found is not None
        assert found.text == wanted_title
