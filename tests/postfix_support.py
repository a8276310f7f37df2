"""Debian's Postfix, started by a test on a loopback port with its own config and queue in a temp folder.

It accepts mail for two local domains: ``readers.test`` (local(8) delivery to
Unix users: any address there is unknown, so Postfix itself bounces it with a
genuine RFC 3464 DSN) and the virtual domains of `mailboxes` (virtual(8)
delivery to Maildirs under ``mail/``, owned by the postfix user). Nothing ever
leaves the machine: every other destination is the error transport. Installed
by scripts/debian.sh when missing.
"""

from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.smtp_support import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"


def _main_cf(root: Path, domains: list[str]) -> str:
    return f"""compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/queue
data_directory = {root}/data
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.publisher.test
mydomain = publisher.test
myorigin = publisher.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination = readers.test
local_recipient_maps =
alias_maps =
alias_database =
virtual_mailbox_domains = {", ".join(domains)}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/etc/vmailbox
virtual_uid_maps = static:{pwd.getpwnam("postfix").pw_uid}
virtual_gid_maps = static:{pwd.getpwnam("postfix").pw_gid}
default_transport = error:no mail leaves this test
relay_transport = error:no mail leaves this test
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
biff = no
smtputf8_enable = no
queue_run_delay = 1s
"""


@contextmanager
def postfix(mailboxes: list[str]) -> Iterator[tuple[int, dict[str, Path]]]:
    """Postfix running from a temp folder of its own: its SMTP port, and the Maildir of each of `mailboxes`.

    Not pytest's tmp_path: its folders are private to root, and Postfix's daemons run as the postfix user.
    """
    with tempfile.TemporaryDirectory(prefix="publisher-postfix-") as folder:
        root = Path(folder)
        root.chmod(0o755)
        with _running(root, mailboxes) as running:
            yield running


@contextmanager
def _running(root: Path, mailboxes: list[str]) -> Iterator[tuple[int, dict[str, Path]]]:
    postfix_user = pwd.getpwnam("postfix")
    for sub in ("etc", "queue", "data", "mail"):
        (root / sub).mkdir(parents=True)
    shutil.chown(root / "data", postfix_user.pw_uid, postfix_user.pw_gid)
    shutil.chown(root / "mail", postfix_user.pw_uid, postfix_user.pw_gid)
    domains = sorted({address.split("@")[1] for address in mailboxes})
    (root / "etc" / "main.cf").write_text(_main_cf(root, domains), encoding="utf-8")
    (root / "etc" / "vmailbox").write_text("".join(f"{a} {a}/\n" for a in mailboxes), encoding="utf-8")
    port = free_port()
    master = Path("/etc/postfix/master.cf").read_text(encoding="utf-8").splitlines()
    listen = f"127.0.0.1:{port} inet n - n - - smtpd"
    master = [listen if line.split()[:2] == ["smtp", "inet"] else line for line in master]
    (root / "etc" / "master.cf").write_text("\n".join(master) + "\n", encoding="utf-8")
    subprocess.run([POSTFIX, "-c", str(root / "etc"), "start"], check=True, capture_output=True, timeout=60)
    try:
        yield port, {address: root / "mail" / address for address in mailboxes}
    except AssertionError:  # what Postfix did, beside the failure
        log = root / "maillog"
        print(log.read_text(encoding="utf-8", errors="replace") if log.exists() else "no maillog")
        print(sorted(str(p) for p in (root / "mail").rglob("*")))
        raise
    finally:
        subprocess.run([POSTFIX, "-c", str(root / "etc"), "stop"], capture_output=True, timeout=60)


def wait_for_files(folder: Path, count: int, timeout: float = 60.0) -> list[Path]:
    """The files in `folder` once there are `count` of them (Postfix delivers in its own time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.iterdir()) if folder.is_dir() else []
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{folder}: {count} file(s) expected within {timeout} s")
