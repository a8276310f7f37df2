"""Debian's headless Chromium driven over the DevTools protocol: open a page, run a line of script, read the page.

Clicks and form submissions are what a reader does, so they are done in the
browser itself (``element.click()`` through ``Runtime.evaluate``), never by
posting the form from the test. One browser per `Browser` (its own profile in
a temporary folder); `websockets` (installed with atproto) speaks the protocol.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.browser_support import chromium


class Browser:
    """A headless Chromium with one tab, closed on exit."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None
        self.socket: ClientConnection | None = None
        self.session = ""
        self.ids = itertools.count(1)
        self.stack = ExitStack()

    def __enter__(self) -> Browser:
        args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        args += ["--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.is_file() and len(active.read_text().split()) == 2):
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = active.read_text().split()
        self.socket = self.stack.enter_context(connect(f"ws://127.0.0.1:{port}{path}", max_size=None))
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stack.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def _call(self, method: str, params: dict[str, Any] | None = None, *, session: str = "") -> dict[str, Any]:
        assert self.socket is not None
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv(timeout=30))
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def evaluate(self, script: str) -> Any:
        """The value of `script` in the page (JSON-able values only)."""
        found = self._call("Runtime.evaluate", {"expression": script, "returnByValue": True}, session=self.session)
        return found.get("result", {}).get("value")

    def open(self, url: str) -> None:
        """Go to `url` and wait until the page has loaded."""
        self._call("Page.navigate", {"url": url}, session=self.session)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def wait_for(self, condition: str, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while not self.evaluate(f"!!({condition})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never had {condition}")
            time.sleep(0.05)
