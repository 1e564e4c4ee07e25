"""The floor under every iterfs small-file read: what pyfuse3 on trio costs by itself.

    sudo .venv/bin/python bench/fuse_floor.py [--rounds 2000] [--mount /run/iterfs]

Mounts a minimal pyfuse3 file system in a child process: one file whose open() returns a
handle and whose read() returns a constant 1.5 KiB (the size of net/netlink here), opened
direct_io like iterfs's files. Times open + read to EOF + close of that file, of
/proc/net/netlink, and (with --mount) of a running iterfs's net/netlink, interleaved in
batches of 50. If iterfs is close to the floor, the rest of P5/P8 is pyfuse3's and trio's
per-request cost, not iterfs's.
"""

from __future__ import annotations

import argparse
import errno
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import errno, os, sys, pyfuse3, trio
DATA = b"x" * 1535 + b"\n"

class Floor(pyfuse3.Operations):
    async def getattr(self, inode, ctx=None):
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        a.st_mode = (0o40555 if inode == pyfuse3.ROOT_INODE else 0o100444)
        a.entry_timeout = a.attr_timeout = 1.0
        return a

    async def lookup(self, parent, name, ctx=None):
        if name != b"f":
            raise pyfuse3.FUSEError(errno.ENOENT)
        return await self.getattr(2)

    async def open(self, inode, flags, ctx):
        return pyfuse3.FileInfo(fh=inode, direct_io=True, keep_cache=False)

    async def read(self, fh, off, size):
        return DATA[off:off + size]

pyfuse3.init(Floor(), sys.argv[1], {"fsname=floor", "ro"})
print("ready", flush=True)
try:
    trio.run(pyfuse3.main)
finally:
    pyfuse3.close(unmount=True)
"""


def one(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, 131072):
            pass
    finally:
        os.close(fd)


def timed_batch(path: str, n: int = 50) -> float:
    t = time.perf_counter()
    for _ in range(n):
        one(path)
    return (time.perf_counter() - t) / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--mount", help="a running iterfs mount to compare (its net/netlink)")
    args = ap.parse_args()
    mp = tempfile.mkdtemp(prefix="iterfs-floor-")
    child = subprocess.Popen([sys.executable, "-c", CHILD, mp], stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            print("the floor file system did not start", file=sys.stderr)
            return 1
        paths = {"pyfuse3 floor": os.path.join(mp, "f"), "/proc/net/netlink": "/proc/net/netlink"}
        if args.mount:
            paths["iterfs net/netlink"] = os.path.join(args.mount, "net", "netlink")
        for p in paths.values():
            one(p)  # warm: lookups cached, pools filled
        times = {k: [] for k in paths}
        for _ in range(max(1, args.rounds // 50)):
            for k, p in paths.items():
                times[k].append(timed_batch(p))
        proc = statistics.median(times["/proc/net/netlink"])
        for k, ts in times.items():
            m = statistics.median(ts)
            print(f"{k:<22} {m * 1e6:8.1f} µs per open+read+close   {m / proc:6.2f} x /proc")
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
        try:
            os.rmdir(mp)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
