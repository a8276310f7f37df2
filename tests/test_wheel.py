"""A built wheel, installed outside the repository, finds its default templates inside itself."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO

RENDER = """
import json
import publisher
from pathlib import Path
from publisher.site.settings import Settings, SiteSettings
from publisher.site.records import parse_record
from publisher.render.email import render_issue
from publisher.render.social import render_posts
from publisher.site.templates import default_templates

text = "---\\ntitle: Wheel test\\npublished: 2024-05-01T10:00:00+02:00\\nsummary: Built and installed.\\n---\\nBody.\\n"
record = parse_record(text, Path("events/wheel-test.md"))
settings = Settings(site=SiteSettings(title="Wheel", url="https://wheel.example.org"))
issue = render_issue([record], settings)
print(json.dumps({
    "module": publisher.__file__,
    "templates": str(default_templates()),
    "html": issue.html,
    "text": issue.text,
    "posts": [post.text for post in render_posts(record, settings)],
}))
"""


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_installed_wheel_renders_with_the_templates_inside_it(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "target"
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", wheels, REPO, cwd=tmp_path)
    [wheel] = wheels.glob("publisher-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"publisher/templates/issue.mjml", "publisher/templates/post-x.txt", "publisher/py.typed"} <= names
    assert not any(name.startswith(("tests/", "events/")) for name in names)

    run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", target, wheel, cwd=tmp_path)
    assert (target / "publisher" / "templates" / "issue.mjml").is_file()
    # The wheel's copy first on the path (and a working folder outside the repository) shadows the editable install.
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = json.loads(run(sys.executable, "-c", RENDER, cwd=tmp_path, env=env).stdout)
    assert Path(result["module"]).is_relative_to(target)
    assert Path(result["templates"]) == target / "publisher" / "templates"
    assert "Wheel test" in result["html"] and "<html" in result["html"]
    assert "Wheel test" in result["text"]
    assert all("https://wheel.example.org/#wheel-test" in post for post in result["posts"])
