"""`publisher subscribers add/import/list/remove/export` on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.dispatch_support import command, configure

NOW = "2026-11-20T09:00:00+00:00"


def test_the_subscriber_commands_round_trip(example_site: Path, tmp_path: Path) -> None:
    configure(example_site)
    env: dict[str, str] = {}
    added = command(example_site, env, "subscribers", "add", "Ana.Perez@Example.ORG", "--name", "Ana", "--now", NOW)
    assert added.exit_code == 0 and added.stdout.strip() == "Ana.Perez@example.org: active on news"
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,language,lists\n"
        "bo@example.org,Bo,es,news;weekly\n"
        "not-an-address,Cy,,news\n"
        "ana.perez@example.org,,,weekly\n",
        encoding="utf-8",
    )
    imported = command(example_site, env, "subscribers", "import", str(people), "--now", NOW)
    assert imported.exit_code == 2  # a bad row: reported, the good rows are in
    assert f"{people}:3: email:" in imported.stderr
    assert "1 added, 1 updated" in imported.stdout

    removed = command(example_site, env, "subscribers", "remove", "bo@example.org", "--now", NOW)
    assert removed.exit_code == 0 and removed.stdout.strip() == "bo@example.org: unsubscribed"
    again = command(example_site, env, "subscribers", "import", str(people), "--now", NOW)
    assert "1 left unsubscribed" in again.stdout  # an import never brings back someone who left

    listed = command(example_site, env, "--json", "subscribers", "list")
    found = {p["email"]: (p["status"], p["lists"]) for p in json.loads(listed.stdout)["subscribers"]}
    assert found == {
        "Ana.Perez@example.org": ("active", ["news", "weekly"]),
        "bo@example.org": ("unsubscribed", ["news", "weekly"]),  # lists kept; the status says no mail
    }
    exported = command(example_site, env, "subscribers", "export", "--status", "active")
    lines = exported.stdout.splitlines()
    assert lines[0].startswith("email,name,language,lists,status") and len(lines) == 2
    assert lines[1].startswith("Ana.Perez@example.org,Ana,,news;weekly,active,")

    missing = command(example_site, env, "subscribers", "remove", "nobody@example.org")
    assert missing.exit_code == 2 and "EMAIL: nobody@example.org is not a subscriber" in missing.stderr
    bad_list = command(example_site, env, "subscribers", "add", "cy@example.org", "--list", "nope")
    assert bad_list.exit_code == 2 and "--list: 'nope' is not one of the newsletter lists" in bad_list.stderr
