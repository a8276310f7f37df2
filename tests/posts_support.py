"""The example site's posts as golden files: `tests/golden/posts/<network>/<record id>.txt`.

Each file is the post as `build` writes it: its text, then each thread part
after a line `---`. Regenerate with `python -m tests.regenerate_golden posts`.
"""

from __future__ import annotations

from pathlib import Path

from publisher.render.social import Post, render_posts
from publisher.site.config import load_site
from publisher.site.records import load_records

REPO = Path(__file__).resolve().parent.parent


def post_file(post: Post) -> str:
    """A post as a file: its text, then each thread part after a `---` line."""
    return "\n---\n".join((post.text, *post.thread)) + "\n"


def golden_posts() -> dict[str, bytes]:
    """{"<network>/<record id>.txt": content} for every post of the bundled example site."""
    site = load_site(REPO, env={})
    files: dict[str, bytes] = {}
    for record in load_records(site.events, site.root):
        for post in render_posts(record, site.settings, site.templates):
            files[f"{post.network}/{record.id}.txt"] = post_file(post).encode("utf-8")
    return files
