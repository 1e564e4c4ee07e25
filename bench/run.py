"""iterfs benchmarks: each pair side by side in one run, several rounds, medians and ratios.

    sudo .venv/bin/python bench/run.py [--threads 10000] [--rounds 7] [--only P1,P4]

Sets up its own load (threads spread over processes), mounts iterfs on a temporary
mountpoint with its own pin root, and cleans everything up at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from iterfs.btf import BTF  # noqa: E402

THREAD_HOLDER = """
import os, sys, threading
n = int(sys.argv[1]); ev = threading.Event()
threading.stack_size(64 * 1024)
ts = [threading.Thread(target=ev.wait, daemon=True) for _ in range(n)]
for t in ts: t.start()
os.write(1, b"ready\\n")
sys.stdin.read()
"""


@contextlib.contextmanager
def threads(total: int, per_process: int = 1000):
    procs = []
    try:
        left = total
        while left > 0:
            n = min(per_process, left)
            p = subprocess.Popen([sys.executable, "-c", THREAD_HOLDER, str(n)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            procs.append(p)
            left -= n
        for p in procs:
            assert p.stdout.readline() == b"ready\n"
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


@contextlib.contextmanager
def mounted(extra=()):
    tmp = tempfile.mkdtemp(prefix="iterfs-bench-")
    mp = os.path.join(tmp, "mnt")
    pins = f"/sys/fs/bpf/iterfs-bench-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = f"\0iterfs-bench-{os.getpid()}-{time.monotonic_ns()}"
    sock.bind(addr)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "iterfs", "mount", mp, "--pin-root", pins, *extra],
                            env=dict(os.environ, NOTIFY_SOCKET="@" + addr[1:]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock.settimeout(60)
        while b"READY=1" not in sock.recv(4096):
            pass
        ready = time.perf_counter() - t0
        yield mp, pins, ready, proc
    finally:
        sock.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
        shutil.rmtree(pins, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def pair(rounds: int, a, b) -> tuple[float, float]:
    """Median seconds of a and b, interleaved round by round."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(a())
        tb.append(b())
    return statistics.median(ta), statistics.median(tb)


class Table:
    def __init__(self):
        self.rows = []

    def add(self, pid, what, a, b, goal, unit="ratio"):
        ratio = a / b if b else float("nan")
        if unit == "ratio":
            ok = ratio <= goal
            self.rows.append((pid, what, f"{a * 1e3:.1f} ms", f"{b * 1e3:.1f} ms", f"{ratio:.3f}",
                              f"<= {goal}", "ok" if ok else "MISS"))
        else:
            ok = a <= goal
            self.rows.append((pid, what, f"{a * 1e3:.0f} ms", "-", "-", f"<= {goal * 1e3:.0f} ms",
                              "ok" if ok else "MISS"))

    def print(self):
        head = ("id", "pair", "iterfs", "anchor", "ratio", "goal", "")
        w = [max(len(str(r[i])) for r in self.rows + [head]) for i in range(7)]
        for r in [head] + self.rows:
            print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    want = lambda p: only is None or p in only  # noqa: E731
    t = Table()

    if want("P4"):
        loads = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            BTF.load("/sys/kernel/btf/vmlinux")
            loads.append(time.perf_counter() - t0)
        t.add("P4", "BTF index of vmlinux", statistics.median(loads), None, 0.3, unit="abs")
        starts = []
        for _ in range(min(args.rounds, 5)):
            with mounted() as (_, _, ready, _):
                starts.append(ready)
        t.add("P4", "cold start: iterfs mount to READY=1", statistics.median(starts), None, 1.0,
              unit="abs")

    if want("P1") or want("P2"):
        with threads(args.threads), mounted() as (mp, pins, _, _):
            tasks = os.path.join(mp, "tasks")
            n = sum(1 for _ in open(tasks)) - 1
            print(f"# {n} threads in tasks", file=sys.stderr)
            if want("P1"):
                a, b = pair(args.rounds, lambda: timed(["cat", tasks]),
                            lambda: timed(["ps", "-eLo", "pid,tid,ppid,uid,stat,comm"]))
                t.add("P1", f"cat tasks vs ps -eLo ({n} threads)", a, b, 0.03)
            if want("P2"):
                a, b = pair(args.rounds * 3, lambda: timed(["cat", tasks]),
                            lambda: timed(["cat", os.path.join(pins, "tasks")]))
                t.add("P2", "cat tasks via FUSE vs the bpffs pin", a, b, 1.10)
    t.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
