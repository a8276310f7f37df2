"""The records' images, checked ahead of the posts: `check` and `build` see what posting will.

A local image file that Pillow cannot decode is an error (it can never be
posted). An image given as an http(s) URL is fetched once into
`.publisher/images/` (see channels/remote_image.py); one that cannot be had is
a warning at the record's `image.src` line, not an error: the record's feeds
and newsletter are fine, and its posts will go out without the image.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from publisher.channels.remote_image import cached_image, image_format, site_policy
from publisher.errors import ImageUnavailable, Problem
from publisher.site.config import Site
from publisher.site.files import record_names, shown_paths
from publisher.site.front_matter import FrontMatter

FETCHERS = 8


@dataclass
class ImageReport:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def check_images(site: Site, *, revalidate: bool) -> ImageReport:
    """Every record's image (`publisher check`): remote ones fetched (asked again with their ETag when
    `revalidate`), local ones decoded. Records whose front matter does not parse are left to the record
    checks. (`build` fetches the remote ones its records name with `fetch_images`, parsing nothing again.)"""
    report = ImageReport()
    remote: dict[str, list[tuple[str, int]]] = {}
    names = record_names(site.events)
    for (name, _), shown in zip(names, shown_paths(site.events, site.root, names), strict=True):
        try:
            text = (site.events / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "image" not in text:
            continue
        front = FrontMatter(text)
        image = front.data.get("image")
        src = image.get("src") if isinstance(image, dict) else None
        if not isinstance(src, str) or not src.strip():
            continue
        line = front.lines.get("image.src", 1)
        if src.startswith(("http://", "https://")):
            remote.setdefault(src, []).append((shown, line))
        elif (site.root / src).is_file() and (site.root / src).resolve().is_relative_to(site.root.resolve()):
            try:
                image_format((site.root / src).read_bytes(), src)
            except (ImageUnavailable, OSError) as error:
                report.errors.append(Problem(shown, line, "image.src", f"is not an image: {error}"))
    report.warnings += fetch_images(site, remote, revalidate=revalidate)
    report.errors.sort()
    report.warnings.sort()
    return report


def fetch_images(site: Site, remote: dict[str, list[tuple[str, int]]], *, revalidate: bool) -> list[Problem]:
    """Fetch each image URL (`remote`: url → where records name it, path and line) into the cache, in
    threads; a warning at each of those places for one that cannot be had."""
    policy = site_policy(site)
    warnings: list[Problem] = []

    def fetch(url: str) -> str | None:
        try:
            cached_image(site.root, url, policy, revalidate=revalidate)
        except ImageUnavailable as error:
            return str(error)
        return None

    if remote:
        with ThreadPoolExecutor(min(FETCHERS, len(remote))) as pool:
            for url, why in zip(remote, pool.map(fetch, remote), strict=True):
                if why is not None:
                    message = f"the image cannot be had, its posts will go out without it: {why}"
                    warnings += [Problem(shown, line, "image.src", message) for shown, line in remote[url]]
    return sorted(warnings)
