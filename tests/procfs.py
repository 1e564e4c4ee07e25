"""Independent oracles read straight from the kernel's /proc (never from iterfs)."""

from __future__ import annotations

import errno
import os


def tids() -> set[int]:
    """Every thread id /proc shows."""
    out = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                out.update(int(t) for t in os.listdir(f"/proc/{p}/task"))
            except FileNotFoundError:
                pass
    return out


def hidden_tids() -> set[int]:
    """Threads of processes the kernel hides from root's introspection.

    On this VM the init process (pid 1, the sandbox's process_api) is protected: even root
    gets EACCES from readlink /proc/1/ns/pid, and the kernel's task iterator does not yield
    that thread group. We find such groups independently by that EACCES."""
    out = set()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            os.readlink(f"/proc/{p}/ns/pid")
        except PermissionError:
            try:
                out.update(int(t) for t in os.listdir(f"/proc/{p}/task"))
            except FileNotFoundError:
                pass
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
    return out


def status(tid: int) -> dict[str, str]:
    with open(f"/proc/{tid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def stat(tid: int) -> list[str]:
    """/proc/<tid>/stat split into fields (comm kept whole)."""
    with open(f"/proc/{tid}/stat") as f:
        s = f.read()
    lp, rp = s.index("("), s.rindex(")")
    return [s[:lp - 1], s[lp + 1:rp]] + s[rp + 2:].split()
