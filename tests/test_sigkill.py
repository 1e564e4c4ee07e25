"""The daemon killed under load, and a reader stopped mid-read: nothing hangs, nothing leaks.

Readers run in child processes (a FUSE call that hangs fails the test there, where it can
be killed, instead of hanging pytest)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from daemonhelp import Daemon, pin_root_for
from iterfs.daemon import mount_state
# the daemon-watching helpers of the soak (a privileged helper child included)
from test_soak import Watched, fd_count, fuse_holders, settle, stack

pytestmark = [pytest.mark.kernel, pytest.mark.fuse]

DEAD = (errno.ENOTCONN, errno.ECONNABORTED)

# N threads, each reading its own file of FILES in a loop until a call fails. Prints
# "ready" once every thread has read its file to the end once, then (once all stopped)
# one JSON line: per thread [monotonic time its last call returned, errno or a message].
READERS = r'''
import json, os, sys, threading, time
mp, n = sys.argv[1], int(sys.argv[2])
files = sys.argv[3].split(",")
done = [0] * n
out = [None] * n

def worker(i):
    f = f"{mp}/{files[i % len(files)]}"
    size = (4096, 65536, 256 * 1024, 1000)[i % 4]
    try:
        while True:
            fd = os.open(f, os.O_RDONLY)
            try:
                while os.read(fd, size):
                    pass
            finally:
                os.close(fd)
            done[i] += 1
            fd = os.open(f, os.O_RDONLY)  # and tiny reads, closing mid-file
            try:
                for _ in range(64):
                    os.read(fd, 1)
            finally:
                os.close(fd)
    except OSError as e:
        out[i] = [time.monotonic(), e.errno]
    except BaseException as e:
        out[i] = [time.monotonic(), repr(e)]

ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
for t in ts:
    t.start()
while min(done) < 1 and all(o is None for o in out):
    time.sleep(0.01)
print("ready" if all(o is None for o in out) else "failed", flush=True)
for t in ts:
    t.join()
print(json.dumps(out), flush=True)
'''


def readline(proc: subprocess.Popen, deadline: float) -> str:
    """A line of proc's stdout, or "" if none by deadline (never blocks past it)."""
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            return ""
        c = os.read(proc.stdout.fileno(), 1)
        if not c:
            return ""
        buf += c
    return buf.decode()


def stop_proc(p: subprocess.Popen) -> None:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGCONT)
            p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(10)


def lists_pid(data: bytes, pid: int) -> bool:
    assert data.startswith(b"   TGID     TID    PPID   UID S COMM\n"), data[:100]
    return re.search(rb"^ *%d +%d " % (pid, pid), data, re.M) is not None


PROBE = r'''
import errno, json, os, sys
mp = sys.argv[1]
out = {}
for name, fn in (("stat", lambda: os.stat(mp)), ("statvfs", lambda: os.statvfs(mp)),
                 ("listdir", lambda: os.listdir(mp)),
                 ("stat tasks", lambda: os.stat(mp + "/tasks")),
                 ("read tasks", lambda: open(mp + "/tasks", "rb").read()),
                 ("read own status", lambda: open(f"{mp}/{os.getpid()}/status", "rb").read())):
    try:
        fn()
        out[name] = 0
    except OSError as e:
        out[name] = e.errno
print(json.dumps(out))
'''


def test_sigkill_under_32_readers_then_restart(tmp_path):
    mp, root = str(tmp_path / "mnt"), pin_root_for(tmp_path)
    first = Watched(Daemon(mp, root))
    second = Watched(Daemon(mp, root))
    readers = None
    try:
        first.start()
        pid = first.d.proc.pid
        kids = first.look()
        files = ["tasks", "kallsyms", "tasks", "net/tcp", "bpf/progs", "tasks", "net/unix",
                 f"{pid}/status", f"{os.getpid()}/maps", "tasks", f"{pid}/task/{pid}/stat"]
        readers = subprocess.Popen(
            [sys.executable, "-S", "-c", READERS, mp, "32", ",".join(files)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert readline(readers, time.monotonic() + 60) == "ready\n"
        time.sleep(0.3)  # all 32 inside their loops, most of them mid-read

        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        line = readline(readers, killed + 10)
        assert line, "readers still blocked 10 s after the daemon was killed"
        ends = json.loads(line)
        late = {i: round(t - killed, 2) for i, (t, _) in enumerate(ends) if t - killed >= 2.0}
        wrong = {i: e for i, (_, e) in enumerate(ends) if e not in DEAD}
        slowest = max(t for t, _ in ends) - killed
        assert not late, f"readers whose call returned >= 2 s after the kill: {late}"
        assert not wrong, f"readers that failed otherwise than ENOTCONN/ECONNABORTED: {wrong}"
        assert readers.wait(5) == 0
        assert first.d.wait(5) == -signal.SIGKILL

        # the session died with the daemon, and whatever it forked (a privileged helper)
        # ended too, after clearing the mount (or the mount is left stale: ENOTCONN)
        assert settle(first.survivors, lambda s: not s, 5) == {}, f"left running of {kids}"
        assert not fuse_holders(first.conn)
        left = mount_state(mp)[1]
        assert left in ("stale", "")
        probe = subprocess.run([sys.executable, "-S", "-c", PROBE, mp],
                               capture_output=True, timeout=10, text=True)
        answers = json.loads(probe.stdout)
        if left == "stale":  # a stat may still be answered from the kernel's caches
            assert all(e in DEAD or (e == 0 and k.startswith("stat"))
                       for k, e in answers.items()), answers
            assert answers["read tasks"] in DEAD and answers["listdir"] in DEAD, answers
        else:  # an empty directory
            assert all(e in (0, errno.ENOENT) for e in answers.values()), answers
            assert answers["listdir"] == 0 and answers["read tasks"] == errno.ENOENT

        # a new daemon on the same mountpoint and pin root (the build cache is warm now)
        t0 = time.monotonic()
        second.start(timeout=30)
        took = time.monotonic() - t0
        print(f"\nSIGKILL: all 32 readers' calls returned within {slowest:.2f}s "
              f"({sum(e == errno.ENOTCONN for _, e in ends)} ENOTCONN); mount left "
              f"{left or 'cleared'}; restart ready in {took:.2f}s")
        assert took < 2.0, f"restart took {took:.2f}s: {second.d.output()[-3000:]}"
        with open(os.path.join(mp, "tasks"), "rb") as f:
            assert lists_pid(f.read(), os.getpid())
        with open(os.path.join(mp, str(os.getpid()), "status"), "rb") as f:
            assert f"\nPid:\t{os.getpid()}\n".encode() in f.read()
        assert os.listdir(second.d.pin_root)

        second.look()
        # stopped after a quiet spell, like any daemon: the kernel's cached attributes
        # (attr_timeout 1 s) have expired, so whatever the stop does to the mount is asked
        # of the daemon itself
        time.sleep(1.5)
        second.d.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            second.d.wait(15)
        assert second.d.proc.poll() is not None, (
            f"SIGTERM: the daemon hangs in its stop: server {stack(second.d.proc.pid)}; "
            f"{'; '.join(stack(k) for k in second.survivors())}")
        assert second.d.proc.returncode == 0, second.d.output()[-3000:]
        assert mount_state(mp) == ("", "")
        assert not os.path.exists(root)
        assert settle(second.survivors, lambda s: not s, 5) == {}
        assert "Traceback" not in second.d.output(), second.d.output()[-3000:]
    finally:
        if readers is not None:
            stop_proc(readers)
            readers.stdout.close()
        if second.d.proc is not None:  # first: the mount is the second daemon's by then
            second.teardown()
        first.teardown()


# Opens kallsyms, prints "open", then reads it over and over through that one handle.
STOPPED = r'''
import os, sys
fd = os.open(sys.argv[1] + "/kallsyms", os.O_RDONLY)
print("open", flush=True)
off = 0
while True:
    b = os.pread(fd, 4096, off)
    off = off + len(b) if b else 0
'''

# Reads each file to its end `rounds` times; prints the seconds each round took.
OTHERS = r'''
import json, os, sys, time
mp, rounds = sys.argv[1], int(sys.argv[2])
took = []
for _ in range(rounds):
    t = time.monotonic()
    for f in ("kallsyms", "tasks", "net/tcp", "bpf/progs", f"{os.getpid()}/status"):
        with open(f"{mp}/{f}", "rb") as fh:
            data = fh.read()
        assert data.endswith(b"\n"), (f, data[-100:])
    took.append(time.monotonic() - t)
print(json.dumps(took))
'''


def others_read(mp: str, rounds: int = 3, n: int = 8) -> list[float]:
    """n reader processes at once; the seconds of every round of every one of them."""
    procs = [subprocess.Popen([sys.executable, "-S", "-c", OTHERS, mp, str(rounds)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    try:
        out = []
        for p in procs:
            stdout, _ = p.communicate(timeout=30)
            assert p.returncode == 0
            out += json.loads(stdout)
        return out
    finally:
        for p in procs:
            stop_proc(p)
            p.stdout.close()


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0].decode()


def test_a_stopped_reader_holds_only_its_handle(tmp_path):
    w = Watched(Daemon(str(tmp_path / "mnt"), pin_root_for(tmp_path)))
    stopped = None
    try:
        w.start()
        mp, pid = w.d.mountpoint, w.d.proc.pid
        before = others_read(mp)  # also warms the daemon up (threads, buffer pool)
        time.sleep(0.5)  # the last releases reach the daemon
        fds0 = fd_count(pid)

        stopped = subprocess.Popen([sys.executable, "-S", "-c", STOPPED, mp],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert readline(stopped, time.monotonic() + 30) == "open\n"
        time.sleep(0.3)
        os.kill(stopped.pid, signal.SIGSTOP)
        assert settle(lambda: state(stopped.pid), lambda s: s == "T", 5) == "T"

        t0 = time.monotonic()
        during = others_read(mp)
        while time.monotonic() < t0 + 2:  # stopped for a while
            time.sleep(0.1)
        assert state(stopped.pid) == "T"
        slowest, usual = max(during), sorted(before)[len(before) // 2]
        print(f"\nwith a stopped reader: rounds {min(during):.2f}..{slowest:.2f}s "
              f"(before: median {usual:.2f}s)")
        assert slowest < max(5.0, 4 * max(before)), (before, during)
        held = settle(lambda: fd_count(pid), lambda n: n <= fds0 + 1, 5)
        assert fds0 <= held <= fds0 + 1, f"server fds {fds0} -> {held} with one reader stopped"

        os.kill(stopped.pid, signal.SIGCONT)
        stopped.kill()
        stopped.wait(10)
        assert settle(lambda: fd_count(pid), lambda n: n == fds0, 5) == fds0
        with open(os.path.join(mp, "tasks"), "rb") as f:
            assert lists_pid(f.read(), os.getpid())
        assert w.d.proc.poll() is None
    finally:
        if stopped is not None:
            stop_proc(stopped)
            stopped.stdout.close()
        w.teardown()
    assert mount_state(w.d.mountpoint) == ("", "")
    assert not os.path.exists(w.d.pin_root)
    assert not w.survivors()
