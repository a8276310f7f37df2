"""The README's table of commands lists every command, subcommand and option the CLI has."""

from __future__ import annotations

import click

from publisher.cli.context import SharedOption
from publisher.cli.main import cli
from tests.conftest import REPO


def command_rows() -> dict[str, str]:
    """First cell of each row of the README's Commands table ('publisher build [--out DIR] ...'), by command."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        if line.startswith("| `publisher "):
            cell = line.split("|")[1].strip().strip("`")
            words = cell.split()
            name = " ".join(w for w in words[1:3] if w.isidentifier())  # 'build', 'subscribers add'
            rows[name if words[1] == "subscribers" else words[1]] = cell
    return rows


def commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(commands(command, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = command
    return found


def test_every_command_and_option_is_in_the_readme() -> None:
    rows = command_rows()
    missing = []
    for name, command in sorted(commands(cli).items()):
        row = rows.get(name)
        if row is None:
            missing.append(f"publisher {name}")
            continue
        for parameter in command.params:
            if isinstance(parameter, SharedOption):  # every command's: the sentence above the table says so
                continue
            if isinstance(parameter, click.Option):
                option = max(parameter.opts, key=len)
                if option not in row:
                    missing.append(f"publisher {name} {option}")
    assert missing == []
    assert set(rows) == set(commands(cli))  # and nothing the CLI does not have


def test_the_options_every_command_takes_are_said_once_above_the_table() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    intro = text.split("## Commands", 1)[1].split("| command |", 1)[0]
    shared = {max(p.opts, key=len) for c in commands(cli).values() for p in c.params if isinstance(p, SharedOption)}
    assert shared == {"--site", "--json"}
    assert "All take `--site DIR`" in intro and "`--json`" in intro and "after the command" in intro
