"""Progress bars on a terminal for long work: a build's records, a send's recipients.

One helper for both: rich is loaded only when a bar is shown, the bars go to
stderr (stdout is for the report) and vanish when done, and none is shown with
``--json`` or off a terminal (the callers pass `enabled`). A bar appears only
for work big enough to wait on, so a small build or send prints nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BUILD_SHOWN_ABOVE = 300  # records to render: a build says how many, so the bar costs no listing of its own
SEND_SHOWN_FROM = 500  # recipients of one dispatch


class ProgressBars:
    """The bars of one command, one per piece of work (by key), as callbacks for the library.

    >>> with ProgressBars(enabled=False) as bars:
    ...     bars.for_build() is None
    True
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def for_build(self) -> Callable[[int, int], None] | None:
        """A `build(progress=…)` callback: one "rendering" bar past `BUILD_SHOWN_ABOVE` records; None when off."""
        if not self.enabled:
            return None
        return lambda done, total: self.update("rendering", "rendering", done, total, shown_from=BUILD_SHOWN_ABOVE + 1)

    def for_send(self) -> Callable[[str, int, int], None] | None:
        """A `Runner.on_progress` callback: a bar per dispatch of `SEND_SHOWN_FROM` recipients or more, or None."""
        if not self.enabled:
            return None
        return lambda key, done, total: self.update(key, f"sending {key}", done, total, shown_from=SEND_SHOWN_FROM)

    @property
    def shown(self) -> list[str]:
        """The keys of the bars shown so far, in order."""
        return list(self._tasks)

    def update(self, key: str, label: str, done: int, total: int, *, shown_from: int) -> None:
        """Move `key`'s bar to `done` of `total`; it is made (labelled `label`) once `total` reaches `shown_from`."""
        if key not in self._tasks:
            if total < shown_from:
                return
            if self._progress is None:
                from rich.console import Console
                from rich.progress import Progress

                self._progress = Progress(console=Console(stderr=True), transient=True)
                self._progress.start()
            self._tasks[key] = self._progress.add_task(label, total=total)
        self._progress.update(self._tasks[key], completed=done, total=total)
