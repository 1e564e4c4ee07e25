"""Who may do what on a real mount, as root and as nobody (uid 65534), against /proc.

What test_fs.py (root, a thread-served test tree) and test_hidepid.py (hidepid, kallsyms'
first lines, one stat line) already cover is not repeated. Here, on one daemon started as
`iterfs mount --passthrough /proc --mode kallsyms=0444`:

- every change is refused, for root and for nobody alike, on every kind of inode the
  daemon serves (catalog files, per-process and per-thread files, passthrough files and
  directories, the dynamic directories, the root): the mount is `ro`, so the VFS answers
  EROFS before permission bits are looked at (no EACCES/EPERM for nobody, who only gets
  EACCES where it may not even search the directory), EEXIST where the name exists
  (mkdir, O_CREAT|O_EXCL), EISDIR for a directory opened for writing or truncated;
  access(W_OK) is false for everyone, and there are no xattrs (ENODATA, or EACCES where
  the file is not readable);
- the catalog's modes are what `iterfs ls` says (with --mode applied), files are root's,
  and nobody gets EACCES exactly where the mode says so; per-process files refuse nobody
  exactly where /proc refuses (ptrace checks);
- kernel addresses: kallsyms and the %pK column of net/tcp{,6}, net/unix, net/netlink show
  each reader what /proc shows that reader, under each kptr_restrict (and
  perf_event_paranoid for kallsyms);
- nothing one reader was served leaks to the next: root and nobody interleaved, each gets
  what /proc gives them, for addresses, restricted stat fields, ptrace-only files and
  links;
- passthrough files procfs checks at read(2) (io, stack, wchan, 0600 sysctls, ...) answer
  as they answer the reader, not the unprivileged server;
- a process that is not dumpable: its files and fd/ are root's, as task_dump_owner() makes
  them in /proc;
- %pK with kptr_restrict 1: readers with CAP_SYSLOG get the real pointers (a session the
  root helper read), others zeros.

Workers: forked children (nobody cannot run the venv's interpreter, under /root) that make
one call per request. A worker refuses any change outside the mount or through a symlink.

The kptr_restrict / perf_event_paranoid tests change those sysctls for about a second
each and always restore them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import marshal
import os
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import kill_forked
from daemonhelp import Daemon, pin_root_for
from fusehelp import wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.fuse]

NOBODY = 65534
CALL_TIMEOUT = 60.0
KPTR = "/proc/sys/kernel/kptr_restrict"
PARANOID = "/proc/sys/kernel/perf_event_paranoid"


# -- workers ------------------------------------------------------------------------------

CHANGES = frozenset({"open", "truncate", "chmod", "chown", "utime", "mkdir", "rmdir", "unlink",
                     "rename", "symlink", "link", "mknod", "setxattr", "removexattr"})


def _inside(path: bytes, mount: bytes) -> bool:
    """path is in the mount and no component below the mount is a symlink (checked as far
    as the path exists): a change can only reach the mount's own inodes."""
    if not (path == mount or path.startswith(mount + b"/")):
        return False
    walked = mount
    for part in path[len(mount):].split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            return False
        walked += b"/" + part
        try:
            if stat.S_ISLNK(os.lstat(walked).st_mode):
                return False
        except OSError:
            break  # a name that does not exist: the call creates it, or fails
    return True


def _do(op: str, args: tuple, mount: bytes):
    """("ok", value) | ("err", errno) | ("refused", why)."""
    paths = args[:1] if op in ("setxattr", "removexattr") else args
    if op in CHANGES and not all(_inside(a, mount) for a in paths if isinstance(a, bytes)):
        return ("refused", f"{op}{args!r} outside the mount or through a symlink")
    try:
        if op == "read":
            path, limit = args
            fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
            try:
                out = bytearray()
                while len(out) < limit and (chunk := os.read(fd, 1 << 20)):
                    out += chunk
            finally:
                os.close(fd)
            return ("ok", bytes(out[:limit]))
        if op == "open":
            path, flags = args
            os.close(os.open(path, flags | os.O_NOCTTY | os.O_CLOEXEC, 0o644))
            return ("ok", None)
        fn = {
            "stat": lambda p: tuple(os.stat(p))[:6],
            "listdir": lambda p: sorted(os.listdir(p)),
            "readlink": os.readlink,
            "access": os.access,
            "getxattr": lambda p, n: os.getxattr(p, n),
            "listxattr": lambda p: sorted(os.listxattr(p)),
            "truncate": lambda p: os.truncate(p, 0),
            "chmod": lambda p: os.chmod(p, 0o666),
            "chown": lambda p: os.chown(p, NOBODY, NOBODY),
            "utime": lambda p, times: os.utime(p, times),
            "mkdir": lambda p: os.mkdir(p, 0o755),
            "rmdir": os.rmdir,
            "unlink": os.unlink,
            "rename": os.rename,
            "symlink": lambda p: os.symlink(b"target", p),
            "link": os.link,
            "mknod": lambda p: os.mknod(p, 0o600 | stat.S_IFIFO),
            "setxattr": lambda p, n: os.setxattr(p, n, b"1"),
            "removexattr": lambda p, n: os.removexattr(p, n),
        }[op]
        return ("ok", fn(*args))
    except OSError as e:
        return ("err", e.errno)


def _read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n and (part := os.read(fd, n - len(buf))):
        buf += part
    return buf


class User:
    """A forked child running as `uid` (no supplementary groups, no capabilities unless
    root) that makes one call per request."""

    def __init__(self, uid: int, mount: str, setup=None):
        self.uid = uid
        req_r, self._req = os.pipe()
        self._resp, resp_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                os.close(self._req)
                os.close(self._resp)
                if uid:
                    os.setgroups([])
                    os.setgid(uid)
                    os.setuid(uid)
                if setup is not None:
                    setup()
                mountb = os.fsencode(mount)
                while len(hdr := _read_exact(req_r, 4)) == 4:
                    op, args = marshal.loads(_read_exact(req_r, struct.unpack("=I", hdr)[0]))
                    out = marshal.dumps(_do(op, args, mountb))
                    os.write(resp_w, struct.pack("=I", len(out)))
                    view = memoryview(out)
                    while view:
                        view = view[os.write(resp_w, view):]
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(resp_w)

    def _read(self, n: int, deadline: float) -> bytes:
        buf = b""
        while len(buf) < n:
            if not select.select([self._resp], [], [], max(0, deadline - time.monotonic()))[0]:
                raise AssertionError(f"uid {self.uid}: no answer in {CALL_TIMEOUT} s")
            part = os.read(self._resp, n - len(buf))
            assert part, f"uid {self.uid}: the worker died"
            buf += part
        return buf

    def call(self, op: str, *args):
        args = tuple(os.fsencode(a) if isinstance(a, str) else a for a in args)
        payload = marshal.dumps((op, args))
        os.write(self._req, struct.pack("=I", len(payload)) + payload)
        deadline = time.monotonic() + CALL_TIMEOUT
        return marshal.loads(self._read(struct.unpack("=I", self._read(4, deadline))[0], deadline))

    def errno(self, op: str, *args) -> str:
        """The call's outcome as "ok" or an errno name."""
        res = self.call(op, *args)
        assert res[0] != "refused", res
        return "ok" if res[0] == "ok" else errno.errorcode.get(res[1], str(res[1]))

    def read(self, path: str, limit: int = 1 << 30) -> bytes | str:
        """The file's bytes, or the errno name of the failure."""
        res = self.call("read", path, limit)
        return res[1] if res[0] == "ok" else errno.errorcode.get(res[1], str(res[1]))

    def close(self) -> None:
        kill_forked(self.pid, (self._req, self._resp))


def _not_dumpable() -> None:
    PR_SET_DUMPABLE = 4
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0)")


# -- the mount -----------------------------------------------------------------------------

THREADED = ("import threading, time\n"
            "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
            "time.sleep(600)\n")


class Served:
    pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = Served()
    with contextlib.ExitStack() as stack:
        base = tempfile.mkdtemp(prefix="iterfs-test-", dir="/run")
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        os.chmod(base, 0o755)
        s.d = Daemon(os.path.join(base, "mnt"), pin_root_for(tmp_path_factory.mktemp("perm")),
                     "--passthrough", "/proc", "--mode", "kallsyms=0444")
        stack.callback(s.d.stop)
        s.d.start(timeout=120)
        s.mp = s.d.mountpoint
        s.root, s.nobody = User(0, s.mp), User(NOBODY, s.mp)
        stack.callback(s.root.close)
        stack.callback(s.nobody.close)
        s.users = {"root": s.root, "nobody": s.nobody}
        # root's process with two threads; nobody's own; nobody's own, not dumpable
        rootp = subprocess.Popen([sys.executable, "-c", THREADED], stdin=subprocess.DEVNULL)
        stack.callback(lambda: (rootp.kill(), rootp.wait()))
        mine = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                 "--clear-groups", "sleep", "600"])
        stack.callback(lambda: (mine.kill(), mine.wait()))
        sealed = User(NOBODY, s.mp, setup=_not_dumpable)
        stack.callback(sealed.close)
        assert wait_for(lambda: len(os.listdir(f"/proc/{rootp.pid}/task")) == 2, 10)
        s.rootpid, s.minepid, s.sealedpid = rootp.pid, mine.pid, sealed.pid
        s.roottid = max(int(t) for t in os.listdir(f"/proc/{rootp.pid}/task"))
        time.sleep(0.2)  # the sleeps have started
        yield s
        assert s.d.proc.poll() is None, s.d.output()
        assert "Traceback" not in s.d.output(), s.d.output()


def m(s, rel: str) -> str:
    return os.path.join(s.mp, rel) if rel else s.mp


# -- changes ------------------------------------------------------------------------------

FILES = ["kallsyms", "bpf/maps", "net/tcp", "tasks", "{root}/stat", "{root}/task/{tid}/stat",
         "{mine}/maps", "uptime", "sys/kernel/ostype", "{root}/environ", "{root}/task/{tid}/comm"]
DIRS = ["net", "bpf", "{root}", "{root}/task", "{root}/task/{tid}", "{root}/fd", "sys",
        "sys/kernel", "{root}/attr"]


def expand(s, rel: str) -> str:
    return rel.format(root=s.rootpid, tid=s.roottid, mine=s.minepid)


def change_table(path: str, is_dir: bool, beside: str) -> dict[str, tuple[tuple, str]]:
    """Every change, and what a `ro` FUSE mount answers to root and nobody alike (the VFS
    checks the superblock's read-only flag before any permission bit):
    - writes, truncation, attribute and xattr changes, creation, removal, renames: EROFS;
    - mkdir and O_CREAT|O_EXCL of a name that exists: EEXIST (the name is looked up first);
    - a directory opened for writing, with O_TRUNC, or truncate(2)d: EISDIR (may_open and
      vfs_truncate check the type before the read-only flag)."""
    wr_file = "EISDIR" if is_dir else "EROFS"
    excl = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    return {
        "open O_WRONLY": (("open", path, os.O_WRONLY), wr_file),
        "open O_RDWR": (("open", path, os.O_RDWR), wr_file),
        "open O_APPEND": (("open", path, os.O_WRONLY | os.O_APPEND), wr_file),
        "open O_RDONLY|O_TRUNC": (("open", path, os.O_RDONLY | os.O_TRUNC), wr_file),
        "open O_CREAT|O_TRUNC": (("open", path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), wr_file),
        "open O_CREAT|O_EXCL existing": (("open", path, excl), "EEXIST"),
        "open O_CREAT|O_EXCL new": (("open", beside, excl), "EROFS"),
        "truncate": (("truncate", path), wr_file),
        "chmod": (("chmod", path), "EROFS"),
        "chown": (("chown", path), "EROFS"),
        "utime": (("utime", path, (1, 1)), "EROFS"),
        "utime now": (("utime", path, None), "EROFS"),
        "mkdir existing": (("mkdir", path), "EEXIST"),
        "mkdir new": (("mkdir", beside), "EROFS"),
        "rmdir": (("rmdir", path), "EROFS"),
        "unlink": (("unlink", path), "EROFS"),
        "rename": (("rename", path, beside), "EROFS"),
        "symlink": (("symlink", beside), "EROFS"),
        "link": (("link", path, beside), "EROFS"),
        "mknod fifo": (("mknod", beside), "EROFS"),
        "setxattr user": (("setxattr", path, b"user.iterfs"), "EROFS"),
        "setxattr trusted": (("setxattr", path, b"trusted.iterfs"), "EROFS"),
        "removexattr": (("removexattr", path, b"user.iterfs"), "EROFS"),
    }


@pytest.mark.parametrize("user", ["root", "nobody"])
@pytest.mark.parametrize("kind", ["file", "dir"])
def test_every_change_is_refused(served, user, kind):
    s, u = served, served.users[user]
    wrong = []
    for rel in FILES if kind == "file" else DIRS:
        path = m(s, expand(s, rel))
        st = os.lstat(path)
        assert (stat.S_ISDIR if kind == "dir" else stat.S_ISREG)(st.st_mode), path
        parent = os.path.dirname(path)
        beside = os.path.join(parent, "iterfs-new")
        for what, (call, want) in change_table(path, kind == "dir", beside).items():
            got = u.errno(*call)
            if got != want:
                wrong.append(f"{rel} {what}: {got}, want {want}")
        # inside a directory: creation refused; nobody cannot even search fd/ (0500, root's)
        if kind == "dir":
            searchable = user == "root" or os.stat(path).st_mode & 0o001
            want = "EROFS" if searchable else "EACCES"
            for what, call in {"create": ("open", f"{path}/n", os.O_WRONLY | os.O_CREAT),
                               "mkdir": ("mkdir", f"{path}/n"),
                               "symlink": ("symlink", f"{path}/n")}.items():
                if (got := u.errno(*call)) != want:
                    wrong.append(f"{rel} {what} inside: {got}, want {want}")
        assert os.lstat(path).st_mode == st.st_mode  # unchanged, of course
    assert not wrong, "\n".join(wrong)


def test_the_mount_root_itself(served):
    """The root inode (its name belongs to the parent file system, so only calls on the
    inode itself): EROFS, EISDIR for opening it for writing."""
    s = served
    for u in (s.root, s.nobody):
        got = {what: u.errno(*call) for what, call in {
            "chmod": ("chmod", s.mp), "chown": ("chown", s.mp), "utime": ("utime", s.mp, None),
            "setxattr": ("setxattr", s.mp, b"user.iterfs"),
            "open O_WRONLY": ("open", s.mp, os.O_WRONLY),
            "mkdir inside": ("mkdir", s.mp + "/n")}.items()}
        assert got == {"chmod": "EROFS", "chown": "EROFS", "utime": "EROFS", "setxattr": "EROFS",
                       "open O_WRONLY": "EISDIR", "mkdir inside": "EROFS"}, u.uid


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_no_write_access_and_no_xattrs(served, user):
    s, u = served, served.users[user]
    for rel in FILES + DIRS:
        path = m(s, expand(s, rel))
        assert u.call("access", path, os.W_OK) == ("ok", False), rel
        readable = u.call("access", path, os.R_OK)[1]
        want = "ENODATA" if readable else "EACCES"  # user.* xattrs need read permission
        assert u.errno("getxattr", path, b"user.iterfs") == want, rel
        assert u.call("listxattr", path) == ("ok", []), rel


# -- modes ----------------------------------------------------------------------------------


def loaded_specs(vmlinux):
    from iterfs import catalog
    return [e.spec for e in catalog.check(catalog.discover(), vmlinux) if e.ok]


def test_catalog_modes_and_owners(served, vmlinux):
    """Static files: the spec's mode (with --mode kallsyms=0444), root's; root reads every
    one, nobody exactly those with the read bit for others (bpf/*: 0400, EACCES)."""
    s = served
    modes = {}
    for spec in loaded_specs(vmlinux):
        if spec.per:
            continue
        want = 0o444 if spec.key == "kallsyms" else spec.mode  # --mode kallsyms=0444
        st = os.stat(m(s, spec.path))
        modes[spec.path] = stat.S_IMODE(st.st_mode)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (want, 0, 0), spec.path
        assert isinstance(s.root.read(m(s, spec.path), 4096), bytes), spec.path
        got = s.nobody.read(m(s, spec.path), 4096)
        assert isinstance(got, bytes) if want & 0o004 else got == "EACCES", (spec.path, got)
    assert modes["bpf/maps"] == 0o400 and modes["kallsyms"] == 0o444


def test_process_files_refuse_nobody_where_proc_does(served, vmlinux):
    """Per-process and per-thread files: the spec's mode and the process's owner; nobody
    opens what /proc lets nobody open, of root's process and of its own."""
    s = served
    wrong = []
    for spec in loaded_specs(vmlinux):
        if not spec.per:
            continue
        for pid, owner in ((s.rootpid, 0), (s.minepid, NOBODY)):
            tid = s.roottid if pid == s.rootpid else pid
            rel = f"{pid}/{spec.path}" if spec.per == "pid" else f"{pid}/task/{tid}/{spec.path}"
            st = os.stat(m(s, rel))
            want_mode = 0o500 if spec.links else spec.mode
            if (stat.S_IMODE(st.st_mode), st.st_uid) != (want_mode, owner):
                wrong.append(f"{rel}: mode {stat.S_IMODE(st.st_mode):o} uid {st.st_uid}")
            op = "listdir" if spec.links else "read"
            ours = s.nobody.errno(op, m(s, rel), *(() if spec.links else (4096,)))
            theirs = s.nobody.errno(op, f"/proc/{rel}", *(() if spec.links else (4096,)))
            if ours != theirs:
                wrong.append(f"{rel} as nobody: {ours}, /proc: {theirs}")
    assert not wrong, "\n".join(wrong)


def stat_fields(line: bytes | str) -> list[str] | str:
    if isinstance(line, str):
        return line  # an errno name
    return line.decode().rsplit(")", 1)[1].split()


# fields of /proc/<pid>/stat (0-based after the comm) that procfs zeroes (or sets to 1) for
# a reader that may not ptrace the process; all constant for a sleeping process
HIDDEN = {"startcode": 23, "endcode": 24, "startstack": 25, "kstkesp": 26, "kstkeip": 27,
          "wchan": 32, "start_data": 42, "end_data": 43, "start_brk": 44, "arg_start": 45,
          "arg_end": 46, "env_start": 47, "env_end": 48, "exit_code": 49}


def hidden_fields(data) -> dict | str:
    f = stat_fields(data)
    return f if isinstance(f, str) else {k: f[i] for k, i in HIDDEN.items()}


def test_a_process_that_is_not_dumpable_hides_its_addresses_and_maps(served):
    """ptrace_may_access refuses a process that is not dumpable (prctl PR_SET_DUMPABLE 0,
    or after a uid change) to its own user: /proc's hidden stat fields and maps; so must
    the mount."""
    s = served
    pid = s.sealedpid
    ours = {"stat": hidden_fields(s.nobody.read(m(s, f"{pid}/stat"))),
            "maps": s.nobody.errno("read", m(s, f"{pid}/maps"), 4096)}
    theirs = {"stat": hidden_fields(s.nobody.read(f"/proc/{pid}/stat")),
              "maps": s.nobody.errno("read", f"/proc/{pid}/maps", 4096)}
    assert theirs["maps"] == "EACCES" and theirs["stat"]["startcode"] == "1"
    assert ours == theirs


def test_a_process_that_is_not_dumpable_is_roots_in_proc(served):
    s = served
    pid = s.sealedpid
    # procfs: the directory (0555) stays nobody's, its files and fd/ are root's
    assert (os.stat(f"/proc/{pid}").st_uid, os.stat(f"/proc/{pid}/stat").st_uid) == (NOBODY, 0)
    ours = {"owners": tuple(os.stat(m(s, f"{pid}/{n}")).st_uid for n in ("", "stat", "fd")),
            "fd": s.nobody.errno("listdir", m(s, f"{pid}/fd"))}
    theirs = {"owners": tuple(os.stat(f"/proc/{pid}/{n}").st_uid for n in ("", "stat", "fd")),
              "fd": s.nobody.errno("listdir", f"/proc/{pid}/fd")}
    assert theirs["fd"] == "EACCES"
    assert ours == theirs




def read_or_fail(u: User, path: str) -> bytes | str:
    got = u.read(path)
    return got if isinstance(got, bytes) else "fails"  # iterfs: EIO for any failed read


def test_files_procfs_checks_at_read_time(served):
    s = served
    wrong = []
    for user, pid in (("root", s.rootpid), ("nobody", s.minepid)):
        u = s.users[user]
        for name in ("io", "personality", "stack", "syscall", "timerslack_ns", "wchan"):
            for _ in range(3):  # the content of a sleeping process's files does not change
                ours = read_or_fail(u, m(s, f"{pid}/{name}"))
                theirs = read_or_fail(u, f"/proc/{pid}/{name}")
                if ours == theirs:
                    break
            else:
                wrong.append(f"{user}: {pid}/{name}: {ours!r}, /proc: {theirs!r}")
    # sysctls: proc_sys_call_handler checks sysctl_perm() of `current` at each read(2)
    for name in ("kernel/cad_pid", "net/core/bpf_jit_harden"):
        ours = read_or_fail(s.root, m(s, f"sys/{name}"))
        theirs = read_or_fail(s.root, f"/proc/sys/{name}")
        if ours != theirs:
            wrong.append(f"root: sys/{name}: {ours!r}, /proc: {theirs!r}")
    assert not wrong, "\n".join(wrong)


def test_wchan_of_the_servers_user_is_hidden_from_nobody(served):
    """A process of the user the server runs as: /proc shows nobody its wchan as 0 (no
    ptrace right), the server may read it and so the mount shows nobody the symbol."""
    from iterfs import privsep
    _, uid, gid = privsep.resolve_user(None)
    assert uid not in (0, NOBODY)
    other = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                              "sleep", "600"])
    try:
        time.sleep(0.3)
        theirs = read_or_fail(served.nobody, f"/proc/{other.pid}/wchan")
        ours = read_or_fail(served.nobody, m(served, f"{other.pid}/wchan"))
        assert theirs == b"0" and ours == theirs
    finally:
        other.kill()
        other.wait()


# -- kernel addresses ----------------------------------------------------------------------


@contextlib.contextmanager
def sysctls(kptr_restrict: int, paranoid: int | None = None):
    """Set kptr_restrict (and perf_event_paranoid) for the body; always restore them."""
    saved = {p: open(p).read() for p in (KPTR, PARANOID)}
    try:
        with open(KPTR, "w") as f:
            f.write(str(kptr_restrict))
        if paranoid is not None:
            with open(PARANOID, "w") as f:
                f.write(str(paranoid))
        yield
    finally:
        for p, v in saved.items():
            with open(p, "w") as f:
                f.write(v)


def kallsyms_lines(data, n: int | None = None) -> list[str] | str:
    """kallsyms without the lines that come and go (BPF programs other tests load)."""
    if isinstance(data, str):
        return data
    lines = [ln for ln in data.decode().splitlines() if "[bpf]" not in ln]
    return lines[:n] if n else lines


HEAD = 1 << 20  # the first MiB: core symbols, enough to see whether addresses are shown


@pytest.mark.parametrize("kptr,paranoid,user", [
    (0, 2, "root"), (0, 2, "nobody"), (1, 2, "root"), (1, 2, "nobody"),
    (2, 2, "root"), (2, 2, "nobody"), (0, 1, "root"), (0, 1, "nobody"),
])
def test_kallsyms_addresses_follow_kptr_restrict(served, kptr, paranoid, user):
    s, u = served, served.users[user]
    with sysctls(kptr, paranoid):
        ours = kallsyms_lines(u.read(m(s, "kallsyms"), HEAD))
        theirs = kallsyms_lines(u.read("/proc/kallsyms", HEAD))
    n = min(len(ours), len(theirs)) - 1  # the last line may be cut at HEAD
    assert n > 1000
    assert ours[:n] == theirs[:n]


# net files: column of the %pK pointer and of the inode, after str.split()
NET = {"net/tcp": (11, 9), "net/tcp6": (11, 9), "net/unix": (0, 6), "net/netlink": (0, 9)}


def net_table(name: str, data) -> dict[str, tuple[str, str]] | str:
    """inode -> (pointer, whole line) for the sockets of a /proc/net file."""
    if isinstance(data, str):
        return data
    ptr_col, ino_col = NET[name]
    out = {}
    for ln in data.decode().splitlines()[1:]:
        f = ln.split()
        if len(f) > max(ptr_col, ino_col) and f[ino_col] != "0":
            out[f[ino_col]] = (f[ptr_col].rstrip(":"), ln)
    return out


@pytest.fixture(scope="module")
def sockets():
    """Idle sockets of each kind, so every file has lines whose bytes cannot change."""
    socks = []
    try:
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        cli = socket.create_connection(lst.getsockname())
        srv, _ = lst.accept()
        lst6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        lst6.bind(("::1", 0))
        lst6.listen()
        pair = socket.socketpair()
        ux = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ux.bind(f"\0iterfs-perm-{os.getpid()}")
        ux.listen()
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        nl.bind((0, 0))
        socks = [lst, cli, srv, lst6, *pair, ux, nl]
        time.sleep(0.3)  # past the handshake's timers
        yield {"net/tcp": [lst, cli, srv], "net/tcp6": [lst6], "net/unix": [*pair, ux],
               "net/netlink": [nl]}
    finally:
        for sk in socks:
            sk.close()


@pytest.mark.parametrize("kptr,user", [
    (0, "root"), (0, "nobody"),
    (1, "root"),
    (1, "nobody"), (2, "root"), (2, "nobody"),
])
def test_net_pointers_follow_kptr_restrict(served, sockets, kptr, user):
    """Each reader sees /proc's %pK column: hashed (kptr_restrict 0), raw for CAP_SYSLOG or
    zeros (1), zeros (2); and the lines of the test's own idle sockets byte for byte."""
    s, u = served, served.users[user]
    wrong = []
    with sysctls(kptr):
        for name, socks in sockets.items():
            for _ in range(3):  # sockets of other processes come and go between two reads
                ours = net_table(name, u.read(m(s, name)))
                theirs = net_table(name, u.read(f"/proc/{name}"))
                assert isinstance(ours, dict) and isinstance(theirs, dict), (name, ours, theirs)
                common = ours.keys() & theirs.keys()
                bad = [i for i in common if ours[i][0] != theirs[i][0]]
                mine = [str(os.fstat(sk.fileno()).st_ino) for sk in socks]
                bad += [i for i in mine if ours.get(i) != theirs.get(i)]
                if not bad:
                    break
            assert len(common) >= len(mine), (name, mine, sorted(common))
            zeros = {p == "0" * 16 for p, _ in theirs.values()}
            for i in bad[:3]:
                wrong.append(f"{name} inode {i}: ours {ours.get(i)!r}\n  /proc {theirs.get(i)!r}")
            if kptr == 2 or (kptr == 1 and user == "nobody"):
                assert zeros == {True}, name
    assert not wrong, "\n".join(wrong)


# -- no leak from one reader to the next ---------------------------------------------------


def views(s, u: User) -> dict:
    """What `u` gets from the mount and from /proc, for what differs between readers."""
    r, t, mine = s.rootpid, s.roottid, s.minepid
    out = {}
    for where, base in (("mount", s.mp), ("proc", "/proc")):
        out[where] = {
            "kallsyms": kallsyms_lines(u.read(f"{base}/kallsyms")),
            "stat": hidden_fields(u.read(f"{base}/{r}/stat")),
            "tid stat": hidden_fields(u.read(f"{base}/{r}/task/{t}/stat")),
            "own stat": hidden_fields(u.read(f"{base}/{mine}/stat")),
            "maps": u.read(f"{base}/{r}/maps"),
            "own maps": u.read(f"{base}/{mine}/maps"),
            "environ": u.read(f"{base}/{r}/environ"),
            "cwd": u.errno("readlink", f"{base}/{r}/cwd"),
            "cwd target": u.call("readlink", f"{base}/{r}/cwd"),
            "fd": u.call("listdir", f"{base}/{r}/fd"),
        }
    return out


def test_no_reader_is_served_what_the_previous_one_saw(served):
    """root, nobody, nobody, root, nobody, root in quick succession: each read equals what
    /proc gives the same reader at the same moment, for everything that depends on who
    reads (addresses in kallsyms and stat, ptrace-only files, passthrough files and links).
    The kernel caches no content of a direct_io file, and iterfs keeps nothing per path."""
    s = served
    seen = {}
    for step, user in enumerate(["root", "nobody", "nobody", "root", "nobody", "root"]):
        for _ in range(3):  # kallsyms may change between the two reads (modules, kprobes)
            v = views(s, s.users[user])
            diff = {k for k in v["mount"] if v["mount"][k] != v["proc"][k]}
            if not diff:
                break
        assert not diff, (step, user, {k: (v["mount"][k], v["proc"][k]) for k in diff})
        seen.setdefault(user, v["mount"])
    root, nobody = seen["root"], seen["nobody"]
    # the two views really differ where they should (else the test proves nothing)
    assert root["kallsyms"] != nobody["kallsyms"]
    assert root["stat"]["startcode"] != "1" and nobody["stat"]["startcode"] == "1"
    assert isinstance(root["maps"], bytes) and nobody["maps"] == "EACCES"
    assert isinstance(root["environ"], bytes) and nobody["environ"] == "EACCES"
    assert root["cwd"] == "ok" and nobody["cwd"] == "EACCES"
    assert root["fd"][0] == "ok" and nobody["fd"] == ("err", errno.EACCES)
    assert isinstance(nobody["own maps"], bytes)
