"""Time BTF.load() of the kernel's BTF (header checks + type index + name index)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from iterfs.btf import BTF, VMLINUX_PATH  # noqa: E402

GOAL_S = 0.300


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("path", nargs="?", default=VMLINUX_PATH, help="raw BTF file")
    ap.add_argument("-n", "--runs", type=int, default=9, help="loads to time (median)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the median misses the goal")
    args = ap.parse_args(argv)

    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        btf = BTF.load(args.path)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"btf index: {median:.3f} s (goal {GOAL_S:.3f} s, ratio {median / GOAL_S:.2f}) "
          f"[{len(btf)} ids, min {min(times):.3f} s, max {max(times):.3f} s, "
          f"{args.runs} runs]")
    return 1 if args.check and median > GOAL_S else 0


if __name__ == "__main__":
    sys.exit(main())
