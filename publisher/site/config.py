"""A site on disk: its folder, its `publisher.toml` (validated by `publisher.site.settings`), its secrets.

Secrets come only from the environment. A build reads the settings as its last
build validated them when `publisher.toml` is unchanged (`load_site(kept=True)`):
the file's TOML data and the validated settings as JSON, in
`.publisher/settings.json`, so that a rebuild imports no pydantic. The full
models are validated again from that data the first time any code asks for
`site.settings`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

import publisher

if TYPE_CHECKING:
    from publisher.site.settings import Settings

CONFIG_FILE = "publisher.toml"
KEPT_FILE = ".publisher/settings.json"
#: What validating `publisher.toml` depends on besides its bytes: the kept settings hold while these are the same.
_VALIDATORS = ("settings.py", "bounce_settings.py", "section.py", "rules.py")
_LIBRARIES = ("pydantic", "pydantic_core", "babel")


class Kept(msgspec.Struct, frozen=True):
    """`publisher.toml` as a build last validated it (`KEPT_FILE`)."""

    key: str  # the file's bytes and what validates them (`_key`)
    data: dict[str, Any]  # its TOML data: validated again only when the models are needed
    plain: dict[str, Any]  # the validated settings as JSON data, by alias


class _Read(msgspec.Struct):
    """The part of `Kept.plain` a build reads without pydantic, checked for its shape before it is trusted: a
    kept file whose values are not of the models' types (damaged, or forged) means the file is validated
    again, never a build that fails on them."""

    build: _ReadBuild
    site: _ReadSite
    timeline: list[Any]


class _ReadBuild(msgspec.Struct):
    previews: Annotated[int, msgspec.Meta(ge=0)]


class _ReadSite(msgspec.Struct):
    logo: str | None


class Site:
    """A site on disk: its folder, its settings and where its parts live."""

    def __init__(
        self,
        root: Path,
        settings: Settings | None = None,
        env: Mapping[str, str] | None = None,
        *,
        kept: Kept | None = None,
    ) -> None:
        if settings is None and kept is None:
            raise TypeError("a site needs its settings, validated or kept")
        self.root = root
        self.env: Mapping[str, str] = dict(os.environ) if env is None else env
        self._settings = settings
        self._kept = kept
        self._plain = kept.plain if kept is not None else None

    def __repr__(self) -> str:
        return f"Site({str(self.root)!r})"

    @property
    def settings(self) -> Settings:
        """The validated settings (validated now from the kept TOML data, the first time, when kept)."""
        if self._settings is None:
            from publisher.site.settings import Settings

            assert self._kept is not None
            self._settings = Settings.model_validate(self._kept.data)
        return self._settings

    @property
    def plain(self) -> dict[str, Any]:
        """The validated settings as JSON data, by alias (`[newsletter] from`): what a build reads without
        pydantic, the same whether the settings were validated by this process or kept from the last build."""
        if self._plain is None:
            self._plain = msgspec.json.decode(self.settings.model_dump_json(by_alias=True))
        return self._plain

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def template_folder(self) -> Path | None:
        """The site's own `templates/` when it has one, else None: rendering then uses the shipped ones.

        What every renderer takes (build, dispatch, web, `publisher preview`): a missing folder is the
        ordinary case of a site that overrides nothing, so it is None, never an error.
        """
        return self.templates if self.templates.is_dir() else None

    def path(self, value: str) -> Path:
        """A path from the config, relative to the site folder unless absolute."""
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def secret(self, name: str) -> str | None:
        """A secret from the environment (never from the file)."""
        value = self.env.get(name)
        return value or None

    @property
    def email_url(self) -> str:
        return self.secret("PUBLISHER_EMAIL_URL") or self.settings.email.url

    @property
    def database_url(self) -> str:
        url = self.secret("PUBLISHER_DATABASE_URL") or self.settings.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str(self.root / url[len(prefix) :])
        return url

    @property
    def queue_url(self) -> str:
        return self.secret("PUBLISHER_QUEUE_URL") or self.settings.queue.url


def load_site(root: Path, env: Mapping[str, str] | None = None, *, kept: bool = False) -> Site:
    """The site in `root`: its `publisher.toml`, with the environment beside it.

    With `kept` (`publisher build`), the settings as the last such load validated them when neither the
    file nor what validates it changed since (else validated, and kept for the next time).
    """
    root = root.resolve()
    env = dict(os.environ if env is None else env)
    path = root / CONFIG_FILE
    if kept:
        try:
            raw = path.read_bytes()
        except OSError:
            raw = None  # validating says what is wrong with it
        found = _read_kept(root, raw) if raw is not None else None
        if found is not None:
            return Site(root, env=env, kept=found)
    from publisher.site.settings import read_settings

    settings, raw, data = read_settings(path, root)
    site = Site(root, settings, env)
    if kept:
        _keep(root, Kept(_key(raw), data, site.plain))
    return site


def _key(raw: bytes) -> str:
    """A digest of the settings file's bytes, publisher's version, its validating modules' and the libraries'
    files (size and mtime: an edit or an upgrade of any of them changes it)."""
    h = hashlib.sha256(raw)
    h.update(publisher.__version__.encode())
    here = Path(__file__).parent
    files = [str(here / name) for name in _VALIDATORS]
    for library in _LIBRARIES:
        spec = importlib.util.find_spec(library)  # found, not imported
        files.append(spec.origin if spec is not None and spec.origin else library)
    for name in files:
        try:
            st = os.stat(name)
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{name}:-\n".encode())
    return h.hexdigest()[:32]


def _read_kept(root: Path, raw: bytes) -> Kept | None:
    try:
        kept = msgspec.json.decode((root / KEPT_FILE).read_bytes(), type=Kept)
    except (OSError, msgspec.DecodeError):  # none yet, or spoilt: validated again
        return None
    if kept.key != _key(raw):
        return None
    try:
        msgspec.convert(kept.plain, _Read)
    except msgspec.ValidationError:
        return None
    return kept


def _keep(root: Path, kept: Kept) -> None:
    """Write the kept settings (atomically); a site folder that cannot be written keeps nothing."""
    target = root / KEPT_FILE
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(exist_ok=True)
        temporary.write_bytes(msgspec.json.encode(kept))
        os.replace(temporary, target)
    except (OSError, TypeError, msgspec.EncodeError):
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
