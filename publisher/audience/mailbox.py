"""The bounce mailbox (``[bounces] mailbox``): what is new in it, and setting a message aside once read.

Two kinds: ``maildir:PATH`` (relative to the site), where what is new sits in
``new/`` and a processed message moves to ``cur/`` with the Seen flag (the
Maildir convention: a rename, nothing rewritten); and
``imaps://user@host[:port]/FOLDER`` through `imapclient`, the password from
``PUBLISHER_BOUNCES_PASSWORD``, where new means unseen (read with BODY.PEEK,
so reading marks nothing) and a processed message moves to the folder
``FOLDER.processed``. Nothing is ever deleted, and a message that is not a
report is left exactly where it was.

A mailbox that cannot be opened raises MailboxUnavailable (a WorkFailed): the
command says it in one line, the clock logs it and goes on.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from publisher.errors import WorkFailed
from publisher.site.bounce_settings import IMAPS_URL
from publisher.site.config import Site

PASSWORD_ENV = "PUBLISHER_BOUNCES_PASSWORD"
PROCESSED_SUFFIX = ".processed"


class MailboxUnavailable(WorkFailed):
    """The bounce mailbox cannot be opened or read (a missing folder, a refused login, no server)."""


class Mailbox(Protocol):
    """What `publisher bounces` needs of a mailbox: the new messages, and setting one aside."""

    def new(self) -> Iterator[tuple[str, bytes]]: ...
    def set_aside(self, key: str) -> None: ...
    def close(self) -> None: ...


class MaildirBox:
    """A Maildir: new messages in ``new/``; set aside → ``cur/KEY:2,S``."""

    def __init__(self, path: Path, shown: str) -> None:
        self.path = path
        for sub in ("new", "cur"):
            if not (path / sub).is_dir():
                raise MailboxUnavailable(f"bounce mailbox {shown}: no Maildir there (no {sub}/ folder)")

    def new(self) -> Iterator[tuple[str, bytes]]:
        for name in sorted(os.listdir(self.path / "new")):
            if not name.startswith("."):
                yield name, (self.path / "new" / name).read_bytes()

    def set_aside(self, key: str) -> None:
        os.rename(self.path / "new" / key, self.path / "cur" / f"{key.partition(':')[0]}:2,S")

    def close(self) -> None:
        pass


class ImapBox:
    """An IMAP folder over TLS: new = UNSEEN; set aside → moved to ``FOLDER.processed``."""

    def __init__(self, url: str, password: str | None, ssl_context: ssl.SSLContext | None = None) -> None:
        from imapclient import IMAPClient

        found = IMAPS_URL.fullmatch(url)
        if found is None:
            raise MailboxUnavailable(f"bounce mailbox {url}: not imaps://user@host/FOLDER")
        if not password:
            raise MailboxUnavailable(f"bounce mailbox {url}: {PASSWORD_ENV} is not set")
        host = found["host"].strip("[]")
        self.folder = found["folder"]
        self.aside = self.folder + PROCESSED_SUFFIX
        try:
            self.client: Any = IMAPClient(host, port=int(found["port"] or 993), ssl=True, ssl_context=ssl_context)
            self.client.login(found["user"], password)
            self.client.select_folder(self.folder)
            if not self.client.folder_exists(self.aside):
                self.client.create_folder(self.aside)
        except Exception as exc:  # socket, TLS and IMAP errors alike: the mailbox cannot be read now
            raise MailboxUnavailable(f"bounce mailbox {url}: {exc}") from None

    def new(self) -> Iterator[tuple[str, bytes]]:
        uids = self.client.search(["UNSEEN"])
        for start in range(0, len(uids), 50):
            fetched = self.client.fetch(uids[start : start + 50], ["BODY.PEEK[]"])
            for uid, data in sorted(fetched.items()):
                yield str(uid), bytes(data[b"BODY[]"])

    def set_aside(self, key: str) -> None:
        if self.client.has_capability("MOVE"):
            self.client.move([int(key)], self.aside)
        else:  # COPY, then the original flagged and expunged: the message lives on in the other folder
            self.client.copy([int(key)], self.aside)
            self.client.delete_messages([int(key)])
            if self.client.has_capability("UIDPLUS"):
                self.client.uid_expunge([int(key)])
            else:
                self.client.expunge()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone: nothing left to close
            self.client.logout()


def open_mailbox(site: Site, ssl_context: ssl.SSLContext | None = None) -> Mailbox:
    """The site's bounce mailbox, open; MailboxUnavailable when it cannot be."""
    url = site.settings.bounces.mailbox
    if url is None:
        raise MailboxUnavailable("no bounce mailbox: set [bounces] mailbox in publisher.toml")
    if url.startswith("maildir:"):
        folder = url.removeprefix("maildir:")
        return MaildirBox(site.path(folder), folder)
    return ImapBox(url, site.secret(PASSWORD_ENV), ssl_context)
