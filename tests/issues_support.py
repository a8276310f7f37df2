"""Newsletter issues of the bundled example site, for the issue tests and the golden files."""

from __future__ import annotations

from pathlib import Path

from publisher.render.email import Issue, render_issue
from publisher.render.message import issue_files
from publisher.site.config import load_site
from publisher.site.records import Record, load_records
from publisher.site.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def example() -> tuple[Settings, Path, list[Record]]:
    """The example site's settings, templates folder and records (drafts left out)."""
    site = load_site(REPO, env={})
    return site.settings, site.templates, load_records(site.events, site.root)


def example_issues() -> list[Issue]:
    """One single issue per record, then the digest of them all."""
    settings, templates, records = example()
    singles = [render_issue([record], settings, templates) for record in records]
    return [*singles, render_issue(records, settings, templates)]


def golden_issues() -> dict[str, bytes]:
    """`<issue id>.html` and `.txt`, as `build` writes them (neutral values filled)."""
    settings, _, _ = example()
    files: dict[str, bytes] = {}
    for issue in example_issues():
        written = issue_files(issue, settings)
        for suffix in (".html", ".txt"):
            files[issue.id + suffix] = written[issue.id + suffix]
    return files
