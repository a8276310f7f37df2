"""Newsletter issues read on a phone: laid out by a real browser 375 px wide, nothing reaches past the edge.

Gmail and Outlook on a phone show an issue about this wide; a line that does
not wrap (a long link, a wide table or image) makes the reader scroll sideways
for every line. Debian's headless Chromium lays each issue out.
"""

from __future__ import annotations

from pathlib import Path

from publisher.build.builder import build
from publisher.site.config import load_site
from tests.browser_support import PHONE_WIDTH, on_a_phone

LINK = "https://cepei.example.org/publications/2018/07/" + "-".join(["data-for-development"] * 6) + ".pdf"
ROW = "| official development assistance received | 1,234,567 | 1,345,678 | 1,456,789 | https://data.example.org/oda |"
LONG = f"""---
title: A record whose body holds a very long address and a very long word
published: 2018-07-01T09:00:00+00:00
language: es
summary: Long links must not widen the newsletter on a phone.
---
Read the data at {LINK} before the meeting.

| indicator | 2015 | 2016 | 2017 | source |
|---|---|---|---|---|
{ROW}

{"Interdisciplinariedad" * 5}.
"""


def test_every_issue_fits_a_phone_screen(example_site: Path, tmp_path: Path) -> None:
    (example_site / "events" / "2018-07-01-long-link.md").write_text(LONG, encoding="utf-8")
    manifest = build(load_site(example_site))
    issues = sorted(o.path for o in manifest.outputs if o.kind == "issue" and o.path.endswith(".html"))
    assert len(issues) == 6  # the five records that are not drafts, and the long one
    for path in issues:
        layout = on_a_phone((example_site / path).read_text(encoding="utf-8"), tmp_path)
        assert layout.too_wide == [], path
        assert layout.scroll_width <= PHONE_WIDTH, path


def test_the_browser_probe_sees_a_page_too_wide_for_a_phone(tmp_path: Path) -> None:
    """The check itself: a 600 px table, as a template without media queries would make, is caught."""
    page = '<html><body><table style="width:600px"><tr><td>Hello</td></tr></table></body></html>'
    layout = on_a_phone(page, tmp_path)
    assert layout.scroll_width > PHONE_WIDTH
    assert any(element.startswith("table ") for element in layout.too_wide)
