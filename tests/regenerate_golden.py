"""Regenerate the golden files under tests/golden/.

    python -m tests.regenerate_golden            # every entry of GOLDEN
    python -m tests.regenerate_golden feeds      # only tests/golden/feeds/

Each entry of GOLDEN maps a name (its folder under tests/golden/) to a function
that renders the bundled example site and returns {path in that folder: bytes}.
The golden tests compare against the same functions' output, byte for byte.
Review the result with `git diff tests/golden` before committing it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
REPO = Path(__file__).resolve().parent.parent
# The tag whose feeds are kept as golden files: it holds a record with an image and a cancelled one.
FEEDS_TAG = "events"


def feeds() -> dict[str, bytes]:
    """The example site's site-wide Atom and RSS feeds and those of one tag."""
    from publisher.render.feeds import feed_set
    from publisher.site.config import load_site
    from publisher.site.records import load_records

    site = load_site(REPO, env={})
    records = load_records(site.events, site.root)
    kept = {"feeds/atom.xml", "feeds/rss.xml", f"feeds/tags/{FEEDS_TAG}/atom.xml", f"feeds/tags/{FEEDS_TAG}/rss.xml"}
    return {f.path.removeprefix("feeds/"): f.content for f in feed_set(records, site.settings) if f.path in kept}


def issues() -> dict[str, bytes]:
    """The example site's newsletter issues as `build` writes them: one per record and a digest of all."""
    from tests.issues_support import golden_issues

    return golden_issues()


def posts() -> dict[str, bytes]:
    """The example site's posts, one file per network and record."""
    from tests.posts_support import golden_posts

    return golden_posts()


GOLDEN: dict[str, Callable[[], dict[str, bytes]]] = {"feeds": feeds, "issues": issues, "posts": posts}


def regenerate(name: str) -> list[Path]:
    """Write one entry's golden files, removing the ones it no longer makes."""
    folder = GOLDEN_DIR / name
    files = GOLDEN[name]()
    for stale in sorted(p for p in folder.rglob("*") if p.is_file()):
        if stale.relative_to(folder).as_posix() not in files:
            stale.unlink()
    written = []
    for relative, content in sorted(files.items()):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    names = argv or sorted(GOLDEN)
    unknown = [n for n in names if n not in GOLDEN]
    if unknown:
        print(f"unknown golden set(s): {', '.join(unknown)} (known: {', '.join(sorted(GOLDEN))})", file=sys.stderr)
        return 2
    for name in names:
        for path in regenerate(name):
            print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
