"""Privilege separation: the FUSE server has no capabilities and is not root, while every
file still reads like /proc; a root helper does the rest and cleans up after the server."""

from __future__ import annotations

import errno
import os
import pwd
import signal
import subprocess

import pytest

from daemonhelp import Daemon, pin_root_for, public_mount, wait_gone
from iterfs import privsep
from iterfs.daemon import mount_state
from iterfs.passthrough import LocalProc

pytestmark = [pytest.mark.kernel, pytest.mark.fuse]


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith(name + ":"))


def creds(pid: int) -> tuple[int, int, int]:
    """(real uid, effective uid, CapEff) from /proc/PID/status."""
    uids = status_field(pid, "Uid").split()
    return int(uids[0]), int(uids[1]), privsep.cap_eff(pid)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with public_mount(tmp_path_factory.mktemp("privsep"), "--passthrough", "/proc") as d:
        yield d


def test_server_has_no_capabilities_and_is_not_root(served):
    server, helper = served.proc.pid, served.helper_pid()
    want = pwd.getpwnam(privsep.resolve_user(None)[0]).pw_uid
    assert want != 0
    assert creds(server) == (want, want, 0)
    assert status_field(server, "NoNewPrivs") == "1"
    assert os.stat(f"/proc/{server}/environ").st_uid == 0  # not dumpable: no ptrace by its user
    # the helper is the server's only child and keeps root; it holds no FUSE fd
    assert creds(helper)[:2] == (0, 0) and creds(helper)[2]
    assert not [fd for fd in os.listdir(f"/proc/{helper}/fd")
                if os.readlink(f"/proc/{helper}/fd/{fd}") == "/dev/fuse"]
    assert [fd for fd in os.listdir(f"/proc/{server}/fd")
            if os.readlink(f"/proc/{server}/fd/{fd}") == "/dev/fuse"]


def test_files_still_read_like_proc(served):
    mp, me = served.mountpoint, os.getpid()
    tasks = open(os.path.join(mp, "tasks"), "rb").read().decode()
    assert any(line.split()[:2] == [str(me), str(me)] for line in tasks.splitlines()[1:])
    # per-process files link per open, as the unprivileged server
    ours = open(f"{mp}/{me}/stat").read().split()
    theirs = open(f"/proc/{me}/stat").read().split()
    assert ours[:2] + ours[3:13] == theirs[:2] + theirs[3:13]  # state: R while it reads
    # the serving process's own directory, and a root process's
    assert open(f"{mp}/{served.helper_pid()}/comm").read() == "iterfs-helper\n"
    # passthrough: opened by the helper with the reader's credentials (root here)
    assert open(f"{mp}/{me}/environ", "rb").read() == open(f"/proc/{me}/environ", "rb").read()
    assert os.readlink(f"{mp}/{me}/cwd") == os.readlink(f"/proc/{me}/cwd")
    # net files: the same header and socket count as /proc
    for name in ("net/netlink", "net/unix"):
        assert open(f"{mp}/{name}").readline() == open(f"/proc/{name}").readline()


def test_passthrough_opens_as_the_reader_not_the_server(served):
    """nobody may not read root's environ through the mount, as through /proc; root may."""
    mp = served.mountpoint
    target = served.helper_pid()  # a root process
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "cat", f"{mp}/{target}/environ"], capture_output=True, text=True)
    direct = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "cat", f"/proc/{target}/environ"], capture_output=True, text=True)
    assert direct.returncode != 0 and "Permission denied" in direct.stderr
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert open(f"{mp}/{target}/environ", "rb").read() == open(f"/proc/{target}/environ", "rb").read()


def test_helper_refuses_paths_outside_its_root():
    local = LocalProc("/proc")
    for bad in ("..", "1/../..", "self/../../etc/shadow", "a//b", "./x"):
        with pytest.raises(OSError) as e:
            local.open(bad, 0, 0)
        assert e.value.errno == errno.EINVAL


@pytest.mark.parametrize("user,uid", [("root", 0), ("nobody", 65534)])
def test_user_option(tmp_path, user, uid):
    d = Daemon(str(tmp_path / "mnt"), pin_root_for(tmp_path), "--user", user).start()
    try:
        real, eff, caps = creds(d.proc.pid)
        assert (real, eff) == (uid, uid)
        assert bool(caps) == (uid == 0)
        assert open(os.path.join(d.mountpoint, "tasks")).readline().split()[0] == "TGID"
    finally:
        d.stop()


def test_sigterm_the_helper_unmounts_and_unpins_for_the_server(tmp_path):
    """The unprivileged server cannot unmount or unpin: at SIGTERM it asks the helper."""
    mp = str(tmp_path / "mnt")
    d = Daemon(mp, pin_root_for(tmp_path)).start()
    try:
        helper = d.helper_pid()
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
        assert wait_gone(helper, 5)
        assert mount_state(mp) == ("", "")
        assert not os.path.exists(d.pin_root)
        assert "Traceback" not in d.output()
    finally:
        d.stop()
