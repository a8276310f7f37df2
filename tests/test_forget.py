"""`publisher subscribers forget`: a person's data erased, a keyed hash kept, and no import adding them back."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import sqlalchemy as sa

from publisher.render.letters import message_id
from publisher.store.tables import feedback, metadata
from tests.dispatch_support import PARIS_DUE, SECRET, add_people, at, command, configure, environment, store_of

ADDRESS = "Ana.Perez@example.org"
SENT = PARIS_DUE + dt.timedelta(minutes=5)


def _every_text(site: Path, env: dict[str, str]) -> str:
    """Every value of every table, as one text to search (the whole database as the team could read it)."""
    store = store_of(site, env)
    try:
        with store.read() as connection:
            return "\n".join(
                repr(tuple(row)) for table in metadata.sorted_tables for row in connection.execute(sa.select(table))
            )
    finally:
        store.close()


def test_forget_leaves_no_personal_field_and_a_reimport_is_refused(example_site: Path, tmp_path: Path) -> None:
    configure(example_site)
    env = environment()
    add_people(example_site, env, [ADDRESS, "bo@example.org"])
    assert command(example_site, env, "run", "--once", "--now", at(SENT)).exit_code == 0
    store = store_of(example_site, env)
    try:
        with store.write() as connection:
            dispatch_id = connection.execute(sa.text("SELECT dispatch_id FROM deliveries LIMIT 1")).scalar_one()
            connection.execute(
                sa.insert(feedback).values(
                    dispatch_id=dispatch_id, target=ADDRESS, kind="hard", status="5.1.1", source="mailbox",
                    event_key="k1", occurred_at=SENT, created_at=SENT,
                )
            )  # fmt: skip
    finally:
        store.close()
    before = _every_text(example_site, env).lower()
    assert ADDRESS.lower() in before and "'ana.perez'" in before  # the test can see what it must not find after

    forgotten = command(example_site, env, "subscribers", "forget", "ana.perez@EXAMPLE.org", "--now", at(SENT))
    assert forgotten.exit_code == 0, forgotten.output
    assert "1 sends and 1 reports no longer name them" in forgotten.stdout
    after = _every_text(example_site, env).lower()
    unkeyed = hashlib.blake2b(ADDRESS.lower().encode(), digest_size=8).hexdigest()  # the old Message-ID's digest
    keyed = message_id(dispatch_id, ADDRESS, "h", SECRET).rpartition(".")[2].partition("@")[0]  # today's
    assert keyed in before
    for personal in (ADDRESS.lower(), "ana.perez", "'ana", unkeyed, keyed):
        assert personal not in after, personal
    assert "bo@example.org" in after  # only that person was erased
    assert SECRET not in after

    people = tmp_path / "people.csv"
    people.write_text("email,name\ncy@example.org,Cy\nANA.PEREZ@example.org,Ana\n", encoding="utf-8")
    imported = command(example_site, env, "subscribers", "import", str(people), "--list", "news")
    assert imported.exit_code == 2
    assert imported.stderr.strip() == (
        f"{people}:3: email: was erased at its owner's request and cannot be added again"
    )
    assert "1 added" in imported.stdout
    added = command(example_site, env, "subscribers", "add", ADDRESS)
    assert added.exit_code == 2 and "email: was erased at its owner's request" in added.stderr

    listed = command(example_site, env, "subscribers", "list")
    assert "(1 erased address, kept as keyed hashes only)" in listed.stdout
    assert "ana" not in listed.stdout.lower()
    data = json.loads(command(example_site, env, "--json", "subscribers", "list").stdout)
    assert data["erased"] == 1
    again = command(example_site, env, "subscribers", "forget", ADDRESS)
    assert again.exit_code == 0 and "was erased already" in again.stdout


def test_forget_needs_the_key_it_hashes_with(example_site: Path) -> None:
    configure(example_site)
    refused = command(example_site, {"PUBLISHER_EMAIL_URL": "smtp://127.0.0.1:9"}, "subscribers", "forget", ADDRESS)
    assert refused.exit_code == 2 and "EMAIL: set PUBLISHER_SECRET" in refused.stderr
