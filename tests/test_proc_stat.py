"""<pid>/stat and <pid>/task/<tid>/stat (iterators/proc_stat.py) against the kernel's own
/proc, byte for byte.

Every process (and every thread) alive during the test is read three times: /proc, iterfs,
/proc again. A field may differ from /proc only where the two /proc reads differ from each
other (the task ran, faulted, moved CPU, changed state in between); every other field must be
equal. (A field can also flip and flip back between the reads, R -> S -> R: a line that
differs is read again, up to three times, and must match in one of them.)

Before the sweeps a zoo of processes is started: zombie, stopped, busy, threads, a zombie
leader with live threads, a controlling tty, nice, SCHED_FIFO/RR, pending, blocked, caught
and ignored signals; kernel threads exist already. Also: the not-permitted line against /proc
read by uid 65534, starttime in a time namespace, delay accounting, cputime scaling with
iterfs reading first, psutil on a PROCFS_PATH of iterfs stat files. The arithmetic the
program does (cputime_adjust with its 128-bit mul_u64_u64_div_u64) runs on a small
interpreter against a transcription of the kernel function (pure tier).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import procfs
from iterfs import asm
from iterfs.catalog import read_once
from iterfs.programs import link_iterator, read_all
import iterators.proc_stat as proc_stat

PID_STAT, TID_STAT = proc_stat.FILES

# proc(5) names of the 52 fields, 1-based like the man page
FIELDS = ("pid comm state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt "
          "utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss "
          "rsslim startcode endcode startstack kstkesp kstkeip signal blocked sigignore sigcatch "
          "wchan nswap cnswap exit_signal processor rt_priority policy delayacct_blkio_ticks "
          "guest_time cguest_time start_data end_data start_brk arg_start arg_end env_start "
          "env_end exit_code").split()
F = {name: i for i, name in enumerate(FIELDS)}
PF_KTHREAD = 0x00200000
M64 = (1 << 64) - 1


def fields(line: bytes) -> list[str]:
    """A stat line split into its 52 fields (comm whole, without the parentheses)."""
    s = line.decode()
    assert s.endswith("\n") and s.count("\n") == 1, s
    lp, rp = s.index(" ("), s.rindex(") ")
    out = [s[:lp], s[lp + 2:rp]] + s[rp + 2:-1].split(" ")
    assert len(out) == len(FIELDS), s
    return out


# --- pure tier: the program's arithmetic on a tiny eBPF interpreter --------------------

def link(items) -> list:
    code = asm.link(list(items) + [asm.exit_insn()])
    assert not any(i.is_ld_imm64 for i in code)
    return code


def run(code, regs: dict[int, int], stack: dict[int, int]) -> dict[int, int]:
    """Execute linked ALU/ALU64, JMP, LDX/STX dw of r10-relative stack (r10 = 0) until the
    exit at the end."""
    r = {n: 0 for n in range(11)} | regs
    pc = 0
    while True:
        i = code[pc]
        cls, op, x = i.op & 7, i.op & 0xF0, i.op & 8
        if cls in (4, 7):                              # ALU (32-bit), ALU64
            bits = 64 if cls == 7 else 32
            mask = (1 << bits) - 1
            a, b = r[i.dst] & mask, (r[i.src] if x else i.imm) & mask
            res = {0xB0: b, 0x00: a + b, 0x10: a - b, 0x20: a * b, 0x30: a // b if b else 0,
                   0x40: a | b, 0x50: a & b, 0x60: a << (b & (bits - 1)),
                   0x70: a >> (b & (bits - 1)), 0x80: -a, 0xA0: a ^ b}[op]
            r[i.dst] = res & mask
        elif cls == 5:                                 # JMP
            if op == 0x90:                             # exit
                return r
            a, b = r[i.dst], (r[i.src] if x else i.imm & M64)
            taken = {0x00: True, 0x10: a == b, 0x20: a > b, 0x30: a >= b, 0x40: bool(a & b),
                     0x50: a != b, 0xA0: a < b, 0xB0: a <= b}[op]
            pc += i.off if taken else 0
        elif i.op == 0x79:                             # ldx dw
            r[i.dst] = stack[r[i.src] + i.off]
        elif i.op == 0x7B:                             # stx dw
            stack[r[i.dst] + i.off] = r[i.src]
        else:
            raise AssertionError(f"interpreter: unexpected {i}")
        pc += 1


def test_mul_div_u64_is_exact():
    """mul_u64_u64_div_u64(a, b, c) for a <= c: both the 64-bit and the 128-bit path."""
    rnd = random.Random(6_18)
    cases = [(0, 5, 1), (1, M64, 1), (M64, M64, M64), (M64 - 1, M64, M64), (3, 7, 3),
             (1 << 32, 1 << 32, (1 << 32) + 1), (12345678901, 98765432109876, 12345678902)]
    for _ in range(800):
        c = rnd.getrandbits(rnd.choice((8, 33, 40, 63, 64))) or 1
        cases.append((rnd.randrange(c + 1), rnd.getrandbits(rnd.choice((16, 40, 64))), c))
    slow = 0
    code = link(proc_stat.mul_div_u64(-8, "md"))
    for a, b, c in cases:
        out = run(code, {1: a, 2: b}, {-8: c})
        assert out[2] == a * b // c, (a, b, c)
        slow += (a * b) >> 64 != 0
    assert slow > 250  # the long division ran


def cputime_adjust_model(rtime, stime, utime, prev_s, prev_u):
    """kernel/sched/cputime.c cputime_adjust (6.18), returning (utime, stime)."""
    if (prev_s + prev_u) & M64 >= rtime:
        return prev_u, prev_s
    if stime == 0:
        s = 0
    elif utime == 0:
        s = rtime
    else:
        s = min(stime * rtime // (stime + utime), rtime)   # mul_u64_u64_div_u64 + clamp
    s = max(s, prev_s)
    u = (rtime - s) & M64
    if u < prev_u:
        u = prev_u
        s = (rtime - u) & M64
    return u, s


def test_cputime_adjust_matches_the_kernel():
    slot = dict(rtime=-8, stime=-16, utime=-24, prev_stime=-32, prev_utime=-40, total=-48)
    code = link(proc_stat.cputime_adjust(slot, "ca"))
    rnd = random.Random(250)
    cases = [(0, 0, 0, 0, 0), (100, 0, 0, 0, 0), (100, 0, 7, 0, 0), (100, 7, 0, 0, 0),
             (100, 30, 70, 60, 10), (100, 30, 70, 10, 85), (100, 30, 70, 50, 50),
             (10**13, 4 * 10**12, 6 * 10**12, 0, 0)]
    for _ in range(800):
        bits = rnd.choice((20, 40, 62))
        rtime = rnd.getrandbits(bits)
        st, ut = rnd.getrandbits(bits), rnd.getrandbits(bits)
        st, ut = rnd.choice(((st, ut), (0, ut), (st, 0), (st % 1000, ut)))
        ps_ = rnd.randrange(rtime + 1) if rtime else 0
        pu_ = rnd.randrange(rtime - ps_ + 1) if rnd.random() < 0.8 else rnd.getrandbits(bits)
        cases.append((rtime, st, ut, ps_, pu_))
    for rtime, st, ut, ps_, pu_ in cases:
        stack = {slot["rtime"]: rtime, slot["stime"]: st, slot["utime"]: ut,
                 slot["prev_stime"]: ps_, slot["prev_utime"]: pu_}
        out = run(code, {}, stack)
        assert (out[5], out[4]) == cputime_adjust_model(rtime, st, ut, ps_, pu_), \
            (rtime, st, ut, ps_, pu_)


# --- kernel tier ------------------------------------------------------------------------

class Reader:
    """read_once() with the program loaded once and linked per read (as the daemon does at
    each open): link with pid= / tid=, one iterator session, the whole output."""

    def __init__(self, spec, btf):
        self.prog = spec.build(btf).load(btf=btf)

    def read(self, **params) -> bytes:
        with link_iterator(self.prog, **params) as link, link.new_iter() as fd:
            return read_all(fd.fd)

    def close(self) -> None:
        self.prog.close()


@pytest.fixture(scope="module")
def readers(vmlinux):
    rs = Reader(PID_STAT, vmlinux), Reader(TID_STAT, vmlinux)
    try:
        yield rs
    finally:
        for r in rs:
            r.close()


def read_proc(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def state(pid: int) -> str:
    """The state letter from /proc/<pid>/status (status never runs cputime_adjust)."""
    try:
        return procfs.status(pid)["State"][0]
    except (FileNotFoundError, ProcessLookupError):
        return "?"


def wait_for(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


THREADS = """
import sys, threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print("ready", flush=True)
time.sleep(600)
"""

ZOMBIE_LEADER = """
import ctypes, threading, time
for _ in range(2):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print("ready", flush=True)
ctypes.CDLL(None).syscall(60, 0)   # SYS_exit: the leader thread alone exits
"""

TTY = """
import os, sys, time
os.setsid()
fd = os.open(sys.argv[1], os.O_RDWR)   # a session leader opening a tty: its controlling tty
print("ready", flush=True)
time.sleep(600)
"""

SIGNALS = """
import signal, threading, time
signal.signal(signal.SIGUSR1, lambda *a: None)
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGTERM})
signal.pthread_kill(threading.get_ident(), signal.SIGHUP)   # task->pending: stays pending
print("ready", flush=True)
time.sleep(600)
"""

BURNER = """
import os, signal, threading, time
zero = os.open("/dev/zero", os.O_RDONLY)
def burn(sec):
    end, x = time.monotonic() + sec, 0
    while time.monotonic() < end:
        os.read(zero, 1 << 16)          # system time
        for i in range(300):            # user time
            x += i * i
def burn_then_wait(burnt):
    burn(0.25)
    burnt.set()
    threading.Event().wait()
t = threading.Thread(target=burn, args=(0.25,)); t.start(); t.join()   # a dead thread's times
burnt = [threading.Event() for _ in range(2)]
for e in burnt:
    threading.Thread(target=burn_then_wait, args=(e,), daemon=True).start()
burn(0.25)
for e in burnt:
    e.wait()
os.kill(os.getpid(), signal.SIGSTOP)
"""


class Zoo:
    """Processes in the states worth checking, killed by pid on teardown."""

    def __init__(self):
        self.procs: dict[str, subprocess.Popen] = {}
        self.fds: list[int] = []

    def start(self, name: str, argv, *, ready: bool = False, **kw) -> int:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, **kw)
        self.procs[name] = p
        if ready:
            assert p.stdout.readline() == b"ready\n", name
        return p.pid

    def python(self, name: str, src: str, *args, **kw) -> int:
        argv = [sys.executable, "-c", textwrap.dedent(src), *args]
        return self.start(name, argv, ready=True, **kw)

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def close(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        for p in self.procs.values():
            with contextlib.suppress(Exception):
                p.wait(timeout=10)
            if p.stdout:
                p.stdout.close()
        for fd in self.fds:
            os.close(fd)


@pytest.fixture(scope="module")
def zoo():
    z = Zoo()
    try:
        z.start("sleeper", ["sleep", "600"])
        z.start("busy", [sys.executable, "-c", "while True: pass"])   # its fields move
        stopped = z.start("stopped", ["sleep", "600"])
        os.kill(stopped, signal.SIGSTOP)
        z.start("zombie", ["true"])                          # never waited for
        niced = z.start("niced", ["sleep", "600"])
        os.setpriority(os.PRIO_PROCESS, niced, 7)
        for name, policy, prio in (("fifo", os.SCHED_FIFO, 10), ("rr", os.SCHED_RR, 5)):
            pid = z.start(name, ["sleep", "600"])
            try:
                os.sched_setscheduler(pid, policy, os.sched_param(prio))
            except PermissionError:
                pass
        z.python("threads", THREADS)
        gstopped = z.python("group_stopped", THREADS)
        os.kill(gstopped, signal.SIGSTOP)
        z.python("zombie_leader", ZOMBIE_LEADER)
        master, slave = os.openpty()
        z.fds += [master, slave]
        z.python("tty", TTY, os.ttyname(slave))
        z.python("signals", SIGNALS)
        wait_for(lambda: state(z.pid("zombie")) == "Z", "a zombie")
        wait_for(lambda: state(z.pid("zombie_leader")) == "Z", "a zombie leader")
        for name in ("stopped", "group_stopped"):
            pid = z.pid(name)
            wait_for(lambda: all(state(int(t)) == "T" for t in os.listdir(f"/proc/{pid}/task")),
                     f"{name} to stop")
        yield z
    finally:
        z.close()


def compare(ours: bytes, before: bytes, after: bytes, where: str) -> tuple[int, int]:
    """(exact, masked): fields equal in both /proc reads must be ours too."""
    b, a = fields(before), fields(after)
    o = fields(ours) if ours else None
    assert o is not None, f"{where}: iterfs printed nothing, /proc: {before!r}"
    exact = masked = 0
    for k, (x, y, z) in enumerate(zip(b, o, a)):
        if x != z:
            masked += 1
            continue
        exact += 1
        assert y == x, f"{where}: field {k + 1} {FIELDS[k]}: iterfs {y!r}, /proc {x!r}\n" \
                       f"  iterfs {ours!r}\n  /proc  {before!r}"
    return exact, masked


ATTEMPTS = 3


def compare_fresh(read_proc_, read_ours, where: str):
    """/proc, iterfs, /proc, compared; None if the file is gone. A field that flips and
    flips back between the reads (R -> S -> R, CPU 0 -> 1 -> 0) looks like a mismatch: such
    a line is read again, up to ATTEMPTS times; a real difference fails every time.
    Returns (exact, masked, our line, attempts)."""
    for attempt in range(1, ATTEMPTS + 1):
        before = read_proc_()
        ours = read_ours()
        after = read_proc_()
        if before is None or after is None:
            return None
        try:
            return (*compare(ours, before, after, where), ours, attempt)
        except AssertionError:
            if attempt == ATTEMPTS:
                raise


def sweep(read, items) -> tuple[int, int, int, dict[int, list[str]]]:
    """(lines, exact fields, masked fields, {id: our fields}) over (id, path, params)."""
    lines = exact = masked = retried = 0
    seen = {}
    for ident, path, params in items:
        got = compare_fresh(functools.partial(read_proc, path),
                            functools.partial(read, **params), path)
        if got is None:
            continue                       # gone meanwhile
        e, m, ours, attempts = got
        lines, exact, masked = lines + 1, exact + e, masked + m
        retried += attempts > 1
        seen[ident] = fields(ours)
    if retried:
        print(f"\n{retried} lines read again (a field flipped back between the reads)")
    return lines, exact, masked, seen


def pids() -> list[int]:
    hidden = procfs.hidden_tids()
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in hidden)


def threads() -> list[tuple[int, int]]:
    out = []
    for pid in pids():
        with contextlib.suppress(FileNotFoundError):
            out += [(pid, int(t)) for t in os.listdir(f"/proc/{pid}/task")]
    return sorted(out)


@pytest.mark.kernel
def test_pid_stat_matches_proc(zoo, readers):
    items = [(p, f"/proc/{p}/stat", dict(pid=p)) for p in pids()]
    lines, exact, masked, seen = sweep(readers[0].read, items)
    print(f"\n<pid>/stat: {lines} processes, {exact} fields compared exactly, "
          f"{masked} masked (they changed between the two /proc reads)")
    assert {z.pid for z in zoo.procs.values()} <= set(seen)
    assert lines >= 20 and exact >= 0.9 * (exact + masked)
    assert any(int(f[F["flags"]]) & PF_KTHREAD for f in seen.values()), "no kernel thread"


@pytest.mark.kernel
def test_tid_stat_matches_proc(zoo, readers):
    items = [(t, f"/proc/{p}/task/{t}/stat", dict(tid=t)) for p, t in threads()]
    lines, exact, masked, seen = sweep(readers[1].read, items)
    print(f"\n<pid>/task/<tid>/stat: {lines} threads, {exact} fields compared exactly, "
          f"{masked} masked")
    for name in ("threads", "zombie_leader", "group_stopped"):
        pid = zoo.pid(name)
        assert {int(t) for t in os.listdir(f"/proc/{pid}/task")} <= set(seen), name
    assert exact >= 0.9 * (exact + masked)


ONCE = {"stopped", "zombie", "zombie_leader", "tty", "signals"}


@pytest.mark.kernel
def test_zoo_is_what_it_should_be(zoo, readers, vmlinux):
    """The zoo: byte-equal to /proc (nothing there runs), and the fields each member exists
    for; read_once for some (a program load each), the shared program for the others."""
    got = {}
    for name, p in zoo.procs.items():
        if name == "busy":  # it runs: only the sweeps (no program load in between) see it
            continue
        before = read_proc(f"/proc/{p.pid}/stat")
        if name in ONCE:
            ours = read_once(PID_STAT, vmlinux, pid=p.pid)
        else:
            ours = readers[0].read(pid=p.pid)
        after = read_proc(f"/proc/{p.pid}/stat")
        compare(ours, before, after, name)
        if before == after:
            assert ours == before, name
        got[name] = fields(ours)
    leader = zoo.pid("zombie_leader")
    tids = [int(t) for t in os.listdir(f"/proc/{leader}/task")]
    for t in tids:
        path = f"/proc/{leader}/task/{t}/stat"
        before, ours, after = read_proc(path), read_once(TID_STAT, vmlinux, tid=t), read_proc(path)
        compare(ours, before, after, path)
    other = next(t for t in tids if t != leader)
    assert read_once(PID_STAT, vmlinux, pid=other) == b""   # not a thread group id

    f = {name: dict(zip(FIELDS, v)) for name, v in got.items()}
    assert f["sleeper"]["state"] == "S" and f["sleeper"]["wchan"] == "1"
    assert f["stopped"]["state"] == "T" and f["stopped"]["exit_code"] == str(signal.SIGSTOP)
    assert f["group_stopped"]["exit_code"] == str(signal.SIGSTOP)
    assert f["group_stopped"]["num_threads"] == "4" and f["group_stopped"]["wchan"] == "0"
    assert f["zombie"]["state"] == "Z" and f["zombie"]["vsize"] == "0"
    assert f["zombie"]["start_data"] == "0" and f["zombie"]["exit_code"] == "0"
    assert f["zombie_leader"]["state"] == "Z" and f["zombie_leader"]["num_threads"] == "3"
    assert f["niced"]["nice"] == "7" and f["niced"]["priority"] == "27"
    if f["fifo"]["policy"] == "1":
        assert f["fifo"]["rt_priority"] == "10" and f["fifo"]["priority"] == "-11"
        assert f["rr"]["policy"] == "2" and f["rr"]["rt_priority"] == "5"
    tty = f["tty"]
    assert int(tty["tty_nr"]) >> 8 == 136 and tty["tpgid"] == str(zoo.pid("tty"))
    assert tty["session"] == str(zoo.pid("tty")) and tty["pgrp"] == tty["session"]
    sig = f["signals"]
    bit = lambda s: 1 << (s - 1)   # noqa: E731
    assert int(sig["signal"]) & bit(signal.SIGHUP)
    assert int(sig["blocked"]) & (bit(signal.SIGHUP) | bit(signal.SIGTERM)) == \
        bit(signal.SIGHUP) | bit(signal.SIGTERM)
    assert int(sig["sigcatch"]) & bit(signal.SIGUSR1)
    assert int(sig["sigignore"]) & bit(signal.SIGUSR2)
    assert int(f["threads"]["num_threads"]) == 4
    assert f["sleeper"]["ppid"] == str(os.getpid()) and int(f["sleeper"]["vsize"]) > 0


@pytest.mark.kernel
def test_cputime_scaling_exact(vmlinux):
    """utime/stime of a process nobody has read since it ran: iterfs first, so both this
    file and /proc compute cputime_adjust from the same prev (zero) through the scaling
    stime * rtime / (stime + utime); the process is stopped, so /proc must then print the
    same, for the process (a dead thread's times included) and for each thread."""
    z = Zoo()
    try:
        p = z.start("burner", [sys.executable, "-c", textwrap.dedent(BURNER)])
        # /proc/<pid>/status only: a stat read would run cputime_adjust and move prev
        wait_for(lambda: state(p) == "T" and all(state(int(t)) == "T"
                                                 for t in os.listdir(f"/proc/{p}/task")),
                 "the burner to stop itself", timeout=20)
        tids = sorted(int(t) for t in os.listdir(f"/proc/{p}/task"))
        # "T" is set before the stopping thread leaves the CPU (schedule() then charges its
        # last slice): wait until sum_exec_runtime (schedstat, no cputime_adjust) stays put
        def runtimes():
            return [read_proc(f"/proc/{p}/task/{t}/schedstat").split()[0] for t in tids]

        def settled() -> bool:
            first = runtimes()
            time.sleep(0.05)
            return runtimes() == first
        wait_for(settled, "the burner's runtime to settle")
        ours = read_once(PID_STAT, vmlinux, pid=p)
        ours_t = {t: read_once(TID_STAT, vmlinux, tid=t) for t in tids}
        assert ours == read_proc(f"/proc/{p}/stat") == read_proc(f"/proc/{p}/stat")
        for t in tids:
            path = f"/proc/{p}/task/{t}/stat"
            assert ours_t[t] == read_proc(path) == read_proc(path), t
        f = dict(zip(FIELDS, fields(ours)))
        assert int(f["utime"]) > 0 and int(f["stime"]) > 0, ours   # the scaling path ran
        assert f["num_threads"] == "3"
    finally:
        z.close()


@pytest.mark.kernel
def test_psutil_reads_it(zoo, readers, tmp_path):
    """psutil with PROCFS_PATH at a directory whose <pid>/stat are iterfs outputs and whose
    other entries are symlinks into /proc: the same answers as psutil on /proc."""
    psutil = pytest.importorskip("psutil")
    root = tmp_path / "proc"
    root.mkdir()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            os.symlink(f"/proc/{name}", root / name)
    chosen = sorted({p.pid for p in zoo.procs.values()} | set(pids()[:40]))

    def query(procfs_path: str, pid: int):
        old = psutil.PROCFS_PATH
        psutil.PROCFS_PATH = procfs_path
        try:
            pr = psutil.Process(pid)
            return dict(ppid=pr.ppid(), status=pr.status(), create_time=pr.create_time(),
                        num_threads=pr.num_threads(), cpu_times=tuple(pr.cpu_times()))
        except psutil.Error:
            return None
        finally:
            psutil.PROCFS_PATH = old

    compared = 0
    for pid in chosen:
        d = root / str(pid)
        try:
            d.mkdir()
            for entry in os.listdir(f"/proc/{pid}"):
                if entry != "stat":
                    os.symlink(f"/proc/{pid}/{entry}", d / entry)
        except FileNotFoundError:
            continue
        before = query("/proc", pid)
        (d / "stat").write_bytes(readers[0].read(pid=pid))
        after = query("/proc", pid)
        ours = query(str(root), pid)
        if before is None or after is None:
            continue
        assert ours is not None, pid
        for key in before:
            if before[key] == after[key]:
                assert ours[key] == before[key], (pid, key, ours[key], before[key])
                compared += 1
    assert compared >= 5 * len(zoo.procs)
    zp = zoo.pid("zombie")
    assert query(str(root), zp)["status"] == psutil.STATUS_ZOMBIE
    assert query(str(root), zoo.pid("stopped"))["status"] == psutil.STATUS_STOPPED


@pytest.mark.kernel
def test_five_printf_calls(vmlinux):
    for build in (proc_stat.build_pid, proc_stat.build_tid):
        code = asm.decode(build(vmlinux).bytecode)
        calls = [i for i in code if i.is_call and i.src == 0 and i.imm == asm.Helper.seq_printf]
        assert len(calls) == 5


TIMENS_READER = """
import sys
sys.path[:0] = sys.argv[2:]
from iterfs.btf import BTF
from iterfs.catalog import read_once
import iterators.proc_stat as proc_stat
pid = int(sys.argv[1])
path = f"/proc/{pid}/stat"
before = open(path, "rb").read()
ours = read_once(proc_stat.FILES[0], BTF.vmlinux(), pid=pid)
after = open(path, "rb").read()
sys.stdout.buffer.write(before + ours + after)
"""


@pytest.mark.kernel
def test_starttime_in_a_time_namespace(zoo):
    """starttime is shifted by the READER's time namespace boot-time offset
    (timens_add_boottime_ns): read from inside `unshare --time --boottime 1000`."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) from util-linux")
    pid = zoo.pid("sleeper")
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(["unshare", "--time", "--boottime", "1000", sys.executable, "-c",
                          TIMENS_READER, str(pid), os.path.dirname(here), here],
                         capture_output=True, check=True).stdout
    before, ours, after = out.splitlines(keepends=True)
    assert before == ours == after
    shifted = int(fields(ours)[F["starttime"]])
    assert shifted == int(procfs.stat(pid)[F["starttime"]]) + 1000 * 100


DISK_WRITER = """
import os, signal, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_SYNC)
for _ in range(200):
    os.write(fd, b"x" * 65536)
    os.fsync(fd)
os.kill(os.getpid(), signal.SIGSTOP)
"""


@pytest.mark.kernel
def test_delayacct_blkio_ticks(vmlinux, tmp_path):
    """Field 42 with delay accounting on (kernel.task_delayacct, restored afterwards): a
    process that waited for synchronous writes, then stopped itself."""
    knob = "/proc/sys/kernel/task_delayacct"
    if not os.path.exists(knob):
        pytest.skip("kernel without CONFIG_TASK_DELAY_ACCT")
    with open(knob) as f:
        old = f.read()
    z = Zoo()
    try:
        with open(knob, "w") as f:
            f.write("1")
        p = z.start("writer", [sys.executable, "-c", DISK_WRITER, str(tmp_path / "data")])
        wait_for(lambda: state(p) == "T", "the writer to stop itself", timeout=30)
    finally:
        with open(knob, "w") as f:
            f.write(old)
    try:
        for spec, params, path in ((PID_STAT, dict(pid=p), f"/proc/{p}/stat"),
                                   (TID_STAT, dict(tid=p), f"/proc/{p}/task/{p}/stat")):
            before = read_proc(path)
            ours = read_once(spec, vmlinux, **params)
            assert ours == before == read_proc(path)
        print(f"\ndelayacct_blkio_ticks of the writer: {fields(ours)[F['delayacct_blkio_ticks']]}")
    finally:
        z.close()


class Nobody:
    """A forked child running as uid/gid 65534 (no capabilities) that reads a file on
    request: a path per line in, its content (hex, "-" if unreadable) per line out."""

    def __init__(self):
        req_r, self._req = os.pipe()
        self._resp, resp_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self._req)
                os.close(self._resp)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                with os.fdopen(req_r) as rq, os.fdopen(resp_w, "w") as rs:
                    for line in rq:
                        try:
                            with open(line.rstrip("\n"), "rb") as f:
                                rs.write(f.read().hex() + "\n")
                        except OSError:
                            rs.write("-\n")
                        rs.flush()
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(resp_w)
        self._in = os.fdopen(self._resp)

    def read(self, path: str) -> bytes | None:
        os.write(self._req, path.encode() + b"\n")
        line = self._in.readline().rstrip("\n")
        return None if line == "-" else bytes.fromhex(line)

    def close(self) -> None:
        os.close(self._req)
        self._in.close()
        os.waitpid(self.pid, 0)


@pytest.mark.kernel
def test_unpermitted_line_matches_proc_for_nobody(zoo, vmlinux):
    """build_*_unpermitted against /proc read by uid 65534, who may not ptrace root's
    processes: startcode/endcode 1, no stack, wchan, data/arg/env addresses or exit code."""
    btf = vmlinux
    readers = [Reader(dataclasses.replace(PID_STAT, build=proc_stat.build_pid_unpermitted), btf),
               Reader(dataclasses.replace(TID_STAT, build=proc_stat.build_tid_unpermitted), btf)]
    try:
        items = [(f"/proc/{p}/stat", 0, dict(pid=p)) for p in pids()]
        for name in ("threads", "zombie_leader", "stopped", "group_stopped"):
            pid = zoo.pid(name)
            items += [(f"/proc/{pid}/task/{t}/stat", 1, dict(tid=int(t)))
                      for t in os.listdir(f"/proc/{pid}/task")]
        nobody = Nobody()
        try:
            ours, exact, masked, lines = {}, 0, 0, 0
            for path, r, params in items:
                got = compare_fresh(functools.partial(nobody.read, path),
                                    functools.partial(readers[r].read, **params),
                                    path + " (as nobody)")
                if got is not None:
                    exact, masked, lines = exact + got[0], masked + got[1], lines + 1
                    ours[path] = got[2]
        finally:
            nobody.close()
        print(f"\nnot permitted: {lines} lines, {exact} fields compared exactly, {masked} masked")
        f = dict(zip(FIELDS, fields(ours[f"/proc/{zoo.pid('sleeper')}/stat"])))
        assert (f["startcode"], f["endcode"], f["startstack"], f["wchan"], f["env_end"]) == \
            ("1", "1", "0", "0", "0")
        assert fields(ours[f"/proc/{zoo.pid('stopped')}/stat"])[F["exit_code"]] == "0"
        assert lines >= 20
    finally:
        for r in readers:
            r.close()
