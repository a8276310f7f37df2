"""Debian's headless Chromium driven over the DevTools protocol (a websocket): open pages, run script, read them.

    with Browser(tmp_path) as browser:
        browser.go("http://127.0.0.1:8080/subscribe")
        browser.run("document.getElementById('email').value = 'ana@example.org'")

No Playwright: its browsers cannot be downloaded here, and the protocol is small.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from itertools import count
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.browser_support import chromium


class Browser:
    """One headless Chromium with one page; `go` navigates, `run` evaluates, `wait_for` polls the page's text."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self.page: ClientConnection | None = None
        self.ids = count(1)

    def __enter__(self) -> Browser:
        profile = self.folder / "cdp-profile"
        command = [
            chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
            "--window-size=375,812", "about:blank",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            pages = [t for t in json.loads(answer.read()) if t.get("type") == "page"]
        self.page = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10, legacy=True)
        self.send("Page.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.page is not None:
            self.page.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.page is not None
        number = next(self.ids)
        self.page.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.page.recv(timeout=30))
            if message.get("id") == number:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def run(self, script: str) -> Any:
        """The value of `script` evaluated in the page."""
        result = self.send("Runtime.evaluate", expression=script, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{script}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def go(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for(self, text: str, timeout: float = 15) -> str:
        """The page's visible text once it holds `text` (after a navigation or a form's post)."""
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            try:
                seen = str(self.run("document.readyState === 'complete' ? document.body.innerText : ''") or "")
            except AssertionError:  # the page is being replaced
                seen = ""
            if text in seen:
                return seen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the page shows: {seen[:500]!r}")
