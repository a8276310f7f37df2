"""Feeds judged by real readers: the W3C Feed Validator on every built feed, feedparser over HTTP.

The validator is the W3C's own source (`shared/tools/feedvalidator/` beside the
checkout, found at `PUBLISHER_FEEDVALIDATOR` or in the usual places); its
compatibility level "AA" is the one the online validator shows, errors and
warnings both. A feed is clean when that list is empty.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import feedparser
import pytest

from publisher.build.builder import build
from publisher.render.feeds import feed_set
from publisher.site.config import load_site
from publisher.site.records import load_records
from publisher.store.dispatches import Store, open_store
from tests.conftest import REPO
from tests.web_support import Clock, running

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # every record of the example site is published


def _validator_source() -> Path:
    """The W3C Feed Validator's source: a missing validator fails the test run, never skips it."""
    candidates = [os.environ.get("PUBLISHER_FEEDVALIDATOR", "")]
    candidates += [str(base / "shared/tools/feedvalidator/src") for base in (REPO.parent, Path("/work"))]
    for candidate in candidates:
        if candidate and (Path(candidate) / "feedvalidator" / "__init__.py").is_file():
            return Path(candidate)
    raise AssertionError(f"the W3C Feed Validator's source is in none of {candidates}: set PUBLISHER_FEEDVALIDATOR")


@pytest.fixture(scope="module")
def validator() -> Iterator[ModuleType]:
    sys.path.insert(0, str(_validator_source()))
    try:
        import feedvalidator

        yield feedvalidator
    finally:
        sys.path.remove(str(_validator_source()))


def problems(validator: ModuleType, text: str) -> list[str]:
    """What the W3C validator reports of a feed served at its own self link (errors and warnings)."""
    from feedvalidator import compatibility
    from feedvalidator.formatter.text_plain import Formatter

    self_link = re.search(r'<(?:atom:)?link href="([^"]+)" rel="self"', text)
    assert self_link is not None, "every feed names its own address"
    events: list[Any] = validator.validateString(text, firstOccurrenceOnly=1, base=self_link.group(1))["loggedEvents"]
    return list(Formatter(compatibility.AA(events)))


@pytest.fixture(scope="module")
def feeds() -> dict[str, str]:
    site = load_site(REPO, env={})
    records = load_records(site.events)
    return {f.path: f.content.decode("utf-8") for f in feed_set(records, site.settings)}


def test_every_feed_of_the_example_site_passes_the_w3c_validator(validator: ModuleType, feeds: dict[str, str]) -> None:
    assert len(feeds) > 10  # site, tag and language feeds, Atom and RSS
    found = {path: report for path, text in feeds.items() if (report := problems(validator, text))}
    assert found == {}


def test_the_validator_does_find_a_broken_feed(validator: ModuleType, feeds: dict[str, str]) -> None:
    """The check above can fail: a feed without its title, or with a relative link, is reported."""
    atom = feeds["feeds/atom.xml"]
    untitled = re.sub(r"<title>[^<]*</title>", "", atom, count=1)
    assert untitled != atom
    assert problems(validator, untitled) != []
    rss = feeds["feeds/rss.xml"]
    undated = rss.replace("<pubDate>Thu, 15 Mar 2018 10:00:00 -0500</pubDate>", "<pubDate>15/03/2018</pubDate>")
    assert undated != rss
    assert any("date" in line.lower() for line in problems(validator, undated))


def test_an_rss_item_in_another_language_says_so_and_a_tag_feed_declares_its_items_language(
    feeds: dict[str, str],
) -> None:
    site = feedparser.parse(feeds["feeds/rss.xml"])
    assert site.feed.language == "en"
    spanish = [e for e in site.entries if e.get("language") == "es"]
    assert [e.title for e in spanish] == [
        "Cepei presenta su informe sobre la implementación de la Agenda 2030 en América Latina"
    ]
    assert all("language" not in e for e in site.entries if e not in spanish)
    # every record tagged "informes" is in Spanish: the tag feed says so, once, and its items need not
    informes = feedparser.parse(feeds["feeds/tags/informes/rss.xml"])
    assert informes.feed.language == "es" and informes.entries
    assert all("language" not in e for e in informes.entries)
    assert (
        '<feed xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom" xml:lang="es">'
        in (feeds["feeds/tags/informes/atom.xml"])
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(REPO / "publisher.toml", root / "publisher.toml")
    for name in ("events", "media"):
        shutil.copytree(REPO / name, root / name)
    site = load_site(root, env={})
    build(site, now=NOW)
    store: Store = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    try:
        with running(site, store, Clock(NOW)) as web:
            yield f"http://127.0.0.1:{web.port}"
    finally:
        store.close()


def test_served_feeds_read_by_feedparser_over_http_with_a_conditional_get(served: str) -> None:
    for path in ("/feeds/atom.xml", "/feeds/rss.xml", "/feeds/tags/informes/rss.xml"):
        first = feedparser.parse(served + path)
        assert first.bozo == 0, first.get("bozo_exception")
        assert first.status == 200 and first.entries
        assert first.etag and first.modified
        again = feedparser.parse(served + path, etag=first.etag, modified=first.modified)
        assert again.status == 304 and again.entries == []
