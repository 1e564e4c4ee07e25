"""Named network namespaces (/run/netns/NAME): one thread inside each creates iterator fds.

Net iterators walk the netns of the process that calls BPF_ITER_CREATE, and setns() is per
thread, so each namespace gets a dedicated thread that enters it once (pyroute2's setns) and
then only answers "a new iterator fd for this link" requests. The daemon's own threads never
change namespace."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading

from .syscall import iter_create

log = logging.getLogger("iterfs")

NETNS_DIR = "/run/netns"
_TIMEOUT = 5.0


def names(netns_dir: str = NETNS_DIR) -> set[str]:
    """The named namespaces whose file can be opened."""
    try:
        listed = os.listdir(netns_dir)  # what pyroute2's listnetns() reads
    except FileNotFoundError:
        return set()
    return {n for n in listed if os.path.isfile(os.path.join(netns_dir, n))}


class NetnsThread:
    """A thread living in one network namespace, creating iterator fds on request."""

    def __init__(self, name: str, netns_dir: str = NETNS_DIR):
        self.name = name
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._nsfd = os.open(os.path.join(netns_dir, name), os.O_RDONLY | os.O_CLOEXEC)
        self._entered = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"netns {name}", daemon=True)
        self._thread.start()
        self._entered.wait(_TIMEOUT)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            from pyroute2 import netns as pr_netns  # 0.25 s to import: only once needed
            pr_netns.setns(self._nsfd, flags=0)
        except BaseException as e:  # reported to the constructor
            self._error = OSError(getattr(e, "errno", 0) or 1,
                                  f"cannot enter network namespace {self.name}: {e}")
            self._entered.set()
            return
        finally:
            os.close(self._nsfd)
        self._entered.set()
        while True:
            req = self._requests.get()
            if req is None:
                return
            link_fd, box, done = req
            try:
                box.append(iter_create(link_fd).detach())
            except BaseException as e:
                box.append(e)
            done.set()

    def new_iter(self, link_fd: int) -> int:
        """A fresh iterator fd for link_fd, created inside this namespace."""
        box: list = []
        done = threading.Event()
        self._requests.put((link_fd, box, done))
        if not done.wait(_TIMEOUT) or not box:
            raise OSError(110, f"network namespace {self.name}: no answer from its thread")
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def close(self) -> None:
        self._requests.put(None)
        with contextlib.suppress(RuntimeError):
            self._thread.join(_TIMEOUT)


class Namespaces:
    """The set of live NetnsThreads, kept in step with /run/netns by refresh()."""

    def __init__(self, netns_dir: str = NETNS_DIR):
        self.netns_dir = netns_dir
        self.threads: dict[str, NetnsThread] = {}

    def refresh(self) -> bool:
        """Start threads for new names, stop those of vanished ones; True if anything changed."""
        now = names(self.netns_dir)
        changed = False
        for gone in set(self.threads) - now:
            self.threads.pop(gone).close()
            log.info("network namespace %s gone", gone)
            changed = True
        for new in sorted(now - set(self.threads)):
            try:
                self.threads[new] = NetnsThread(new, self.netns_dir)
            except OSError as e:
                log.warning("%s", e)
                continue
            log.info("network namespace %s appeared", new)
            changed = True
        return changed

    def close(self) -> None:
        for t in self.threads.values():
            t.close()
        self.threads = {}
