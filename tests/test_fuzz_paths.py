"""Random paths against one real mount: every call answers, with an errno /proc could give.

One daemon (`iterfs mount --passthrough /proc`) serves the whole module, so lookups reach
every provider: the catalog's static tree, the process directories and the passthrough.
Hypothesis draws paths from names that exist there (catalog files, pids and tids, /proc
names), names that do not (pids that never were, leading zeros, signs), arbitrary bytes
(anything but NUL and '/': \\xff, control characters, unicode), names of 255, 256 and
4096 bytes, '.', '..' and long runs of them, trailing slashes, deep nesting.

Safety: the calls run in forked workers chrooted INTO the mount. A FUSE symlink is plain
text, so inside that chroot every path (self/cwd, <pid>/root, fd/N -> /etc/...) resolves
within the mount: no open(O_TRUNC), chmod or rename can reach a real file, however the
path was drawn. The only workers outside the mount are chrooted into /proc, make
read-only calls, open nothing but regular files, and only ever see sysctl paths without
'..' or (to compare an error with procfs's own) the path the mount resolved a path to.
No worker ever opens kmsg (reading it consumes the kernel log, and blocks).

Properties, for root and for nobody (uid 65534):
- every call returns, within CALL_TIMEOUT (a hang fails the test), either a result or
  an OSError whose errno is in ALLOWED below; never EIO, ENOTCONN or ECONNABORTED...
- ...except what procfs itself answers through the passthrough: a read-only call may fail
  with another errno where the same call on the /proc file the mount resolved to fails
  alike (EPERM: nobody opening /proc/mtrr, which wants CAP_SYS_ADMIN); and read(2) of a
  file may fail with EIO where /proc's read(2) of it fails at all (/proc/<pid>/mem at
  offset 0, an unset stable_secret): iterfs passes read failures of any source on as EIO
  (see test_read_error_of_a_passthrough_file_keeps_its_errno);
- a/../b is b whenever a is a directory (and dirname(realpath(a))/b when a is a symlink
  to one): the kernel walks '..' itself, on its own dentries, and iterfs's answers for
  the names it is asked must agree however the walk got there;
- under sys/ (served by the passthrough alone) every read-only call answers like /proc
  read by the same user: same success or errno, same type, mode and owner, same listing;
- afterwards the daemon still serves (statvfs), it and its helper hold as many fds as
  before, and its log shows no traceback.

ALLOWED, from what the kernel and /proc answer for the same calls:
  ENOENT        no such name; a process that is gone (procfs: also for vanished pids)
  ENOTDIR       a file used as a directory: 'net/tcp/x', a trailing slash after a file
  EISDIR        a directory opened for writing, or with O_CREAT / O_TRUNC
  ENAMETOOLONG  a component over NAME_MAX (255) or a path over PATH_MAX: the VFS answers
  EACCES        mode bits (0400 catalog files, 0500 fd/ of another user's process) and
                procfs's own refusals through the passthrough (ptrace checks: exe, cwd)
  EROFS         every change: the mount is 'ro', the VFS refuses before iterfs is asked
  EEXIST        mkdir or O_CREAT|O_EXCL of a name that exists (checked before EROFS)
  EINVAL        readlink of a non-symlink; rmdir of '.'; a directory renamed into itself
  EBUSY         rmdir or rename of the mount's root (e.g. 'net/..')
  ENOTEMPTY     rmdir of a non-empty directory reached through '..'
  ELOOP         more than 40 symlinks in one walk (self/cwd/self/cwd/...)
  ENODATA       getxattr: iterfs has no extended attributes
  ESRCH         procfs (through the passthrough) for a process that exits mid-call
Not allowed for changes, though /proc gives them for the same calls: EPERM (chmod, unlink
of procfs entries) and ENOTSUP (setxattr): on the 'ro' mount the VFS answers EROFS first.
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import select
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import kill_forked
from daemonhelp import Daemon, pin_root_for
from fusehelp import wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.fuse]

NOBODY = 65534
FUZZ = dict(deadline=None, suppress_health_check=list(HealthCheck),
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink))
CALL_TIMEOUT = 20.0  # seconds; generous: CI machines are loaded, a real hang is forever
START_TIMEOUT = 120.0

ALLOWED = frozenset({
    errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EACCES, errno.EROFS,
    errno.EEXIST, errno.EINVAL, errno.EBUSY, errno.ENOTEMPTY, errno.ELOOP, errno.ENODATA,
    errno.ESRCH,
})

XATTR = b"user.iterfs-fuzz"


# -- workers: forked children making filesystem calls on request ---------------------------

READ_ONLY_OPS = frozenset({"lstat", "stat", "read", "listdir", "readlink", "realpath",
                           "getxattr", "listxattr", "access", "statvfs"})


def _st(s: os.stat_result) -> tuple:
    return (s.st_mode, s.st_ino, s.st_nlink, s.st_uid, s.st_gid)


def _do(op: str, args: tuple, readonly: bool):
    """One call in the worker: ("ok", value) | ("err", phase, errno) | ("refused", why)."""
    if readonly and op not in READ_ONLY_OPS:
        return ("refused", f"{op} in a read-only worker")
    if any(isinstance(a, bytes) and b"kmsg" in a for a in args):
        return ("refused", "kmsg is never touched")
    phase = "open" if op == "read" else op
    try:
        if op == "read":
            path, flags = args
            if readonly:  # /proc: never open what is not a regular file (a device, a fifo)
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                try:
                    if not stat.S_ISREG(os.fstat(pfd).st_mode):
                        return ("refused", "not a regular file")
                    path = b"/self/fd/%d" % pfd  # chrooted in /proc: reopen that very file
                    fd = os.open(path, flags | os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
                finally:
                    os.close(pfd)
            else:
                fd = os.open(path, flags | os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
            phase = "read"
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return ("refused", "not a regular file")
                first = os.read(fd, 65536)
                later = os.pread(fd, 4096, 300_000)
            finally:
                os.close(fd)
            return ("ok", (len(first), len(later)))
        if op == "open":
            path, flags = args
            os.close(os.open(path, flags | os.O_NOCTTY | os.O_CLOEXEC, 0o644))
            return ("ok", None)
        fn = {
            "lstat": lambda p: _st(os.lstat(p)),
            "stat": lambda p: _st(os.stat(p)),
            "listdir": lambda p: sorted(os.listdir(p)),
            "readlink": os.readlink,
            "realpath": os.path.realpath,
            "getxattr": lambda p: os.getxattr(p, XATTR),
            "listxattr": lambda p: sorted(os.listxattr(p)),
            "access": os.access,
            "statvfs": lambda p: os.statvfs(p).f_flag,
            "mkdir": lambda p: os.mkdir(p, 0o755),
            "rmdir": os.rmdir,
            "unlink": os.unlink,
            "rename": os.rename,
            "chmod": lambda p: os.chmod(p, 0o600),
            "chown": lambda p: os.chown(p, NOBODY, NOBODY),
            "utime": lambda p: os.utime(p, (1, 1)),
            "truncate": lambda p: os.truncate(p, 0),
            "setxattr": lambda p: os.setxattr(p, XATTR, b"1"),
            "removexattr": lambda p: os.removexattr(p, XATTR),
        }[op]
        return ("ok", fn(*args))
    except OSError as e:
        return ("err", phase, e.errno)
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
        return ("exc", f"{type(e).__name__}: {e}")


def _read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = os.read(fd, n - len(buf))
        if not part:
            break
        buf += part
    return buf


def _serve(req: int, resp: int, readonly: bool) -> None:
    while True:
        hdr = _read_exact(req, 4)
        if len(hdr) < 4:
            return
        op, args = marshal.loads(_read_exact(req, struct.unpack("=I", hdr)[0]))
        out = marshal.dumps(_do(op, args, readonly))
        os.write(resp, struct.pack("=I", len(out)))
        view = memoryview(out)
        while view:
            view = view[os.write(resp, view):]


class Hang(AssertionError):
    pass


class Worker:
    """A forked child chrooted into `root`, running as `uid`, that makes one filesystem
    call per request. Everything it needs is imported before the fork: after chroot
    nothing outside `root` can be loaded."""

    def __init__(self, root: str, uid: int = 0, *, readonly: bool = False):
        self.root, self.uid = root, uid
        self.broken = ""  # after a hang: every later call fails at once (no 20 s each)
        req_r, self._req = os.pipe()
        self._resp, resp_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(self._req)
                os.close(self._resp)
                os.chroot(root)
                os.chdir("/")
                if uid:
                    os.setgroups([])
                    os.setgid(uid)
                    os.setuid(uid)
                _serve(req_r, resp_w, readonly)
                code = 0
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(resp_w)

    def _read(self, n: int, deadline: float, what) -> bytes:
        buf = b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._resp], [], [], left)[0]:
                self.broken = f"no answer in {CALL_TIMEOUT:.0f} s (uid {self.uid}): {what!r}"
                raise Hang(self.broken)
            part = os.read(self._resp, n - len(buf))
            if not part:
                self.broken = f"worker (uid {self.uid}) died during {what!r}"
                raise AssertionError(self.broken)
            buf += part
        return buf

    def call(self, op: str, *args):
        if self.broken:
            raise Hang(f"earlier: {self.broken}")
        payload = marshal.dumps((op, args))
        os.write(self._req, struct.pack("=I", len(payload)) + payload)
        deadline = time.monotonic() + CALL_TIMEOUT
        n = struct.unpack("=I", self._read(4, deadline, (op, args)))[0]
        return marshal.loads(self._read(n, deadline, (op, args)))

    def close(self) -> None:
        kill_forked(self.pid, (self._req, self._resp))


# -- the mount and what lives in it ----------------------------------------------------------


def fd_counts(d: Daemon) -> tuple[int, int]:
    """Open fds of the server and of its privileged helper."""
    helper = d.helper_pid()
    return (len(os.listdir(f"/proc/{d.proc.pid}/fd")),
            len(os.listdir(f"/proc/{helper}/fd")) if helper else -1)


def settled_fd_counts(d: Daemon) -> tuple[int, int]:
    """fd counts once no release is in flight (two equal looks 0.3 s apart)."""
    last = fd_counts(d)
    for _ in range(20):
        time.sleep(0.3)
        now = fd_counts(d)
        if now == last:
            return now
        last = now
    return last


# procfs files that check the reader at read(2) time, not at open: process files whose
# show() asks ptrace_may_access or CAP_SYS_NICE of `current`, and every sysctl
# (proc_sys_call_handler: sysctl_perm of `current`). Through the mount the unprivileged
# FUSE server makes that read(2), so they fail where /proc lets the reader read (root: a
# 0600 sysctl; anyone: its own io, syscall): test_permissions.py pins this bug down,
# test_files_procfs_checks_at_read_time. Their EIO is tolerated here.
class Fuzz:
    def __init__(self):
        self.stack = contextlib.ExitStack()
        self.children: list[subprocess.Popen] = []

    def spawn(self, *cmd: str) -> subprocess.Popen:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.children.append(p)
        return p

    def close(self) -> None:
        self.stack.close()
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait(10)


THREADED = ("import threading, time\n"
            "for _ in range(3):\n"
            "    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
            "time.sleep(600)\n")


@pytest.fixture(scope="module")
def fz(tmp_path_factory):
    f = Fuzz()
    try:
        base = tempfile.mkdtemp(prefix="iterfs-test-", dir="/run")
        f.stack.callback(shutil.rmtree, base, ignore_errors=True)
        os.chmod(base, 0o755)
        f.d = Daemon(os.path.join(base, "mnt"), pin_root_for(tmp_path_factory.mktemp("fuzz")),
                     "--passthrough", "/proc")
        f.stack.callback(f.d.stop)
        f.d.start(timeout=START_TIMEOUT)
        f.mp = f.d.mountpoint
        # workers: in the mount (root, nobody); in /proc, read-only (root, nobody)
        f.root, f.nobody = Worker(f.mp, 0), Worker(f.mp, NOBODY)
        f.proc_root = Worker("/proc", 0, readonly=True)
        f.proc_nobody = Worker("/proc", NOBODY, readonly=True)
        for w in (f.root, f.nobody, f.proc_root, f.proc_nobody):
            f.stack.callback(w.close)  # before the daemon stops: a chroot keeps the mount busy
        f.twin = {0: f.proc_root, NOBODY: f.proc_nobody}
        # processes to find: a threaded one of root's, one of nobody's, one that is gone
        threaded = f.spawn(sys.executable, "-c", THREADED)
        mine = f.spawn("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                       "sleep", "600")
        gone = subprocess.Popen(["true"])
        gone.wait()
        assert wait_for(lambda: len(os.listdir(f"/proc/{threaded.pid}/task")) == 4, 10)
        tids = [int(t) for t in os.listdir(f"/proc/{threaded.pid}/task")]
        live = [1, 2, os.getpid(), f.d.proc.pid, f.d.helper_pid(), threaded.pid, mine.pid,
                f.root.pid, f.nobody.pid]
        f.pids = sorted({str(p).encode() for p in live + tids})
        f.tids = sorted(str(t).encode() for t in tids) + [b"1", str(os.getpid()).encode()]
        f.not_pids = [b"0", str(gone.pid).encode(), b"4194304", b"99999999", b"2147483647",
                      b"4294967295", b"01", b"007", b"+1", b"-1", b" 1", b"1 ", b"1\n",
                      b"0x1", b"1e3", b"1.0", b"1_"]
        f.threaded = str(threaded.pid).encode()
        # names: the mount's own, a process directory's, some of /proc/sys
        names: set[bytes] = set()
        mpb = os.fsencode(f.mp)
        me = str(os.getpid()).encode()
        for d in (b"", b"net", b"bpf", b"sys", b"sys/kernel", b"sys/net", b"sys/vm", me,
                  me + b"/task", me + b"/fd", me + b"/attr", f.threaded + b"/task/" + f.threaded):
            with contextlib.suppress(OSError):
                names.update(os.listdir(mpb + b"/" + d if d else mpb))
        names -= {n for n in names if n.isdigit() or b"kmsg" in n}
        f.names = sorted(names) + [b"self", b"thread-self", b"task", b"fd", b"cwd", b"root",
                                   b"exe", b"stat", b"status", b"maps", b"environ", b"mem"]
        f.sys_names = sorted(sysctl_names())
        found = existing_paths(mpb, [me, f.threaded, str(mine.pid).encode(), b"1",
                                     str(f.d.proc.pid).encode()])
        groups: dict[str, list[bytes]] = {}
        for path in sorted(found):
            groups.setdefault(path_group(path), []).append(path)
        f.existing = [groups[g] for g in sorted(groups)] + [groups["top"]] * 2  # more catalog
        yield f
    finally:
        f.close()


def existing_paths(mpb: bytes, pids: list[bytes]) -> set[bytes]:
    """Paths that exist in the mount (as root sees it), from every provider: the catalog,
    process and thread directories, the passthrough. Listed without following symlinks."""
    out: set[bytes] = set()

    def add(d: bytes, depth: int = 0) -> None:
        try:
            entries = os.listdir(mpb + b"/" + d if d else mpb)
        except OSError:
            return
        for e in entries:
            if b"kmsg" in e or (not d and e.isdigit()):
                continue
            rel = d + b"/" + e if d else e
            out.add(rel)
            if depth and os.path.isdir(mpb + b"/" + rel) and not os.path.islink(mpb + b"/" + rel):
                add(rel, depth - 1)

    add(b"", 1)
    for pid in pids:
        out.add(pid)
        add(pid, 1)
        with contextlib.suppress(OSError):
            for tid in os.listdir(mpb + b"/" + pid + b"/task")[:3]:
                add(pid + b"/task/" + tid, 1)
    for d in (b"sys/kernel", b"sys/vm", b"sys/net/ipv4", b"sys/fs"):
        add(d)
    out |= {b"self/" + p.split(b"/", 1)[1] for p in out if p.startswith(pids[0] + b"/")}
    return out


def path_group(path: bytes) -> str:
    """Which provider (mostly) answers for a path: catalog files, a process's or a thread's
    files, the passthrough's sysctls, other passthrough files."""
    parts = path.split(b"/")
    if len(parts) == 1 or parts[0] in (b"net", b"bpf"):
        return "top"
    if parts[0] == b"self":
        return "self"
    if parts[0].isdigit():
        return "tid" if len(parts) >= 4 and parts[1] == b"task" else f"pid{min(len(parts), 3)}"
    return "sys" if parts[0] == b"sys" else "other"


def sysctl_names() -> set[bytes]:
    out: set[bytes] = set()

    def walk(d: bytes, depth: int) -> None:
        try:
            entries = os.listdir(d)
        except OSError:
            return
        out.update(entries)
        if depth:
            for e in entries[:12]:
                if os.path.isdir(d + b"/" + e) and not os.path.islink(d + b"/" + e):
                    walk(d + b"/" + e, depth - 1)

    walk(b"/proc/sys", 3)
    return out


@pytest.fixture(autouse=True)
def healthy(fz, request):
    """Around each test: the daemon still serves, holds the fds it held, logged no traceback
    (unless the test pins down a known bug that logs one: marked xfail)."""
    before = settled_fd_counts(fz.d)
    log_at = len(fz.d.output())
    yield
    assert fz.d.proc.poll() is None, "the daemon exited:\n" + fz.d.output()[log_at:]
    assert os.statvfs(fz.mp).f_flag & os.ST_RDONLY
    assert wait_for(lambda: fd_counts(fz.d) == before, 15), (fd_counts(fz.d), before)
    log = fz.d.output()[log_at:]
    if request.node.get_closest_marker("xfail") is None:
        assert "Traceback" not in log, log


# -- strategies ----------------------------------------------------------------------------


def _clean(b: bytes) -> bytes:
    return b.replace(b"\0", b"_").replace(b"/", b"_") or b"_"


LONG = [b"x" * 255, b"x" * 256, b"x" * 4096, "\u00e9".encode() * 127, "\u00e9".encode() * 128]
ODD = [b"\xff", b"\xfe\xff", b"\x80", b"\n", b" ", b"\t", b"\\", b"*", b"?", b"~", b"-",
       b"'\"", b"%s%n", b"\xc0\xaf", b"\xed\xa0\x80", "\u202e".encode(), "\U0001f600".encode()]


def components(fz) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(fz.names),
        st.sampled_from([b".", b".."]),
        st.sampled_from(fz.pids + fz.not_pids),
        st.integers(0, 2**32 - 1).map(lambda i: str(i).encode()),
        st.sampled_from(LONG + ODD),
        st.binary(min_size=1, max_size=12).map(_clean),
        st.text(min_size=1, max_size=6).map(lambda s: _clean(s.encode("utf-8", "surrogateescape"))),
    )


def paths(fz) -> st.SearchStrategy[bytes]:
    comp = components(fz)
    generic = st.lists(comp, max_size=7).map(b"/".join)
    task = st.builds(lambda pid, tid, rest: b"/".join([pid, b"task", tid, *rest]),
                     st.sampled_from(fz.pids + [b"self", b"thread-self"]),
                     st.sampled_from(fz.tids + fz.not_pids),
                     st.lists(comp, max_size=3))
    deep = st.lists(st.sampled_from([b"..", b".", b"self", b"thread-self", b"net", b"task", b"cwd",
                                     b"root", b"sys", b"fd", fz.threaded, b"x"]),
                    min_size=20, max_size=400).map(b"/".join)
    real = st.builds(lambda p, more, tail: b"/" + b"/".join([p, *more]) + tail,
                     st.sampled_from(fz.existing).flatmap(st.sampled_from),
                     st.one_of(st.just([]), st.just([]), st.just([]), st.lists(comp, max_size=2)),
                     st.sampled_from([b""] * 6 + [b"/", b"//", b"/.", b"/.."]))
    made = st.builds(lambda lead, p, tail: lead + p + tail,
                     st.sampled_from([b"/", b"/", b"//", b"/./"]), st.one_of(generic, task, deep),
                     st.sampled_from([b"", b"", b"", b"/", b"//", b"/.", b"/.."]))
    return st.one_of(real, made)


# -- checks ----------------------------------------------------------------------------------


def twin(fz, w: Worker, op: str, args: tuple):
    """The same read-only call on /proc, as the same user, for the file the mount resolved
    `args[0]` to (realpath inside the mount: self, thread-self and the like followed)."""
    real = w.call("realpath", args[0])
    assert real[0] == "ok", real
    if op == "read":
        return real[1], fz.twin[w.uid].call("read", real[1], os.O_NONBLOCK)
    return real[1], fz.twin[w.uid].call(op, real[1], *args[1:])


def check(fz, w: Worker, op: str, args: tuple, res) -> None:
    what = f"{op}{args!r} as uid {w.uid}: {res!r}"
    kind = res[0]
    assert kind in ("ok", "err", "refused"), what
    if kind != "err" or res[2] in ALLOWED:
        return
    _, phase, err = res
    if op == "open" and args[1] & (os.O_ACCMODE | os.O_TRUNC) == os.O_RDONLY:
        op, args = "read", (args[0], 0)  # O_RDONLY|O_CREAT of a file that exists: a read
    assert op in READ_ONLY_OPS, f"{errno.errorcode.get(err, err)}: {what}"
    # procfs's own answer, passed on: allowed where /proc gives the same. A failed read(2)
    # (not open) is EIO whatever /proc said (see the xfail test at the end).
    real, theirs = twin(fz, w, op, args)
    if err == errno.EIO and phase == "read":
        assert theirs[:2] == ("err", "read"), f"{what}; /proc{real!r}: {theirs!r}"
    else:
        assert theirs == res, f"{errno.errorcode.get(err, err)}: {what}; /proc{real!r}: {theirs!r}"


WRITE_FLAGS = [os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
               os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
               os.O_RDONLY | os.O_CREAT, os.O_WRONLY | os.O_APPEND]


@settings(max_examples=300, **FUZZ)
@given(data=st.data())
def test_random_paths_answer_with_allowed_errnos(fz, data):
    path = data.draw(paths(fz), label="path")
    other = data.draw(paths(fz), label="other")
    flags = data.draw(st.sampled_from(WRITE_FLAGS), label="flags")
    calls = [("lstat", (path,)), ("stat", (path,)), ("read", (path, 0)), ("listdir", (path,)),
             ("readlink", (path,)), ("getxattr", (path,)), ("open", (path, flags)),
             ("mkdir", (path,)), ("rmdir", (path,)), ("unlink", (path,)), ("rename", (path, other)),
             ("chmod", (path,)), ("setxattr", (path,)), ("truncate", (path,))]
    for w in (fz.root, fz.nobody):
        for op, args in calls:
            check(fz, w, op, args, w.call(op, *args))


def pick_dir(fz, here: bytes, picks) -> bytes | None:
    """A name in directory `here` that stat() (following symlinks) says is a directory,
    chosen by the next numbers of `picks` (three tries)."""
    res = fz.root.call("listdir", here)
    names = res[1] if res[0] == "ok" else []
    for _ in range(3):
        k = next(picks)
        if names:
            n = names[k % len(names)]
            s = fz.root.call("stat", here + n)
            if s[0] == "ok" and stat.S_ISDIR(s[1][0]):
                return n
    return None


def same_answer(w: Worker, a: bytes, b: bytes) -> tuple[bool, tuple, tuple]:
    """stat(a) and stat(b): both the same error, or both the same inode (mode, ino, nlink,
    owner). A process directory may change in between: three tries."""
    for _ in range(3):
        ra, rb = w.call("stat", a), w.call("stat", b)
        if ra == rb:
            return True, ra, rb
        time.sleep(0.05)
    return False, ra, rb


@settings(max_examples=120, **FUZZ)
@given(data=st.data())
def test_dotdot_is_the_parent_the_kernel_walked_through(fz, data):
    # Every draw is made up front, the same way each time: what exists in the mount
    # changes from run to run, and Hypothesis wants the same draws for the same example.
    depth = data.draw(st.integers(0, 3), label="depth")
    picks = iter(data.draw(st.lists(st.integers(0, 2**16), min_size=12, max_size=12),
                           label="picks"))
    tail_kind = data.draw(st.integers(0, 3), label="tail kind")
    tail_comps = data.draw(st.lists(components(fz), min_size=2, max_size=3), label="tail")
    p = b"/"  # a directory reached by up to three steps down from the mount's root
    for _ in range(depth):
        n = pick_dir(fz, p, picks)
        if n is None:
            break
        p = p + n + b"/"
    a = pick_dir(fz, p, picks)  # a directory here, or a symlink here that leads to one
    if a is None:
        return
    listing = fz.root.call("listdir", p)
    names = listing[1] if listing[0] == "ok" and listing[1] else [b"x"]
    tail = [b"", names[next(picks) % len(names)], tail_comps[0], b"/".join(tail_comps)][tail_kind]
    for w in (fz.root, fz.nobody):
        real = w.call("realpath", p + a)
        if real[0] != "ok":
            continue
        walked = p + a + b"/../" + tail
        if w.call("access", p + a, os.X_OK) == ("ok", False):  # '..' needs search permission
            assert w.call("stat", walked)[:3:2] == ("err", errno.EACCES), (w.uid, walked)
            continue
        parent = os.path.dirname(real[1].rstrip(b"/")) or b"/"
        expect = parent.rstrip(b"/") + b"/" + tail
        ok, ra, rb = same_answer(w, walked, expect)
        assert ok, f"uid {w.uid}: stat({walked!r}) = {ra!r}, stat({expect!r}) = {rb!r}"
        for r in (ra, rb):
            check(fz, w, "stat", (expect,), r)


def sysctl_paths(fz) -> st.SearchStrategy[bytes]:
    comp = st.one_of(st.sampled_from(fz.sys_names), st.sampled_from(fz.sys_names),
                     st.just(b"."), st.sampled_from(LONG + ODD),
                     st.binary(min_size=1, max_size=8).map(_clean))
    comp = comp.filter(lambda c: c != b"..")
    return st.builds(lambda parts, tail: b"/sys/" + b"/".join(parts) + tail,
                     st.lists(comp, min_size=0, max_size=5),
                     st.sampled_from([b"", b"", b"/", b"/."]))


def same_as_proc(op: str, ours, theirs) -> bool:
    if op == "read":  # content changes (random/uuid, inode-nr): only whether and where it fails
        if ours[0] == theirs[0] == "ok":
            return True
        if ours[0] == theirs[0] == "err" and ours[1] == theirs[1] == "read":
            return ours[2] == errno.EIO  # iterfs answers a failed read with EIO (see above)
        return ours == theirs
    if op in ("lstat", "stat") and ours[0] == theirs[0] == "ok":
        (m1, _, _, u1, g1), (m2, _, _, u2, g2) = ours[1], theirs[1]
        return (m1, u1, g1) == (m2, u2, g2)
    return ours == theirs


@settings(max_examples=150, **FUZZ)
@given(data=st.data())
def test_sysctl_paths_answer_like_proc(fz, data):
    path = data.draw(sysctl_paths(fz), label="path")
    for ours_w, theirs_w in ((fz.root, fz.proc_root), (fz.nobody, fz.proc_nobody)):
        for op in ("lstat", "stat", "read", "listdir", "readlink", "access"):
            args = (path, os.R_OK) if op == "access" else (path, 0) if op == "read" else (path,)
            for _ in range(3):  # a sysctl directory may change (a netdev comes or goes)
                ours, theirs = ours_w.call(op, *args), theirs_w.call(op, *args)
                if same_as_proc(op, ours, theirs):
                    break
                time.sleep(0.05)
            if op == "access" and (ours, theirs) == (("ok", True), ("ok", False)) \
                    and ours_w.uid == 0 and not theirs_w.call("lstat", path)[1][0] & 0o444:
                # root and a write-only sysctl (vm/drop_caches, 0200): procfs's own
                # permission() refuses root the read bit, the mount's default_permissions
                # grants it (CAP_DAC_OVERRIDE). Reading fails alike (EACCES at open).
                continue
            assert same_as_proc(op, ours, theirs), \
                f"{op}{args!r} as uid {ours_w.uid}: mount {ours!r}, /proc {theirs!r}"
            check(fz, ours_w, op, args, ours)


# -- what the fuzzing found, pinned down --------------------------------------------------


def stat_errno(w: Worker, path: bytes):
    res = w.call("stat", path)
    return "ok" if res[0] == "ok" else errno.errorcode.get(res[2], res[2])


def test_non_ascii_digits_are_not_process_directories(fz):
    for name in ("\u0662", "\u0663\u0663", "\u0661\u0662"):
        assert stat_errno(fz.root, b"/" + name.encode()) == "ENOENT", name


def _log_tracebacks_since(fz, at: int) -> int:
    return fz.d.output()[at:].count("Traceback")


def test_superscript_digits_are_enoent(fz):
    at = len(fz.d.output())
    got = {name: stat_errno(fz.root, b"/" + name.encode()) for name in ("\u00b2", "1\u00b2")}
    assert got == {"\u00b2": "ENOENT", "1\u00b2": "ENOENT"} and not _log_tracebacks_since(fz, at)


def test_huge_pids_are_enoent(fz):
    at = len(fz.d.output())
    names = [str(2**32), str(2**64), "9" * 40]
    got = {n: stat_errno(fz.root, b"/" + n.encode()) for n in names}
    assert got == {n: "ENOENT" for n in names} and not _log_tracebacks_since(fz, at)


def test_read_error_of_a_passthrough_file_keeps_its_errno(fz):
    for name in (b"clear_refs", b"attr/exec"):
        ours = fz.root.call("read", b"/self/" + name, 0)
        real = fz.root.call("realpath", b"/self/" + name)
        theirs = fz.proc_root.call("read", real[1], os.O_NONBLOCK)
        assert theirs[:2] == ("err", "read"), theirs  # procfs refuses the read, not the open
        assert ours == theirs, name
