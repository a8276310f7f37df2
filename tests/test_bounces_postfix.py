"""Postfix as the judge: it bounces a newsletter sent to unknown users, and its own DSNs suppress them."""

from __future__ import annotations

import datetime as dt
import email
import json
from pathlib import Path

from tests.bounces_support import SOON, statuses
from tests.dispatch_support import add_people, at, command, configure, environment
from tests.postfix_support import postfix, wait_for_files

SENDER = "news@cepei.example.org"  # the example site's From: Postfix returns its bounces there


def test_postfix_bounces_unknown_users_and_its_dsns_mark_them_bounced(example_site: Path) -> None:
    gone = ["left.long.ago@readers.test", "never.existed@readers.test"]
    kept = "kept@good.test"
    with postfix([SENDER, kept]) as (port, boxes):
        configure(example_site)  # no bounce mailbox yet: the run's own tick would read the DSNs as they come
        env = environment(PUBLISHER_EMAIL_URL=f"smtp://127.0.0.1:{port}")
        add_people(example_site, env, [*gone, kept])
        sent = command(example_site, env, "run", "--once", "--now", at(SOON))
        assert sent.exit_code == 0, sent.output
        assert "3 messages sent" in sent.stdout  # Postfix took all three: the bounces come later, as mail

        dsns = wait_for_files(boxes[SENDER] / "new", 2)
        wait_for_files(boxes[kept] / "new", 1)
        for path in dsns:  # what Postfix wrote is a genuine DSN about one of ours
            report = email.message_from_bytes(path.read_bytes())
            assert report.get_content_type() == "multipart/report"
            assert report.get_param("report-type") == "delivery-status"

        configure(example_site, extra=f'\n[bounces]\nmailbox = "maildir:{boxes[SENDER]}"\n')
        result = command(example_site, env, "--json", "bounces", "--now", at(SOON + dt.timedelta(hours=1)))
        assert result.exit_code == 0, result.output
        done = json.loads(result.stdout)
        assert (done["reports"], done["bounced"], done["unmatched"], done["other"]) == (2, 2, 0, 0)
        assert statuses(example_site, env, [*gone, kept]) == {gone[0]: "bounced", gone[1]: "bounced", kept: "active"}
        assert list((boxes[SENDER] / "new").iterdir()) == []
        assert len(list((boxes[SENDER] / "cur").iterdir())) == 2
