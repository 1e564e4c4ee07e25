"""--passthrough ROOT: whatever iterfs does not serve is served from the real procfs.

A provider (iterfs.dyn) asked after the catalog and the process directories, so the mount
can stand in for /proc as a whole. Attributes are the real ones (so the kernel's mode
checks apply to the caller), and opens of the real files run with the caller's
credentials: a throw-away thread sets its fsuid/fsgid to the caller's and drops its
effective capabilities (both are per thread) before open(2), so procfs's own checks
(ptrace_may_access, hidepid of the real /proc) judge the caller, not the daemon.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import threading

from .dyn import Entry

_libc = ctypes.CDLL(None, use_errno=True)
# setfsuid, setfsgid, capget, capset: raw syscalls act on the calling thread only
_NR = {"x86_64": (122, 123, 125, 126), "aarch64": (151, 152, 90, 91)}
_SYS_SETFSUID, _SYS_SETFSGID, _SYS_CAPGET, _SYS_CAPSET = _NR.get(platform.machine(), _NR["x86_64"])
_CAP_V3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _as_caller(uid: int, gid: int, fn):
    """Run fn() in a new thread with fsuid/fsgid = uid/gid and no effective capabilities."""
    box: list = []

    def run():
        try:
            hdr, data = _CapHeader(_CAP_V3, 0), (_CapData * 2)()
            if _libc.syscall(_SYS_SETFSGID, gid) < 0 or _libc.syscall(_SYS_SETFSUID, uid) < 0:
                raise OSError(ctypes.get_errno(), "setfsuid")
            if _libc.syscall(_SYS_CAPGET, ctypes.byref(hdr), data) != 0:
                raise OSError(ctypes.get_errno(), "capget")
            data[0].effective = data[1].effective = 0
            if _libc.syscall(_SYS_CAPSET, ctypes.byref(hdr), data) != 0:
                raise OSError(ctypes.get_errno(), "capset")
            box.append(fn())
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=run, name="passthrough open")
    t.start()
    t.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _reader_tgid(ctx) -> int:
    try:
        with open(f"/proc/{ctx.pid}/status", "rb") as f:
            return int(next(ln for ln in f if ln.startswith(b"Tgid:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return ctx.pid


_PER_READER = {
    "self": lambda ctx: str(_reader_tgid(ctx)).encode(),
    "thread-self": lambda ctx: f"{_reader_tgid(ctx)}/task/{ctx.pid}".encode(),
}


class Passthrough:
    """Serve ROOT (normally /proc) for paths nobody else answers."""

    def __init__(self, root: str = "/proc", *, hidepid: str = "off"):
        self.root = os.path.abspath(root)
        self.hidepid = hidepid
        self.timeout = 0.0 if hidepid != "off" else 1.0
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"--passthrough {root}: not a directory")

    def _real(self, path: str) -> str:
        return os.path.join(self.root, path)

    def _hidden(self, path: str, ctx) -> bool:
        """hidepid=invisible for the process directories /proc itself shows everyone."""
        head = path.split("/", 1)[0]
        if self.hidepid != "invisible" or not head.isdigit() or ctx is None or ctx.uid == 0:
            return False
        try:
            return os.stat(self._real(head)).st_uid != ctx.uid
        except OSError:
            return True

    def _entry(self, real: str, st: os.stat_result) -> Entry:
        if stat.S_ISDIR(st.st_mode):
            mode = st.st_mode
            if self.hidepid == "noaccess" and os.path.dirname(real) == self.root \
                    and os.path.basename(real).isdigit():
                mode &= ~0o077
            return Entry("dir", mode, st.st_uid, st.st_gid, timeout=self.timeout)
        if stat.S_ISLNK(st.st_mode):
            # read at readlink time, as the reader: procfs refuses some links (cwd, exe,
            # fd/N of another user's process) and the mount must refuse them alike
            def target(ctx):
                if ctx is None or ctx.uid == 0:
                    return os.fsencode(os.readlink(real))
                return os.fsencode(_as_caller(ctx.uid, ctx.gid, lambda: os.readlink(real)))

            return Entry("link", st.st_mode, st.st_uid, st.st_gid, target=target,
                         timeout=self.timeout)

        def open_(ctx):
            flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
            if ctx is None or ctx.uid == 0:
                return os.open(real, flags)
            return _as_caller(ctx.uid, ctx.gid, lambda: os.open(real, flags))

        return Entry("file", st.st_mode, st.st_uid, st.st_gid, open=open_, timeout=self.timeout)

    def lookup(self, path: str, ctx) -> Entry | None:
        if path in _PER_READER:  # /proc/self names the reader, not the daemon
            return Entry("link", 0o777, 0, 0, target=_PER_READER[path], timeout=0)
        if self._hidden(path, ctx):
            return None
        real = self._real(path)
        try:
            return self._entry(real, os.lstat(real))
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ESRCH, errno.ENOTDIR):
                return None
            raise

    def listdir(self, path: str, ctx):
        if path and self._hidden(path, ctx):
            return []
        real = self._real(path)
        try:
            names = os.listdir(real)
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            return []  # anything else (EACCES from procfs) is the reader's answer too
        out = []
        for n in sorted(names):
            if not path and n in _PER_READER:
                out.append((n, self.lookup(n, ctx)))
                continue
            if not path and self._hidden(n, ctx):
                continue
            try:
                out.append((n, self._entry(os.path.join(real, n), os.lstat(os.path.join(real, n)))))
            except OSError:
                continue
        return out
