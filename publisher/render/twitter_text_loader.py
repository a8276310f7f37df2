"""twitter-text-parser, loaded without ``pkg_resources``.

The library reads its emoji list with ``pkg_resources.resource_string``.
Importing ``pkg_resources`` costs about 60 ms here (a rebuild after one change
must stay under a second, and it pays this whenever a post is measured), it
warns that it is deprecated, and it is missing wherever setuptools is not
installed (a Python 3.12 venv has none): the library would not load at all.

So while the library loads, a stand-in ``pkg_resources`` with that one function
sits in ``sys.modules``, reading the file beside the module, and goes
away afterwards. A real ``pkg_resources`` already loaded is used as it is. Every
use of twitter-text in publisher goes through `load`.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from pathlib import Path

_lock = threading.Lock()
_ABSENT = object()
NAME = "twitter_text"


def load() -> types.ModuleType:
    """The ``twitter_text`` package, imported once (its submodules are then loaded too)."""
    if NAME in sys.modules:  # loaded, or loading in another thread: import_module waits for that one
        return importlib.import_module(NAME)
    with _lock:
        if NAME in sys.modules or sys.modules.get("pkg_resources") is not None:
            return importlib.import_module(NAME)
        before = sys.modules.get("pkg_resources", _ABSENT)  # absent, or None: importing it is refused
        stand_in = types.ModuleType("pkg_resources", "publisher's stand-in, only while twitter-text loads")
        stand_in.resource_string = _resource_string  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = stand_in
        try:
            return importlib.import_module(NAME)
        finally:
            if sys.modules.get("pkg_resources") is stand_in:
                if before is _ABSENT:
                    del sys.modules["pkg_resources"]
                else:
                    sys.modules["pkg_resources"] = before  # type: ignore[assignment]


def _resource_string(module: str, name: str) -> bytes:
    """``pkg_resources.resource_string``: a data file beside an imported module (or in its package)."""
    origin = getattr(sys.modules[module], "__file__", None)
    if origin is None:
        raise FileNotFoundError(f"{module} has no folder to read {name} from")
    return Path(origin).with_name(name).read_bytes()
