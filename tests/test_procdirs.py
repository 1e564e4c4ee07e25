"""Process directories on the real mount: listed from the task iterator, appearing and
vanishing with processes, per-pid and per-tid files, fd links, hidepid, passthrough."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import procfs
from daemonhelp import Daemon, pin_root_for

pytestmark = pytest.mark.fuse

PER_PROCESS = '''
from iterfs.catalog import IterSpec
from iterfs.dsl.program import Addr, Field, IterProgram

def build(per):
    def b(btf):
        p = IterProgram("task", btf=btf)
        t = p.ctx_ptr("task")
        p.exit_if_null(t)
        p.seq_printf(per + " %d %d %s\\n", Field(t, "tgid"), Field(t, "pid"), Addr(t, "comm"))
        return p.build()
    return b

FILES = [IterSpec("who", "task", build("pid"), per="pid"),
         IterSpec("who", "task", build("tid"), per="tid"),
         IterSpec("secret", "task", build("secret"), per="pid", ptrace=True)]
'''

THREADS = """
import sys, threading
ev = threading.Event()
for _ in range(3): threading.Thread(target=ev.wait, daemon=True).start()
print("ready", flush=True); sys.stdin.read()
"""


@pytest.fixture(scope="module")
def mount(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("procdirs")
    cat = tmp / "catalog"
    cat.mkdir()
    (cat / "per_process.py").write_text(PER_PROCESS)
    # under /run, not pytest's 0700 tmp: other users must reach the mountpoint
    base = tempfile.mkdtemp(prefix="iterfs-test-", dir="/run")
    os.chmod(base, 0o755)
    d = Daemon(os.path.join(base, "mnt"), pin_root_for(tmp), "--catalog", str(cat),
               "--no-builtin", "--hidepid", "invisible", "--passthrough", "/proc")
    try:
        yield d.start()
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)


def nobody(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=30)


def test_root_lists_every_process_the_iterator_sees(mount):
    mp = mount.mountpoint
    before = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    listed = {int(p) for p in os.listdir(mp) if p.isdigit()}
    after = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    hidden = {int(t) for t in procfs.hidden_tids() if os.path.exists(f"/proc/{t}/status")}
    # processes (not threads): /proc lists tgids; the hidden group's leader may be among them
    leaders = (before & after) - hidden
    assert leaders <= listed <= (before | after)
    assert os.getpid() in listed


def test_per_pid_and_per_tid_files(mount):
    mp = mount.mountpoint
    child = subprocess.Popen([sys.executable, "-c", THREADS], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        pid = child.pid
        d = os.path.join(mp, str(pid))
        names = os.listdir(d)  # iterator files, and the rest passed through from /proc
        assert {"secret", "task", "who", "status", "environ"} <= set(names)
        assert len(names) == len(set(names))
        lines = open(os.path.join(d, "who")).read().splitlines()
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        assert sorted(int(ln.split()[2]) for ln in lines) == tids   # pid= walks its threads
        assert {ln.split()[1] for ln in lines} == {str(pid)}
        assert sorted(int(t) for t in os.listdir(os.path.join(d, "task"))) == tids
        for tid in tids:
            one = open(os.path.join(d, "task", str(tid), "who")).read()
            assert one == f"tid {pid} {tid} {procfs.stat(tid)[1]}\n"   # tid= is one task
        st = os.stat(d)
        assert (st.st_uid, st.st_gid) == (0, 0) and st.st_mode & 0o777 == 0o555
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5  # gone with the process (the kernel may cache 0 s here)
    while time.monotonic() < deadline and os.path.exists(os.path.join(mp, str(pid))):
        time.sleep(0.05)
    assert not os.path.exists(os.path.join(mp, str(pid)))
    assert str(pid) not in os.listdir(mp)


def test_hidepid_invisible_and_ptrace_files(mount):
    mp = mount.mountpoint
    sleeper = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "sleep", "60"])
    try:
        time.sleep(0.3)
        mine = str(sleeper.pid)
        r = nobody("ls", mp)
        assert r.returncode == 0, r.stderr
        shown = {p for p in r.stdout.split() if p.isdigit()}
        assert mine in shown and str(os.getpid()) not in shown   # only nobody's processes
        assert nobody("cat", os.path.join(mp, str(os.getpid()), "who")).returncode != 0
        r = nobody("cat", os.path.join(mp, mine, "who"))
        assert r.returncode == 0 and r.stdout.startswith(f"pid {mine} {mine} sleep")
        assert nobody("cat", os.path.join(mp, mine, "secret")).returncode == 0
        # root sees everything, including the ptrace-only file of another user
        assert open(os.path.join(mp, mine, "secret")).read().startswith("secret ")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_passthrough_serves_the_rest_with_the_readers_rights(mount):
    mp = mount.mountpoint
    assert open(os.path.join(mp, "uptime")).read().split()[0]
    assert os.listdir(os.path.join(mp, "sys", "kernel"))
    assert os.readlink(os.path.join(mp, "self")) == str(os.getpid())
    assert open(os.path.join(mp, "self", "who")).read().startswith(f"pid {os.getpid()} ")
    # iterator files take precedence; what iterfs lacks comes from /proc
    assert os.path.exists(os.path.join(mp, str(os.getpid()), "status"))
    r = nobody("cat", os.path.join(mp, "self", "status"))
    assert r.returncode == 0 and "Uid:\t65534" in r.stdout
    assert str(os.getpid()) not in nobody("ls", mp).stdout.split()  # hidepid holds here too


def test_passthrough_opens_with_the_callers_credentials():
    # /proc/<pid>/maps is mode 0444, yet procfs refuses it to other users (ptrace check):
    # the passthrough's open must meet that check as the caller, not as the daemon
    from iterfs.passthrough import _as_caller
    other = subprocess.Popen(["sleep", "60"])  # a root process that is not us
    try:
        maps = f"/proc/{other.pid}/maps"
        os.close(os.open(maps, os.O_RDONLY))
        with pytest.raises(PermissionError):
            _as_caller(65534, 65534, lambda: os.open(maps, os.O_RDONLY))
        assert open(maps).read()  # this thread kept its own credentials
    finally:
        other.kill()
        other.wait()


def test_fd_directory_through_the_mount(tmp_path):
    """The real catalog's fd/ listing, comm and cmdline, read through a mount."""
    base = tempfile.mkdtemp(prefix="iterfs-test-", dir="/run")
    d = Daemon(os.path.join(base, "mnt"), pin_root_for(tmp_path))
    weird = tmp_path / "name with\nnewline and \\ backslash"
    weird.write_text("x")
    child = subprocess.Popen([sys.executable, "-c", "import sys, socket; s = socket.socket(); "
                              f"f = open({str(weird)!r}); r, w = __import__('os').pipe(); "
                              "print('ready', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        d.start()
        assert child.stdout.readline() == "ready\n"
        mine = os.path.join(d.mountpoint, str(child.pid))
        real = f"/proc/{child.pid}"
        assert sorted(os.listdir(f"{mine}/fd"), key=int) == sorted(os.listdir(f"{real}/fd"), key=int)
        for n in os.listdir(f"{real}/fd"):
            assert os.readlink(f"{mine}/fd/{n}") == os.readlink(f"{real}/fd/{n}"), n
        assert open(f"{mine}/comm", "rb").read() == open(f"{real}/comm", "rb").read()
        assert open(f"{mine}/cmdline", "rb").read() == open(f"{real}/cmdline", "rb").read()
        assert os.stat(f"{mine}/fd").st_mode & 0o777 == 0o500
    finally:
        child.kill()
        child.wait()
        d.stop()
        shutil.rmtree(base, ignore_errors=True)
