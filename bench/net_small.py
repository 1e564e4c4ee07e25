"""Small-file latency of net/unix and net/netlink: open + read to EOF + close of the pinned
iterator vs of /proc/net/unix and /proc/net/netlink, with the few sockets the system has.

    sudo .venv/bin/python bench/net_small.py [--rounds 2000] [--sockets 0]

Each spec is built, loaded, linked and its link pinned under /sys/fs/bpf/iterfs-bench-<pid>/;
the two sides are timed interleaved (batches of 50 each, alternating) so drift hits both;
the median per open+read+close is reported with the ratio pin / proc (goal ≤ 1.5). The pins
and the link are removed at the end, also on failure. --sockets N adds N unix socketpairs
(2N sockets) and --netlink N netlink sockets to see how the ratio moves with size; --printf-variant also times
net_unix.build_printf, the one-bpf_seq_printf-per-record reference.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from iterfs.btf import BTF  # noqa: E402
from iterfs.catalog import load  # noqa: E402
from iterfs.programs import ensure_bpffs, pin, unpin  # noqa: E402

BPFFS = "/sys/fs/bpf"
BATCH = 50


def read_path(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        n = 0
        while True:
            b = os.read(fd, 65536)
            if not b:
                return n
            n += len(b)
    finally:
        os.close(fd)


def read_once_big(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        out = b""
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                return out
            out += b
    finally:
        os.close(fd)


def per_call(path: str, n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        read_path(path)
    return (time.perf_counter_ns() - t0) / n


def compare(a: str, b: str, rounds: int) -> tuple[float, float]:
    """Median ns per open+read+close of a and of b, in alternating batches."""
    for p in (a, b):  # warm up (page cache of the dentry, first-session allocations)
        per_call(p, 20)
    ta, tb = [], []
    for _ in range(max(1, rounds // BATCH)):
        ta.append(per_call(a, BATCH))
        tb.append(per_call(b, BATCH))
    return statistics.median(ta), statistics.median(tb)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--sockets", type=int, default=0, help="extra unix socketpairs")
    ap.add_argument("--netlink", type=int, default=0, help="extra netlink sockets")
    ap.add_argument("--printf-variant", action="store_true",
                    help="also time net_unix.build_printf (the record as one bpf_seq_printf)")
    args = ap.parse_args()

    import iterators.net_netlink as nl
    import iterators.net_unix as ux
    ensure_bpffs(BPFFS)
    btf = BTF.vmlinux()
    root = f"{BPFFS}/iterfs-bench-{os.getpid()}"
    loaded, pins = [], []
    with contextlib.ExitStack() as stack:
        for i in range(args.netlink):
            s = stack.enter_context(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, (0, 4, 16)[i % 3]))
            s.bind((0, 0))
        for _ in range(args.sockets):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            stack.enter_context(a)
            stack.enter_context(b)
        try:
            rows = []
            from iterfs.catalog import IterSpec
            variants = [ux.FILES[0], nl.FILES[0]]
            if args.printf_variant:
                variants.append(IterSpec("net/unix", "unix", ux.build_printf))
            for k, spec in enumerate(variants):
                t0 = time.perf_counter()
                ld = load(spec, btf)
                loaded.append(ld)
                load_ms = (time.perf_counter() - t0) * 1e3
                path = f"{root}/{k}/{spec.path}"
                pin(ld.link.fd, path)
                pins.append(path)
                proc = f"/proc/{spec.path}"
                # one read() of 1 MiB: the unix iterator loses lines at read() boundaries
                # (see net_unix's docstring), so small reads would not be identical
                same = read_once_big(path) == read_once_big(proc)
                it, pr = compare(path, proc, args.rounds)
                lines = open(proc, "rb").read().count(b"\n")
                name = spec.path + (" (1 printf)" if k == 2 else "")
                rows.append((name, lines, it, pr, load_ms, same))
            print(f"{'file':<22} {'lines':>5} {'pin µs':>8} {'/proc µs':>9} {'ratio':>6} "
                  f"{'load ms':>8}  identical")
            for name, lines, it, pr, load_ms, same in rows:
                print(f"{name:<22} {lines:>5} {it / 1e3:>8.1f} {pr / 1e3:>9.1f} {it / pr:>6.2f} "
                      f"{load_ms:>8.1f}  {same}")
        finally:
            for p in pins:
                unpin(p, prune_to=BPFFS)
            for k in range(3):
                for d in (f"{root}/{k}/net", f"{root}/{k}"):
                    with contextlib.suppress(OSError):
                        os.rmdir(d)
            with contextlib.suppress(OSError):
                os.rmdir(root)
            for ld in loaded:
                ld.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
