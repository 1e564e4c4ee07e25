"""comm, cmdline and fd (iterators/proc_cmd.py, iterators/proc_fd.py) against the kernel's
own /proc, byte for byte.

A module fixture starts a zoo of processes that exercise the rules: long argv (> 100 KiB,
single- and multi-threaded), argv with empty strings, command lines right at and past the
single-threaded size limit, processes that overwrote their args area (setproctitle style,
through /proc/self/mem) so that get_mm_cmdline's continuation into the environment and its
one-page cap apply, a comm with spaces, a long comm, a zombie, a process whose leader
exited while its threads live on, and a process holding every kind of fd the tests know
(regular, deleted, directory, pipe, fifo, unix/tcp/udp/udp6/netlink sockets, eventfd,
epoll, timerfd, signalfd, inotify, memfds, a bpf map and a bpf prog, /dev/null, a pty, names
with spaces, newlines and backslashes, paths too long for bpf_d_path's stack buffer on two
filesystems). Kernel threads are on every machine.

Every process on the system is then read through iterfs and through /proc. /proc is read
before and after the iterator; a difference is tolerated only where those two reads differ
(kworker names change as they run work items), and such cases are counted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import procfs
from conftest import kill
from iterfs import catalog, programs
from iterfs.btf import BTF
from iterators import proc_cmd, proc_fd

pytestmark = pytest.mark.kernel



def _built_once(spec: catalog.IterSpec) -> catalog.IterSpec:
    """The spec with its (pure) build memoized: read_once still loads, links and reads
    afresh each time, but a hundred processes do not assemble the program a hundred times."""
    cache = {}

    def build(btf):
        if id(btf) not in cache:
            cache[id(btf)] = (btf, spec.build(btf))
        return cache[id(btf)][1]
    return dataclasses.replace(spec, build=build)


SPECS = {s.path: _built_once(s) for s in proc_cmd.FILES + proc_fd.FILES}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PF_KTHREAD = 0x00200000
SINGLE_THREAD_MAX = 2 * proc_cmd.MAX_CALL   # 65534: (threads + 1) * 32767

CHILD = r'''
import ctypes, json, os, sys, threading
cfg = json.loads(os.environ["PFD_CHILD"])
libc = ctypes.CDLL(None, use_errno=True)
ev = threading.Event()
for _ in range(cfg.get("threads", 0)):
    threading.Thread(target=ev.wait, daemon=True).start()
if "comm" in cfg:
    libc.prctl(15, cfg["comm"].encode(), 0, 0, 0)           # PR_SET_NAME
if "title" in cfg:                                           # setproctitle by hand
    f = open("/proc/self/stat", "rb").read().rsplit(b")", 1)[1].split()
    a0, a1 = int(f[45]), int(f[46])                          # arg_start, arg_end
    title = (b"a title with spaces " * 2000)[:a1 - a0 + cfg["title"]]
    with open("/proc/self/mem", "r+b", buffering=0) as m:
        m.seek(a0)
        m.write(title)
keep = []
def k(x):
    if isinstance(x, int) and x < 0:
        raise OSError(ctypes.get_errno(), "fd")
    keep.append(x)
    return x
if "fds" in cfg:
    import select, socket
    base, shm = cfg["fds"]
    k(open(os.path.join(base, "regular"), "w"))
    k(open(os.path.join(base, "name with  spaces "), "w"))
    k(open(os.path.join(base, "new\nline and back\\slash"), "w"))
    gone = os.path.join(base, "deleted")
    k(open(gone, "w")); os.unlink(gone)
    k(os.open(base, os.O_RDONLY | os.O_DIRECTORY))
    k(os.pipe())
    fifo = os.path.join(base, "fifo"); os.mkfifo(fifo); k(os.open(fifo, os.O_RDWR))
    u = k(socket.socket(socket.AF_UNIX)); u.bind(os.path.join(base, "sock"))
    t = k(socket.socket()); t.bind(("127.0.0.1", 0)); t.listen()
    k(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    k(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
    k(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
    k(os.eventfd(0)); k(select.epoll())
    k(libc.timerfd_create(1, 0))
    mask = ctypes.c_uint64(1 << (10 - 1))                    # SIGUSR1
    k(libc.signalfd(-1, ctypes.byref(mask), 0))
    k(libc.inotify_init())
    k(os.memfd_create("memfd name"))
    k(os.memfd_create("memfd\nnew\\line"))
    k(os.openpty())
    k(os.open("/dev/null", os.O_RDWR))
    k(os.pidfd_open(os.getpid()))
    for root in (base, shm):                                 # > bpf_d_path's buffer
        deep = root
        for i in range(8):
            deep = os.path.join(deep, str(i) + "x" * 60)
        os.makedirs(deep)
        k(open(os.path.join(deep, "long file"), "w"))
        k(os.open(deep, os.O_RDONLY))
        gone = os.path.join(deep, "gone"); k(open(gone, "w")); os.unlink(gone)
        k(open(os.path.join(deep, "new\nline\\"), "w"))
    from iterfs import asm
    from iterfs.programs import array_map, load_iterator_program
    k(array_map([b"x" * 8], name="pfd_map"))
    k(load_iterator_program(asm.assemble([asm.mov("r0", 0), asm.exit_insn()]), "task"))
print("ready", flush=True)
if cfg.get("leader_exit"):
    libc.syscall(60, 0)           # SYS_exit: only the leader ends, its threads live on
sys.stdin.read()
'''


# ------------------------------------------------------------------------- helpers

def read_proc(pid: int, name: str) -> bytes:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read()


def proc_fds(pid: int) -> dict[int, bytes]:
    out = {}
    for n in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            out[int(n)] = os.fsencode(os.readlink(f"/proc/{pid}/fd/{n}"))
    return out


def stat_fields(pid: int) -> list[bytes]:
    data = read_proc(pid, "stat")
    return data[data.rindex(b")") + 2:].split()


def is_kthread(pid: int) -> bool:
    return bool(int(stat_fields(pid)[6]) & PF_KTHREAD)


def pids() -> list[int]:
    return sorted(int(n) for n in os.listdir("/proc") if n.isdigit())


def hidden_pids() -> set[int]:
    """Threads this (patched) kernel hides from the task iterator (procfs.py: pid 1 here)."""
    return procfs.hidden_tids()




def argv_len(argv: list[str]) -> int:
    return sum(len(os.fsencode(a)) + 1 for a in argv)


class Zoo:
    def __init__(self, base: str, shm: str):
        self.base, self.shm = base, shm
        self.procs: dict[str, subprocess.Popen] = {}
        self.argv: dict[str, list[str]] = {}

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def spawn(self, name: str, args=(), *, exe: str = sys.executable, env=None, **cfg) -> None:
        argv = [exe, "-c", CHILD, *args]
        e = {"PFD_CHILD": json.dumps(cfg), "PYTHONPATH": REPO, "PATH": os.environ.get("PATH", "")}
        e.update(env or {})
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=e, cwd=REPO)
        self.procs[name], self.argv[name] = p, argv
        line = p.stdout.readline()
        assert line == b"ready\n", f"{name}: child said {line!r}"

    def zombie(self, name: str) -> None:
        p = subprocess.Popen(["/bin/sh", "-c", "exit 0"])
        self.procs[name] = p
        deadline = time.monotonic() + 5
        while stat_fields(p.pid)[0] != b"Z":
            assert time.monotonic() < deadline, "the child did not become a zombie"
            time.sleep(0.01)

    def close(self) -> None:
        for p in self.procs.values():
            kill(p)


@pytest.fixture(scope="module")
def zoo():
    base = tempfile.mkdtemp(prefix="iterfs-pfd-")
    shm = tempfile.mkdtemp(prefix="iterfs-pfd-", dir="/dev/shm")
    z = Zoo(base, shm)
    try:
        # command lines
        z.spawn("long_mt", ["y" * 100_000, "", "z z " * 5000], threads=4)
        z.spawn("long_st", ["y" * 100_000, "", "w" * 30_000])
        over = SINGLE_THREAD_MAX - argv_len([sys.executable, "-c", CHILD])
        z.spawn("at_limit", ["a" * (over - 1)])                # exactly 65534 bytes
        z.spawn("past_limit", ["a" * over])                    # 65535 bytes
        z.spawn("empties", ["", "", "a b", "", "\t"])
        z.spawn("title_env", ["a" * 10, "b" * 10], title=40)      # overflows into environ
        z.spawn("title_exact", ["a" * 10, "b" * 10], title=0)     # no NUL left in the args
        z.spawn("title_page", ["a" * 10], title=6000, env={"BIG": "B" * 9000})  # > one page
        z.spawn("title_noenv", ["a" * 10], title=0, env={"Z": ""})
        # names
        z.spawn("comm_spaces", comm="my comm  name")
        link = os.path.join(base, "iterfs-pfd-long-process-name")
        os.symlink(sys.executable, link)
        z.spawn("long_comm", ["x"], exe=link)
        # fds
        z.spawn("fds", fds=[base, shm])
        # odd states
        z.spawn("leader_exit", ["le"], threads=2, leader_exit=True)
        z.zombie("zombie")
        deadline = time.monotonic() + 5
        while stat_fields(z.pid("leader_exit"))[0] != b"Z":
            assert time.monotonic() < deadline, "the leader did not exit"
            time.sleep(0.01)
        yield z
    finally:
        z.close()
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def btf():
    return BTF.vmlinux()


# --------------------------------------------------------------------- comm, cmdline

def bracketed(name: str, spec_name: str, pid: int):
    """(before, iterfs, after) for one process, or None when it vanished."""
    try:
        before = read_proc(pid, name)
        got = catalog.read_once(SPECS[spec_name], pid=pid)
        after = read_proc(pid, name)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return before, got, after


def cmdline_ok(want: bytes, got: bytes) -> bool:
    """Equal, or the documented truncation: a prefix of at least (threads + 1) * 32767."""
    if got == want:
        return True
    return len(want) > len(got) >= SINGLE_THREAD_MAX and want.startswith(got)


def every_process(name: str, ok):
    hidden = hidden_pids()
    seen, unstable, kthreads = 0, [], 0
    bad = []
    for pid in pids():
        r = bracketed(name, name, pid)
        if r is None:
            continue
        before, got, after = r
        if pid in hidden:
            assert got == b"", f"pid {pid} is hidden from the task iterator here"
            continue
        seen += 1
        with contextlib.suppress(OSError):
            kthreads += is_kthread(pid)
        if before != after:
            unstable.append(pid)
            if not (ok(before, got) or ok(after, got)):
                print(f"{name} of {pid} changed during the read: {before!r} / {got!r} / {after!r}")
            continue
        if not ok(before, got):
            bad.append((pid, before[:200], got[:200], len(before), len(got)))
    assert not bad, f"{name}: iterfs differs from /proc (pid, /proc, iterfs, lengths): {bad}"
    assert seen > 10 and kthreads > 0, (seen, kthreads)
    assert len(unstable) <= max(3, seen // 10), f"{name}: too many unstable: {unstable}"
    return seen


def test_comm_every_process(zoo):
    every_process("comm", lambda want, got: want == got)


def test_cmdline_every_process(zoo):
    every_process("cmdline", cmdline_ok)


def test_comm_zoo(zoo):
    for name, want in [("comm_spaces", b"my comm  name\n"), ("long_comm", b"iterfs-pfd-long\n"),
                       ("zombie", None), ("leader_exit", None), ("fds", None)]:
        pid = zoo.pid(name)
        got = catalog.read_once(SPECS["comm"], pid=pid)
        assert got == read_proc(pid, "comm"), name
        if want is not None:
            assert got == want
    # a kernel thread (workqueue workers are in test_comm_every_process)
    kthreadd = catalog.read_once(SPECS["comm"], pid=2)
    assert kthreadd == read_proc(2, "comm") == b"kthreadd\n"


def test_cmdline_zoo(zoo):
    def both(name):
        pid = zoo.pid(name)
        return read_proc(pid, "cmdline"), catalog.read_once(SPECS["cmdline"], pid=pid)

    # exact, however long, for a process with threads enough: 5 * 32767 bytes here
    want, got = both("long_mt")
    assert len(want) > 100 * 1024 and got == want
    assert want == b"".join(os.fsencode(a) + b"\0" for a in zoo.argv["long_mt"])
    # a single-threaded process: exact up to 65534 bytes, then truncated there
    want, got = both("at_limit")
    assert len(want) == SINGLE_THREAD_MAX and got == want
    want, got = both("past_limit")
    assert len(want) == SINGLE_THREAD_MAX + 1 and got == want[:SINGLE_THREAD_MAX]
    want, got = both("long_st")
    assert len(want) > 100 * 1024 and got == want[:SINGLE_THREAD_MAX]
    # empty arguments are NULs of their own
    want, got = both("empties")
    assert got == want and want.endswith(b"\0\0a b\0\0\t\0")
    # setproctitle: the args' last byte is not NUL, so the output runs on into environ up
    # to the first NUL, within one page
    for name in ("title_env", "title_exact", "title_page", "title_noenv"):
        want, got = both(name)
        f = stat_fields(zoo.pid(name))
        args = int(f[46]) - int(f[45])                        # arg_end - arg_start
        assert got == want, name
        assert len(want) > args and b"\0" not in want[:-1], (name, len(want), args)
    assert len(both("title_page")[0]) == 4096              # get_mm_proctitle: one page
    # the first environment string (PFD_CHILD=...) completes the title
    first_env = b"PFD_CHILD=" + json.dumps({"title": 0}).encode() + b"\0"
    assert both("title_exact")[0].endswith(first_env)
    # nothing for kernel threads, zombies and an exited leader
    for pid in (2, zoo.pid("zombie"), zoo.pid("leader_exit")):
        assert read_proc(pid, "cmdline") == catalog.read_once(SPECS["cmdline"], pid=pid) == b""


# ---------------------------------------------------------------------------------- fd

@pytest.fixture(scope="module")
def fd_program(btf):
    prog = SPECS["fd"].build(btf).load(btf=btf)
    try:
        yield prog
    finally:
        prog.close()


def iter_fds(prog, pid: int) -> dict[int, bytes]:
    with programs.link_iterator(prog, pid=pid) as link, link.new_iter() as fd:
        out = programs.read_all(fd.fd)
    assert out == b"" or out.endswith(b"\n")
    return proc_fd.parse(out)


def test_fd_every_kind(zoo, fd_program):
    pid = zoo.pid("fds")
    want = proc_fds(pid)
    got = iter_fds(fd_program, pid)
    assert got == want
    targets = set(want.values())
    for kind in (b"socket:[", b"pipe:[", b"anon_inode:[eventfd]", b"anon_inode:[eventpoll]",
                 b"anon_inode:[timerfd]", b"anon_inode:[signalfd]", b"anon_inode:inotify",
                 b"anon_inode:bpf-map", b"anon_inode:bpf-prog", b"anon_inode:[pidfd]",
                 b"/memfd:memfd name (deleted)", b"/memfd:memfd\nnew\\line (deleted)",
                 b"/dev/null", b"/dev/ptmx", b"/dev/pts/", b" (deleted)", b"\n", b"\\",
                 b"name with  spaces ", b"/fifo"):
        assert any(kind in t for t in targets), kind
    # paths longer than bpf_d_path's buffer, on / and on /dev/shm (a mount to cross)
    long = [t for t in targets if len(t) >= proc_fd.PATH_BUF]
    assert len(long) == 8 and sum(t.startswith(zoo.shm.encode()) for t in long) == 4
    assert sum(t.endswith(b"/gone (deleted)") for t in long) == 2


def test_fd_listing_format(zoo, fd_program):
    """One line per fd, ascending, "%u TARGET\\n", newlines and backslashes as \\ooo."""
    pid = zoo.pid("fds")
    with programs.link_iterator(fd_program, pid=pid) as link, link.new_iter() as fd:
        raw = programs.read_all(fd.fd)
    lines = raw.split(b"\n")
    assert lines[-1] == b""
    fds = [int(ln.split(b" ", 1)[0]) for ln in lines[:-1]]
    assert fds == sorted(proc_fds(pid))
    assert b"\\012" in raw and b"\\134" in raw
    for ln in lines[:-1]:
        target = ln.split(b" ", 1)[1]
        assert b"\\" not in target.replace(b"\\012", b"").replace(b"\\134", b"")


def test_fd_every_process(zoo, fd_program):
    me = os.getpid()
    hidden = hidden_pids()
    checked, bad = 0, []
    for pid in pids():
        try:
            before = proc_fds(pid)
            got = iter_fds(fd_program, pid)
            after = proc_fds(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        except PermissionError:
            assert pid in hidden
            continue
        if pid in hidden:
            assert got == {}
            continue
        checked += 1
        if before == after and pid != me:
            if got != before:
                bad.append((pid, before, got))
            continue
        # what held still must match; the rest must be what /proc showed at some point, or
        # (for this process) the iterator fds the read itself opened
        for n in set(before) | set(after) | set(got):
            if before.get(n) == after.get(n) is not None:
                if got.get(n) != before[n]:
                    bad.append((pid, n, before[n], got.get(n)))
            elif n in got and got[n] not in (before.get(n), after.get(n)):
                if not (pid == me and got[n] in (b"anon_inode:bpf_link", b"anon_inode:bpf_iter")):
                    bad.append((pid, n, before.get(n), got[n], after.get(n)))
    assert not bad, bad
    assert checked > 10


def test_fd_zombie_and_exited_leader(zoo, fd_program):
    for name in ("zombie", "leader_exit"):
        pid = zoo.pid(name)
        assert proc_fds(pid) == iter_fds(fd_program, pid) == {}
    # the leader_exit process's threads still hold the fds: /proc/<pid>/fd does not show
    # them (they are /proc/<pid>/task/<tid>/fd) and neither does the iterator
    tid = max(int(t) for t in os.listdir(f"/proc/{zoo.pid('leader_exit')}/task"))
    assert proc_fds(tid)


# ------------------------------------------------------------------------------ psutil

def fake_procfs(root: str, pids_: list[int], fd_prog) -> None:
    """A procfs lookalike: <pid>/cmdline, comm and fd/ from iterfs, the rest symlinked."""
    for name in os.listdir("/proc"):
        if not (name.isdigit() and int(name) in pids_):
            os.symlink(f"/proc/{name}", os.path.join(root, name))
    for pid in pids_:
        d = os.path.join(root, str(pid))
        os.mkdir(d)
        for e in os.listdir(f"/proc/{pid}"):
            if e not in ("cmdline", "comm", "fd"):
                os.symlink(f"/proc/{pid}/{e}", os.path.join(d, e))
        for e in ("cmdline", "comm"):
            with open(os.path.join(d, e), "wb") as f:
                f.write(catalog.read_once(SPECS[e], pid=pid))
        os.mkdir(os.path.join(d, "fd"))
        for n, target in iter_fds(fd_prog, pid).items():
            os.symlink(target, os.path.join(d, "fd", str(n)))


def psutil_view(pid: int):
    import psutil
    p = psutil.Process(pid)
    return p.cmdline(), p.name(), sorted(p.open_files()), p.num_fds()


def test_psutil_on_iterfs_files(zoo, fd_program):
    import psutil
    chosen = [zoo.pid(n) for n in ("fds", "long_mt", "empties", "title_env", "comm_spaces",
                                   "long_comm")]
    saved = psutil.PROCFS_PATH
    with tempfile.TemporaryDirectory(prefix="iterfs-pfd-proc-") as root:
        fake_procfs(root, chosen, fd_prog=fd_program)
        try:
            psutil.PROCFS_PATH = root
            ours = {pid: psutil_view(pid) for pid in chosen}
        finally:
            psutil.PROCFS_PATH = saved
    theirs = {pid: psutil_view(pid) for pid in chosen}
    assert ours == theirs
    fds = ours[zoo.pid("fds")]
    assert len(fds[2]) >= 7 and fds[3] > 30            # open_files() and num_fds() saw them
    assert ours[zoo.pid("long_comm")][1] == "iterfs-pfd-long-process-name"
    assert ours[zoo.pid("long_mt")][0] == zoo.argv["long_mt"]
