"""The site's image files published with the output: what issues, feeds and posts show resolves there.

Records show a site image (``image: {src: media/x.png}``) and the logo at the
site's URL + their path, so publishing the output folder must publish those
files too: `publish_media` copies each into the output folder at the same
path (``media/…`` in the usual layout), writing only what changed. When the
output folder is the site folder the files are there already and nothing is
copied. The copies are remembered in the build's own folder (``media.json``
beside its manifest of outputs); a copy no record uses any more is removed
(with the folder it leaves empty), unless someone changed it since, and no
other file is ever touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from publisher.build.stored import load_json, read_as, remove_unchanged, save_json, written_files
from publisher.build.work import Output
from publisher.site.files import FileInfo, write_file
from publisher.site.rules import is_image_file

__all__ = ["MEDIA_STATE", "publish_media"]

MEDIA_STATE = "media.json"


def _inside(root: Path, src: str) -> Path | None:
    """`src` as an image file of `root`, or None when it leaves the folder (``../``), is a URL, or is
    named as no image is (a setting, a secret, a database: never published, whatever names it)."""
    if "://" in src or not is_image_file(src):
        return None
    path = (root / src.lstrip("/")).resolve()
    return path if root in path.parents else None


def publish_media(
    root: Path, out: Path, sources: Iterable[str | None], state: Path, *, write: bool = True
) -> tuple[list[Output], list[str]]:
    """Copy the site files named by `sources` (record images, the logo) into `out`: (files, removed).

    `state` is the build folder where the copies are remembered. A file that
    is missing, outside the site folder, or not named as an image is left out.
    """
    root, out = root.resolve(), out.resolve()
    wanted = sorted({src.lstrip("/") for src in sources if src and "://" not in src})
    same = root == out
    # as every cache file: another shape reads as no copies, a path that could lead out of `out` as not the shape
    before: dict[str, FileInfo] = {}
    if not same:
        before = read_as(written_files, load_json(state / MEDIA_STATE).get("files"), before)
    written: dict[str, FileInfo] = {}
    files: list[Output] = []
    for src in wanted:
        source = _inside(root, src)
        if source is None or not source.is_file():
            continue
        if same:  # published where it is: nothing for publisher to write, list or remove
            continue
        content = source.read_bytes()
        changed = False
        if write:
            (out / src).parent.mkdir(parents=True, exist_ok=True)
            changed, written[src] = write_file(str(out / src), content, before.get(src))
        files.append(Output(src, "media", source.suffix.lstrip(".").lower(), (), changed=changed))
    removed: list[str] = []
    if write and not same:  # as the builder removes its files: only publisher's, folders left empty too
        removed = remove_unchanged(out, {src: before[src] for src in before.keys() - written.keys()})
        save_json(state / MEDIA_STATE, {"files": {src: list(info) for src, info in written.items()}})
    return files, removed
