"""net/tcp benchmark: `cat` of the pinned net/tcp iterator vs `cat /proc/net/tcp`.

    sudo .venv/bin/python bench/net_tcp.py [--sockets 36000] [--rounds 9] [--spec net/tcp6]

Opens the sockets as loopback connection pairs in several holder processes (RLIMIT_NOFILE
is 20000 here), loads iterators/net_tcp.py's spec, links it and pins the link under
/sys/fs/bpf/iterfs-bench-<pid>/ (iterfs.programs.pin), then times `cat PIN >/dev/null`
against `cat /proc/net/tcp >/dev/null`, alternating, and prints the medians:

    net/tcp 36000 sockets: iterfs X ms, /proc Y ms, ratio Z (goal <= 1.0), identical bytes: yes/no

"identical bytes" compares one read of each taken back to back while the sockets are quiet
(the timers of idle loopback connections are off, so nothing varies). Everything (holders,
pin, directory) is cleaned up, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from iterfs import catalog  # noqa: E402
from iterfs.btf import BTF  # noqa: E402
from iterfs.programs import BPFFS, ensure_bpffs, pin, unpin  # noqa: E402

HOLDER = """
import os, socket, struct, sys
n, fam = int(sys.argv[1]) // 2, int(sys.argv[2])
host = "::1" if fam == socket.AF_INET6 else "127.0.0.1"
ls = socket.socket(fam); ls.bind((host, 0)); ls.listen(4096)
keep = [ls]
for i in range(n):
    c = socket.create_connection(ls.getsockname()[:2]); s, _ = ls.accept()
    keep += [c, s]
os.write(1, b"ready\\n")
sys.stdin.read()
for s in keep:  # close with RST: no 36k TIME_WAIT sockets left behind for a minute
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
"""
PER_HOLDER = 9000


@contextlib.contextmanager
def holders(total: int, family: int):
    procs = []
    try:
        left = total
        while left > 0:
            n = min(PER_HOLDER, left)
            procs.append(subprocess.Popen([sys.executable, "-c", HOLDER, str(n), str(family)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE))
            left -= n
        for p in procs:
            if p.stdout.readline() != b"ready\n":
                raise RuntimeError("a socket holder failed")
        yield
    finally:
        for p in procs:
            with contextlib.suppress(OSError):
                p.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def cat_ms(path: str) -> float:
    t = time.perf_counter()
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=36000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--spec", default="net/tcp", choices=["net/tcp", "net/tcp6"])
    args = ap.parse_args()

    from iterators import net_tcp
    spec = {s.path: s for s in net_tcp.FILES}[args.spec]
    family = 10 if args.spec.endswith("6") else 2
    btf = BTF.vmlinux()
    ensure_bpffs()
    root = os.path.join(BPFFS, f"iterfs-bench-{os.getpid()}")
    pinned = os.path.join(root, args.spec)
    proc = "/proc/" + args.spec
    with holders(args.sockets, family):
        loaded = catalog.load(spec, btf)
        try:
            pin(loaded.link.fd, pinned)
            try:
                ours, theirs = [], []
                for _ in range(args.rounds):
                    ours.append(cat_ms(pinned))
                    theirs.append(cat_ms(proc))
                same = False
                for _ in range(3):  # back to back; retry if something else moved meanwhile
                    with open(pinned, "rb") as f:
                        a = f.read()
                    with open(proc, "rb") as f:
                        b = f.read()
                    if a == b:
                        same = True
                        break
                lines = b.count(b"\n") - 1
            finally:
                unpin(pinned, prune_to=BPFFS)
        finally:
            loaded.close()
    x, y = statistics.median(ours), statistics.median(theirs)
    print(f"{args.spec} {args.sockets} sockets: iterfs {x:.1f} ms, /proc {y:.1f} ms, "
          f"ratio {x / y:.2f} (goal <= 1.0), identical bytes: {'yes' if same else 'no'} "
          f"({lines} lines)")


if __name__ == "__main__":
    main()
