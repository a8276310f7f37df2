"""Where templates are found: the site's own `templates/` first, then the defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


def default_templates() -> Path:
    """The default templates: inside the installed wheel, or the repository's `templates/`."""
    packaged = Path(__file__).parent.parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "templates"


@lru_cache(maxsize=8)
def environment(site_templates: Path | None) -> jinja2.Environment:
    """A Jinja2 environment: the site's templates override the defaults by file name."""
    import jinja2  # here: finding the templates (a build's cache digests them) needs no Jinja

    folders = [str(site_templates)] if site_templates is not None and site_templates.is_dir() else []
    folders.append(str(default_templates()))
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml", "html", "xml"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
