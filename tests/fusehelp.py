"""Test helpers: the FUSE skip-or-fail policy and a real mount served from a background thread."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import shutil
import subprocess
import threading
import time

import pytest


def require_fuse() -> None:
    """Skip unless FUSE can be mounted here; fail instead when ITERFS_REQUIRE_KERNEL=1."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if shutil.which("fusermount3") is None:
        missing.append("fusermount3")
    missing += [mod for mod in ("pyfuse3", "trio") if importlib.util.find_spec(mod) is None]
    if not missing:
        return
    reason = "FUSE tests need " + ", ".join(missing)
    if os.environ.get("ITERFS_REQUIRE_KERNEL") == "1":
        pytest.fail(reason + " (ITERFS_REQUIRE_KERNEL=1)", pytrace=False)
    pytest.skip(reason)


def is_mounted(mountpoint: str) -> bool:
    mp = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mp for line in f)


def force_unmount(mountpoint: str) -> None:
    """Lazy unmount: also clears a dead session ("Transport endpoint is not connected")."""
    subprocess.run(
        ["fusermount3", "-u", "-z", mountpoint],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


class Mount:
    """An IterFS served by `trio.run(serve, ...)` in a daemon thread.

    `error` holds whatever ended the session abnormally (a handler exception that escaped
    pyfuse3.main, a mount failure); stop() re-raises it so a test that killed the session
    fails even if its own assertions passed.
    """

    def __init__(self, ops, mountpoint: str, **serve_kwargs) -> None:
        self.ops = ops
        self.mountpoint = str(mountpoint)
        self.serve_kwargs = serve_kwargs
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="iterfs-test-mount", daemon=True)

    def _run(self) -> None:
        import trio

        from iterfs.fs import serve

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: serve(
                        self.ops, self.mountpoint, task_status=task_status, **self.serve_kwargs
                    )
                )
                self._started.set()

        try:
            trio.run(main)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc
        finally:
            self._started.set()
            self.ended.set()

    def start(self, timeout: float = 10.0) -> Mount:
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"iterfs did not mount on {self.mountpoint} in {timeout}s")
        if self.error is not None:
            raise self.error
        deadline = time.monotonic() + timeout
        while True:  # the mount exists; wait until the session answers
            try:
                os.listdir(self.mountpoint)
                if is_mounted(self.mountpoint):
                    return self
            except OSError:
                pass
            if self.ended.is_set() or time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"iterfs on {self.mountpoint} does not answer")
            time.sleep(0.01)

    def alive(self) -> bool:
        return not self.ended.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        from iterfs.fs import terminate

        if self.alive():
            terminate()
        self._thread.join(timeout)
        if self._thread.is_alive() or is_mounted(self.mountpoint):
            force_unmount(self.mountpoint)
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"iterfs serving {self.mountpoint} did not stop")
        if self.error is not None:
            raise self.error


@contextlib.contextmanager
def mounted(ops, mountpoint, **serve_kwargs):
    """Mount `ops` on `mountpoint` for the body; always unmount, also on failure."""
    mountpoint = str(mountpoint)
    os.makedirs(mountpoint, exist_ok=True)
    if is_mounted(mountpoint):
        force_unmount(mountpoint)
    m = Mount(ops, mountpoint, **serve_kwargs)
    try:
        m.start()
        yield m
    finally:
        m.stop()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll `predicate` until true (release reaches the daemon after close() returns)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def errno_of(fn, *args, **kwargs) -> int:
    """Run `fn` expecting an OSError and return its errno (0 when nothing was raised)."""
    try:
        fn(*args, **kwargs)
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0
