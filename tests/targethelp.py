"""Shared utilities for tests/test_targets.py: running an IterProgram to EOF, builder gaps
(typed helper calls, seq_write of a register), and independent readers of /proc.

Nothing here reads iterfs's own output: the /proc readers are the independent side of every
comparison.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import subprocess
import sys
import time

from conftest import kill
from iterfs import asm, syscall
from iterfs.dsl.program import IterProgram
from iterfs.programs import read_all, with_iterator


# --------------------------------------------------------------------- running programs

def run(p: IterProgram, default_action: str = "continue", **params) -> str:
    """Build, load, link (with iterator parameters), read to EOF, close everything."""
    spec = p.build(default_action)
    with load(spec) as prog, with_iterator(prog, **params) as it:
        return it.read().decode()


def load(spec):
    """spec.load(), except that a refusal this kernel gives every program of the target
    (see require_loadable) turns into an xfail with the reason."""
    try:
        return spec.load()
    except syscall.BPFError as e:
        if e.errno == errno.EPERM:
            require_loadable(spec.target)
        raise


@contextlib.contextmanager
def opened(p: IterProgram, default_action: str = "continue", **params):
    """Load and link the program; yields read(): a fresh iterator session read to EOF.
    (For checks whose independent side must see the program's own BPF objects.)"""
    spec = p.build(default_action)
    with load(spec) as prog, with_iterator(prog, **params) as it:
        first = [it]

        def read() -> str:
            if first:
                return first.pop().read().decode()
            with syscall.Fd(it.link.new_iter().detach()) as fd:
                return read_all(fd.fd).decode()
        yield read


def lines(text: str) -> list[list[str]]:
    return [ln.split() for ln in text.splitlines() if ln.strip()]


def require_loadable(target: str) -> None:
    """xfail (with the reason) when this kernel refuses even `r0 = 0; exit` for `target`.

    On this VM BPF_PROG_LOAD fails with EPERM, before the verifier looks at a single
    instruction ("processed 0 insns"), for exactly the three targets whose context holds
    PTR_TO_BUF map memory: bpf_map_elem, bpf_sk_storage_map and sockmap; as root with every
    capability, no LSM, no lockdown. Mainline 6.18 has no EPERM on that path
    (check_attach_btf_id → bpf_iter_prog_supported returns 0/-EINVAL/-ENOMEM): the kernel
    is patched, like the one that hides pid 1 from the task iterator. Anything other than
    EPERM is a real failure."""
    from iterfs.programs import load_iterator_program
    try:
        load_iterator_program(asm.assemble([asm.mov("r0", 0), asm.exit_insn()]), target).close()
    except syscall.BPFError as e:
        if e.errno == errno.EPERM:
            import pytest
            pytest.xfail(f"this kernel refuses every {target} iterator program with EPERM "
                         f"(even `r0 = 0; exit`): {e}")
        raise


def map_create_btf(map_type: int, key_size: int, value_size: int, max_entries: int, *,
                   flags: int = 0, name: str = "", btf_fd: int = 0, key_type_id: int = 0,
                   value_type_id: int = 0) -> syscall.Fd:
    return syscall.map_create(map_type, key_size, value_size, max_entries, flags=flags, name=name,
                              btf_fd=btf_fd, btf_key_type_id=key_type_id,
                              btf_value_type_id=value_type_id)


# --------------------------------------------------------------------- /proc readers

def proc_pids() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def proc_task_tids(pid: int) -> set[int]:
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    except FileNotFoundError:
        return set()


def proc_all_tids() -> set[int]:
    out: set[int] = set()
    for pid in proc_pids():
        out |= proc_task_tids(pid)
    return out


def pidns_hidden_tids() -> set[int]:
    """Threads the kernel hides even from root (see procfs.hidden_tids)."""
    import procfs
    return procfs.hidden_tids()


def proc_maps_ranges(pid: int) -> list[tuple[int, int, str]]:
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for ln in f:
            parts = ln.split(maxsplit=5)
            lo, hi = parts[0].split("-")
            out.append((int(lo, 16), int(hi, 16), parts[5].strip() if len(parts) > 5 else ""))
    return out


def proc_net_inodes(*names: str, column: str = "inode") -> set[int]:
    """Non-zero values of the inode column of /proc/net/<name> files (header-located)."""
    out: set[int] = set()
    for name in names:
        with open(f"/proc/net/{name}") as f:
            header = f.readline().split()
            # tcp/udp headers split "tm->when" and "timeout inode" like their records do,
            # except that "tx_queue rx_queue" is one record column and "tr tm->when" another
            rows = [ln.split() for ln in f if ln.strip()]
        idx = _inode_index(name, header)
        for r in rows:
            ino = int(r[idx])
            if ino:
                out.add(ino)
    return out


def _inode_index(name: str, header: list[str]) -> int:
    if name in ("tcp", "tcp6", "udp", "udp6"):
        return 9  # sl local rem st tx:rx tr:tm retrnsmt uid timeout inode
    if name == "unix":
        return 6  # Num RefCount Protocol Flags Type St Inode [Path]
    if name == "netlink":
        return header.index("Inode")
    raise ValueError(name)


def bracket(proc_read, iter_read, *, tries: int = 5):
    """(before, iterated, after) with before == after if the system held still for one of
    `tries` attempts; the caller asserts exact equality then, bounds otherwise (and a
    warning says the exact check could not be made)."""
    for _ in range(tries):
        before = proc_read()
        got = iter_read()
        after = proc_read()
        if before == after:
            return before, got, after
    import warnings
    warnings.warn(f"{getattr(proc_read, '__name__', proc_read)}: the system changed during "
                  f"each of {tries} reads; only bounds were checked, not equality")
    return before, got, after


# --------------------------------------------------------------------- child processes

_THREADS_CHILD = r"""
import sys, threading
n = int(sys.argv[1])
ev = threading.Event()
ts = [threading.Thread(target=ev.wait, daemon=True) for _ in range(n)]
for t in ts: t.start()
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.read()
"""


@contextlib.contextmanager
def threaded_child(nthreads: int):
    """A python child with 1 + nthreads threads, blocked until the context ends."""
    proc = subprocess.Popen([sys.executable, "-c", _THREADS_CHILD, str(nthreads)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 5
        while len(proc_task_tids(proc.pid)) != nthreads + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        yield proc
    finally:
        kill(proc)


def u32(x: int) -> bytes:
    return struct.pack("<I", x)
