"""One build of a site at a time: `.publisher/build.lock`, held from reading the records to saving the caches."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from publisher.build.cache import CACHE_FOLDER

_held: set[int] = set()  # the descriptors of the locks this process holds


def _let_go_in_child() -> None:
    """A forked child (a build's worker process) keeps no hold on the lock.

    An `flock` belongs to the open file, which a fork shares: the workers of a build killed with `kill -9`
    live on (their parent gone) and kept the site locked, so every later build waited for ever. Each
    descriptor is pointed at /dev/null rather than closed, so that its number never names another file.
    """
    if not _held:
        return
    nothing = os.open(os.devnull, os.O_RDONLY)
    for fd in _held:
        os.dup2(nothing, fd)
    os.close(nothing)
    _held.clear()


os.register_at_fork(after_in_child=_let_go_in_child)


@contextlib.contextmanager
def one_build_at_a_time(root: Path, waiting: Callable[[], None] | None) -> Iterator[None]:
    """Hold the site's build lock (`.publisher/build.lock`), waiting for a build that holds it.

    Two builds of one site at once (a cron job and someone at the keyboard)
    each remove the files they think are theirs to remove and save caches that
    the other's files contradict: one failed ("cannot write ...") and the next
    build left out files a cold build writes. An `flock` ends with its process
    (its forked workers let go of it at once: `_let_go_in_child`), so a build
    killed mid-way never leaves the site locked. A site whose `.publisher/`
    cannot be written builds without the lock (its caches cannot be saved either).
    """
    try:
        (root / CACHE_FOLDER).mkdir(exist_ok=True)
        lock = open(root / CACHE_FOLDER / "build.lock", "a")  # noqa: SIM115  (closed below, which unlocks it)
    except OSError:
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(lock, fcntl.LOCK_EX)
        _held.add(lock.fileno())
        try:
            yield
        finally:
            _held.discard(lock.fileno())
