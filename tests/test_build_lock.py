"""The build lock ends with the build's process, even while processes it forked (its workers) live on."""

from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path

from publisher.build.lock import one_build_at_a_time


def test_a_forked_worker_does_not_keep_the_site_locked(tmp_path: Path) -> None:
    """A build killed with `kill -9` left its workers running (orphans), and they held the lock: every later
    build of the site waited for ever."""
    ready, told = os.pipe()
    with one_build_at_a_time(tmp_path, None):
        child = os.fork()
        if child == 0:  # a worker: lives on after its build
            os.write(told, b"up")
            signal.pause()
            os._exit(0)
    os.read(ready, 2)  # the child is past its fork (and whatever it does at fork)
    os.close(ready)
    os.close(told)
    try:
        with open(tmp_path / ".publisher" / "build.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while the worker held it
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
