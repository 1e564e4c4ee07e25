"""<pid>/status and <pid>/task/<tid>/status (iterators/proc_status.py) against the kernel's
own /proc, byte for byte, for every process and every thread alive during the test.

A "zoo" of processes is started first so that the interesting lines are really exercised:
a zombie, a stopped process, a ptrace-stopped and a ptrace-seized one (TracerPid), a
multi-threaded process whose threads have their own names, signal masks, pending signals,
CPU affinity and speculation controls, a process with 40 supplementary groups, distinct
real/effective/saved uids and gids, umask 077, mlocked memory, THP disabled, pending and
ignored and caught signals and a name with a space, a backslash, a newline and a tab, a
seccomp-filtered process with no_new_privs, a process with a restricted CPU affinity, and a
process in a child pid namespace (NStgid/NSpid with two numbers).

The comparison: /proc/P/status is read before and after the iterfs read. A line that is
equal in both /proc reads must be equal in the iterfs output, byte for byte; only lines
that /proc itself changed between its two reads are masked (their label must still match).
A process whose /proc reads disagree on the set of lines (it changed state meanwhile) is
read again, a few times. Each read goes through the program loaded once (the same link
parameters and session as iterfs.catalog.read_once, which reloads the program each time);
test_read_once_api checks that read_once itself returns the same bytes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import procfs

pytestmark = pytest.mark.kernel

ATTEMPTS = 4

# ---------------------------------------------------------------- the zoo

GROUPS = [10, 20, 30, 4242, 65534, 100000, 2**31, 4294967294] + list(range(500, 532))
CREDS_NAME = b"a b\\c\nd\te"  # PR_SET_NAME keeps 15 bytes: all of these

CREDS = f"""
import ctypes, os, signal, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
os.setgroups({GROUPS!r})
os.umask(0o077)
libc.prctl(15, {CREDS_NAME!r}, 0, 0, 0)           # PR_SET_NAME
libc.prctl(41, 1, 0, 0, 0)                       # PR_SET_THP_DISABLE
libc.mlockall(1)                                 # MCL_CURRENT: VmLck
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
signal.signal(signal.SIGHUP, lambda *a: None)
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1, signal.SIGRTMIN + 3, signal.SIGTERM}})
os.kill(os.getpid(), signal.SIGUSR1)                       # shared pending
signal.pthread_kill(threading.get_ident(), signal.SIGRTMIN + 3)  # thread pending
os.setresgid(1001, 1002, 1003)
os.setresuid(2001, 2002, 2003)
print("ready", flush=True)
sys.stdin.read()
"""

# PR_SET_SPECULATION_CTRL 53: PR_SPEC_STORE_BYPASS 0, PR_SPEC_INDIRECT_BRANCH 1;
# PR_SPEC_DISABLE 4, PR_SPEC_FORCE_DISABLE 8, PR_SPEC_DISABLE_NOEXEC 16
THREADS = r"""
import ctypes, os, signal, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
setup = [
    (b"ssb off", (0, 4), {signal.SIGUSR1}, None),
    (b"ssb\\force", (0, 8), {signal.SIGUSR2}, {1}),
    (b"ssb noexec", (0, 16), set(), {0}),
    (b"ib\noff", (1, 4), {signal.SIGHUP, signal.SIGRTMIN}, None),
    (b"ib force", (1, 8), set(), None),
    (b"plain", None, set(), None),
]
tids, ready, done = [], threading.Barrier(len(setup) + 1), threading.Event()
def run(name, spec, block, cpus):
    libc.prctl(15, name, 0, 0, 0)
    if spec:
        libc.prctl(53, spec[0], spec[1], 0, 0)
    signal.pthread_sigmask(signal.SIG_BLOCK, block)
    if cpus:
        os.sched_setaffinity(0, cpus)
    tids.append(threading.get_native_id())
    ready.wait()
    done.wait()
for s in setup:
    threading.Thread(target=run, args=s, daemon=True).start()
ready.wait()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
print(" ".join(map(str, tids)), flush=True)
sys.stdin.read()
"""

SECCOMP = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]
allow = (Filter * 1)(Filter(0x06, 0, 0, 0x7fff0000))      # BPF_RET|BPF_K SECCOMP_RET_ALLOW
prog = Prog(1, allow)
assert libc.prctl(38, 1, 0, 0, 0) == 0                      # PR_SET_NO_NEW_PRIVS
for _ in range(2):                                          # PR_SET_SECCOMP, MODE_FILTER
    assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()
os.sched_setaffinity(0, {0})
print("ready", flush=True)
sys.stdin.read()
"""

TRACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
seize, attach = int(sys.argv[1]), int(sys.argv[2])
assert libc.ptrace(0x4206, seize, None, None) == 0, ctypes.get_errno()   # PTRACE_SEIZE
assert libc.ptrace(16, attach, None, None) == 0, ctypes.get_errno()      # PTRACE_ATTACH
os.waitpid(attach, 0x40000000)                                           # __WALL
print("ready", flush=True)
sys.stdin.read()
"""


# the main thread leaves with pthread_exit: the leader is a zombie while a thread runs on
LEADER_EXIT = r"""
import ctypes, os, sys, threading, time
def worker():
    time.sleep(0.1)
    print(threading.get_native_id(), flush=True)
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=worker).start()
ctypes.CDLL(None).pthread_exit(None)
"""

# run inside a new pid namespace with its own /proc: the reader's pid namespace is not the
# initial one, and one process is yet another level down
IN_PIDNS = r"""
import os, subprocess, sys, time
sys.path[:0] = sys.argv[1:]
from iterators import proc_status
from iterfs import catalog
from iterfs.btf import BTF
from iterfs.programs import link_iterator, read_all
b = BTF.vmlinux()
kids = [subprocess.Popen(["sleep", "100"]),
        subprocess.Popen(["unshare", "--pid", "--fork", "sleep", "100"])]
time.sleep(0.3)
loaded = {k: catalog.load(s, b) for k, s in zip(("pid", "tid"), proc_status.FILES)}
def read(kind, n):
    link = link_iterator(loaded[kind].program, **{kind: n})
    try:
        with link.new_iter() as fd:
            return read_all(fd.fd)
    finally:
        link.close()
exact = files = 0
for p in sorted(int(x) for x in os.listdir("/proc") if x.isdigit()):
    paths = [("pid", p, f"/proc/{p}/status")] + [
        ("tid", int(t), f"/proc/{p}/task/{t}/status") for t in os.listdir(f"/proc/{p}/task")]
    for kind, n, path in paths:
        for attempt in range(4):
            before = open(path, "rb").read().split(b"\n")
            ours = read(kind, n).split(b"\n")
            after = open(path, "rb").read().split(b"\n")
            if len(before) == len(ours) == len(after) and all(
                    x == y for x, y, z in zip(before, ours, after) if x == z):
                break
        else:
            print("MISMATCH", kind, n, before, ours, flush=True)
            sys.exit(1)
        files += 1
        exact += sum(x == z for x, z in zip(before, after))
nested = int(open(f"/proc/{kids[1].pid}/task/{kids[1].pid}/children").read().split()[0])
print(files, exact, read("pid", nested).decode().split("\nNStgid:")[1].split("\n")[0])
for k in kids:
    k.kill()
"""


class Zoo:
    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.pids: dict[str, int] = {}
        self.thread_tids: list[int] = []
        self.zombie = 0

    def spawn(self, name: str, argv: list[str], ready: bool = True) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.procs.append(p)
        self.pids[name] = p.pid
        if ready:
            line = p.stdout.readline()
            if not line:
                raise RuntimeError(f"{name} failed: {p.stderr.read().decode()}")
            p.ready_line = line.decode().strip()
        return p

    def start(self) -> Zoo:
        py = sys.executable
        self.spawn("creds", [py, "-c", CREDS])
        t = self.spawn("threads", [py, "-c", THREADS])
        self.thread_tids = [int(x) for x in t.ready_line.split()]
        self.spawn("seccomp", [py, "-c", SECCOMP])
        self.spawn("stopped", ["sleep", "1000"], ready=False)
        os.kill(self.pids["stopped"], signal.SIGSTOP)
        self.spawn("seized", ["sleep", "1000"], ready=False)
        self.spawn("attached", ["sleep", "1000"], ready=False)
        self.spawn("tracer", [py, "-c", TRACER, str(self.pids["seized"]),
                              str(self.pids["attached"])])
        le = self.spawn("leader_exit", [py, "-c", LEADER_EXIT])
        self.pids["leader_exit_thread"] = int(le.ready_line)
        self.spawn("affinity", ["sleep", "1000"], ready=False)
        os.sched_setaffinity(self.pids["affinity"], {1} if os.cpu_count() > 1 else {0})
        un = self.spawn("unshare", ["unshare", "--pid", "--fork", "sleep", "1000"], ready=False)
        self.pids["pidns"] = _child_of(un.pid)
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        self.zombie = self.pids["zombie"] = pid
        _wait_state(self.pids["stopped"], "T")
        _wait_state(self.pids["attached"], "t")
        _wait_state(self.zombie, "Z")
        _wait_state(self.pids["leader_exit"], "Z")
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.pids.get("pidns"):
            try:
                os.kill(self.pids["pidns"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdin, p.stdout, p.stderr):
                f.close()
        if self.zombie:
            try:
                os.waitpid(self.zombie, 0)
            except ChildProcessError:
                pass


def _child_of(pid: int, timeout: float = 10) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"no child of {pid}")


def _wait_state(pid: int, letter: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if procfs.stat(pid)[2] == letter:
            return
        time.sleep(0.01)
    raise RuntimeError(f"{pid} never reached state {letter}")


@pytest.fixture(scope="module")
def zoo():
    z = Zoo()
    try:
        yield z.start()
    finally:
        z.stop()


@pytest.fixture(scope="module")
def progs(vmlinux):
    from iterators import proc_status
    from iterfs import catalog
    pid_spec, tid_spec = proc_status.FILES
    loaded = {"pid": catalog.load(pid_spec, vmlinux), "tid": catalog.load(tid_spec, vmlinux)}
    try:
        yield loaded
    finally:
        for ld in loaded.values():
            ld.close()


def iterfs_read(progs, kind: str, n: int) -> bytes:
    """What read_once(spec, pid=n / tid=n) returns, through the program loaded once."""
    from iterfs.programs import link_iterator, read_all
    link = link_iterator(progs[kind].program, **{kind: n})
    try:
        with link.new_iter() as fd:
            return read_all(fd.fd)
    finally:
        link.close()


def proc_read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def label(line: bytes) -> bytes:
    return line.split(b":\t", 1)[0] if b":\t" in line else line


class Stats:
    def __init__(self):
        self.files = self.exact = self.masked = self.retries = self.gone = 0
        self.labels: set[bytes] = set()
        self.why: list[str] = []

    def __str__(self):
        return (f"{self.files} files: {self.exact} lines byte-identical, {self.masked} masked "
                f"(changed between /proc's own two reads), {self.retries} re-reads "
                f"{self.why[:3]}, {self.gone} gone meanwhile")


def compare(progs, kind: str, n: int, proc_path: str, stats: Stats) -> None:
    """Compare one file; raises AssertionError with the evidence."""
    last = None
    for attempt in range(ATTEMPTS):
        before = proc_read(proc_path)
        ours = iterfs_read(progs, kind, n)
        after = proc_read(proc_path)
        if before is None or after is None:
            stats.gone += 1
            return
        b, o, a = before.split(b"\n"), ours.split(b"\n"), after.split(b"\n")
        if [label(x) for x in b] != [label(x) for x in a]:
            last = ("/proc changed shape between its reads", before, ours, after)
            stats.retries += 1
            stats.why.append(f"{kind}={n}: /proc changed shape")
            continue
        bad = [(x, y) for x, y, z in zip(b, o, a) if (x == z and x != y) or
               label(x) != label(y)]
        if len(b) != len(o) or bad:
            last = (f"differs: {bad[:3]}", before, ours, after)
            stats.retries += 1
            stats.why.append(f"{kind}={n}: {bad[:2]}")
            continue
        stats.files += 1
        for x, z in zip(b, a):
            if x == z:
                stats.exact += 1
            else:
                stats.masked += 1
            stats.labels.add(label(x))
        return
    why, before, ours, after = last
    pytest.fail(f"{kind}={n}: {why}\n--- /proc before\n{before.decode(errors='replace')}"
                f"--- iterfs\n{ours.decode(errors='replace')}"
                f"--- /proc after\n{after.decode(errors='replace')}")


def all_pids() -> list[int]:
    hidden = procfs.hidden_tids()
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in hidden)


# ---------------------------------------------------------------- tests

def test_every_process_status_matches_proc(zoo, progs):
    stats = Stats()
    pids = all_pids()
    for pid in pids:
        compare(progs, "pid", pid, f"/proc/{pid}/status", stats)
    print(f"\n<pid>/status: {stats}")
    assert stats.files >= len(pids) - stats.gone and stats.files > 20
    assert stats.exact > 35 * stats.files
    # every line the kernel prints was compared somewhere
    for key in (b"Name", b"Umask", b"NSsid", b"Kthread", b"VmPeak", b"HugetlbPages",
                b"untag_mask", b"SigQ", b"CapAmb", b"Seccomp_filters",
                b"SpeculationIndirectBranch", b"Mems_allowed_list",
                b"nonvoluntary_ctxt_switches"):
        assert key in stats.labels


def test_every_thread_status_matches_proc(zoo, progs):
    stats = Stats()
    for pid in all_pids():
        try:
            tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except FileNotFoundError:
            continue
        for tid in tids:
            compare(progs, "tid", tid, f"/proc/{pid}/task/{tid}/status", stats)
    print(f"\n<pid>/task/<tid>/status: {stats}")
    assert stats.files > 20 and stats.exact > 35 * stats.files


def test_pid_file_is_the_leader_only(zoo, progs):
    pid = zoo.pids["threads"]
    out = iterfs_read(progs, "pid", pid)
    assert out.count(b"\nPid:\t") == 1 and f"\nPid:\t{pid}\n".encode() in out
    assert b"Threads:\t7\n" in out
    # a thread id is not a process: the iterator linked with pid=<tid> yields nothing
    assert iterfs_read(progs, "pid", zoo.thread_tids[0]) == b""


def _field(out: bytes, key: str) -> str:
    m = re.search(rb"^" + key.encode() + rb":\t(.*)$", out, re.M)
    assert m, f"no {key} line in {out!r}"
    return m.group(1).decode()


def test_zoo_shows_what_it_was_made_for(zoo, progs):
    """The zoo really exercises the lines (checked on the iterfs output; the other tests
    show it equals /proc)."""
    z = zoo.pids
    creds = iterfs_read(progs, "pid", z["creds"])
    assert _field(creds, "Name") == "a b\\\\c\\nd\te"
    assert _field(creds, "Umask") == "0077"
    assert _field(creds, "Uid") == "2001\t2002\t2003\t2002"
    assert _field(creds, "Gid") == "1001\t1002\t1003\t1002"
    assert _field(creds, "Groups") == " ".join(map(str, sorted(GROUPS))) + " "
    assert _field(creds, "THP_enabled") == "0" and _field(creds, "VmLck").strip() != "0 kB"
    assert int(_field(creds, "ShdPnd"), 16) == 1 << (signal.SIGUSR1 - 1)
    assert int(_field(creds, "SigPnd"), 16) == 1 << (signal.SIGRTMIN + 3 - 1)
    assert int(_field(creds, "SigIgn"), 16) & 1 << (signal.SIGUSR2 - 1)
    assert int(_field(creds, "SigCgt"), 16) & 1 << (signal.SIGHUP - 1)
    assert _field(creds, "CapEff") == "0000000000000000"

    names = {}
    for tid in zoo.thread_tids:
        out = iterfs_read(progs, "tid", tid)
        names[_field(out, "Name")] = out
    assert set(names) == {"ssb off", "ssb\\\\force", "ssb noexec", "ib\\noff", "ib force",
                          "plain"}
    ssb = _field(names["plain"], "Speculation_Store_Bypass")
    if ssb.startswith("thread "):  # the prctl mode of ssb_mode
        assert _field(names["ssb off"], "Speculation_Store_Bypass") == "thread mitigated"
        assert _field(names["ssb\\\\force"], "Speculation_Store_Bypass") == \
            "thread force mitigated"
        assert _field(names["ssb noexec"], "Speculation_Store_Bypass") == "vulnerable"
    ib = _field(names["plain"], "SpeculationIndirectBranch")
    if ib.startswith("conditional "):
        assert _field(names["ib\\noff"], "SpeculationIndirectBranch") == "conditional disabled"
        assert _field(names["ib force"], "SpeculationIndirectBranch") == \
            "conditional force disabled"
    assert _field(names["ssb\\\\force"], "Cpus_allowed_list") == \
        ("1" if os.cpu_count() > 1 else "0")

    sec = iterfs_read(progs, "pid", z["seccomp"])
    assert (_field(sec, "NoNewPrivs"), _field(sec, "Seccomp"),
            _field(sec, "Seccomp_filters")) == ("1", "2", "2")
    assert _field(sec, "Cpus_allowed_list") == "0"

    assert _field(iterfs_read(progs, "pid", z["stopped"]), "State") == "T (stopped)"
    att = iterfs_read(progs, "pid", z["attached"])
    assert _field(att, "State") == "t (tracing stop)"
    assert _field(att, "TracerPid") == str(z["tracer"])
    assert _field(iterfs_read(progs, "pid", z["seized"]), "TracerPid") == str(z["tracer"])

    zombie = iterfs_read(progs, "pid", zoo.zombie)
    assert _field(zombie, "State") == "Z (zombie)"
    assert b"Umask:" not in zombie and b"VmPeak:" not in zombie

    ns = iterfs_read(progs, "pid", z["pidns"])
    assert _field(ns, "NStgid") == f"{z['pidns']}\t1"
    assert _field(ns, "NSpid") == f"{z['pidns']}\t1"
    assert _field(ns, "NSpgid").endswith("\t0") and _field(ns, "NSsid").endswith("\t0")

    le = iterfs_read(progs, "pid", z["leader_exit"])
    assert _field(le, "State") == "Z (zombie)" and _field(le, "Threads") == "2"
    assert b"VmPeak:" not in le and b"Umask:" not in le
    assert _field(iterfs_read(progs, "tid", z["leader_exit_thread"]), "State") != "Z (zombie)"

    kthreadd = iterfs_read(progs, "pid", 2)
    assert _field(kthreadd, "Kthread") == "1" and b"VmPeak:" not in kthreadd


def test_read_once_api(zoo, vmlinux, progs):
    """catalog.read_once (a fresh load per call) returns what the loaded program does."""
    from iterators import proc_status
    from iterfs import catalog
    pid_spec, tid_spec = proc_status.FILES
    for name in ("creds", "stopped", "zombie"):
        pid = zoo.pids[name]
        assert catalog.read_once(pid_spec, vmlinux, pid=pid) == \
            iterfs_read(progs, "pid", pid) == proc_read(f"/proc/{pid}/status")
    tid = zoo.thread_tids[1]
    assert catalog.read_once(tid_spec, vmlinux, tid=tid) == \
        proc_read(f"/proc/{zoo.pids['threads']}/task/{tid}/status")


def _procfs_tree(root: str, progs, pids: list[int]) -> list[int]:
    """root/<pid>/status = the iterfs output; everything else links into /proc."""
    for e in os.listdir("/proc"):
        if not e.isdigit():
            os.symlink(f"/proc/{e}", os.path.join(root, e))
    done = []
    for pid in pids:
        out = iterfs_read(progs, "pid", pid)
        try:
            entries = os.listdir(f"/proc/{pid}")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if not out:
            continue
        d = os.path.join(root, str(pid))
        os.mkdir(d)
        for e in entries:
            if e != "status":
                os.symlink(f"/proc/{pid}/{e}", os.path.join(d, e))
        with open(os.path.join(d, "status"), "wb") as f:
            f.write(out)
        done.append(pid)
    return done


def test_psutil_reads_iterfs_status(zoo, progs):
    import psutil
    z = zoo.pids
    sleeping = [z[k] for k in ("creds", "seccomp", "stopped", "attached", "affinity")]
    pids = sorted(set(all_pids()) | {zoo.zombie})
    saved = psutil.PROCFS_PATH
    with tempfile.TemporaryDirectory(prefix="iterfs-psutil-") as root:
        pids = _procfs_tree(root, progs, pids)

        def info(procfs_path, pid):
            psutil.PROCFS_PATH = procfs_path
            try:
                p = psutil.Process(pid)
                return (p.uids(), p.gids(), p.num_threads(), p.status(), p.name(),
                        p.num_ctx_switches())
            except psutil.NoSuchProcess:
                return None
            finally:
                psutil.PROCFS_PATH = saved

        compared = 0
        try:
            for pid in pids:
                # /proc is read before and after the iterfs file is written and read;
                # status() and name() come from <pid>/stat, a link to /proc
                # (live), so a process that changes meanwhile is read again
                for attempt in range(ATTEMPTS):
                    before = info("/proc", pid)
                    with open(os.path.join(root, str(pid), "status"), "wb") as f:
                        f.write(iterfs_read(progs, "pid", pid))  # fresh for each attempt
                    ours, after = info(root, pid), info("/proc", pid)
                    if before is None or after is None:
                        break
                    assert ours is not None, pid
                    ok = (ours[:3] == before[:3] == after[:3]
                          and (before[3:5] != after[3:5] or ours[3:5] == before[3:5])
                          and (pid not in sleeping or ours[5] == before[5] == after[5]))
                    if ok:
                        compared += 1
                        break
                else:
                    pytest.fail(f"psutil on pid {pid}: /proc {before} {after}, iterfs {ours}")
        finally:
            psutil.PROCFS_PATH = saved
    print(f"\npsutil on iterfs status: {compared} processes")
    assert compared > 20


def test_reader_in_a_child_pid_namespace(vmlinux):
    """The same comparison from inside a new pid namespace with its own /proc: pid numbers
    and the NS* lines are those of the reader's namespace (one more level for a process
    started in a further nested namespace)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c",
                        IN_PIDNS, root], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    files, exact, nested = r.stdout.split(maxsplit=2)
    print(f"\nin a child pid namespace: {files} files, {exact} lines byte-identical")
    assert int(files) >= 5 and nested.strip().endswith("\t1")


def test_load_is_quick(vmlinux):
    """Both programs pass the verifier in well under a second each here (an untrusted
    alias of the task avoids btf_nested_type_is_trusted's linear BTF search per load)."""
    from iterators import proc_status
    for build in (proc_status.build_pid, proc_status.build_tid):
        spec = build(vmlinux)
        t = time.monotonic()
        spec.load(btf=vmlinux).close()
        assert time.monotonic() - t < 5
