"""A non-root reader gets what a procfs mounted with the same hidepid gives it: the same
processes listed, the same files refused; and no kernel address /proc would hide."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from daemonhelp import Daemon, pin_root_for

pytestmark = pytest.mark.fuse


def nobody(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(params=["invisible", "noaccess", "off"])
def pair(request, tmp_path):
    """(iterfs mount, a real procfs with the same hidepid), both where nobody can reach."""
    hidepid = request.param
    base = tempfile.mkdtemp(prefix="iterfs-test-", dir="/run")
    os.chmod(base, 0o755)
    proc = os.path.join(base, "proc")
    os.mkdir(proc)
    subprocess.run(["mount", "-t", "proc", "-o", f"hidepid={hidepid}", "proc", proc], check=True)
    d = Daemon(os.path.join(base, "mnt"), pin_root_for(tmp_path), "--hidepid", hidepid,
               "--mode", "kallsyms=0444", "--passthrough", "/proc")
    sleeper = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "sleep", "60"])
    try:
        d.start()
        time.sleep(0.2)
        yield d.mountpoint, proc, hidepid, sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
        d.stop()
        subprocess.run(["umount", "-l", proc])
        shutil.rmtree(base, ignore_errors=True)


def listed(root: str) -> set[int]:
    """The process directories nobody sees, less the listing process itself."""
    r = nobody("sh", "-c", 'echo $$; exec ls "$1"', "sh", root)
    assert r.returncode == 0, r.stderr
    me, *names = r.stdout.split()
    return {int(x) for x in names if x.isdigit()} - {int(me)}


def test_same_processes_and_refusals_as_procfs(pair):
    mp, proc, hidepid, mine = pair
    ours, theirs = listed(mp), listed(proc)
    # processes that came or went between the two listings aside (this VM's hidden pid 1
    # is root's, so hidepid keeps it from nobody in both)
    again = listed(proc)
    assert theirs & again - {1} <= ours <= theirs | again
    assert mine in ours
    if hidepid == "invisible":
        assert os.getpid() not in ours
    else:
        assert os.getpid() in ours
    for pid, allowed in ((mine, True), (os.getpid(), hidepid == "off")):
        a = nobody("cat", f"{mp}/{pid}/stat")
        b = nobody("cat", f"{proc}/{pid}/stat")
        assert (a.returncode == 0) == (b.returncode == 0) == allowed, (pid, a.stderr, b.stderr)


def test_kallsyms_shows_no_address_proc_would_hide(pair):
    mp, proc, _, _ = pair
    if not os.path.exists(f"{mp}/kallsyms"):
        pytest.fail("the mount serves no kallsyms: its catalog module failed to load")
    ours = nobody("head", "-n", "200", f"{mp}/kallsyms")
    theirs = nobody("head", "-n", "200", "/proc/kallsyms")
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    assert all(ln.startswith("0000000000000000 ") for ln in theirs.stdout.splitlines())
    root = subprocess.run(["head", "-n", "200", f"{mp}/kallsyms"], capture_output=True, text=True)
    assert root.stdout == subprocess.run(["head", "-n", "200", "/proc/kallsyms"],
                                         capture_output=True, text=True).stdout


def test_stat_hides_what_proc_hides_from_other_users(pair):
    """/proc/<pid>/stat shows another user's process without its addresses (startcode,
    startstack, ... are 1 or 0 unless ptrace_may_access): so must iterfs."""
    mp, proc, hidepid, _ = pair
    if hidepid != "off":
        return  # nobody cannot read root's processes at all there (checked above)
    root_sleeper = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.2)
        for _ in range(3):
            theirs = nobody("cat", f"{proc}/{root_sleeper.pid}/stat").stdout
            ours = nobody("cat", f"{mp}/{root_sleeper.pid}/stat").stdout
            if ours == theirs:
                break
        assert ours == theirs and ours
        fields = ours.rsplit(")", 1)[1].split()
        assert fields[23] == "1"  # startcode, as /proc prints it for a reader not permitted
        as_root = open(f"{mp}/{root_sleeper.pid}/stat").read().rsplit(")", 1)[1].split()
        assert int(as_root[23]) > 1  # the owner's (root's) view has the real address
        # a passed-through link procfs refuses to other users is refused here too: the
        # daemon reads it as the reader, not as root
        cwd = f"{mp}/{root_sleeper.pid}/cwd"
        assert os.readlink(cwd) == os.readlink(f"/proc/{root_sleeper.pid}/cwd")
        a, b = nobody("readlink", cwd), nobody("readlink", f"{proc}/{root_sleeper.pid}/cwd")
        assert a.returncode == b.returncode != 0 and a.stdout == b.stdout == ""
    finally:
        root_sleeper.kill()
        root_sleeper.wait()
