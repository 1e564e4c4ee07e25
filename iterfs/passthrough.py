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
from .syscall import memfd_of

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


# procfs files that judge `current` at read(2), not the opener: ptrace_may_access in
# lock_trace (stack, syscall), do_io_accounting (io), proc_pid_personality, proc_pid_wchan;
# CAP_SYS_NICE in timerslack_ns_show; sysctl_perm in proc_sys_call_handler (sys/...).
# An unprivileged server reading them would be judged instead of the reader: the helper
# reads them as the reader and hands over a memfd with the content.
READ_TIME_CHECKED = frozenset({"io", "personality", "stack", "syscall", "timerslack_ns", "wchan"})
_READ_MAX = 1 << 20


def read_time_checked(path: str) -> bool:
    return path.startswith("sys/") or path.rsplit("/", 1)[-1] in READ_TIME_CHECKED


def _snapshot(fd: int, name: str) -> int:
    """A memfd holding what fd reads to its end (up to _READ_MAX), read by this thread;
    fd itself if the reader's read fails (the server's read then fails too, at read time
    as in /proc)."""
    chunks, size = [], 0
    try:
        while size < _READ_MAX:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
            size += len(b)
    except OSError:
        if not chunks:  # nothing read: fd is still at 0 for the server's own read
            return fd
        os.close(fd)
        raise
    os.close(fd)
    return memfd_of(b"".join(chunks), name)


class LocalProc:
    """The filesystem calls of a Passthrough, made here: attributes as this process (root),
    links and opens with the reader's credentials. The privileged helper runs these for
    an unprivileged server (RemoteProc)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def _real(self, path: str) -> str:
        parts = path.split("/") if path else []
        if any(p in ("", ".", "..") for p in parts):
            raise OSError(errno.EINVAL, f"bad passthrough path {path!r}")
        return os.path.join(self.root, *parts)

    def lstat(self, path: str) -> tuple[int, int, int]:
        st = os.lstat(self._real(path))
        return st.st_mode, st.st_uid, st.st_gid

    def listdir(self, path: str) -> list[tuple[str, int, int, int]]:
        real = self._real(path)
        out = []
        for n in sorted(os.listdir(real)):
            try:
                st = os.lstat(os.path.join(real, n))
            except OSError:
                continue
            out.append((n, st.st_mode, st.st_uid, st.st_gid))
        return out

    def readlink(self, path: str, uid: int, gid: int) -> bytes:
        real = self._real(path)
        if uid == 0:
            return os.fsencode(os.readlink(real))
        return os.fsencode(_as_caller(uid, gid, lambda: os.readlink(real)))

    def open(self, path: str, uid: int, gid: int, *, snapshot: bool = False) -> int:
        """An fd of the file opened as the reader; with snapshot, a memfd of what the
        reader reads from it (see READ_TIME_CHECKED)."""
        real = self._real(path)
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW

        def open_():
            fd = os.open(real, flags)
            return _snapshot(fd, path) if snapshot else fd

        return open_() if uid == 0 else _as_caller(uid, gid, open_)


class RemoteProc:
    """LocalProc's calls, made by the privileged helper (iterfs.privsep)."""

    def __init__(self, helper):
        self.helper = helper

    def lstat(self, path: str) -> tuple[int, int, int]:
        return tuple(self.helper.call("proc_lstat", path=path)[0]["st"])

    def listdir(self, path: str) -> list[tuple[str, int, int, int]]:
        return [tuple(x) for x in self.helper.call("proc_listdir", path=path)[0]["entries"]]

    def readlink(self, path: str, uid: int, gid: int) -> bytes:
        return os.fsencode(self.helper.call("proc_readlink", path=path, uid=uid, gid=gid)[0]["target"])

    def open(self, path: str, uid: int, gid: int, *, snapshot: bool = False) -> int:
        return self.helper.call_fd("proc_open", path=path, uid=uid, gid=gid, snapshot=snapshot)


def helper_handlers(local: LocalProc) -> dict:
    """The helper's side of RemoteProc."""
    return {
        "proc_lstat": lambda req, fds: ({"st": local.lstat(req["path"])}, []),
        "proc_listdir": lambda req, fds: ({"entries": local.listdir(req["path"])}, []),
        "proc_readlink": lambda req, fds: (
            {"target": os.fsdecode(local.readlink(req["path"], int(req["uid"]), int(req["gid"])))}, []),
        "proc_open": lambda req, fds: ({}, [local.open(req["path"], int(req["uid"]), int(req["gid"]),
                                                       snapshot=bool(req.get("snapshot")))]),
    }


class Passthrough:
    """Serve ROOT (normally /proc) for paths nobody else answers."""

    def __init__(self, root: str = "/proc", *, hidepid: str = "off", fsops=None):
        self.root = os.path.abspath(root)
        self.hidepid = hidepid
        self.timeout = 0.0 if hidepid != "off" else 1.0
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"--passthrough {root}: not a directory")
        self.fs = fsops if fsops is not None else LocalProc(self.root)
        # read-time checked files are read as the reader when the server is not root
        self.snapshots = os.geteuid() != 0 or fsops is not None

    def _hidden(self, path: str, ctx) -> bool:
        """hidepid=invisible for the process directories /proc itself shows everyone."""
        head = path.split("/", 1)[0]
        if self.hidepid != "invisible" or not _is_pid(head) or ctx is None or ctx.uid == 0:
            return False
        try:
            return self.fs.lstat(head)[1] != ctx.uid
        except OSError:
            return True

    def _entry(self, path: str, st: tuple[int, int, int]) -> Entry:
        mode, uid, gid = st
        if stat.S_ISDIR(mode):
            if self.hidepid == "noaccess" and "/" not in path and _is_pid(path):
                mode &= ~0o077
            return Entry("dir", mode, uid, gid, timeout=self.timeout)
        fs = self.fs
        if stat.S_ISLNK(mode):
            # read at readlink time, as the reader: procfs refuses some links (cwd, exe,
            # fd/N of another user's process) and the mount must refuse them alike
            def target(ctx):
                return fs.readlink(path, *_creds(ctx))

            return Entry("link", mode, uid, gid, target=target, timeout=self.timeout)

        snapshot = self.snapshots and read_time_checked(path)

        def open_(ctx):
            return fs.open(path, *_creds(ctx), snapshot=snapshot)

        return Entry("file", mode, uid, gid, open=open_, timeout=self.timeout, pass_errors=True)

    def lookup(self, path: str, ctx) -> Entry | None:
        if path in _PER_READER:  # /proc/self names the reader, not the daemon
            return Entry("link", 0o777, 0, 0, target=_PER_READER[path], timeout=0)
        if self._hidden(path, ctx):
            return None
        try:
            return self._entry(path, self.fs.lstat(path))
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ESRCH, errno.ENOTDIR, errno.EINVAL):
                return None
            raise

    def listdir(self, path: str, ctx):
        if path and self._hidden(path, ctx):
            return []
        try:
            listed = self.fs.listdir(path)
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            return []  # anything else (EACCES from procfs) is the reader's answer too
        out = []
        for n, *st in listed:
            if not path and n in _PER_READER:
                out.append((n, self.lookup(n, ctx)))
                continue
            if not path and self._hidden(n, ctx):
                continue
            out.append((n, self._entry(f"{path}/{n}" if path else n, tuple(st))))
        return out


def _is_pid(name: str) -> bool:
    return name.isascii() and name.isdigit()


def _creds(ctx) -> tuple[int, int]:
    return (0, 0) if ctx is None else (ctx.uid, ctx.gid)
