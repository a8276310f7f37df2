"""A page laid out by a real browser (Debian's headless Chromium) at a phone's width.

Headless Chromium will not make its window narrower than 500 px, so the page
goes into a 375 px wide iframe (an iPhone's width; `srcdoc`, so the probe may
look inside) and a script measures it after it has loaded: how wide its
document is, and which elements reach past the right edge. `--dump-dom`
prints the result, written into the outer page.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html import unescape
from pathlib import Path

PHONE_WIDTH = 375

_PAGE = """<!doctype html><html><body style="margin:0">
<iframe id="phone" style="width:%(width)dpx;height:812px;border:0"></iframe>
<script>
var frame = document.getElementById('phone');
frame.addEventListener('load', function () {
  var inner = frame.contentDocument, root = inner.documentElement, wide = [];
  inner.querySelectorAll('body *').forEach(function (element) {
    var box = element.getBoundingClientRect();
    if (box.width > 0 && box.right > %(width)d + 0.5) {
      wide.push(element.tagName.toLowerCase() + ' ' + Math.round(box.right) + 'px');
    }
  });
  document.body.setAttribute('data-probe', JSON.stringify({scroll: root.scrollWidth, wide: wide}));
});
frame.srcdoc = %(html)s;
</script></body></html>"""


@dataclass(frozen=True)
class Layout:
    """What the browser saw: the document's scroll width, and the elements past the right edge."""

    scroll_width: int
    too_wide: list[str]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise AssertionError("Debian's chromium is not installed: run scripts/debian.sh (as root)")
    return found


def on_a_phone(html: str, folder: Path, width: int = PHONE_WIDTH) -> Layout:
    """Lay `html` out `width` pixels wide in headless Chromium (no network: a page here, file:// only)."""
    page = folder / "phone.html"
    page.write_text(_PAGE % {"width": width, "html": json.dumps(html)}, encoding="utf-8")
    command = [
        chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={folder / 'profile'}", "--window-size=800,900", "--virtual-time-budget=5000",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    if found is None:
        raise AssertionError(f"chromium gave no layout (exit {done.returncode}): {done.stderr[-2000:]}")
    probe = json.loads(unescape(found.group(1)))
    return Layout(int(probe["scroll"]), list(probe["wide"]))
