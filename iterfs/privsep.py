"""Privilege separation: the FUSE server runs unprivileged; a small root helper does the rest.

The daemon loads and links its programs as root, then forks the helper and mounts. The
process that serves FUSE requests (the main pid) then drops every capability and switches
to an unprivileged user: iterator fds are created from its link fds and read without any
capability. What still needs privilege later goes to the helper over a private socketpair,
fds passed with SCM_RIGHTS: an iterator fd created inside another network namespace,
/proc opened with a reader's credentials (--passthrough), a hot reload, and at the end
the unmount and the unpinning. The helper holds no FUSE fd, so a server killed with
SIGKILL aborts the connection at once (readers get ENOTCONN); the helper sees the socket
close, unmounts, unpins and exits.

Wire format: a 4-byte length and a JSON object; fds ride on the length's sendmsg.
"""

from __future__ import annotations

import array
import ctypes
import errno
import json
import logging
import os
import pwd
import signal
import socket
import struct
import threading
import time
from typing import Callable

log = logging.getLogger("iterfs")

__all__ = ["Helper", "HelperGone", "fork_helper", "resolve_user", "drop_privileges", "cap_eff"]

_HDR = struct.Struct("=I")
_MAX_FDS = 64
_PR_SET_DUMPABLE, _PR_SET_NAME, _PR_SET_NO_NEW_PRIVS = 4, 15, 38
_libc = ctypes.CDLL(None, use_errno=True)

DEFAULT_USERS = ("iterfs", "nobody")


class HelperGone(OSError):
    def __init__(self):
        super().__init__(errno.EPIPE, "the privileged helper is gone (restart iterfs)")


# -- framing ----------------------------------------------------------------------------

def _send(sock: socket.socket, obj: dict, fds=()) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode()
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([_HDR.pack(len(body))], anc)
    sock.sendall(body)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise EOFError
        buf += part
    return bytes(buf)


def _recv(sock: socket.socket) -> tuple[dict, list[int]] | None:
    """The next message and its fds, or None when the peer is gone."""
    try:
        hdr, anc, _, _ = sock.recvmsg(_HDR.size, socket.CMSG_SPACE(_MAX_FDS * 4))
    except ConnectionResetError:
        return None
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[: len(data) - len(data) % a.itemsize])
            fds.extend(a)
    if not hdr:
        return None
    try:
        hdr += _recv_exact(sock, _HDR.size - len(hdr))
        body = _recv_exact(sock, _HDR.unpack(hdr)[0])
    except (EOFError, ConnectionResetError):
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(body), fds


# -- the server's end -------------------------------------------------------------------

class Helper:
    """The server's handle on the helper: call(op, ...) → (reply, fds). Thread-safe."""

    def __init__(self, sock: socket.socket, pid: int):
        self.sock, self.pid = sock, pid
        self._lock = threading.Lock()

    def call(self, op: str, fds=(), **args) -> tuple[dict, list[int]]:
        with self._lock:
            if self.sock is None:
                raise HelperGone()
            try:
                _send(self.sock, {"op": op, **args}, fds)
                got = _recv(self.sock)
            except (BrokenPipeError, ConnectionResetError):
                got = None
        if got is None:
            raise HelperGone()
        reply, out = got
        if "errno" in reply:
            for fd in out:
                os.close(fd)
            raise OSError(reply["errno"], reply["error"])
        return reply, out

    def call_fd(self, op: str, fds=(), **args) -> int:
        _, out = self.call(op, fds, **args)
        if len(out) != 1:
            for fd in out:
                os.close(fd)
            raise OSError(errno.EIO, f"helper answered {op} with {len(out)} fds")
        return out[0]

    def close(self, timeout: float = 10.0) -> None:
        """Ask the helper to finish (it unmounts and unpins), then reap it."""
        if self.sock is None:
            return
        try:
            self.call("exit")
        except OSError:
            pass
        with self._lock:
            self.sock.close()
            self.sock = None
        _reap(self.pid, timeout)


def _reap(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        if time.monotonic() > deadline:
            log.warning("the privileged helper (pid %d) did not exit: killing it", pid)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.01)


# -- the helper's end -------------------------------------------------------------------

Handler = Callable[[dict, list], tuple]


def fork_helper(handlers: dict[str, Handler], cleanup: Callable[[], None],
                start: Callable[[], None] | None = None) -> Helper:
    """Fork the helper. handlers[op](request, fds) → (reply dict, fds to send, then
    close); an OSError becomes the caller's OSError. cleanup() runs when the server asks
    it to exit or is gone; start(), if given, runs in the helper first (it may start
    threads). Call before any thread is started and before the mount."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid:
        theirs.close()
        return Helper(ours, pid)
    ours.close()
    code = 0
    try:
        _libc.prctl(_PR_SET_NAME, b"iterfs-helper", 0, 0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # the server decides when to stop
        if start is not None:
            start()
        _serve(theirs, handlers)
    except BaseException:
        log.exception("privileged helper failed")
        code = 1
    finally:
        try:
            cleanup()
        except BaseException:
            log.exception("privileged helper: cleanup failed")
            code = 1
        logging.shutdown()
        os._exit(code)


def _serve(sock: socket.socket, handlers: dict[str, Handler]) -> None:
    while True:
        got = _recv(sock)
        if got is None:
            log.warning("the FUSE server is gone: unmounting and unpinning")
            return
        req, fds = got
        op = req.get("op")
        out: list[int] = []
        try:
            if op == "exit":
                reply = {}
            elif op not in handlers:
                raise OSError(errno.EINVAL, f"unknown helper request {op!r}")
            else:
                reply, out = handlers[op](req, fds)
        except OSError as e:
            reply, out = {"errno": e.errno or errno.EIO, "error": str(e)}, []
        except Exception as e:  # never let a bad request end the helper
            log.exception("helper request %s failed", op)
            reply, out = {"errno": errno.EIO, "error": f"{type(e).__name__}: {e}"}, []
        finally:
            for fd in fds:
                os.close(fd)
        try:
            _send(sock, reply, out)
        except OSError:
            return
        finally:
            for fd in out:
                os.close(fd)
        if op == "exit":
            return


# -- dropping privileges -----------------------------------------------------------------

def resolve_user(name: str | None) -> tuple[str, int, int]:
    """(name, uid, gid) of the user the server runs as: `name`, or the first of
    DEFAULT_USERS that exists."""
    if name:
        try:
            pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        except (KeyError, ValueError):
            raise LookupError(f"--user {name}: no such user (create it: useradd --system "
                              f"--no-create-home --shell /usr/sbin/nologin {name})") from None
        return pw.pw_name, pw.pw_uid, pw.pw_gid
    for candidate in DEFAULT_USERS:
        try:
            pw = pwd.getpwnam(candidate)
        except KeyError:
            continue
        return pw.pw_name, pw.pw_uid, pw.pw_gid
    raise LookupError("no user to serve as: neither 'iterfs' nor 'nobody' exists "
                      "(create one: useradd --system iterfs, or pass --user NAME)")


def drop_privileges(uid: int, gid: int) -> None:
    """Become uid/gid with no supplementary groups and no capabilities (in every thread:
    glibc applies set*id to all of them). uid 0 keeps root (--user root)."""
    if uid == 0:
        return
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)  # leaving uid 0 clears the permitted and effective capabilities
    # not dumpable: other processes of the same user cannot ptrace it or take its link
    # fds (pidfd_getfd), which would let them run the programs root loaded
    for opt in (_PR_SET_NO_NEW_PRIVS, _PR_SET_DUMPABLE):
        if _libc.prctl(opt, 1 if opt == _PR_SET_NO_NEW_PRIVS else 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl({opt})")
    if cap_eff() or os.geteuid() == 0:
        raise PermissionError("could not drop privileges")


def cap_eff(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        return next(int(ln.split()[1], 16) for ln in f if ln.startswith(b"CapEff:"))
