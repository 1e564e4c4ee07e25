"""Iterator programs on the running kernel: load (verifier log), rodata maps, links, iterator fds, pins."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
import re
import struct

from . import asm, syscall
from .btf import BTF, BTFNotFound
from .syscall import BPFError, Fd

__all__ = [
    "Program", "Link", "BpfIterator", "VerifierError", "UnknownTarget",
    "load_iterator_program", "rodata_map", "array_map", "link_iterator", "iter_info",
    "create_iterator", "close_iterator", "with_iterator", "read_all",
    "ensure_bpffs", "check_pin_root", "on_bpffs", "BpffsError", "pin", "unpin",
    "target_name", "BPFFS",
]

BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_ITER = 28
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_LRU_HASH = 1, 2, 9
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_SLEEPABLE = 1 << 4  # may fault user memory in (bpf_copy_from_user_task); task targets

# Programs are pure bytecode: they reach their maps by index (ld_imm64 with src
# BPF_PSEUDO_MAP_IDX / _IDX_VALUE) and the loader passes fd_array. The indices are fixed:
MAP_RODATA = 0   # frozen read-only array: format strings and constants
MAP_STOPPED = 1  # LRU hash session_id -> 1: sessions that asked to stop (iter_return_stop)
MAP_PERCPU = 2   # one-entry per-CPU array: its per-CPU addresses give each CPU's offset
MAP_SESSION = 3  # LRU hash session_id -> u64[8]: per-session state (counters, last seq_num)
STOPPED_ENTRIES = 4096
SESSION_VALUE = 64
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPFFS = "/sys/fs/bpf"

_LOG_START, _LOG_MAX = 1 << 16, 1 << 26
_LOG_TAIL = 8


def target_name(target: str) -> str:
    """Kernel spelling of an iterator target: "task-file" → "task_file"."""
    return target.replace("-", "_")


class UnknownTarget(LookupError):
    def __init__(self, target: str):
        self.target = target
        super().__init__(f"the running kernel has no BPF iterator target '{target}' "
                         f"(no BTF FUNC bpf_iter_{target}; needs a newer kernel or that subsystem)")


# the verifier's closing statistics: they say nothing about why a program was refused
_LOG_STATS = re.compile(r"^(processed \d+ insns|verification time |stack depth |"
                        r"max_states_per_insn )")


class VerifierError(BPFError):
    """The verifier rejected a program. `log` holds the whole verifier log; the message
    (one line) is its last lines, which say why, without the closing statistics."""

    def __init__(self, cmd, err: int, log: str, name: str, truncated: bool = False):
        self.log = log
        lines = [" ".join(ln.split()) for ln in log.rstrip("\n").splitlines() if ln.strip()]
        while lines and _LOG_STATS.match(lines[-1]):
            lines.pop()
        tail = lines[-_LOG_TAIL:]
        omitted = len(lines) - len(tail)
        why = " | ".join(tail) if tail else f"no verifier log ({os.strerror(err)})"
        super().__init__(cmd, err, why)
        # not "bpf(PROG_LOAD): Permission denied": EACCES here is the verifier's verdict on
        # the program, not a missing privilege
        self.strerror = (f"the verifier rejected {name}: {why}"
                         + (f" ({omitted} earlier log lines omitted)" if omitted else "")
                         + (" (log truncated)" if truncated else "")
                         + " — fix the program (iterfs disasm PATH lists it in the "
                           "verifier's notation)")


class _OwnsFd:
    """close() and the context manager for objects owning one kernel fd in `fd`."""

    def close(self) -> None:
        self.fd.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclasses.dataclass(eq=False)
class Program(_OwnsFd):
    """A loaded iterator program: its fd, target and the bytecode it was loaded from."""
    fd: Fd
    target: str
    name: str
    insns: bytes = dataclasses.field(repr=False)
    attach_btf_id: int
    log: str = dataclasses.field(default="", repr=False)
    rodata: bytes = dataclasses.field(default=b"", repr=False)


    @property
    def id(self) -> int:
        return syscall.prog_info(self.fd.fd).id


def _btf(btf: BTF | None) -> BTF:
    return btf if btf is not None else BTF.vmlinux()


def attach_btf_id(target: str, btf: BTF | None = None) -> int:
    try:
        return _btf(btf).iter_target_id(target_name(target))
    except BTFNotFound:
        raise UnknownTarget(target_name(target)) from None


def load_iterator_program(bytecode: bytes, target: str, *, license: str = "GPL",
                          prog_name: str | None = None, log_level: int = 0,
                          btf: BTF | None = None, rodata: bytes | None = None,
                          sleepable: bool = False) -> Program:
    """BPF_PROG_LOAD as BPF_PROG_TYPE_TRACING / BPF_TRACE_ITER, attach_btf_id from BTF.

    Maps the bytecode names by index (MAP_RODATA, MAP_STOPPED) are created here, passed in
    fd_array, and owned by the program from then on. On rejection the load is retried with a
    verifier log (growing the buffer on ENOSPC) and VerifierError carries it."""
    target = target_name(target)
    btf_id = attach_btf_id(target, btf)
    name = prog_name or f"iterfs_{target}"[:15]
    if len(bytecode) % 8 or not bytecode:
        raise ValueError(f"bytecode for {name}: {len(bytecode)} bytes is not a whole number of instructions")
    with contextlib.ExitStack() as maps:
        fd_array = _map_fds(bytecode, rodata, name, maps)
        prog = _load(bytecode, target, btf_id, name, license, log_level, fd_array,
                     BPF_F_SLEEPABLE if sleepable else 0)
    prog.rodata = rodata or b""
    return prog


def _map_fds(bytecode: bytes, rodata: bytes | None, name: str, maps: contextlib.ExitStack) -> list[int]:
    used = {i.imm & 0xFFFFFFFF for i in asm.decode(bytecode)
            if i.slots == 2 and i.src in (asm.PseudoSrc.MAP_IDX, asm.PseudoSrc.MAP_IDX_VALUE)}
    if not used:
        return []
    if used - {MAP_RODATA, MAP_STOPPED, MAP_PERCPU, MAP_SESSION}:
        raise ValueError(f"{name}: bytecode refers to unknown map index {sorted(used)}")
    fds = [0, 0, 0, 0]
    if MAP_RODATA in used:
        if not rodata:
            raise ValueError(f"{name}: bytecode reads rodata but none was given")
        fds[MAP_RODATA] = maps.enter_context(rodata_map(rodata)).fd
    if MAP_STOPPED in used:
        fds[MAP_STOPPED] = maps.enter_context(
            syscall.map_create(BPF_MAP_TYPE_LRU_HASH, 8, 8, STOPPED_ENTRIES, name="stopped")).fd
    if MAP_PERCPU in used:
        fds[MAP_PERCPU] = maps.enter_context(syscall.map_create(
            BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, flags=BPF_F_RDONLY_PROG, name="percpu")).fd
    if MAP_SESSION in used:
        fds[MAP_SESSION] = maps.enter_context(syscall.map_create(
            BPF_MAP_TYPE_LRU_HASH, 8, SESSION_VALUE, STOPPED_ENTRIES, name="session")).fd
    return fds[:max(used) + 1]


def _load(bytecode, target, btf_id, name, license, log_level, fd_array, flags) -> Program:
    def load(level: int, buf) -> Fd:
        return syscall.prog_load(prog_type=BPF_PROG_TYPE_TRACING, insns=bytecode, license=license,
                                 expected_attach_type=BPF_TRACE_ITER, attach_btf_id=btf_id,
                                 prog_name=_safe_name(name), log_level=level, log_buf=buf,
                                 fd_array=fd_array, prog_flags=flags)

    size = _LOG_START
    level = log_level
    interrupted = 0
    while True:
        buf = ctypes.create_string_buffer(size) if level else None
        try:
            fd = load(level, buf)
        except BPFError as e:
            if e.errno == errno.EPERM:
                raise
            if e.errno == errno.EAGAIN and interrupted < 5:  # a signal stopped the verifier
                interrupted += 1
                continue
            if buf is None:  # no log asked for: retry once with one
                level = 1
                continue
            log = buf.value.decode(errors="replace")
            if e.errno == errno.ENOSPC and size < _LOG_MAX:
                size *= 4
                continue
            raise VerifierError(syscall.Cmd.PROG_LOAD, e.errno, log, name,
                                truncated=e.errno == errno.ENOSPC) from None
        log = buf.value.decode(errors="replace") if buf is not None else ""
        return Program(fd=fd, target=target, name=name, insns=bytes(bytecode),
                       attach_btf_id=btf_id, log=log)


def _safe_name(name: str) -> str:
    # the kernel accepts [A-Za-z0-9_.] in object names
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)[:15]


def array_map(values: list[bytes], *, name: str = "", flags: int = 0, freeze: bool = False) -> Fd:
    """An array map holding `values` (all padded to the longest), optionally frozen."""
    size = max(len(v) for v in values) if values else 1
    fd = syscall.map_create(BPF_MAP_TYPE_ARRAY, 4, max(size, 1), max(len(values), 1),
                            flags=flags, name=_safe_name(name))
    try:
        for i, v in enumerate(values):
            syscall.map_update_elem(fd.fd, struct.pack("<I", i), v.ljust(size, b"\0"))
        if freeze:
            syscall.map_freeze(fd.fd)
    except BaseException:
        fd.close()
        raise
    return fd


def rodata_map(data: bytes, *, name: str = "rodata") -> Fd:
    """A one-element, program-read-only, frozen array map: what bpf_seq_printf accepts as fmt."""
    return array_map([data], name=name, flags=BPF_F_RDONLY_PROG, freeze=True)


def iter_info(*, map_fd: int = 0, tid: int = 0, pid: int = 0, pid_fd: int = 0,
              cgroup_fd: int = 0, cgroup_id: int = 0, order: int = 0) -> bytes:
    """union bpf_iter_link_info: map {map_fd}; cgroup {order, cgroup_fd, cgroup_id};
    task {tid, pid, pid_fd}. Empty when no parameter is given."""
    if map_fd:
        return struct.pack("<I", map_fd)
    if cgroup_fd or cgroup_id or order:
        return struct.pack("<IIQ", order, cgroup_fd, cgroup_id)
    if tid or pid or pid_fd:
        return struct.pack("<III", tid, pid, pid_fd)
    return b""


@dataclasses.dataclass(eq=False)
class Link(_OwnsFd):
    """An iterator link: every new_iter() is a fresh iteration session."""
    fd: Fd
    target: str
    prog: Program | None = None

    def new_iter(self) -> Fd:
        return syscall.iter_create(self.fd.fd)

    def update(self, prog: Program) -> None:
        """Swap the program behind this link (BPF_LINK_UPDATE; same target)."""
        if target_name(prog.target) != self.target:
            raise ValueError(f"cannot swap a {prog.target} program into a {self.target} link")
        syscall.link_update(self.fd.fd, prog.fd.fd)
        self.prog = prog

    @property
    def id(self) -> int:
        return syscall.link_info(self.fd.fd)[0].id



def _fdnum(x) -> int:
    return x.fileno() if hasattr(x, "fileno") else int(x or 0)


def link_iterator(prog: Program, **params) -> Link:
    """BPF_LINK_CREATE for an iterator program; params: map_fd, tid, pid, pid_fd,
    cgroup_fd, cgroup_id, order (ints or objects with fileno())."""
    fields = {k: _fdnum(v) for k, v in params.items() if v is not None}
    unknown = set(fields) - {"map_fd", "tid", "pid", "pid_fd", "cgroup_fd", "cgroup_id", "order"}
    if unknown:
        raise TypeError(f"unknown iterator parameter(s): {', '.join(sorted(unknown))}")
    try:
        fd = syscall.link_create(prog.fd.fd, BPF_TRACE_ITER, iter_info=iter_info(**fields))
    except BPFError as e:
        if e.errno == errno.EINVAL:
            raise BPFError(e.cmd, e.errno,
                           f"the kernel refused an iterator link for target '{prog.target}' "
                           f"with parameters {fields or 'none'} (kernel ≥ 5.8 with BTF needed; "
                           f"parameters must suit the target)") from None
        raise
    return Link(fd=fd, target=prog.target, prog=prog)


@dataclasses.dataclass(eq=False)
class BpfIterator:
    """The seed's BpfIterator: prog, link_fd, iter_fd, iter_type (fd numbers)."""
    prog: Program
    link: Link
    iter: Fd
    iter_type: str

    @property
    def link_fd(self) -> int:
        return self.link.fd.fd

    @property
    def iter_fd(self) -> int:
        return self.iter.fd

    def read(self) -> bytes:
        return read_all(self.iter.fd)

    def close(self) -> None:
        self.iter.close()
        self.link.close()


def create_iterator(prog: Program, *, iter_type: str | None = None, **params) -> BpfIterator:
    """Link `prog` and open one iterator fd (the caller closes it with close_iterator)."""
    it_type = target_name(iter_type or prog.target)
    if it_type != prog.target:
        raise ValueError(f"iter_type '{it_type}' does not match the program's target '{prog.target}'")
    link = link_iterator(prog, **params)
    try:
        fd = link.new_iter()
    except BaseException:
        link.close()
        raise
    return BpfIterator(prog=prog, link=link, iter=fd, iter_type=it_type)


def close_iterator(it: BpfIterator) -> None:
    it.close()


@contextlib.contextmanager
def with_iterator(prog: Program, *, iter_type: str | None = None, **params):
    it = create_iterator(prog, iter_type=iter_type, **params)
    try:
        yield it
    finally:
        close_iterator(it)


def read_all(fd: int, chunk: int = 1 << 20) -> bytes:
    """Read an iterator fd to EOF (EAGAIN means the program returned 1: retry the object)."""
    parts = []
    while True:
        try:
            b = os.read(fd, chunk)
        except OSError as e:
            raise OSError(e.errno, f"reading iterator: {os.strerror(e.errno)}") from None
        if not b:
            return b"".join(parts)
        parts.append(b)


# --- bpffs ---

class BpffsError(OSError):
    """bpffs is missing or a pin path is not on it: one line that says what to do."""

    def __str__(self) -> str:
        return self.strerror


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _mount_of(path: str) -> tuple[str, str]:
    """(mount point, fstype) of the mount that holds path, or would hold it once created
    (the nearest existing ancestor decides), as this process's /proc/self/mountinfo says."""
    p = os.path.realpath(path)
    while not os.path.exists(p) and p != "/":
        p = os.path.dirname(p)
    best = ("", "")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = _unescape(fields[4])
            fstype = fields[fields.index("-") + 1]
            inside = p == mp or p.startswith(mp.rstrip("/") + "/")
            if inside and len(mp) >= len(best[0]):  # later lines stack on earlier ones
                best = (mp, fstype)
    return best


def _bpffs_mounted(root: str) -> bool:
    return _mount_of(root) == (os.path.realpath(root), "bpf")


def on_bpffs(path: str) -> bool:
    """Whether path is (or, created, would be) on a bpf filesystem."""
    return _mount_of(path)[1] == "bpf"


def check_pin_root(root: str) -> None:
    """Refuse a pin root whose tree iterfs could not own: one outside bpffs (pins cannot
    live there, and clearing stale pins would delete the files of whatever directory it
    is) or the root of a bpffs (other tools' pins live there)."""
    mp, fstype = _mount_of(root)
    if fstype != "bpf":
        raise BpffsError(errno.EXDEV, f"pin root {root} is not on a bpf filesystem (it is on "
                                      f"{fstype or 'nothing'} at {mp or '?'}): pins live in bpffs; "
                                      f"give a directory of its own under {BPFFS}, e.g. "
                                      f"{BPFFS}/iterfs")
    if os.path.realpath(root) == mp:
        raise BpffsError(errno.EBUSY, f"pin root {root} is the root of a bpf filesystem, where "
                                      f"other tools pin their objects: give iterfs a directory of "
                                      f"its own, e.g. {mp.rstrip('/')}/iterfs")


def ensure_bpffs(root: str = BPFFS) -> None:
    """Mount bpffs at root unless a bpffs is already there."""
    if _bpffs_mounted(root):
        return
    os.makedirs(root, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", os.fsencode(root), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise BpffsError(err, f"no bpffs at {root}, and mounting one failed: {os.strerror(err)} "
                              f"(mounting needs CAP_SYS_ADMIN: run as root, or mount it first: "
                              f"mount -t bpf bpf {root})")


def pin(fd, path: str) -> None:
    """Pin a BPF object at path, creating directories and replacing a stale pin."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        syscall.obj_pin(_fdnum(fd), path)
    except BPFError as e:
        if e.errno == errno.EPERM and not on_bpffs(path):  # the kernel's answer off bpffs
            raise BpffsError(errno.EPERM, f"cannot pin {path}: not on a bpf filesystem (pins "
                                          f"live in bpffs, e.g. under {BPFFS})") from None
        raise


def unpin(path: str, *, prune_to: str | None = None) -> None:
    """Remove a pin; with prune_to, also remove directories left empty up to (not incl.) it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    if prune_to is None:
        return
    stop = os.path.abspath(prune_to)
    d = os.path.dirname(os.path.abspath(path))
    while d.startswith(stop + os.sep):
        try:
            os.rmdir(d)
        except OSError:
            break
        d = os.path.dirname(d)
