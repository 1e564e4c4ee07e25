"""Run `iterfs mount` in a subprocess on a temporary mountpoint and pin root; clean up always."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

from iterfs import syscall
from iterfs.daemon import mount_state

BPFFS = "/sys/fs/bpf"


def iterfs_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "iterfs", *args]


def run_cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(iterfs_cmd(*args), capture_output=True, text=True, timeout=timeout, **kw)


class Daemon:
    """One `iterfs mount` process. start() waits for READY=1 on its NOTIFY_SOCKET."""

    def __init__(self, mountpoint: str, pin_root: str, *extra: str, env: dict | None = None):
        self.mountpoint, self.pin_root, self.extra = mountpoint, pin_root, extra
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log = ""

    def start(self, timeout: float = 30) -> "Daemon":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        addr = f"\0iterfs-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind(addr)
        sock.settimeout(0.2)
        env = dict(os.environ if self.env is None else self.env, NOTIFY_SOCKET="@" + addr[1:])
        self._logf = open(os.path.join(os.path.dirname(self.mountpoint),
                                       f"daemon-{time.monotonic_ns()}.log"), "w+")
        self.proc = subprocess.Popen(
            iterfs_cmd("mount", self.mountpoint, "--pin-root", self.pin_root, *self.extra),
            stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        try:
            return self._wait_ready(sock, deadline, timeout)
        except BaseException:
            self.stop()  # never leave a half-started daemon, its mount or its pins
            raise
        finally:
            sock.close()

    def _wait_ready(self, sock, deadline: float, timeout: float) -> "Daemon":
        while time.monotonic() < deadline:
            try:
                msg = sock.recv(4096).decode()
            except socket.timeout:
                msg = ""
            if "READY=1" in msg:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"iterfs mount exited {self.proc.returncode}: {self.output()}")
        raise RuntimeError(f"iterfs mount not ready after {timeout}s: {self.output()}")

    def output(self) -> str:
        self._logf.flush()
        self._logf.seek(0)
        return self._logf.read()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def link_ids(self) -> set[int]:
        """Ids of the links this daemon pinned (read through its pins)."""
        out = set()
        for dirpath, _, files in os.walk(self.pin_root):
            for f in files:
                with syscall.obj_get(os.path.join(dirpath, f)) as fd:
                    out.add(syscall.link_info(fd.fd)[0].id)
        return out

    def helper_pid(self) -> int | None:
        """The privileged helper: the server's one child (iterfs.privsep)."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except (OSError, AttributeError):
            return None
        return kids[0] if kids else None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; then clear whatever is left (helper, mount, pins)."""
        helper = self.helper_pid() if self.proc is not None else None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if helper is not None:
            wait_gone(helper)
        cleanup(self.mountpoint, self.pin_root)
        with contextlib.suppress(Exception):
            self._logf.close()


def wait_gone(pid: int, timeout: float = 10) -> bool:
    """Wait for a process that is not our child to end; SIGKILL it at the deadline.
    True if it ended by itself."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


def cleanup(mountpoint: str, pin_root: str) -> None:
    if mount_state(mountpoint)[0]:
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True)
    if os.path.isdir(pin_root):
        shutil.rmtree(pin_root, ignore_errors=True)


TASK_LINE = re.compile(rb"^ *(\d+) +(\d+) +(\d+) +(\d+) ([RSDTtXZPI]) (.*)$")


def parse_tasks(data: bytes) -> dict[int, tuple]:
    """The rows of a `tasks` file by tid: (tgid, ppid, uid, state, comm); checks its shape."""
    lines = data.split(b"\n")
    assert lines[0] == b"   TGID     TID    PPID   UID S COMM"
    assert lines[-1] == b""
    rows = {}
    for ln in lines[1:-1]:
        m = TASK_LINE.match(ln)
        assert m, ln
        tgid, tid, ppid, uid = (int(x) for x in m.groups()[:4])
        assert tid not in rows
        rows[tid] = (tgid, ppid, uid, m.group(5).decode(), m.group(6))
    return rows


def pin_root_for(tmp_path) -> str:
    return f"{BPFFS}/iterfs-test-{os.getpid()}-{os.path.basename(str(tmp_path))}"


@contextlib.contextmanager
def public_mount(pin_tmp, *extra: str):
    """A started daemon whose mountpoint other users can reach (under /run, not pytest's
    0700 tmp), stopped and removed afterwards."""
    import tempfile
    base = tempfile.mkdtemp(prefix="iterfs-test-", dir="/run")
    os.chmod(base, 0o755)
    d = Daemon(os.path.join(base, "mnt"), pin_root_for(pin_tmp), *extra)
    try:
        yield d.start()
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)
