"""A PostgreSQL or queue URL without the scale extra's drivers is one line naming the extra.

The drivers are installed here, so their absence is simulated the way Python
itself spells "not importable": a ``None`` entry in ``sys.modules`` (in this
process through monkeypatch, and in a child process set before publisher runs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.dispatch_support import command, configure, environment, full_environment

POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
EXTRA = "pip install 'publisher[scale]'"


def test_a_postgresql_url_without_psycopg_names_the_extra(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    result = command(example_site, environment(PUBLISHER_DATABASE_URL=POSTGRESQL), "plan")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: a PostgreSQL database needs psycopg, which is not installed here: {EXTRA}"
    ]


@pytest.mark.parametrize(
    ("url", "hidden", "missing"),
    [
        ("redis://127.0.0.1:6379/0", ("redis",), "redis"),
        ("redis://127.0.0.1:6379/0", ("celery", "redis"), "celery and redis"),
        ("amqp://guest:guest@127.0.0.1:5672//", ("celery",), "celery"),
    ],
)
def test_a_queue_url_without_its_drivers_names_the_extra(
    example_site: Path, monkeypatch: pytest.MonkeyPatch, url: str, hidden: tuple[str, ...], missing: str
) -> None:
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)
    scheme = url.partition("://")[0]
    for args in (("worker",), ("run", "--once")):
        result = command(example_site, environment(PUBLISHER_QUEUE_URL=url), *args)
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [
            f"Error: a {scheme}:// queue needs {missing}, which is not installed here: {EXTRA}"
        ]


def test_in_a_fresh_process_without_psycopg_the_message_is_the_same(example_site: Path) -> None:
    configure(example_site)
    program = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from publisher.cli.main import main\n"
        f"sys.argv = ['publisher', '--site', {str(example_site)!r}, 'plan']\n"
        "main()\n"
    )
    env = full_environment(environment(PUBLISHER_DATABASE_URL=POSTGRESQL))
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: a PostgreSQL database needs psycopg, which is not installed here: {EXTRA}"
    ]
    assert "Traceback" not in done.stderr
