"""A newsletter issue judged as a spam filter would: SpamAssassin (Debian's), local rules only.

The bundled site's issue is sent for real time through the command line (a test
send into the outbox Maildir) and scored with `spamassassin -t -L`: at most 0.
A check that this can fail: the same message with white-on-white text (what
`<mj-preview>` makes of a preheader) scores above 0.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import REPO

ISSUE = "2018-02-09-south-south-cooperation-paris"


def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found is None:
        raise AssertionError("Debian's spamassassin is not installed: run scripts/debian.sh (as root)")
    return found


def score(message: bytes, home: Path) -> tuple[float, str]:
    """SpamAssassin's score of `message` and its report (local tests only: no network, no Bayes)."""
    done = subprocess.run(
        [spamassassin(), "-t", "-L", "--cf", "use_bayes 0"],
        input=message,
        capture_output=True,
        check=True,
        timeout=120,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    report = done.stdout.decode("utf-8", "replace")
    found = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", report)
    assert found is not None, report[-2000:]
    return float(found.group(1)), report[report.index("Content analysis details") :]


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bundled site's issue as a test send writes it into the outbox, dated now."""
    site = tmp_path_factory.mktemp("spam") / "site"
    site.mkdir()
    shutil.copy(REPO / "publisher.toml", site / "publisher.toml")
    for name in ("events", "media"):
        shutil.copytree(REPO / name, site / name)
    subprocess.run(
        [sys.executable, "-m", "publisher", "--site", str(site), "send", ISSUE, "--to", "reader@example.org"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (path,) = (site / "outbox" / "mail" / "new").iterdir()
    return path.read_bytes()


def test_the_bundled_sites_issue_scores_at_most_zero(sent: bytes, tmp_path: Path) -> None:
    points, report = score(sent, tmp_path)
    assert points <= 0, report
    assert "HTML_FONT_LOW_CONTRAST" not in report and "fonts.googleapis.com" not in sent.decode("ascii", "replace")


def test_white_on_white_text_is_scored_against_it(sent: bytes, tmp_path: Path) -> None:
    message = email.message_from_bytes(sent, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    hidden = '<body style="background-color:#ffffff;"><div style="color:#ffffff;">a hidden line</div>'
    html_part.set_content(html.replace("<body", hidden + "<x", 1), subtype="html")
    points, report = score(message.as_bytes(), tmp_path)
    assert points > 0 and "HTML_FONT_LOW_CONTRAST" in report, report
