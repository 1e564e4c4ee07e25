"""maps and kallsyms (iterators/proc_maps.py, iterators/kallsyms.py) against the kernel's own
/proc/<pid>/maps and /proc/kallsyms, byte for byte.

maps: a module fixture starts a child whose address space has every kind of line
show_map_vma prints: deleted files, names with a newline (escaped \\012), spaces, a
backslash, a tab and a non-ASCII byte, paths longer than bpf_d_path's stack buffer (plain,
deleted with a newline, under another mount) and right at its boundary, an overlayfs file
(a backing file: user-visible inode and path), shared anonymous memory ("/dev/zero
(deleted)"), a memfd, SysV shm, an anonymous VMA named with prctl(PR_SET_VMA) where the
kernel has CONFIG_ANON_VMA_NAME, > 2000 VMAs (the output spans many read()s and seq-buffer
retries), [heap] with a VMA starting exactly at brk (vma_is_initial_heap is strict), PROT_NONE
guard regions (a thread stack's guard page), [stack], [vdso], [vvar], [vvar_vclock] and
[vsyscall]. More children: a 32-bit process (no [vsyscall], 8-digit addresses), a zombie and
a process whose leader exited (both empty). Then every process of the system is compared:
/proc is read before and after the iterator and a line may differ only where those two
reads differ.

kallsyms: both programs are read back to back with /proc/kallsyms (root, and an unprivileged
`cat` for the zeroed variant). The only tolerated differences are "[bpf]" lines: BPF
programs (of other tests, of the daemon) loaded or unloaded between the reads; each is shown.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import functools
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import psutil
import pytest

import procfs
from conftest import kill
from iterfs import catalog
from iterfs.btf import BTF
from iterfs.programs import link_iterator, read_all
from iterators import kallsyms, proc_maps

pytestmark = pytest.mark.kernel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAPS = proc_maps.FILES[0]
KALLSYMS = kallsyms.FILES[0]

CHILD = r'''
import ctypes, json, mmap, os, sys, threading
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_long]
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
PAGE = mmap.PAGESIZE
MAP_PRIVATE_ANON, MAP_FIXED_NOREPLACE = 0x22, 0x100000
keep, info = [], {}

def mapfile(path, unlink=False):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, PAGE)
    keep.append(mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ))
    os.close(fd)
    if unlink:
        os.unlink(path)

def sized(root, n):
    """A path of exactly n bytes under root."""
    sub = os.path.join(root, "c" * 200)
    os.makedirs(sub, exist_ok=True)
    name = os.path.join(sub, "b")
    return name + "b" * (n - len(name))

d, shm = cfg["dir"], cfg["shm"]
mapfile(os.path.join(d, "deleted"), unlink=True)
mapfile(os.path.join(d, "new\nline and  spaces "))
mapfile(os.path.join(d, "gone\nnl"), unlink=True)
mapfile(os.path.join(d, "back\\slash\ttab\xe9"))
deep = os.path.join(d, *(["x" * 60] * 7))
os.makedirs(deep)
mapfile(os.path.join(deep, "long"))
mapfile(os.path.join(deep, "long\nnl del"), unlink=True)
deep_shm = os.path.join(shm, *(["y" * 100] * 3))
os.makedirs(deep_shm)
mapfile(os.path.join(deep_shm, "z" * 200))
info["boundary"] = [sized(d, n) for n in cfg["boundary"]]
for path in info["boundary"]:
    mapfile(path)
if cfg.get("overlay"):
    mapfile(os.path.join(cfg["overlay"], "ofile"))
keep.append(mmap.mmap(-1, PAGE, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS))   # /dev/zero (deleted)
mfd = os.memfd_create("iterfs maps")
os.ftruncate(mfd, PAGE)
keep.append(mmap.mmap(mfd, PAGE))
os.close(mfd)
shmid = libc.shmget(0, PAGE, 0o1600)                                      # IPC_PRIVATE
libc.shmat(shmid, None, 0)
libc.shmctl(shmid, 0, None)                                               # IPC_RMID
a = libc.mmap(None, 2 * PAGE, 3, MAP_PRIVATE_ANON, -1, 0)
name = ctypes.c_char_p(b"iterfs anon")
r = libc.prctl(0x53564D41, 0, ctypes.c_ulong(a), 2 * PAGE,               # PR_SET_VMA
               ctypes.c_ulong(ctypes.cast(name, ctypes.c_void_p).value))
info["anon_name_errno"] = 0 if r == 0 else ctypes.get_errno()
n = cfg["many"]                                                           # many VMAs
base = libc.mmap(None, n * PAGE, 1, MAP_PRIVATE_ANON, -1, 0)
for i in range(0, n, 2):
    libc.mprotect(ctypes.c_void_p(base + i * PAGE), PAGE, 0)
top = (libc.sbrk(0) + 3 * PAGE) & ~(PAGE - 1)                           # brk on a page end
libc.brk(ctypes.c_void_p(top))
at = libc.mmap(ctypes.c_void_p(top), PAGE, 1, MAP_PRIVATE_ANON | MAP_FIXED_NOREPLACE, -1, 0)
info["at_brk"] = [top, at]
libc.mmap(None, 16 * PAGE, 0, MAP_PRIVATE_ANON, -1, 0)                    # PROT_NONE region
ev = threading.Event()
threading.Thread(target=ev.wait, daemon=True).start()                     # stack + guard page
print(json.dumps(info), flush=True)
if cfg.get("leader_exit"):
    libc.syscall(60, 0)           # SYS_exit: only the leader ends, its threads live on
sys.stdin.read()
'''


# ------------------------------------------------------------------------- helpers



def proc_maps_of(pid: int) -> bytes | None:
    """/proc/<pid>/maps, or None when it cannot be read (gone, or hidden: EACCES)."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def state(pid: int) -> bytes:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0]


def wait_zombie(pid: int) -> None:
    deadline = time.monotonic() + 5
    while state(pid) != b"Z":
        assert time.monotonic() < deadline, f"{pid} did not become a zombie"
        time.sleep(0.01)


def diff(want: bytes, got: bytes, n: int = 12) -> str:
    lines = list(difflib.unified_diff(want.decode(errors="replace").splitlines(True),
                                      got.decode(errors="replace").splitlines(True),
                                      "/proc", "iterfs", n=0))
    return "".join(lines[:n]) + (f"... ({len(lines) - n} more diff lines)" if len(lines) > n else "")


def i386_pause_elf(path: str) -> None:
    """A minimal static 32-bit ELF: `for (;;) pause();` through int 0x80 (ia32 emulation)."""
    code = bytes.fromhex("b81d000000" "cd80" "ebf7")   # mov eax, 29; int 0x80; jmp back
    base, ehsize, phsize = 0x08048000, 52, 32
    eh = b"\x7fELF\x01\x01\x01" + b"\0" * 9 + struct.pack(
        "<HHIIIIIHHHHHH", 2, 3, 1, base + ehsize + phsize, ehsize, 0, 0, ehsize, phsize, 1, 0, 0, 0)
    size = ehsize + phsize + len(code)
    ph = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)   # PT_LOAD, R+X
    with open(path, "wb") as f:
        f.write(eh + ph + code)
    os.chmod(path, 0o755)


@dataclasses.dataclass
class Zoo:
    base: str
    shm: str
    overlay: str | None = None
    procs: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def spawn(self, name: str, **cfg) -> None:
        cfg = {"dir": os.path.join(self.base, name), "shm": os.path.join(self.shm, name),
               "many": 2400, "boundary": [proc_maps.PATH_BUF - 1, proc_maps.PATH_BUF],
               "overlay": self.overlay, **cfg}
        os.makedirs(cfg["dir"])
        os.makedirs(cfg["shm"])
        p = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, cwd=self.base)
        self.procs[name] = p
        line = p.stdout.readline()
        assert line.startswith(b"{"), f"{name}: child said {line!r}"
        self.info[name] = json.loads(line)

    def run(self, name: str, argv: list[str]) -> None:
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def close(self) -> None:
        for p in self.procs.values():
            kill(p)


def _mount_overlay(root: str) -> str | None:
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            return None
    dirs = {n: os.path.join(root, n) for n in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        os.makedirs(d)
    with open(os.path.join(dirs["lower"], "ofile"), "w") as f:
        f.write("x" * 4096)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir={lower},upperdir={upper},workdir={work}".format(**dirs),
                    dirs["merged"]], check=True)
    return dirs["merged"]


@pytest.fixture(scope="module")
def zoo():
    base = tempfile.mkdtemp(prefix="iterfs-maps-")
    shm = tempfile.mkdtemp(prefix="iterfs-maps-", dir="/dev/shm")
    z = Zoo(base, shm)
    try:
        z.overlay = _mount_overlay(os.path.join(base, "ovl"))
        z.spawn("zoo")
        z.spawn("leader_exit", many=2, boundary=[], overlay=None, leader_exit=True)
        i386_pause_elf(os.path.join(base, "i386"))
        z.run("i386", [os.path.join(base, "i386")])
        z.run("zombie", ["/bin/sh", "-c", "exit 0"])
        wait_zombie(z.pid("zombie"))
        wait_zombie(z.pid("leader_exit"))
        yield z
    finally:
        z.close()
        if z.overlay:
            subprocess.run(["umount", "-l", z.overlay], check=False)
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def btf():
    return BTF.vmlinux()


@pytest.fixture(scope="module")
def maps_prog(btf):
    """The maps program loaded once; read(pid) links it with pid= and reads one session —
    what the daemon does at each open, and what catalog.read_once does minus the load
    (~0.3 s), so that the hundred processes of the system fit in a few seconds."""
    prog = MAPS.build(btf).load(btf=btf)

    def read(pid: int) -> bytes:
        with link_iterator(prog, pid=pid) as link, link.new_iter() as fd:
            return read_all(fd.fd)
    try:
        yield read
    finally:
        prog.close()


# ------------------------------------------------------------------------- maps

def test_spec():
    assert MAPS.path == "maps" and MAPS.target == "task_vma" and MAPS.per == "pid"
    assert MAPS.ptrace and MAPS.mode == 0o444   # /proc/<pid>/maps: 0444 + PTRACE_MODE_READ


def test_vsyscall_line_is_the_kernels():
    """The gate VMA's line is built in Python from the vsyscall mode: it must be the one
    /proc prints for a 64-bit process."""
    with open("/proc/self/maps") as f:
        gate = [ln for ln in f if ln.rstrip().endswith("[vsyscall]")]
    assert gate == ([proc_maps.vsyscall_line()] if proc_maps.vsyscall_line() else [])


def test_zoo_byte_for_byte(zoo, btf):
    """The zoo child through catalog.read_once (build, load, link pid=, read) equals
    /proc/<pid>/maps exactly, and /proc really shows every kind of line the zoo is for."""
    pid, info = zoo.pid("zoo"), zoo.info["zoo"]
    before = proc_maps_of(pid)
    got = catalog.read_once(MAPS, btf, pid=pid)
    after = proc_maps_of(pid)
    assert before == after, "the blocked child's mappings changed"
    assert got == before, diff(before, got)

    text = before.decode("utf-8", "surrogateescape")
    lines = text.split("\n")[:-1]
    names = [ln[73:] if len(ln) > 73 else "" for ln in lines]
    d = os.path.join(zoo.base, "zoo")
    for want in ([f"{d}/deleted (deleted)", f"{d}/new\\012line and  spaces ",
                  f"{d}/gone\\012nl (deleted)", "/dev/zero (deleted)",
                  "/memfd:iterfs maps (deleted)", "/SYSV00000000 (deleted)",
                  "[heap]", "[stack]", "[vdso]", "[vvar]", "[vsyscall]"]
                 + [os.fsdecode(p) for p in info["boundary"]]):
        assert want in names, f"/proc shows no {want!r}"
    assert f"{d}/back\\slash\ttab\xe9" in names                    # only "\n" is escaped
    long = [n for n in names if n.endswith("/long") or "/long\\012nl del (deleted)" in n
            or n.endswith("z" * 200)]
    assert len(long) == 3 and all(len(n) > proc_maps.PATH_BUF for n in long), long
    assert len(lines) > 2000
    assert any(" ---p " in ln for ln in lines)                     # guard regions
    assert any(ln.endswith(" 0 ") for ln in lines)                 # no name, no padding
    # the VMA starting exactly at brk is not [heap] (vm_start < brk is strict)
    top, at = info["at_brk"]
    assert at == top
    at_line = next(ln for ln in lines if int(ln.split("-")[0], 16) == top)
    assert at_line.endswith(" 0 "), at_line
    if zoo.overlay:
        ofile = next(ln for ln in lines if ln.endswith(zoo.overlay + "/ofile"))
        assert os.stat(os.path.join(zoo.overlay, "ofile")).st_ino == int(ofile.split()[4])
    # [anon:...] only exists with CONFIG_ANON_VMA_NAME: the program has the rule exactly
    # when the BTF has vm_area_struct.anon_name
    has_anon = proc_maps._has_member(btf, "vm_area_struct", "anon_name")
    if info["anon_name_errno"] == 0:
        assert has_anon and "[anon:iterfs anon]" in names
    else:
        assert info["anon_name_errno"] == 22 and not has_anon   # EINVAL: not configured


def test_path_buffer_boundary(zoo):
    """Paths of PATH_BUF - 1 bytes come from bpf_d_path, PATH_BUF bytes from the walk by
    hand: both as /proc prints them (checked in test_zoo_byte_for_byte); here only that the
    zoo really straddles the boundary."""
    a, b = zoo.info["zoo"]["boundary"]
    assert (len(os.fsencode(a)), len(os.fsencode(b))) == (proc_maps.PATH_BUF - 1, proc_maps.PATH_BUF)


def test_32bit_process(zoo, maps_prog):
    """An ia32 process: no MM_CONTEXT_HAS_VSYSCALL, so no [vsyscall] line; 8-digit addresses
    make the padding wider."""
    pid = zoo.pid("i386")
    want = proc_maps_of(pid)
    got = maps_prog(pid)
    assert got == want, diff(want, got)
    assert b"[vsyscall]" not in got and b"[stack]" in got and b"[vdso]" in got
    assert re.match(rb"08048000-08049000 r-xp 00000000 ", got)


def test_zombie_and_exited_leader(zoo, maps_prog):
    """No mm on the leader: /proc/<pid>/maps is empty (proc_mem_open takes the leader's
    mm), and so is the iterator's (other threads' walks are not printed)."""
    for name in ("zombie", "leader_exit"):
        pid = zoo.pid(name)
        assert proc_maps_of(pid) == b"", name
        assert maps_prog(pid) == b"", name
    # the exited leader's threads still have the mm
    tids = [int(t) for t in os.listdir(f"/proc/{zoo.pid('leader_exit')}/task")]
    assert any(proc_maps_of(t) for t in tids if t != zoo.pid("leader_exit"))


def bracketed(before: bytes, got: bytes, after: bytes) -> str:
    """"" when got is acceptable: equal to a /proc read, or differing only in lines that
    differ between the two /proc reads (and in /proc's address order). Else the diff."""
    if got in (before, after):
        return ""
    b, a, g = (x.splitlines(keepends=True) for x in (before, after, got))
    stable, seen = set(b) & set(a), set(b) | set(a)
    missing = [ln for ln in b if ln in stable and ln not in set(g)]
    extra = [ln for ln in g if ln not in seen]
    starts = [int(ln.split(b"-")[0], 16) for ln in g]
    if not missing and not extra and starts == sorted(starts):
        return ""
    return (f"missing {missing[:3]}, extra {extra[:3]}\n" + diff(before, got)
            + "\n/proc before→after:\n" + diff(before, after))


def test_every_process(zoo, maps_prog):
    hidden = procfs.hidden_tids()
    checked, moving, failures = set(), [], []
    for pid in sorted(int(n) for n in os.listdir("/proc") if n.isdigit()):
        for _ in range(3):   # a process whose mappings change while we look gets 3 tries
            before = proc_maps_of(pid)
            got = maps_prog(pid)
            after = proc_maps_of(pid)
            if before is None or after is None:
                if pid in hidden:          # EACCES even for root; the task iterator skips it
                    assert got == b"", pid
                why = "gone or hidden"
                break
            why = bracketed(before, got, after)
            if not why:
                break
        else:
            failures.append(f"pid {pid}: {why}")
            continue
        if before is not None and after is not None:
            checked.add(pid)
            if before != after:
                moving.append(pid)
    assert not failures, "\n\n".join(failures)
    assert {zoo.pid("zoo"), zoo.pid("i386"), os.getpid()} <= checked
    print(f"{len(checked)} processes equal; changed between the /proc reads: {moving}")


def test_read_across_many_buffers(zoo, maps_prog):
    """> 2000 VMAs: ~130 KiB through the 32 KiB seq buffer, so many VMAs are shown twice
    (overflow → retried at the next read()); small read() sizes change nothing."""
    pid = zoo.pid("zoo")
    want = proc_maps_of(pid)
    prog = MAPS.build(BTF.vmlinux()).load()
    try:
        with link_iterator(prog, pid=pid) as link, link.new_iter() as fd:
            parts = []
            while chunk := os.read(fd.fd, 4096):
                parts.append(chunk)
    finally:
        prog.close()
    assert len(want) > 3 * 32768
    assert b"".join(parts) == want, diff(want, b"".join(parts))


# ------------------------------------------------------------------------- psutil

def fake_procfs(root: str, pid: int, smaps: bytes) -> None:
    """root/<pid>/smaps = smaps; everything else a symlink into /proc."""
    for name in os.listdir("/proc"):
        if name != str(pid):
            os.symlink(f"/proc/{name}", os.path.join(root, name))
    os.makedirs(os.path.join(root, str(pid)))
    for name in os.listdir(f"/proc/{pid}"):
        if name not in ("smaps", "maps"):
            os.symlink(f"/proc/{pid}/{name}", os.path.join(root, str(pid), name))
    with open(os.path.join(root, str(pid), "smaps"), "wb") as f:
        f.write(smaps)


def splice(smaps: bytes, maps: bytes) -> bytes:
    """smaps with each VMA's header line (show_map_vma's line, the very line maps prints)
    replaced by the given maps line, in order."""
    lines, heads = smaps.split(b"\n"), iter(maps.split(b"\n"))
    is_head = re.compile(rb"^[0-9a-f]+-[0-9a-f]+ ")
    out = [next(heads) if is_head.match(ln) else ln for ln in lines]
    assert next(heads) == b"", "more maps lines than smaps VMAs"
    return b"\n".join(out)


def memory_maps(procfs_path: str, pid: int) -> list:
    old = psutil.PROCFS_PATH
    psutil.PROCFS_PATH = procfs_path
    try:
        return psutil.Process(pid).memory_maps(grouped=False)
    finally:
        psutil.PROCFS_PATH = old


def test_psutil_memory_maps(zoo, maps_prog):
    """psutil's memory_maps() parses /proc/<pid>/smaps, whose per-VMA header lines are
    show_map_vma's (the maps lines). psutil pointed (PROCFS_PATH) at a directory whose
    <pid>/smaps carries iterfs's maps lines must return what it returns for /proc: the same
    snapshot of the counters spliced under both, compared in full, and the addresses,
    permissions and paths also against psutil on the live /proc."""
    pid = zoo.pid("zoo")
    with open(f"/proc/{pid}/smaps", "rb") as f:
        smaps = f.read()
    with tempfile.TemporaryDirectory(prefix="iterfs-psutil-") as tmp:
        ours, theirs = os.path.join(tmp, "iterfs"), os.path.join(tmp, "proc")
        os.mkdir(ours)
        os.mkdir(theirs)
        fake_procfs(ours, pid, splice(smaps, maps_prog(pid)))
        fake_procfs(theirs, pid, smaps)
        got, want = memory_maps(ours, pid), memory_maps(theirs, pid)
    assert len(got) > 2000
    assert got == want
    live = memory_maps("/proc", pid)
    assert [(m.addr, m.perms, m.path) for m in got] == [(m.addr, m.perms, m.path) for m in live]
    assert any(m.path.endswith("/long") and len(m.path) > proc_maps.PATH_BUF for m in got)


# ------------------------------------------------------------------------- kallsyms

def proc_kallsyms(unprivileged: bool = False) -> bytes:
    if not unprivileged:
        with open("/proc/kallsyms", "rb") as f:
            return f.read()
    # as nobody: no CAP_SYSLOG (python lives under /root, so cat)
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "cat", "/proc/kallsyms"], check=True, capture_output=True).stdout


def split_bpf(data: bytes) -> tuple[list[bytes], collections.Counter]:
    """(the lines that are not BPF programs' symbols, in order; the "[bpf]" lines)."""
    rest, bpf = [], collections.Counter()
    for ln in data.splitlines(keepends=True):
        (bpf.update([ln]) if ln.endswith(b"\t[bpf]\n") else rest.append(ln))
    return rest, bpf


def check_kallsyms(before: bytes, got: bytes, after: bytes) -> list[bytes]:
    """got equals a /proc read except for "[bpf]" lines that came or went between the two
    /proc reads; returns those lines. Justification: a BPF program's symbol lives exactly as
    long as the program, and other processes (other tests, the daemon, systemd) load and
    unload programs at any time; every other symbol (core kernel, modules — this VM boots
    with `nomodule` —, ftrace trampolines) is fixed while no module is loaded."""
    if got in (before, after):
        return []
    (rb, bb), (rg, bg), (ra, ba) = split_bpf(before), split_bpf(got), split_bpf(after)
    assert rg == rb == ra, diff(before, got)
    low, high = bb & ba, bb | ba
    assert not (low - bg) and not (bg - high), \
        f"[bpf] lines beyond the bracket: missing {list(low - bg)}, extra {list(bg - high)}"
    return sorted((bb ^ ba).elements())


def read_spec(spec: catalog.IterSpec, btf, unprivileged: bool = False):
    """Load the program first (its own [bpf] symbol must be in all three reads), then
    /proc, the iterator, /proc."""
    build = spec.unprivileged if unprivileged else spec.build
    prog = build(btf).load(btf=btf)
    try:
        with link_iterator(prog) as link:
            for _ in range(3):
                before = proc_kallsyms(unprivileged)
                with link.new_iter() as fd:
                    got = read_all(fd.fd)
                after = proc_kallsyms(unprivileged)
                if before == after:
                    break
            return before, got, after
    finally:
        prog.close()


def test_kallsyms_as_root(btf):
    before, got, after = read_spec(KALLSYMS, btf)
    came_and_went = check_kallsyms(before, got, after)
    print(f"{len(got.splitlines())} lines; [bpf] lines that came or went: {came_and_went}")
    assert got.count(b"\n") > 10000
    assert not got.startswith(b"0000000000000000")      # root sees the addresses here
    assert re.search(rb"\n[0-9a-f]{16} [tT] bpf_prog_[0-9a-f]{16}_kallsyms\t\[bpf\]\n", got)
    # the stale final call (the last symbol again, as "[__builtin__kprobes]") is not printed
    assert b"[__builtin__kprobes]" not in got or b"[__builtin__kprobes]" in before


def test_kallsyms_zeroed_as_nobody(btf):
    """The unprivileged variant against /proc/kallsyms read by `cat` as nobody (no
    CAP_SYSLOG). shows_values(False) says which variant such a reader must get."""
    want_zeroed = not kallsyms.shows_values(cap_syslog=False)
    before, got, after = read_spec(KALLSYMS, btf, unprivileged=want_zeroed)
    check_kallsyms(before, got, after)
    if want_zeroed:
        assert set(re.findall(rb"(?m)^([0-9a-f]{16}) ", got)) == {b"0" * 16}


def test_shows_values():
    with open("/proc/sys/kernel/kptr_restrict") as f:
        restrict = int(f.read())
    assert kallsyms.shows_values(cap_syslog=True) == (restrict < 2)
    nobody = proc_kallsyms(unprivileged=True)
    assert kallsyms.shows_values(cap_syslog=False) == (not nobody.startswith(b"0" * 16))


@pytest.mark.parametrize("long_name_min,chunk", [(1, 16), (20, 8)])
def test_kallsyms_long_name_path(btf, long_name_min, chunk):
    """Names >= LONG_NAME bytes (beyond bpf_seq_printf's 512-byte argument buffer) are
    written in pieces; no symbol of this kernel is that long, so a lower threshold sends
    (nearly) every symbol down that path, which must print the same file."""
    build = functools.partial(kallsyms._build, zeroed=False, long_name_min=long_name_min, chunk=chunk)
    spec = dataclasses.replace(KALLSYMS, build=build, unprivileged=None)
    check_kallsyms(*read_spec(spec, btf))
