"""`publisher outbox`: what went to the outbox instead of the world, one line a message or post.

Maildir names files for machines (``1718000000.M12P34Q0.host``); this listing
gives each message's date, recipient and subject beside the file to open, and
each post's network and first words, so a team trying publisher out sees what
would have gone out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from publisher.cli.context import Context, pass_context


@click.command(name="outbox")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="The newest this many.")
@pass_context
def outbox_command(c: Context, limit: int) -> None:
    """List the messages and posts kept in the outbox, newest first.  Example: publisher outbox --limit 10"""
    from publisher.channels.email_url import parse_email_url

    transport = parse_email_url(c.site.email_url, root=c.site.root)
    entries = _messages(transport.path) if transport.kind == "maildir" and transport.path is not None else []
    entries += _posts(c.site.root / "outbox" / "posts")
    entries.sort(key=lambda entry: entry["modified"], reverse=True)
    shown = entries[:limit]
    human = [f"{e['kind']:<9} {e['to']:<32} {e['subject']}\n          {e['path']}" for e in shown]
    if not entries:
        human = ["the outbox is empty"]
    elif len(entries) > limit:
        human.append(f"… and {len(entries) - limit} older (--limit)")
    c.emit("\n".join(human), {"entries": shown, "total": len(entries)})


def _messages(folder: Path) -> list[dict[str, Any]]:
    """Each message of the Maildir (`new/` and `cur/`), read for its headers only."""
    import email.parser  # here: every command loads this module, few read the outbox
    import email.policy

    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    found = []
    for path in sorted([*folder.glob("new/*"), *folder.glob("cur/*")]):
        with path.open("rb") as file:
            headers = parser.parse(file)
        found.append(
            {
                "kind": "email",
                "to": str(headers.get("To", "")),
                "subject": str(headers.get("Subject", "")),
                "date": str(headers.get("Date", "")),
                "path": str(path),
                "modified": path.stat().st_mtime,
            }
        )
    return found


def _posts(folder: Path) -> list[dict[str, Any]]:
    """Each post kept as JSON under `outbox/posts/<network>/`, with its first words."""
    found = []
    for path in sorted(folder.glob("*/*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        parts = data.get("parts") if isinstance(data, dict) else None
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) and isinstance(parts, list) and parts and isinstance(parts[0], dict):
            text = parts[0].get("text")
        first = " ".join(str(text or "").split())
        found.append(
            {
                "kind": path.parent.name,
                "to": "(post)",
                "subject": first[:60] + ("…" if len(first) > 60 else ""),
                "date": "",
                "path": str(path),
                "modified": path.stat().st_mtime,
            }
        )
    return found
