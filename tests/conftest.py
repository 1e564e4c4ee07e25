"""Test tiers: pure tests run anywhere; `kernel` and `fuse` tests need root and the real
kernel. They skip where that is missing, and fail instead when ITERFS_REQUIRE_KERNEL=1 (CI)."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import time

import pytest

REQUIRED = os.environ.get("ITERFS_REQUIRE_KERNEL") == "1"


@functools.lru_cache(maxsize=None)
def kernel_missing() -> str:
    """Why kernel-tier tests cannot run here ("" when they can)."""
    if os.geteuid() != 0:
        return "root (BPF programs need CAP_BPF + CAP_PERFMON)"
    if not os.access("/sys/kernel/btf/vmlinux", os.R_OK):
        return "/sys/kernel/btf/vmlinux (a kernel with CONFIG_DEBUG_INFO_BTF)"
    try:
        from iterfs.programs import ensure_bpffs
        ensure_bpffs()
    except OSError as e:
        return f"bpffs ({e})"
    return ""


def require_kernel() -> None:
    why = kernel_missing()
    if why:
        if REQUIRED:
            pytest.fail(f"kernel test needs {why} (ITERFS_REQUIRE_KERNEL=1)", pytrace=False)
        pytest.skip(f"needs {why}")


def pytest_runtest_setup(item):
    if item.get_closest_marker("kernel"):
        require_kernel()
    if item.get_closest_marker("fuse"):
        from fusehelp import require_fuse
        require_kernel()
        require_fuse()


@pytest.fixture(scope="session")
def vmlinux():
    require_kernel()
    from iterfs.btf import BTF
    return BTF.vmlinux()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def kill_forked(pid: int, fds=()) -> None:
    """Close a forked worker's pipe ends, SIGKILL it and reap it (up to 10 s: a call stuck
    in FUSE ends with the session)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL a child (if still running), reap it and close its pipes."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for s in (proc.stdin, proc.stdout):
        if s is not None:
            with contextlib.suppress(OSError):
                s.close()
