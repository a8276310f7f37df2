"""The public archive: a sent issue's page, the index and the Atom feed, written by the dispatch, nothing unsent."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import feedparser

from publisher.dispatch.archive import read_entries
from tests.dispatch_support import PARIS, PARIS_DUE, add_people, at, command, configure, environment, parsed, parts

INFORME = "2018-03-15-informe-agenda-2030"
SENT = PARIS_DUE + dt.timedelta(minutes=5)


def _mail(site: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((site / "outbox" / "mail" / "new").iterdir())]


def test_a_sent_issue_gets_a_page_an_index_line_and_a_feed_entry_the_unsent_none(example_site: Path) -> None:
    configure(example_site)
    env = environment()
    add_people(example_site, env, ["ana.perez@example.org"])
    archive = example_site / "archive"
    assert command(example_site, env, "run", "--once", "--now", at(PARIS_DUE - dt.timedelta(hours=1))).exit_code == 0
    assert not archive.exists()  # nothing sent yet: nothing archived
    assert command(example_site, env, "run", "--once", "--now", at(SENT)).exit_code == 0

    (mailed,) = _mail(example_site)
    _, email_html = parts(parsed(mailed))
    page = (archive / f"{PARIS}.html").read_text(encoding="utf-8")
    assert f'href="https://cepei.example.org/archive/{PARIS}.html"' in email_html  # "View in your browser"
    # The page is the email with its personal parts made neutral, and nothing else changed.
    neutral = re.sub(
        r"https://cepei\.example\.org/(unsubscribe|preferences)/[A-Za-z0-9_.-]+",
        r"https://cepei.example.org/\1",
        email_html,
    )
    neutral = neutral.replace("Hello Ana.Perez,", "Hello,").replace("This email was sent to ana.perez@example.org.", "")
    neutral = re.sub(
        r'<a href="https://cepei\.example\.org/archive/[^"]+" style="color:#4a4f55;">View in your browser</a>',
        "",
        neutral,
    )
    assert page == neutral
    for personal in ("ana", "Ana", "/unsubscribe/", "/preferences/", "View in your browser"):
        assert personal not in page, personal

    index = (archive / "index.html").read_text(encoding="utf-8")
    assert f'href="{PARIS}.html"' in index and INFORME not in index
    feed = feedparser.parse((archive / "atom.xml").read_bytes())
    assert not feed.bozo
    assert [entry.link for entry in feed.entries] == [f"https://cepei.example.org/archive/{PARIS}.html"]
    assert sorted(p.name for p in archive.iterdir()) == sorted(
        ["atom.xml", "index.html", f"{PARIS}.html", "issues.json"]
    )

    first = read_entries(archive)[PARIS].sent_at
    later = dt.datetime(2018, 3, 15, 20, 0, tzinfo=dt.UTC)
    assert command(example_site, env, "run", "--once", "--now", at(later)).exit_code == 0
    entries = read_entries(archive)
    assert INFORME in entries and entries[PARIS].sent_at == first  # a later run keeps the first send's time
    feed = feedparser.parse((archive / "atom.xml").read_bytes())
    assert feed.entries[0].link.endswith(f"/{INFORME}.html")  # newest first


def test_a_broken_issue_list_is_read_as_untrusted(tmp_path: Path) -> None:
    good = '{"id": "b", "title": "B", "summary": "", "language": "en", "sent_at": "2018-01-01T00:00:00+00:00"}'
    (tmp_path / "issues.json").write_text(f'[{{"id": "a"}}, {good}]')
    assert list(read_entries(tmp_path)) == ["b"]
    (tmp_path / "issues.json").write_text("not json")
    assert read_entries(tmp_path) == {}
